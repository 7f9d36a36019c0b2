"""Exact integer mirror of the on-chain portfolio margin (``PortfolioMargin.sol`` and ``CrossMarginVault``).

Every function here reproduces the Solidity arithmetic bit for bit: the same packed parameter words, the same
order of operations and the same rounding (requirements up, credits down). Units follow the contracts: prices and
USD values are 1e18 fixed point, sizes are base units 1e18, ratios are basis points (10_000 = 100%).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import isqrt
from typing import Mapping, Protocol, Sequence

from .funding import MarketFunding, accrued


class OptionTerms(Protocol):
    """What the option part adds to the margin (``offchain.margin.options.OptionRisk``, ``OptionMargin.Risk``)."""

    value: int
    notional: int
    ws: list[int]
    curvature: int
    short_minimum: int
    stress: list[int]
    assets: int


class OptionValuation(Protocol):
    """Values an account's option positions (``offchain.margin.options.OptionMarket``)."""

    def account_risk(self, sizes: Mapping[int, int], prices: Sequence[int], delta: Sequence[int],
                     cfg: "MarginConfig") -> OptionTerms: ...

BPS = 10_000
WAD = 10**18
MAX_EXPOSURE = 2**110  # PortfolioMargin.MAX_EXPOSURE: the range the on-chain arithmetic is proven for
RHO4_ONE = 40_000
MAX_ASSETS = 8
MAX_COLLATERALS = 16
MAX_MARKETS = 16
DEPTH_UNIT = 10**7 * WAD  # RiskConfig.DEPTH_UNIT: a DEPTH slot counts 10 million USD
INT256_MIN = -(2**255)
INT256_MAX = 2**255 - 1


class MarginOverflow(ArithmeticError):
    """A value outside the range the contract accepts: the contract reverts on the same input."""


class PriceUnavailable(ValueError):
    """An account holds a position on an asset without a valid oracle price (price 0 here): the vault reverts with
    the oracle's error for it. Collateral of such an asset simply counts at zero."""


def _check(x: int) -> int:
    if not INT256_MIN <= x <= INT256_MAX:
        raise MarginOverflow(x)
    return x


# ---------------------------------------------------------------------------------------------- rounding helpers
def floor_div(a: int, b: int) -> int:
    """Signed division rounded toward minus infinity (b > 0)."""
    return a // b


