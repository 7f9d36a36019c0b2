"""Backtests of a parameter set on real daily crypto history, per portfolio group, per calendar year and over the
whole history, and the through-the-cycle calibration of a static default set.

A *group* is a constant-notional book (1,000,000 USD per leg, rebalanced every day): long or short one asset, the
hedged BTC/ETH pairs, long baskets, and collateral hedges (the collateral token with a short perpetual of the same
value). History columns are BTC, ETH, LTC; LTC is evaluated with the parameters of SOL (asset 2) as the only
alt-coin with real history here: SOL and LINK themselves have no real history in the data and are untested.

Each day the book's margin (the float form of the on-chain formula, :func:`offchain.margin.vector.requirement`) is
compared with the loss of the next day: ``loss = -(n + c (1 - h)) . x`` with ``n`` the perpetual notionals, ``c``
the collateral values, ``h`` their haircuts and ``x`` the day's simple returns; an exception is a loss above MM.

Which test applies to a row (``test_applied``):

- ``coverage``: the requirement is meant to be conservative (a static set, every hedge or basket): it passes when the
  exception rate is at most 1%. A two-sided Kupiec test would fail a conservative book for having too few
  exceptions; its p-value is still published, and the saving tells what the conservatism costs.
- ``kupiec+christoffersen``: a VaR-style requirement (the daily recalibration of ``calibrate.py`` on a single
  outright position): it passes when Kupiec's and Christoffersen's p-values are both at least 5%.

Through the cycle (:func:`through_the_cycle`): over the whole history the exception rate is at most 1%, and in every
calendar year at most 1% except in at most one year, which must not be red (Basel traffic light for that year's
days). :func:`calibrate_ttc` finds the least static parameters that meet it for every group on every exchange.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from ..margin.defaults import BTC, ETH, LINK, SOL
from ..margin.exact import BPS
from ..margin.params import MarketRisk, RiskSpec, StressVector
from ..margin.vector import MarginArrays, requirement
from .backtest import christoffersen, kupiec, traffic_light
from .crypto_history import complete_rows, years
from .data import History
from .ewma import correlation_from_covariance, ewma_covariance

NOTIONAL = 1_000_000.0
COVERAGE = 0.01
N_ASSETS = 4
COLUMN_ASSET = (BTC, ETH, SOL)  # history columns BTC, ETH, LTC -> spec assets (LTC stands in for SOL)
COVERAGE_TEST, VAR_TEST = "coverage", "kupiec+christoffersen"


@dataclass(frozen=True)
class Group:
    """A constant-notional book over history columns: perpetual notionals and collateral values (USD)."""

    name: str
    perps: dict[int, float]
    collateral: dict[int, float] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.perps) | set(self.collateral)))

    @property
    def outright(self) -> bool:
        """One perpetual position and no collateral: the book a VaR-style test is meant for."""
        return len(self.perps) == 1 and not self.collateral


N = NOTIONAL
GROUPS = (
    Group("long_BTC", {0: N}), Group("short_BTC", {0: -N}),
    Group("long_ETH", {1: N}), Group("short_ETH", {1: -N}),
    Group("long_LTC_as_SOL", {2: N}), Group("short_LTC_as_SOL", {2: -N}),
    Group("long_BTC_short_ETH", {0: N, 1: -N}), Group("long_ETH_short_BTC", {0: -N, 1: N}),
    Group("basket_BTC_ETH", {0: N, 1: N}), Group("basket_BTC_ETH_LTC", {0: N, 1: N, 2: N}),
    Group("WBTC_collateral_short_BTC", {0: -N}, {0: N}), Group("WETH_collateral_short_ETH", {1: -N}, {1: N}),
)
HEDGED_PAIRS = ("long_BTC_short_ETH", "long_ETH_short_BTC")


def group(name: str) -> Group:
    return next(g for g in GROUPS if g.name == name)


def _spec_vectors(g: Group, spec: RiskSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(net delta, gross, equity sensitivity) of ``g`` over the spec's assets (N_ASSETS,)."""
    delta, gross, sens = np.zeros(N_ASSETS), np.zeros(N_ASSETS), np.zeros(N_ASSETS)
    for col, n in g.perps.items():
        a = COLUMN_ASSET[col]
        delta[a] += n
        gross[a] += abs(n)
        sens[a] += n
    for col, c in g.collateral.items():
        a = COLUMN_ASSET[col]
        delta[a] += c
        gross[a] += c
        sens[a] += c * (1.0 - spec.haircuts.get(a, 0) / BPS)  # collateral id j is on asset j
    return delta, gross, sens


