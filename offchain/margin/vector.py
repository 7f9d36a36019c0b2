"""The portfolio margin vectorised in float64 over many accounts and many price scenarios at once.

The same formula as the exact mirror (:mod:`offchain.margin.exact`), without the integer rounding: a float
equivalent for the keeper's screen (:mod:`offchain.margin.screen`) and for simulations (cascades, stress tables, VaR). The tests compare it with ``account_margin`` on whole
populations (relative difference below 1e-9). Shapes: ``A`` accounts, ``K`` assets, ``M`` markets, ``J``
collaterals, and any leading scenario shape ``...`` on prices (``(..., K)``) that broadcasts through every result
(``(..., A)``). USD amounts are floats in whole USD.

Options (docs/options.md) enter through :class:`OptionBook` (``S`` series per account), :class:`OptionArrays` (the
OPTION word) and a volatility per asset ``sigma`` (annualised, ``(K,)`` or ``(..., K)``: a scenario may move it):
:func:`option_terms` gives the options' loss over each asset's grid ``L``, the stress-vector losses ``O`` and the
short minimum ``M``; :func:`requirement` scans each asset's grid together with its linear delta (:func:`scan_parts`:
the weighted sensitivity ``WS`` and the curvature ``B``) and combines the parts, without the integer rounding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .exact import BPS, WAD, AccountState, Layout, MarginConfig
from . import options as om
from .optionmath import delta_np, price_np
from .params import OptionParams


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
class OptionArrays:
    """The margin figures of an :class:`~offchain.margin.params.OptionParams` (the OPTION word) as fractions."""

    skew: np.ndarray  # (K,) smile per unit of |ln(S/K)|: sigma(K) = sigma (1 + skew |ln(S/K)|)
    vol_up: float  # the grid's upward volatility shock: sigma (1 + vol_up)
    vol_down: float  # the grid's downward volatility shock: sigma (1 - vol_down)
    steps: int  # n: spot points S (1 + x RW / n), x = -n .. n
    short_min: float  # minimum charge per short option, a fraction of |size| x spot

    @classmethod
    def from_params(cls, p: OptionParams, n_assets: int) -> "OptionArrays":
        return cls(np.array([p.skew_bps.get(a, 0) / BPS for a in range(n_assets)]), p.vol_up_bps / BPS,
                   p.vol_down_bps / BPS, p.steps, p.short_min_bps / BPS)

    @classmethod
    def from_word(cls, word: int, n_assets: int) -> "OptionArrays":
        """The figures of an OPTION word as stored on-chain (``RiskParameters.optionWord``), decoded as the exact
        mirror does (a word without a grid counts as one step per side)."""
        return cls(np.array([om.skew(word, a) / BPS for a in range(n_assets)]), om.vol_up(word) / BPS,
                   om.vol_down(word) / BPS, om.grid_steps(word) or 1, om.short_min(word) / BPS)

    def vol_points(self) -> np.ndarray:
        """(3,) the grid's volatility multipliers: down, base, up (the base is a scenario at the spot and the grid's
        ends only)."""
        return np.array([1.0 - self.vol_down, 1.0, 1.0 + self.vol_up])

    def vol_shocks(self) -> np.ndarray:
        """(2,) the volatility multipliers of the stress vectors: down, up."""
        return np.array([1.0 - self.vol_down, 1.0 + self.vol_up])

    def spot_points(self) -> np.ndarray:
        """(2n + 1,) the grid's x = -n .. n."""
        return np.arange(-self.steps, self.steps + 1, dtype=float)


