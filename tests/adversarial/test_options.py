"""Adversarial catalogue: options (docs/options.md). One test per attack, each asserting that it fails or earns
nothing, and that nothing else moved.

Already covered in tests/integration/test_options.py: the band (test_fill_outside_the_band_reverts), a naked short
without margin (test_naked_short_without_margin_reverts), the series limit on trades (test_series_limit), a stale
volatility blocking risk but not liquidation (test_stale_volatility_blocks_risk_not_liquidation), fixing by the first
round (test_expiry_fixing_and_settlement) and the vault-only entry points (test_only_the_vault_moves_option_positions).
"""
from __future__ import annotations

import brownie
import pytest
from brownie import OptionLoopAttacker, accounts, chain

from scripts.deploy import set_price, set_vol
from tests.adversarial.helpers import BTC, ETH, USDC, WAD, deposit
from tests.conftest import Trader

DAY = 86_400


@pytest.fixture(scope="module")
def series(protocol, deployer):
    """Slots 0-7: BTC 30-day calls and puts around 60,000 (slot 0 a 60k call, 1 a 55k put, 2..7 calls 61k..66k);
    slot 8 an ETH call 3,000 expiring in 2 days (the expiry tests); slots 9-10 BTC 30-day calls 67k and 68k."""
    om, t = protocol.options, chain.time()
    om.listSeries(0, BTC, True, 60_000 * WAD, t + 30 * DAY, {"from": deployer})
    om.listSeries(1, BTC, False, 55_000 * WAD, t + 30 * DAY, {"from": deployer})
    for slot in range(2, 8):
        om.listSeries(slot, BTC, True, (59_000 + 1000 * slot) * WAD, t + 30 * DAY, {"from": deployer})
    om.listSeries(8, ETH, True, 3_000 * WAD, t + 2 * DAY, {"from": deployer})
    for slot in (9, 10):
        om.listSeries(slot, BTC, True, (58_000 + 1000 * slot) * WAD, t + 30 * DAY, {"from": deployer})


def _funded(protocol, deployer, usdc: int, owner: Trader | None = None, sub: int = 0) -> Trader:
    t = owner or Trader(protocol.vault, sub)
    if owner is not None:
        t = Trader.__new__(Trader)
        t.wallet, t.vault, t.sub = owner.wallet, owner.vault, sub
    if usdc:
        deposit(protocol, deployer, t.id, protocol.usdc, usdc * USDC)
    return t


def _simulate(fn, *args):
    """`fn(*args)` as a call: (True, None), or (False, revert message). Option evaluations make long traces, so
    reverted transactions are never sent."""
    try:
        fn.call(*args)
        return True, None
    except brownie.exceptions.VirtualMachineError as e:
        return False, e.revert_msg or ""


def _value(protocol, account: int) -> int:
    """The account's value at the vault's prices and marks: its equity (settlement, collateral after haircut, P&L,
    option positions at the mark)."""
    return int(protocol.vault.margin(account)[0])


def _owner_value(protocol, accounts_: list[int]) -> int:
    """An owner's value: the sum over its subaccounts of max(equity, 0) (a subaccount left in debt is limited
    liability: its debt is not a gain of a sibling)."""
    return sum(max(_value(protocol, a), 0) for a in accounts_)


def _book(protocol, ids: list[int], slots=range(11)) -> dict:
    """Everything an option attack could move: settlement balances, option positions, masks, series interest, the
    fund and bad debt."""
    v, om = protocol.vault, protocol.options
    ids = list(ids) + [v.fundAccount()]
    out = {"badDebt": v.badDebt(), "usdc": protocol.usdc.balanceOf(v)}
    for a in ids:
        out[("settlement", a)] = v.settlementOf(a)
        out[("mask", a)] = v.optionsOf(a)
        out[("sizes", a)] = [om.sizeOf(a, s) for s in slots]
    out["series"] = [tuple(om.series(s)) for s in slots]
    return out


def _mark(protocol, slot: int) -> int:
    return int(protocol.options.mark(slot))