def arrays(spec: RiskSpec) -> MarginArrays:
    return MarginArrays.from_config(spec.margin_config(), N_ASSETS, len(spec.haircuts))


def static_requirement(spec: RiskSpec, g: Group, arr: MarginArrays | None = None) -> float:
    """MM (USD) of ``g`` under ``spec`` (constant: a constant-notional book under static parameters)."""
    delta, gross, _ = _spec_vectors(g, spec)
    mm, _ = requirement(delta[None, :], gross[None, :], arr or arrays(spec))
    return float(mm[0])


def standard_requirement(spec: RiskSpec, g: Group) -> float:
    """The per-position requirement of ``g``'s perpetuals: sum |notional| x the market's standard rate."""
    return sum(abs(n) * spec.markets[COLUMN_ASSET[c]].standard_mmr_bps / BPS for c, n in g.perps.items())


def losses(h: History, g: Group, spec: RiskSpec) -> tuple[np.ndarray, tuple[str, ...]]:
    """Loss (USD) of ``g`` on each day where all its columns have a return, and those days' dates."""
    mask = complete_rows(h, g.columns)
    x = np.expm1(h.returns[mask][:, list(g.columns)])
    _, _, sens = _spec_vectors(g, spec)
    s = np.array([sens[COLUMN_ASSET[c]] for c in g.columns])
    return -(x @ s), tuple(d for d, m in zip(h.dates, mask) if m)


