"""The trade rule (ICrossMarginVault, "Rule"), through TestVenue: after a fill each side must have E >= IM, or else
its position only shrank (no increase, no flip), its fill was no worse for it than the oracle price (a seller at or
above it, a buyer at or below it), its E - MM rose and its E >= 0. Otherwise the fill reverts
InsufficientMargin(account, equity, initialMargin) with the side's values after the fill.

Expected values come from the Python mirror (offchain.margin.exact.account_margin) applied to the chain state and to a
mirror of the vault's fill (`closing_fill`). TestVenue charges each side the same fee (USD 1e18) to the fund.
"""
from __future__ import annotations

import copy

import pytest

from offchain.margin.exact import account_margin
from tests.adversarial.helpers import Ledger
from tests.conftest import Trader, assert_reverts, err

WAD = 10**18
USDC = 10**6
BTC, ETH = 0, 1  # market, asset and collateral ids coincide in the local deployment


def _tdiv(a: int, b: int) -> int:
    """Solidity signed division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def closing_fill(state, market: int, delta: int, price: int, fee: int = 0):
    """The account after a fill of `delta` (base 1e18, opposite to its position, no flip) at `price`, less `fee`:
    CrossMarginVault._fill (realised P&L rounded down, the released cost basis truncated) on a copy of `state`."""
    s = copy.deepcopy(state)
    size, on = s.positions[market]
    assert (size > 0) != (delta > 0) and abs(delta) <= abs(size)
    basis = _tdiv(on * delta, -size)
    s.settlement += (-delta * price) // WAD - basis - fee
    if size + delta == 0:
        del s.positions[market]
    else:
        s.positions[market] = (size + delta, on - basis)
    return s


def margins(mirror, account: int, fill=None):
    """The mirror's margin of `account` now, and after `fill` (market, delta, price, fee) if given."""
    state, layout, prices, cfg = mirror(account)
    before = account_margin(state, layout, prices, cfg)
    if fill is None:
        return before
    return before, account_margin(closing_fill(state, *fill), layout, prices, cfg)


def surplus(m) -> int:
    return m.equity - m.maintenance


@pytest.fixture
def ledger(protocol):
    """ledger(account_ids) -> Ledger (tests/adversarial/helpers.py): every balance a refused fill could move."""
    return lambda ids=(), addresses=(): Ledger(protocol, ids, addresses)


@pytest.fixture(scope="module")
def rich(protocol, deployer):
    """The counterparty of every fill: 5,000,000 USDC."""
    t = Trader(protocol.vault)
    protocol.usdc.mint(deployer, 5_000_000 * USDC, {"from": deployer})
    protocol.usdc.approve(protocol.vault, 5_000_000 * USDC, {"from": deployer})
    protocol.vault.deposit(t.id, protocol.usdc, 5_000_000 * USDC, {"from": deployer})
    return t


@pytest.fixture
def trader(protocol, fund, rich, test_venue, deployer):
    """trader(usdc, btc=0, weth=0, eth_short=0): a new account with `usdc` USDC and `weth` WETH, short `eth_short`
    ETH and long (btc > 0) or short (btc < 0) |btc| BTC, all opened against `rich` at the oracle price."""

    def _make(usdc, btc=0, weth=0, eth_short=0):
        t = Trader(protocol.vault)
        if usdc:
            fund(t.id, protocol.usdc, usdc)
        if weth:
            fund(t.id, protocol.tokens[ETH], weth)
        if eth_short:
            test_venue.trade(rich.id, t.id, ETH, eth_short, protocol.oracle.price(ETH), 0, {"from": deployer})
        if btc:
            p = protocol.oracle.price(BTC)
            buyer, seller = (t, rich) if btc > 0 else (rich, t)
            test_venue.trade(buyer.id, seller.id, BTC, abs(btc), p, 0, {"from": deployer})
        return t

    return _make


