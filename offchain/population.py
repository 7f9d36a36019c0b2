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
OPTION_KINDS = ("covered_call", "protective_put", "hedged_straddle")
OPTION_UTILISATION = {"covered_call": (0.0, 0.0), "protective_put": (0.3, 0.8), "hedged_straddle": (0.3, 0.8)}
# The demo's option series: (slot, asset, is_call, strike / start price, days to expiry).
OPTION_SERIES = tuple((4 * i + j, asset, call, k, 30) for i, asset in enumerate((BTC, ETH))
                      for j, (call, k) in enumerate(((True, 1.1), (False, 0.9), (True, 1.0), (False, 1.0))))


@dataclass(frozen=True)
class OptionTrader:
    """A book with options: ``options`` are (series slot, signed size in units of the underlying), ``legs``
    perpetuals (market, signed units), ``collateral`` token units by collateral id; the premiums are paid or received
    at the mark when the book is opened."""

    kind: str
    asset: int
    settlement_usd: float
    collateral: dict[int, int] = field(default_factory=dict)
    options: tuple[tuple[int, int], ...] = ()
    legs: tuple[tuple[int, int], ...] = ()


def option_market(start_time: int, vols: Sequence[float], spec: RiskSpec = DEFAULT_SPEC,
                  prices_usd: Sequence[float] = START_PRICES_USD):
    """The :class:`~offchain.margin.options.OptionMarket` of :data:`OPTION_SERIES` listed at ``start_time``, at
    volatilities ``vols`` (by asset), valued at ``start_time``."""
    from .margin.options import OptionMarket, Series

    series = {slot: Series(asset, call, int(round(prices_usd[asset] * k)) * WAD, start_time + days * 86_400)
              for slot, asset, call, k, days in OPTION_SERIES}
    word = spec.options.word() if spec.options is not None else 0
    return OptionMarket(series, [int(v * WAD) for v in vols] + [0] * (8 - len(vols)), word, start_time)


def option_state(t: OptionTrader, prices: Sequence[int], market, fee_bps: int = TAKER_FEE_BPS,
                 layout: Layout = LOCAL_LAYOUT) -> AccountState:
    """The account after its deposits and trades: premiums at the mark (a buyer pays it rounded up, a seller
    receives it rounded down), perpetuals at ``prices``, the taker fee on each fill's notional."""
    from .margin.options import mark

    settlement = int(t.settlement_usd * 10**SETTLEMENT_DECIMALS) * 10**12
    for slot, size in t.options:
        s = market.series[slot]
        m = mark(s, prices[s.asset], market.vols[s.asset], market.word, market.time)
        premium = -(-abs(size) * m // WAD) if size > 0 else abs(size) * m // WAD
        settlement += -premium if size > 0 else premium
        settlement -= -(-abs(size) * m // WAD) * fee_bps // 10_000 + 1
    positions: dict[int, tuple[int, int]] = {}
    for market_id, size in t.legs:
        price = prices[layout.market_asset[market_id]]
        positions[market_id] = (size, -(-size * price // WAD))
        settlement -= abs(size) * price // WAD * fee_bps // 10_000 + 1
    return AccountState(settlement=settlement, positions=positions, collateral=dict(t.collateral),
                        options={slot: size for slot, size in t.options})


def _option_book(kind: str, asset: int, units: float, equity: float, market, prices: Sequence[int]) -> OptionTrader:
    from .margin.optionmath import delta_np

    q = int(units * 1e6) * 10**12
    otm_call, otm_put, atm_call, atm_put = (4 * (0 if asset == BTC else 1) + j for j in range(4))
    if kind == "covered_call":
        cid = next(j for j, (_, _, a, _) in enumerate(LOCAL_COLLATERALS) if a == asset)
        decimals = LOCAL_COLLATERALS[cid][1]
        return OptionTrader(kind, asset, equity, {cid: int(units * 10**decimals)}, ((otm_call, -q),))
    if kind == "protective_put":
        return OptionTrader(kind, asset, equity, {}, ((otm_put, q),), ((asset, q),))
    if kind == "hedged_straddle":
        s = market.series[atm_call]
        spot = prices[asset] / WAD
        t_years = (s.expiry - market.time) / (365 * 86_400)
        sd = market.vols[asset] / WAD * t_years ** 0.5
        straddle = float(delta_np(True, spot, s.strike / WAD, sd)) + float(delta_np(False, spot, s.strike / WAD, sd))
        hedge = int(units * straddle * 1e6) * 10**12  # a short straddle's delta is minus this: buy it back
        return OptionTrader(kind, asset, equity, {}, ((atm_call, -q), (atm_put, -q)), ((asset, hedge),) if hedge else ())
    raise ValueError(f"unknown option book kind {kind!r}; choose one of {', '.join(OPTION_KINDS)}")


def option_traders(n: int, seed: int, market, spec: RiskSpec = DEFAULT_SPEC,
                   prices_usd: Sequence[float] = START_PRICES_USD, layout: Layout = LOCAL_LAYOUT) -> list[OptionTrader]:
    """``n`` option books (the kinds in turn, BTC and ETH alternating), each at or above IM at ``prices_usd`` under
    ``spec`` and ``market`` (:func:`option_market`): covered calls hold 1-10 units of the token and a 10%-out short
    call, with 2% of the notional in USDC; protective puts and delta-hedged short straddles are sized to an IM
    utilisation drawn in :data:`OPTION_UTILISATION` on an equity drawn as the perpetual books' is."""
    if n < 1:
        raise ValueError(f"option books: n must be at least 1 (got {n})")
    rng = np.random.default_rng(seed + 1)
    cfg = spec.margin_config()
    prices = prices_wad(prices_usd)
    out = []
    for i in range(n):
        kind = OPTION_KINDS[i % len(OPTION_KINDS)]
        asset = (BTC, ETH)[(i // len(OPTION_KINDS)) % 2]
        spot = prices_usd[asset]
        if kind == "covered_call":
            units = float(rng.uniform(1, 10)) * (1.0 if asset == BTC else 20.0)
            out.append(_option_book(kind, asset, units, 0.02 * units * spot, market, prices))
            continue
        equity = float(np.clip(rng.lognormal(np.log(EQUITY_MEDIAN_USD), EQUITY_SIGMA), 5_000.0, 500_000.0))
        target = rng.uniform(*OPTION_UTILISATION[kind])
        units = equity / spot  # one unit of notional per unit of equity, then scaled to the target
        book = _option_book(kind, asset, units, equity, market, prices)
        m = account_margin(option_state(book, prices, market), layout, prices, cfg, options=market)
        if 0 < m.initial < target * m.equity:  # the requirement grows about in proportion to the size
            units *= target * m.equity / m.initial
            book = _option_book(kind, asset, units, equity, market, prices)
        for _ in range(60):
            m = account_margin(option_state(book, prices, market), layout, prices, cfg, options=market)
            if m.initial <= target * m.equity:
                break
            units *= 0.9
            book = _option_book(kind, asset, units, equity, market, prices)
        else:
            raise ValueError(f"an option book ({kind}) of {equity:,.0f} USD cannot be sized under the risk set")
        out.append(book)
    return out


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
