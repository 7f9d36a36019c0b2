"""Adversarial catalogue: risk-parameter changes sandwiched around trades.

With a loosening delay set (1 day here), a loosening sent just before a trade is only queued: the trade sees the old,
stricter rule, the change cannot be applied early, and a guardian can cancel it in the window. A tightening applies
to the very next trade, and undoing it is itself a loosening, so it waits too.

Already covered in tests/integration/test_risk_parameters.py: every setter's direction rule
(test_tightening_applies_at_once_with_delay, test_loosening_queues_then_applies_after_delay), the exact
ChangeNotReady boundary (test_loosening_repeated_just_before_ready_reverts), shortening the delay
(test_shortening_delay_to_zero_waits_for_the_old_delay).
"""
from __future__ import annotations

import copy
import warnings

import pytest
from brownie import accounts, chain, web3

from offchain.margin.exact import account_margin
from tests.adversarial.helpers import BTC, USDC, WAD, deposit
from tests.conftest import NOW, Trader, assert_reverts, err, reverts_at

DAY = 86_400


@pytest.fixture(scope="module")
def setup(protocol, deployer, test_venue, rich):
    """A 1-day loosening delay; a risk admin and a guardian (distinct addresses); a trader with 1,000 USDC."""
    p = protocol.params
    p.setLoosenDelay(DAY, {"from": deployer})  # lengthening the delay tightens: applies at once
    risk, guardian = accounts[3], accounts[4]
    p.grantRole(p.RISK_ADMIN_ROLE(), risk, {"from": deployer})
    p.grantRole(p.GUARDIAN_ROLE(), guardian, {"from": deployer})
    t = Trader(protocol.vault)
    deposit(protocol, deployer, t.id, protocol.usdc, 1_000 * USDC)
    return risk, guardian, t


def _after_buy(mirror, account, size, price):
    """The mirror's margin of `account` after buying `size` BTC at `price` (no fee: TestVenue)."""
    state, layout, prices, cfg = mirror(account)
    st = copy.deepcopy(state)
    st.positions[BTC] = (size, -((-size * price) // WAD))
    return account_margin(st, layout, prices, cfg)


def test_loosening_before_a_trade_is_queued_and_the_trade_sees_the_old_rule(protocol, setup, test_venue, rich,
                                                                           deployer, mirror, ledger):
    risk, guardian, t = setup
    p, vault = protocol.params, protocol.vault
    cfg = mirror(t.id)[3]
    pointer = p.marginConfigPointer()
    size, price = 12 * WAD // 100, 60_000 * WAD  # 7,200 USD of BTC: MM 720, IM 1,080 at alpha 1.5, 720 at alpha 1
    # the front-runner: alpha 1.5 -> 1.0 (IM = MM) just before the trade
    tx = p.setMarginScalars(10_000, cfg.basis_addon, cfg.floor_rate, {"from": risk})
    qid = bytes(web3.keccak(hexstr=p.setMarginScalars.encode_input(10_000, cfg.basis_addon, cfg.floor_rate)))
    assert bytes(tx.events["ChangeQueued"]["id"]) == qid and "ParameterUpdated" not in tx.events
    assert p.marginConfigPointer() == pointer  # nothing published
    m = _after_buy(mirror, t.id, size, price)
    assert m.maintenance <= m.equity < m.initial  # passes only under the loosened rule
    with ledger([t.id, rich.id]) as l:
        assert_reverts(err("InsufficientMargin", t.id, m.equity, m.initial), test_venue.trade, t.id, rich.id, BTC,
                       size, price, 0, {"from": deployer})
        # the change cannot be forced through early
        ready = p.readyAt(qid)
        with reverts_at("ChangeNotReady", qid, ready, NOW):
            p.setMarginScalars(10_000, cfg.basis_addon, cfg.floor_rate, {"from": risk})
    l.assert_unchanged()
    # a guardian cancels it inside the window; after the delay, the same call only queues again
    p.cancel(qid, {"from": guardian})
    with warnings.catch_warnings():  # Brownie's chain.sleep warns about its own internal rpc.sleep call
        warnings.simplefilter("ignore", FutureWarning)
        chain.sleep(DAY + 1)
    tx = p.setMarginScalars(10_000, cfg.basis_addon, cfg.floor_rate, {"from": risk})
    assert "ChangeQueued" in tx.events and p.marginConfigPointer() == pointer


def test_tightening_applies_to_the_next_trade_and_undoing_it_waits(protocol, setup, test_venue, rich, deployer,
                                                                   mirror, ledger):
    risk, guardian, t = setup
    p = protocol.params
    size, price = WAD // 10, 60_000 * WAD  # 6,000 USD of BTC
    before = _after_buy(mirror, t.id, size, price)
    assert before.initial <= 1_000 * WAD  # fits the current rule (alpha 1.5)
    cfg = mirror(t.id)[3]
    p.setMarginScalars(30_000, cfg.basis_addon, cfg.floor_rate, {"from": risk})  # alpha 1.5 -> 3: at once
    m = _after_buy(mirror, t.id, size, price)
    assert m.maintenance == before.maintenance and m.initial == 3 * m.maintenance > 1_000 * WAD
    with ledger([t.id, rich.id]) as l:
        assert_reverts(err("InsufficientMargin", t.id, m.equity, m.initial), test_venue.trade, t.id, rich.id, BTC,
                       size, price, 0, {"from": deployer})
        tx = p.setMarginScalars(15_000, cfg.basis_addon, cfg.floor_rate, {"from": risk})  # undoing it: queued
        assert "ChangeQueued" in tx.events
        assert_reverts(err("InsufficientMargin", t.id, m.equity, m.initial), test_venue.trade, t.id, rich.id, BTC,
                       size, price, 0, {"from": deployer})
    l.assert_unchanged()
    # the band too: narrowing to 1% applies to the next fill, widening back is queued
    p.setPriceBand(100, {"from": risk})
    p.setPriceBand(200, {"from": risk})
    fill = price * 10_150 // 10_000  # +1.5%: inside the old 2% band, outside the new 1%
    with ledger([t.id, rich.id]) as l:
        assert_reverts(err("PriceOutsideBand", BTC, fill, price, 100), test_venue.trade, rich.id, t.id, BTC,
                       WAD // 1000, fill, 0, {"from": deployer})
    l.assert_unchanged()
