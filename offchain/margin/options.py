"""Exact integer mirror of the option part of the margin (``OptionMargin.sol``, docs/options.md).

Bit for bit with the contract: the same fixed-point pricing (:mod:`offchain.margin.optionmath`), the same order of
operations and the same rounding. Units: prices and values USD 1e18, sizes base units 1e18, volatilities WAD
(1e18 = 100% a year), ratios bps.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

from .exact import BPS, WAD, MarginConfig, PriceUnavailable, ceil_div, i16, mul_div_up, position_value_down, u16
from .optionmath import ln_wad, price, std_dev

SKEW_ONE = 10**22  # skew (bps) * |ln moneyness| (WAD) is scaled by 1e4 * 1e18
MAX_SERIES = 32


# ---------------------------------------------------------------------------------------------- the OPTION word
def skew(word: int, asset: int) -> int:
    return u16(word, asset)


def vol_up(word: int) -> int:
    return u16(word, 8)


def vol_down(word: int) -> int:
    return u16(word, 9)


def grid_steps(word: int) -> int:
    return (word >> 160) & 0xFF


def short_min(word: int) -> int:
    return (word >> 168) & 0xFFFF


# ---------------------------------------------------------------------------------------------- positions
@dataclass(frozen=True)
class Series:
    """An option series as listed (``IOptionMarkets.Series``)."""

    asset: int
    is_call: bool
    strike: int  # USD 1e18
    expiry: int  # unix seconds
    fixed_price: int = 0  # USD 1e18, 0 until fixed


@dataclass(frozen=True)
class OptionPosition:
    series: Series
    size: int  # base units 1e18, + long


@dataclass
class OptionRisk:
    """``OptionMargin.Risk``: what the options add to an account's margin."""

    value: int = 0
    notional: int = 0
    ws: list[int] = field(default_factory=lambda: [0] * 8)
    curvature: int = 0
    short_minimum: int = 0
    stress: list[int] = field(default_factory=lambda: [0] * 16)
    assets: int = 0


@dataclass(frozen=True)
class OptionMarket:
    """What option values depend on besides the account: the series by slot, the volatility per asset (WAD), the
    OPTION word and the evaluation's time."""

    series: Mapping[int, Series]
    vols: Sequence[int]
    word: int
    time: int

    def at(self, time: int) -> "OptionMarket":
        """The same market at block time ``time`` (what a transaction included then values options with)."""
        return replace(self, time=time)

    def account_risk(self, sizes: Mapping[int, int], prices: Sequence[int], delta: Sequence[int],
                     cfg: MarginConfig) -> "OptionRisk":
        """The option part of an account holding ``sizes`` (slot -> size) at ``prices`` (every listed asset's: a
        live series' asset priced 0 has no valid price) with the linear delta ``delta``."""
        positions = [OptionPosition(self.series[i], q) for i, q in sorted(sizes.items()) if q]
        for p in positions:
            if not p.series.fixed_price and prices[p.series.asset] == 0:
                raise PriceUnavailable(f"option series on asset {p.series.asset}: no valid price")
        return option_risk(positions, prices, delta, cfg.global_word, cfg.stress, cfg.num_stress, self)


