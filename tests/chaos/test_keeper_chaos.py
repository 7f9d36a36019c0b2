"""Keeper chaos: one fault per test, the keeper's real loop running, the market crashing during the fault.

Each test asserts no missed liquidation, no duplicate transaction and a bounded recovery time, and records its
figures in scripts/bench/results/chaos.json (see conftest.py for the definitions)."""
from __future__ import annotations

import time

import pytest
from brownie import accounts, web3

from offchain.keeper.txmanager import GWEI
from tests.offchain.conftest import USD_PER_TOKEN, wait_for

from .conftest import RECOVERY_LIMIT, KeeperLoop, crash_all, duplicates, keeper_transactions, under_water, \
    wait_recovered
from .tcp_proxy import TcpProxy

HOLD = 2.0  # seconds each fault lasts after the crash


def _keeper(make_keeper, wallet, name, url, **keeper):
    return make_keeper(name, wallet, chain={"rpc_urls": [url], "request_timeout": 5.0, "retries": 1,
                                            "retry_backoff": 0.05},
                       keeper={"poll_interval": 0.05, **keeper})


def _outcomes(keeper):
    """Opportunities of the keeper by status, with the most frequent reasons."""
    rows = keeper.conn.execute("SELECT status, reason, COUNT(*) FROM opportunities WHERE keeper = ? "
                               "GROUP BY status, reason ORDER BY COUNT(*) DESC", (keeper.address,)).fetchall()
    out: dict = {}
    for status, reason, n in rows:
        out[status] = out.get(status, 0) + n
        if status != "included" and len(out.setdefault("reasons", [])) < 3:
            out["reasons"].append(f"{status}: {(reason or '')[:120]}")
    return out


def _record(results, request, fault, injected, missed, dups, recovery, keeper=None, **extra):
    results[fault] = {"fault": fault, "injected": injected, "missed": missed, "duplicates": dups,
                      "recovery_s": recovery, "test": request.node.nodeid, **extra}
    if keeper is not None:
        results[fault]["opportunities"] = _outcomes(keeper)


# fault -> (scenario seed, inject, clear, what the proxy does, what happens after); each lasts until the keeper reports
# unhealthy, then HOLD seconds more
TRANSPORT_FAULTS = {
    "connection_drop": (101, lambda p: setattr(p, "drop", True), lambda p: setattr(p, "drop", False),
                        "every connection closed after the request is read", ""),
    "slow_node": (102, lambda p: setattr(p, "delay", 6.0), lambda p: setattr(p, "delay", 0.0),
                  "every answer delayed 6 s (keeper timeout 5 s)", ""),
    "truncated_response": (103, lambda p: setattr(p, "truncate", True), lambda p: setattr(p, "truncate", False),
                           "every answer cut after half its body (full Content-Length)", ""),
    "node_restart": (104, lambda p: p.stop(), lambda p: p.start(),
                     "the endpoint goes down (listener closed, open connections cut: connection refused)",
                     "; then it listens again on the same port (chain state kept)"),
}


@pytest.mark.parametrize("fault", list(TRANSPORT_FAULTS))
def test_transport_fault(fault, request, scenario, make_keeper, keeper_wallet, protocol, deployer, producer,
                         chaos_results):
    seed, inject, clear, what, after = TRANSPORT_FAULTS[fault]
    ids = scenario(seed)
    start = web3.eth.block_number
    with TcpProxy(web3.provider.endpoint_uri) as proxy:
        keeper = _keeper(make_keeper, keeper_wallet, fault, proxy.url)
        with KeeperLoop(keeper) as loop:
            loop.synced()
            inject(proxy)
            crash_all(protocol, deployer)
            under = under_water(protocol, ids)
            assert len(under) >= 5
            t_fault = time.monotonic()
            while keeper.health()["healthy"] and time.monotonic() - t_fault < 25:  # until the keeper notices
                time.sleep(0.05)
            blind = not keeper.health()["healthy"]
            time.sleep(HOLD)
            fault_s = round(time.monotonic() - t_fault, 2)
            clear(proxy)
            recovery = wait_recovered(loop, protocol, ids)
            alive = loop.alive
        counts = dict(proxy.counts)
    missed = len(under_water(protocol, ids))
    dups = duplicates(keeper, start)
    injected = f"{what}, until the keeper reports unhealthy, then {HOLD:.0f} s more{after}"
    _record(chaos_results, request, fault, injected, missed, dups, recovery, keeper, under_water_at_crash=len(under),
            unhealthy_during_fault=blind, fault_s=fault_s, proxy=counts)
    assert alive, "the keeper loop died"
    assert blind, "the fault did not reach the keeper (it stayed healthy)"
    assert missed == 0 and dups == 0
    assert recovery is not None and recovery < RECOVERY_LIMIT


