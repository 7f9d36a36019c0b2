"""Stress testing: a library of named joint moves, hypothetical stress of every account with the exact margin
mirror, and reverse stress (the smallest move that makes an account, or the whole book, insolvent).

Episode vectors are peak-to-trough moves of each asset over the episode, read from public daily and intraday
charts (exchange OHLC as shown by CoinGecko/CoinMarketCap and contemporary market reports); they are rounded
approximations, labelled as such, and the exact figures differ between venues. SOL traded on no liquid venue in
March 2020: it is given ETH's move there. Shocks are fractions of price per asset name; ``settlement`` is the move of
the settlement token's USD value (a USDC de-peg), applied to every settlement balance.

**Volatility.** Every scenario carries a volatility multiplier per asset (``vol``), applied to the options' volatility
when books hold options (revalued in full: Black-Scholes at the shocked price and volatility, the smile at the new
spot): by default :func:`offchain.risk.revalue.spike_rule` of the asset's own move (a fall of 50% doubles it and a
quarter, a rally of 50% raises it by a quarter; judgement, no implied-volatility history in the data), or explicit
multipliers (``vol_spike``: x2 with no price move; ``vol_crush``: x0.6, an implied volatility crush after an event).
One multiplier per asset for every maturity and strike. A book without options does not see it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..margin.exact import BPS, WAD, AccountState, Layout, MarginConfig, account_margin
from ..margin.vector import MarginArrays, OptionArrays, Portfolio, margin, option_terms
from .revalue import OptionHoldings, spike_rule


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    shocks: dict[str, float]  # asset name -> relative price move (-0.5 = -50%)
    settlement: float = 0.0  # relative move of the settlement token's USD value
    source: str = ""
    kind: str = "episode"  # episode | decoupling | collapse | uniform | volatility
    vol: dict[str, float] | None = None  # asset name -> volatility multiplier (None: spike_rule of the asset's move)

    def vector(self, assets: Sequence[str]) -> np.ndarray:
        return np.array([self.shocks.get(a, 0.0) for a in assets])

    def vol_vector(self, assets: Sequence[str]) -> np.ndarray:
        """The options' volatility multiplier per asset."""
        if self.vol is None:
            return np.array([spike_rule(x) for x in self.vector(assets)])
        return np.array([self.vol.get(a, 1.0) for a in assets])