# ---------------------------------------------------------------------------------------------- reductions below IM
@pytest.mark.parametrize("side", ["long", "short"])
def test_reduction_below_im_at_oracle_price_raising_surplus_passes(protocol, trader, rich, test_venue, deployer,
                                                                   move_price, mirror, side):
    """Long (or short) 1 BTC on 10,000 USDC, moved 4% against it: MM <= E < IM. Reducing by 0.1 BTC at the oracle
    price leaves it below IM, but the position only shrank, the price is the oracle's, E - MM rose and E >= 0."""
    sign = 1 if side == "long" else -1
    t = trader(10_000 * USDC, btc=sign * WAD)
    move_price(BTC, 57_600 if side == "long" else 62_400)
    p = protocol.oracle.price(BTC)
    fill = (BTC, -sign * WAD // 10, p, 0)
    before, after = margins(mirror, t.id, fill)
    assert before.maintenance <= before.equity < before.initial
    assert 0 <= after.equity < after.initial and surplus(after) > surplus(before)
    buyer, seller = (rich, t) if side == "long" else (t, rich)

    test_venue.trade(buyer.id, seller.id, BTC, WAD // 10, p, 0, {"from": deployer})

    assert tuple(protocol.vault.margin(t.id)) == (after.equity, after.maintenance, after.initial)
    assert protocol.vault.positionOf(t.id, BTC)[0] == sign * 9 * WAD // 10


@pytest.mark.parametrize("side", ["long", "short"])
def test_reduction_below_im_at_better_than_oracle_price_passes(protocol, trader, rich, test_venue, deployer,
                                                               move_price, mirror, side):
    """The same reduction filled 1% better than the oracle for the reducing side (a seller above, a buyer below)."""
    sign = 1 if side == "long" else -1
    t = trader(10_000 * USDC, btc=sign * WAD)
    move_price(BTC, 57_600 if side == "long" else 62_400)
    p = protocol.oracle.price(BTC)
    price = p * (100 + sign) // 100
    before, after = margins(mirror, t.id, (BTC, -sign * WAD // 10, price, 0))
    assert after.equity < after.initial and surplus(after) > surplus(before)
    buyer, seller = (rich, t) if side == "long" else (t, rich)
    test_venue.trade(buyer.id, seller.id, BTC, WAD // 10, price, 0, {"from": deployer})
    assert tuple(protocol.vault.margin(t.id)) == (after.equity, after.maintenance, after.initial)


@pytest.mark.parametrize("side", ["long", "short"])
@pytest.mark.parametrize("worse_by", ["1 wei", "1%"])
def test_reduction_below_im_at_worse_price_reverts(protocol, trader, rich, test_venue, deployer, move_price, mirror,
                                                   ledger, side, worse_by):
    """The same reduction filled 1 wei (or 1%) worse than the oracle price for the reducing side: refused with the
    side's equity and IM after the fill, even where its E - MM would still rise (1 wei); nothing moves."""
    sign = 1 if side == "long" else -1
    t = trader(10_000 * USDC, btc=sign * WAD)
    move_price(BTC, 57_600 if side == "long" else 62_400)
    p = protocol.oracle.price(BTC)
    price = p - sign * (1 if worse_by == "1 wei" else p // 100)
    before, after = margins(mirror, t.id, (BTC, -sign * WAD // 10, price, 0))
    assert 0 <= after.equity < after.initial
    if worse_by == "1 wei":
        assert surplus(after) > surplus(before)  # only the price condition fails
    buyer, seller = (rich, t) if side == "long" else (t, rich)
    with ledger([t.id, rich.id]) as l:
        assert_reverts(err("InsufficientMargin", t.id, after.equity, after.initial),
                       test_venue.trade, buyer.id, seller.id, BTC, WAD // 10, price, 0, {"from": deployer})
    l.assert_unchanged()


# ---------------------------------------------------------------------------------------------- E - MM must rise
def test_closing_hedge_leg_below_im_reverts(protocol, trader, rich, test_venue, deployer, move_price, mirror,
                                            ledger):
    """10 WETH hedged by a short 10 ETH perp, and long 2 BTC; a BTC drop leaves MM <= E < IM. Buying back half of the
    ETH short at the oracle price is a pure reduction, but it unhedges 5 WETH next to a correlated BTC long: MM
    rises, E - MM falls, refused. Reducing the BTC long instead (E - MM rises) passes although still below IM."""
    t = trader(1_000 * USDC, btc=2 * WAD, weth=10 * WAD, eth_short=10 * WAD)
    move_price(BTC, 53_000)
    p_eth, p_btc = protocol.oracle.price(ETH), protocol.oracle.price(BTC)
    before, after = margins(mirror, t.id, (ETH, 5 * WAD, p_eth, 0))
    assert before.maintenance <= before.equity < before.initial
    assert after.maintenance > before.maintenance and surplus(after) < surplus(before)
    assert after.equity == before.equity < after.initial  # at the oracle price the close moves no equity
    with ledger([t.id, rich.id]) as l:
        assert_reverts(err("InsufficientMargin", t.id, after.equity, after.initial),
                       test_venue.trade, t.id, rich.id, ETH, 5 * WAD, p_eth, 0, {"from": deployer})
    l.assert_unchanged()
    _, ok = margins(mirror, t.id, (BTC, -WAD // 10, p_btc, 0))
    assert ok.equity < ok.initial and surplus(ok) > surplus(before)
    test_venue.trade(rich.id, t.id, BTC, WAD // 10, p_btc, 0, {"from": deployer})
    assert tuple(protocol.vault.margin(t.id)) == (ok.equity, ok.maintenance, ok.initial)


# ---------------------------------------------------------------------------------------------- E >= 0
def test_reduction_leaving_negative_equity_through_fee_reverts(protocol, trader, rich, test_venue, deployer,
                                                               move_price, mirror, ledger):
    """Long 0.1 BTC on 1,100 USDC, then a drop to 50,000: E about 100. Selling 0.09 BTC at the oracle price with a fee
    of exactly the equity left leaves E = 0 < IM: allowed (E - MM rose). One wei more of fee leaves E = -1 wei:
    refused, although every other condition holds."""
    t = trader(1_100 * USDC, btc=WAD // 10)
    move_price(BTC, 50_000)
    p = protocol.oracle.price(BTC)
    _, no_fee = margins(mirror, t.id, (BTC, -9 * WAD // 100, p, 0))
    fee = no_fee.equity  # the equity the reduction leaves before the fee
    assert 0 < fee < 200 * WAD
    before, over = margins(mirror, t.id, (BTC, -9 * WAD // 100, p, fee + 1))
    assert over.equity == -1 and over.initial > 0 and surplus(over) > surplus(before)
    with ledger([t.id, rich.id]) as l:
        assert_reverts(err("InsufficientMargin", t.id, -1, over.initial),
                       test_venue.trade, rich.id, t.id, BTC, 9 * WAD // 100, p, fee + 1, {"from": deployer})
    l.assert_unchanged()
    fund_before = protocol.vault.settlementOf(protocol.vault.fundAccount())

    test_venue.trade(rich.id, t.id, BTC, 9 * WAD // 100, p, fee, {"from": deployer})

    e, mm, im = protocol.vault.margin(t.id)
    assert e == 0 < im and (e, mm, im) == (0, over.maintenance, over.initial)
    assert protocol.vault.settlementOf(protocol.vault.fundAccount()) - fund_before == 2 * fee
