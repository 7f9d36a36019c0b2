"""Price histories for estimation and backtests: a seeded synthetic generator and real daily index data.

- :func:`synthetic`: daily log returns with fat tails (Student-t innovations), volatility clustering (GARCH(1,1) per
  asset) and correlations that rise in crashes (factor loadings jump on days the common factor falls hard). Its
  default parameters are crypto-like (daily volatility about 3.5% BTC, 4.5% ETH, 6% SOL, 6% LINK; calm
  correlations 0.6-0.8, crash correlations above 0.9). It is a model, not history.
- :func:`real`: daily closes shipped inside the ``arch`` package (``arch.data``): the S&P 500 and the Nasdaq
  Composite, 1999-01-04 to 2018-12-31 (5,030 daily returns each). Limits: equity indices, not crypto (daily
  volatility about 1.2%, a quarter to a third of BTC's); daily closes only, so nothing intraday (a crypto liquidation
  horizon of minutes to hours cannot be observed; the backtest uses a one-day horizon); trading days only (weekends and
  holidays are gaps, where crypto trades around the clock).
- :func:`load_csv`: your own history (``date,<asset>,<asset>...`` closes), e.g. exchange daily candles.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, optional


@dataclass(frozen=True)
class History:
    """Daily log returns, shape ``(T, N)``, with asset names, dates (ISO strings or day numbers) and a description."""

    name: str
    assets: tuple[str, ...]
    returns: np.ndarray
    dates: tuple[str, ...]
    description: str

    @property
    def days(self) -> int:
        return int(self.returns.shape[0])


@dataclass(frozen=True)
class SyntheticModel:
    """Parameters of :func:`synthetic` (daily). Correlation of assets k, l is ``a_k a_l`` (calm) or ``c_k c_l`` on
    crash days (the common factor's innovation below ``-crash_z``)."""

    assets: tuple[str, ...] = ("BTC", "ETH", "SOL", "LINK")
    vol: tuple[float, ...] = (0.035, 0.045, 0.060, 0.060)  # long-run daily volatility
    loading_calm: tuple[float, ...] = (0.85, 0.90, 0.80, 0.78)
    loading_crash: tuple[float, ...] = (0.97, 0.98, 0.96, 0.95)
    crash_z: float = 1.5
    nu: float = 4.5  # Student-t degrees of freedom of every innovation (standardised to unit variance)
    garch_alpha: float = 0.08
    garch_beta: float = 0.90


def _std_t(rng: np.random.Generator, nu: float, size: tuple[int, ...]) -> np.ndarray:
    return rng.standard_t(nu, size=size) * np.sqrt((nu - 2.0) / nu)


def synthetic(days: int = 2000, seed: int = 7, model: SyntheticModel = SyntheticModel()) -> History:
    """``days`` daily log returns from ``model``, deterministic for ``seed``."""
    if days < 30:
        raise ConfigError(f"days = {days}: a synthetic history needs at least 30 days")
    n = len(model.assets)
    rng = np.random.default_rng(seed)
    vol = np.asarray(model.vol)
    a_calm, a_crash = np.asarray(model.loading_calm), np.asarray(model.loading_crash)
    omega = vol**2 * (1.0 - model.garch_alpha - model.garch_beta)
    burn = 250
    m = _std_t(rng, model.nu, (days + burn,))
    e = _std_t(rng, model.nu, (days + burn, n))
    var = vol**2
    out = np.empty((days + burn, n))
    for t in range(days + burn):
        a = a_crash if m[t] < -model.crash_z else a_calm
        z = a * m[t] + np.sqrt(1.0 - a**2) * e[t]
        r = np.sqrt(var) * z
        out[t] = r
        var = omega + model.garch_alpha * r**2 + model.garch_beta * var
    returns = out[burn:]
    return History("synthetic", model.assets, returns, tuple(str(d) for d in range(days)),
                   f"synthetic GARCH(1,1)-t({model.nu}) factor model, crash correlations, seed {seed}, {days} days")


REAL_SETS = ("sp500", "nasdaq", "sp500_nasdaq")


def real(name: str = "sp500_nasdaq") -> History:
    """Daily log returns of adjusted closes from ``arch.data``: ``sp500``, ``nasdaq`` or both (``sp500_nasdaq``)."""
    if name not in REAL_SETS:
        raise ConfigError(f"dataset {name!r} is unknown: choose one of {', '.join(REAL_SETS)}")
    need = f"dataset {name!r}"
    frames = {"SPX": optional("arch.data.sp500", need).load, "NDX": optional("arch.data.nasdaq", need).load}
    picked = {"sp500": ("SPX",), "nasdaq": ("NDX",), "sp500_nasdaq": ("SPX", "NDX")}[name]
    closes = [frames[a]()["Adj Close"] for a in picked]
    index = closes[0].index
    for c in closes[1:]:
        index = index.intersection(c.index)
    mat = np.column_stack([np.log(c.loc[index].to_numpy(dtype=float)) for c in closes])
    returns = np.diff(mat, axis=0)
    dates = tuple(d.strftime("%Y-%m-%d") for d in index[1:])
    return History(name, picked, returns, dates,
                   f"arch.data daily adjusted closes ({', '.join(picked)}), {dates[0]} to {dates[-1]}: equity "
                   "indices, not crypto; daily, no intraday; trading days only")


def load_csv(path: Path | str) -> History:
    """Daily closes from a CSV with a header ``date,<asset>,...``; returns are log differences."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"price file {p} does not exist: give a CSV with columns date,<asset>,...")
    with p.open() as f:
        rows = list(csv.reader(f))
    if len(rows) < 32 or len(rows[0]) < 2:
        raise ConfigError(f"price file {p}: need a header (date,<asset>,...) and at least 31 daily rows")
    header = rows[0]
    try:
        closes = np.array([[float(x) for x in r[1:]] for r in rows[1:]])
    except ValueError as e:
        raise ConfigError(f"price file {p}: a close is not a number ({e}); fix the row") from None
    if (closes <= 0).any():
        raise ConfigError(f"price file {p}: closes must be positive")
    returns = np.diff(np.log(closes), axis=0)
    return History(p.stem, tuple(header[1:]), returns, tuple(r[0] for r in rows[2:]), f"closes from {p}")


def load(dataset: str, days: int = 2000, seed: int = 7) -> History:
    """``synthetic``, one of :data:`REAL_SETS`, or a path to a CSV file."""
    if dataset == "synthetic":
        return synthetic(days, seed)
    if dataset in REAL_SETS:
        return real(dataset)
    if dataset.endswith(".csv"):
        return load_csv(dataset)
    raise ConfigError(f"dataset {dataset!r}: use 'synthetic', one of {', '.join(REAL_SETS)}, or a .csv file")
