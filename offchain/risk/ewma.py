"""EWMA volatility and correlation (RiskMetrics), the contract's three correlation regimes, and PSD repair.

Conventions: ``returns`` are log returns, one row per day, one column per asset (``numpy`` arrays, float64).
The RiskMetrics recursion with decay ``lam`` (0.94 for daily data) is

    sigma2_t = lam * sigma2_{t-1} + (1 - lam) * r_{t-1}^2

so ``sigma2_t`` is the forecast for day ``t`` made with the returns up to day ``t - 1``. It equals the explicit
weighted sum ``(1 - lam) * sum_{i>=1} lam^(i-1) r_{t-i}^2`` plus ``lam^t`` times the seed, which the tests check.
"""
from __future__ import annotations

import numpy as np

RISKMETRICS_LAMBDA = 0.94


def _check_lambda(lam: float) -> None:
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lam = {lam} must lie strictly between 0 and 1 (RiskMetrics uses 0.94 for daily data)")


def ewma_variance(returns: np.ndarray, lam: float = RISKMETRICS_LAMBDA, seed: np.ndarray | float | None = None,
                  warmup: int = 30) -> np.ndarray:
    """One-step-ahead EWMA variance forecasts, shape ``(T + 1, N)`` for returns of shape ``(T, N)`` (or ``(T,)``).

    Row ``t`` uses returns ``0 .. t-1`` only; row ``T`` is the forecast for the day after the sample. The recursion
    is seeded with ``seed`` (default: the sample variance of the first ``warmup`` returns, a common choice).
    """
    _check_lambda(lam)
    r = np.asarray(returns, dtype=float)
    one_dim = r.ndim == 1
    r2 = r.reshape(len(r), -1) ** 2
    if seed is None:
        head = r.reshape(len(r), -1)[: max(2, min(warmup, len(r)))]
        seed = np.mean(head**2, axis=0)
    out = np.empty((len(r2) + 1, r2.shape[1]))
    out[0] = seed
    for t in range(len(r2)):
        out[t + 1] = lam * out[t] + (1.0 - lam) * r2[t]
    return out[:, 0] if one_dim else out


def ewma_weights(n: int, lam: float = RISKMETRICS_LAMBDA) -> np.ndarray:
    """The weights of the last ``n`` observations, newest first: ``(1 - lam) * lam^i`` for ``i = 0 .. n-1``."""
    _check_lambda(lam)
    return (1.0 - lam) * lam ** np.arange(n)


def ewma_covariance(returns: np.ndarray, lam: float = RISKMETRICS_LAMBDA, warmup: int = 30) -> np.ndarray:
    """One-step-ahead EWMA covariance matrices, shape ``(T + 1, N, N)`` (row ``t`` from returns ``0 .. t-1``)."""
    _check_lambda(lam)
    r = np.asarray(returns, dtype=float)
    head = r[: max(2, min(warmup, len(r)))]
    out = np.empty((len(r) + 1, r.shape[1], r.shape[1]))
    out[0] = head.T @ head / len(head)
    for t in range(len(r)):
        out[t + 1] = lam * out[t] + (1.0 - lam) * np.outer(r[t], r[t])
    return out


def correlation_from_covariance(cov: np.ndarray) -> np.ndarray:
    """Correlation matrix (or a stack of them) from covariance; a zero variance gives zero correlations."""
    sd = np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 0.0, None))
    denom = sd[..., :, None] * sd[..., None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(denom > 0, cov / np.where(denom > 0, denom, 1.0), 0.0)
    idx = np.arange(cov.shape[-1])
    rho[..., idx, idx] = 1.0
    return rho


def regimes(rho: np.ndarray | float) -> tuple:
    """(low, medium, high) correlation regimes, as the contract computes them:
    high = min(1.25 rho, 1), low = max(2 rho - 1, 0.75 rho). Diagonals stay 1."""
    r = np.asarray(rho, dtype=float)
    low = np.maximum(2.0 * r - 1.0, 0.75 * r)
    high = np.minimum(1.25 * r, 1.0)
    if r.ndim == 2:
        idx = np.arange(r.shape[0])
        low[idx, idx] = high[idx, idx] = 1.0
    return low, r, high


def nearest_correlation(rho: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """A positive-semidefinite correlation matrix close to ``rho``: eigenvalues clipped at ``eps`` (>= 0), then
    rescaled so the diagonal is exactly 1 again (``D^-1/2 A D^-1/2`` keeps PSD). A PSD input comes back unchanged."""
    a = 0.5 * (np.asarray(rho, dtype=float) + np.asarray(rho, dtype=float).T)
    w, v = np.linalg.eigh(a)
    if w.min() >= eps:
        return a
    b = (v * np.maximum(w, eps)) @ v.T
    d = np.sqrt(np.diag(b))
    out = b / np.outer(d, d)
    np.fill_diagonal(out, 1.0)
    return 0.5 * (out + out.T)


def repair_covariance(cov: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """PSD repair of a covariance matrix that keeps its diagonal (the variances): repair the correlation, rescale."""
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    rho = nearest_correlation(correlation_from_covariance(cov), eps)
    return rho * np.outer(sd, sd)


def regimes_psd(rho: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three regimes, each repaired to the nearest PSD correlation matrix (the high regime of a PSD matrix need
    not be PSD: capping at 1 breaks it). For analytics; the contract takes the raw regimes and floors Q at zero."""
    return tuple(nearest_correlation(m) for m in regimes(rho))  # type: ignore[return-value]
