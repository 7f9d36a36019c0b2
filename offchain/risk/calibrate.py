"""Recalibration: risk weights, correlations and stress vectors estimated from a price history, as a RiskSpec.

The model, for each asset k at the end of the history (or at any day t, for the rolling backtest):

- volatility: the EWMA forecast ``sigma_k`` (decay ``lam``, RiskMetrics 0.94);
- anti-procyclical floor: ``sigma_used = max(sigma_k, apc_floor * sigma_long_k)``, where ``sigma_long_k`` is the
  root mean square return over the last ``apc_lookback`` days (10 years by default, the EMIR Art. 28 option (c)
  style floor): in calm markets the EWMA estimate falls, the floor keeps the requirement from following it all the way
  down, so it need not jump when volatility returns;
- risk weight: the normal Expected Shortfall at ``es_level`` over the liquidation horizon,
  ``RW_k = sigma_used * sqrt(horizon) * phi(z) / (1 - es_level)``, rounded up to a basis point, bounded 1% .. 100%
  (the contract's bounds). With fat tails a normal ES at 99% sits near the true 99% VaR; the backtest checks it;
- correlations: the EWMA correlation matrix, repaired to the nearest PSD correlation matrix, rounded to basis points;
  the contract derives the low/high regimes itself;
- stress vectors, scaled from the risk weights in the proportions of the default set: crash/rally ``-/+RW_k``;
  leader up, others down ``(+0.4 RW_0, -0.5 RW_k)`` and the reverse; for each other asset alone, a collapse of
  ``collapse_multiple`` x its RW (small caps, ``collapse_assets``: SOL, LINK; a jump that daily volatility does not
  describe, set by judgement as in the default set) or a decoupling of ``decouple_multiple`` x the ES of its
  residual against the leader, ``sigma_k sqrt(1 - rho_0k^2)`` (ETH: measured, where the default set uses 1.25 x RW);
- haircuts ``ceil_50bps(haircut_ratio * RW)`` of the collateral's asset, liquidation discounts half the haircut.
Everything else (alpha, basis, floor, markets, liquidation, band, delay) is kept from the base spec.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from ..margin.defaults import ASSETS, DEFAULT_SPEC
from .ewma import correlation_from_covariance, ewma_covariance, nearest_correlation
from ..margin.exact import BPS
from ..margin.params import RiskSpec, StressVector
from ..margin.vector import MarginArrays, requirement



class CalibrationSettings(BaseModel):
    """Settings of the calibration (and of the rolling model the backtest runs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    lam: float = Field(default=0.94, gt=0.0, lt=1.0, description="EWMA decay (RiskMetrics: 0.94 for daily data)")
    horizon_days: float = Field(default=1.0, gt=0.0, le=10.0, description="liquidation horizon, days")
    es_level: float = Field(default=0.99, gt=0.5, lt=1.0, description="level of the Expected Shortfall behind RW")
    apc_floor: float = Field(default=0.5, ge=0.0, le=1.0,
                             description="risk weights never below this fraction of the long-run volatility's")
    apc_lookback: int = Field(default=2520, ge=250, description="days of the long-run volatility (floor)")
    haircut_ratio: float = Field(default=0.8, ge=0.0, le=1.0, description="haircut = ratio x RW of the asset")
    collapse_assets: tuple[str, ...] = Field(default=("SOL", "LINK"),
                                             description="assets whose single-asset vector is a collapse (x RW)")
    collapse_multiple: float = Field(default=5 / 3, gt=0.0, le=5.0, description="collapse shock = multiple x RW")
    decouple_multiple: float = Field(default=1.0, gt=0.0, le=5.0,
                                     description="decoupling shock = multiple x ES of the residual vs the leader")


def es_multiple(level: float) -> float:
    """phi(z) / (1 - level): the normal ES in units of sigma."""
    return float(stats.norm.pdf(stats.norm.ppf(level)) / (1.0 - level))


def risk_weights_bps(sigma: np.ndarray, sigma_long: np.ndarray, s: CalibrationSettings) -> np.ndarray:
    """Risk weights (integer bps, 100 .. 10_000) from today's and the long-run daily volatility."""
    used = np.maximum(sigma, s.apc_floor * sigma_long)
    raw = used * math.sqrt(s.horizon_days) * es_multiple(s.es_level) * BPS
    return np.clip(np.ceil(raw - 1e-9), 100, BPS).astype(int)


def stress_vectors_bps(rw: np.ndarray, names: tuple[str, ...], s: CalibrationSettings,
                       resid_bps: np.ndarray | None = None) -> list[tuple[str, list[int]]]:
    """(name, shocks in bps per asset): crash, rally, leader up / others down and the reverse, then one single-asset
    vector per other asset: a collapse (``collapse_multiple`` x RW) for ``collapse_assets``, else a decoupling of
    ``decouple_multiple`` x ``resid_bps`` (the ES of the asset's residual against the leader; RW when not given)."""
    k = len(rw)
    out = [("crash", [-int(x) for x in rw]), ("rally", [int(x) for x in rw])]
    if k > 1:
        lead = names[0].lower()
        up = [int(math.ceil(0.4 * rw[0]))] + [-int(math.ceil(0.5 * x)) for x in rw[1:]]
        out.append((f"{lead}_up_alts_down", up))
        out.append((f"{lead}_down_alts_up", [-x for x in up]))
        for a in range(1, k):
            shock = [0] * k
            if names[a] in s.collapse_assets:
                shock[a] = -min(BPS, int(math.ceil(s.collapse_multiple * rw[a] - 1e-9)))
                out.append((f"{names[a].lower()}_collapse", shock))
            else:
                base = rw[a] if resid_bps is None else resid_bps[a]
                shock[a] = -min(BPS, max(100, int(math.ceil(s.decouple_multiple * base - 1e-9))))
                out.append((f"{names[a].lower()}_decouple", shock))
    return out


def residual_es_bps(sigma_used: np.ndarray, rho: np.ndarray, s: CalibrationSettings) -> np.ndarray:
    """ES (bps) over the horizon of each asset's move beyond what the leader (asset 0) explains:
    ``sigma_used_k sqrt(1 - rho_0k^2)``."""
    resid = sigma_used * np.sqrt(np.clip(1.0 - rho[0] ** 2, 0.0, None))
    return np.ceil(resid * math.sqrt(s.horizon_days) * es_multiple(s.es_level) * BPS - 1e-9)


def correlations_bps(rho: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(nearest_correlation(rho) * BPS), -BPS, BPS).astype(int)


class RollingModel:
    """The calibration model evaluated at every day of a history (what ``calibrate`` would publish that morning)."""

    def __init__(self, returns: np.ndarray, settings: CalibrationSettings) -> None:
        self.r = np.asarray(returns, dtype=float)
        self.s = settings
        self.cov = ewma_covariance(self.r, settings.lam)
        self.csum = np.concatenate([np.zeros((1, self.r.shape[1])), np.cumsum(self.r**2, axis=0)])
        self.names = tuple(f"a{k}" for k in range(self.r.shape[1]))

    def sigma_long(self, t: int) -> np.ndarray:
        lo = max(0, t - self.s.apc_lookback)
        return np.sqrt((self.csum[t] - self.csum[lo]) / max(t - lo, 1))

    def parameters(self, t: int) -> tuple[np.ndarray, np.ndarray, list[tuple[str, list[int]]]]:
        """(RW bps, correlation bps, stress vectors) from the returns before day ``t``."""
        cov = self.cov[t]
        sigma = np.sqrt(np.diag(cov))
        sigma_long = self.sigma_long(t)
        rw = risk_weights_bps(sigma, sigma_long, self.s)
        rho = correlations_bps(correlation_from_covariance(cov))
        resid = residual_es_bps(np.maximum(sigma, self.s.apc_floor * sigma_long), rho / BPS, self.s)
        return rw, rho, stress_vectors_bps(rw, self.names, self.s, resid)

    def arrays(self, t: int, base: RiskSpec = DEFAULT_SPEC) -> MarginArrays:
        rw, rho_bps, vectors = self.parameters(t)
        med = rho_bps / BPS
        low, high = np.maximum(2 * med - 1, 0.75 * med), np.minimum(1.25 * med, 1.0)
        for m in (low, high):
            np.fill_diagonal(m, 1.0)
        stress = np.array([v for _, v in vectors], dtype=float) / BPS
        return MarginArrays(rw / BPS, np.stack([low, med, high]), stress, base.alpha_bps / BPS,
                            base.basis_bps / BPS, base.floor_bps / BPS, np.zeros(0))

    def requirement(self, t: int, delta: np.ndarray) -> float:
        """MM (USD) of a perpetuals-only portfolio with net delta ``delta`` (K,) on day ``t``."""
        mm, _ = requirement(delta[None, :], np.abs(delta)[None, :], self.arrays(t))
        return float(mm[0])


@dataclass(frozen=True)
class Calibration:
    spec: RiskSpec
    report: dict


def asset_indices(names: tuple[str, ...]) -> tuple[tuple[int, ...], str | None]:
    """Spec asset index of each history column: by name when they are the deployment's assets, else in order."""
    if all(n in ASSETS for n in names):
        return tuple(ASSETS.index(n) for n in names), None
    return tuple(range(len(names))), (f"history assets {', '.join(names)} are not the deployment's "
                                      f"({', '.join(ASSETS)}): mapped in order to asset indices "
                                      f"0..{len(names) - 1}; use the result for analysis, not for a proposal")


def calibrate(returns: np.ndarray, names: tuple[str, ...], settings: CalibrationSettings = CalibrationSettings(),
              base: RiskSpec = DEFAULT_SPEC, source: str = "") -> Calibration:
    """A RiskSpec estimated from daily log ``returns`` (T, K) whose columns are the assets ``names``."""
    r = np.asarray(returns, dtype=float)
    if r.ndim != 2 or r.shape[1] != len(names):
        raise ValueError(f"returns of shape {r.shape} do not match {len(names)} asset names")
    if len(r) < 250:
        raise ValueError(f"{len(r)} days of history: calibration needs at least 250")
    idx, warning = asset_indices(names)
    model = RollingModel(r, settings)
    model.names = names
    t = len(r)
    rw, rho, vectors = model.parameters(t)
    sigma = np.sqrt(np.diag(model.cov[t]))
    sigma_long = model.sigma_long(t)
    risk_weights = dict(base.risk_weights)
    correlations = dict(base.correlations)
    haircuts, discounts = dict(base.haircuts), dict(base.discounts)
    for a, k in enumerate(idx):
        risk_weights[k] = int(rw[a])
        for b in range(a + 1, len(idx)):
            key = (min(k, idx[b]), max(k, idx[b]))
            correlations[key] = int(rho[a, b])
    asset_of = {k: a for a, k in enumerate(idx)}
    collateral_asset = {0: 0, 1: 1, 2: 2, 3: 3}  # the local listing: collateral j is on asset j
    for j in base.haircuts:
        a = asset_of.get(collateral_asset.get(j, -1))
        if a is None:
            continue
        h = int(min(BPS, 50 * math.ceil(settings.haircut_ratio * rw[a] / 50)))
        haircuts[j] = h
        discounts[j] = min(5000, h // 2)
    stress = []
    for name, shocks in vectors:
        stress.append(StressVector(name=name, shocks={idx[a]: v for a, v in enumerate(shocks) if v}))
    spec = base.model_copy(update={"risk_weights": risk_weights, "correlations": correlations, "stress": stress,
                                   "haircuts": haircuts, "discounts": discounts})
    spec = RiskSpec.model_validate(spec.model_dump())  # re-run every check on the result
    report = {
        "source": source, "days": int(len(r)), "settings": settings.model_dump(),
        "es_multiple": es_multiple(settings.es_level),
        "assets": {
            names[a]: {"asset_index": idx[a], "sigma_ewma_daily": float(sigma[a]),
                       "sigma_long_daily": float(sigma_long[a]),
                       "floor_binding": bool(settings.apc_floor * sigma_long[a] > sigma[a]),
                       "risk_weight_bps": int(rw[a]), "base_risk_weight_bps": base.risk_weights.get(idx[a])}
            for a in range(len(names))},
        "correlations_bps": {f"{names[a]}-{names[b]}": int(rho[a, b])
                             for a in range(len(names)) for b in range(a + 1, len(names))},
        "stress": [{"name": n, "shocks_bps": dict(zip(names, v))} for n, v in vectors],
        "warnings": [warning] if warning else [],
    }
    return Calibration(spec, report)
