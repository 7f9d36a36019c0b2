"""Funding and deleveraging on a local chain (ICrossMarginVault, "Funding" and "Deleveraging").

Expected values come from ``offchain.margin.funding`` (the same integer rule) applied to the states the vault
emits (``FundingUpdated`` carries the whole state), so every check is to the wei. The module deploys with funding
on (``FUNDING`` below) and with an empty insurance fund, so a bankrupt account's loss reaches deleveraging.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import brownie
import pytest
from brownie import TestVenue, chain

from offchain.margin import funding as fr
from offchain.margin.defaults import FUNDING_DEFAULT
from tests.fixture_spec import FIXTURE_SPEC
from offchain.margin.exact import account_margin
from offchain.margin.params import FundingParams
from offchain.margin.snapshot import read_account_state, read_funding_word, read_layout, read_margin_config, \
    read_prices
from scripts.deploy import deploy_local, set_price
from tests.conftest import Trader, b32, err

WAD = 10**18
USDC = 10**6
BTC, ETH = 0, 1
HOUR = 3600
# The default funding rule (FUNDING_DEFAULT), with deleveraging allowed to take the opposite side's whole MM so its
# cap is easy to reach in a test
FUNDING = FUNDING_DEFAULT.model_copy(update={"adl_share_bps": 10_000})
SPEC = FIXTURE_SPEC.model_copy(update={"funding": FUNDING})
CAP = FIXTURE_SPEC.markets[BTC].max_open_interest  # the depth is premiumDepth x this cap x price
RESULT = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "results" / "funding_manipulation.json"


@pytest.fixture(scope="module")
def protocol(deployer):
    return deploy_local(deployer, SPEC, seed_fund=False)


@pytest.fixture(scope="module")
def venue(protocol, deployer):
    v = TestVenue.deploy(protocol.vault, {"from": deployer})
    protocol.vault.setVenue(v, True, {"from": deployer})
    return v


def _state(ev) -> fr.MarketFunding:
    return fr.MarketFunding(ev["longIndex"], ev["shortIndex"], ev["updatedAt"], ev["premium"], ev["weight"],
                            ev["carry"])


def _trader(protocol, fund, usd):
    t = Trader(protocol.vault)
    fund(t.id, protocol.usdc, usd * USDC)
    return t


def _trade(venue, buyer, seller, market, size, price, fee, deployer):
    return venue.trade(buyer, seller, market, size, price, fee, {"from": deployer})


def _sleep(protocol, deployer, seconds):
    """Let time pass, then refresh every feed at its price (the mocks' answers would be stale after an hour)."""
    chain.sleep(seconds)
    for feed in protocol.feeds:
        feed.updateAnswer(feed.latestRoundData()[1], {"from": deployer})


def _set_funding(protocol, deployer, **changes):
    protocol.params.setFunding(*FUNDING.model_copy(update=changes).as_args(), {"from": deployer})


def test_funding_off_moves_nothing(deployer):
    """A deployment without a FUNDING word (RiskSpec.funding None): a day of a position off the oracle price accrues
    nothing."""
    p = deploy_local(deployer, FIXTURE_SPEC.model_copy(update={"funding": None}))
    v = TestVenue.deploy(p.vault, {"from": deployer})
    p.vault.setVenue(v, True, {"from": deployer})
    a, b = Trader(p.vault), Trader(p.vault)
    for t in (a, b):
        p.usdc.mint(deployer, 100_000 * USDC, {"from": deployer})
        p.usdc.approve(p.vault, 100_000 * USDC, {"from": deployer})
        p.vault.deposit(t.id, p.usdc, 100_000 * USDC, {"from": deployer})
    price = p.oracle.price(BTC)
    v.trade(a.id, b.id, BTC, WAD, price * 1001 // 1000, 50 * WAD, {"from": deployer})
    _sleep(p, deployer, 24 * HOUR)
    m = p.vault.marketFunding(BTC)
    assert (m["longIndex"], m["shortIndex"], m["ratePerSecond"], m["weight"]) == (0, 0, 0, 0)
    assert p.vault.fundingOf(a.id, BTC)[0] == p.vault.fundingOf(b.id, BTC)[0] == 0


def test_interest_accrues_exactly_longs_pay_shorts_and_nothing_is_created(protocol, venue, fund, deployer):
    _set_funding(protocol, deployer, interest_per_hour=50)  # 0.005% per hour, longs pay
    vault, word = protocol.vault, read_funding_word(protocol.params)
    rw = read_margin_config(protocol.params).risk_weight(BTC)
    a, b = _trader(protocol, fund, 100_000), _trader(protocol, fund, 100_000)
    price = protocol.oracle.price(BTC)
    tx = _trade(venue, a.id, b.id, BTC, 2 * WAD, price, 0, deployer)  # at the oracle, no fee: interest only
    opened = _state(tx.events["FundingUpdated"])
    snap_a, snap_b = vault.fundingOf(a.id, BTC)[1], vault.fundingOf(b.id, BTC)[1]
    assert snap_a == opened.long_index and snap_b == opened.short_index
    _sleep(protocol, deployer, 10 * HOUR)
    tx = _trade(venue, b.id, a.id, BTC, 2 * WAD, price, 0, deployer)  # both close at the same price
    closed = _state(tx.events["FundingUpdated"])
    expected, rate = fr.advance(opened, closed.updated_at, word, CAP, price, rw)
    assert closed == expected and tx.events["FundingUpdated"]["rate"] == rate > 0
    realised = {e["account"]: e["balance"] for e in tx.events["SettlementUpdated"]}
    paid = fr.accrued(2 * WAD, snap_a, closed)
    received = fr.accrued(-2 * WAD, snap_b, closed)
    assert paid < 0 < received and received - (-paid) in (-1, 0)  # the payer's wei rounds toward the protocol
    assert realised[a.id] == 100_000 * WAD + paid and realised[b.id] == 100_000 * WAD + received
    assert 0 <= vault.fundingBalance(BTC) == -(paid + received) <= 1  # the dust, tracked
    assert vault.openInterest(BTC) == 0


def test_fee_weighted_premium_sets_the_rate_and_equity_includes_accrued_funding(protocol, venue, fund, deployer):
    _set_funding(protocol, deployer)
    vault, word = protocol.vault, read_funding_word(protocol.params)
    cfg = read_margin_config(protocol.params)
    a, b, c = (_trader(protocol, fund, 200_000) for _ in range(3))
    price = protocol.oracle.price(BTC)
    tx = _trade(venue, a.id, b.id, BTC, 3 * WAD, price, 0, deployer)
    s0 = _state(tx.events["FundingUpdated"])
    assert s0.weight == 0  # a fill without fees does not count
    above = price * 10_015 // 10_000  # 15 bps above the oracle, inside the 20 bps cap
    fee = 30 * WAD
    chain.sleep(60)
    tx = _trade(venue, c.id, b.id, BTC, WAD, above, fee, deployer)
    s1 = _state(tx.events["FundingUpdated"])
    advanced, _ = fr.advance(s0, s1.updated_at, word, CAP, price, cfg.risk_weight(BTC))
    assert s1 == fr.add_fill(advanced, above, price, 2 * fee, word)
    assert s1.premium == 1500 and s1.weight == 2 * fee // fr.WEIGHT_UNIT
    _sleep(protocol, deployer, 2 * HOUR)
    now = chain[-1].timestamp
    expected, rate = fr.advance(s1, now, word, CAP, price, cfg.risk_weight(BTC))
    assert rate > 0 and expected.long_index > s1.long_index  # fills above the index: longs pay
    # the vault's equity of each account includes its accrued funding, as the mirror computes it at this block
    layout, prices = read_layout(vault), read_prices(protocol.oracle, read_layout(vault))
    for t in (a, b, c):
        state = read_account_state(vault, t.id)
        model = account_margin(state, layout, prices, cfg, {BTC: expected})
        equity, _, _ = vault.margin(t.id, block_identifier=chain.height)
        assert equity == model.equity
        detail = vault.marginDetail(t.id, block_identifier=chain.height)
        assert detail["funding"] == fr.accrued(state.positions[BTC][0], state.funding[BTC], expected)
    assert vault.marginDetail(b.id, block_identifier=chain.height)["funding"] > 0  # b is short


def test_a_funding_bound_that_would_let_the_premium_pay_is_refused(protocol, deployer):
    least = -(-64 * 50 * HOUR // (10 * 8 * HOUR))  # premium cap 50 bps over a 1 h window, paid over 8 h: 40 bps
    with brownie.reverts(err("OutOfBounds", b32("premiumDepth"), least - 1, least, 10_000)):
        protocol.params.setFunding(HOUR, 8 * HOUR, 50, least - 1, 1000, 1000, 0, 0, {"from": deployer})
    protocol.params.setFunding(HOUR, 8 * HOUR, 50, least, 1000, 1000, 0, 0, {"from": deployer})
    with pytest.raises(ValueError, match="depth_bps = 39 is below 40"):
        FundingParams(window=HOUR, period=8 * HOUR, premium_cap_bps=50, depth_bps=39, max_rate_per_hour=1000,
                      clamp_bps=1000, interest_per_hour=0, adl_share_bps=0)


def test_moving_the_premium_costs_more_in_fees_than_it_earns(protocol, venue, fund, deployer):
    """The attack the fee weighting answers: an owner long against honest shorts fills itself below the index with
    two subaccounts every 10 minutes for 6 hours, paying the venue's fee, to make shorts pay its long. It holds all
    the open interest on its side (the most it can earn per unit of premium), yet loses more in fees."""
    _set_funding(protocol, deployer)
    vault = protocol.vault
    price = protocol.oracle.price(BTC)
    honest = _trader(protocol, fund, 2_000_000)
    attacker = Trader(vault)
    long_id, left, right = attacker.account(1), attacker.account(2), attacker.account(3)
    for acct in (long_id, left, right):
        fund(acct, protocol.usdc, 2_000_000 * USDC)
    size = 100 * WAD  # 6 million USD long against the honest short
    _trade(venue, long_id, honest.id, BTC, size, price, 0, deployer)
    below = price * 9_980 // 10_000  # at the premium cap, 20 bps under the index
    fill = 10 * WAD
    fee = fill * below // WAD * 7 // 10_000  # 7 bps per side, the default venue's maker + taker
    fees_paid = 0
    rates = []  # the rate the attack holds, sampled every 10 minutes (1e18 per second, shorts pay when negative)
    for i in range(36):
        buyer, seller = (left, right) if i % 2 == 0 else (right, left)
        _trade(venue, buyer, seller, BTC, fill, below, fee, deployer)
        fees_paid += 2 * fee
        _sleep(protocol, deployer, 600)
        rates.append(vault.marketFunding(BTC)["ratePerSecond"])
    _trade(venue, honest.id, long_id, BTC, size, price, 0, deployer)  # close the long: its funding is realised
    earned = vault.settlementOf(long_id) - 2_000_000 * WAD
    bound = math.pi * FUNDING.premium_cap_bps * FUNDING.window / (FUNDING.depth_bps * FUNDING.period)
    RESULT.write_text(json.dumps({
        "what": "an owner long 100 BTC against an honest short fills itself 20 bps below the index (10 BTC, 7 bps "
                "fee per side) every 10 minutes for 6 hours; the default funding parameters (FUNDING_DEFAULT)",
        "fees_paid_usd": fees_paid / WAD, "funding_earned_usd": earned / WAD, "earned_per_fee": earned / fees_paid,
        "mean_rate_pct_per_hour": sum(rates) / len(rates) * 3600 / WAD * 100,
        "bound_per_fee": bound}, indent=2) + "\n")
    assert all(r < 0 for r in rates)  # shorts paid the long for the whole six hours...
    assert earned > 0  # the attack moved the rate its way...
    assert earned < bound * fees_paid < fees_paid  # ...but earned less than the bound of what it paid


def test_deleveraging_charges_the_opposite_side_before_any_depositor(protocol, venue, fund, deployer, keeper):
    """A long is bankrupt after a crash and the fund is empty: its loss goes to the shorts of that market, in
    proportion to their size, up to adlShare of their maintenance margin; the bankrupt side, the ETH market and a
    depositor holding only USDC pay nothing while the shorts can bear it."""
    vault, usdc = protocol.vault, protocol.usdc
    price = protocol.oracle.price(BTC)
    doomed = _trader(protocol, fund, 700_000)
    short1, short2 = _trader(protocol, fund, 2_000_000), _trader(protocol, fund, 2_000_000)
    other_long, eth_long = _trader(protocol, fund, 2_000_000), _trader(protocol, fund, 2_000_000)
    depositor = _trader(protocol, fund, 1_000_000)
    _trade(venue, doomed.id, short1.id, BTC, 60 * WAD, price, 0, deployer)
    _trade(venue, other_long.id, short2.id, BTC, 20 * WAD, price, 0, deployer)
    _trade(venue, doomed.id, short2.id, BTC, 10 * WAD, price, 0, deployer)
    _trade(venue, eth_long.id, short1.id, ETH, 100 * WAD, protocol.oracle.price(ETH), 0, deployer)
    set_price(protocol.feeds[BTC], price * 80 // 100 / WAD, deployer)  # -20%: the 70 BTC long owes more than it has
    crash = protocol.oracle.price(BTC)
    equity, _, _ = vault.margin(doomed.id)
    assert equity < 0
    tx = vault.liquidate(doomed.id, [(0, BTC, 70 * WAD)], {"from": keeper})
    (ev,) = tx.events["Deleveraged"]
    assert ev["market"] == BTC and ev["longsPay"] is False
    w = tx.events["BadDebtWrittenOff"]
    loss = w["debt"] - w["coveredByFund"]
    cap = 90 * crash * read_margin_config(protocol.params).risk_weight(BTC) // 10_000  # OI 90 BTC, share 100%
    assert ev["amount"] == min(loss, cap) == w["deleveraged"] > 0
    socialised = w["socialised"]
    assert socialised == loss - ev["amount"]  # depositors bear only what the shorts could not
    s1, s2 = vault.fundingOf(short1.id, BTC)[0], vault.fundingOf(short2.id, BTC)[0]
    assert s1 < 0 and s2 < 0 and -(s1 + s2) >= ev["amount"]  # the shorts pay it all, rounded toward the protocol
    assert abs(s1 * 30 - s2 * 60) <= 90  # 60 and 30 BTC short: in proportion to size, to rounding
    assert vault.fundingOf(other_long.id, BTC)[0] == vault.fundingOf(vault.fundAccount(), BTC)[0] == 0
    assert vault.fundingOf(eth_long.id, ETH)[0] == vault.fundingOf(short1.id, ETH)[0] == 0
    assert vault.fundingBalance(BTC) == -ev["amount"]
    if socialised == 0:
        assert vault.settlementOf(depositor.id) == 1_000_000 * WAD


def test_a_side_at_its_cap_passes_the_rest_to_sides_with_room_before_any_depositor(protocol, venue, fund, deployer,
                                                                                   keeper):
    """A long of 1M USD of BTC and 1M USD of SOL on 700,000 USD, both -42%: a debt of 140,000 after an empty fund.
    Split by notional (equal), each side's part would be 70,000; the BTC shorts can bear 58,000 (10% of 580,000), so
    their excess goes to the SOL shorts (room 104,400), and the depositor holding only USDC pays nothing."""
    vault = protocol.vault
    SOL = 2
    doomed = _trader(protocol, fund, 700_000)
    btc_short, sol_short = _trader(protocol, fund, 2_000_000), _trader(protocol, fund, 2_000_000)
    depositor = _trader(protocol, fund, 100_000)
    sizes = {}
    for market, short in ((BTC, btc_short), (SOL, sol_short)):
        price = protocol.oracle.price(market)
        sizes[market] = 1_000_000 * WAD * WAD // price
        _trade(venue, doomed.id, short.id, market, sizes[market], price, 0, deployer)
    for market in (BTC, SOL):
        set_price(protocol.feeds[market], protocol.oracle.price(market) * 58 // 100 / WAD, deployer)
    tx = vault.liquidate(doomed.id, [(0, BTC, sizes[BTC]), (0, SOL, sizes[SOL])], {"from": keeper})
    w = tx.events["BadDebtWrittenOff"]
    cfg, share = read_margin_config(protocol.params), read_funding_word(protocol.params).adl_share_bps
    notional = {m: int(vault.openInterest(m)) * protocol.oracle.price(m) // WAD for m in (BTC, SOL)}
    room = {m: notional[m] * cfg.risk_weight(m) * share // 10**8 for m in (BTC, SOL)}
    loss = w["debt"] - w["coveredByFund"]
    assert loss * notional[BTC] // (notional[BTC] + notional[SOL]) > room[BTC]  # the BTC shorts' part exceeds their cap
    charged = {e["market"]: e["amount"] for e in tx.events["Deleveraged"]}
    assert charged == {BTC: room[BTC], SOL: loss - room[BTC]} == fr.adl_shares(notional, room, loss)
    assert (w["deleveraged"], w["socialised"]) == (loss, 0)
    assert vault.settlementOf(depositor.id) == 100_000 * WAD  # nothing reached the claims