def _band_width(protocol, asset: int) -> int:
    band = (int(protocol.params.optionWord()) >> 184) & 0xFFFF
    return int(protocol.oracle.price(asset)) * band // 10_000


def _refresh(protocol, deployer, btc=60_000, eth=3_000):
    set_price(protocol.feeds[BTC], btc, deployer)
    set_price(protocol.feeds[ETH], eth, deployer)


# ------------------------------------------------------------------------------------------------ wash trades
def test_wash_at_band_edge_then_abandon_moves_nothing(protocol, test_venue, deployer, series, rich):
    """Two subaccounts of one owner: the poor one buys calls from the rich one at the band's top edge (it overpays by
    1% of spot per unit, moving value to its sibling), then would be abandoned with a debt. The vault refuses every
    such fill that would leave the poor side below IM, so the owner's value cannot rise and the fund is not touched."""
    poor = _funded(protocol, deployer, 2_000)
    sibling = _funded(protocol, deployer, 100_000, owner=poor, sub=1)
    owner = [poor.id, sibling.id]
    edge = _band_width(protocol, BTC)
    before, book = _owner_value(protocol, owner), _book(protocol, owner)
    refused = 0
    for size in (WAD, 5 * WAD, 20 * WAD):  # 1% of spot per unit overpaid: 600, 3,000 and 12,000 USD
        ok, msg = _simulate(test_venue.tradeOption, poor.id, sibling.id, 0, size, _mark(protocol, 0) + edge, 0,
                            {"from": deployer})
        assert not ok and msg.startswith(f"InsufficientMargin: {poor.id}"), msg
        refused += 1
    # the reverse dump: the rich side sells to the poor one at the bottom edge is the same value moved the other way
    ok, msg = _simulate(test_venue.tradeOption, sibling.id, poor.id, 1, 20 * WAD,
                        max(_mark(protocol, 1) - edge, 0), 0, {"from": deployer})
    assert not ok and msg.startswith(f"InsufficientMargin: {poor.id}"), msg
    assert refused == 3
    assert _book(protocol, owner) == book
    assert _owner_value(protocol, owner) == before


