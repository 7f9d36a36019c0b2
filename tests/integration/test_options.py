"""Options end to end on Ganache: listing, trading through the venues (premium, fees, band, caps, the series limit,
the trade rule), the vault's margin equal to the Python mirror on random books of options, perpetuals and collateral,
liquidation of option positions to the fund at the mark, expiry (fixing by round id, settlement into cash, the slot
listed again), the volatility feed (stale: risk-adding actions wait, liquidations do not) and access control.
"""
import random

import brownie
import pytest
from brownie import accounts, chain, web3

from offchain.margin import options as om
from offchain.margin.exact import account_margin, max_take
from offchain.margin.snapshot import (read_funding_word, read_layout, read_margin_config, read_markets, read_option_market,
                                     read_prices)
from offchain.margin.snapshot import read_account_state as read_state
from scripts.deploy import set_price, set_vol
from tests.conftest import Trader, assert_reverts, err

WAD = 10**18
USDC = 10**6
SCALE = 10**12
DAY = 86_400
BTC, ETH = 0, 1


@pytest.fixture(scope="module")
def books(protocol, test_venue, deployer):
    """Four BTC series (30 days: a 60k call and a 55k put; 7 days: a 66k call; 60 days: a 54k put) and one ETH call."""
    om_ = protocol.options
    t = chain.time()
    listed = [(0, BTC, True, 60_000, 30), (1, BTC, False, 55_000, 30), (2, BTC, True, 66_000, 7),
              (3, BTC, False, 54_000, 60), (4, ETH, True, 3_000, 30)]
    for slot, asset, is_call, strike, days in listed:
        om_.listSeries(slot, asset, is_call, strike * WAD, t + days * DAY, {"from": deployer})
    return listed


def _funded(protocol, deployer, usdc_amount, sub=0):
    t = Trader(protocol.vault, sub)
    if usdc_amount:
        protocol.usdc.mint(deployer, usdc_amount * USDC, {"from": deployer})
        protocol.usdc.approve(protocol.vault, usdc_amount * USDC, {"from": deployer})
        protocol.vault.deposit(t.id, protocol.usdc, usdc_amount * USDC, {"from": deployer})
    return t


def _mirror(protocol, account):
    """The vault's margin of `account` from the mirror at the latest block (options valued as a view does)."""
    vault = protocol.vault
    layout = read_layout(vault)
    prices = read_prices(protocol.oracle, layout)
    market = read_option_market(protocol.options, protocol.oracle, protocol.params, chain[-1].timestamp)
    return account_margin(read_state(vault, account, protocol.options), layout, prices,
                          read_margin_config(protocol.params), read_markets(vault, layout, prices), market)


def _mark(protocol, slot):
    return int(protocol.options.mark(slot))


def _refresh(protocol, deployer, btc=60_000, eth=3_000):
    """Fresh prices for both assets (tests move time)."""
    set_price(protocol.feeds[BTC], btc, deployer)
    set_price(protocol.feeds[ETH], eth, deployer)


def _reverts(prefix, fn, *args):
    """`fn(*args)` reverts (as a call: a reverted transaction's trace of a whole option scan is too long for the
    node's debug output) with a custom error whose message starts with `prefix`."""
    try:
        fn.call(*args)
    except brownie.exceptions.VirtualMachineError as e:
        assert (e.revert_msg or "").startswith(prefix), f"revert {e.revert_msg!r}, expected {prefix}"
    else:
        raise AssertionError(f"did not revert (expected {prefix})")


