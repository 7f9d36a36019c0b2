"""Read what the margin mirror needs from the deployed contracts (Brownie or web3 contract handles).

The readers only call the vault's, router's and parameter contract's public views; pin them to one block (or call
them without blocks being mined in between) when the values must be consistent with each other.
"""
from __future__ import annotations

from typing import Any, Iterable, NamedTuple

from .exact import AccountState, Layout, MarginConfig
from .funding import FundingWord, MarketFunding
from .options import MAX_SERIES, OptionMarket, Series

MAX_LISTED = 16  # markets and collaterals a vault can list


class MarketView(NamedTuple):
    """What every account's margin at one block depends on besides the account: the listing, oracle prices, the
    margin words and each market's funding state advanced to that block."""

    layout: Layout
    prices: list[int]
    cfg: MarginConfig
    markets: dict[int, MarketFunding]


def read_account_state(vault: Any, account_id: int, options: Any = None) -> AccountState:
    """An account's settlement balance, positions (with the funding index each stored), collateral balances and,
    with the option registry ``options``, option positions, as the vault stores them."""
    markets, collaterals = vault.masksOf(account_id)
    state = AccountState(settlement=int(vault.settlementOf(account_id)))
    if options is not None:
        mask = int(vault.optionsOf(account_id))
        state.options = {i: int(options.sizeOf(account_id, i)) for i in range(MAX_SERIES) if mask >> i & 1}
    for m in range(MAX_LISTED):
        if markets >> m & 1:
            state.positions[m] = tuple(int(x) for x in vault.positionOf(account_id, m))
            state.funding[m] = int(vault.fundingOf(account_id, m)[1])
    for j in range(MAX_LISTED):
        if collaterals >> j & 1:
            state.collateral[j] = int(vault.collateralOf(account_id, j))
    return state


def read_layout(vault: Any) -> Layout:
    """The vault's listing: each market's asset, each collateral's asset and decimals."""
    info = [vault.collateralInfo(j) for j in range(vault.numCollaterals())]
    return Layout(
        tuple(int(vault.marketAsset(m)) for m in range(vault.numMarkets())),
        tuple(int(i[1]) for i in info),
        tuple(int(i[2]) for i in info),
    )


def read_prices(oracle: Any, layout: Layout) -> list[int]:
    """Oracle prices (USD 1e18) of every listed asset; zero for assets nothing refers to and for assets without a
    valid price (stale, not positive, no feed), as the vault sees them: collateral of such an asset counts at 0 and
    a position on it cannot be valued (``PriceUnavailable``). A sequencer outage raises, as on-chain."""
    mask = sum(1 << a for a in set(layout.market_asset + layout.collateral_asset))
    return [int(x) for x in oracle.pricesFor(0, mask)]


def read_standard_rates(params: Any, layout: Layout) -> list[int]:
    """Each market's standard maintenance rate (bps, the low 16 bits of its market word): the per-position
    requirement the portfolio margin is compared with."""
    return [int(params.marketWord(m)) & 0xFFFF for m in range(len(layout.market_asset))]


def read_series(options: Any, slots: Iterable[int] = range(MAX_SERIES)) -> dict[int, Series]:
    """Every listed option series by slot (``IOptionMarkets.series``), of ``slots`` (default: all)."""
    out = {}
    for i in slots:
        asset, is_call, strike, expiry, fixed, _, _, listed = options.series(i)
        if listed:
            out[i] = Series(int(asset), bool(is_call), int(strike), int(expiry), int(fixed))
    return out


def read_option_market(options: Any, oracle: Any, params: Any, time: int, series: dict[int, Series] | None = None
                       ) -> OptionMarket:
    """What option values depend on at a block of timestamp ``time``: the series, the volatility feeds' values as a
    liquidation or view uses them (last answers, clamped; assets without a feed get 0), the OPTION word."""
    series = read_series(options) if series is None else series
    vols = [0] * 8
    for a in sorted({s.asset for s in series.values()}):
        vols[a] = int(oracle.vols(1 << a, False)[a])
    return OptionMarket(series, vols, int(params.optionWord()), int(time))


def read_margin_config(params: Any) -> MarginConfig:
    return MarginConfig.from_chain(params.marginConfig())


def read_funding_word(params: Any) -> FundingWord:
    return FundingWord.decode(int(params.fundingWord()))


def read_market_funding(vault: Any, market: int) -> MarketFunding:
    """A market's funding state advanced to the block of the call (``marketFunding``; its carry included)."""
    m = vault.marketFunding(market)
    return MarketFunding(int(m[0]), int(m[1]), int(m[5]), int(m[2]), int(m[3]), int(m[6]))


def read_markets(vault: Any, layout: Layout, prices: list[int]) -> dict[int, MarketFunding]:
    """Every listed market's funding state advanced to the block of the calls, but for markets whose asset has no
    valid price in ``prices`` (``read_prices`` at the same block): no position on them can be valued either."""
    return {m: read_market_funding(vault, m) for m, asset in enumerate(layout.market_asset) if prices[asset]}