LIBRARY: tuple[Scenario, ...] = (
    Scenario("mar2020", "12-13 March 2020 ('Black Thursday')",
             {"BTC": -0.52, "ETH": -0.54, "SOL": -0.54, "LINK": -0.50},
             source="BTC about $7,950 -> $3,850 and ETH about $195 -> $90 intraday in ~30 hours (exchange daily OHLC); "
                    "SOL had no liquid market (ETH's move used)"),
    Scenario("may2021", "19 May 2021 (China mining/leverage flush)",
             {"BTC": -0.30, "ETH": -0.42, "SOL": -0.45, "LINK": -0.48},
             source="BTC about $43k -> $30k and ETH about $3,400 -> $1,950 intraday on 19 May 2021; alts 45-50%"),
    Scenario("jun2022", "12-18 June 2022 (Celsius freeze, 3AC)",
             {"BTC": -0.37, "ETH": -0.41, "SOL": -0.40, "LINK": -0.35},
             source="BTC about $28k -> $17.6k and ETH about $1,500 -> $880, 12 to 18 June 2022"),
    Scenario("usdc_depeg_mar2023", "10-11 March 2023 (SVB failure, USDC de-peg)",
             {"BTC": -0.10, "ETH": -0.10, "SOL": -0.16, "LINK": -0.12}, settlement=-0.12,
             source="USDC traded as low as about $0.877 on 11 March 2023; BTC about $22k -> $19.6k from 8 to 10 March"),
    Scenario("oct2025", "10 October 2025 (tariff-news liquidation cascade)",
             {"BTC": -0.14, "ETH": -0.21, "SOL": -0.30, "LINK": -0.40},
             source="BTC about $122k -> $105k within an hour; ETH -21%, SOL -30%, LINK -40% at the lows of major venues"),
    Scenario("btc_up_alts_down", "Decoupling: BTC up, alts down", {"BTC": 0.10, "ETH": -0.20, "SOL": -0.30,
             "LINK": -0.30}, kind="decoupling", source="hypothetical (BTC-dominance rotation)"),
    Scenario("btc_down_alts_up", "Decoupling: BTC down, alts up", {"BTC": -0.15, "ETH": 0.10, "SOL": 0.15,
             "LINK": 0.15}, kind="decoupling", source="hypothetical"),
    Scenario("eth_decouple", "Decoupling: ETH alone -25%", {"ETH": -0.25}, kind="decoupling", source="hypothetical"),
    Scenario("btc_collapse", "Single asset: BTC -40%", {"BTC": -0.40}, kind="collapse", source="hypothetical"),
    Scenario("eth_collapse", "Single asset: ETH -50%", {"ETH": -0.50}, kind="collapse", source="hypothetical"),
    Scenario("sol_collapse", "Single asset: SOL -60%", {"SOL": -0.60}, kind="collapse",
             source="hypothetical (SOL fell ~60% in the week of the FTX failure, 6-12 Nov 2022)"),
    Scenario("link_collapse", "Single asset: LINK -60%", {"LINK": -0.60}, kind="collapse", source="hypothetical"),
    Scenario("crash_30", "Uniform crash -30%", {"BTC": -0.30, "ETH": -0.30, "SOL": -0.30, "LINK": -0.30},
             kind="uniform"),
    Scenario("crash_50", "Uniform crash -50%", {"BTC": -0.50, "ETH": -0.50, "SOL": -0.50, "LINK": -0.50},
             kind="uniform"),
    Scenario("rally_50", "Uniform rally +50%", {"BTC": 0.50, "ETH": 0.50, "SOL": 0.50, "LINK": 0.50},
             kind="uniform"),
    Scenario("vol_spike", "Volatility x2, prices unchanged", {}, kind="volatility",
             vol={"BTC": 2.0, "ETH": 2.0, "SOL": 2.0, "LINK": 2.0},
             source="hypothetical (implied volatility doubling ahead of a move)"),
    Scenario("vol_crush", "Volatility x0.6, prices unchanged", {}, kind="volatility",
             vol={"BTC": 0.6, "ETH": 0.6, "SOL": 0.6, "LINK": 0.6},
             source="hypothetical (implied volatility collapsing after an event)"),
)


def scenario(name: str) -> Scenario:
    for s in LIBRARY:
        if s.name == name:
            return s
    raise ValueError(f"unknown stress scenario {name!r}; choose one of: {', '.join(s.name for s in LIBRARY)}")


