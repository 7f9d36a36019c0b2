"""Funding off-chain: the indexer rebuilds every market's funding state and every position's stored index from
events alone, the mirror equals the chain with accrued funding, and the keeper liquidates an account that funding
alone (no price move) pushed below its maintenance margin.

The module deploys with funding on: a 5% premium cap over a 1-hour window, paid over an hour, capped at 1% per
hour, so a premium set by fee-paying fills moves real money within hours of chain time.
"""
from __future__ import annotations

import pytest
from brownie import TestVenue, chain, web3

from offchain.margin import funding as fr
from tests.fixture_spec import FIXTURE_SPEC
from offchain.margin.exact import WAD, account_margin
from offchain.margin.params import FundingParams
from offchain.margin.snapshot import read_account_state, read_funding_word, read_market_funding
from offchain.runtime import open_runtime
from scripts.deploy import deploy_local
from tests.conftest import Trader

USDC = 10**6
BTC = 0
HOUR = 3600
FAST = FundingParams(window=HOUR, period=HOUR, premium_cap_bps=500, depth_bps=3200, max_rate_per_hour=10_000,
                     clamp_bps=10_000, interest_per_hour=0, adl_share_bps=5000)


@pytest.fixture(scope="module")
def protocol(deployer):
    """Funding on, and a BTC open-interest cap of 5 BTC (300,000 USD): the premium depth is 32% of its notional."""
    markets = dict(FIXTURE_SPEC.markets)
    markets[BTC] = markets[BTC].model_copy(update={"max_open_interest": 5 * WAD})
    return deploy_local(deployer, FIXTURE_SPEC.model_copy(update={"funding": FAST, "markets": markets}))


@pytest.fixture(scope="module")
def venue(protocol, deployer):
    v = TestVenue.deploy(protocol.vault, {"from": deployer})
    protocol.vault.setVenue(v, True, {"from": deployer})
    return v


def _deposit(protocol, deployer, account, usd):
    protocol.usdc.mint(deployer, usd * USDC, {"from": deployer})
    protocol.usdc.approve(protocol.vault, usd * USDC, {"from": deployer})
    protocol.vault.deposit(account, protocol.usdc, usd * USDC, {"from": deployer})


def _premium_then_wait(protocol, venue, deployer, hours):
    """Every hour for `hours`: a fill 2% above the index (the band's edge) that paid 600,000 USD of fees (six times
    the depth of 96,000), then an hour of chain time with the feeds refreshed at the same prices. The rate stays at
    its 1% per hour cap."""
    a, b = Trader(protocol.vault), Trader(protocol.vault)
    for t in (a, b):
        _deposit(protocol, deployer, t.id, 1_000_000 * hours)
    price = protocol.oracle.price(BTC)
    for _ in range(hours):
        venue.trade(a.id, b.id, BTC, WAD, price * 102 // 100, 300_000 * WAD, {"from": deployer})
        venue.trade(b.id, a.id, BTC, WAD, price, 0, {"from": deployer})
        chain.sleep(HOUR)
        _refresh_feeds(protocol, deployer)


def _refresh_feeds(protocol, deployer):
    for feed in protocol.feeds:
        feed.updateAnswer(feed.latestRoundData()[1], {"from": deployer})


def test_funding_alone_puts_an_account_under_water_and_the_keeper_liquidates_it(protocol, venue, deployer,
                                                                                 make_keeper, keeper_wallet):
    vault = protocol.vault
    price = protocol.oracle.price(BTC)
    long_, short = Trader(vault), Trader(vault)
    _deposit(protocol, deployer, long_.id, 15_100)  # 100,000 USD of BTC on 15,100: MM 10,000, IM 15,000
    _deposit(protocol, deployer, short.id, 1_000_000)
    venue.trade(long_.id, short.id, BTC, 100_000 * WAD * WAD // price, price, 0, {"from": deployer})
    keeper = make_keeper("funding", keeper_wallet)
    assert keeper.step().liquidatable == 0
    _premium_then_wait(protocol, venue, deployer, 7)  # the 1% per hour cap for 7 hours: 7,000 > 5,100
    equity, maintenance, _ = vault.margin(long_.id)
    assert equity < maintenance and protocol.oracle.price(BTC) == price  # funding alone did it
    report = keeper.step()
    assert long_.id in report.sent
    chain.mine()
    keeper.step()
    liquidated = {int(e.args.account) for e in vault.events.get_sequence(web3.eth.block_number - 3,
                                                                          event_type="Liquidated")}
    assert long_.id in liquidated


def test_indexer_rebuilds_funding_from_events_and_the_mirror_equals_the_chain(protocol, venue, deployer,
                                                                              settings_for):
    vault = protocol.vault
    _premium_then_wait(protocol, venue, deployer, 2)
    holders = [Trader(vault) for _ in range(3)]
    price = protocol.oracle.price(BTC)
    for t in holders:
        _deposit(protocol, deployer, t.id, 100_000)
    venue.trade(holders[0].id, holders[1].id, BTC, WAD, price, 0, {"from": deployer})
    venue.trade(holders[2].id, holders[1].id, BTC, WAD // 2, price, 0, {"from": deployer})
    chain.sleep(HOUR)
    _refresh_feeds(protocol, deployer)  # an hour on, the feeds' answers are stale (their heartbeat is an hour)
    rt = open_runtime(settings_for("funding-index"))
    head = rt.indexer.sync().head
    block = web3.eth.get_block(head)
    rebuilt = rt.indexer.funding_states()[BTC]  # from FundingUpdated events alone
    word = read_funding_word(protocol.params)
    rw = FIXTURE_SPEC.risk_weights[BTC]
    cap = int(protocol.params.marketWord(BTC)) >> 16 & (2**112 - 1)
    advanced, _ = fr.advance(rebuilt, block.timestamp, word, cap, price, rw)
    assert advanced == read_market_funding(rt.chain.at(head).vault, BTC)
    view = rt.indexer.market_view(head)
    states = rt.indexer.states([t.id for t in holders])
    for t in holders:
        assert states[t.id].canonical() == read_account_state(vault, t.id).canonical()  # stored indices included
        model = account_margin(states[t.id], view.layout, view.prices, view.cfg, view.markets)
        equity, maintenance, _ = vault.margin(t.id, block_identifier=head)
        assert (model.equity, model.maintenance) == (equity, maintenance)
        assert vault.fundingOf(t.id, BTC, block_identifier=head)[0] != 0  # funding is part of what was compared