def test_reduce_at_worst_edge_below_im_is_refused(protocol, test_venue, deployer, series, rich, move_price):
    """A subaccount below IM (its short calls went against it) buys them back from its sibling at the band's top
    edge: a reduction, but worse than the mark for it, so it would move value out of an account that needs it. The
    vault refuses it while it would leave the writer below IM; at the mark it is accepted (E - MM rises) and the
    owner's value does not rise."""
    _refresh(protocol, deployer)
    weak = _funded(protocol, deployer, 60_000)
    sibling = _funded(protocol, deployer, 1_000_000, owner=weak, sub=1)
    size = 4 * WAD
    test_venue.tradeOption(sibling.id, weak.id, 0, size, _mark(protocol, 0), 0, {"from": deployer})
    for btc in range(60_500, 90_000, 250):  # the first price at which the writer is in the lower half of [MM, IM)
        move_price(BTC, btc)
        e, mm, im = protocol.vault.margin(weak.id)
        if e < (mm + im) // 2:
            break
    assert mm <= e < (mm + im) // 2, "the set-up: the writer is between MM and IM"
    owner = [weak.id, sibling.id]
    before, book = _owner_value(protocol, owner), _book(protocol, owner)
    edge = _band_width(protocol, BTC)
    # a tenth bought back: IM falls by about a tenth, equity by 1% of spot on 0.4 units: still below IM
    ok, msg = _simulate(test_venue.tradeOption, weak.id, sibling.id, 0, size // 10, _mark(protocol, 0) + edge, 0,
                        {"from": deployer})
    assert not ok and msg.startswith(f"InsufficientMargin: {weak.id}"), msg
    assert _book(protocol, owner) == book
    # at the mark (read a block earlier: the mark decays by a few wei a second, so a hair below it)
    test_venue.tradeOption(weak.id, sibling.id, 0, size // 10, _mark(protocol, 0) - 10**17, 0, {"from": deployer})
    e2, mm2, _ = protocol.vault.margin(weak.id)
    assert e2 - mm2 > e - mm
    assert _owner_value(protocol, owner) <= before + 2


# ------------------------------------------------------------------------------------------------ liquidation loops
def test_liquidate_and_reopen_loop_earns_nothing(protocol, test_venue, deployer, series, rich, move_price):
    """A contract owned by the writer's owner liquidates the writer's short calls in slices and tries to reopen them
    after each slice, in one transaction, to farm keeper rewards. Reopening is refused (the writer is below MM), the
    rewards come out of the writer's own penalties, so the owner (writer + the contract's account) ends with no more
    value than it had; the fund gains the penalties less the rewards."""
    _refresh(protocol, deployer)
    writer = _funded(protocol, deployer, 60_000)
    test_venue.tradeOption(rich.id, writer.id, 0, 5 * WAD, _mark(protocol, 0), 0, {"from": deployer})
    move_price(BTC, 75_000)
    e, mm, _ = protocol.vault.margin(writer.id)
    assert e < mm
    looper = OptionLoopAttacker.deploy(protocol.vault, {"from": deployer})
    loop_account = (int(looper.address, 16) << 96)
    owner = [writer.id, loop_account]
    before = _owner_value(protocol, owner)
    fund = protocol.vault.fundAccount()
    fund_before = int(protocol.vault.settlementOf(fund))
    reopen = test_venue.tradeOption.encode_input(rich.id, writer.id, 0, WAD // 10, _mark(protocol, 0), 0)
    args = (writer.id, [(2, 0, WAD // 20)], 6, test_venue, reopen, {"from": deployer, "gas_limit": 29_000_000})
    liquidations, reopened, rewards = looper.run.call(*args)  # (the transaction's trace is too long to fetch)
    tx = looper.run(*args)
    assert liquidations >= 2 and reopened == 0
    events = list(tx.events["Liquidated"])
    assert len(events) == liquidations
    penalties = sum(ev["penalty"] for ev in events)
    assert rewards == sum(ev["keeperReward"] for ev in events) <= penalties
    assert _owner_value(protocol, owner) <= before
    assert int(protocol.vault.settlementOf(fund)) >= fund_before  # it took the calls over at the mark, plus penalties


# ------------------------------------------------------------------------------------------------ the volatility feed
@pytest.mark.parametrize("feed_state", ["above_max", "below_min", "zero", "negative", "stale"])
def test_volatility_feed_edge_cannot_be_used_to_withdraw(protocol, test_venue, deployer, series, rich, feed_state):
    """A holder of long calls whose value a broken volatility feed inflates (an answer above the router's maximum, a
    zero or negative answer: read as the maximum; or below the minimum, or stale) tries to withdraw the inflated
    equity and to add risk. Every risk-adding action needs a fresh volatility within the bounds
    (VolatilityUnavailable): nothing moves."""
    _refresh(protocol, deployer)
    holder = _funded(protocol, deployer, 20_000)
    test_venue.tradeOption(holder.id, rich.id, 0, 2 * WAD, _mark(protocol, 0), 0, {"from": deployer})
    feed = protocol.vol_feeds[BTC]
    if feed_state == "stale":
        chain.sleep(DAY + 60)
        chain.mine()
        _refresh(protocol, deployer)
    else:
        answer = {"above_max": 6 * 10**8, "below_min": 10**6, "zero": 0, "negative": -(10**8)}[feed_state]
        feed.updateAnswer(answer, {"from": deployer})
    book = _book(protocol, [holder.id, rich.id])
    wallet = protocol.usdc.balanceOf(holder.wallet)
    e, _, im = protocol.vault.margin(holder.id)
    ok, msg = _simulate(protocol.vault.withdraw, holder.id, protocol.usdc, 10_000 * USDC, holder.wallet,
                        {"from": holder.wallet})
    assert not ok and msg.startswith("VolatilityUnavailable: 0"), msg
    ok, msg = _simulate(test_venue.tradeOption, holder.id, rich.id, 0, WAD, _mark(protocol, 0), 0, {"from": deployer})
    assert not ok and msg.startswith("VolatilityUnavailable: 0"), msg
    assert _book(protocol, [holder.id, rich.id]) == book
    assert protocol.usdc.balanceOf(holder.wallet) == wallet


# ------------------------------------------------------------------------------------------------ expiry
def _to_expiry(protocol, deployer, slot):
    """Rounds around the expiry of `slot`: one before it, then the first and the second after it. Returns
    (before, first, second) round ids."""
    om = protocol.options
    feed = protocol.feeds[ETH]
    expiry = om.series(slot)[3]
    chain.sleep(expiry - chain.time() - 120)
    chain.mine()
    set_price(feed, 3_100, deployer)
    before = int(feed.latestRound())
    chain.sleep(expiry - chain.time() + 5)
    chain.mine()
    set_price(feed, 3_400, deployer)  # the first round at or after the expiry
    set_price(feed, 2_500, deployer)  # a later one, at a price better for the writer
    return before, before + 1, before + 2


def test_fixing_with_a_non_first_round_is_refused(protocol, test_venue, deployer, series, rich, keeper):
    """The writer of ETH calls, after expiry, tries to fix the series at a later round (2,500: the calls expire
    worthless) or an earlier one, a round id of 0 or 1, or one that does not exist yet. Only the first round at or
    after the expiry (3,400) fixes it; the other attempts revert and change nothing."""
    writer = _funded(protocol, deployer, 100_000)
    buyer = _funded(protocol, deployer, 100_000)
    test_venue.tradeOption(buyer.id, writer.id, 8, 5 * WAD, _mark(protocol, 8), 0, {"from": deployer})
    before, first, second = _to_expiry(protocol, deployer, 8)
    om = protocol.options
    book = _book(protocol, [writer.id, buyer.id])
    for round_id in (second, before, 0, 1, second + 1, (1 << 64) | first):
        ok, msg = _simulate(om.fixExpiry, 8, round_id, {"from": writer.wallet})
        assert not ok and msg.startswith("BadExpiryRound: 8"), (round_id, msg)
    assert _book(protocol, [writer.id, buyer.id]) == book and om.series(8)[4] == 0
    om.fixExpiry(8, first, {"from": keeper})
    assert om.series(8)[4] == 3_400 * WAD
    ok, msg = _simulate(om.fixExpiry, 8, second, {"from": writer.wallet})
    assert not ok and msg.startswith("AlreadyFixed: 8"), msg


def test_settling_others_expired_positions_moves_only_their_payoff(protocol, test_venue, deployer, series, rich,
                                                                    keeper):
    """Anyone may settle anyone's fixed positions: a stranger settles the buyer's and the writer's. Each account's
    equity is the same before and after (the payoff was already its value), the stranger gains nothing, and settling
    again, a slot it does not hold, or a series not fixed, reverts."""
    writer = _funded(protocol, deployer, 100_000)
    buyer = _funded(protocol, deployer, 100_000)
    test_venue.tradeOption(buyer.id, writer.id, 8, 5 * WAD, _mark(protocol, 8), 0, {"from": deployer})
    test_venue.tradeOption(buyer.id, writer.id, 0, WAD, _mark(protocol, 0), 0, {"from": deployer})
    _, first, _ = _to_expiry(protocol, deployer, 8)
    _refresh(protocol, deployer, eth=2_500)
    protocol.options.fixExpiry(8, first, {"from": keeper})
    stranger = accounts[5]
    stranger_id = int(stranger.address, 16) << 96
    payoff = (3_400 - 3_000) * WAD
    eq = {a: _value(protocol, a) for a in (writer.id, buyer.id)}  # the buyer's slot-0 call decays between blocks
    s0 = {a: int(protocol.vault.settlementOf(a)) for a in (writer.id, buyer.id)}
    stranger_before = (int(protocol.vault.settlementOf(stranger_id)), protocol.usdc.balanceOf(stranger))
    for a in (buyer.id, writer.id):
        protocol.vault.settleExpired(a, [8], {"from": stranger})
    assert int(protocol.vault.settlementOf(buyer.id)) == s0[buyer.id] + 5 * payoff
    assert int(protocol.vault.settlementOf(writer.id)) == s0[writer.id] - 5 * payoff
    for a in (writer.id, buyer.id):  # equity moved only by the live call's time decay over the two blocks
        assert abs(_value(protocol, a) - eq[a]) < 10**16, "settling changed the account's equity"
        assert protocol.vault.optionsOf(a) == 1  # slot 0 is still held, slot 8 is settled
    assert (int(protocol.vault.settlementOf(stranger_id)), protocol.usdc.balanceOf(stranger)) == stranger_before
    assert tuple(protocol.options.series(8))[5:7] == (0, 0)
    for a, slots, prefix in ((buyer.id, [8], "BadSlot: 8"), (buyer.id, [0], "NotFixed: 0"),
                             (stranger_id, [8], "BadSlot: 8"), (writer.id, [0, 0], "NotFixed: 0")):
        ok, msg = _simulate(protocol.vault.settleExpired, a, slots, {"from": stranger})
        assert not ok and msg.startswith(prefix), (a, slots, msg)


# ------------------------------------------------------------------------------------------------ the series limit
def test_series_limit_cannot_block_a_liquidation(protocol, test_venue, deployer, series, rich, move_price, keeper):
    """A writer holds 8 series (the most an account may) and the fund already holds positions in 3 other series
    taken from an earlier liquidation. When the writer falls below MM, a liquidation taking all 8 of its series
    goes through: the fund (no limit) ends up holding 11 series."""
    _refresh(protocol, deployer)
    vault, om = protocol.vault, protocol.options
    fund = vault.fundAccount()
    # an earlier writer of 3 series, liquidated first: the fund holds 3 series
    early = _funded(protocol, deployer, 30_000)
    for slot in (8, 9, 10):
        test_venue.tradeOption(rich.id, early.id, slot, WAD, _mark(protocol, slot), 0, {"from": deployer})
    writer = _funded(protocol, deployer, 60_000)
    buyer = _funded(protocol, deployer, 1_000_000)  # `rich` already holds 3 series
    for slot in range(8):
        test_venue.tradeOption(buyer.id, writer.id, slot, WAD, _mark(protocol, slot), 0, {"from": deployer})
    assert bin(vault.optionsOf(writer.id)).count("1") == 8
    ok, msg = _simulate(test_venue.tradeOption, rich.id, writer.id, 9, WAD, _mark(protocol, 9), 0, {"from": deployer})
    assert not ok and msg.startswith(f"TooManySeries: {writer.id}"), msg
    move_price(BTC, 80_000)
    set_price(protocol.feeds[ETH], 4_500, deployer)
    for target in (early, writer):
        e, mm, _ = vault.margin(target.id)
        assert e < mm
    vault.liquidate(early.id, [(2, s, WAD) for s in (8, 9, 10) if om.sizeOf(early.id, s) != 0], {"from": keeper})
    assert bin(vault.optionsOf(fund)).count("1") == 3
    e, mm, im = vault.margin(writer.id)
    detail = vault.marginDetail(writer.id)
    gross = sum(detail[4]) + detail[6][1]
    liq = int(protocol.params.liquidationConfig()[0])
    allowed = vault.maxTake(e, mm, im, gross, liq)
    price = int(protocol.oracle.price(BTC))
    share = min(WAD, allowed * WAD // (8 * price) - 1)
    items = [(2, s, share) for s in range(8)]
    tx = vault.liquidate(writer.id, items, {"from": keeper})
    assert tx.events["Liquidated"]["surplusAfter"] > tx.events["Liquidated"]["surplusBefore"]
    assert bin(vault.optionsOf(fund)).count("1") == 11
    assert all(om.sizeOf(fund, s) < 0 for s in range(8))
