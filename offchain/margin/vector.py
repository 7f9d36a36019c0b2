"""The portfolio margin vectorised in float64 over many accounts and many price scenarios at once.

The same formula as the exact mirror (:mod:`offchain.margin.exact`), without the integer rounding: a float
equivalent for the keeper's screen (:mod:`offchain.margin.screen`) and for simulations (cascades, stress tables, VaR). The tests compare it with ``account_margin`` on whole
populations (relative difference below 1e-9). Shapes: ``A`` accounts, ``K`` assets, ``M`` markets, ``J``
collaterals, and any leading scenario shape ``...`` on prices (``(..., K)``) that broadcasts through every result
(``(..., A)``). USD amounts are floats in whole USD.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .exact import BPS, WAD, AccountState, Layout, MarginConfig


@dataclass(frozen=True)
class MarginArrays:
    """A :class:`MarginConfig` decoded into arrays (ratios as fractions)."""

    rw: np.ndarray  # (K,)
    rho: np.ndarray  # (3, K, K) low, medium, high regimes, unit diagonal
    stress: np.ndarray  # (S, K) shocks as fractions of price
    alpha: float
    basis: float
    floor: float
    haircut: np.ndarray  # (J,)
    vol_scale: np.ndarray | None = None  # (K,) volatility scalers (>= 1), or (..., 1, K) per scenario; None: all 1
    corr_break: float = 0.0  # share of each low-regime hedging credit withdrawn
    depth: np.ndarray | None = None  # (16,) liquidation depth per market, USD (0: no concentration charge)

    @classmethod
    def from_config(cls, cfg: MarginConfig, n_assets: int, n_collaterals: int) -> "MarginArrays":
        k = n_assets
        med = np.eye(k)
        for a in range(k):
            for b in range(a + 1, k):
                med[a, b] = med[b, a] = cfg.correlation(a, b) / BPS
        low = np.maximum(2 * med - 1, 0.75 * med)
        high = np.minimum(1.25 * med, 1.0)
        for m in (low, high):
            np.fill_diagonal(m, 1.0)
        stress = np.array([[cfg.shock(s, a) / BPS for a in range(k)] for s in range(cfg.num_stress)]).reshape(-1, k)
        vol = np.array([cfg.vol_scaler(a) / BPS for a in range(k)])
        depth = np.array([cfg.depth(m) / WAD for m in range(16)])
        return cls(np.array([cfg.risk_weight(a) / BPS for a in range(k)]), np.stack([low, med, high]), stress,
                   cfg.alpha / BPS, cfg.basis_addon / BPS, cfg.floor_rate / BPS,
                   np.array([cfg.haircut(j) / BPS for j in range(n_collaterals)]),
                   vol if (vol != 1.0).any() else None, cfg.correlation_break / BPS,
                   depth if depth.any() else None)


@dataclass
class Portfolio:
    """Many accounts as arrays (floats): settlement USD, position sizes (units) and open notional (USD) per market,
    collateral amounts (whole tokens) per collateral id. Mutable: the cascade simulation updates it in place."""

    settlement: np.ndarray  # (A,) or (R, A) once copied per run
    size: np.ndarray  # (A, M)
    open_notional: np.ndarray  # (A, M)
    collateral: np.ndarray  # (A, J)
    market_asset: np.ndarray  # (M,)
    collateral_asset: np.ndarray  # (J,)
    n_assets: int

    @classmethod
    def from_states(cls, states: Sequence[AccountState], layout: Layout, n_assets: int | None = None) -> "Portfolio":
        a, m, j = len(states), len(layout.market_asset), len(layout.collateral_asset)
        n_assets = n_assets or 1 + max(layout.market_asset + layout.collateral_asset)
        settle, size, on, coll = np.zeros(a), np.zeros((a, m)), np.zeros((a, m)), np.zeros((a, j))
        for i, s in enumerate(states):
            settle[i] = s.settlement / WAD
            for mk, (q, o) in s.positions.items():
                size[i, mk] = q / WAD
                on[i, mk] = o / WAD
            for c, bal in s.collateral.items():
                coll[i, c] = bal / 10 ** layout.collateral_decimals[c]
        return cls(settle, size, on, coll, np.asarray(layout.market_asset), np.asarray(layout.collateral_asset),
                   n_assets)

    def copy(self) -> "Portfolio":
        return Portfolio(self.settlement.copy(), self.size.copy(), self.open_notional.copy(), self.collateral.copy(),
                         self.market_asset, self.collateral_asset, self.n_assets)

    def _onehot(self) -> tuple[np.ndarray, np.ndarray]:
        mk = np.zeros((len(self.market_asset), self.n_assets))
        mk[np.arange(len(self.market_asset)), self.market_asset] = 1.0
        cj = np.zeros((len(self.collateral_asset), self.n_assets))
        cj[np.arange(len(self.collateral_asset)), self.collateral_asset] = 1.0
        return mk, cj

    def values(self, prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position values (..., A, M), collateral values (..., A, J)) in USD at ``prices`` (..., K)."""
        p = np.asarray(prices, dtype=float)
        pm = p[..., self.market_asset][..., None, :]
        pc = p[..., self.collateral_asset][..., None, :]
        return self.size * pm, self.collateral * pc

    def exposure(self, prices: np.ndarray, haircut: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(equity (..., A), net delta (..., A, K), gross (..., A, K))."""
        v, c = self.values(prices)
        mk, cj = self._onehot()
        equity = self.settlement + (c * (1.0 - haircut)).sum(-1) + (v - self.open_notional).sum(-1)
        delta = v @ mk + c @ cj
        gross = np.abs(v) @ mk + c @ cj
        return equity, delta, gross

    def sensitivity(self, prices: np.ndarray, haircut: np.ndarray) -> np.ndarray:
        """d equity / d (relative price move) per asset, (..., A, K): position values plus haircut collateral values.
        Equity after a move ``x`` (fractions, (..., K)) is exactly ``equity + sensitivity @ x`` (equity is linear in
        prices)."""
        v, c = self.values(prices)
        mk, cj = self._onehot()
        return v @ mk + (c * (1.0 - haircut)) @ cj


@dataclass(frozen=True)
class Margin:
    equity: np.ndarray
    maintenance: np.ndarray
    initial: np.ndarray
    gross: np.ndarray  # (..., A) sum over assets
    delta: np.ndarray  # (..., A, K)


def concentration(notional: np.ndarray, arr: MarginArrays) -> np.ndarray | float:
    """The concentration charge sum_m N_m sqrt(N_m / L_m) of |position values| ``notional`` (..., A, M), USD."""
    if arr.depth is None:
        return 0.0
    depth = arr.depth[:notional.shape[-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(depth > 0, notional * np.sqrt(notional / np.where(depth > 0, depth, 1.0)), 0.0)
    return c.sum(-1)


def requirement(delta: np.ndarray, gross: np.ndarray, arr: MarginArrays,
                notional: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(MM, IM) from net delta and gross per asset (..., A, K) and the |value| of each position (..., A, M) (for the
    concentration charge; None: no positions known, no charge): the float form of ``exact.breakdown``, and the one
    float evaluation of the formula (the keeper's screen and every analytic use it).

    The products with the small parameter matrices are ``np.einsum`` rather than ``@``: on a million rows ``@`` goes
    to multi-threaded BLAS, whose threads wait for each other whenever another process holds a core (the node, on a
    keeper machine), which made the screen 2-5x slower and erratic on 2 cores; einsum runs in the calling thread."""
    ws = delta * arr.rw
    k = np.zeros(delta.shape[:-1])
    for r, rho in enumerate(arr.rho):  # the regimes: the largest charge wins
        if r == 0 and arr.corr_break > 0:  # the low regime without part of its hedging credits
            t = ws[..., :, None] * ws[..., None, :] * rho
            q = (t - arr.corr_break * np.minimum(t, 0.0)).sum((-1, -2))
        else:
            q = np.einsum("...k,...k->...", np.einsum("...j,jk->...k", ws, rho), ws)
        np.maximum(k, np.sqrt(np.maximum(q, 0.0)), out=k)
    if arr.vol_scale is not None:
        w = np.abs(ws)
        den = w.sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            # (K,) scalers, or scalers broadcasting against the sensitivities (a simulation's per-run scalers)
            num = np.einsum("...k,k->...", w, arr.vol_scale) if arr.vol_scale.ndim == 1 else (w * arr.vol_scale).sum(-1)
            k *= np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    if len(arr.stress):
        np.maximum(k, (-np.einsum("...k,sk->...s", delta, arr.stress)).max(axis=-1), out=k)
    absd = np.abs(delta)
    extra = concentration(notional, arr) if notional is not None else 0.0
    mm = np.maximum(k + arr.basis * (gross - absd).sum(-1) + extra, arr.floor * absd.sum(-1))
    return mm, arr.alpha * mm


def margin(portfolio: Portfolio, prices: np.ndarray, arr: MarginArrays) -> Margin:
    """Equity, MM and IM of every account at ``prices`` (..., K)."""
    equity, delta, gross = portfolio.exposure(prices, arr.haircut)
    notional = np.abs(portfolio.values(prices)[0]) if arr.depth is not None else None
    mm, im = requirement(delta, gross, arr, notional)
    return Margin(equity, mm, im, gross.sum(-1), delta)


def max_take(equity: np.ndarray, mm: np.ndarray, im: np.ndarray, gross: np.ndarray, close_factor: float,
             penalty: float, deep: float, dust: float) -> np.ndarray:
    """The float form of ``margin.max_take``: the most a liquidation may take (USD)."""
    allowed = gross * close_factor
    den = im - penalty * gross
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.where(den > 0, gross * (im - equity) / np.where(den > 0, den, 1.0), np.inf)
    allowed = np.minimum(allowed, needed)
    allowed = np.where(equity < mm * deep, gross, allowed)
    return np.where(gross - allowed < dust, gross, np.clip(allowed, 0.0, None))