@dataclass
class OptionBook:
    """Option positions of many accounts as arrays: ``S`` series per account (a series with size 0 is no position).

    Series arrays are ``(S,)`` (one listing shared by every account, as markets are) or ``(A, S)`` (a listing per
    account: a rolling book re-struck every day holds different series on each day)."""

    size: np.ndarray  # (A, S) units of the underlying, signed (positive: long)
    asset: np.ndarray  # (S,) or (A, S) asset index of the underlying
    is_call: np.ndarray  # (S,) or (A, S) bool
    strike: np.ndarray  # (S,) or (A, S) USD
    expiry: np.ndarray  # (S,) or (A, S) time to expiry in years (<= 0: expired, worth its intrinsic value)

    def onehot(self, n_assets: int) -> np.ndarray:
        """(S, K) or (A, S, K): 1 where the series is on the asset."""
        return (np.asarray(self.asset)[..., None] == np.arange(n_assets)).astype(float)

    def unit_values(self, spot: np.ndarray, sigma: np.ndarray, oarr: OptionArrays, elapsed: float = 0.0,
                    trailing: int = 0) -> np.ndarray:
        """Value of one unit of each series, (..., A, S, *T), at the underlying's ``spot`` and volatility ``sigma``
        per series (broadcasting against (..., A, S, *T), ``T`` the last ``trailing`` axes: grid points),
        ``elapsed`` years later. The smile is taken at the spot it is revalued at: sigma(K) = sigma (1 + skew
        |ln(spot / K)|) (docs/options.md)."""
        e = (Ellipsis,) + (None,) * trailing
        asset, is_call, strike, expiry = (np.asarray(v)[e] for v in (self.asset, self.is_call, self.strike,
                                                                       self.expiry))
        spot = np.maximum(spot, 1e-18)  # a grid point is at least 1 wei
        sig = sigma * (1.0 + oarr.skew[asset] * np.abs(np.log(spot / strike)))
        return price_np(is_call, spot, strike, sig * np.sqrt(np.maximum(expiry - elapsed, 0.0)))

    def unit_deltas(self, spot: np.ndarray, sigma: np.ndarray, oarr: OptionArrays) -> np.ndarray:
        """d value / d spot of one unit of each series, (..., A, S), at the smile's volatility (a hedge's size)."""
        spot = np.maximum(spot, 1e-18)
        sig = sigma * (1.0 + oarr.skew[self.asset] * np.abs(np.log(spot / self.strike)))
        return delta_np(self.is_call, spot, self.strike, sig * np.sqrt(np.maximum(self.expiry, 0.0)))

    def per_series(self, prices: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(spot, volatility) of each series' underlying, (..., 1, S) (a shared listing) or (..., A, S), from prices
        and volatilities per asset (..., K)."""
        a = np.asarray(self.asset)
        spot, sig = np.asarray(prices, float)[..., a], np.asarray(sigma, float)[..., a]
        return (spot[..., None, :], sig[..., None, :]) if a.ndim == 1 else (spot, sig)

    def values(self, prices: np.ndarray, sigma: np.ndarray, oarr: OptionArrays, elapsed: float = 0.0) -> np.ndarray:
        """Position values (..., A, S) in USD at ``prices`` (..., K) and volatilities ``sigma`` (..., K)."""
        spot, sig = self.per_series(prices, sigma)
        return self.size * self.unit_values(spot, sig, oarr, elapsed)

    def by_asset(self, unit: np.ndarray, n_assets: int, trailing: int = 0) -> np.ndarray:
        """The positions' sum per asset of a per-unit quantity: sum_s size_s unit_s over the series of each asset,
        (..., A or 1, S, *T) -> (..., A, K, *T), ``T`` the last ``trailing`` axes (one einsum, no intermediate of
        the full product; in the calling thread: see :func:`requirement`)."""
        t = "tuvw"[:trailing]
        oh = self.onehot(n_assets)
        if oh.ndim == 2 and unit.shape[-2 - trailing] == 1:  # a shared listing evaluated once for every account
            shared = unit[(Ellipsis, 0) + (slice(None),) * (1 + trailing)]
            return np.einsum(f"as,...s{t},sk->...ak{t}", self.size, shared, oh)
        return np.einsum(f"as,...as{t},{'as' if oh.ndim == 3 else 's'}k->...ak{t}", self.size, unit, oh)


def series_losses(book: OptionBook, prices: np.ndarray, sigma: np.ndarray, moves: np.ndarray, vol_mults: np.ndarray,
                  oarr: OptionArrays) -> np.ndarray:
    """Loss of one unit of each series, (..., A, S, X, J): its value at (spot, sigma) minus its value at (spot (1 +
    moves[..., x]), sigma vol_mults[j]); ``moves`` (S, X) or (A, S, X) relative moves of each series' underlying,
    ``vol_mults`` (J,) volatility multipliers."""
    spot, sig = book.per_series(prices, sigma)
    base = book.unit_values(spot, sig, oarr)
    shocked = book.unit_values(spot[..., None, None] * (1.0 + np.asarray(moves))[..., None],
                               sig[..., None, None] * np.asarray(vol_mults), oarr, trailing=2)
    return base[..., None, None] - shocked


def series_grid(book: OptionBook, prices: np.ndarray, sigma: np.ndarray, rw: np.ndarray,
                oarr: OptionArrays) -> np.ndarray:
    """Loss of one unit of each series over the grid, (..., A, S, 2n + 1, 3): spot (1 + x RW / n), x = -n .. n,
    volatility down / base / up."""
    moves = oarr.spot_points() * (np.asarray(rw)[np.asarray(book.asset)] / oarr.steps)[..., None]
    return series_losses(book, prices, sigma, moves, oarr.vol_points(), oarr)


def asset_grid(book: OptionBook, unit_grid: np.ndarray, n_assets: int) -> np.ndarray:
    """The options' loss per asset over the grid, L_a(x, j), (..., A, K, 2n + 1, 3), from :func:`series_grid`."""
    return book.by_asset(unit_grid, n_assets, trailing=2)


def scan_parts(grid: np.ndarray, delta: np.ndarray, rw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(WS, B), each (..., K): each asset's scan of its whole book, the options' losses L over the grid (..., K,
    2n + 1, 3) with the linear delta ``delta`` (..., K) at risk weights ``rw`` (K,) (docs/options.md, divided by
    N = n 1e4: USD):

    - T(x, j) = L(x, j) - (x / n) RW D, the book's loss at the grid point; the base volatility (j = 1) is a scenario
      at the spot and the ends (x = 0, +-n) only, inside the grid the down and up shocks are (as SPAN's);
    - scan = max(0, max T);
    - X / 2 = (T(-n, base) - T(+n, base)) / 2 and WS = sign(X) min(|X| / 2, scan): the directional part;
    - B = scan - |WS|: the curvature.

    An asset without options (L = 0) gets WS = RW D and B = 0 exactly (the same floats as the linear margin)."""
    n = (grid.shape[-2] - 1) // 2
    x = np.arange(-n, n + 1, dtype=float) / n
    t = grid - x[:, None] * (delta * rw)[..., None, None]
    scan = np.maximum(np.maximum(t[..., ::2].max(axis=(-1, -2)), t[..., ::2 * n, 1].max(-1)), 0.0)
    half = (t[..., 0, 1] - t[..., -1, 1]) / 2
    ws = np.sign(half) * np.minimum(np.abs(half), scan)
    return ws, scan - np.abs(ws)


def series_stress(book: OptionBook, prices: np.ndarray, sigma: np.ndarray, stress: np.ndarray,
                  oarr: OptionArrays) -> np.ndarray:
    """Loss of one unit of each series in each stress vector (nS, K) at the two volatility shocks, (..., A, S,
    nS, 2)."""
    moves = np.moveaxis(np.asarray(stress)[:, np.asarray(book.asset)], 0, -1)  # (S, nS) or (A, S, nS)
    return series_losses(book, prices, sigma, moves, oarr.vol_shocks(), oarr)


def stress_points(stress: np.ndarray, rw: np.ndarray, n: int) -> np.ndarray:
    """(nS, K) the grid point x of each stress shock (``OptionMargin._stressLoss``): trunc(shock n / RW) clamped to
    [-n, n], 0 where RW = 0, from the bps integers the fractions ``stress`` (nS, K) and ``rw`` (K,) stand for."""
    sb = np.rint(np.asarray(stress, float) * BPS).astype(np.int64)
    rb = np.rint(np.asarray(rw, float) * BPS).astype(np.int64)
    q = np.abs(sb * n) // np.where(rb == 0, 1, rb)
    return np.where(rb == 0, 0, np.clip(np.where(sb < 0, -q, q), -n, n))


def stress_worst(grid: np.ndarray, stress: np.ndarray, points: np.ndarray) -> np.ndarray:
    """O_s, (..., nS): per stress vector the sum over assets of the options' loss under the volatility shock (down
    or up) that is worse at the shock's grid point, from the options' grid losses (..., K, 2n + 1, 3), their stress
    losses at the two shocks (..., K, nS, 2) and :func:`stress_points` (nS, K)."""
    n = (grid.shape[-2] - 1) // 2
    k = np.arange(grid.shape[-3])
    rows = grid[..., k[None, :], points + n, :]  # (..., nS, K, 3)
    st = np.swapaxes(stress, -2, -3)  # (..., nS, K, 2)
    return np.where(rows[..., 2] > rows[..., 0], st[..., 1], st[..., 0]).sum(-1)


def short_minimum(book: OptionBook, prices: np.ndarray, oarr: OptionArrays) -> np.ndarray:
    """M, (..., A): short_min x |size| x spot summed over the short positions."""
    spot, _ = book.per_series(prices, np.zeros(np.shape(prices)))
    return (np.maximum(-book.size, 0.0) * spot).sum(-1) * oarr.short_min


def option_terms(book: OptionBook, prices: np.ndarray, sigma: np.ndarray, arr: MarginArrays,
                 oarr: OptionArrays) -> OptionTerms:
    """The option parts of every account's margin at ``prices`` and volatilities ``sigma`` (both (..., K))."""
    k = len(arr.rw)
    grid = asset_grid(book, series_grid(book, prices, sigma, arr.rw, oarr), k)
    o = (stress_worst(grid, book.by_asset(series_stress(book, prices, sigma, arr.stress, oarr), k, trailing=2),
                      stress_points(arr.stress, arr.rw, oarr.steps)) if len(arr.stress)
         else np.zeros(grid.shape[:-3] + (0,)))
    return OptionTerms(grid, o, short_minimum(book, prices, oarr))


@dataclass(frozen=True)
class OptionTerms:
    """The option parts of each account's margin (docs/options.md, floats: no rounding). The directional part and
    the curvature depend on the linear delta as well: :func:`scan_parts` (``requirement`` calls it)."""

    grid: np.ndarray  # (..., A, K, 2n + 1, 3) the options' loss L_a(x, j) over each asset's grid (0: no options)
    o: np.ndarray  # (..., A, nS) options' loss in each stress vector (:func:`stress_worst`)
    m: np.ndarray  # (..., A) short-option minimum

    def parts(self, delta: np.ndarray, rw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(WS, B), each (..., A, K), with the linear delta ``delta`` (..., A, K): :func:`scan_parts`."""
        return scan_parts(self.grid, delta, rw)


@dataclass(frozen=True)
class Margin:
    equity: np.ndarray
    maintenance: np.ndarray
    initial: np.ndarray
    gross: np.ndarray  # (..., A) sum over assets
    delta: np.ndarray  # (..., A, K) linear delta (perpetuals and collateral)
    options: OptionTerms | None = None


def concentration(notional: np.ndarray, arr: MarginArrays) -> np.ndarray | float:
    """The concentration charge sum_m N_m sqrt(N_m / L_m) of |position values| ``notional`` (..., A, M), USD."""
    if arr.depth is None:
        return 0.0
    depth = arr.depth[:notional.shape[-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(depth > 0, notional * np.sqrt(notional / np.where(depth > 0, depth, 1.0)), 0.0)
    return c.sum(-1)


def requirement(delta: np.ndarray, gross: np.ndarray, arr: MarginArrays,
                notional: np.ndarray | None = None, options: OptionTerms | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(MM, IM) from net delta and gross per asset (..., A, K), the |value| of each position (..., A, M) (for the
    concentration charge; None: no positions known, no charge) and the option parts (None: no options): the float
    form of ``exact.breakdown`` and of docs/options.md, and the one float evaluation of the formula (the keeper's
    screen and every analytic use it).

    With options the weighted sensitivity of each asset is the directional part ``WS_a`` of the scan of its whole
    book (options, perpetuals and collateral: :func:`scan_parts`; ``RW_a D_a`` for an asset without options), each
    stress vector's total is the linear loss plus ``O_s``, and ``MM = max(max(K_V + sum_a B_a, K_S) + basis + C + M,
    floor)`` (the stress totals revalue the options in full: their curvature is not added to ``K_S`` again; the
    basis and the floor on the linear exposure only).

    The products with the small parameter matrices are ``np.einsum`` rather than ``@``: on a million rows ``@`` goes
    to multi-threaded BLAS, whose threads wait for each other whenever another process holds a core (the node, on a
    keeper machine), which made the screen 2-5x slower and erratic on 2 cores; einsum runs in the calling thread."""
    if options is None:
        ws, curvature = delta * arr.rw, 0.0
    else:
        ws, b = options.parts(delta, arr.rw)
        curvature = b.sum(-1)
    k = np.zeros(ws.shape[:-1])
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
    if options is not None:
        k = k + curvature
    if len(arr.stress):
        total = -np.einsum("...k,sk->...s", delta, arr.stress)
        if options is not None:
            total = total + options.o
        k = np.maximum(k, total.max(axis=-1))
    absd = np.abs(delta)
    extra = concentration(notional, arr) if notional is not None else 0.0
    if options is not None:
        extra = extra + options.m
    mm = np.maximum(k + arr.basis * (gross - absd).sum(-1) + extra, arr.floor * absd.sum(-1))
    return mm, arr.alpha * mm


def margin(portfolio: Portfolio, prices: np.ndarray, arr: MarginArrays, options: OptionBook | None = None,
           oarr: OptionArrays | None = None, sigma: np.ndarray | None = None) -> Margin:
    """Equity, MM and IM of every account at ``prices`` (..., K); with ``options`` (the same accounts' option
    positions), their values count in equity and their parts in the margin, under ``oarr`` and the volatility per
    asset ``sigma`` (..., K)."""
    equity, delta, gross = portfolio.exposure(prices, arr.haircut)
    notional = np.abs(portfolio.values(prices)[0]) if arr.depth is not None else None
    terms = None
    if options is not None:
        if oarr is None or sigma is None:
            raise ValueError("an option book needs the OPTION word's arrays (oarr) and a volatility per asset (sigma)")
        terms = option_terms(options, prices, sigma, arr, oarr)
        equity = equity + options.values(prices, sigma, oarr).sum(-1)
    mm, im = requirement(delta, gross, arr, notional, terms)
    return Margin(equity, mm, im, gross.sum(-1), delta, terms)


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