# ---------------------------------------------------------------------------------------------- rows and tests
def periods(dates: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """("whole", all days) then (year, that calendar year's days) for each year present."""
    y = years(dates)
    return [("whole", np.ones(len(y), dtype=bool))] + [(str(v), y == v) for v in np.unique(y)]


def allowed_exceptions(days: int, coverage: float = COVERAGE) -> int:
    """The most exceptions at an exception rate of at most ``coverage``."""
    return int(math.floor(coverage * days + 1e-9))


def judge(test: str, exceptions: int, days: int, kupiec_p: float, christoffersen_p: float,
          coverage: float = COVERAGE, confidence: float = 0.95) -> bool:
    """Whether a row passes the test that applies to it (see the module docstring)."""
    if test == COVERAGE_TEST:
        return exceptions <= allowed_exceptions(days, coverage)
    if test == VAR_TEST:
        return kupiec_p >= 1 - confidence and christoffersen_p >= 1 - confidence
    raise ValueError(f"unknown test {test!r}: {COVERAGE_TEST!r} or {VAR_TEST!r}")


def row(dataset: str, grp: str, spec_name: str, period: str, loss: np.ndarray, mm: np.ndarray, std: np.ndarray,
        test: str, coverage: float = COVERAGE) -> dict:
    """One published backtest row: counts, tests, traffic light, worst day in multiples of MM, the test applied
    and whether it passes, and the average saving against the standard requirement."""
    loss, mm, std = np.asarray(loss, float), np.asarray(mm, float), np.asarray(std, float)
    hits = (loss > mm).astype(int)
    n, x = len(hits), int(hits.sum())
    kp = kupiec(n, x, coverage)[1]
    cp = christoffersen(hits)[1] if n > 1 else 1.0
    worst = int(np.argmax(loss / mm))
    with np.errstate(divide="ignore", invalid="ignore"):
        saving = float(np.mean(1.0 - mm / std)) if (std > 0).all() else None
    def r6(v: float | None) -> float | None:
        return None if v is None else round(float(v), 6)

    return {"dataset": dataset, "group": grp, "spec": spec_name, "period": period, "days": n, "exceptions": x,
            "expected": round(n * coverage, 2), "exception_rate": r6(x / n), "kupiec_p": r6(kp),
            "christoffersen_p": r6(cp), "traffic_light": traffic_light(n, x, coverage),
            "worst_loss_over_mm": r6(loss[worst] / mm[worst]), "worst_loss_pct_notional":
            r6(loss[worst] / NOTIONAL * 100), "mm_avg_pct_notional": r6(mm.mean() / NOTIONAL * 100),
            "saving_vs_standard": r6(saving), "test_applied": test, "passes": judge(test, x, n, kp, cp, coverage)}


def series_rows(dataset: str, grp: str, spec_name: str, dates: Sequence[str], loss: np.ndarray, mm: np.ndarray,
                std: np.ndarray, test: str) -> list[dict]:
    """A row for the whole history and one per calendar year."""
    mm = np.broadcast_to(np.asarray(mm, float), loss.shape)
    std = np.broadcast_to(np.asarray(std, float), loss.shape)
    return [row(dataset, grp, spec_name, p, loss[m], mm[m], std[m], test) for p, m in periods(dates) if m.any()]


def through_the_cycle(rows: Iterable[dict], years_allowed: int = 1) -> dict:
    """The through-the-cycle verdict of one (dataset, group, spec)'s rows: whole history at most 1% and every
    calendar year at most 1% but ``years_allowed`` (one by default), which must not be red."""
    rows = list(rows)
    whole = next(r for r in rows if r["period"] == "whole")
    yearly = [r for r in rows if r["period"] != "whole"]
    over = [r for r in yearly if r["exceptions"] > allowed_exceptions(r["days"])]
    ok = (whole["exceptions"] <= allowed_exceptions(whole["days"]) and len(over) <= years_allowed
          and all(r["traffic_light"] != "red" for r in over))
    return {"passes": ok, "whole_exception_rate": whole["exception_rate"],
            "years_above_1pct": [r["period"] for r in over],
            "yellow_years": [r["period"] for r in yearly if r["traffic_light"] == "yellow"],
            "red_years": [r["period"] for r in yearly if r["traffic_light"] == "red"]}


def ttc_ok(loss: np.ndarray, dates: Sequence[str], level: float, years_allowed: int = 1) -> bool:
    """:func:`through_the_cycle` of a constant requirement ``level`` (USD) against ``loss``, without building rows."""
    hits = loss > level
    over = 0
    for p, m in periods(dates):
        n, x = int(m.sum()), int(hits[m].sum())
        if x <= allowed_exceptions(n):
            continue
        if p == "whole" or traffic_light(n, x) == "red":
            return False
        over += 1
    return over <= years_allowed


def least_level(series: Sequence[tuple[np.ndarray, Sequence[str]]], step_bps: int = 10,
                years_allowed: int = 1) -> int:
    """The least constant requirement, in bps of NOTIONAL rounded up to ``step_bps``, meeting the through-the-cycle
    rule against every (loss, dates) in ``series`` (monotone in the level: bisection)."""
    def ok(bps: int) -> bool:
        return all(ttc_ok(l, d, bps * NOTIONAL / BPS, years_allowed) for l, d in series)

    lo, hi = 0, 10 * BPS
    if not ok(hi):
        raise ValueError("no requirement up to 10 x notional meets the rule")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return int(math.ceil(hi / step_bps) * step_bps)


# ---------------------------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class TTCSettings:
    """Rules of :func:`calibrate_ttc` for what the data cannot measure."""

    alt_over_eth: float = 1.0  # SOL, LINK risk weight = LTC's requirement, and at least this x ETH's
    collapse_multiple: float = 5 / 3  # SOL/LINK collapse vectors = this x their risk weight
    max_rho_bps: int = 9500
    years_allowed: int = 1  # calendar years a book may spend above 1% (not red) on each history


def _rho_for_low(target_low: float) -> float:
    """The medium-regime correlation whose low regime max(2 rho - 1, 0.75 rho) equals ``target_low``."""
    return (target_low + 1) / 2 if target_low >= 0.6 else target_low / 0.75


def calibrate_ttc(histories: dict[str, History], base: RiskSpec,
                  settings: TTCSettings = TTCSettings()) -> tuple[RiskSpec, dict]:
    """The least static set meeting the through-the-cycle rule for every group on every history: risk weights of
    BTC, ETH and (through LTC) SOL/LINK, the BTC/ETH correlation, stress vectors sized to the hedged pairs'
    requirements, and the basis add-on sized to the collateral hedges. Haircuts, alpha, the floor, liquidation and
    funding are kept from ``base``; the standard rate of each market is set to its risk weight (the per-position
    requirement at the same coverage)."""
    def need(name: str) -> int:
        g = group(name)
        return least_level([losses(h, g, base) for h in histories.values()], years_allowed=settings.years_allowed)

    rw = {BTC: max(need("long_BTC"), need("short_BTC")), ETH: max(need("long_ETH"), need("short_ETH"))}
    ltc = max(need("long_LTC_as_SOL"), need("short_LTC_as_SOL"))
    alt = int(math.ceil(max(ltc, settings.alt_over_eth * rw[ETH]) / 10) * 10)
    rw[SOL] = rw[LINK] = min(alt, BPS)
    m_be, m_eb = need("long_BTC_short_ETH"), need("long_ETH_short_BTC")
    # correlated charge of a 1:1 pair = the milder direction's requirement; the stress vectors lift the other
    b, e = rw[BTC] / BPS, rw[ETH] / BPS
    m = min(m_be, m_eb) / BPS
    target_low = (b * b + e * e - m * m) / (2 * b * e)
    rho = int(math.ceil(min(max(_rho_for_low(target_low), 0.0), settings.max_rho_bps / BPS) * BPS / 100) * 100)
    correlations = {**base.correlations, (BTC, ETH): rho}  # SOL/LINK pairs: untested, kept (never raised)

    def lead_alts(level_bps: int, sign: int) -> dict[int, int]:
        s = level_bps / (0.4 * rw[BTC] + 0.5 * rw[ETH])
        out = {BTC: sign * int(math.ceil(0.4 * s * rw[BTC]))}
        for a in (ETH, SOL, LINK):
            out[a] = -sign * min(BPS, int(math.ceil(0.5 * s * rw[a])))
        return out

    collapse = min(BPS, int(math.ceil(settings.collapse_multiple * rw[SOL] / 10) * 10))
    stress = [
        StressVector(name="crash", shocks={a: -v for a, v in rw.items()}),
        StressVector(name="rally", shocks=dict(rw)),
        StressVector(name="btc_up_alts_down", shocks=lead_alts(m_eb, +1)),
        StressVector(name="btc_down_alts_up", shocks=lead_alts(m_be, -1)),
        StressVector(name="eth_decouple", shocks={ETH: -m_eb}),
        StressVector(name="sol_collapse", shocks={SOL: -collapse}),
        StressVector(name="link_collapse", shocks={LINK: -collapse}),
    ]
    spec = base.model_copy(update={"risk_weights": rw, "correlations": correlations, "stress": stress,
                                   "markets": {k: MarketRisk(**{**mk.model_dump(), "standard_mmr_bps": rw[k]})
                                               for k, mk in base.markets.items()}})
    # basis: the collateral hedges (their margin is the basis on the hedged notional, 2 x value)
    coll = max(need("WBTC_collateral_short_BTC"), need("WETH_collateral_short_ETH"))
    basis = int(math.ceil(coll / 2 / 10) * 10)
    spec = RiskSpec.model_validate(spec.model_copy(update={"basis_bps": max(basis, base.basis_bps)}).model_dump())
    report = {"risk_weights_bps": {"BTC": rw[BTC], "ETH": rw[ETH], "LTC_measured": ltc, "SOL_LINK": rw[SOL]},
              "pair_requirement_bps": {"long_BTC_short_ETH": m_be, "long_ETH_short_BTC": m_eb},
              "btc_eth_rho_bps": rho, "collateral_hedge_requirement_bps": coll, "basis_bps": spec.basis_bps,
              "rules": {"SOL_LINK_risk_weight": f"max(LTC's measured requirement, {settings.alt_over_eth} x ETH's)",
                        "SOL_LINK_correlations": "kept from the base set (no real history to raise them on)",
                        "collapses": f"{settings.collapse_multiple:.3f} x the SOL/LINK risk weight",
                        "BTC_ETH_rho": "low regime charge of a 1:1 pair = the milder pair direction's requirement",
                        "pair_vectors": "btc_down_alts_up sized to long BTC/short ETH, btc_up_alts_down and "
                                        "eth_decouple to long ETH/short BTC (0.4 RW BTC : 0.5 RW alt proportions)",
                        "basis": "half the collateral hedges' requirement (charged on 2 x the hedged value)"}}
    return spec, report


def previous_default(spec: RiskSpec) -> RiskSpec:
    """``spec`` with the margin figures of the default set before the through-the-cycle calibration (risk weights
    10/12/18/18%, BTC/ETH correlation 0.80, ETH decoupling -8%, basis 50 bps, floor 100 bps, standard rates = the
    risk weights): the "before" rows and the base of the dynamic rows."""
    rw = {BTC: 1000, ETH: 1200, SOL: 1800, LINK: 1800}
    stress = [
        StressVector(name="crash", shocks={a: -v for a, v in rw.items()}),
        StressVector(name="rally", shocks=dict(rw)),
        StressVector(name="btc_up_alts_down", shocks={BTC: 400, ETH: -600, SOL: -900, LINK: -900}),
        StressVector(name="btc_down_alts_up", shocks={BTC: -400, ETH: 600, SOL: 900, LINK: 900}),
        StressVector(name="eth_decouple", shocks={ETH: -800}),
        StressVector(name="sol_collapse", shocks={SOL: -3000}),
        StressVector(name="link_collapse", shocks={LINK: -3000}),
    ]
    corr = {(BTC, ETH): 8000, (BTC, SOL): 7000, (BTC, LINK): 6500, (ETH, SOL): 7500, (ETH, LINK): 7000,
            (SOL, LINK): 6500}
    markets = {k: MarketRisk(**{**mk.model_dump(), "standard_mmr_bps": rw[k]}) for k, mk in spec.markets.items()}
    return RiskSpec.model_validate(spec.model_copy(update={
        "risk_weights": rw, "correlations": corr, "stress": stress, "alpha_bps": 15_000, "basis_bps": 50,
        "floor_bps": 100, "markets": markets, "vol_scalers": {}, "correlation_break_bps": 0}).model_dump())


# ---------------------------------------------------------------------------------------------- dynamic add-ons
@dataclass(frozen=True)
class DynamicSettings:
    """How an updater sets the dynamic add-ons each day from the returns before it."""

    lam: float = 0.94  # EWMA decay of the volatility and correlation estimates
    vol_multiple: float = 3.75  # target scaler = vol_multiple x EWMA vol / risk weight, 1 .. 4
    break_below: float = 0.5  # correlation break on while the EWMA BTC/ETH correlation is below this
    break_bps: int = 10_000  # share of the low regime's hedging credits withdrawn while on
    delay_days: int = 10  # a lower value applies only after the target stayed lower this many days


def ratchet(target: np.ndarray, delay: int) -> np.ndarray:
    """Values an updater publishes for a daily ``target``: raised at once, lowered (to the highest target of the
    last ``delay`` days) only once the target has stayed below the published value for ``delay`` days."""
    out = np.empty_like(target, dtype=float)
    cur, below = float(target[0]), 0
    for t, v in enumerate(target):
        if v >= cur:
            cur, below = float(v), 0
        else:
            below += 1
            if below >= delay:
                cur, below = float(np.max(target[t - delay + 1:t + 1])), 0
        out[t] = cur
    return out


def dynamic_addons(h: History, spec: RiskSpec, s: DynamicSettings = DynamicSettings(),
                   column_asset: Sequence[int] = COLUMN_ASSET) -> tuple[np.ndarray, np.ndarray]:
    """(volatility scalers (T, N_ASSETS), correlation break (T,)) an updater would publish on each day of ``h``,
    from returns strictly before the day (days with a missing return carry the last estimate). ``column_asset``: the
    spec's asset of each history column (the break watches the correlation of the first two)."""
    r = np.nan_to_num(h.returns, nan=0.0)
    cov = ewma_covariance(r, s.lam)[:-1]  # row t: returns before day t
    sigma = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    vol = np.ones((len(r), N_ASSETS))
    for col, a in enumerate(column_asset[:r.shape[1]]):
        target = np.clip(s.vol_multiple * sigma[:, col] / (spec.risk_weights[a] / BPS), 1.0, 4.0)
        vol[:, a] = ratchet(np.ceil(target * 100) / 100, s.delay_days)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.array([correlation_from_covariance(c)[0, 1] for c in cov])
    rho = np.nan_to_num(rho, nan=1.0)  # no second asset: no hedge to break
    brk = ratchet(np.where(rho < s.break_below, s.break_bps / BPS, 0.0), s.delay_days)
    return vol, brk


@dataclass(frozen=True)
class UpdaterStep:
    """What an updater sends now for one add-on: the published value, the rule's target, and the value sent (a raise
    capped at the contract's per-call step, applied at once; a lowering, queued behind the loosening delay)."""

    what: str
    current: int
    target: int
    send: int

    @property
    def action(self) -> str:
        if self.send == self.current:
            return "unchanged"
        return "raise (at once)" if self.send > self.current else "lower (queued)"


def updater_steps(spec: RiskSpec, vol: np.ndarray, brk: float, names: Sequence[str],
                  max_step_bps: int = 5_000) -> tuple[RiskSpec, list[UpdaterStep]]:
    """The spec an updater proposes from today's targets (``vol`` per asset, as fractions; ``brk`` a fraction) and
    the step for each add-on: raises by at most ``max_step_bps`` (RiskParameters.MAX_UPDATER_STEP), lowerings to the
    target. Send the spec with ``xmargin risk propose``."""
    steps, scalers = [], dict(spec.vol_scalers)
    for a in range(len(names)):
        cur, target = spec.vol_scalers.get(a, BPS), int(round(float(vol[a]) * BPS))
        send = min(target, cur + max_step_bps) if target > cur else target
        steps.append(UpdaterStep(f"volatility scaler {names[a]}", cur, target, send))
        if send == BPS:
            scalers.pop(a, None)
        else:
            scalers[a] = send
    cur, target = spec.correlation_break_bps, int(round(brk * BPS))
    send_brk = min(target, cur + max_step_bps) if target > cur else target
    steps.append(UpdaterStep("correlation break", cur, target, send_brk))
    return spec.model_copy(update={"vol_scalers": scalers, "correlation_break_bps": send_brk}), steps


def dynamic_requirement(h: History, g: Group, spec: RiskSpec, vol: np.ndarray, brk: np.ndarray) -> np.ndarray:
    """MM (USD) of ``g`` on each of its days under ``spec`` with the day's add-ons."""
    mask = complete_rows(h, g.columns)
    delta, gross, _ = _spec_vectors(g, spec)
    base = arrays(spec)
    out = []
    cache: dict[tuple, float] = {}
    for v, c in zip(vol[mask], brk[mask]):
        key = (tuple(v), float(c))
        if key not in cache:
            arr = MarginArrays(base.rw, base.rho, base.stress, base.alpha, base.basis, base.floor, base.haircut,
                               v if (v != 1.0).any() else None, float(c), base.depth)
            cache[key] = float(requirement(delta[None, :], gross[None, :], arr)[0][0])
        out.append(cache[key])
    return np.array(out)


# ---------------------------------------------------------------------------------------------- the whole table
def static_rows(histories: dict[str, History], spec: RiskSpec, spec_name: str) -> list[dict]:
    rows = []
    arr = arrays(spec)
    for dname, h in histories.items():
        for g in GROUPS:
            loss, dates = losses(h, g, spec)
            if not len(loss):
                continue
            rows += series_rows(dname, g.name, spec_name, dates, loss, static_requirement(spec, g, arr),
                                standard_requirement(spec, g), COVERAGE_TEST)
    return rows


def dynamic_rows(histories: dict[str, History], spec: RiskSpec, spec_name: str, std_spec: RiskSpec,
                 s: DynamicSettings = DynamicSettings()) -> list[dict]:
    """Rows of ``spec`` with the add-ons set day by day; the saving is against ``std_spec``'s standard rates."""
    rows = []
    for dname, h in histories.items():
        vol, brk = dynamic_addons(h, spec, s)
        for g in GROUPS:
            loss, dates = losses(h, g, spec)
            if not len(loss):
                continue
            mm = dynamic_requirement(h, g, spec, vol, brk)
            rows += series_rows(dname, g.name, spec_name, dates, loss, mm, standard_requirement(std_spec, g),
                                COVERAGE_TEST)
    return rows


def rolling_rows(histories: dict[str, History], spec_name: str, std_spec: RiskSpec, settings=None,
                 warmup: int = 250, progress: Callable[[str], None] | None = None) -> list[dict]:
    """Rows of the daily recalibration of ``calibrate.py`` (:class:`RollingModel`) on each perpetual-only group:
    VaR-style (Kupiec + Christoffersen) for outright positions, coverage for hedges and baskets."""
    from .backtest import backtest_requirement
    from .calibrate import CalibrationSettings

    settings = settings or CalibrationSettings()
    rows = []
    for dname, h in histories.items():
        for g in GROUPS:
            if g.collateral:
                continue
            mask = complete_rows(h, g.columns)
            if mask.sum() < warmup + 30:
                continue
            r = h.returns[mask][:, list(g.columns)]
            sens = np.array([g.perps[c] for c in g.columns])
            res = backtest_requirement(f"{dname} {g.name}", r, sens, settings, warmup=warmup)
            dates = tuple(d for d, m in zip(h.dates, mask) if m)[warmup:]
            rows += series_rows(dname, g.name, spec_name, dates, res.losses, res.requirement,
                                standard_requirement(std_spec, g), VAR_TEST if g.outright else COVERAGE_TEST)
            if progress:
                progress(f"{dname} {g.name}")
    return rows


def verdicts(rows: Iterable[dict]) -> list[dict]:
    """The through-the-cycle verdict of each (dataset, group, spec) in ``rows``."""
    by: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        by.setdefault((r["dataset"], r["group"], r["spec"]), []).append(r)
    return [{"dataset": d, "group": g, "spec": s, **through_the_cycle(rs)} for (d, g, s), rs in by.items()]
