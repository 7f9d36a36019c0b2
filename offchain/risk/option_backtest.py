"""Options in the portfolio margin on real daily history: capital efficiency against the standard (strategy-based)
requirement, one-day coverage of rolling option books, and the calibration of the OPTION word's margin figures.

**Books** (:data:`BOOKS`), each on BTC, on ETH, and on BTC and ETH together in one account (the same book on both):
perp-hedged short calls, covered calls (the token as collateral and a short call), protective puts (a long perpetual,
or the token as collateral, and a long put), short straddles (strangles when out of the money) hedged by a
perpetual, and calendar spreads (short the 7-day call, long the 30-day call at the same strike). Maturities 7 and 30
days; strikes at the money and 10% out of the money (calls at 1.1 S, puts at 0.9 S). Every option leg is 1 unit of
the underlying (the token collateral and the protective perpetual as well); a delta hedge is a perpetual of minus the
options' delta at the day's mark. The book is **re-struck every day**: each day's book is opened at that day's
close and held to the next close.

**Units**: each day's price is 1 (the option price, the margin and the loss are homogeneous of degree one in the
price level), so every figure is a fraction of one unit's notional; a two-underlying book holds equal notionals of
BTC and ETH.

**Volatility** (no implied-volatility history in the data): the proxy on a day is ``IV_FACTOR`` (1.2, an implied over
realised premium) times the annualised EWMA volatility (lambda 0.94, ``sqrt(365)``) of the returns before that day;
the next day's volatility is the proxy after that day's return (a large move raises it at once, as implied
volatility does), and the book is revalued at it. The smile is the OPTION word's ``skew``.

**Coverage**: each day, the book's MM (:func:`offchain.margin.vector.requirement` with the option terms, the float
form of docs/options.md) at that day's price and proxy against the loss of its equity over the next day, revalued in
full: the options at the next close's price and volatility with one day less to expiry, the perpetual's move, the
collateral's move net of its haircut. An exception is a loss above MM; a row (book, underlying, exchange) passes when
at most 1% of its days are exceptions over the whole history (the first ``WARMUP`` days of each history, which seed
the EWMA, are left out). A book's saving is published only when it passes (``None`` otherwise).

**Standard requirement** (:func:`standard_option`): the per-position rule of Deribit's standard (non-portfolio)
margin for options, in the linear (USD) form, with no offsets; perpetuals at their market's standard rate as in
:mod:`offchain.risk.efficiency`, token collateral at nothing.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..margin.defaults import BTC, DEFAULT_SPEC, ETH, OPTIONS_DEFAULT
from ..margin.exact import BPS
from ..margin.params import OptionParams, RiskSpec
from ..margin.vector import (MarginArrays, OptionArrays, OptionBook, OptionTerms, asset_grid, requirement, scan_parts,
                             series_losses, stress_points, stress_worst)
from .crypto_history import complete_rows
from .data import History
from .ewma import ewma_variance

IV_FACTOR = 1.2  # implied over realised volatility
LAM = 0.94
YEAR_DAYS = 365  # crypto trades every day: sigma_annual = sigma_daily sqrt(365), T = days / 365
WARMUP = 30  # days that seed the EWMA (left out of every row)
COVERAGE = 0.01
N_ASSETS = 4
UNDERLYINGS = {"BTC": (BTC,), "ETH": (ETH,), "BTC+ETH": (BTC, ETH)}
COLUMN = {BTC: 0, ETH: 1}  # history column of each asset

# The series of one underlying, the same every day in units of the day's price: (is_call, strike / spot, days).
SERIES = tuple((call, m, d) for d in (7, 30) for call, m in ((True, 1.0), (True, 1.1), (False, 1.0), (False, 0.9)))


def series_index(is_call: bool, moneyness: float, days: int) -> int:
    return SERIES.index((is_call, moneyness, days))


# ---------------------------------------------------------------------------------------------- the standard rule
def standard_option(is_call: np.ndarray, spot: np.ndarray, strike: np.ndarray, mark: np.ndarray, size: np.ndarray,
                    initial: bool = False) -> np.ndarray:
    """The standard requirement of option positions (USD, per position, no offsets): Deribit's standard margin for
    options ("Margin requirements - options", Deribit support knowledge base; the same rule as Aevo's "Standard
    Margin"), stated there per coin of the underlying and here in USD (times the spot):

    - long call or put: 0 (the premium is paid in full);
    - short call, maintenance: ``0.075 S + mark``; initial: ``max(0.15 - OTM / S, 0.10) S + mark``;
    - short put, maintenance: ``max(0.075 S, 0.075 mark) + mark``; initial: ``max(max(0.15 - OTM / S, 0.10) S +
      mark, maintenance)``;

    with ``OTM = max(K - S, 0)`` for a call, ``max(S - K, 0)`` for a put, each times ``|size|``. The
    ``max(0.15 - OTM / S, 0.10)`` rule is the *initial* margin there; the maintenance rule is the one compared with
    the portfolio MM (``initial=True`` gives the initial rule, compared with IM)."""
    spot, strike, mark = (np.asarray(v, float) for v in (spot, strike, mark))
    otm = np.where(is_call, np.maximum(strike - spot, 0.0), np.maximum(spot - strike, 0.0))
    mm = np.where(is_call, 0.075 * spot, np.maximum(0.075 * spot, 0.075 * mark)) + mark
    rule = mm
    if initial:
        im = np.maximum(0.15 - otm / spot, 0.10) * spot + mark
        rule = np.where(is_call, im, np.maximum(im, mm))
    return np.maximum(-np.asarray(size, float), 0.0) * rule


# ---------------------------------------------------------------------------------------------- books
@dataclass(frozen=True)
class BookType:
    """A book of one underlying: option legs (series index, size in units), a perpetual, token collateral, and
    whether a perpetual of minus the options' delta is added each day."""

    kind: str
    variant: str  # maturity and strike, e.g. "30d_atm"
    legs: tuple[tuple[int, float], ...]
    perp: float = 0.0
    collateral: float = 0.0
    delta_hedge: bool = False

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.variant}"


