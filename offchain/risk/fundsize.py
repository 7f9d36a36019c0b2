"""The fund-sizing rule: the insurance fund a book needs to go through a chosen crash (``xmargin risk fund-size``).

Rule (default, ``with_adl=False``): the smallest fund F such that, at the quantile q (95%) over the simulated runs,

    depletion + deleveraged + socialised  <=  F      and      deleveraged + socialised = 0

i.e. the fund alone carries the crash: what it loses on the inventory it takes over (its depletion, marked to the
oracle) plus every debt it could not cover. Deleveraging and the depositors stay untouched in 95% of runs: they are
the backstops beyond the quantile, not part of the plan. With ``with_adl=True`` the rule counts deleveraging as
cover: the smallest F with socialised = 0 and depletion <= F at the quantile.

The simulations of one sizing share their random numbers (the scenario's seed), so the runs differ only in the fund.
The fund enters the model only through what its settlement balance can cover (6. in :mod:`.cascade`), so the need
barely moves with F and the predicate is monotone in practice; the search is a bisection on it (to ``tol`` of F),
and the result records the check at F and at 90% of F so a reader sees the boundary.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..margin.vector import MarginArrays, Portfolio
from .cascade import CascadeResult, CascadeScenario, LiquidationRule, simulate
from .revalue import OptionHoldings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """One simulation of the sizing: the fund tried and the quantiles that decide it."""

    fund: float
    need: float  # quantile of depletion + deleveraged + socialised
    depletion: float
    adl: float
    bad_debt: float
    passes: bool

    def as_dict(self) -> dict:
        return {"fund": self.fund, "need": self.need, "fund_depletion": self.depletion, "adl": self.adl,
                "bad_debt": self.bad_debt, "passes": self.passes}


@dataclass
class FundSize:
    fund: float
    scenario: CascadeScenario
    with_adl: bool
    quantile: float
    at_fund: Check
    at_90pct: Check
    simulations: int
    seconds: float
    trail: list[Check] = field(default_factory=list)

    def as_dict(self) -> dict:
        s = self.scenario
        return {"fund": self.fund, "rule": "fund covers depletion + deleveraged + socialised at the quantile, nothing "
                "deleveraged or socialised" if not self.with_adl else "nothing socialised and depletion <= fund at "
                "the quantile (deleveraging counts as cover)", "quantile": self.quantile,
                "crash": list(s.crash), "crash_blocks": s.crash_blocks, "latency_blocks": s.latency,
                "depth_factor": s.depth_factor, "runs": s.runs, "seed": s.seed,
                "max_calls_per_block": s.max_calls_per_block, "unwind_blocks": s.unwind_blocks,
                "at_fund": self.at_fund.as_dict(), "at_90pct": self.at_90pct.as_dict(),
                "simulations": self.simulations, "seconds": round(self.seconds, 1),
                "trail": [c.as_dict() for c in self.trail]}


def check(res: CascadeResult, with_adl: bool, q: float = 0.95) -> Check:
    """Whether the fund of ``res`` passes the rule."""
    f = res.fund_start
    depletion = np.clip(f - res.fund_min, 0.0, None)
    adl = res.adl if res.adl is not None else np.zeros_like(depletion)
    need = float(np.quantile(depletion + adl + res.bad_debt, q))
    dep, a, bad = (float(np.quantile(x, q)) for x in (depletion, adl, res.bad_debt))
    ok = (bad <= 0 and dep <= f) if with_adl else (need <= f and a + bad <= 0)
    return Check(f, need, dep, a, bad, bool(ok))


def size_fund(portfolio: Portfolio, prices0: Sequence[float], arr: MarginArrays, rule: LiquidationRule,
              s: CascadeScenario, with_adl: bool = False, q: float = 0.95, tol: float = 0.01,
              start: float = 1e6, step: float = 1_000.0, options: OptionHoldings | None = None) -> FundSize:
    """The smallest fund (a multiple of ``step`` USD, within ``tol`` of itself) that passes the rule on ``s``
    (``options``: the accounts' option positions, :func:`offchain.risk.cascade.simulate`)."""
    if not 0.5 <= q < 1:
        raise ValueError(f"quantile {q}: give a level in [0.5, 1), e.g. 0.95")
    if not 0 < tol < 0.5:
        raise ValueError(f"tolerance {tol}: give a fraction in (0, 0.5), e.g. 0.01")
    t0 = time.time()
    trail: list[Check] = []

    def run(f: float) -> Check:
        c = check(simulate(portfolio, prices0, arr, rule, f, s, options), with_adl, q)
        trail.append(c)
        log.info("fund %.0f: need %.0f depletion %.0f adl %.0f bad %.0f -> %s", f, c.need, c.depletion, c.adl,
                 c.bad_debt, "passes" if c.passes else "fails")
        return c

    first = run(max(start, step))
    hi = max(np.ceil(first.need * 1.02 / step) * step, step)
    lo = 0.0
    while not run(hi).passes:
        lo = hi
        hi = np.ceil(max(hi * 1.5, trail[-1].need * 1.02) / step) * step
        if hi > 1e13:
            raise ValueError(f"scenario {s.name}: no fund up to {hi:,.0f} USD passes (the book's losses are unbounded "
                             "in this model; check the crash and the population)")
    if first.passes and first.fund < hi:
        hi = first.fund
    elif not first.passes:
        lo = max(lo, first.fund)
    while hi - lo > max(tol * hi, step):
        mid = np.ceil((lo + hi) / 2 / step) * step
        if mid >= hi:
            break
        if run(mid).passes:
            hi = mid
        else:
            lo = mid
    at = next((c for c in reversed(trail) if c.fund == hi), None) or run(hi)
    below = run(np.floor(0.9 * hi / step) * step)
    return FundSize(float(hi), s, with_adl, q, at, below, len(trail), time.time() - t0, trail)
