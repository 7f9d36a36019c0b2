"""The keeper against a real local chain: a crash, two keepers racing, shards, dry run, the profit gate and a stuck
transaction replaced."""
from __future__ import annotations

import random

import pytest
from brownie import chain, web3

from offchain.db import acct_key
from scripts.deploy import set_price

from .conftest import USD_PER_TOKEN


def crash(protocol, deployer, factor):
    for asset, start in enumerate(USD_PER_TOKEN):
        set_price(protocol.feeds[asset], start * factor, deployer)


def under_water(protocol, ids):
    """Accounts with E < MM according to AccountLens (independent of the off-chain mirror)."""
    equity, maintenance = protocol.lens.equityAndMaintenance(ids)
    return {a for a, e, m in zip(ids, equity, maintenance) if e < m}


def liquidated_since(protocol, block):
    logs = protocol.vault.events.get_sequence(block, event_type="Liquidated")
    return [(int(e.args.account), e.args.keeper) for e in logs]


def statuses(keeper, account=None):
    q = "SELECT account, status, reason FROM opportunities WHERE keeper = ?"
    rows = keeper.conn.execute(q, (keeper.address,)).fetchall()
    return [(int(a, 16), s, r) for a, s, r in rows if account is None or a == acct_key(account)]


def run_until_quiet(keeper, max_steps=30):
    """Step until a fresh screen finds nothing liquidatable (mining an empty block when a step sent nothing)."""
    for _ in range(max_steps):
        report = keeper.step()
        if report.screened and not report.sent and report.liquidatable == 0:
            return report
        if not report.sent:
            chain.mine()
    raise AssertionError("the keeper kept finding work")


def miner(on: bool):
    web3.provider.make_request("miner_start" if on else "miner_stop", [])


def test_keeper_liquidates_every_account_a_crash_puts_under_water(book, make_keeper, keeper_wallet, protocol,
                                                                   deployer):
    rng = random.Random(21)
    ids = book.random_book(30, rng, leverage=(2.5, 4.0), direction=1) + book.random_book(10, rng, leverage=(0.1, 0.4))
    keeper = make_keeper("crash", keeper_wallet)
    assert keeper.step().liquidatable == 0
    start = web3.eth.block_number
    crash(protocol, deployer, 0.78)
    under = under_water(protocol, ids)
    assert len(under) >= 20 and len(under) < len(ids)
    run_until_quiet(keeper)
    done = liquidated_since(protocol, start)
    assert {a for a, _ in done} == under  # every one of them, and no healthy account touched
    assert {k for _, k in done} == {keeper_wallet.address}
    assert under_water(protocol, ids) == set()
    assert {s for _, s, _ in statuses(keeper)} == {"included"}
    assert int(keeper.metrics.included._value.get()) == len(done)


def test_two_keepers_never_duplicate_and_the_loser_records_lost(book, make_keeper, keeper_wallet, protocol,
                                                                 deployer, new_wallet):
    rng = random.Random(33)
    ids = book.random_book(6, rng, leverage=(3.0, 4.0), direction=1)
    a = make_keeper("a", keeper_wallet)
    b = make_keeper("b", new_wallet())
    a.step()
    b.step()
    crash(protocol, deployer, 0.4)  # deep under water: each liquidation closes everything, so only one can win
    under = under_water(protocol, ids)
    assert len(under) == len(ids)
    miner(False)
    try:
        sent_a, sent_b = a.step().sent, b.step().sent  # both see the same block and send for every account
        assert sorted(sent_a) == sorted(sent_b) == sorted(under)
    finally:
        miner(True)
        web3.provider.make_request("evm_mine", [])
    a.step()
    b.step()
    for account in under:
        (_, sa, _), = statuses(a, account)  # one opportunity each: nobody sent twice
        (_, sb, rb), = statuses(b, account)
        assert sorted((sa, sb)) == ["included", "lost"]
        loser = rb if sb == "lost" else statuses(a, account)[0][2]
        assert "liquidated first by" in loser
    for k in (a, b):
        nonces = [n for (n,) in k.conn.execute("SELECT nonce FROM txs WHERE keeper = ?", (k.address,))]
        assert len(nonces) == len(set(nonces)) == len(under)


