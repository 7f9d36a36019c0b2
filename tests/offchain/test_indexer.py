"""Indexer and mirror against the chain: exact equality with AccountLens, reorgs, restarts, shrinking log ranges."""
from __future__ import annotations

import json
import random
import time

from brownie import TestVenue, chain

from offchain.runtime import open_runtime
from tests.fixture_spec import FIXTURE_SPEC
from offchain.margin.exact import WAD, account_margin
from offchain.margin.snapshot import read_account_state
from scripts.deploy import deploy_local, set_price
from tests.conftest import Trader

from .rpc_proxy import RpcProxy


def _chain_states(rt, ids, block):
    vault = rt.chain.at(block).vault
    return {a: read_account_state(vault, a) for a in ids}


def test_mirror_equals_lens_to_the_wei_on_500_random_accounts(book, settings_for, protocol, deployer):
    rng = random.Random(500)
    ids = book.random_book(520, rng)
    for asset, start in enumerate((60_000, 3_000, 150, 15)):  # a random market move after the book is built
        set_price(protocol.feeds[asset], start * rng.uniform(0.7, 1.3), deployer)
    rt = open_runtime(settings_for("mirror"))
    res = rt.indexer.sync()
    assert set(ids) <= set(rt.indexer.accounts())
    layout, prices, cfg, markets = rt.indexer.market_view(res.head)
    states = rt.indexer.states(ids)
    rows = []
    for i in range(0, len(ids), 100):
        rows += rt.chain.call("AccountLens", "healthOf", ids[i:i + 100], block=res.head)
    liquidatable = 0
    for a, row in zip(ids, rows):
        m = account_margin(states[a], layout, prices, cfg, markets)
        account, equity, _funding, maintenance, initial, _standard, delta = row
        assert (account, equity, maintenance, initial) == (a, m.equity, m.maintenance, m.initial), hex(a)
        assert list(delta) == list(m.delta), hex(a)
        liquidatable += m.liquidatable
    assert 0 < liquidatable < len(ids)  # the move left some accounts under water: both branches are compared
    assert rt.indexer.reconcile(ids) == []


def test_indexer_rolls_back_a_reorg(book, settings_for):
    rng = random.Random(7)
    ids = book.random_book(12, rng)
    rt = open_runtime(settings_for("reorg"))
    rt.indexer.sync()
    chain.snapshot()
    book.trade(0, ids[:6], [10**15] * 6)  # the branch that will be dropped
    first = rt.indexer.sync()
    assert first.changed >= set(ids[:6])
    chain.revert()
    book.trade(1, ids[6:], [-(10**16)] * 6)  # the new branch: other accounts, other market
    book.trade(1, ids[6:], [-(10**16)] * 6)
    res = rt.indexer.sync()
    assert res.reorg_depth > 0 and set(ids) <= res.changed | set(ids[6:])
    assert {a: s.canonical() for a, s in rt.indexer.states(ids).items()} == \
        {a: s.canonical() for a, s in _chain_states(rt, ids, res.head).items()}


def test_indexer_resumes_from_its_checkpoint_after_a_restart(book, settings_for):
    ids = book.random_book(30, random.Random(3))
    settings = settings_for("restart")
    rt = open_runtime(settings)
    full = rt.indexer.sync()
    rt.indexer.conn.close()
    book.trade(2, ids[:3], [10**17] * 3)
    t0 = time.perf_counter()
    rt2 = open_runtime(settings)  # a new process would do the same: open the same database
    res = rt2.indexer.sync()
    elapsed = time.perf_counter() - t0
    assert res.changed == set(ids[:3]) | {book.maker} and res.logs < full.logs / 10
    assert elapsed < 5, f"resume took {elapsed:.1f} s"
    assert rt2.indexer.reconcile(ids) == []


def test_indexer_shrinks_log_ranges_a_node_rejects(book, settings_for):
    ids = book.random_book(10, random.Random(4))
    with RpcProxy(max_log_range=3) as proxy:
        rt = open_runtime(settings_for("chunks", chain={"rpc_urls": [proxy.url]}, indexer={"log_chunk": 5000}))
        res = rt.indexer.sync()
        assert proxy.rejected > 0
        assert set(ids) <= set(rt.indexer.accounts()) and res.logs > 0
        assert rt.indexer.reconcile(ids) == []


def test_reconciliation_repairs_a_corrupted_row(book, settings_for):
    ids = book.random_book(5, random.Random(5))
    rt = open_runtime(settings_for("repair"))
    rt.indexer.sync()
    rt.indexer.conn.execute("UPDATE settlement SET balance = '12345' WHERE account = ?", (f"{ids[0]:064x}",))
    assert rt.indexer.reconcile(ids) == [ids[0]]
    assert rt.indexer.reconcile(ids) == []
    assert rt.indexer.states([ids[0]])[ids[0]].settlement != 12345


def test_indexer_voids_claims_when_the_pool_restarts_and_restores_them_on_a_reorg(settings_for, deployer, tmp_path):
    """A write-off beyond every claim restarts the vault's claims pool (SettlementIndexUpdated with totalShares 0):
    the stored shares of the holder `h` are void on-chain, and the indexer must zero them although no
    SettlementUpdated names `h`. When a reorg takes the write-off back, the claim comes back."""
    w = deploy_local(deployer, FIXTURE_SPEC, seed_fund=False)  # an empty fund: the loss reaches the claims
    venue = TestVenue.deploy(w.vault, {"from": deployer})
    w.vault.setVenue(venue, True, {"from": deployer})
    path = tmp_path / "fresh.json"
    path.write_text(json.dumps(w.addresses()))
    t, c, h = (Trader(w.vault) for _ in range(3))
    for account, token, amount in ((t.id, w.usdc, 10_000 * 10**6), (c.id, w.tokens[0], 2 * 10**8),
                                   (h.id, w.usdc, 1_000 * 10**6)):
        token.mint(deployer, amount, {"from": deployer})
        token.approve(w.vault, amount, {"from": deployer})
        w.vault.deposit(account, token, amount, {"from": deployer})
    venue.trade(t.id, c.id, 0, WAD, 60_000 * WAD, 0, {"from": deployer})
    set_price(w.feeds[0], 40_000, deployer)
    rt = open_runtime(settings_for("restart", chain={"deployment": str(path)}))
    rt.indexer.sync()
    assert rt.indexer.states([h.id])[h.id].settlement == 1_000 * WAD
    chain.snapshot()
    tx = w.vault.liquidate(t.id, [(0, 0, WAD)], {"from": deployer})
    assert tx.events["SettlementIndexUpdated"]["totalShares"] == 0
    res = rt.indexer.sync()
    assert h.id in res.changed and res.listing_changed
    assert rt.indexer.states([h.id])[h.id].settlement == 0 == w.vault.settlementOf(h.id)
    assert rt.indexer.reconcile([t.id, c.id, h.id]) == []
    chain.revert()
    set_price(w.feeds[1], 3_100, deployer)  # the new branch: no write-off
    set_price(w.feeds[1], 3_000, deployer)
    res = rt.indexer.sync()
    assert res.reorg_depth > 0
    assert rt.indexer.states([h.id])[h.id].settlement == 1_000 * WAD == w.vault.settlementOf(h.id)
    assert rt.indexer.settlement_index == WAD
    assert rt.indexer.reconcile([t.id, c.id, h.id]) == []
