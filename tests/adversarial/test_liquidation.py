"""Adversarial catalogue: liquidation races and dust griefing.

Already covered in tests/integration/test_liquidate.py (referenced in docs/SECURITY.md): the minimum keeper reward on a
small take (test_liquidate_small_take_pays_min_keeper_reward), the reward capped at the fund
(test_liquidate_reward_capped_at_fund_balance), a dust remainder closed in full
(test_liquidate_dust_remainder_closes_all), a healthy account (test_liquidate_healthy_account_reverts).
"""
from __future__ import annotations

import pytest
from brownie import accounts, web3

from tests.adversarial.helpers import BTC, ETH, USDC, WAD, deposit, mine_together, model
from tests.conftest import Trader, assert_reverts, err


@pytest.fixture(scope="module")
def keepers(deployer):
    return accounts[6], accounts[7]


def _open_long_btc(protocol, test_venue, deployer, rich, usdc, size, price=60_000):
    t = Trader(protocol.vault)
    deposit(protocol, deployer, t.id, protocol.usdc, usdc)
    test_venue.trade(t.id, rich.id, BTC, size, price * WAD, 0, {"from": deployer})
    return t


def _net_size(vault, market, ids):
    return sum(vault.positionOf(i, market)[0] for i in list(ids) + [vault.fundAccount()])


def test_second_liquidation_in_the_same_block_takes_nothing(protocol, test_venue, deployer, rich, keepers, mirror,
                                                            move_price, ledger):
    """Two keepers send the same liquidation into one block. The first restores the account (E >= MM); the second,
    evaluated on the state the first left, reverts with AccountHealthy and is credited nothing."""
    vault = protocol.vault
    a = _open_long_btc(protocol, test_venue, deployer, rich, 10_000 * USDC, WAD)
    move_price(BTC, 55_000)  # E 5,000 < MM 5,500, not deep
    before = model(protocol, mirror, a.id)
    assert before.m.liquidatable
    size = before.allowed // 55_000  # the most the rule allows (taken = size x 55,000 <= allowed)
    assert 0 < size < WAD
    items = [(0, BTC, size)]
    k1, k2 = keepers
    credit = lambda k: vault.settlementOf(vault.accountId(k, 0))  # noqa: E731
    with ledger([a.id, rich.id, vault.accountId(k1, 0), vault.accountId(k2, 0)], [k1, k2]) as l:
        r1, r2 = mine_together(
            lambda tx: vault.liquidate(a.id, items, dict(tx, **{"from": k1})),
            lambda tx: vault.liquidate(a.id, items, dict(tx, **{"from": k2})),
        )
    assert r1["blockNumber"] == r2["blockNumber"]
    assert (r1["status"], r2["status"]) == (1, 0)
    # the second one, replayed on the state after the first, names the reason
    e, mm, _ = vault.margin(a.id)
    assert e >= mm
    assert_reverts(err("AccountHealthy", a.id, e, mm), vault.liquidate, a.id, items, {"from": k2})
    # exactly one liquidation's worth moved: the position, the penalty, one reward; no token left the vault
    assert vault.positionOf(a.id, BTC)[0] == WAD - size
    assert vault.positionOf(vault.fundAccount(), BTC)[0] == l.before[("positions", vault.fundAccount())][BTC][0] + size
    assert credit(k2) == 0 and credit(k1) > 0
    assert _net_size(vault, BTC, [a.id, rich.id]) == 0
    for token in [protocol.usdc] + list(protocol.tokens):
        key = ("token", token.address, vault.address)
        assert l.after[key] == l.before[key]


def test_dust_accounts_each_liquidated_in_full_and_block_no_one(protocol, test_venue, deployer, rich, keepers,
                                                                move_price, ledger):
    """Three dust accounts (10 USDC, 0.001 BTC) and one large account fall under water together. Each dust account
    is closed in full in one call (gross 50 USD < dust 100) and its keeper gets exactly the minimum reward, paid by the
    fund; the large account's liquidation in the same block goes through untouched by them."""
    vault = protocol.vault
    dust = [_open_long_btc(protocol, test_venue, deployer, rich, 10 * USDC, WAD // 1000) for _ in range(3)]
    big = _open_long_btc(protocol, test_venue, deployer, rich, 10_000 * USDC, WAD)
    move_price(BTC, 50_000)  # dust: E 0 < 50% of MM (deep); big: E 0 too
    liq = int(protocol.params.liquidationConfig()[0])
    min_reward = (liq >> 64) & (2**96 - 1)
    assert min_reward == 5 * WAD
    k1, k2 = keepers
    fund = vault.fundAccount()
    fund_before = vault.settlementOf(fund)
    receipts = mine_together(
        *[lambda tx, d=d: vault.liquidate(d.id, [(0, BTC, WAD // 1000)], dict(tx, **{"from": k1})) for d in dust],
        lambda tx: vault.liquidate(big.id, [(0, BTC, WAD)], dict(tx, **{"from": k2})),
    )
    assert [r["status"] for r in receipts] == [1, 1, 1, 1]
    assert len({r["blockNumber"] for r in receipts}) == 1
    for d in dust:
        assert tuple(vault.masksOf(d.id)) == (0, 0) and vault.settlementOf(d.id) == 0  # closed, debt written off
    assert vault.positionOf(big.id, BTC)[0] == 0
    assert vault.settlementOf(vault.accountId(k1, 0)) == 3 * min_reward  # max(30% x 0.5 USD, 5 USD) each
    # the fund: +penalties -rewards -written-off debts; each dust account owed 0.5 USD (penalty) after its close
    dust_flow = 3 * (-min_reward)
    big_penalty = 50_000 * WAD // 100
    big_reward = max(big_penalty * 3000 // 10_000, min_reward)
    assert vault.settlementOf(fund) - fund_before == dust_flow - big_reward
    assert vault.badDebt() == 0


def test_dust_deposit_front_run_cannot_block_liquidation(protocol, test_venue, deployer, rich, keepers, move_price,
                                                         ledger):
    """A flat account in debt is liquidated with an empty item list. A griefer front-runs the keeper with a 1-wei
    WETH deposit into it: the keeper's empty list now reverts (LiquidationEmpty) and moves nothing, and the re-planned
    call, which seizes the wei, writes the debt off. The griefer lost the wei and the gas."""
    vault = protocol.vault
    a = _open_long_btc(protocol, test_venue, deployer, rich, 10_000 * USDC, WAD)
    move_price(BTC, 48_000)
    test_venue.trade(rich.id, a.id, BTC, WAD, 48_000 * WAD, 0, {"from": deployer})  # reduce-only close
    assert vault.settlementOf(a.id) == -2_000 * WAD and tuple(vault.masksOf(a.id)) == (0, 0)
    k1, _ = keepers
    deposit(protocol, deployer, a.id, protocol.tokens[ETH], 1)  # the griefer's 1 wei
    with ledger([a.id, vault.accountId(k1, 0)], [k1]) as l:
        assert_reverts(err("LiquidationEmpty", a.id), vault.liquidate, a.id, [], {"from": k1})
    l.assert_unchanged()
    tx = vault.liquidate(a.id, [(1, ETH, 1)], {"from": k1})
    assert tx.events["BadDebtWrittenOff"]["debt"] > 2_000 * WAD - WAD  # the wei credited almost nothing
    assert tuple(vault.masksOf(a.id)) == (0, 0) and vault.settlementOf(a.id) == 0
    assert vault.collateralOf(vault.fundAccount(), ETH) == 1