def _books() -> tuple[BookType, ...]:
    out = []
    for d in (7, 30):
        for m, (kc, kp) in (("atm", (1.0, 1.0)), ("otm10", (1.1, 0.9))):
            v = f"{d}d_{m}"
            call, put = series_index(True, kc, d), series_index(False, kp, d)
            out += [BookType("short_call_hedged", v, ((call, -1.0),), delta_hedge=True),
                    BookType("covered_call", v, ((call, -1.0),), collateral=1.0),
                    BookType("protective_put_perp", v, ((put, 1.0),), perp=1.0),
                    BookType("protective_put_collateral", v, ((put, 1.0),), collateral=1.0),
                    BookType("short_straddle_hedged", v, ((call, -1.0), (put, -1.0)), delta_hedge=True)]
    for m, k in (("atm", 1.0), ("otm10", 1.1)):
        out.append(BookType("calendar_spread", f"7d_30d_{m}", ((series_index(True, k, 7), -1.0),
                                                                (series_index(True, k, 30), 1.0))))
    return tuple(out)


BOOKS = _books()
KINDS = tuple(dict.fromkeys(b.kind for b in BOOKS))


def book_sizes(books: Sequence[BookType] = BOOKS) -> np.ndarray:
    """(B, len(SERIES)) option sizes of each book."""
    out = np.zeros((len(books), len(SERIES)))
    for i, b in enumerate(books):
        for s, q in b.legs:
            out[i, s] += q
    return out


# ---------------------------------------------------------------------------------------------- history
@dataclass(frozen=True)
class Day:
    """One asset's days of a history: the day's return (open to the next close), the proxy volatility before and
    after it, as annualised fractions."""

    days: np.ndarray  # indices into the history's rows
    ret: np.ndarray  # log return over the day
    sigma: np.ndarray  # proxy at the open
    sigma_next: np.ndarray  # proxy after the day's return
    dates: tuple[str, ...]


def vol_proxy(returns: np.ndarray, factor: float = IV_FACTOR, lam: float = LAM) -> np.ndarray:
    """(T + 1,) the implied-volatility proxy: ``factor`` x annualised EWMA volatility; row t from returns before
    day t (a missing return counts as 0)."""
    var = ewma_variance(np.nan_to_num(np.asarray(returns, float), nan=0.0), lam)
    return factor * np.sqrt(var * YEAR_DAYS)


def asset_days(h: History, column: int, factor: float = IV_FACTOR, warmup: int = WARMUP,
               columns: Sequence[int] | None = None) -> Day:
    """The days of ``h`` on which ``columns`` (default: ``column``) all have a return, after the warm-up."""
    sig = vol_proxy(h.returns[:, column], factor)
    mask = complete_rows(h, columns or (column,))
    mask[:warmup] = False
    idx = np.flatnonzero(mask)
    return Day(idx, h.returns[idx, column], sig[idx], sig[idx + 1], tuple(h.dates[i] for i in idx))


# ---------------------------------------------------------------------------------------------- candidates
@dataclass(frozen=True)
class Candidate:
    vol_up_bps: int
    vol_down_bps: int
    steps: int
    short_min_bps: int
    skew_bps: int

    def params(self, base: OptionParams = OPTIONS_DEFAULT) -> OptionParams:
        return base.model_copy(update={"vol_up_bps": self.vol_up_bps, "vol_down_bps": self.vol_down_bps,
                                       "steps": self.steps, "short_min_bps": self.short_min_bps,
                                       "skew_bps": {a: self.skew_bps for a in base.skew_bps}})

    @classmethod
    def of(cls, p: OptionParams, asset: int = BTC) -> "Candidate":
        return cls(p.vol_up_bps, p.vol_down_bps, p.steps, p.short_min_bps, p.skew_bps.get(asset, 0))


