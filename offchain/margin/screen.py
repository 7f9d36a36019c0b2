"""Vectorised screen of every account's margin at once (numpy, float64), with a safety band and exact confirmation.

Each account is reduced to quantities that do not depend on prices, so a new price vector re-screens the whole book
with a few matrix products:

    const        settlement − Σ openNotional + Σ size·stored index   (USD)
    perp[k]      Σ size of the positions on asset k               (units)
    perp_abs[k]  Σ |size| of the positions on asset k             (units)
    coll[j]      collateral balance j                             (whole tokens)
    long[m]      size of the long in market m (0 if none)         (units)
    short[m]     size of the short in market m (0 if none)        (units)

so that ``E = const + Σ perp·P + Σ coll·p·(1−h) − Σ (long·L + short·S)`` with ``L``, ``S`` each market's funding
indices (USD per unit) at the block, ``D = perp·P + coll·p`` and ``G = perp_abs·P + coll·p``, from which
the margin formula follows exactly as on-chain (the same regimes, stress vectors, basis add-on and floor) but in
floating point (:func:`offchain.margin.vector.requirement`, the one float evaluation of the formula). An account is a *candidate* when ``E < MM + band`` with ``band = REL_BAND · scale + ABS_BAND`` and
``scale = |const| + Σ|perp·P| + Σ coll·p + MM``. Float64 evaluation of these few dozen terms errs by less than
1e-13 of ``scale`` and the contract's integer roundings by a few wei per term, so with ``REL_BAND = 1e-9`` every
account with ``E < MM`` on-chain is a candidate; candidates are then confirmed with the exact integer mirror
(:func:`offchain.margin.exact.account_margin`). Nothing liquidatable is missed and nothing healthy is sent.

Accounts holding options (``options[s]``: the size held in series slot ``s``, units) get the float option margin of
:mod:`offchain.margin.vector` on top: every live series revalued by Black-Scholes over each asset's grid and the
stress vectors (:func:`~offchain.margin.vector.option_terms`), at the volatilities, OPTION word and time of the
:class:`~offchain.margin.options.OptionMarket` read at the block; a fixed series counts at its payoff. Their band
adds ``REL_BAND · Σ |size|·(2·spot + strike)`` over the series held: float64 Black-Scholes errs by a few 1e-16 of
``spot + strike`` per unit (the contract's fixed point by less, docs/option-math.md), the grid revalues at spots up to
twice today's, and the scan's maxima, the directional part and the square root of the correlated charge are
1-Lipschitz in those values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from .exact import MAX_ASSETS, MAX_MARKETS, AccountState, Layout, MarginConfig
from .funding import INDEX_UNIT, MarketFunding
from .optionmath import SECONDS_PER_YEAR
from .options import MAX_SERIES, OptionMarket, payoff
from .vector import MarginArrays, OptionArrays, OptionBook, option_terms, requirement

WAD = 1e18
REL_BAND = 1e-9
ABS_BAND = 1e-9  # USD


@dataclass(frozen=True)
class ScreenParams:
    """The margin words as float arrays (:class:`MarginArrays`) and the collateral layout."""

    arr: MarginArrays
    coll_asset: np.ndarray  # (C,) asset of each collateral
    coll_to_asset: np.ndarray  # (C, A) one-hot
    scale: np.ndarray  # (C,) 10**-decimals
    market_asset: np.ndarray  # (M,) asset of each market

    @classmethod
    def build(cls, cfg: MarginConfig, layout: Layout) -> "ScreenParams":
        c = len(layout.collateral_asset)
        onehot = np.zeros((c, MAX_ASSETS))
        onehot[np.arange(c), list(layout.collateral_asset)] = 1.0
        return cls(MarginArrays.from_config(cfg, MAX_ASSETS, c), np.array(layout.collateral_asset, dtype=int), onehot,
                   np.array([10.0 ** -d for d in layout.collateral_decimals]),
                   np.array(layout.market_asset, dtype=int))


@dataclass
class Book:
    """Price-independent arrays of many accounts (rows), kept in step with the indexer."""

    n_collaterals: int
    ids: list[int] = field(default_factory=list)
    row: dict[int, int] = field(default_factory=dict)
    const: np.ndarray = field(default_factory=lambda: np.zeros(0))
    perp: np.ndarray = field(default_factory=lambda: np.zeros((0, MAX_ASSETS)))
    perp_abs: np.ndarray = field(default_factory=lambda: np.zeros((0, MAX_ASSETS)))
    coll: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    long: np.ndarray = field(default_factory=lambda: np.zeros((0, MAX_MARKETS)))
    short: np.ndarray = field(default_factory=lambda: np.zeros((0, MAX_MARKETS)))
    options: np.ndarray = field(default_factory=lambda: np.zeros((0, MAX_SERIES)))  # size per series slot (units)

    def __post_init__(self) -> None:
        if self.coll.shape[1] != self.n_collaterals:
            self.coll = np.zeros((len(self.ids), self.n_collaterals))
        if self.options.shape[0] != len(self.ids):
            self.options = np.zeros((len(self.ids), MAX_SERIES))

    def __len__(self) -> int:
        return len(self.ids)

    def update(self, states: Mapping[int, AccountState], layout: Layout, scale: np.ndarray) -> None:
        """Insert or overwrite the rows of ``states``."""
        new = [a for a in states if a not in self.row]
        if new:
            n0 = len(self.ids)
            for i, a in enumerate(new):
                self.row[a] = n0 + i
            self.ids.extend(new)
            grow = len(new)
            self.const = np.concatenate([self.const, np.zeros(grow)])
            self.perp = np.vstack([self.perp, np.zeros((grow, MAX_ASSETS))])
            self.perp_abs = np.vstack([self.perp_abs, np.zeros((grow, MAX_ASSETS))])
            self.coll = np.vstack([self.coll, np.zeros((grow, self.n_collaterals))])
            self.long = np.vstack([self.long, np.zeros((grow, MAX_MARKETS))])
            self.short = np.vstack([self.short, np.zeros((grow, MAX_MARKETS))])
            self.options = np.vstack([self.options, np.zeros((grow, MAX_SERIES))])
        for a, s in states.items():
            r = self.row[a]
            on = 0
            stored = 0.0
            self.perp[r] = 0.0
            self.perp_abs[r] = 0.0
            self.coll[r] = 0.0
            self.long[r] = 0.0
            self.short[r] = 0.0
            for m, (size, open_notional) in s.positions.items():
                k = layout.market_asset[m]
                self.perp[r, k] += size / WAD
                self.perp_abs[r, k] += abs(size) / WAD
                on += open_notional
                (self.long if size > 0 else self.short)[r, m] = size / WAD
                stored += size / WAD * s.funding.get(m, 0) / INDEX_UNIT
            self.const[r] = (s.settlement - on) / WAD + stored
            for j, bal in s.collateral.items():
                self.coll[r, j] = bal * scale[j]
            self.options[r] = 0.0
            for slot, size in s.options.items():
                self.options[r, slot] = size / WAD

    def take(self, rows: np.ndarray) -> "Book":
        """A book of the given rows only."""
        return Book(self.n_collaterals, [self.ids[r] for r in rows], {}, self.const[rows], self.perp[rows],
                    self.perp_abs[rows], self.coll[rows], self.long[rows], self.short[rows], self.options[rows])

    @classmethod
    def of(cls, states: Mapping[int, AccountState], layout: Layout) -> "Book":
        book = cls(len(layout.collateral_asset))
        book.update(states, layout, np.array([10.0 ** -d for d in layout.collateral_decimals]))
        return book


@dataclass(frozen=True)
class ScreenResult:
    equity: np.ndarray  # USD, float
    maintenance: np.ndarray
    band: np.ndarray

    @property
    def candidates(self) -> np.ndarray:
        """Rows that may be liquidatable: ``certain`` and ``near_line`` together."""
        return np.nonzero(self.equity < self.maintenance + self.band)[0]

    @property
    def certain(self) -> np.ndarray:
        """Rows liquidatable whatever the float error: ``E < MM − band``."""
        return np.nonzero(self.equity < self.maintenance - self.band)[0]

    @property
    def near_line(self) -> np.ndarray:
        """Rows within the band of the line, where only the exact mirror can decide."""
        return np.nonzero(np.abs(self.equity - self.maintenance) <= self.band)[0]

    @property
    def health(self) -> np.ndarray:
        """E / MM (inf when MM = 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.maintenance > 0, self.equity / np.maximum(self.maintenance, 1e-300), np.inf)