def unit_price(is_call: bool, spot: int, strike: int, ln_spot: int, ln_strike: int, vol: int, skew_bps: int,
               sqrt_t: int) -> int:
    """``OptionMargin.unitPrice``: one unit at ``spot`` under volatility ``vol`` bent by the skew."""
    m = ln_spot - ln_strike
    sigma = vol * (SKEW_ONE + skew_bps * abs(m)) // SKEW_ONE
    return price(is_call, spot, strike, m, sigma * sqrt_t // WAD)


def payoff(is_call: bool, strike: int, at: int) -> int:
    if is_call:
        return at - strike if at > strike else 0
    return strike - at if strike > at else 0


def sqrt_years(expiry: int, time: int) -> int:
    return std_dev(WAD, expiry - time) if expiry > time else 0


def mark(series: Series, spot: int, vol: int, word: int, time: int) -> int:
    """The model mark per unit (``OptionMarkets.mark``): the payoff once fixed."""
    if series.fixed_price:
        return payoff(series.is_call, series.strike, series.fixed_price)
    return unit_price(series.is_call, spot, series.strike, ln_wad(spot), ln_wad(series.strike), vol,
                      skew(word, series.asset), sqrt_years(series.expiry, time))


def position_value(p: OptionPosition, prices: Sequence[int], market: OptionMarket) -> int:
    s = p.series
    return position_value_down(p.size, mark(s, prices[s.asset], market.vols[s.asset], market.word, market.time))


# ---------------------------------------------------------------------------------------------- the scan
def _grid_spot(spot: int, n: int, rw: int, x: int) -> int:
    num = n * BPS + x * rw
    if num <= 0:
        return 1
    s = spot * num // (n * BPS)
    return s or 1


def _shocked_spot(spot: int, shock: int) -> int:
    if shock <= -BPS:
        return 1
    s = spot * (BPS + shock) // BPS
    return s or 1


class _Scan:
    """One asset's live positions and volatility points (``OptionMargin.Scan``)."""

    def __init__(self, positions: list[OptionPosition], spot: int, rw: int, n: int, vol: int, word: int, asset: int,
                 time: int) -> None:
        self.positions = positions
        self.spot, self.rw, self.n = spot, rw, n
        self.skew = skew(word, asset)
        self.vols = (vol * (BPS - vol_down(word)) // BPS, vol, vol * (BPS + vol_up(word)) // BPS)
        self.ln_strike = [ln_wad(p.series.strike) for p in positions]
        self.sqrt_t = [sqrt_years(p.series.expiry, time) for p in positions]
        self.base = self.value(spot, ln_wad(spot), 1)

    def value(self, spot: int, ln_spot: int, j: int) -> int:
        total = 0
        for p, lk, st in zip(self.positions, self.ln_strike, self.sqrt_t):
            s = p.series
            total += position_value_down(p.size, unit_price(s.is_call, spot, s.strike, ln_spot, lk, self.vols[j],
                                                            self.skew, st))
        return total

    def grid(self) -> list[list[int]]:
        """loss[x + n][j] under the volatility points down, base, up; inside the grid (0 < |x| < n) down and up only
        (as SPAN's scenarios), the base column repeating the down column's loss as the contract's table does."""
        n = self.n
        loss = []
        for xi in range(2 * n + 1):
            if xi == n:
                ls = ln_wad(self.spot)
                loss.append([self.base - self.value(self.spot, ls, 0), 0, self.base - self.value(self.spot, ls, 2)])
                continue
            s = _grid_spot(self.spot, n, self.rw, xi - n)
            ls = ln_wad(s)
            down, up = self.base - self.value(s, ls, 0), self.base - self.value(s, ls, 2)
            mid = self.base - self.value(s, ls, 1) if xi in (0, 2 * n) else down
            loss.append([down, mid, up])
        return loss

    def stress_loss(self, loss: list[list[int]], shock: int) -> int:
        """The loss at the stress shock under the volatility shock (down or up) worse at the grid point next to the
        shock on the spot's side (its own row when the shock is a grid point)."""
        x = stress_point(self.n, self.rw, shock)
        up = loss[x + self.n][2] > loss[x + self.n][0]
        if x * self.rw == shock * self.n:
            return loss[x + self.n][2 if up else 0]
        s = _shocked_spot(self.spot, shock)
        return self.base - self.value(s, ln_wad(s), 2 if up else 0)


def stress_point(n: int, rw: int, shock: int) -> int:
    """``OptionMargin._stressLoss``' grid point for a stress shock (bps): trunc(shock n / RW) clamped to [-n, n], 0
    when RW = 0."""
    if rw == 0:
        return 0
    q = abs(shock * n) // rw
    return max(-n, min(n, -q if shock < 0 else q))


def combine(loss: list[list[int]], n: int, rw: int, d: int) -> tuple[int, int]:
    """``OptionMargin._combine``: (WS_a, B_a) from the options' loss table and the asset's linear delta ``d``."""
    scale = n * BPS
    linear = rw * d
    worst = max(scale * loss[x + n][j] - x * linear for x in range(-n, n + 1) for j in range(3))
    scan = ceil_div(worst, scale) if worst > 0 else 0
    direction = (scale * loss[0][1] + n * linear) - (scale * loss[2 * n][1] - n * linear)
    w = min(ceil_div(abs(direction), 2 * scale), scan)
    return (-w if direction < 0 else w), scan - w


def option_risk(positions: Sequence[OptionPosition], prices: Sequence[int], delta: Sequence[int], global_word: int,
                stress_words: Sequence[int], num_stress: int, market: OptionMarket) -> OptionRisk:
    """``OptionMargin.risk``: the option part of an account's margin (``delta``: the linear delta per asset)."""
    r = OptionRisk()
    n = grid_steps(market.word) or 1
    for p in positions:
        if p.series.fixed_price:
            r.value += position_value(p, prices, market)
        else:
            r.assets |= 1 << p.series.asset
    minimum = short_min(market.word)
    for a in range(8):
        if not (r.assets >> a) & 1:
            continue
        mine = [p for p in positions if p.series.asset == a and not p.series.fixed_price]
        spot = prices[a]
        for p in mine:
            size = abs(p.size)
            r.notional += size * spot // WAD
            if p.size < 0:
                r.short_minimum += mul_div_up(size, spot * minimum, WAD * BPS)
        rw = u16(global_word, a)
        sc = _Scan(mine, spot, rw, n, market.vols[a], market.word, a, market.time)
        r.value += sc.base
        loss = sc.grid()
        r.ws[a], b = combine(loss, n, rw, delta[a])
        r.curvature += b
        for s in range(num_stress):
            r.stress[s] += sc.stress_loss(loss, i16(stress_words[s // 2], 128 * (s % 2) + 16 * a))
    return r