# ------------------------------------------------------------------------------------------------ listing
def test_listing_limits(protocol, deployer, books):
    om_ = protocol.options
    t = chain.time()
    stranger = accounts[3]
    with brownie.reverts(err("NotAdmin", stranger)):
        om_.listSeries(10, BTC, True, 60_000 * WAD, t + DAY, {"from": stranger})
    with brownie.reverts(err("BadSlot", 32)):
        om_.listSeries(32, BTC, True, 60_000 * WAD, t + DAY, {"from": deployer})
    with brownie.reverts(err("SlotInUse", 0)):
        om_.listSeries(0, BTC, True, 60_000 * WAD, t + DAY, {"from": deployer})
    spot = int(protocol.oracle.price(BTC))
    for strike, expiry in ((spot // 17, t + DAY), (spot * 17, t + DAY), (spot, t + 401 * DAY)):
        with brownie.reverts():
            om_.listSeries(10, BTC, True, strike, expiry, {"from": deployer})
    s = om_.series(0)
    assert (s[0], s[1], s[2], s[7]) == (BTC, True, 60_000 * WAD, True)


# ------------------------------------------------------------------------------------------------ trading
def test_trade_moves_premium_fees_and_positions(protocol, test_venue, deployer, books):
    vault, om_ = protocol.vault, protocol.options
    buyer, seller = _funded(protocol, deployer, 100_000), _funded(protocol, deployer, 100_000)
    fund = vault.fundAccount()
    size, price, fee = 3 * WAD // 2, _mark(protocol, 0) + 7, 5 * WAD
    f0, b0, s0 = vault.settlementOf(fund), vault.settlementOf(buyer.id), vault.settlementOf(seller.id)
    tx = test_venue.tradeOption(buyer.id, seller.id, 0, size, price, fee, {"from": deployer})
    paid, received = -(-size * price // WAD), size * price // WAD
    assert vault.settlementOf(buyer.id) == b0 - paid - fee
    assert vault.settlementOf(seller.id) == s0 + received - fee
    assert vault.settlementOf(fund) == f0 + 2 * fee + paid - received
    assert (om_.sizeOf(buyer.id, 0), om_.sizeOf(seller.id, 0)) == (size, -size)
    assert (vault.optionsOf(buyer.id), vault.optionsOf(seller.id)) == (1, 1)
    s = om_.series(0)
    assert (s[5], s[6]) == (size, size)  # long and short interest
    assert tx.events["OptionTrade"]["mark"] == protocol.options.mark(0, block_identifier=tx.block_number)
    # closing it again: both masks clear, interest back to zero
    test_venue.tradeOption(seller.id, buyer.id, 0, size, price, 0, {"from": deployer})
    assert (vault.optionsOf(buyer.id), vault.optionsOf(seller.id)) == (0, 0)
    assert tuple(om_.series(0))[5:7] == (0, 0)


def test_fill_outside_the_band_reverts(protocol, test_venue, deployer, books):
    buyer, seller = _funded(protocol, deployer, 100_000), _funded(protocol, deployer, 100_000)
    mark = _mark(protocol, 0)  # the mark decays by a few wei a second: the band is checked well inside and outside
    band = (int(protocol.params.optionWord()) >> 184) & 0xFFFF
    width = int(protocol.oracle.price(BTC)) * band // 10_000
    test_venue.tradeOption(buyer.id, seller.id, 0, WAD, mark + width * 99 // 100, 0, {"from": deployer})
    test_venue.tradeOption(buyer.id, seller.id, 0, WAD, mark - width * 99 // 100, 0, {"from": deployer})
    for price in (mark + width * 101 // 100, mark - width * 101 // 100):
        _reverts(f"OptionPriceOutsideBand: 0, {price}, ", test_venue.tradeOption, buyer.id, seller.id, 0, WAD, price,
                 0, {"from": deployer})


def test_naked_short_without_margin_reverts(protocol, test_venue, deployer, books):
    buyer, seller = _funded(protocol, deployer, 100_000), _funded(protocol, deployer, 100)
    mark = _mark(protocol, 0)
    _reverts(f"InsufficientMargin: {seller.id}, ", test_venue.tradeOption, buyer.id, seller.id, 0, 10 * WAD, mark, 0,
             {"from": deployer})
    e, mm, im = protocol.vault.margin(seller.id)
    assert protocol.options.sizeOf(seller.id, 0) == 0 and e == 100 * WAD


def test_option_buyer_with_no_debt_possible_needs_only_its_premium(protocol, test_venue, deployer, books):
    """A USDC-only account buys calls with all but a few dollars of its cash: it ends below IM (so it would fail the
    margin check) but with no perpetual, no collateral token, no short option and cash >= 0 it can never owe anything,
    and the fill settles. The same buy reverts once the buyer holds a perpetual, a collateral token or a short option,
    or when the premium takes its cash below zero."""
    vault = protocol.vault
    maker = _funded(protocol, deployer, 5_000_000)
    mark = _mark(protocol, 2)  # the 7-day 66k call: its scan is nearly its whole value
    size = 10 * WAD
    premium = -(-size * mark // WAD)
    cash = premium // 10**12 + 3  # USDC 6 decimals: just above the premium

    def buyer(sub):
        t = _funded(protocol, deployer, 0, sub)
        protocol.usdc.mint(deployer, cash, {"from": deployer})
        protocol.usdc.approve(vault, cash, {"from": deployer})
        vault.deposit(t.id, protocol.usdc, cash, {"from": deployer})
        return t

    free = buyer(40)
    test_venue.tradeOption(free.id, maker.id, 2, size, mark, 0, {"from": deployer})
    e, mm, im = vault.margin(free.id)
    assert protocol.options.sizeOf(free.id, 2) == size and 0 <= vault.settlementOf(free.id) and e < im
    assert e >= mm  # still healthy: its MM is at most its options' value

    with_perp = buyer(41)
    test_venue.trade(with_perp.id, maker.id, BTC, WAD // 1000, int(protocol.oracle.price(BTC)), 0, {"from": deployer})
    _reverts(f"InsufficientMargin: {with_perp.id}, ", test_venue.tradeOption, with_perp.id, maker.id, 2, size,
             _mark(protocol, 2), 0, {"from": deployer})

    with_token = buyer(42)
    protocol.tokens[BTC].mint(deployer, 10**4, {"from": deployer})  # 0.0001 WBTC
    protocol.tokens[BTC].approve(vault, 10**4, {"from": deployer})
    vault.deposit(with_token.id, protocol.tokens[BTC], 10**4, {"from": deployer})
    _reverts(f"InsufficientMargin: {with_token.id}, ", test_venue.tradeOption, with_token.id, maker.id, 2, size,
             _mark(protocol, 2), 0, {"from": deployer})

    with_short = _funded(protocol, deployer, 200_000, 43)
    test_venue.tradeOption(maker.id, with_short.id, 0, WAD, _mark(protocol, 0), 0, {"from": deployer})  # short call
    spend = int(vault.settlementOf(with_short.id)) * 99 // 100 * WAD // _mark(protocol, 2)  # units: 99% of its cash
    _reverts(f"InsufficientMargin: {with_short.id}, ", test_venue.tradeOption, with_short.id, maker.id, 2, spend,
             _mark(protocol, 2), 0, {"from": deployer})

    short_of_cash = buyer(44)
    _reverts(f"InsufficientMargin: {short_of_cash.id}, ", test_venue.tradeOption, short_of_cash.id, maker.id, 2, size,
             _mark(protocol, 2), 10 * WAD, {"from": deployer})  # the fee takes its cash below zero


def test_series_limit(protocol, test_venue, deployer, books):
    om_ = protocol.options
    t = chain.time()
    for slot in range(5, 10):
        om_.listSeries(slot, BTC, True, (60_000 + 1000 * slot) * WAD, t + 30 * DAY, {"from": deployer})
    buyer, seller = _funded(protocol, deployer, 1_000_000), _funded(protocol, deployer, 1_000_000)
    for slot in range(8):
        test_venue.tradeOption(buyer.id, seller.id, slot, WAD // 10, _mark(protocol, slot), 0, {"from": deployer})
    assert bin(protocol.vault.optionsOf(buyer.id)).count("1") == 8
    assert_reverts(err("TooManySeries", buyer.id, 9), test_venue.tradeOption,
                   buyer.id, seller.id, 8, WAD // 10, _mark(protocol, 8), 0, {"from": deployer})


def test_signed_orders_settle_options(protocol, deployer, books, order, sign):
    """OrderSettlement routes instrument 256 + slot to the option series, the premium as the price."""
    maker = _funded(protocol, deployer, 100_000)
    taker = _funded(protocol, deployer, 100_000)
    mark = _mark(protocol, 1)
    o_maker = order(maker.id, 256 + 1, False, 2 * WAD, mark)
    o_taker = order(taker.id, 256 + 1, True, 2 * WAD, mark)
    protocol.venue.settle(o_maker, sign(o_maker, maker.wallet), o_taker, sign(o_taker, taker.wallet), WAD,
                          {"from": deployer})
    assert (protocol.options.sizeOf(taker.id, 1), protocol.options.sizeOf(maker.id, 1)) == (WAD, -WAD)


# ------------------------------------------------------------------------------------------------ the margin
def test_vault_margin_equals_mirror_on_random_books(protocol, test_venue, deployer, books, move_price):
    """Random books of options on two assets, perpetuals and collateral: equity, MM and IM of the vault (margin and
    marginDetail) equal the mirror's to the wei, before and after price and volatility moves."""
    rng = random.Random(15)
    maker = _funded(protocol, deployer, 50_000_000)
    ids = []
    for _ in range(8):
        t = _funded(protocol, deployer, rng.randint(50_000, 400_000))
        if rng.random() < 0.5:
            amount = rng.randint(1, 5) * 10**8  # 1-5 WBTC
            protocol.tokens[BTC].mint(deployer, amount, {"from": deployer})
            protocol.tokens[BTC].approve(protocol.vault, amount, {"from": deployer})
            protocol.vault.deposit(t.id, protocol.tokens[BTC], amount, {"from": deployer})
        for slot in rng.sample(range(5), rng.randint(1, 3)):
            size = rng.randint(1, 30) * WAD // 10
            buy = rng.random() < 0.5
            a, b = (t.id, maker.id) if buy else (maker.id, t.id)
            test_venue.tradeOption(a, b, slot, size, _mark(protocol, slot), 0, {"from": deployer})
        if rng.random() < 0.6:
            market = rng.choice([BTC, ETH])
            size = rng.randint(1, 20) * WAD // (10 if market == BTC else 1)
            buy = rng.random() < 0.5
            a, b = (t.id, maker.id) if buy else (maker.id, t.id)
            test_venue.trade(a, b, market, size, int(protocol.oracle.price(market)), 0, {"from": deployer})
        ids.append(t.id)
    compared = 0
    for btc, eth, vol in ((60_000, 3_000, 0.6), (52_000, 2_700, 0.9), (67_000, 3_300, 0.4)):
        chain.sleep(3000)
        move_price(BTC, btc)
        move_price(ETH, eth)
        set_vol(protocol.vol_feeds[BTC], vol, deployer)
        for acct in ids + [maker.id]:
            model = _mirror(protocol, acct)
            assert tuple(protocol.vault.margin(acct)) == (model.equity, model.maintenance, model.initial)
            d = protocol.vault.marginDetail(acct)
            assert (d[0], d[5][5], d[5][10]) == (model.equity, model.maintenance, model.margin.short_minimum)
            compared += 1
    assert compared == 27


# ------------------------------------------------------------------------------------------------ liquidation
def test_liquidating_a_short_call_to_the_fund(protocol, test_venue, deployer, books, move_price, keeper):
    vault, om_ = protocol.vault, protocol.options
    _refresh(protocol, deployer)
    buyer = _funded(protocol, deployer, 1_000_000)
    seller = _funded(protocol, deployer, 60_000)
    size = 5 * WAD
    test_venue.tradeOption(buyer.id, seller.id, 0, size, _mark(protocol, 0), 0, {"from": deployer})
    e, mm, _ = vault.margin(seller.id)
    assert e >= mm
    move_price(BTC, 75_000)
    e, mm, im = vault.margin(seller.id)
    assert e < mm
    model = _mirror(protocol, seller.id)
    liq = int(protocol.params.liquidationConfig()[0])
    allowed = max_take(model.equity, model.maintenance, model.initial, model.gross_total, liq)
    amount = min(size, allowed * WAD // int(protocol.oracle.price(BTC)))
    fund = vault.fundAccount()
    s0, f0 = vault.settlementOf(seller.id), vault.settlementOf(fund)
    tx = vault.liquidate(seller.id, [(2, 0, amount)], {"from": keeper})
    ev = tx.events["Liquidated"]
    mark = int(om_.mark(0, block_identifier=tx.block_number))
    value = -(amount * mark) // WAD  # a short's liability, rounded up
    assert om_.sizeOf(seller.id, 0) == -size + amount
    assert om_.sizeOf(fund, 0) == -amount
    assert ev["surplusAfter"] > ev["surplusBefore"]
    # the short pays its liability to the fund at the mark; the penalty goes to the
    # fund less the keeper's reward; the fund makes up the few wei of rounding that would leave E < 0 (none here)
    shortfall = vault.settlementOf(seller.id) - (s0 + value - ev["penalty"])
    assert 0 <= shortfall < 10
    assert vault.settlementOf(fund) == f0 - value + ev["penalty"] - ev["keeperReward"] - shortfall
    assert ev["taken"] == amount * int(protocol.oracle.price(BTC)) // WAD
    # the fund is margined with the position it took over
    assert tuple(vault.margin(fund)) == (_mirror(protocol, fund).equity, _mirror(protocol, fund).maintenance,
                                         _mirror(protocol, fund).initial)


def _bankrupt_seller(protocol, test_venue, deployer, move_price, keeper, slot, crash_to, hedge):
    """Perpetual books of 400 BTC and 100 ETH, then a seller of 150 BTC options in `slot` on 1.4M USD (with a perpetual
    long of `hedge` BTC) that a move of BTC to `crash_to` makes bankrupt, liquidated in full. Returns the accounts, the
    fund's cash before and the liquidation."""
    vault = protocol.vault
    _refresh(protocol, deployer)
    t = {k: _funded(protocol, deployer, usd) for k, usd in (
        ("perp_long", 20_000_000), ("perp_short", 20_000_000), ("eth_long", 1_000_000), ("eth_short", 1_000_000),
        ("depositor", 100_000), ("buyer", 20_000_000), ("seller", 1_400_000))}
    test_venue.trade(t["perp_long"].id, t["perp_short"].id, BTC, 400 * WAD, int(protocol.oracle.price(BTC)), 0,
                     {"from": deployer})
    test_venue.trade(t["eth_long"].id, t["eth_short"].id, ETH, 100 * WAD, int(protocol.oracle.price(ETH)), 0,
                     {"from": deployer})
    test_venue.tradeOption(t["buyer"].id, t["seller"].id, slot, 150 * WAD, _mark(protocol, slot), 0, {"from": deployer})
    if hedge:
        test_venue.trade(t["seller"].id, t["perp_short"].id, BTC, hedge * WAD, int(protocol.oracle.price(BTC)), 0,
                         {"from": deployer})
    fund_cash = vault.settlementOf(vault.fundAccount())
    move_price(BTC, crash_to)
    move_price(ETH, 3_000)
    seller = t["seller"].id
    assert vault.margin(seller)[0] < 0
    t["ws"] = int(vault.marginDetail(seller)[6][2][BTC])  # WS_BTC: the book's net direction
    items = [(2, slot, 150 * WAD)] + ([(0, BTC, hedge * WAD)] if hedge else [])
    return t, fund_cash, vault.liquidate(seller, items, {"from": keeper})


@pytest.mark.parametrize("slot, crash_to, hedge, longs_pay",
                         [(0, 84_000, 0, True), (1, 36_000, 0, False), (0, 108_000, 75, True)],
                         ids=["short-call-rally", "short-put-crash", "delta-hedged-short-call-rally"])
def test_an_option_sellers_bankruptcy_is_deleveraged_on_its_assets_perpetual_side(
        protocol, test_venue, deployer, books, move_price, keeper, slot, crash_to, hedge, longs_pay):
    """A seller of 150 BTC calls (a rally of 40%) or puts (a crash of 40%) is bankrupt beyond the fund's 1M USD; so
    is a seller of 150 calls delta-hedged by a 75 BTC perpetual long after a rally of 80% (the calls' loss outgrows
    the hedge's gain: the book is net short). The fund takes the short over and receives its liability in cash, but
    that cash is owed to the option it now holds: the fund covers the debt only from what it held besides (its cash,
    the penalty less the keeper's reward). The rest goes to the BTC perpetual side opposite the account's net
    direction on BTC before the liquidation (the sign of WS_BTC), for the option and the hedge alike (a perpetual long
    liquidated from a net short book makes the longs pay, not the shorts, who lost in the rally too), within adlShare
    of that side's maintenance margin, which has room for all of it here. The other perpetual side, the ETH market
    and a USDC-only depositor pay nothing."""
    vault, om_ = protocol.vault, protocol.options
    fund = vault.fundAccount()
    t, fund_cash, tx = _bankrupt_seller(protocol, test_venue, deployer, move_price, keeper, slot, crash_to, hedge)
    assert (t["ws"] < 0) == longs_pay
    w, liq = tx.events["BadDebtWrittenOff"], tx.events["Liquidated"]
    liability = 150 * WAD * int(om_.mark(slot, block_identifier=tx.block_number)) // WAD  # to 1 wei
    assert om_.sizeOf(fund, slot) == -150 * WAD and liability > w["debt"] > fund_cash
    assert w["coveredByFund"] == fund_cash + liq["penalty"] - liq["keeperReward"]  # not the liability paid in
    loss = w["debt"] - w["coveredByFund"]
    (ev,) = tx.events["Deleveraged"]
    assert (ev["market"], ev["longsPay"]) == (BTC, longs_pay)
    price = int(protocol.oracle.price(BTC))
    share = read_funding_word(protocol.params).adl_share_bps
    cap = int(vault.openInterest(BTC)) * price // WAD * read_margin_config(protocol.params).risk_weight(BTC) * share \
        // 10**8
    assert ev["amount"] == w["deleveraged"] == loss < cap and w["socialised"] == 0
    payer, other = (t["perp_long"], t["perp_short"]) if longs_pay else (t["perp_short"], t["perp_long"])
    part = loss * 400 * WAD // int(vault.openInterest(BTC))  # its part of the side (the fund holds the hedge)
    assert part <= -vault.fundingOf(payer.id, BTC)[0] <= part + 10**12  # rounded toward the protocol
    assert vault.fundingOf(other.id, BTC)[0] == 0
    assert vault.fundingOf(t["eth_long"].id, ETH)[0] == vault.fundingOf(t["eth_short"].id, ETH)[0] == 0
    # the fund keeps the liability in cash against the short it now holds, and nothing else
    assert abs(vault.settlementOf(fund) - liability) <= 1
    assert vault.settlementOf(t["depositor"].id) == 100_000 * WAD


def test_a_fund_below_zero_equity_can_still_close_at_the_mark(protocol, test_venue, deployer, books, move_price,
                                                              keeper):
    """After the short-call bankruptcy above, BTC rallies on: the fund, short the 150 calls it took over, has
    negative equity. It is never liquidated, so the trade rule lets it close at the mark (E - MM rises) although
    E < 0, as it would any account above zero; it still cannot add to its risk, and an ordinary account with E < 0
    cannot close either (it is liquidated instead)."""
    vault = protocol.vault
    fund = vault.fundAccount()
    t, _, _ = _bankrupt_seller(protocol, test_venue, deployer, move_price, keeper, 0, 84_000, 0)
    move_price(BTC, 90_000)
    e, mm, im = vault.margin(fund)
    assert e < 0
    buyer = t["buyer"].id  # long the 150 calls
    _reverts("InsufficientMargin", test_venue.tradeOption, buyer, fund, 0, 10 * WAD, _mark(protocol, 0), 0,
             {"from": deployer})  # selling more: refused
    before = e - mm
    # buys 50 back, 0.1% below the mark (the block that includes it is later: the mark decays a little)
    test_venue.tradeOption(fund, buyer, 0, 50 * WAD, _mark(protocol, 0) * 999 // 1000, 0, {"from": deployer})
    e1, mm1, _ = vault.margin(fund)
    assert protocol.options.sizeOf(fund, 0) == -100 * WAD and e1 < 0 and e1 - mm1 > before
    # an ordinary account below zero: the same close is refused
    other = _funded(protocol, deployer, 200_000)
    test_venue.tradeOption(buyer, other.id, 0, 10 * WAD, _mark(protocol, 0), 0, {"from": deployer})
    move_price(BTC, 120_000)
    assert vault.margin(other.id)[0] < 0
    _reverts("InsufficientMargin", test_venue.tradeOption, other.id, buyer, 0, WAD, _mark(protocol, 0) * 999 // 1000,
             0, {"from": deployer})


def test_healthy_option_account_cannot_be_liquidated(protocol, test_venue, deployer, books, keeper):
    buyer, seller = _funded(protocol, deployer, 100_000), _funded(protocol, deployer, 100_000)
    test_venue.tradeOption(buyer.id, seller.id, 1, WAD, _mark(protocol, 1), 0, {"from": deployer})
    e, mm, _ = protocol.vault.margin(seller.id)
    assert_reverts(err("AccountHealthy", seller.id, e, mm), protocol.vault.liquidate, seller.id, [(2, 1, WAD)],
                   {"from": keeper})


# ------------------------------------------------------------------------------------------------ expiry
def test_expiry_fixing_and_settlement(protocol, test_venue, deployer, books, move_price, keeper):
    vault, om_ = protocol.vault, protocol.options
    _refresh(protocol, deployer)
    buyer, seller = _funded(protocol, deployer, 100_000), _funded(protocol, deployer, 100_000)
    size = 2 * WAD
    test_venue.tradeOption(buyer.id, seller.id, 2, size, _mark(protocol, 2), 0, {"from": deployer})  # 7-day 66k call
    expiry = om_.series(2)[3]
    _reverts("NotExpired: 2", om_.fixExpiry, 2, 1, {"from": keeper})
    move_price(BTC, 69_000)
    before_round = protocol.feeds[BTC].latestRound()
    chain.sleep(expiry - chain.time() + 10)
    chain.mine()
    move_price(BTC, 70_000)  # the first round at or after the expiry
    move_price(BTC, 71_000)
    first = protocol.feeds[BTC].latestRound() - 1
    assert first == before_round + 1
    _reverts(f"BadExpiryRound: 2, {first + 1}", om_.fixExpiry, 2, first + 1, {"from": keeper})  # not the first
    _reverts(f"BadExpiryRound: 2, {before_round}", om_.fixExpiry, 2, before_round, {"from": keeper})  # before it
    om_.fixExpiry(2, first, {"from": keeper})
    assert om_.series(2)[4] == 70_000 * WAD
    payoff = (70_000 - 66_000) * WAD
    b0, s0 = vault.settlementOf(buyer.id), vault.settlementOf(seller.id)
    vault.settleExpired(buyer.id, [2], {"from": keeper})
    vault.settleExpired(seller.id, [2], {"from": keeper})
    assert vault.settlementOf(buyer.id) == b0 + size * payoff // WAD
    assert vault.settlementOf(seller.id) == s0 - size * payoff // WAD
    assert (vault.optionsOf(buyer.id), vault.optionsOf(seller.id)) == (0, 0)
    assert tuple(om_.series(2))[5:7] == (0, 0)
    _refresh(protocol, deployer, btc=71_000)
    set_vol(protocol.vol_feeds[ETH], 0.75, deployer)
    om_.listSeries(2, ETH, False, 3_000 * WAD, chain.time() + 30 * DAY, {"from": deployer})  # the slot is free again


# ------------------------------------------------------------------------------------------------ the volatility feed
def test_stale_volatility_blocks_risk_not_liquidation(protocol, test_venue, deployer, books, move_price, keeper):
    vault = protocol.vault
    _refresh(protocol, deployer)
    buyer = _funded(protocol, deployer, 1_000_000)
    seller = _funded(protocol, deployer, 60_000)
    test_venue.tradeOption(buyer.id, seller.id, 0, 5 * WAD, _mark(protocol, 0), 0, {"from": deployer})
    chain.sleep(DAY + 60)  # past the volatility feed's max age; the price feeds are refreshed
    _refresh(protocol, deployer, btc=76_000)
    _reverts("VolatilityUnavailable: 0", test_venue.tradeOption, buyer.id, seller.id, 0, WAD, _mark(protocol, 0), 0,
             {"from": deployer})
    _reverts("VolatilityUnavailable: 0", vault.withdraw, buyer.id, protocol.usdc, USDC, buyer.wallet,
             {"from": buyer.wallet})
    e, mm, _ = vault.margin(seller.id)
    assert e < mm
    vault.liquidate(seller.id, [(2, 0, WAD)], {"from": keeper})
    assert protocol.options.sizeOf(seller.id, 0) == -4 * WAD


# ------------------------------------------------------------------------------------------------ access
def test_only_the_vault_moves_option_positions(protocol, deployer, books):
    om_ = protocol.options
    stranger = accounts[4]
    fill = (1, 2, 0, 0, 0, WAD, WAD, 0)
    with brownie.reverts(err("NotVault", stranger)):
        om_.applyFill(fill, 0, {"from": stranger})
    with brownie.reverts(err("NotVault", stranger)):
        om_.takeOver(1, 0, 1, 0, 0, WAD, [0] * 8, 0, {"from": stranger})
    with brownie.reverts(err("NotVault", stranger)):
        om_.settleExpired(1, 1, [0], {"from": stranger})
    with brownie.reverts(err("OptionsNotEnabled")):
        protocol.vault.setOptionMarkets(om_, {"from": deployer})