def screen(book: Book, p: ScreenParams, prices: np.ndarray,
           markets: Mapping[int, MarketFunding] | None = None, options: OptionMarket | None = None) -> ScreenResult:
    """Equity and maintenance margin of every row at ``prices`` (USD per unit; shape (A,) or one row per account),
    accrued funding included at the indices of ``markets`` (each market's state at the block; None: no funding),
    option positions valued with ``options`` (the series, volatilities, OPTION word and time at the block; needed
    when a row holds options)."""
    prices = np.asarray(prices, dtype=float)
    perp_val = book.perp * prices
    coll_val = book.coll * prices[..., p.coll_asset] if book.coll.size else np.zeros((len(book), 0))
    coll_by_asset = np.einsum("...c,ca->...a", coll_val, p.coll_to_asset)
    delta = perp_val + coll_by_asset
    gross = book.perp_abs * prices + coll_by_asset
    equity = book.const + perp_val.sum(axis=1) + np.einsum("...c,c->...", coll_val, 1.0 - p.arr.haircut)
    funding = np.zeros(len(book))
    if markets:
        index_l, index_s = np.zeros(MAX_MARKETS), np.zeros(MAX_MARKETS)
        for m, f in markets.items():
            index_l[m], index_s[m] = f.long_index / INDEX_UNIT, f.short_index / INDEX_UNIT
        funding = -(book.long @ index_l + book.short @ index_s)
        equity = equity + funding
    notional = None
    if p.arr.depth is not None:
        m = len(p.market_asset)
        notional = np.abs(book.long[:, :m] + book.short[:, :m]) * prices[..., p.market_asset]
    mm, _ = requirement(delta, gross, p.arr, notional)
    extra = np.zeros(len(book))
    rows = np.nonzero(book.options.any(axis=1))[0]
    if len(rows):
        if options is None:
            raise ValueError("rows hold options: pass the OptionMarket (series, vols, word, time) at the block")
        equity, mm = equity.copy(), mm.copy()
        # one evaluation for shared prices; per row when each row has its own prices (trigger_prices)
        groups = [rows] if prices.ndim == 1 else [rows[i:i + 1] for i in range(len(rows))]
        parts = [_option_rows(book.options[g], p, prices if prices.ndim == 1 else prices[g[0]], delta[g], gross[g],
                              notional[g] if notional is not None else None, options) for g in groups]
        value, mm_rows, extra_rows = (np.concatenate(x) for x in zip(*parts))
        equity[rows] += value
        mm[rows] = mm_rows
        extra[rows] = extra_rows
    scale = np.abs(book.const) + np.abs(perp_val).sum(axis=1) + coll_val.sum(axis=1) + mm + np.abs(funding) + extra
    return ScreenResult(equity, mm, REL_BAND * scale + ABS_BAND)