def shocked_prices(prices: Sequence[int], move: Sequence[float]) -> list[int]:
    """Integer prices after relative moves (a move of -1 or below leaves a price of 1 wei)."""
    out = []
    for p, x in zip(prices, list(move) + [0.0] * (len(prices) - len(move))):
        num = int(round((1.0 + x) * 10**12))
        out.append(max(1, p * num // 10**12))
    return out


def shocked_state(state: AccountState, settlement_move: float) -> AccountState:
    if settlement_move == 0.0:
        return state
    num = int(round((1.0 + settlement_move) * 10**12))
    return AccountState(state.settlement * num // 10**12, dict(state.positions), dict(state.collateral))


@dataclass
class StressRow:
    name: str
    title: str
    accounts: int
    liquidatable: int
    insolvent: int
    shortfall: float  # USD: sum of negative equities (the bad debt if nothing were liquidated before the move)
    equity_change: float  # USD, sum over accounts
    worst_account: int | None
    worst_equity: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def hypothetical(states: Sequence[AccountState], layout: Layout, prices: Sequence[int], cfg: MarginConfig,
                 assets: Sequence[str], scenarios: Sequence[Scenario] = LIBRARY) -> list[StressRow]:
    """Every scenario applied instantly to every account, evaluated with the exact mirror."""
    base = [account_margin(s, layout, prices, cfg).equity for s in states]
    rows = []
    for sc in scenarios:
        p = shocked_prices(prices, sc.vector(assets))
        liq = ins = 0
        short = change = 0
        worst, worst_e = None, None
        for i, s in enumerate(states):
            m = account_margin(shocked_state(s, sc.settlement), layout, p, cfg)
            change += m.equity - base[i]
            if m.liquidatable:
                liq += 1
            if m.equity < 0:
                ins += 1
                short -= m.equity
            if worst_e is None or m.equity < worst_e:
                worst, worst_e = i, m.equity
        rows.append(StressRow(sc.name, sc.title, len(states), liq, ins, short / WAD, change / WAD, worst,
                              (worst_e or 0) / WAD))
    return rows


# ---------------------------------------------------------------------------------------------- reverse stress
def _equity_at(state: AccountState, layout: Layout, prices: Sequence[int], cfg: MarginConfig, u: np.ndarray,
               t: float) -> int:
    return account_margin(state, layout, shocked_prices(prices, t * u), cfg).equity


@dataclass(frozen=True)
class ReverseResult:
    direction: tuple[float, ...]  # unit move per asset (the move is scale * direction)
    scale: float  # smallest scale found (inf when no move along the direction makes equity negative)
    move: tuple[float, ...]
    sigmas: float | None = None  # Mahalanobis distance of the move, when a covariance was given


def reverse_account(state: AccountState, layout: Layout, prices: Sequence[int], cfg: MarginConfig,
                    direction: Sequence[float], max_scale: float = 1.0, tol: float = 1e-10) -> ReverseResult:
    """The smallest ``t`` in (0, max_scale] with equity < 0 after the move ``t * direction`` (exact mirror,
    bisection; equity is linear in prices up to rounding, so the first crossing is found). ``max_scale`` 1 with a unit
    crash direction means 'prices down to zero at most'."""
    u = np.asarray(direction, dtype=float)
    if _equity_at(state, layout, prices, cfg, u, 0.0) < 0:
        return ReverseResult(tuple(u), 0.0, tuple(0.0 * u))
    if _equity_at(state, layout, prices, cfg, u, max_scale) >= 0:
        return ReverseResult(tuple(u), float("inf"), tuple(np.full_like(u, np.nan)))
    lo, hi = 0.0, max_scale
    while hi - lo > tol * max(hi, 1e-12):
        mid = 0.5 * (lo + hi)
        if _equity_at(state, layout, prices, cfg, u, mid) < 0:
            hi = mid
        else:
            lo = mid
    return ReverseResult(tuple(u), hi, tuple(hi * u))


def most_likely_direction(sensitivity: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, float]:
    """The move that lowers equity by one dollar with the least Mahalanobis norm is ``-S c / (c' S c)``: returns that
    direction normalised to a unit max-abs move and ``1 / sqrt(c' S c)`` (sigmas per dollar of equity)."""
    c = np.asarray(sensitivity, dtype=float)
    sc = np.asarray(cov, dtype=float) @ c
    var = float(c @ sc)
    if var <= 0:
        return np.zeros_like(c), float("inf")
    d = -sc / np.abs(sc).max()
    return d, 1.0 / np.sqrt(var)


def reverse_account_likely(state: AccountState, layout: Layout, prices: Sequence[int], cfg: MarginConfig,
                           sensitivity: np.ndarray, cov: np.ndarray) -> ReverseResult:
    """Reverse stress along the most likely direction under ``cov`` (daily log-return covariance), with the
    distance of the found move in daily sigmas."""
    u, _ = most_likely_direction(sensitivity, cov)
    if not u.any():
        return ReverseResult(tuple(u), float("inf"), tuple(u), float("inf"))
    res = reverse_account(state, layout, prices, cfg, u)
    x = np.asarray(res.move)
    sig = float(np.sqrt(x @ np.linalg.pinv(cov) @ x)) if np.isfinite(res.scale) else float("inf")
    return ReverseResult(res.direction, res.scale, res.move, sig)


def book_shortfall(portfolio: Portfolio, arr: MarginArrays, prices: np.ndarray, moves: np.ndarray) -> np.ndarray:
    """Sum of negative equities after each move (..., K) (float, linear in the move)."""
    e, _, _ = portfolio.exposure(np.asarray(prices) * (1.0 + np.asarray(moves)), arr.haircut)
    return np.clip(-e, 0.0, None).sum(-1)


def reverse_book(portfolio: Portfolio, arr: MarginArrays, prices: np.ndarray, direction: Sequence[float],
                 fund: float, max_scale: float = 1.0, tol: float = 1e-9) -> float:
    """The smallest scale ``t`` with book shortfall > ``fund`` after the instant move ``t * direction`` (inf if
    none up to ``max_scale``). The shortfall is convex in ``t`` and zero at 0, hence non-decreasing: bisection."""
    u = np.asarray(direction, dtype=float)
    if book_shortfall(portfolio, arr, prices, max_scale * u) <= fund:
        return float("inf")
    lo, hi = 0.0, max_scale
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if book_shortfall(portfolio, arr, prices, mid * u) > fund:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass
class ReverseSummary:
    directions: dict[str, float] = field(default_factory=dict)  # direction name -> smallest scale (book)
    first_account: dict[str, float] = field(default_factory=dict)  # direction name -> smallest scale (any account)


def reverse_summary(portfolio: Portfolio, arr: MarginArrays, prices: np.ndarray, assets: Sequence[str],
                    fund: float, scenarios: Sequence[Scenario] = LIBRARY) -> ReverseSummary:
    """For each library direction (scaled so its largest shock is -100%): the smallest scale of it that makes the
    whole book insolvent (shortfall > fund) and the smallest that makes any one account insolvent."""
    out = ReverseSummary()
    for sc in scenarios:
        v = sc.vector(assets)
        if not (v < 0).any():
            continue
        u = v / np.abs(v).max()
        out.directions[sc.name] = reverse_book(portfolio, arr, prices, u, fund)
        out.first_account[sc.name] = reverse_book(portfolio, arr, prices, u, 0.0)
    return out


def to_bps(move: Sequence[float]) -> list[int]:
    return [int(round(x * BPS)) for x in move]


# ---------------------------------------------------------------------------------------------- with options (float)
def float_hypothetical(portfolio: Portfolio, arr: MarginArrays, prices: np.ndarray, assets: Sequence[str],
                       options: OptionHoldings | None = None,
                       scenarios: Sequence[Scenario] = LIBRARY) -> list[StressRow]:
    """:func:`hypothetical` in floats (:func:`offchain.margin.vector.margin`) for books that may hold options: each
    scenario's prices, its volatility multipliers on the options (revalued in full) and its settlement move, applied
    instantly; liquidatable is E < MM at the shocked prices and volatilities."""
    p = np.asarray(prices, float)
    kw = {} if options is None else {"options": options.book, "oarr": options.oarr, "sigma": options.sigma}
    base = margin(portfolio, p, arr, **kw).equity
    rows = []
    for sc in scenarios:
        pf = portfolio.copy()
        pf.settlement = pf.settlement * (1.0 + sc.settlement)
        if options is not None:
            kw["sigma"] = options.sigma * sc.vol_vector(assets)
        m = margin(pf, p * (1.0 + sc.vector(assets)), arr, **kw)
        worst = int(np.argmin(m.equity))
        rows.append(StressRow(sc.name, sc.title, len(m.equity), int((m.equity < m.maintenance).sum()),
                              int((m.equity < 0).sum()), float(np.clip(-m.equity, 0.0, None).sum()),
                              float((m.equity - base).sum()), worst, float(m.equity[worst])))
    return rows


def option_book_stress(spec, params=None, prices_usd: Sequence[float] | None = None,
                       vols: Sequence[float] | None = None, assets: Sequence[str] = ("BTC", "ETH", "SOL", "LINK"),
                       scenarios: Sequence[Scenario] = LIBRARY) -> list[dict]:
    """The option books of :mod:`offchain.risk.option_backtest` (1 unit of the underlying per leg, on BTC, on ETH and
    on both) at ``prices_usd`` and volatilities ``vols`` (default the local start prices and START_VOLS) under every
    scenario, revalued in full, against the protocol's own margin of the book: its MM (``spec`` with the OPTION word
    ``params``) and ``K_S``, the worst loss over the spec's published stress vectors (each at the grid's worst
    volatility point, docs/options.md). Figures in % of the underlying notional (of both legs for BTC+ETH); per
    scenario the loss and the part of it due to the scenario's volatility shock (the loss minus the loss at
    unchanged volatility)."""
    from ..margin.defaults import OPTIONS_DEFAULT, START_PRICES_USD
    from ..population import LOCAL_LAYOUT, option_book_units, option_listing
    from .option_backtest import BOOKS, UNDERLYINGS
    from .revalue import START_VOLS

    params = params or spec.options or OPTIONS_DEFAULT
    p = np.asarray(START_PRICES_USD if prices_usd is None else prices_usd, float)
    vol = np.asarray(START_VOLS if vols is None else vols, float)
    k, lay = len(assets), LOCAL_LAYOUT
    arr = MarginArrays.from_config(spec.margin_config(), k, len(lay.collateral_asset))
    oarr = OptionArrays.from_params(params, k)
    listing = option_listing()
    ma, ca = np.asarray(lay.market_asset), np.asarray(lay.collateral_asset)
    rows = []
    for und, und_assets in UNDERLYINGS.items():
        for bt in BOOKS:
            perp, coll, sizes = option_book_units(bt, und_assets, listing, p, vol, params, k)
            size, c = perp[ma][None], coll[ca][None]
            pf = Portfolio(np.zeros(1), size, size * p[ma], c, ma, ca, k)
            book = listing.book(sizes[None], p)
            m = margin(pf, p, arr, book, oarr, vol)
            terms = option_terms(book, p, vol, arr, oarr)
            k_s = (float((-np.einsum("...k,sk->...s", m.delta, arr.stress) + terms.o).max())
                   if len(arr.stress) else 0.0)
            notional = float(p[list(und_assets)].sum())
            mm = 100 * float(m.maintenance[0]) / notional
            ks = 100 * max(k_s, 0.0) / notional
            row = {"book": bt.name, "kind": bt.kind, "variant": bt.variant, "underlying": und,
                   "mm_pct": round(mm, 3), "im_pct": round(100 * float(m.initial[0]) / notional, 3),
                   "protocol_stress_pct": round(ks, 3), "scenarios": {}}
            for sc in scenarios:
                pf_s = pf.copy()
                pf_s.settlement = pf_s.settlement * (1.0 + sc.settlement)
                shocked = p * (1.0 + sc.vector(assets))
                after = margin(pf_s, shocked, arr, book, oarr, vol * sc.vol_vector(assets)).equity[0]
                flat = margin(pf_s, shocked, arr, book, oarr, vol).equity[0]
                row["scenarios"][sc.name] = {"loss_pct": round(100 * float(m.equity[0] - after) / notional, 3),
                                             "vol_part_pct": round(100 * float(flat - after) / notional, 3)}
            worst = max(row["scenarios"], key=lambda n: row["scenarios"][n]["loss_pct"])
            wl = row["scenarios"][worst]["loss_pct"]
            row.update({"worst_scenario": worst, "worst_loss_pct": wl,
                        "worst_loss_over_mm": round(wl / mm, 3) if mm > 0 else None,
                        "worst_loss_over_protocol_stress": round(wl / ks, 3) if ks > 0 else None})
            rows.append(row)
    return rows