def test_shards_split_the_accounts_and_dry_run_sends_nothing(book, make_keeper, keeper_wallet, protocol, deployer):
    ids = book.random_book(16, random.Random(8), leverage=(2.5, 4.0), direction=1)
    crash(protocol, deployer, 0.75)
    under = under_water(protocol, ids)
    assert len(under) >= 6
    nonce = web3.eth.get_transaction_count(keeper_wallet.address)
    seen = []
    for i in range(2):
        k = make_keeper(f"shard{i}", keeper_wallet, keeper={"shard": f"{i}/2", "dry_run": True})
        k.step()
        rows = statuses(k)
        assert {s for _, s, _ in rows} == {"skipped"} and {r for _, _, r in rows} == {"dry run"}
        seen.append({a for a, _, _ in rows})
    assert seen[0] | seen[1] == under and not seen[0] & seen[1] and seen[0] and seen[1]
    assert web3.eth.get_transaction_count(keeper_wallet.address) == nonce


def test_profit_gate_skips_unprofitable_liquidations_but_cleans_up_bad_debt(book, make_keeper, keeper_wallet,
                                                                             protocol, deployer):
    rng = random.Random(9)
    ids = book.random_book(5, rng, leverage=(3.0, 4.0), direction=1) + book.random_book(5, rng, leverage=(1.2, 1.6),
                                                                                        direction=1)
    keeper = make_keeper("gate", keeper_wallet, keeper={"min_profit_usd": 10**9, "cleanup_bad_debt": True})
    keeper.step()
    crash(protocol, deployer, 0.8)  # under water, equity still positive: not worth a billion dollars
    under = under_water(protocol, ids)
    report = keeper.step()
    rows = statuses(keeper)
    assert under and report.sent == [] and {a for a, _, _ in rows} == under
    assert all(s == "skipped" and r.startswith("unprofitable") for _, s, r in rows)
    crash(protocol, deployer, 0.62)  # now some accounts owe more than they hold: cleanup overrides the gate
    equity, _ = protocol.lens.equityAndMaintenance(ids)
    negative = {a for a, e in zip(ids, equity) if e < 0}
    assert negative and negative != set(ids)
    assert set(keeper.step().sent) == negative


def test_stuck_transaction_is_replaced_with_higher_fees(book, make_keeper, keeper_wallet, protocol, deployer):
    ids = book.random_book(1, random.Random(10), leverage=(3.0, 4.0), direction=1)
    keeper = make_keeper("stuck", keeper_wallet, keeper={"replace_after_seconds": 0.001})
    keeper.step()
    crash(protocol, deployer, 0.5)
    miner(False)
    try:
        assert keeper.step().sent == ids
        keeper.step()  # same head: the pending transaction is past its deadline and gets replaced
        rows = keeper.conn.execute("SELECT nonce, max_fee, priority_fee, status FROM txs ORDER BY sent_at").fetchall()
        assert len(rows) >= 2 and len({n for n, *_ in rows}) == 1
        assert rows[1][1] * 1000 >= rows[0][1] * 1125 and rows[1][2] * 1000 >= rows[0][2] * 1125
    finally:
        miner(True)
        web3.provider.make_request("evm_mine", [])
    keeper.step()
    final = dict((s, c) for s, c in keeper.conn.execute("SELECT status, COUNT(*) FROM txs GROUP BY status"))
    assert final.get("included") == 1 and final.get("pending") is None
    assert [s for _, s, _ in statuses(keeper)][0] == "included"


def _gauge(keeper, name):
    line = next(x for x in keeper.metrics.render().decode().splitlines() if x.startswith(name + " "))
    return float(line.split()[1])


def test_gas_balance_gauge_and_low_balance_warning(make_keeper, keeper_wallet, caplog):
    """The keeper's native balance is a gauge; below keeper.low_balance_eth the low flag is 1 and a warning names the
    setting; read at most every BALANCE_EVERY seconds."""
    rich = make_keeper("rich", keeper_wallet, keeper={"low_balance_eth": 1.0})
    rich.step()
    assert _gauge(rich, "xmargin_keeper_balance_eth") == pytest.approx(keeper_wallet.balance() / 1e18)
    assert _gauge(rich, "xmargin_keeper_balance_low") == 0
    poor = make_keeper("poor", keeper_wallet, keeper={"low_balance_eth": 1000.0})  # the wallet holds 100
    with caplog.at_level("WARNING"):
        poor.step()
    assert _gauge(poor, "xmargin_keeper_balance_low") == 1
    assert any("below keeper.low_balance_eth" in r.getMessage() for r in caplog.records)
    seen = poor._balance_at
    chain.mine()
    poor.step()  # a new block within BALANCE_EVERY: no new read
    assert poor._balance_at == seen
