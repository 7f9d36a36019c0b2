"""Adversarial catalogue: trading attacks through the signed-order venue.

- Wash trade that moves P&L into a doomed account: two accounts of one attacker trade at a price far from the oracle,
  so one books a gain it can withdraw and the other a loss it cannot pay. Outside the band the fill is refused; at the
  band's edge the losing side is margin-checked at the oracle price, so it cannot be left below IM.
- Oracle prices at the band's edge: a fill exactly on the edge is accepted, and the next feed tick (1e-8 USD) that
  puts it 1 wei-of-band outside makes the same signed pair fail; a stale quote (the oracle moved 3% since signing)
  cannot be picked off.
- Rounding with 1-wei amounts: deposits/withdrawals of 1 token unit and 1-wei position round trips, repeated, never
  credit anyone more than they put in; every rounding goes against the account.

Already covered in tests/integration/test_order_settlement.py: 1 wei outside the band on either side
(test_settle_price_outside_band_reverts) and exactly on the edge (test_settle_price_at_band_edge_succeeds).
"""
from __future__ import annotations

import copy

import pytest
from brownie import accounts, chain

from offchain.orders import Order
from offchain.margin.exact import account_margin
from tests.adversarial.helpers import BTC, BPS, SCALE, USDC, WAD, deposit
from tests.conftest import Trader, assert_reverts, err

MAKER_BPS = 2


