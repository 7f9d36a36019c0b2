"""A population of traders with realistic cross-margined books, for the demo and for risk simulations.

Each book is drawn in USD terms and then sized, with the exact margin mirror, so that every trade on the way to it
leaves the account at or above initial margin (the venue would refuse it otherwise). Book kinds:

- ``hedged_pair``: long one asset, short a correlated one of about the same notional (long BTC / short ETH, or the
  reverse; SOL against ETH), settlement collateral. Portfolio margin credits the correlation.
- ``directional``: long (mostly) or short one or two markets, collateral in USDC and sometimes in a volatile asset.
- ``basket``: three or four markets, long-only or long/short, USDC collateral.
- ``collateral_hedge``: collateral in WBTC / WETH / WSOL hedged by a short perpetual on the same asset (60-100%).
- ``overleveraged``: directional books sized close to the initial margin line.

Deterministic for a seed. Amounts stay in floats until :func:`to_state`, which produces the exact on-chain
quantities (token units, base units 1e18, open notional at the given prices).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .margin.defaults import BTC, DEFAULT_SPEC, ETH, LINK, LOCAL_COLLATERALS, SOL, START_PRICES_USD, WAD
from .margin.exact import AccountState, Layout, account_margin, standard_requirement
from .margin.params import RiskSpec

KINDS = ("hedged_pair", "directional", "basket", "collateral_hedge", "overleveraged")
MIX = (0.30, 0.28, 0.20, 0.15, 0.07)  # share of each kind in a population
# IM utilisation (IM / equity) a book of each kind is sized to, drawn uniformly in the range.
UTILISATION = {"hedged_pair": (0.35, 0.85), "directional": (0.25, 0.75), "basket": (0.25, 0.75),
               "collateral_hedge": (0.0, 0.0), "overleveraged": (0.88, 0.97)}
EQUITY_MEDIAN_USD, EQUITY_SIGMA, EQUITY_RANGE_USD = 20_000.0, 1.0, (1_000.0, 1_000_000.0)
LOCAL_LAYOUT = Layout(market_asset=(BTC, ETH, SOL, LINK),
                      collateral_asset=tuple(asset for _, _, asset, _ in LOCAL_COLLATERALS),
                      collateral_decimals=tuple(dec for _, dec, _, _ in LOCAL_COLLATERALS))
SETTLEMENT_DECIMALS = 6
TAKER_FEE_BPS = 5  # OrderSettlement's taker fee on the local deployment (scripts/deploy.py)
PAIRS = ((BTC, ETH), (ETH, BTC), (BTC, ETH), (SOL, ETH), (ETH, SOL))  # (long, short), BTC/ETH weighted double


@dataclass(frozen=True)
class Book:
    """A trader's target book. ``legs`` are (market, signed USD notional) in the order they are traded."""

    kind: str
    settlement_usd: float
    collateral_usd: dict[int, float] = field(default_factory=dict)  # collateral id -> USD value
    legs: tuple[tuple[int, float], ...] = ()

    @property
    def gross_usd(self) -> float:
        return sum(abs(n) for _, n in self.legs)


def prices_wad(prices_usd: Sequence[float]) -> list[int]:
    return [int(round(p * 1e6)) * 10**12 for p in prices_usd]


