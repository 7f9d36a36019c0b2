"""Adversarial catalogue: liquidation races and dust griefing.

Already covered in tests/integration/test_liquidate.py (referenced in docs/SECURITY.md): a small take earns only its
share of its own penalty (test_liquidate_small_take_pays_share_of_penalty_only), the minimum reward only for a take
of 99% of maxTake (test_liquidate_min_keeper_reward_only_for_a_take_of_99_percent_of_max_take), the reward paid out
of the penalty with an empty fund (test_liquidate_reward_paid_out_of_penalty_with_empty_fund), a dust remainder
closed in full (test_liquidate_dust_remainder_closes_all), a healthy account (test_liquidate_healthy_account_reverts).
Slice loops and self-liquidation are in test_value_extraction.py.
"""
from __future__ import annotations

import pytest
from brownie import accounts, web3

from offchain.margin.exact import account_margin, keeper_reward, liquidation_penalty
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
                                                                move_price, mirror):
    """Three dust accounts (10 USDC, 0.001 BTC) and one large account fall under water together. Each dust account
    is closed in full in one call (gross 52 USD < dust 100); its keeper gets min(5 USD, its penalty), which is all of
    its 0.52 USD penalty and nothing from the fund; the large account's liquidation in the same block goes through
    untouched by them, and the fund keeps its penalty less its keeper's 30%."""
    vault = protocol.vault
    dust = [_open_long_btc(protocol, test_venue, deployer, rich, 10 * USDC, WAD // 1000) for _ in range(3)]
    big = _open_long_btc(protocol, test_venue, deployer, rich, 10_000 * USDC, WAD)
    move_price(BTC, 52_000)  # dust: E 2 < 50% of MM (deep); big: E 2,000 < 50% of MM 5,200
    liq = int(protocol.params.liquidationConfig()[0])
    assert (liq >> 64) & (2**96 - 1) == 5 * WAD  # the minimum reward

    def expected(account, taken):  # a full take at the oracle price leaves E' = E and MM' = 0
        m = account_margin(*mirror(account))
        penalty = liquidation_penalty(taken, m.equity, m.maintenance, 0, liq)
        return m, penalty, keeper_reward(penalty, taken, taken, liq)

    m_dust, dust_penalty, dust_reward = expected(dust[0].id, 52 * WAD)
    assert m_dust.equity * 2 < m_dust.maintenance
    assert dust_penalty == 52 * WAD // 100 == dust_reward  # the minimum, capped at the penalty
    _, big_penalty, big_reward = expected(big.id, 52_000 * WAD)
    assert big_penalty == 520 * WAD and big_reward == 156 * WAD  # 30% > 5 USD
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
        assert tuple(vault.masksOf(d.id)) == (0, 0)
        assert vault.settlementOf(d.id) == m_dust.equity - dust_penalty  # closed, equity kept less the penalty
    assert vault.positionOf(big.id, BTC)[0] == 0
    assert vault.settlementOf(vault.accountId(k1, 0)) == 3 * dust_reward
    assert vault.settlementOf(vault.accountId(k2, 0)) == big_reward
    # the fund: every penalty less every reward; the dust liquidations cost it nothing
    assert vault.settlementOf(fund) - fund_before == 3 * (dust_penalty - dust_reward) + big_penalty - big_reward
    assert vault.settlementOf(fund) - fund_before == big_penalty - big_reward
    assert vault.badDebt() == 0


def test_dust_deposit_front_run_cannot_block_liquidation(protocol, test_venue, deployer, rich, keepers, move_price,
                                                         ledger):
    """An account holding only 10 WETH against a settlement debt of 20,000 (a BTC long closed at a loss, within the
    trade rule) is pushed under water by an ETH drop (E = -2,000). The keeper plans to seize all its WETH, which
    would write the debt off. A griefer front-runs with a 1-wei WETH deposit: the keeper's call still goes through
    (it needs no exact balance), the wei keeps the account from being flat, and the next call seizes the wei and
    writes the debt off. The griefer lost the wei and the gas."""
    vault, weth = protocol.vault, protocol.tokens[ETH]
    a = Trader(vault)
    deposit(protocol, deployer, a.id, weth, 10 * WAD)
    test_venue.trade(a.id, rich.id, BTC, WAD, 60_000 * WAD, 0, {"from": deployer})
    move_price(BTC, 40_000)
    test_venue.trade(rich.id, a.id, BTC, WAD, 40_000 * WAD, 0, {"from": deployer})  # E 7,000 >= IM: allowed
    assert vault.settlementOf(a.id) == -20_000 * WAD and tuple(vault.masksOf(a.id)) == (0, 1 << ETH)
    move_price(ETH, 2_000)  # 10 WETH: 20,000, credit 18,000 at a 10% haircut
    assert vault.margin(a.id)[0] == -2_000 * WAD
    k1, _ = keepers
    fund = vault.fundAccount()
    deposit(protocol, deployer, a.id, weth, 1)  # the griefer's 1 wei
    tx = vault.liquidate(a.id, [(1, ETH, 10 * WAD)], {"from": k1})  # the keeper's planned call
    ev = tx.events["Liquidated"]
    assert ev["surplusAfter"] > ev["surplusBefore"] and ev["penalty"] == ev["keeperReward"] == 0
    assert "BadDebtWrittenOff" not in tx.events
    assert vault.collateralOf(a.id, ETH) == 1
    assert vault.settlementOf(a.id) == -20_000 * WAD + 19_000 * WAD  # credited at the 5% discount
    with ledger([a.id, vault.accountId(k1, 0)], [k1]) as l:
        tx = vault.liquidate(a.id, [(1, ETH, 1)], {"from": k1})  # re-planned: the wei
    assert tx.events["BadDebtWrittenOff"]["debt"] == 1_000 * WAD - 1_900  # the wei (2,000e-18 USD) credited 95%
    assert tx.events["BadDebtWrittenOff"]["coveredByFund"] == 1_000 * WAD - 1_900
    assert tuple(vault.masksOf(a.id)) == (0, 0) and vault.settlementOf(a.id) == 0
    assert vault.collateralOf(fund, ETH) == 10 * WAD + 1
    assert l.after[("settlement", fund)] - l.before[("settlement", fund)] == -(1_000 * WAD - 1_900) - 1_900
