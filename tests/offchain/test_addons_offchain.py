"""The dynamic add-ons off-chain: an updater's volatility-scaler raise, a correlation break, or a market depth puts
accounts below their maintenance margin without any price move, and the keeper (screen, exact confirmation,
transaction) liquidates exactly those accounts; the account the add-ons leave healthy is left alone.
"""
from __future__ import annotations

import pytest
from brownie import TestVenue, accounts, web3

from offchain.margin.exact import account_margin
from offchain.margin.snapshot import read_account_state, read_layout, read_margin_config, read_prices
from tests.conftest import Trader

USDC = 10**6
WAD = 10**18
BTC, ETH = 0, 1


@pytest.fixture(scope="module")
def venue(protocol, deployer):
    v = TestVenue.deploy(protocol.vault, {"from": deployer})
    protocol.vault.setVenue(v, True, {"from": deployer})
    return v


def _deposit(protocol, deployer, account, usd):
    protocol.usdc.mint(deployer, usd * USDC, {"from": deployer})
    protocol.usdc.approve(protocol.vault, usd * USDC, {"from": deployer})
    protocol.vault.deposit(account, protocol.usdc, usd * USDC, {"from": deployer})


def _open(protocol, venue, deployer, account, maker, market, usd):
    """A position worth `usd` (signed) at the oracle price, against `maker`."""
    price = protocol.oracle.price(market)
    size = abs(usd) * WAD * WAD // price
    buyer, seller = (account, maker) if usd > 0 else (maker, account)
    venue.trade(buyer, seller, market, size, price, 0, {"from": deployer})


def _mirror(protocol, account):
    layout = read_layout(protocol.vault)
    return account_margin(read_account_state(protocol.vault, account), layout, read_prices(protocol.oracle, layout),
                          read_margin_config(protocol.params))


def _liquidated_since(vault, block) -> set[int]:
    return {int(e.args.account) for e in vault.events.get_sequence(block, event_type="Liquidated")}


def test_addon_raises_put_accounts_under_water_and_the_keeper_liquidates_exactly_them(
        protocol, venue, deployer, make_keeper, keeper_wallet):
    vault, params = protocol.vault, protocol.params
    updater = accounts[6]
    params.grantRole(params.RISK_UPDATER_ROLE(), updater, {"from": deployer})
    maker = Trader(vault)
    _deposit(protocol, deployer, maker.id, 10_000_000)
    # each book opens at its initial margin (1.5 MM) plus a little
    # a directional ETH book: 100,000 of ETH on 18,100 (MM 12,000): an ETH scaler of 200% makes MM 24,000
    directional = Trader(vault)
    _deposit(protocol, deployer, directional.id, 18_100)
    _open(protocol, venue, deployer, directional.id, maker.id, ETH, 100_000)
    # a hedged BTC/ETH pair (MM 100,000 from the low regime and the stress scan): a 50% correlation break raises its
    # low-regime charge to about 131,000, and the ETH scaler, ETH being 55% of its weighted sensitivities, by 55% more
    hedged = Trader(vault)
    _deposit(protocol, deployer, hedged.id, 151_000)
    _open(protocol, venue, deployer, hedged.id, maker.id, BTC, 1_000_000)
    _open(protocol, venue, deployer, hedged.id, maker.id, ETH, -1_000_000)
    hedged_mm = _mirror(protocol, hedged.id).maintenance
    # a large BTC book (MM 400,000 on 4 million): a depth of 1 billion USD adds 4M * sqrt(4M / 1bn) = 253,000
    large = Trader(vault)
    _deposit(protocol, deployer, large.id, 601_000)
    _open(protocol, venue, deployer, large.id, maker.id, BTC, 4_000_000)
    # a small BTC book with ample equity: the same depth adds 1,000 to its 10,000
    safe = Trader(vault)
    _deposit(protocol, deployer, safe.id, 50_000)
    _open(protocol, venue, deployer, safe.id, maker.id, BTC, 100_000)
    books = (directional, hedged, large, safe)

    keeper = make_keeper("addons", keeper_wallet)
    assert keeper.step().liquidatable == 0
    start = web3.eth.block_number
    params.setVolScaler(ETH, 15_000, {"from": updater})  # the updater's largest step, at once
    params.setVolScaler(ETH, 20_000, {"from": deployer})  # the risk admin raises by any amount
    params.setCorrelationBreak(5_000, {"from": updater})
    params.setMarketDepth(BTC, 100, {"from": deployer})  # 100 units of 10 million USD
    for t in books:
        m = _mirror(protocol, t.id)
        assert tuple(vault.margin(t.id)) == (m.equity, m.maintenance, m.initial)  # the chain = the mirror
    under = {t.id for t in books if _mirror(protocol, t.id).liquidatable}
    assert under == {directional.id, hedged.id, large.id}
    assert _mirror(protocol, hedged.id).maintenance > hedged_mm * 125 // 100  # the break removed hedge credit
    report = keeper.step()
    assert set(report.sent) == under
    assert _liquidated_since(vault, start) == under
