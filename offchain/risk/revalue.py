"""Full revaluation of option books in scenarios of prices *and volatilities*, shared by VaR (:mod:`.var`), the
stress table (:mod:`.stress`) and the cascade (:mod:`.cascade`).

An option book is revalued with Black-Scholes (zero rate, the smile of the OPTION word taken at the scenario's own
spot: :meth:`offchain.margin.vector.OptionBook.unit_values`) at each scenario's prices and volatilities, never from
its delta: a delta-hedged short straddle loses in both tails, which a delta approximation reports as no risk.

**Volatility in a scenario** (a stated model, the implied-volatility proxy of :mod:`.option_backtest`): the
annualised volatility of asset k moves with its own return as an EWMA variance does,

    sigma_k' = sigma_k sqrt(lam^h + (1 - lam^h) z_k^2),      z_k = ln(1 + x_k) / (s_k sqrt(h)),

with ``x_k`` the scenario's move over the horizon of ``h`` days, ``s_k`` the daily volatility forecast the scenarios
were drawn with and ``lam`` 0.94 (the move spread evenly over the ``h`` days; ``h = 1`` is exactly the proxy's
one-day update in option_backtest: the next day's volatility is the proxy after that day's return). A move of one
standard deviation leaves the volatility where it is, a 3-sigma day raises it by 22%, a 10-sigma day by 163%, and a
quiet day lowers it by at most 3% (``sqrt(0.94)``). Limits: the volatility cannot move without a price move (no
volatility crush after an event, no spike ahead of one), rises the same for a fall and a rally of the same size, and
moves every maturity and strike by the same factor (one volatility per asset, the smile bending it by strike).

The stress library and the cascade state their volatility shocks per scenario instead (:func:`spike_rule`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..margin.vector import (MarginArrays, OptionArrays, OptionBook, OptionTerms, series_grid, series_stress,
                             stress_points, stress_worst)
from .ewma import RISKMETRICS_LAMBDA

YEAR_DAYS = 365  # crypto trades every day (option_backtest's convention)
# The local deployment's mock volatility feeds by asset (scripts/deploy.py START_VOLS): the annualised volatility the
# stress table and the cascade value options at before their shocks.
START_VOLS = (0.6, 0.75, 1.0, 1.0)
# The stress library's and the cascade's volatility shock (spike_rule): x (1 + FALL_SPIKE |move|) for a fall, x (1 +
# RISE_SPIKE move) for a rise, at most MAX_SPIKE.
FALL_SPIKE, RISE_SPIKE, MAX_SPIKE = 2.5, 0.5, 2.5


def spike_rule(move: float) -> float:
    """The volatility multiplier a stress scenario or a cascade crash pairs with a price move of ``move``
    (fraction): ``1 + 2.5 |move|`` for a fall (-20%: x1.5, -35%: x1.875, -50%: x2.25), ``1 + 0.5 move`` for a rise,
    at most x2.5. Judgement, not a fit: the data hold no implied volatility; it makes crypto's fall-and-spike pattern
    (implied volatility roughly doubling in a -50% crash) explicit and one rule for every scenario."""
    m = 1.0 + (FALL_SPIKE * -move if move < 0 else RISE_SPIKE * move)
    return float(min(m, MAX_SPIKE))


@dataclass(frozen=True)
class VolModel:
    """The volatility of a scenario from its returns (the module docstring): EWMA decay ``lam``."""

    lam: float = RISKMETRICS_LAMBDA

    def multipliers(self, moves: np.ndarray, daily_sigma: np.ndarray, horizon: float = 1.0) -> np.ndarray:
        """sigma' / sigma per scenario and asset, (..., K), for simple-return ``moves`` (..., K) drawn with daily
        volatility ``daily_sigma`` (K,) over ``horizon`` days (an asset with no volatility keeps its own)."""
        s = np.asarray(daily_sigma, float) * np.sqrt(horizon)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(s > 0, np.log1p(np.asarray(moves, float)) / np.where(s > 0, s, 1.0), 0.0)
        w = self.lam ** horizon
        return np.sqrt(w + (1.0 - w) * z * z)


@dataclass(frozen=True)
class OptionHoldings:
    """The option positions of ``A`` accounts (``book``: sizes (A, S) over a listing), the OPTION word's figures
    and today's volatility per asset (annualised, (K,))."""

    book: OptionBook
    oarr: OptionArrays
    sigma: np.ndarray

    @property
    def n_assets(self) -> int:
        return len(self.oarr.skew)

    def per_asset(self, prices: np.ndarray, sigma: np.ndarray | None = None, elapsed: float = 0.0) -> np.ndarray:
        """Position values summed per asset, (..., A, K), at ``prices`` (..., K) and volatilities ``sigma`` (...,
        K; default today's), ``elapsed`` years later."""
        sig = self.sigma if sigma is None else sigma
        spot, s = self.book.per_series(prices, sig)
        return self.book.by_asset(self.book.unit_values(spot, s, self.oarr, elapsed), self.n_assets)

    def values(self, prices: np.ndarray, sigma: np.ndarray | None = None, elapsed: float = 0.0) -> np.ndarray:
        """Position values per account, (..., A)."""
        return self.per_asset(prices, sigma, elapsed).sum(-1)

    def delta_sensitivity(self, prices: np.ndarray) -> np.ndarray:
        """The options' delta as a sensitivity, (A, K): d value / d (relative move) = sum size delta S per asset,
        at today's volatility: what a delta approximation (and the parametric VaR) sees of the options."""
        p = np.asarray(prices, float)
        spot, sig = self.book.per_series(p, self.sigma)
        unit = self.book.unit_deltas(spot, sig, self.oarr) * spot
        return self.book.by_asset(unit, self.n_assets)

    def losses(self, prices: np.ndarray, moves: np.ndarray, vol_mults: np.ndarray | float = 1.0,
               elapsed: float = 0.0) -> np.ndarray:
        """Loss of the options per scenario, account and asset, (N, A, K): today's value minus the value at
        ``prices (1 + moves)`` (moves (N, K)) and volatilities ``sigma x vol_mults`` ((N, K) or a scalar),
        ``elapsed`` years later (revalued in full)."""
        p = np.asarray(prices, float)
        after = self.per_asset(p * (1.0 + np.asarray(moves, float)), self.sigma * np.asarray(vol_mults, float),
                               elapsed)
        return self.per_asset(p) - after


