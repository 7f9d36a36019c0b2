"""The indexer with options against the chain: series, option positions and trades rebuilt from the registry's
events, equal to the chain's state and, through the mirror, to AccountLens; reorgs rolled back; expiry (fixing and
settlement) followed; restarts resumed; reconciliation repairing option rows and series."""
from __future__ import annotations

import random

from brownie import chain, web3

from offchain.margin.exact import account_margin
from offchain.margin.snapshot import read_account_state, read_series
from offchain.runtime import open_runtime
from scripts.deploy import set_price

from .conftest import USD_PER_TOKEN, WAD
from .rpc_proxy import RpcProxy


def _chain_states(rt, ids, block):
    at = rt.chain.at(block)
    return {a: read_account_state(at.vault, a, at.options).canonical() for a in ids}


def _indexed(rt, ids):
    return {a: s.canonical() for a, s in rt.indexer.states(ids).items()}


def test_indexer_rebuilds_option_positions_equal_to_the_chain_and_to_account_lens(book, settings_for, protocol):
    book.list_series()
    ids = book.option_book(12, random.Random(71)) + [book.maker]
    rt = open_runtime(settings_for("opt"))
    res = rt.indexer.sync()
    states = rt.indexer.states(ids)
    assert sum(bool(s.options) for s in states.values()) >= 11
    assert _indexed(rt, ids) == _chain_states(rt, ids, res.head)
    assert rt.indexer.series() == read_series(rt.chain.at(res.head).options)
    trades = rt.indexer.option_trades(1000)
    assert len(trades) == len(protocol.options.events.get_sequence(0, event_type="OptionTrade"))
    # the mirror with the option market read at the block equals the vault's margin, account by account
    view = rt.indexer.market_view(res.head)
    market = rt.indexer.option_market(res.head)
    equity, maintenance = rt.chain.lens_health(ids, res.head, 200)
    for a, e, m in zip(ids, equity, maintenance):
        mine = account_margin(states[a], *view, market)
        assert (mine.equity, mine.maintenance) == (e, m), hex(a)
    assert rt.indexer.reconcile(ids) == []
    # a corrupted option row and a lost series are found and repaired
    victim = ids[0]
    slot = sorted(states[victim].options)[0]
    rt.indexer.conn.execute("UPDATE option_positions SET size = '1' WHERE account = ? AND slot = ?",
                            (f"{victim:064x}", slot))
    rt.indexer.conn.execute("DELETE FROM option_series WHERE slot = 5")
    assert rt.indexer.reconcile(ids) == [victim] and rt.indexer.mismatches == 2
    assert rt.indexer.reconcile(ids) == [] and rt.indexer.series() == read_series(rt.chain.at(res.head).options)
    assert _indexed(rt, [victim]) == _chain_states(rt, [victim], res.head)


def test_lens_batches_of_option_accounts_split_under_a_node_call_gas_cap(book, settings_for, caplog):
    """A node capping eth_call gas (geth: 50 million) refuses a batch of option accounts whose margins cost more:
    the batch is halved until it passes, and the figures are the same."""
    book.list_series()
    ids = book.option_book(8, random.Random(74), perp_share=0.0) + [book.maker]
    rt = open_runtime(settings_for("lens"))
    head = rt.indexer.sync().head
    expected = rt.chain.lens_health(ids, head, 200)

    def gas(part):
        data = rt.chain.encode("AccountLens", "equityAndMaintenance", part)
        return web3.eth.estimate_gas({"to": rt.chain.address("AccountLens"), "data": data}, head)

    # a cap every single account passes under and the whole batch does not: measured, so a cheaper margin cannot
    # make the batch fit and the halving go unexercised
    cap = max(gas([a]) for a in ids) * 11 // 10
    assert gas(ids) > cap
    with RpcProxy(call_gas_cap=cap) as proxy, caplog.at_level("WARNING"):
        capped = open_runtime(settings_for("lens-capped", chain={"rpc_urls": [proxy.url]}))
        assert capped.chain.lens_health(ids, head, 200) == expected
    assert any("halving it" in r.getMessage() for r in caplog.records)


def test_indexer_follows_expiry_and_resumes_after_a_restart(book, settings_for, protocol, deployer, keeper):
    listing = book.list_series(((0, 0, True, 58_000, 2), (1, 0, False, 62_000, 2)))
    ids = book.option_book(4, random.Random(73), listing=listing, perp_share=0.0)
    settings = settings_for("opt-expiry")
    rt = open_runtime(settings)
    rt.indexer.sync()
    holders = rt.indexer.holders([0, 1])
    assert set(ids) | {book.maker} >= set(holders) and book.maker in holders
    expiry = protocol.options.series(0)[3]
    chain.sleep(expiry - chain.time() + 60)
    for asset, usd in enumerate(USD_PER_TOKEN):  # fresh prices after the jump; BTC fixes at 61,000
        set_price(protocol.feeds[asset], 61_000 if asset == 0 else usd, deployer)
    round_id = protocol.feeds[0].latestRound()
    for slot in (0, 1):
        protocol.options.fixExpiry(slot, round_id, {"from": keeper})
    settled = ids[0]
    protocol.vault.settleExpired(settled, holders[settled], {"from": keeper})
    rt.indexer.conn.close()
    rt2 = open_runtime(settings)  # a restart: resumes from the checkpoint
    res = rt2.indexer.sync()
    assert res.logs < 20
    assert {s: x.fixed_price for s, x in rt2.indexer.series().items()} == {0: 61_000 * WAD, 1: 61_000 * WAD}
    assert settled not in rt2.indexer.holders([0, 1]) and set(rt2.indexer.holders([0, 1])) == set(holders) - {settled}
    everyone = ids + [book.maker]
    assert _indexed(rt2, everyone) == _chain_states(rt2, everyone, res.head)
    assert rt2.indexer.reconcile(everyone) == []
    assert web3.eth.block_number == res.head


def test_indexer_rolls_back_option_events_in_a_reorg(book, settings_for, protocol):
    book.list_series()
    ids = book.option_book(6, random.Random(72), perp_share=0.0)
    rt = open_runtime(settings_for("opt-reorg"))
    rt.indexer.sync()
    trades_before = len(rt.indexer.option_trades(1000))
    chain.snapshot()  # replaces the test isolation's snapshot: this test runs last in the module
    for a in ids[:3]:  # the branch that will be dropped: the maker sells them a BTC call
        book.trade_option(a, book.maker, 2, WAD // 10)
    first = rt.indexer.sync()
    assert first.changed >= set(ids[:3]) and len(rt.indexer.option_trades(1000)) == trades_before + 3
    chain.revert()
    for a in ids[3:]:  # the new branch: other accounts, another series
        book.trade_option(a, book.maker, 4, WAD)
    res = rt.indexer.sync()
    assert res.reorg_depth > 0 and set(ids) <= res.changed | set(ids[3:])
    everyone = ids + [book.maker]
    assert _indexed(rt, everyone) == _chain_states(rt, everyone, res.head)
    assert len(rt.indexer.option_trades(1000)) == trades_before + 3
    assert all(slot == 4 for _, _, _, slot, *_ in rt.indexer.option_trades(3))
    assert rt.indexer.reconcile(everyone) == []