def test_reorg_removes_liquidations(request, scenario, make_keeper, keeper_wallet, protocol, deployer, producer,
                                    chaos_results):
    """The keeper's liquidations are reorged out (evm_snapshot/evm_revert, then other blocks are mined on top): it
    must liquidate again on the new chain, once per account, with nonces the new chain accepts."""
    ids = scenario(105)
    start = web3.eth.block_number
    snap = web3.provider.make_request("evm_snapshot", [])["result"]
    keeper = _keeper(make_keeper, keeper_wallet, "reorg", web3.provider.endpoint_uri)
    with KeeperLoop(keeper) as loop:
        loop.synced()
        crash_all(protocol, deployer, 0.7)
        first = wait_recovered(loop, protocol, ids, limit=90)
        assert first is not None, "no liquidation before the reorg"
    # The loop is paused while the node reverts (Ganache hangs a transaction sent while evm_revert runs); the keeper
    # meets the reorg when it resumes, as a keeper does whose node switches forks between two polls.
    old_head = web3.eth.block_number
    liquidated_before = len(keeper_transactions(keeper.address, start))
    producer.paused.set()
    time.sleep(0.6)
    assert web3.provider.make_request("evm_revert", [snap])["result"]
    for asset, feed in enumerate(protocol.feeds):  # another fork: a slightly different crash, sent straight to the
        answer = int(round(USD_PER_TOKEN[asset] * 0.69 * 10**8))  # node (Brownie's nonce book still holds the
        web3.eth.send_transaction({"from": deployer.address, "to": feed.address,  # reverted transactions)
                                   "data": feed.updateAnswer.encode_input(answer)})
    while web3.eth.block_number <= old_head + 1:
        web3.provider.make_request("evm_mine", [])
    under = under_water(protocol, ids)
    producer.paused.clear()
    t_fork = time.monotonic()
    with KeeperLoop(keeper) as loop:
        recovery = wait_recovered(loop, protocol, ids)
        alive = loop.alive
    missed = len(under_water(protocol, ids))
    dups = duplicates(keeper, start)
    _record(chaos_results, request, "reorg", f"{old_head - start} blocks holding {liquidated_before} liquidations "
            "reverted (evm_revert), replaced by a fork with a different crash and more blocks", missed, dups,
            recovery, under_water_after_reorg=len(under), detect_and_recover_s=round(time.monotonic() - t_fork, 2))
    assert alive and len(under) >= 5
    assert missed == 0 and dups == 0
    assert recovery is not None and recovery < RECOVERY_LIMIT


def test_nonce_used_outside_the_keeper(request, scenario, make_keeper, keeper_wallet, protocol, deployer, producer,
                                       chaos_results):
    """Transactions from the keeper's key sent by someone else: first while the keeper's nonce is cached, then one
    that replaces a keeper transaction waiting in the pool (same nonce, higher fee)."""
    ids = scenario(106)
    start = web3.eth.block_number
    keeper = _keeper(make_keeper, keeper_wallet, "nonce", web3.provider.endpoint_uri)
    outsider = accounts.add(keeper_wallet.private_key)
    external = set()
    with KeeperLoop(keeper) as loop:
        loop.synced()
        crash_all(protocol, deployer, 0.85)  # a first, mild crash: the keeper sends and caches its next nonce
        assert wait_recovered(loop, protocol, ids) is not None
        for _ in range(2):  # the key is used elsewhere: the cached nonce is now too low
            external.add(outsider.transfer(outsider, 0).txid.lower().removeprefix("0x"))
        crash_all(protocol, deployer, 0.7)
        under = under_water(protocol, ids)
        t_end = time.monotonic()
        recovery = wait_recovered(loop, protocol, ids)
        alive = loop.alive
    missed = len(under_water(protocol, ids))
    dups = duplicates(keeper, start, external)
    reasons = [r for (r,) in keeper.conn.execute("SELECT reason FROM opportunities WHERE reason LIKE '%nonce%'")]
    _record(chaos_results, request, "nonce_gap", "2 transactions from the keeper's key sent outside the keeper "
            "after it cached its next nonce, then a crash", missed, dups, recovery,
            under_water_at_crash=len(under), failed_for_nonce=len(reasons))
    assert alive and len(under) >= 3
    assert missed == 0 and dups == 0
    assert recovery is not None and recovery < RECOVERY_LIMIT and t_end