def _option_rows(sizes: np.ndarray, p: ScreenParams, prices: np.ndarray, delta: np.ndarray, gross: np.ndarray,
                 notional: np.ndarray | None, market: OptionMarket) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(option value, MM, band scale) of rows holding ``sizes`` (R, 32) at ``prices`` (K,): the live series through
    the float option margin, the fixed ones at their payoff."""
    held = np.nonzero(sizes.any(axis=0))[0].tolist()
    fixed = [s for s in held if market.series[s].fixed_price]
    live = [s for s in held if not market.series[s].fixed_price]
    pays = np.array([payoff(market.series[s].is_call, market.series[s].strike, market.series[s].fixed_price) / WAD
                     for s in fixed])
    value = sizes[:, fixed] @ pays if fixed else np.zeros(len(sizes))
    extra = np.abs(sizes[:, fixed]) @ pays if fixed else np.zeros(len(sizes))
    if not live:
        mm, _ = requirement(delta, gross, p.arr, notional)
        return value, mm, extra
    ser = [market.series[s] for s in live]
    book = OptionBook(size=sizes[:, live], asset=np.array([s.asset for s in ser]),
                      is_call=np.array([s.is_call for s in ser]), strike=np.array([s.strike / WAD for s in ser]),
                      expiry=np.array([(s.expiry - market.time) / SECONDS_PER_YEAR for s in ser]))
    sigma = np.array(market.vols, dtype=float) / WAD
    oarr = OptionArrays.from_word(market.word, MAX_ASSETS)
    with np.errstate(divide="ignore", invalid="ignore"):  # a series whose asset has no price: the vault reverts too
        terms = option_terms(book, prices, sigma, p.arr, oarr)
        value = value + book.values(prices, sigma, oarr).sum(-1)
        mm, _ = requirement(delta, gross, p.arr, notional, terms)
    extra = extra + np.abs(book.size) @ (2 * prices[book.asset] + book.strike)
    return value, mm, extra


def trigger_prices(book: Book, p: ScreenParams, prices: np.ndarray, rows: Iterable[int] | None = None,
                   grid: int = 24, iterations: int = 30, span: float = 20.0,
                   markets: Mapping[int, MarketFunding] | None = None,
                   options: OptionMarket | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per account and asset, the nearest prices below and above today's at which the account turns liquidatable
    when only that asset moves (NaN when none within ``prices/span .. prices*span``). Shapes (rows, A).

    A scan of ``grid`` geometric steps finds the first crossing on each side, then bisection refines it to a
    relative ``2**-iterations`` of the step. These are float estimates for ranking and alerts: decisions use the
    screen and the exact mirror."""
    rows = np.arange(len(book)) if rows is None else np.asarray(list(rows), dtype=int)
    sub = book.take(rows)
    n, a = len(rows), MAX_ASSETS
    lower = np.full((n, a), np.nan)
    upper = np.full((n, a), np.nan)
    base = np.tile(np.asarray(prices, dtype=float), (n, 1))

    def surplus(asset: int, x: np.ndarray) -> np.ndarray:
        trial = base.copy()
        trial[:, asset] = x
        res = screen(sub, p, trial, markets, options)
        return res.equity - res.maintenance

    exposed = (np.abs(sub.perp) + sub.coll @ p.coll_to_asset) > 0
    if options is not None:
        for slot, series in options.series.items():
            if not series.fixed_price:
                exposed[:, series.asset] |= sub.options[:, slot] != 0
    for asset in range(a):
        if prices[asset] <= 0 or not exposed[:, asset].any():
            continue
        p0 = float(prices[asset])
        for out, step in ((lower, span ** (-1 / grid)), (upper, span ** (1 / grid))):
            prev_x = np.full(n, p0)
            found = np.zeros(n, dtype=bool)
            lo, hi = np.full(n, np.nan), np.full(n, np.nan)
            for g in range(1, grid + 1):
                x = np.full(n, p0 * step ** g)
                hit = (surplus(asset, x) < 0) & ~found & exposed[:, asset]
                lo[hit], hi[hit] = prev_x[hit], x[hit]  # healthy at lo, liquidatable at hi
                found |= hit
                prev_x = x
            if not found.any():
                continue
            for _ in range(iterations):
                mid = np.where(found, (lo + hi) / 2, p0)
                bad = surplus(asset, mid) < 0
                hi = np.where(found & bad, mid, hi)
                lo = np.where(found & ~bad, mid, lo)
            out[found, asset] = hi[found]
    return lower, upper


def triggered(lower: np.ndarray, upper: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """Rows whose trigger price is crossed by ``prices``: the ready list after an oracle update."""
    with np.errstate(invalid="ignore"):
        return np.nonzero(((prices <= lower) | (prices >= upper)).any(axis=1))[0]