@dataclass(frozen=True)
class Grid:
    """The candidate sets of :func:`calibrate` (the least conservative one covering every book is chosen).

    The volatility shocks' lower ends are judgement, only partly measured: the proxy's one-day rise is at most
    35-40% on 99% of days (BTC; 29-30% ETH) and Deribit's portfolio margin shocks a 30-day option's implied
    volatility by about 40%, hence ``vol_up`` from 40% (:data:`BELOW_GRID`: with 20% the books need a 1% short
    minimum, with none some fail even at 1%); an EWMA proxy cannot fall more than 3% in a day (sqrt(0.94)), so the
    data cannot measure ``vol_down`` at all, hence from 20% (an implied volatility crush after an event)."""

    vol_up_bps: tuple[int, ...] = (4000, 5000, 7500)
    vol_down_bps: tuple[int, ...] = (2000, 3000, 4500)
    steps: tuple[int, ...] = (1, 2, 3, 4)
    short_min_bps: tuple[int, ...] = (50, 100, 200)
    skew_bps: int = 5000

    def candidates(self) -> list[Candidate]:
        return [Candidate(u, d, n, m, self.skew_bps) for u, d, n, m in
                itertools.product(self.vol_up_bps, self.vol_down_bps, self.steps, self.short_min_bps)]

    def spot_fractions(self) -> np.ndarray:
        """Every x / n of the grids (fractions of RW), sorted."""
        return np.array(sorted({x / n for n in self.steps for x in range(-n, n + 1)}))

    def vol_mults(self) -> np.ndarray:
        return np.array(sorted({1.0} | {1 - d / BPS for d in self.vol_down_bps} | {1 + u / BPS for u in
                                                                                    self.vol_up_bps}))


# Below the calibration grid (``below_grid`` in the section): smaller volatility shocks and short minimums at 2
# steps, what the history itself says about the grid's lower ends.
BELOW_GRID = Grid(vol_up_bps=(0, 2000), vol_down_bps=(0, 2000), steps=(2,), short_min_bps=(0, 25, 50, 100))


# ---------------------------------------------------------------------------------------------- one exchange
@dataclass
class AssetScan:
    """One asset's rolling books on one history, evaluated once and reused by every candidate set: the books'
    option losses over the union of the candidates' grids and stress points, their realised losses, linear
    positions and standard requirements, per day."""

    asset: int
    day: Day
    grid: np.ndarray  # (D, B, U, W) options' loss at spot moves fractions[u] x RW, volatility x mults[w]
    stress: np.ndarray  # (D, B, nS, W) options' loss at each stress vector's spot move, volatility x mults[w]
    fractions: np.ndarray  # (U,)
    mults: np.ndarray  # (W,)
    loss: np.ndarray  # (D, B) the book's realised loss over the day
    perp: np.ndarray  # (D, B) perpetual units
    collateral: np.ndarray  # (B,)
    short_units: np.ndarray  # (B,) sum of short option sizes
    std_mm: np.ndarray  # (D, B)
    std_im: np.ndarray  # (D, B)
    sizes: np.ndarray  # (B, S)


def scan_asset(h: History, asset: int, spec: RiskSpec, skew_bps: int, grid: Grid, books: Sequence[BookType] = BOOKS,
               columns: Sequence[int] | None = None, factor: float = IV_FACTOR) -> AssetScan:
    """The per-day evaluation of ``books`` on ``asset`` (history column ``COLUMN[asset]``) over the days on which
    ``columns`` all have a return. Each asset is scanned on its own: its options' grid and stress losses involve its
    series only (a one-asset listing, asset index 0 of the evaluation)."""
    day = asset_days(h, COLUMN[asset], factor, columns=columns)
    n = len(SERIES)
    sizes = book_sizes(books)
    call = np.array([c for c, _, _ in SERIES])
    listing = OptionBook(size=sizes, asset=np.zeros(n, dtype=int), is_call=call,
                         strike=np.array([m for _, m, _ in SERIES]), expiry=np.array([d for *_, d in SERIES]) / YEAR_DAYS)
    oarr = OptionArrays(np.array([skew_bps / BPS]), 0.0, 0.0, 1, 0.0)
    ones = np.ones((len(day.days), 1))
    sig = day.sigma[:, None]
    rw = spec.risk_weights[asset] / BPS
    fractions, mults = grid.spot_fractions(), grid.vol_mults()
    unit = series_losses(listing, ones, sig, np.broadcast_to(fractions * rw, (n, len(fractions))), mults, oarr)
    shocks = np.array([s.shocks.get(asset, 0) / BPS for s in spec.stress])
    unit_stress = series_losses(listing, ones, sig, np.broadcast_to(shocks, (n, len(shocks))), mults, oarr)
    grid_loss = asset_grid(listing, unit, 1)[:, :, 0]  # (D, B, U, W)
    stress_loss = listing.by_asset(unit_stress, 1, trailing=2)[:, :, 0]  # (D, B, nS, W)
    spot0, sig0 = listing.per_series(ones, sig)
    v0 = listing.unit_values(spot0, sig0, oarr)[:, 0]  # (D, S)
    move = np.exp(day.ret)[:, None]
    spot1, sig1 = listing.per_series(move, day.sigma_next[:, None])
    v1 = listing.unit_values(spot1, sig1, oarr, elapsed=1 / YEAR_DAYS)[:, 0]
    delta = listing.unit_deltas(spot0, sig0, oarr)[:, 0]
    option_loss = (v0 - v1) @ sizes.T  # (D, B)
    hedge = np.array([b.delta_hedge for b in books])
    perp = np.array([b.perp for b in books]) - np.where(hedge, delta @ sizes.T, 0.0)
    coll = np.array([b.collateral for b in books])
    haircut = spec.haircuts.get(asset, 0) / BPS  # collateral id j is the token of asset j
    gain = np.expm1(day.ret)[:, None] * (perp + coll * (1.0 - haircut))
    strike = listing.strike
    rate = spec.markets[asset].standard_mmr_bps / BPS
    std = {}
    for initial in (False, True):
        per_unit = standard_option(call, 1.0, strike, v0, -1.0, initial)  # (D, S) per short unit
        perp_rate = rate * (spec.alpha_bps / BPS if initial else 1.0)
        std[initial] = per_unit @ np.maximum(-sizes, 0.0).T + np.abs(perp) * perp_rate
    return AssetScan(asset, day, grid_loss, stress_loss, fractions, mults, option_loss - gain, perp, coll,
                     np.maximum(-sizes, 0.0).sum(-1), std[False], std[True], sizes)


