"""Adversarial catalogue: an account at the listing limits, and the gas of liquidating it.

The vault lists at most 16 markets and 16 collaterals over 8 assets (RiskConfig.MAX_MARKETS / MAX_COLLATERALS /
MAX_ASSETS), so an account can hold at most 16 positions and 16 collateral balances, priced by 8 feeds. A griefer
cannot push an account past that (deposits into any account only add to those 16 slots), so the worst case is
bounded. This module lists everything up to the limits, builds such an account, crashes every price until it is deep
under water, and liquidates all 32 items in one call, with the fund holding none of them yet (every slot it writes
is new: the most expensive case).

Bound: LIQUIDATION_GAS_BOUND = 3,000,000 gas, 10% of the 30,000,000 block gas limit the suite runs with (and of
Ethereum mainnet's), and under a fifth of EIP-7825's per-transaction cap of 2^24 = 16,777,216: such an account is
always liquidatable in one transaction that fits a block with room to spare, even when blocks are full.
"""
from __future__ import annotations

import pytest
from brownie import ChainlinkFeed, TestToken

from offchain.margin.exact import BPS
from scripts.deploy import set_price
from tests.adversarial.helpers import USDC, WAD, deposit, model
from tests.conftest import Trader

LIQUIDATION_GAS_BOUND = 3_000_000
MAX_MARKETS, MAX_COLLATERALS, MAX_ASSETS = 16, 16, 8


@pytest.fixture(scope="module")
def full(protocol, deployer, test_venue, rich):
    """Everything listed up to the limits, and one account holding a long position in all 16 markets (20,000 USD
    each), 1,000 USD of each of the 16 collaterals and 100,000 USDC."""
    vault, params, oracle, tx = protocol.vault, protocol.params, protocol.oracle, {"from": deployer}
    feeds = list(protocol.feeds)
    for asset in range(len(feeds), MAX_ASSETS):
        feed = ChainlinkFeed.deploy(8, 100 * 10**8, tx)  # 100 USD
        oracle.setFeed(asset, feed, 3600, tx)
        params.setRiskWeight(asset, 2000, tx)
        feeds.append(feed)
    for m in range(vault.numMarkets(), MAX_MARKETS):
        vault.listMarket(m % MAX_ASSETS, tx)
        params.setMarket(m, 1000, 2**95 - 1, 2**95 - 1, tx)
    tokens = list(protocol.tokens)
    for j in range(vault.numCollaterals(), MAX_COLLATERALS):
        token = TestToken.deploy(f"Collateral {j}", f"C{j}", 18, tx)
        vault.listCollateral(token, j % MAX_ASSETS, tx)
        params.setHaircut(j, 1000, tx)
        tokens.append(token)
    assert (vault.numMarkets(), vault.numCollaterals()) == (MAX_MARKETS, MAX_COLLATERALS)

    x = Trader(vault)
    deposit(protocol, deployer, x.id, protocol.usdc, 100_000 * USDC)
    for j, token in enumerate(tokens):
        _, asset, decimals = vault.collateralInfo(j)
        deposit(protocol, deployer, x.id, token, 1_000 * WAD * 10**decimals // oracle.price(asset))
    for m in range(MAX_MARKETS):
        price = oracle.price(vault.marketAsset(m))
        test_venue.trade(x.id, rich.id, m, 20_000 * WAD * WAD // price, price, 0, tx)
    assert tuple(vault.masksOf(x.id)) == (2**MAX_MARKETS - 1, 2**MAX_COLLATERALS - 1)
    return x, feeds, tokens


def test_max_positions_account_liquidated_in_one_call_under_gas_bound(protocol, full, deployer, keeper, mirror):
    x, feeds, tokens = full
    vault = protocol.vault
    for feed in feeds:  # every price to 30%
        set_price(feed, feed.latestAnswer() * 3 / 10 / 10**8, deployer)
    before = model(protocol, mirror, x.id)
    liq = int(protocol.params.liquidationConfig()[0])
    deep = (liq >> 48) & 0xFFFF
    assert before.m.equity * BPS < before.m.maintenance * deep  # deep under water: everything may go
    assert before.allowed == before.m.gross_total
    items = [(0, m, abs(vault.positionOf(x.id, m)[0])) for m in range(MAX_MARKETS)]
    items += [(1, j, vault.collateralOf(x.id, j)) for j in range(MAX_COLLATERALS)]
    fund = vault.fundAccount()
    assert tuple(vault.masksOf(fund))[0] == 0  # the fund holds no position yet: every slot it writes is new

    tx = vault.liquidate(x.id, items, {"from": keeper, "gas_limit": 10_000_000})

    ev = tx.events["Liquidated"]
    assert ev["taken"] <= before.allowed and ev["surplusAfter"] > ev["surplusBefore"]
    assert tuple(vault.masksOf(x.id)) == (0, 0) and vault.settlementOf(x.id) == 0  # closed, debt written off
    assert tuple(vault.masksOf(fund)) == (2**MAX_MARKETS - 1, 2**MAX_COLLATERALS - 1)
    print(f"\nliquidation of 16 positions + 16 collaterals over 8 feeds: {tx.gas_used:,} gas "
          f"(bound {LIQUIDATION_GAS_BOUND:,})")
    assert 500_000 < tx.gas_used < LIQUIDATION_GAS_BOUND