def to_state(book: Book, prices: Sequence[int], layout: Layout = LOCAL_LAYOUT, legs: int | None = None,
             fee_bps: int = TAKER_FEE_BPS) -> AccountState:
    """The account state after the deposits and the first ``legs`` trades (all by default), filled at ``prices``
    (USD 1e18 by asset) with the taker fee taken from the settlement balance."""
    settlement = int(book.settlement_usd * 10**SETTLEMENT_DECIMALS) * 10**12
    collateral = {}
    for cid, usd in book.collateral_usd.items():
        asset, decimals = layout.collateral_asset[cid], layout.collateral_decimals[cid]
        collateral[cid] = int(usd * 10**decimals * WAD // prices[asset]) if usd > 0 else 0
    positions: dict[int, tuple[int, int]] = {}
    for market, notional in book.legs[:legs]:
        size = sizes_of(market, notional, prices, layout)
        price = prices[layout.market_asset[market]]
        open_notional = -(-size * price // WAD)
        old = positions.get(market, (0, 0))
        positions[market] = (old[0] + size, old[1] + open_notional)
        settlement -= abs(size) * price // WAD * fee_bps // 10_000 + 1
    return AccountState(settlement=settlement, positions=positions, collateral=collateral)


def sizes_of(market: int, notional_usd: float, prices: Sequence[int], layout: Layout = LOCAL_LAYOUT) -> int:
    """Signed base units (1e18) for a USD notional, rounded to 1e-6 of a unit (as an order would be)."""
    price_usd = prices[layout.market_asset[market]] / WAD
    return int(round(notional_usd / price_usd * 1e6)) * 10**12


def fits(book: Book, prices: Sequence[int], cfg, layout: Layout = LOCAL_LAYOUT) -> bool:
    """Every prefix of the book's trades leaves the account at or above IM (with a 1% cushion for rounding)."""
    for k in range(1, len(book.legs) + 1):
        m = account_margin(to_state(book, prices, layout, legs=k), layout, prices, cfg)
        if m.equity * 100 < m.initial * 101:
            return False
    return True


def _scaled(book: Book, s: float) -> Book:
    return Book(book.kind, book.settlement_usd, book.collateral_usd, tuple((m, n * s) for m, n in book.legs))


def _size(book: Book, target: float, prices: Sequence[int], cfg, layout: Layout) -> Book:
    """Scale the legs so that IM / equity of the whole book is ``target``, then shrink until every prefix fits."""
    full = account_margin(to_state(book, prices, layout), layout, prices, cfg)
    scale = target * full.equity / full.initial if full.initial > 0 else 1.0
    sized = _scaled(book, scale)
    for _ in range(60):
        if fits(sized, prices, cfg, layout):
            return sized
        sized = _scaled(sized, 0.95)
    raise ValueError(f"a {book.kind} book of {book.settlement_usd:,.0f} USD cannot be sized under the risk set "
                     f"(still below IM at 5% of its target); check the parameters and prices")


def _draw(kind: str, equity: float, rng: np.random.Generator) -> Book:
    """A book of ``kind`` with about ``equity`` USD of collateral and unit-scale legs (sized later)."""
    if kind == "hedged_pair":
        long, short = PAIRS[rng.integers(len(PAIRS))]
        beta = rng.uniform(0.85, 1.15)
        return Book(kind, equity, {}, ((long, equity), (short, -equity * beta)))
    if kind in ("directional", "overleveraged"):
        sign = 1.0 if rng.random() < 0.75 else -1.0
        markets = rng.choice(4, size=1 if rng.random() < 0.6 else 2, replace=False, p=(0.4, 0.3, 0.2, 0.1))
        collateral = {}
        settlement = equity
        if kind == "directional" and rng.random() < 0.4:  # part of the collateral in a volatile asset
            cid = int(rng.integers(4))
            collateral[cid] = equity * rng.uniform(0.3, 0.7)
            settlement = equity - collateral[cid]
        return Book(kind, settlement, collateral, tuple((int(m), sign * equity / len(markets)) for m in markets))
    if kind == "basket":
        markets = rng.choice(4, size=int(rng.integers(3, 5)), replace=False)
        long_short = rng.random() < 0.3
        legs = tuple((int(m), equity * rng.uniform(0.5, 1.5) * (-1.0 if long_short and i % 2 else 1.0))
                     for i, m in enumerate(markets))
        return Book(kind, equity, {}, legs)
    if kind == "collateral_hedge":
        cid = int(rng.choice(3, p=(0.45, 0.4, 0.15)))  # WBTC, WETH, WSOL
        held = equity * rng.uniform(0.7, 0.95)
        hedge = held * rng.uniform(0.6, 1.0)
        return Book(kind, equity - held, {cid: held}, ((LOCAL_LAYOUT.collateral_asset[cid], -hedge),))
    raise ValueError(f"unknown book kind {kind!r}; choose one of {', '.join(KINDS)}")


def generate(n: int, seed: int, spec: RiskSpec = DEFAULT_SPEC, prices_usd: Sequence[float] = START_PRICES_USD,
             layout: Layout = LOCAL_LAYOUT) -> list[Book]:
    """``n`` books (kinds in the proportions of ``MIX``), each fitting under ``spec`` at ``prices_usd``."""
    if n < 1:
        raise ValueError(f"a population needs at least one trader (got n={n})")
    rng = np.random.default_rng(seed)
    cfg = spec.margin_config()
    prices = prices_wad(prices_usd)
    counts = np.floor(np.asarray(MIX) * n).astype(int)
    counts[0] += n - counts.sum()
    kinds = [k for k, c in zip(KINDS, counts) for _ in range(c)]
    rng.shuffle(kinds)
    books = []
    for kind in kinds:
        equity = float(np.clip(rng.lognormal(np.log(EQUITY_MEDIAN_USD), EQUITY_SIGMA), *EQUITY_RANGE_USD))
        equity = round(equity, 2)
        book = _draw(kind, equity, rng)
        lo, hi = UTILISATION[kind]
        books.append(_size(book, rng.uniform(lo, hi), prices, cfg, layout) if hi > 0 else book)
    return books


def requirements(book: Book, prices: Sequence[int], spec: RiskSpec = DEFAULT_SPEC,
                 layout: Layout = LOCAL_LAYOUT) -> tuple[int, int]:
    """(portfolio MM, standard per-position MM) of a book at ``prices``, USD 1e18."""
    state = to_state(book, prices, layout)
    rates = [spec.markets[m].standard_mmr_bps for m in range(len(layout.market_asset))]
    return (account_margin(state, layout, prices, spec.margin_config()).maintenance,
            standard_requirement(state, layout, prices, rates))


MAKER_CUSHION_USD = 1_000_000.0  # the demo's market makers deposit their market's gross notional plus this


def market_makers(states: Sequence[AccountState], layout: Layout = LOCAL_LAYOUT,
                  prices: Sequence[int] | None = None) -> list[AccountState]:
    """The counterparties the demo trades the population against (``scripts/demo.py``): one market maker per market,
    holding the opposite of the population's net position there at the oracle price, with the market's gross notional
    plus ``MAKER_CUSHION_USD`` of USDC. With them the book has as many shorts as longs in every market, as the vault
    always does (open interest is one number), so deleveraging has an opposite side to charge."""
    prices = prices if prices is not None else prices_wad(START_PRICES_USD)
    out = []
    for m, asset in enumerate(layout.market_asset):
        net = sum(s.positions.get(m, (0, 0))[0] for s in states)
        gross = sum(abs(s.positions.get(m, (0, 0))[0]) for s in states) * prices[asset] // WAD
        size = -net
        positions = {m: (size, -(-size * prices[asset] // WAD))} if size else {}
        out.append(AccountState(settlement=gross + int(MAKER_CUSHION_USD) * WAD, positions=positions))
    return out


# ---------------------------------------------------------------------------------------------- option books
# Option traders for the analytics with options (offchain.risk.stress option tables, the cascade's options section).
# Separate from generate(): a perpetuals-only population is drawn exactly as before.
OPTION_ASSETS = (BTC, ETH)
OPTION_BTC_SHARE = 0.6  # share of option books on BTC (the rest on ETH)
OPTION_UTILISATION = (0.4, 0.9)  # IM / equity an option book is sized to, drawn uniformly


@dataclass(frozen=True)
class OptionListing:
    """The live option series, one per slot: the series of ``offchain.risk.option_backtest.SERIES`` (calls at 1 and
    1.1 S, puts at 1 and 0.9 S, 7 and 30 days) on each asset of ``assets``, struck at the listing's prices."""

    asset: tuple[int, ...]
    is_call: tuple[bool, ...]
    moneyness: tuple[float, ...]
    days: tuple[int, ...]

    def slot(self, asset: int, series: int) -> int:
        """The slot of ``option_backtest.SERIES[series]`` on ``asset``."""
        return self.asset.index(asset) + series

    def book(self, sizes: np.ndarray, prices_usd: Sequence[float]):
        """An :class:`offchain.margin.vector.OptionBook` of ``sizes`` (A, slots), struck at ``prices_usd``."""
        from .margin.vector import OptionBook

        a = np.asarray(self.asset)
        strike = np.asarray(self.moneyness) * np.asarray(prices_usd, float)[a]
        return OptionBook(np.asarray(sizes, float), a, np.asarray(self.is_call), strike, np.asarray(self.days) / 365.0)


def option_listing(assets: Sequence[int] = OPTION_ASSETS) -> OptionListing:
    from .risk.option_backtest import SERIES

    rows = [(a, c, m, d) for a in assets for c, m, d in SERIES]
    return OptionListing(*(tuple(col) for col in zip(*rows)))


def option_book_units(book, assets: Sequence[int], listing: OptionListing, prices_usd: Sequence[float],
                      vols: Sequence[float], params=None,
                      n_assets: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The units of one :class:`offchain.risk.option_backtest.BookType` on each of ``assets`` (1 unit of the underlying
    per option leg): (perpetual units (K,), collateral units (K,), option sizes (slots,)); a delta hedge is a
    perpetual of minus the options' delta at the listing's prices and ``vols``."""
    from .margin.defaults import OPTIONS_DEFAULT
    from .margin.vector import OptionArrays
    from .risk.option_backtest import book_sizes

    oarr = OptionArrays.from_params(params or OPTIONS_DEFAULT, n_assets)
    perp, coll, sizes = np.zeros(n_assets), np.zeros(n_assets), np.zeros(len(listing.asset))
    unit = book_sizes([book])[0]
    for a in assets:
        for s, q in enumerate(unit):
            if q:
                sizes[listing.slot(a, s)] += q
        perp[a] += book.perp
        coll[a] += book.collateral
    if book.delta_hedge:
        ob = listing.book(sizes[None], prices_usd)
        p = np.asarray(prices_usd, float)
        spot, sig = ob.per_series(p, np.asarray(vols, float))
        d = (ob.size * ob.unit_deltas(spot, sig, oarr))[0]
        for a in assets:
            perp[a] -= d[np.asarray(listing.asset) == a].sum()
    return perp, coll, sizes


def option_population(n: int, seed: int, spec: RiskSpec = DEFAULT_SPEC, params=None,
                      prices_usd: Sequence[float] = START_PRICES_USD, vols: Sequence[float] | None = None,
                      layout: Layout = LOCAL_LAYOUT) -> tuple[list[AccountState], list[str], OptionListing]:
    """``n`` option traders: each holds one book of ``option_backtest.BOOKS`` (drawn uniformly) on BTC (60%) or ETH,
    with equity drawn as :func:`generate` draws it, sized so that IM / equity (the float margin with the OPTION word,
    at ``prices_usd`` and ``vols``) is drawn in ``OPTION_UTILISATION``; the option premium is paid or received in the
    settlement balance. Returns (states with ``options`` by slot, book names, the listing). Perpetual markets and
    collateral ids are the assets' (``LOCAL_LAYOUT``)."""
    from .margin.defaults import OPTIONS_DEFAULT
    from .margin.vector import MarginArrays, OptionArrays, Portfolio, margin
    from .risk.option_backtest import BOOKS
    from .risk.revalue import START_VOLS

    if n < 1:
        raise ValueError(f"an option population needs at least one trader (got n={n})")
    params = params or OPTIONS_DEFAULT
    vols = START_VOLS if vols is None else vols
    k, j = 1 + max(layout.market_asset + layout.collateral_asset), len(layout.collateral_asset)
    arr = MarginArrays.from_config(spec.margin_config(), k, j)
    oarr = OptionArrays.from_params(params, k)
    listing = option_listing()
    p = np.asarray(prices_usd, float)
    rng = np.random.default_rng(seed)
    states, names = [], []
    for _ in range(n):
        book = BOOKS[int(rng.integers(len(BOOKS)))]
        asset = BTC if rng.random() < OPTION_BTC_SHARE else ETH
        equity = float(np.clip(rng.lognormal(np.log(EQUITY_MEDIAN_USD), EQUITY_SIGMA), *EQUITY_RANGE_USD))
        target = rng.uniform(*OPTION_UTILISATION)
        perp, coll, sizes = option_book_units(book, (asset,), listing, prices_usd, vols, params, k)
        size = np.array([[perp[layout.market_asset[m]] for m in range(len(layout.market_asset))]])
        collateral = np.array([[coll[layout.collateral_asset[c]] for c in range(j)]])
        pf = Portfolio(np.zeros(1), size, size * p[list(layout.market_asset)], collateral,
                       np.asarray(layout.market_asset), np.asarray(layout.collateral_asset), k)
        m = margin(pf, p, arr, listing.book(sizes[None], prices_usd), oarr, np.asarray(vols, float))
        scale = target * equity / float(m.initial[0])
        settlement = equity - scale * float(m.equity[0])  # the premium and the collateral's haircut value
        positions = {}
        for mk in range(len(layout.market_asset)):
            q = int(round(scale * size[0, mk] * 1e6)) * 10**12
            if q:
                price = prices_wad(prices_usd)[layout.market_asset[mk]]
                positions[mk] = (q, -(-q * price // WAD))
        collateral_units = {c: int(scale * collateral[0, c] * 10**layout.collateral_decimals[c])
                            for c in range(j) if collateral[0, c] > 0}
        options = {s: int(round(scale * q * 1e6)) * 10**12 for s, q in enumerate(sizes) if q}
        states.append(AccountState(settlement=int(settlement * 1e6) * 10**12, positions=positions,
                                   collateral=collateral_units, options=options))
        names.append(f"{book.name}_{'BTC' if asset == BTC else 'ETH'}")
    return states, names, listing


def option_sizes(states: Sequence[AccountState], slots: int) -> np.ndarray:
    """(A, slots) option sizes in units of the underlying (0 for an account without options)."""
    out = np.zeros((len(states), slots))
    for i, s in enumerate(states):
        for slot, q in s.options.items():
            out[i, slot] = q / WAD
    return out


def option_makers(states: Sequence[AccountState], listing: OptionListing,
                  prices: Sequence[int] | None = None) -> list[AccountState]:
    """The option traders' counterparties: per asset of the listing one market maker holding the opposite of the
    traders' net position in each of its series (at most 8 series per account, as the vault allows), unhedged, with
    the series' gross underlying notional plus ``MAKER_CUSHION_USD`` of USDC. With them every option long has a
    short, as in the vault."""
    prices = prices if prices is not None else prices_wad(START_PRICES_USD)
    out = []
    for a in dict.fromkeys(listing.asset):
        slots = [s for s, x in enumerate(listing.asset) if x == a]
        net = {s: sum(st.options.get(s, 0) for st in states) for s in slots}
        gross = sum(abs(st.options.get(s, 0)) for st in states for s in slots) * prices[a] // WAD
        out.append(AccountState(settlement=gross + int(MAKER_CUSHION_USD) * WAD,
                                options={s: -q for s, q in net.items() if q}))
    return out


def listing_market(listing: OptionListing, start_time: int, vols: Sequence[float], spec: RiskSpec = DEFAULT_SPEC,
                   prices_usd: Sequence[float] = START_PRICES_USD):
    """The :class:`~offchain.margin.options.OptionMarket` of ``listing`` listed at ``start_time`` (strikes at
    ``prices_usd``, rounded to whole USD as the demo lists them), at volatilities ``vols`` (by asset), valued then."""
    from .margin.options import OptionMarket, Series

    series = {slot: Series(a, bool(c), int(round(prices_usd[a] * m)) * WAD, start_time + d * 86_400)
              for slot, (a, c, m, d) in enumerate(zip(listing.asset, listing.is_call, listing.moneyness,
                                                      listing.days))}
    word = spec.options.word() if spec.options is not None else 0
    return OptionMarket(series, [int(v * WAD) for v in vols] + [0] * (8 - len(vols)), word, start_time)


def option_standard_requirement(state: AccountState, market, prices: Sequence[int], spec: RiskSpec = DEFAULT_SPEC,
                                layout: Layout = LOCAL_LAYOUT) -> float:
    """The standard (per-position) maintenance requirement of a book with options, USD: Deribit's rule for each option
    (:func:`offchain.risk.option_backtest.standard_option`), each perpetual at its market's standard rate, token
    collateral at nothing."""
    from .margin.options import mark
    from .risk.option_backtest import standard_option

    total = 0.0
    for slot, size in state.options.items():
        s = market.series[slot]
        spot = prices[s.asset] / WAD
        m = mark(s, prices[s.asset], market.vols[s.asset], market.word, market.time) / WAD
        total += float(standard_option(s.is_call, spot, s.strike / WAD, m, size / WAD))
    rates = [spec.markets[m].standard_mmr_bps for m in range(len(layout.market_asset))]
    return total + standard_requirement(state, layout, prices, rates) / WAD