def _pick(values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    idx = np.array([int(np.argmin(np.abs(values - w))) for w in wanted])
    if np.abs(values[idx] - wanted).max() > 1e-12:
        raise ValueError(f"{wanted} not among the scanned points {values}")
    return idx


def option_terms_of(scans: Sequence[AssetScan], c: Candidate, arr: MarginArrays) -> OptionTerms:
    """The option terms (over N_ASSETS assets) of the books holding every scan's book (one scan per asset, the same
    book index, aligned days) under candidate ``c``: per asset the options' loss over the candidate's grid (the
    requirement scans it with the asset's linear delta) and the stress losses under the volatility shock worse at
    each shock's grid point (an account's terms are sums over its assets); M over every short."""
    d, b = scans[0].loss.shape
    grid = np.zeros((d, b, N_ASSETS, 2 * c.steps + 1, 3))
    stress, m = np.zeros((d, b, N_ASSETS, len(arr.stress), 2)), np.zeros((d, b))
    x = np.arange(-c.steps, c.steps + 1) / c.steps
    for s in scans:
        ix = _pick(s.fractions, x)
        iw = _pick(s.mults, np.array([1 - c.vol_down_bps / BPS, 1.0, 1 + c.vol_up_bps / BPS]))
        grid[:, :, s.asset] = s.grid[:, :, ix][..., iw]
        stress[:, :, s.asset] = s.stress[..., iw[::2]]
        m = m + s.short_units * c.short_min_bps / BPS
    return OptionTerms(grid, stress_worst(grid, stress, stress_points(arr.stress, arr.rw, c.steps)), m)


def book_requirement(scans: Sequence[AssetScan], c: Candidate, arr: MarginArrays,
                     terms: OptionTerms | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(MM, IM), each (D, B), of the books holding every scan's book under candidate ``c`` (``terms``: the option
    terms when already computed)."""
    terms = terms or option_terms_of(scans, c, arr)
    d, b = terms.m.shape
    delta, gross = np.zeros((d, b, N_ASSETS)), np.zeros((d, b, N_ASSETS))
    for s in scans:
        delta[..., s.asset] = s.perp + s.collateral
        gross[..., s.asset] = np.abs(s.perp) + s.collateral
    return requirement(delta, gross, arr, None, terms)


@dataclass
class Evaluation:
    """Every (underlying, book) of one history under one candidate set: MM, IM, standard, loss per day."""

    dataset: str
    underlying: str
    mm: np.ndarray  # (D, B)
    im: np.ndarray
    std_mm: np.ndarray
    std_im: np.ndarray
    loss: np.ndarray
    dates: tuple[str, ...]
    notional: float  # units of notional per book (the number of underlyings)


@dataclass
class HistoryScan:
    """The scans of one history: per underlying, the scans of its assets over the same days."""

    dataset: str
    scans: dict[str, list[AssetScan]] = field(default_factory=dict)


def scan_history(name: str, h: History, spec: RiskSpec, skew_bps: int, grid: Grid,
                 factor: float = IV_FACTOR) -> HistoryScan:
    """BTC books on BTC's days, ETH books on ETH's, two-underlying books on the days both have a return."""
    out = HistoryScan(name)
    for und, assets in UNDERLYINGS.items():
        cols = tuple(COLUMN[a] for a in assets)
        out.scans[und] = [scan_asset(h, a, spec, skew_bps, grid, columns=cols, factor=factor) for a in assets]
    return out


def evaluate(hs: HistoryScan, c: Candidate, arr: MarginArrays,
             terms: dict[str, OptionTerms] | None = None) -> list[Evaluation]:
    """Every underlying's books of ``hs`` under ``c`` (``terms``: option terms per underlying when already
    computed)."""
    out = []
    for und, scans in hs.scans.items():
        mm, im = book_requirement(scans, c, arr, (terms or {}).get(und))
        out.append(Evaluation(hs.dataset, und, mm, im, sum(s.std_mm for s in scans), sum(s.std_im for s in scans),
                              sum(s.loss for s in scans), scans[0].day.dates, float(len(scans))))
    return out


def rows_of(evals: Sequence[Evaluation], books: Sequence[BookType] = BOOKS, coverage: float = COVERAGE) -> list[dict]:
    """One row per (dataset, underlying, book): days, exceptions, rate, the test and whether it passes, MM and the
    standard requirement as % of the notional (averages over the days), the savings (None when the row fails or
    the standard is 0), the worst day in multiples of MM."""
    rows = []
    for e in evals:
        for j, b in enumerate(books):
            mm, loss, smm, sim, im = e.mm[:, j], e.loss[:, j], e.std_mm[:, j], e.std_im[:, j], e.im[:, j]
            n, x = len(loss), int((loss > mm).sum())
            ok = x <= math.floor(coverage * n + 1e-9)
            worst = int(np.argmax(loss / mm))

            def saving(pm: np.ndarray, std: np.ndarray) -> float | None:
                return round(1.0 - float(pm.sum() / std.sum()), 4) if ok and std.sum() > 0 else None

            rows.append({"dataset": e.dataset, "underlying": e.underlying, "book": b.name, "kind": b.kind,
                         "variant": b.variant, "days": n, "exceptions": x, "exception_rate": round(x / n, 5),
                         "test_applied": "coverage", "passes": ok,
                         "mm_pct": round(100 * float(mm.mean()) / e.notional, 3),
                         "standard_mm_pct": round(100 * float(smm.mean()) / e.notional, 3),
                         "saving_mm": saving(mm, smm), "saving_im": saving(im, sim),
                         "worst_loss_over_mm": round(float(loss[worst] / mm[worst]), 3),
                         "worst_day": e.dates[worst]})
    return rows


def by_kind(rows: Sequence[dict]) -> list[dict]:
    """Per (kind, underlying): the worst exception rate over variants and exchanges, whether every row passes, and
    the savings (aggregate over the rows' averages; None unless every row of the kind passes)."""
    out = []
    for kind in KINDS:
        for und in UNDERLYINGS:
            rs = [r for r in rows if r["kind"] == kind and r["underlying"] == und]
            if not rs:
                continue
            ok = all(r["passes"] for r in rs)
            pm, smm = sum(r["mm_pct"] for r in rs), sum(r["standard_mm_pct"] for r in rs)
            out.append({"kind": kind, "underlying": und, "rows": len(rs),
                        "worst_exception_rate": max(r["exception_rate"] for r in rs), "passes": ok,
                        "mm_pct_avg": round(pm / len(rs), 3), "standard_mm_pct_avg": round(smm / len(rs), 3),
                        "saving_mm": round(1 - pm / smm, 4) if ok and smm > 0 else None,
                        "saving_im": (round(float(np.mean([r["saving_im"] for r in rs])), 4)
                                      if ok and all(r["saving_im"] is not None for r in rs) else None)})
    return out


def summary(rows: Sequence[dict]) -> dict:
    """The figures a candidate is ranked by: rows failing, the worst rate, the average MM (% of notional)."""
    return {"rows_failing": sum(not r["passes"] for r in rows),
            "worst_exception_rate": max(r["exception_rate"] for r in rows),
            "mm_pct_avg": round(float(np.mean([r["mm_pct"] for r in rows])), 4)}


# ---------------------------------------------------------------------------------------------- calibration
def calibrate(scans: Sequence[HistoryScan], arr: MarginArrays, grid: Grid = Grid(),
              progress: Callable[[str], None] | None = None) -> tuple[Candidate | None, list[dict]]:
    """Every candidate of ``grid`` on every history: (the least conservative candidate for which every row passes,
    i.e. the lowest average MM over all rows, or None; one result per candidate)."""
    results = []
    for u, d, n in itertools.product(grid.vol_up_bps, grid.vol_down_bps, grid.steps):
        base = Candidate(u, d, n, 0, grid.skew_bps)
        terms = [{und: option_terms_of(sc, base, arr) for und, sc in hs.scans.items()} for hs in scans]
        for sm in grid.short_min_bps:
            c = Candidate(u, d, n, sm, grid.skew_bps)
            evals = []
            for hs, ts in zip(scans, terms):
                shifted = {und: OptionTerms(t.grid, t.o, t.m + sum(s.short_units for s in hs.scans[und]) * sm / BPS)
                           for und, t in ts.items()}
                evals += evaluate(hs, c, arr, shifted)
            results.append({**c.__dict__, **summary(rows_of(evals))})
            if progress:
                progress(f"{c}: {results[-1]}")
    ok = [r for r in results if r["rows_failing"] == 0]
    best = min(ok, key=lambda r: (r["mm_pct_avg"], -r["steps"])) if ok else None
    chosen = None if best is None else Candidate(best["vol_up_bps"], best["vol_down_bps"], best["steps"],
                                                 best["short_min_bps"], best["skew_bps"])
    return chosen, results


# ---------------------------------------------------------------------------------------------- the grid's gaps
def gap_books(rw: float) -> list[tuple[str, list[tuple[bool, float, float]]]]:
    """Books whose worst loss can lie inside the grid's +-RW (none is in :data:`BOOKS`, whose worst losses are at
    the ends): legs (is_call, strike, size) at spot 1. Short butterflies (short the wings, long 2 at the centre: they
    lose when the price ends at the centre) centred at c RW, c = +-0.1 .. +-0.9, wings RW / 4 and RW / 2 from the
    centre; ratio spreads (long 1 call at the money, short 2 at 1 + c RW, c = 0.25, 0.5, 0.75, and the puts'
    mirror); and, as references whose worst loss is at an end, a short straddle and a short call."""
    out = []
    for c in (-0.9, -0.8, -0.7, -0.6, -0.5, -0.4, -0.3, -0.2, -0.1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        for w in (0.25, 0.5):
            k = 1 + c * rw
            out.append((f"short_butterfly_c{c:+}_w{w}", [(True, k - w * rw, -1.0), (True, k, 2.0),
                                                          (True, k + w * rw, -1.0)]))
    for c in (0.25, 0.5, 0.75):
        out.append((f"call_ratio_1x2_c{c}", [(True, 1.0, 1.0), (True, 1 + c * rw, -2.0)]))
        out.append((f"put_ratio_1x2_c{c}", [(False, 1.0, 1.0), (False, 1 - c * rw, -2.0)]))
    out.append(("short_straddle", [(True, 1.0, -1.0), (False, 1.0, -1.0)]))
    out.append(("short_call", [(True, 1.0, -1.0)]))
    return out


def grid_gap(rw_bps: int, params: OptionParams = OPTIONS_DEFAULT, days: Sequence[int] = (7, 30),
             sigmas: Sequence[float] = (0.5, 1.0), steps: Sequence[int] = (1, 2, 3, 4), dense: int = 400) -> dict:
    """What the grid misses: for each book of :func:`gap_books` (expiries ``days``, volatilities ``sigmas``), its
    scan (the float form of docs/options.md, one asset, no linear delta: ``scan_parts``' |WS| + B) at each number of
    ``steps`` against the worst loss over a dense grid of the same ranges (``dense`` + 1 spot points over +-RW x 25
    volatilities over [down, up]); ``gap`` = 1 - scan / dense worst. ``all_vols`` counts the base volatility at
    every spot point as well (what skipping it inside the grid costs). ``uncovered``: what the scan and the short
    minimum M together leave of the dense worst, max(0, worst - scan - M), in % of the underlying notional (one unit
    per leg)."""
    rw = rw_bps / BPS
    oarr = OptionArrays(np.array([params.skew_bps.get(BTC, 0) / BPS]), params.vol_up_bps / BPS,
                        params.vol_down_bps / BPS, 1, params.short_min_bps / BPS)
    vols = np.linspace(1 - oarr.vol_down, 1 + oarr.vol_up, 25)
    rows = []
    for name, legs in gap_books(rw):
        for d in days:
            book = OptionBook(size=np.array([[q for *_, q in legs]]), asset=np.zeros(len(legs), dtype=int),
                              is_call=np.array([c for c, *_ in legs]), strike=np.array([k for _, k, _ in legs]),
                              expiry=np.full(len(legs), d / YEAR_DAYS))
            for sig in sigmas:
                prices, sigma = np.ones(1), np.full(1, sig)
                moves = np.broadcast_to(np.linspace(-rw, rw, dense + 1), (len(legs), dense + 1))
                worst = float(asset_grid(book, series_losses(book, prices, sigma, moves, vols, oarr), 1).max())
                m = oarr.short_min * sum(-q for *_, q in legs if q < 0)
                row = {"book": name, "days": d, "sigma": sig, "dense_worst_pct": round(100 * worst, 4)}
                for n in steps:
                    o = OptionArrays(oarr.skew, oarr.vol_up, oarr.vol_down, n, oarr.short_min)
                    x = o.spot_points() * rw / n
                    g = asset_grid(book, series_losses(book, prices, sigma, np.broadcast_to(x, (len(legs), len(x))),
                                                       o.vol_points(), o), 1)
                    ws, b = scan_parts(g, np.zeros(1), np.array([rw]))
                    scan = float((np.abs(ws) + b)[0, 0])
                    row[f"gap_{n}"] = round(1 - scan / worst, 4) if worst > 0 else 0.0
                    row[f"uncovered_{n}_pct"] = round(100 * max(0.0, worst - scan - m), 4)
                    row[f"gap_{n}_all_vols"] = round(1 - max(float(g.max()), 0.0) / worst, 4) if worst > 0 else 0.0
                rows.append(row)
    summary_ = [{"steps": n, "max_gap": max(r[f"gap_{n}"] for r in rows),
                 "median_gap": float(np.median([r[f"gap_{n}"] for r in rows])),
                 "books_over_10pct": sum(r[f"gap_{n}"] > 0.10 for r in rows),
                 "max_uncovered_pct": max(r[f"uncovered_{n}_pct"] for r in rows),
                 "books_uncovered": sum(r[f"uncovered_{n}_pct"] > 0 for r in rows),
                 "max_gap_all_vols": max(r[f"gap_{n}_all_vols"] for r in rows),
                 "worst": max(rows, key=lambda r: r[f"gap_{n}"])["book"]} for n in steps]
    return {"what": ("the scan at each grid size against the worst loss over a dense grid of the same spot and "
                     "volatility ranges, for books whose worst loss can lie inside the grid (short butterflies, "
                     "1x2 ratio spreads) and two references (short straddle, short call): gap = 1 - scan / dense "
                     "worst (0: the grid finds the worst loss); all_vols: with the base volatility at every spot "
                     "point; uncovered: max(0, dense worst - scan - short minimum), % of the underlying notional"),
            "risk_weight_bps": rw_bps, "books": len(rows), "summary": summary_, "rows": rows}


# ---------------------------------------------------------------------------------------------- the report
def steps_table(scans: Sequence[HistoryScan], arr: MarginArrays, params: OptionParams,
                results: Sequence[dict]) -> list[dict]:
    """Per grid size (steps 1..4: 3..9 spot points x the volatility points): coverage and margin under ``params`` with only
    the steps changed, and the least conservative passing candidate of the grid at that size."""
    out = []
    for n in range(1, 5):
        c = Candidate.of(params.model_copy(update={"steps": n}))
        rows = rows_of([e for hs in scans for e in evaluate(hs, c, arr)])
        ok = [r for r in results if r["steps"] == n and r["rows_failing"] == 0]
        best = min(ok, key=lambda r: r["mm_pct_avg"]) if ok else None
        out.append({"steps": n, "spot_points": 2 * n + 1, "grid_points": 4 * n + 5, **summary(rows),
                    "best_candidate": None if best is None else {k: best[k] for k in (
                        "vol_up_bps", "vol_down_bps", "short_min_bps", "mm_pct_avg", "worst_exception_rate")}})
    return out


def options_section(histories: dict[str, History], spec: RiskSpec = DEFAULT_SPEC,
                    params: OptionParams | None = None, grid: Grid = Grid(), below: Grid | None = BELOW_GRID,
                    progress: Callable[[str], None] | None = None) -> dict:
    """The ``options`` section of efficiency.json: the rows and per-kind savings under ``params`` (default: the
    spec's OPTION word), the calibration grid, the grid-size table and the candidates ``below`` the grid (None:
    not evaluated)."""
    params = params or spec.options or OPTIONS_DEFAULT
    arr = MarginArrays.from_config(spec.margin_config(), N_ASSETS, len(spec.haircuts))
    skew = params.skew_bps.get(BTC, 0)
    if any(params.skew_bps.get(a, 0) != skew for a in (BTC, ETH)) or grid.skew_bps != skew:
        grid = Grid(grid.vol_up_bps, grid.vol_down_bps, grid.steps, grid.short_min_bps, skew)
    # the parameters' own shocks are scanned too, so any OPTION word can be evaluated
    extra_up, extra_down = (set(below.vol_up_bps), set(below.vol_down_bps)) if below is not None else (set(), set())
    if below is not None:
        below = Grid(below.vol_up_bps, below.vol_down_bps, below.steps, below.short_min_bps, skew)
    grid_scan = Grid(tuple(sorted(set(grid.vol_up_bps) | {params.vol_up_bps} | extra_up)),
                     tuple(sorted(set(grid.vol_down_bps) | {params.vol_down_bps} | extra_down)), (1, 2, 3, 4),
                     grid.short_min_bps, skew)
    scans = [scan_history(name, h, spec, skew, grid_scan) for name, h in histories.items()]
    c = Candidate.of(params)
    rows = rows_of([e for hs in scans for e in evaluate(hs, c, arr)])
    kinds = by_kind(rows)
    chosen, results = calibrate(scans, arr, grid, progress)
    below_results = calibrate(scans, arr, below)[1] if below is not None else None
    days = {hs.dataset: {und: len(sc[0].day.days) for und, sc in hs.scans.items()} for hs in scans}
    return {
        "what": ("option books re-struck every day on real daily BTC/ETH history: the portfolio MM (float form of "
                 "docs/options.md, DEFAULT_SPEC's margin with the OPTION word below: per asset the scan of options "
                 "and linear delta together, WS its directional part and B = scan - |WS|, MM = max(max(K_V + sum "
                 "B, K_S) + basis + C + M, floor)) against the standard per-position requirement, and its one-day "
                 "coverage with the books revalued in full"),
        "books": {"kinds": {
            "short_call_hedged": "short 1 call + a perpetual of minus its delta",
            "covered_call": "1 unit of the token as collateral + short 1 call",
            "protective_put_perp": "long 1 perpetual + long 1 put",
            "protective_put_collateral": "1 unit of the token as collateral + long 1 put",
            "short_straddle_hedged": "short 1 call + short 1 put at the same strike (atm) or a strangle at 1.1 S / "
                                     "0.9 S (otm10), + a perpetual of minus their delta",
            "calendar_spread": "short 1 call of 7 days + long 1 call of 30 days, same strike"},
            "variants": ("maturity 7 or 30 days (calendar: 7 vs 30); strike at the money (atm) or 10% out of the "
                         "money (otm10: calls 1.1 S, puts 0.9 S)"),
            "underlyings": ("BTC, ETH, and BTC+ETH (the same book on both in one account, equal notionals)"),
            "sizes": "1 unit of the underlying per leg; figures in % of the underlying notional (of both for "
                     "BTC+ETH: the sum of the two legs' notionals)",
            "rolling": "opened at each day's close at that day's price and volatility, held to the next close"},
        "vol_proxy": (f"{IV_FACTOR} x annualised EWMA volatility (lambda {LAM}, sqrt({YEAR_DAYS})) of the returns "
                      "before the day (an implied over realised premium); the next day's volatility is the proxy "
                      "after the day's return; the smile is the OPTION word's skew; the first "
                      f"{WARMUP} days of each history (the EWMA's seed) are left out"),
        "loss": ("equity at the day's close minus equity at the next close: options revalued in full at the next "
                 "close's price and volatility with one day less to expiry, the perpetual's move, the collateral's "
                 "move net of its haircut"),
        "standard_rule": ("Deribit standard margin for options, in USD, per position, no offsets (Deribit support "
                          "'Margin requirements - options'; Aevo's 'Standard Margin' states the same): long 0 beyond "
                          "the premium; short call MM 0.075 S + mark, IM max(0.15 - OTM / S, 0.10) S + mark; short "
                          "put MM max(0.075 S, 0.075 mark) + mark, IM max(max(0.15 - OTM / S, 0.10) S + mark, MM); "
                          "perpetuals at the market's standard rate (the risk weight) for MM and alpha x that for "
                          "IM; token collateral 0"),
        "savings": ("saving_mm = 1 - sum PM MM / sum standard MM over the days (saving_im: PM IM = alpha x MM "
                    "against the standard IM); published only when the row passes (and the standard is not 0: a "
                    "long put on collateral has no standard requirement)"),
        "test_applied": "coverage: a row passes when at most 1% of its days lose more than MM (whole history)",
        "data": {name: h.description for name, h in histories.items()}, "days": days,
        "option_params": params.model_dump(), "margin_spec": "DEFAULT_SPEC (risk weights, stress vectors, basis, "
                                                              "floor, haircuts)",
        "by_kind": kinds, "rows": rows,
        "calibration": {
            "rule": ("the least conservative candidate (lowest average MM over every row) for which every row "
                     "(book variant x underlying x exchange) has at most 1% exceptions over the whole history"),
            "grid": {"vol_up_bps": list(grid.vol_up_bps), "vol_down_bps": list(grid.vol_down_bps),
                     "steps": list(grid.steps), "short_min_bps": list(grid.short_min_bps), "skew_bps": skew},
            "chosen": None if chosen is None else chosen.__dict__,
            "default": ("OPTIONS_DEFAULT takes the chosen shocks and short minimum with 2 steps: every grid size gives "
                        "the same MM on every book and day here (see grid_size; the rule breaks the tie toward the "
                        "largest grid), and books outside this test whose worst loss lies inside +-RW (butterflies, "
                        "ratio spreads) are left uncovered by the scan and the short minimum far more at 1 step "
                        "than at 2 (see grid_gap); the gas per point decides between 2 and more"),
            "results": results},
        "grid_size": steps_table(scans, arr, params, results),
        "grid_gap": {name: grid_gap(spec.risk_weights[a], params) for name, a in (("BTC", BTC), ("ETH", ETH))},
        "below_grid": None if below is None else {
            "what": ("candidates below the calibration grid's lower ends at 2 steps (not eligible: what the history "
                     "alone says about the volatility shocks and the short minimum)"),
            "grid": {"vol_up_bps": list(below.vol_up_bps), "vol_down_bps": list(below.vol_down_bps),
                     "steps": list(below.steps), "short_min_bps": list(below.short_min_bps), "skew_bps": skew},
            "results": below_results},
    }
