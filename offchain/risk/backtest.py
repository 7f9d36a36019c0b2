"""VaR backtests: Kupiec's proportion-of-failures test, Christoffersen's independence and conditional-coverage tests,
the Basel traffic light, and a rolling backtest of the margin requirement as a VaR over the liquidation horizon.

An *exception* on day t is a realised loss over the horizon larger than the requirement set with the information of
the day before. With ``n`` days, ``x`` exceptions and coverage ``p`` (0.01 for a 99% requirement):

- Kupiec (1995): ``LR_pof = -2 ln[(1-p)^(n-x) p^x] + 2 ln[(1-x/n)^(n-x) (x/n)^x]`` ~ chi2(1). Two-sided: too few
  exceptions (an over-conservative requirement) is rejected as well as too many.
- Christoffersen (1998): with ``n_ij`` the number of days in state j after a day in state i (1 = exception),
  ``LR_ind = -2 ln[(1-pi)^(n00+n10) pi^(n01+n11)] + 2 ln[(1-pi01)^n00 pi01^n01 (1-pi11)^n10 pi11^n11]`` ~ chi2(1)
  (exceptions do not cluster), and ``LR_cc = LR_pof + LR_ind`` ~ chi2(2).
- Basel traffic light (BCBS 1996): green while ``P(X <= x) < 95%`` for X ~ Binomial(n, p), red once
  ``P(X <= x) >= 99.99%``, yellow in between; for 250 days at 99% that is the familiar 0-4 / 5-9 / 10+.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .calibrate import CalibrationSettings, RollingModel
from .progress import Progress


def _xlogy(x: float, y: float) -> float:
    return 0.0 if x == 0 else x * np.log(y)


def kupiec(n: int, x: int, p: float) -> tuple[float, float]:
    """(LR_pof, p-value) for ``x`` exceptions in ``n`` days at coverage ``p``."""
    if not (0 <= x <= n and n > 0 and 0 < p < 1):
        raise ValueError(f"kupiec needs 0 <= x <= n, n > 0, 0 < p < 1 (got n={n}, x={x}, p={p})")
    phat = x / n
    lr = -2.0 * (_xlogy(n - x, 1 - p) + _xlogy(x, p) - _xlogy(n - x, 1 - phat) - _xlogy(x, phat))
    lr = max(lr, 0.0)
    return lr, float(stats.chi2.sf(lr, 1))


def transitions(hits: np.ndarray) -> tuple[int, int, int, int]:
    """(n00, n01, n10, n11) of a 0/1 exception sequence."""
    h = np.asarray(hits, dtype=int)
    a, b = h[:-1], h[1:]
    return (int(((a == 0) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum()),
            int(((a == 1) & (b == 0)).sum()), int(((a == 1) & (b == 1)).sum()))


def christoffersen(hits: np.ndarray) -> tuple[float, float]:
    """(LR_ind, p-value) of Christoffersen's independence test on a 0/1 exception sequence."""
    n00, n01, n10, n11 = transitions(hits)
    pi = (n01 + n11) / max(n00 + n01 + n10 + n11, 1)
    pi01 = n01 / max(n00 + n01, 1)
    pi11 = n11 / max(n10 + n11, 1)
    null = _xlogy(n00 + n10, 1 - pi) + _xlogy(n01 + n11, pi)
    alt = _xlogy(n00, 1 - pi01) + _xlogy(n01, pi01) + _xlogy(n10, 1 - pi11) + _xlogy(n11, pi11)
    lr = max(-2.0 * (null - alt), 0.0)
    return lr, float(stats.chi2.sf(lr, 1))


def conditional_coverage(hits: np.ndarray, p: float) -> tuple[float, float]:
    """(LR_cc, p-value): Kupiec plus independence, chi2(2)."""
    h = np.asarray(hits, dtype=int)
    lr = kupiec(len(h), int(h.sum()), p)[0] + christoffersen(h)[0]
    return lr, float(stats.chi2.sf(lr, 2))


def traffic_light(n: int, x: int, p: float = 0.01) -> str:
    """'green', 'yellow' or 'red' for ``x`` exceptions in ``n`` days at coverage ``p``."""
    cdf = stats.binom.cdf(x, n, p)
    if cdf < 0.95:
        return "green"
    return "red" if cdf >= 0.9999 else "yellow"