def _ceil_div(a, b):
    return -((-a) // b)


@pytest.fixture(scope="module")
def attacker(protocol, deployer):
    """One attacker's two accounts: `doomed` with 1,000 USDC, `gainer` with 100,000 USDC."""
    doomed, gainer = Trader(protocol.vault), Trader(protocol.vault)
    deposit(protocol, deployer, doomed.id, protocol.usdc, 1_000 * USDC)
    deposit(protocol, deployer, gainer.id, protocol.usdc, 100_000 * USDC)
    return doomed, gainer


def _pair(protocol, sign, maker, taker, maker_buys, size, price, nonce=1):
    exp = chain.time() + 3600
    mo = Order(maker.id, BTC, maker_buys, size, price, exp, nonce)
    to = Order(taker.id, BTC, not maker_buys, size, price, exp, nonce)
    return mo, sign(mo, maker.wallet), to, sign(to, taker.wallet)


def test_wash_trade_outside_band_refused(protocol, attacker, sign, ledger):
    """The doomed account buys 1 BTC from the gainer at +10%: a 6,000 USD transfer of P&L. Refused by the band."""
    doomed, gainer = attacker
    p = protocol.oracle.price(BTC)
    price = p * 11 // 10
    with ledger([doomed.id, gainer.id]) as l:
        assert_reverts(err("PriceOutsideBand", BTC, price, p, 200), protocol.venue.settle,
                       *_pair(protocol, sign, doomed, gainer, True, WAD, price), WAD, {"from": accounts[2]})
    l.assert_unchanged()


def test_wash_trade_at_band_edge_cannot_leave_loser_below_initial(protocol, attacker, sign, mirror, ledger):
    """At the edge (+2%) the doomed side would book an immediate 2% loss at the oracle price; the vault checks its
    margin at the oracle price, fee included, and refuses: InsufficientMargin with the exact E and IM."""
    doomed, gainer = attacker
    p = protocol.oracle.price(BTC)
    price = p + p * 200 // BPS
    size = WAD // 10  # 6,000 USD of BTC: IM 900 at the default 10% weight; the 2% edge costs 120
    state, layout, prices, cfg = mirror(doomed.id)
    notional = _ceil_div(size * price, WAD)
    after = copy.deepcopy(state)
    after.settlement -= _ceil_div(notional * MAKER_BPS, BPS)
    after.positions[BTC] = (size, _ceil_div(size * price, WAD))
    m = account_margin(after, layout, prices, cfg)
    assert m.equity < m.initial < state.settlement  # refused only because of the edge price, not the size
    with ledger([doomed.id, gainer.id]) as l:
        assert_reverts(err("InsufficientMargin", doomed.id, m.equity, m.initial), protocol.venue.settle,
                       *_pair(protocol, sign, doomed, gainer, True, size, price), size, {"from": accounts[2]})
    l.assert_unchanged()


def test_oracle_tick_past_band_edge_refuses_same_orders(protocol, attacker, sign, move_price, ledger):
    """A pair priced exactly on the edge (+2% of 60,000) settles; after the feed ticks down by its smallest unit,
    the same price is outside the band and a second signed pair at it is refused."""
    doomed, gainer = attacker
    edge = 61_200 * WAD
    mo, ms, to, ts = _pair(protocol, sign, gainer, doomed, True, WAD // 100, edge, nonce=11)
    protocol.venue.settle(mo, ms, to, ts, WAD // 200, {"from": accounts[2]})  # half of it, at the edge
    move_price(BTC, 59_999.99999999)
    p = protocol.oracle.price(BTC)
    assert p == 60_000 * WAD - 10**10
    with ledger([doomed.id, gainer.id]) as l:
        assert_reverts(err("PriceOutsideBand", BTC, edge, p, 200), protocol.venue.settle, mo, ms, to, ts,
                       WAD // 200, {"from": accounts[2]})
    l.assert_unchanged()
    assert protocol.venue.filled(protocol.venue.hashOrder(mo)) == WAD // 200


def test_stale_quote_cannot_be_picked_off(protocol, attacker, sign, move_price, ledger):
    """A maker quoted a buy at 60,000; the oracle falls 3%. Selling into the stale quote would take 1,800 per BTC
    from the maker: refused by the band, whoever submits it."""
    doomed, gainer = attacker
    mo, ms, to, ts = _pair(protocol, sign, gainer, doomed, True, WAD // 10, 60_000 * WAD, nonce=21)
    move_price(BTC, 58_200)
    with ledger([doomed.id, gainer.id]) as l:
        assert_reverts(err("PriceOutsideBand", BTC, 60_000 * WAD, 58_200 * WAD, 200), protocol.venue.settle,
                       mo, ms, to, ts, WAD // 10, {"from": accounts[2]})
    l.assert_unchanged()


# ------------------------------------------------------------------ rounding with 1-wei amounts
def test_one_unit_deposit_withdraw_cycles_extract_nothing(protocol, deployer, ledger):
    """1 token unit (1e-6 USDC, 1e-8 WBTC) in and out, ten times: the account ends where it began, and withdrawing
    one unit more than it holds is refused."""
    vault, usdc, wbtc = protocol.vault, protocol.usdc, protocol.tokens[0]
    a = Trader(vault)
    deployer.transfer(a.wallet, "1 ether")
    for token in (usdc, wbtc):
        token.mint(a.wallet, 10, {"from": a.wallet})
        token.approve(vault, 2**256 - 1, {"from": a.wallet})
    with ledger([a.id], [a.wallet], [usdc, wbtc]) as l:
        for _ in range(5):
            for token in (usdc, wbtc):
                vault.deposit(a.id, token, 1, {"from": a.wallet})
                assert vault.withdraw(a.id, token, 1, a.wallet, {"from": a.wallet}).return_value == 1
    l.assert_unchanged()
    vault.deposit(a.id, usdc, 1, {"from": a.wallet})
    assert vault.settlementOf(a.id) == SCALE
    assert_reverts(err("InsufficientBalance", a.id, usdc, 1, 2), vault.withdraw, a.id, usdc, 2, a.wallet,
                   {"from": a.wallet})


def test_one_wei_position_round_trips_lose_rounding_to_the_vault(protocol, attacker, test_venue, deployer,
                                                                 move_price, ledger):
    """At an oracle price with a fraction (60,000.12345678), 1-wei positions opened and closed five times between
    two accounts: cost basis rounds up and realised P&L down, so each side loses exactly 1 wei of USD per round
    trip, no token moves, and the 10 wei stay in the vault as surplus. The doomed account can then no longer
    withdraw its full 1,000 USDC (it is 5 wei short of the last unit)."""
    doomed, gainer = attacker
    vault = protocol.vault
    move_price(BTC, 60_000.12345678)
    p = protocol.oracle.price(BTC)
    assert p % WAD != 0
    with ledger([doomed.id, gainer.id]) as l:
        for _ in range(5):
            test_venue.trade(doomed.id, gainer.id, BTC, 1, p, 0, {"from": deployer})  # doomed buys 1 wei
            test_venue.trade(gainer.id, doomed.id, BTC, 1, p, 0, {"from": deployer})  # and sells it back
    for t in (doomed, gainer):
        assert l.after[("settlement", t.id)] == l.before[("settlement", t.id)] - 5
        assert l.after[("positions", t.id)] == l.before[("positions", t.id)]
    assert {k for k in l.before if l.before[k] != l.after[k]} == {("settlement", doomed.id),
                                                                 ("settlement", gainer.id)}
    deployer.transfer(doomed.wallet, "1 ether")
    assert_reverts(err("InsufficientBalance", doomed.id, protocol.usdc, 999 * USDC + 999_999, 1_000 * USDC),
                   vault.withdraw, doomed.id, protocol.usdc, 1_000 * USDC, doomed.wallet, {"from": doomed.wallet})