def run_option_terms(size: np.ndarray, listing: OptionBook, prices: np.ndarray, sigma: np.ndarray,
                     arr: MarginArrays, oarr: OptionArrays) -> tuple[OptionTerms, np.ndarray, np.ndarray]:
    """The option parts of the margin (:func:`offchain.margin.vector.option_terms`) and the position values for sizes
    that differ between runs (a simulation liquidates different positions in each run): ``size`` (R, A, S) over one
    shared ``listing`` (series arrays (S,)), ``prices`` (R, K), ``sigma`` (K,) or (R, K). Returns (terms, values (R,
    A), unit values (R, S)). The same building blocks as ``option_terms`` (the grid and stress losses of one unit
    of each series, then the positions' sums per asset), with the run axis on the sizes too."""
    k = len(arr.rw)
    asset = np.asarray(listing.asset)
    unit_grid = series_grid(listing, prices, sigma, arr.rw, oarr)[..., 0, :, :, :]  # (R, S, X, 3)
    lead = np.broadcast_shapes(size.shape[:-2], unit_grid.shape[:-3]) + size.shape[-2:-1]  # (R, A)
    grid = np.zeros(lead + (k,) + unit_grid.shape[-2:])
    stress = np.zeros(lead + (k, len(arr.stress), 2))
    unit_stress = series_stress(listing, prices, sigma, arr.stress, oarr)[..., 0, :, :, :] if len(arr.stress) else None
    for a in np.unique(asset):  # the positions' sums per asset: one batched product per asset
        idx = np.flatnonzero(asset == a)
        q = size[..., idx]  # (R, A, n)
        g = unit_grid[..., idx, :, :]
        r = q @ g.reshape(g.shape[:-3] + (len(idx), -1))
        grid[..., a, :, :] = r.reshape(r.shape[:-1] + g.shape[-2:])
        if unit_stress is not None:
            u = unit_stress[..., idx, :, :]
            r = q @ u.reshape(u.shape[:-3] + (len(idx), -1))
            stress[..., a, :, :] = r.reshape(r.shape[:-1] + u.shape[-2:])
    o = stress_worst(grid, stress, stress_points(arr.stress, arr.rw, oarr.steps))
    spot, sig = listing.per_series(prices, sigma)  # (R, 1, S)
    m = (np.maximum(-size, 0.0) * spot).sum(-1) * oarr.short_min
    unit = listing.unit_values(spot, sig, oarr)[..., 0, :]  # (R, S)
    return OptionTerms(grid, o, m), (size * unit[..., None, :]).sum(-1), unit