def test_competitor_keeper(request, scenario, make_keeper, keeper_wallet, new_wallet, protocol, deployer, producer,
                           chaos_results):
    """A second keeper (another key, its own database) races for the same accounts, both loops running."""
    ids = scenario(107)
    start = web3.eth.block_number
    ours = _keeper(make_keeper, keeper_wallet, "ours", web3.provider.endpoint_uri)
    rival = _keeper(make_keeper, new_wallet(), "rival", web3.provider.endpoint_uri)
    with KeeperLoop(ours) as a, KeeperLoop(rival) as b:
        a.synced()
        b.synced()
        crash_all(protocol, deployer, 0.7)
        under = under_water(protocol, ids)
        recovery = wait_recovered(a, protocol, ids)
        alive = a.alive and b.alive
        time.sleep(1.0)  # let both resolve their last outcomes
    missed = len(under_water(protocol, ids))
    dups = duplicates(ours, start) + duplicates(rival, start)
    status = {}
    for k in (ours, rival):
        for s, n in k.conn.execute("SELECT status, COUNT(*) FROM opportunities WHERE keeper = ? GROUP BY status",
                                   (k.address,)):
            status[f"{'ours' if k is ours else 'rival'}_{s}"] = n
    _record(chaos_results, request, "competitor_keeper", "a second keeper instance (own key and database) "
            "running at the same time over the same accounts", missed, dups, recovery,
            under_water_at_crash=len(under), opportunities=status)
    assert alive and len(under) >= 5
    assert missed == 0 and dups == 0
    assert recovery is not None and recovery < RECOVERY_LIMIT


def test_gas_price_spike(request, scenario, make_keeper, keeper_wallet, protocol, deployer, producer,
                         chaos_results):
    """The fee market spikes above the keeper's cap (30 gwei): the node refuses cheaper transactions, the keeper
    never offers more than its cap and records why it cannot liquidate; when the spike falls within the cap
    (10 gwei) it liquidates, paying at least the spiked base fee and at most its cap."""
    ids = scenario(108)
    start = web3.eth.block_number
    cap = 30 * GWEI
    with TcpProxy(web3.provider.endpoint_uri) as proxy:
        keeper = _keeper(make_keeper, keeper_wallet, "spike", proxy.url, max_fee_gwei=30.0, gas_token_usd=1.0)
        with KeeperLoop(keeper) as loop:
            loop.synced()
            proxy.min_gas_price = 40 * GWEI
            crash_all(protocol, deployer)
            under = under_water(protocol, ids)
            wait_for(lambda: proxy.counts["refused_underpriced"] > 0, 60, "the keeper to meet the spike")
            time.sleep(HOLD)
            during = len(keeper_transactions(keeper.address, start))
            proxy.min_gas_price = 10 * GWEI  # the spike falls within the cap
            recovery = wait_recovered(loop, protocol, ids)
            alive = loop.alive
        refused = proxy.counts["refused_underpriced"]
        proxy.min_gas_price = None
    missed = len(under_water(protocol, ids))
    dups = duplicates(keeper, start)
    fees = [int(f) for (f,) in keeper.conn.execute("SELECT max_fee FROM txs WHERE keeper = ?", (keeper.address,))]
    mined = {h for h, _ in keeper_transactions(keeper.address, start)}
    mined_fees = [int(f) for h, f in keeper.conn.execute("SELECT hash, max_fee FROM txs WHERE keeper = ?",
                                                         (keeper.address,)) if h.lower().removeprefix("0x") in mined]
    reasons = {r for (r,) in keeper.conn.execute("SELECT reason FROM opportunities WHERE status = 'failed'")}
    _record(chaos_results, request, "gas_price_spike", f"base fee reported at 40 gwei and cheaper transactions "
            f"refused (keeper cap 30 gwei) until the keeper meets it, then {HOLD:.0f} s more, then 10 gwei", missed, dups, recovery,
            under_water_at_crash=len(under), refused_underpriced=refused, mined_during_spike=during,
            max_fee_offered_gwei=max(fees) / GWEI if fees else None,
            min_fee_mined_gwei=min(mined_fees) / GWEI if mined_fees else None,
            failure_reasons=sorted(reasons)[:3])
    assert alive and len(under) >= 5
    assert during == 0 and refused > 0, "nothing can be mined above the keeper's cap"
    assert fees and max(fees) <= cap, "the keeper offered more than its fee cap"
    assert mined_fees and min(mined_fees) >= 10 * GWEI
    assert any("underpriced" in r for r in reasons), f"the keeper did not record why: {reasons}"
    assert missed == 0 and dups == 0
    assert recovery is not None and recovery < RECOVERY_LIMIT