def ceil_div(a: int, b: int) -> int:
    """Signed division rounded toward plus infinity (b > 0)."""
    return -((-a) // b)


def ceil_sqrt(x: int) -> int:
    r = isqrt(x)
    return r if r * r == x else r + 1


def mul_div_up(x: int, y: int, d: int) -> int:
    return -((-x * y) // d)


def position_value_down(size: int, price: int) -> int:
    return floor_div(_check(size * price), WAD)


def token_value_down(amount: int, price: int, decimals: int) -> int:
    return amount * price // 10**decimals


def haircut_down(value: int, haircut_bps: int) -> int:
    return value * (BPS - haircut_bps) // BPS


# ---------------------------------------------------------------------------------------------- packed words
def u16(word: int, slot: int) -> int:
    return (word >> (16 * slot)) & 0xFFFF


def i16(word: int, bit_offset: int) -> int:
    v = (word >> bit_offset) & 0xFFFF
    return v - 0x10000 if v >= 0x8000 else v


def pair_index(a: int, b: int) -> int:
    k, l = (a, b) if a < b else (b, a)
    return (k * (15 - k)) // 2 + (l - k - 1)


@dataclass(frozen=True)
class MarginConfig:
    """The words returned by ``RiskParameters.marginConfig()``."""

    global_word: int
    corr0: int
    corr1: int
    haircuts: int
    stress: tuple[int, ...]  # 8 words (zero beyond the published vectors)
    addons: int = 0  # the ADDON word: volatility add-ons per asset, correlation break
    depths: int = 0  # the DEPTH word: liquidation depth per market

    def __post_init__(self) -> None:
        object.__setattr__(self, "stress", tuple(self.stress) + (0,) * (8 - len(self.stress)))

    @classmethod
    def from_chain(cls, raw: Sequence) -> "MarginConfig":
        g, c0, c1, h, stress, addons, depths = raw
        return cls(int(g), int(c0), int(c1), int(h), tuple(int(w) for w in stress), int(addons), int(depths))

    def vol_scaler(self, asset: int) -> int:
        """The volatility scaler of ``asset`` in bps (10_000: none): 10_000 + its ADDON slot."""
        return BPS + u16(self.addons, asset)

    @property
    def correlation_break(self) -> int:
        """The share (bps) of every hedging credit the low regime withdraws."""
        return u16(self.addons, 8)

    def depth(self, market: int) -> int:
        """The liquidation depth of ``market`` in USD 1e18 (0: no concentration charge)."""
        return u16(self.depths, market) * DEPTH_UNIT

    def risk_weight(self, asset: int) -> int:
        return u16(self.global_word, asset)

    @property
    def alpha(self) -> int:
        return u16(self.global_word, 8)

    @property
    def basis_addon(self) -> int:
        return u16(self.global_word, 9)

    @property
    def floor_rate(self) -> int:
        return u16(self.global_word, 10)

    @property
    def num_stress(self) -> int:
        return (self.global_word >> 176) & 0xFF

    def correlation(self, a: int, b: int) -> int:
        p = pair_index(a, b)
        return i16(self.corr0 if p < 16 else self.corr1, 16 * (p % 16))

    def shock(self, s: int, asset: int) -> int:
        return i16(self.stress[s // 2], 128 * (s % 2) + 16 * asset)

    def haircut(self, collateral_id: int) -> int:
        return u16(self.haircuts, collateral_id)


@dataclass(frozen=True)
class Breakdown:
    """The parts of the maintenance margin, as ``PortfolioMargin.Breakdown``."""

    k_regime: tuple[int, int, int]  # low, medium, high correlation
    k_stress: int
    worst_scenario: int
    basis: int
    floor_charge: int
    maintenance: int
    initial: int
    k_correlated: int = 0  # max of k_regime times the volatility scalers (equal to it without scalers)
    concentration: int = 0
    curvature: int = 0  # B: what the options' scan adds beyond their directional part
    short_minimum: int = 0  # M


def correlated_charges(ws: Sequence[int], cfg: MarginConfig) -> tuple[int, int, int]:
    """K_r for the low, medium and high regimes; the low regime's hedging credits (pair terms of sign opposite to
    the diagonal) are cut by the correlation break (rho * (1 - break), toward zero)."""
    cut = BPS - cfg.correlation_break
    diag = 0
    cross = [0, 0, 0]
    for k in range(MAX_ASSETS):
        wk = ws[k]
        if wk == 0:
            continue
        diag += wk * wk
        for l in range(k + 1, MAX_ASSETS):
            wl = ws[l]
            if wl == 0:
                continue
            rho = cfg.correlation(k, l)
            prod = wk * wl
            low = max(8 * rho - RHO4_ONE, 3 * rho)
            if cut != BPS and (prod < 0) != (low < 0) and low != 0:
                low = _tdiv(low * cut, BPS)
            cross[0] += prod * low
            cross[1] += prod * (4 * rho)
            cross[2] += prod * min(5 * rho, RHO4_ONE)
    out = []
    for r in range(3):
        q = _check(diag * RHO4_ONE + 2 * cross[r])
        out.append(ceil_sqrt(ceil_div(q, RHO4_ONE)) if q > 0 else 0)
    return out[0], out[1], out[2]


def _tdiv(a: int, b: int) -> int:
    """Signed division truncated toward zero (Solidity's ``/`` on int256), b > 0."""
    q = abs(a) // b
    return q if a >= 0 else -q


def vol_scaled(charge: int, ws: Sequence[int], cfg: MarginConfig) -> int:
    """ceil(K * sum_k v_k |WS_k| / (1e4 * sum_k |WS_k|)): the correlated charge ``K`` times the volatility scalers
    averaged over the account's weighted sensitivities (``K`` itself without scalers or exposure)."""
    if (cfg.addons & (2**128 - 1)) == 0 or charge == 0:
        return charge
    num = den = 0
    for k in range(MAX_ASSETS):
        a = abs(ws[k])
        num += cfg.vol_scaler(k) * a
        den += a
    return ceil_div(charge * num, BPS * den)


def concentration_charge(notional: int, depth: int) -> int:
    """ceil(N * sqrt(N / L)) for a position of |value| ``notional`` in a market of depth ``L`` (both USD 1e18;
    0 when L = 0), as ceil(N * ceil_sqrt(ceil(N * 1e36 / L)) / 1e18)."""
    if depth == 0 or notional == 0:
        return 0
    return ceil_div(notional * ceil_sqrt(ceil_div(notional * WAD * WAD, depth)), WAD)


def stress_charge(delta: Sequence[int], cfg: MarginConfig, option_loss: Sequence[int] | None = None
                  ) -> tuple[int, int]:
    """Worst loss over the stress vectors and its index: ceil(-sum_k S_sk D_k / 1e4) + the options' loss in s."""
    worst, index = 0, 0
    for s in range(cfg.num_stress):
        pnl = sum(cfg.shock(s, k) * delta[k] for k in range(MAX_ASSETS) if delta[k] != 0)
        loss = ceil_div(-pnl, BPS) + (option_loss[s] if option_loss is not None else 0)
        if loss > worst:
            worst, index = loss, s
    return worst, index


def breakdown(delta: Sequence[int], gross: Sequence[int], cfg: MarginConfig, concentration: int = 0,
              options: OptionTerms | None = None) -> Breakdown:
    """Maintenance and initial margin from net delta and gross notional per asset (USD 1e18), the account's
    concentration charge (the sum over its positions of ``concentration_charge``) and the option part
    (:func:`offchain.margin.options.option_risk`; None: no options)."""
    ws = [0] * MAX_ASSETS
    hedged = 0
    abs_sum = 0
    with_options = options.assets if options is not None else 0
    for k in range(MAX_ASSETS):
        d = delta[k]
        if d == 0 and gross[k] == 0 and not (with_options >> k) & 1:
            continue
        a = abs(d)
        if gross[k] >= MAX_EXPOSURE or a > gross[k]:
            raise MarginOverflow(f"asset {k}: delta {d}, gross {gross[k]} outside the margin's range")
        abs_sum += a
        hedged += gross[k] - a
        if (with_options >> k) & 1:
            if abs(options.ws[k]) >= MAX_EXPOSURE:
                raise MarginOverflow(f"asset {k}: option sensitivity {options.ws[k]} outside the margin's range")
            ws[k] = options.ws[k]
        else:
            w = mul_div_up(a, cfg.risk_weight(k), BPS)
            ws[k] = -w if d < 0 else w
    k_regime = correlated_charges(ws, cfg)
    k_stress, worst = stress_charge(delta, cfg, options.stress if options is not None else None)
    basis = mul_div_up(hedged, cfg.basis_addon, BPS)
    floor_charge = mul_div_up(abs_sum, cfg.floor_rate, BPS)
    k_correlated = vol_scaled(max(k_regime), ws, cfg)
    curvature = options.curvature if options is not None else 0
    minimum = options.short_minimum if options is not None else 0
    mm = max(max(k_correlated + curvature, k_stress) + basis + concentration + minimum, floor_charge)
    im = mul_div_up(mm, cfg.alpha, BPS)
    return Breakdown(k_regime, k_stress, worst, basis, floor_charge, mm, im, k_correlated, concentration, curvature,
                     minimum)


# ---------------------------------------------------------------------------------------------- accounts
@dataclass
class AccountState:
    """What the vault stores for an account: settlement (USD 1e18), positions, the funding index each position
    stored at its last settlement, and collateral balances."""

    settlement: int = 0
    positions: dict[int, tuple[int, int]] = field(default_factory=dict)  # market -> (size, openNotional)
    collateral: dict[int, int] = field(default_factory=dict)  # collateral id -> token units
    funding: dict[int, int] = field(default_factory=dict)  # market -> index stored (nano-USD per unit; absent: 0)
    options: dict[int, int] = field(default_factory=dict)  # option series slot -> size (base units 1e18)

    def canonical(self) -> tuple:
        """A comparable form: zero entries dropped, keys sorted (equal iff the vault would store the same)."""
        return (self.settlement, sorted((m, p) for m, p in self.positions.items() if p[0] != 0),
                sorted((c, b) for c, b in self.collateral.items() if b != 0),
                sorted((m, self.funding.get(m, 0)) for m, p in self.positions.items() if p[0] != 0),
                sorted((i, q) for i, q in self.options.items() if q != 0))


@dataclass(frozen=True)
class Layout:
    """The vault's listing: the asset of each market and each collateral, and collateral decimals."""

    market_asset: tuple[int, ...]
    collateral_asset: tuple[int, ...]
    collateral_decimals: tuple[int, ...]


@dataclass(frozen=True)
class AccountMargin:
    equity: int
    delta: tuple[int, ...]
    gross: tuple[int, ...]
    margin: Breakdown
    options: OptionTerms | None = None  # the option part (None: the account holds no options)

    @property
    def maintenance(self) -> int:
        return self.margin.maintenance

    @property
    def initial(self) -> int:
        return self.margin.initial

    @property
    def gross_total(self) -> int:
        """What a liquidation may take in total: the gross of perpetuals and collateral and the options' notional."""
        return sum(self.gross) + (self.options.notional if self.options is not None else 0)

    @property
    def liquidatable(self) -> bool:
        return self.equity < self.margin.maintenance


def exposure(state: AccountState, layout: Layout, prices: Sequence[int], cfg: MarginConfig,
             markets: Mapping[int, MarketFunding] | None = None):
    """Equity (accrued funding included), net delta and gross per asset, in the vault's order of operations. A price
    of 0 means "no valid price" (``read_prices``): collateral of that asset counts at 0, a position on it raises
    ``PriceUnavailable``. ``markets``: each market's funding state advanced to the evaluation's time
    (``funding.advance``); None when funding is off (no position accrues anything). Also returns the concentration
    charge of the positions."""
    equity = state.settlement
    delta = [0] * MAX_ASSETS
    gross = [0] * MAX_ASSETS
    concentration = 0
    for market in sorted(state.positions):
        size, open_notional = state.positions[market]
        if size == 0:
            continue
        asset = layout.market_asset[market]
        if prices[asset] == 0:
            raise PriceUnavailable(f"market {market}: asset {asset} has no valid price")
        value = position_value_down(size, prices[asset])
        equity += value - open_notional
        if markets is not None and market in markets:
            equity += accrued(size, state.funding.get(market, 0), markets[market])
        delta[asset] += value
        gross[asset] += abs(value)
        concentration += concentration_charge(abs(value), cfg.depth(market))
    for cid in sorted(state.collateral):
        amount = state.collateral[cid]
        if amount == 0:
            continue
        asset = layout.collateral_asset[cid]
        value = token_value_down(amount, prices[asset], layout.collateral_decimals[cid])
        equity += haircut_down(value, cfg.haircut(cid))
        delta[asset] += value
        gross[asset] += value
    return equity, delta, gross, concentration


def settled(state: AccountState, markets: Mapping[int, MarketFunding] | None) -> AccountState:
    """The account as the vault would store it if every position were settled now: its accrued funding moved into
    the settlement balance and each position storing its side's current index. Equity and margin are unchanged, so
    a liquidation can be planned (and the analytics run) on balances alone."""
    if not markets:
        return state
    owed = sum(accrued(size, state.funding.get(m, 0), markets[m]) for m, (size, _) in state.positions.items()
               if size and m in markets)
    funding = {m: markets[m].index(size) if m in markets else state.funding.get(m, 0)
               for m, (size, _) in state.positions.items() if size}
    return AccountState(state.settlement + owed, dict(state.positions), dict(state.collateral), funding,
                        dict(state.options))


def account_margin(state: AccountState, layout: Layout, prices: Sequence[int], cfg: MarginConfig,
                   markets: Mapping[int, MarketFunding] | None = None,
                   options: OptionValuation | None = None) -> AccountMargin:
    """The vault's margin of an account. ``options``: what its option positions are valued with (the series,
    volatilities, OPTION word and time: ``offchain.margin.options.OptionMarket``), needed when it holds any."""
    equity, delta, gross, concentration = exposure(state, layout, prices, cfg, markets)
    risk = None
    if any(state.options.values()):
        if options is None:
            raise ValueError("the account holds options: pass the OptionMarket (series, vols, word, time)")
        risk = options.account_risk(state.options, prices, delta, cfg)
        equity += risk.value
    return AccountMargin(equity, tuple(delta), tuple(gross), breakdown(delta, gross, cfg, concentration, risk), risk)


def standard_requirement(state: AccountState, layout: Layout, prices: Sequence[int], rates: Sequence[int]) -> int:
    """Per-position requirement sum(|notional| * rate), no offsets: the comparison for capital efficiency."""
    total = 0
    for market, (size, _) in sorted(state.positions.items()):
        if size:
            value = position_value_down(size, prices[layout.market_asset[market]])
            total += mul_div_up(abs(value), rates[market], BPS)
    return total


INDEX_ONE = 10**18  # the vault's settlement index at deployment (USD 1e18 per 1e18 shares)
FULL_TAKE_BPS = 9_900  # CrossMarginVault.FULL_TAKE_BPS


def usd_of_shares(shares: int, index: int) -> int:
    """USD value of a stored settlement balance: shares when positive (floor(shares * index / 1e18)), USD when not."""
    return shares * index // INDEX_ONE if shares > 0 else shares


def rounding_shortfall(equity: int, settlement: int, index: int) -> int:
    """``CrossMarginVault._roundingShortfall``: what the fund adds to a liquidated account that had E >= 0 so that
    ``equity`` (in memory, with the USD balance ``settlement``) stays >= 0 once the balance is stored as shares."""
    kept = usd_of_shares(settlement * INDEX_ONE // index, index) if settlement > 0 else settlement
    stored = equity - (settlement - kept)
    if stored >= 0:
        return 0
    return -stored + (1 if index != INDEX_ONE else 0)


def liquidation_penalty(taken: int, equity_after: int, mm_before: int, mm_after: int, liq_word: int) -> int:
    """``CrossMarginVault.liquidationPenalty``: ceil(rate * taken), at most max(E', 0) and (MM - MM') / 2."""
    penalty = mul_div_up(taken, u16(liq_word, 1), BPS)
    freed = (mm_before - mm_after) // 2 if mm_after < mm_before else 0
    return min(penalty, freed, max(equity_after, 0))


def keeper_reward(penalty: int, taken: int, allowed: int, liq_word: int) -> int:
    """``CrossMarginVault.keeperReward``: share * penalty, raised to min(min reward, penalty) for a full take."""
    reward = penalty * u16(liq_word, 2) // BPS
    if taken * BPS >= allowed * FULL_TAKE_BPS:
        reward = max(reward, min((liq_word >> 64) & (2**96 - 1), penalty))
    return reward


def max_take(equity: int, maintenance: int, initial: int, gross: int, liq_word: int) -> int:
    """The most a liquidation may take (USD 1e18): ``CrossMarginVault.maxTake``."""
    close_factor, penalty, deep = u16(liq_word, 0), u16(liq_word, 1), u16(liq_word, 3)
    dust = liq_word >> 160
    if equity * BPS < maintenance * deep:
        return gross
    allowed = gross * close_factor // BPS
    den = initial * BPS - penalty * gross
    if den > 0:
        allowed = min(allowed, mul_div_up(gross * BPS, initial - equity, den))
    return gross if gross - allowed < dust else allowed