@dataclass
class BacktestResult:
    name: str
    days: int
    exceptions: int
    expected: float
    kupiec_lr: float
    kupiec_p: float
    christoffersen_lr: float
    christoffersen_p: float
    conditional_coverage_p: float
    traffic_light: str
    last_250_exceptions: int
    last_250_light: str
    windows_250: dict[str, float]  # share of rolling 250-day windows in each zone
    losses: np.ndarray = field(repr=False)
    requirement: np.ndarray = field(repr=False)
    hits: np.ndarray = field(repr=False)

    def passes_kupiec(self, confidence: float = 0.95) -> bool:
        return self.kupiec_p >= 1.0 - confidence

    def as_dict(self) -> dict:
        return {"days": self.days, "exceptions": self.exceptions, "expected": round(self.expected, 2),
                "exception_rate": self.exceptions / self.days, "kupiec_lr": self.kupiec_lr,
                "kupiec_p": self.kupiec_p, "kupiec_pass_95": self.passes_kupiec(),
                "christoffersen_lr": self.christoffersen_lr, "christoffersen_p": self.christoffersen_p,
                "conditional_coverage_p": self.conditional_coverage_p, "traffic_light": self.traffic_light,
                "last_250_exceptions": self.last_250_exceptions, "last_250_light": self.last_250_light,
                "windows_250": self.windows_250}


def evaluate(name: str, losses: np.ndarray, requirement: np.ndarray, coverage: float = 0.01) -> BacktestResult:
    """Test a requirement series against realised losses (both per day, same length)."""
    losses, requirement = np.asarray(losses, float), np.asarray(requirement, float)
    hits = (losses > requirement).astype(int)
    n, x = len(hits), int(hits.sum())
    k_lr, k_p = kupiec(n, x, coverage)
    c_lr, c_p = christoffersen(hits)
    _, cc_p = conditional_coverage(hits, coverage)
    zones = {"green": 0, "yellow": 0, "red": 0}
    if n >= 250:
        csum = np.concatenate([[0], np.cumsum(hits)])
        counts = csum[250:] - csum[:-250]
        for c in np.unique(counts):
            zones[traffic_light(250, int(c), coverage)] += int((counts == c).sum())
        total = len(counts)
        last = int(counts[-1])
    else:
        total, last = 1, x
    return BacktestResult(name, n, x, n * coverage, k_lr, k_p, c_lr, c_p, cc_p, traffic_light(n, x, coverage),
                          last, traffic_light(min(n, 250), last, coverage),
                          {z: c / total for z, c in zones.items()}, losses, requirement, hits)


def backtest_requirement(name: str, returns: np.ndarray, sensitivity: np.ndarray,
                         settings: CalibrationSettings = CalibrationSettings(), warmup: int = 250,
                         coverage: float = 0.01) -> BacktestResult:
    """Rolling backtest of the margin requirement of a portfolio with constant USD ``sensitivity`` (K,):
    each day the requirement is recalibrated (:class:`RollingModel`: EWMA volatility and correlation, ES risk weights
    with the anti-procyclical floor, the three regimes and the derived stress vectors) from the returns before that
    day and compared with the loss over the next ``horizon_days`` (non-overlapping when the horizon exceeds a day)."""
    r = np.asarray(returns, dtype=float)
    if r.ndim == 1:
        r = r[:, None]
    h = max(1, int(round(settings.horizon_days)))
    if len(r) < warmup + 30 * h:
        raise ValueError(f"{len(r)} days are too few for a backtest with {warmup} warm-up days (need "
                         f"{warmup + 30 * h})")
    model = RollingModel(r, settings)
    c = np.asarray(sensitivity, dtype=float)
    days = range(warmup, len(r) - h + 1, h)
    req = np.array([model.requirement(t, c) for t in Progress.over(days, f"backtest {name}")])
    move = np.array([np.expm1(r[t:t + h].sum(0)) for t in days])
    losses = -(move @ c)
    return evaluate(name, losses, req, coverage)
