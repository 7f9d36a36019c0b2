"""Adversarial catalogue: value extraction that no accounting invariant sees (docs/SECURITY.md, "Economic attacks").

Each test performs an attack of an outside review end to end, as an attacker with capital, several subaccounts and a
looping contract would, and asserts what each actor and the insurance fund is worth afterwards, not only that the books
balance. Findings and their rules (ICrossMarginVault):

1. Slice liquidations drained the fund: the keeper reward is now paid out of the penalty the call collects.
2. Reduce-only fills were never margin-checked: a side may end below IM only by a pure reduction at no worse than the
   oracle price that raises E - MM and leaves E >= 0.
3. Dust of a stale asset blocked liquidation: collateral without a valid price counts at 0; listing needs a price;
   once nothing priced is left, the account is written off at once and the unpriced dust passes to the fund.
4. Bad-debt socialisation was first-come: a write-off lowers the settlement index over every claim at once; a loss
   that takes every claim restarts the pool, so later losses are socialised again instead of parked in badDebt.
5. The parameter-direction rule loosened at once: tightening only when no requirement can fall; canonical queue ids.
6. Oracle edges: a positive answer that normalises to 0 is no price.
7. Liveness: the penalty never eats more than half the margin a take frees, so some take always improves E - MM.
8. Rounding: a liquidation never makes a solvent account insolvent (the penalty capped at E' left E = -1 wei once
   the stored balance was rounded to shares); the fund makes up the wei.
"""
from __future__ import annotations

import pytest
from brownie import ChainlinkFeed, LiquidationLooper, TestToken, accounts, chain, web3

from offchain.keeper.planner import LiquidationTerms, apply_liquidation, plan_liquidation
from offchain.margin.exact import INDEX_ONE, account_margin, keeper_reward, liquidation_penalty, usd_of_shares
from tests.fixture_spec import FIXTURE_SPEC
from tests.adversarial.helpers import BPS, BTC, ETH, LINK, SCALE, USDC, WAD, deposit, model
from tests.conftest import Trader, assert_reverts, err
from scripts.deploy import FEED_MAX_AGE, set_price

START = {BTC: 60_000, ETH: 3_000, 2: 150, LINK: 15}


def usd(protocol, account_id) -> int:
    return protocol.vault.settlementOf(account_id)


def equity(protocol, account_id) -> int:
    return protocol.vault.margin(account_id)[0]


def liquidations(tx) -> list:
    return list(tx.events["Liquidated"]) if "Liquidated" in tx.events else []


@pytest.fixture
def second_btc_market(protocol, deployer):
    """A second market on BTC (a full listing of 16 markets on 8 assets has such pairs), with the BTC caps."""
    m = protocol.vault.listMarket(BTC, {"from": deployer}).return_value
    caps = FIXTURE_SPEC.markets[BTC]
    protocol.params.setMarket(m, 1000, caps.max_open_interest, caps.max_position_size, {"from": deployer})
    return m


# ---------------------------------------------------------------------------------------------- 1. slicing
def _underwater_long(protocol, test_venue, deployer, rich, move_price, sub=0, wallet=None):
    """A trader long 1 BTC on 9,500 USDC (IM 9,000), pushed below MM (not deeply: E 4,700, MM 5,520) by an 8% drop."""
    victim = Trader(protocol.vault, sub)
    if wallet is not None:
        victim.wallet = wallet
    deposit(protocol, deployer, victim.id, protocol.usdc, 9_500 * USDC)
    move_price(BTC, START[BTC])
    test_venue.trade(victim.id, rich.id, BTC, WAD, START[BTC] * WAD, 0, {"from": deployer})
    move_price(BTC, START[BTC] * 92 // 100)
    e, mm, _ = protocol.vault.margin(victim.id)
    assert 0 < e < mm
    return victim


def test_slice_liquidations_in_a_loop_earn_only_their_own_penalties(protocol, test_venue, deployer, rich, move_price,
                                                                     mirror):
    """200 one-wei takes in one transaction through a looping contract: before, each paid the 5 USD minimum reward
    from the fund (1,000 USD per transaction). Now each pays at most its own penalty's keeper share: the fund gains."""
    victim = _underwater_long(protocol, test_venue, deployer, rich, move_price)
    looper = LiquidationLooper.deploy(protocol.vault, {"from": accounts[3]})
    looper_account = protocol.vault.accountId(looper, 0)
    fund = protocol.vault.fundAccount()
    fund_before, victim_before = usd(protocol, fund), equity(protocol, victim.id)
    tx = looper.loop(victim.id, [(0, BTC, 1)], 200, False, {"from": accounts[3]})
    events = liquidations(tx)
    assert len(events) == 200
    penalties = sum(e["penalty"] for e in events)
    rewards = sum(e["keeperReward"] for e in events)
    liq = int(protocol.params.liquidationConfig()[0])
    assert all(e["keeperReward"] == keeper_reward(e["penalty"], e["taken"], 10**30, liq) for e in events)
    assert rewards == usd(protocol, looper_account) <= penalties * 3000 // BPS
    assert rewards < 200 * 10**6, "a few hundred wei per slice, not 5 USD"
    assert usd(protocol, fund) - fund_before == penalties - rewards >= 0
    assert victim_before - equity(protocol, victim.id) <= penalties + 200  # rounding of 200 partial closes


def test_self_liquidation_across_own_subaccounts_never_pays(protocol, test_venue, deployer, rich, move_price):
    """The attacker liquidates its own under-water subaccount 1 from subaccount 0 (its keeper account), as many times
    as it can: the owner's total value (both subaccounts) falls by what the fund gained."""
    victim = _underwater_long(protocol, test_venue, deployer, rich, move_price)
    owner = victim.wallet
    deployer.transfer(owner, "1 ether")
    keeper_account = victim.account(0)
    sub1 = _underwater_long(protocol, test_venue, deployer, rich, move_price, sub=1, wallet=owner)
    fund = protocol.vault.fundAccount()
    total0 = equity(protocol, keeper_account) + equity(protocol, sub1.id)
    fund0 = usd(protocol, fund)
    for amount in (1, 10**9, 10**15, 10**16):
        protocol.vault.liquidate(sub1.id, [(0, BTC, amount)], {"from": owner})
    total1 = equity(protocol, keeper_account) + equity(protocol, sub1.id)
    gained = usd(protocol, fund) - fund0
    assert gained > 0
    assert total0 - total1 >= gained


# ---------------------------------------------------------------------------------------------- 2. reduce-only
def _sibling_pair(protocol, test_venue, deployer, rich, market_b, margin=9_500, size=10 * WAD, margin_b=9_500):
    """Subaccount A long `size` BTC on market 0 and short on `market_b`; subaccount B the opposite book. Each leg is
    opened on 100,000 USDC more than the margin (one leg alone is naked), then that extra is withdrawn."""
    a = Trader(protocol.vault, 0)
    b = Trader(protocol.vault, 1)
    b.wallet = a.wallet
    deployer.transfer(a.wallet, "1 ether")
    p = START[BTC] * WAD
    extra = 100_000 * USDC
    deposit(protocol, deployer, a.id, protocol.usdc, margin * USDC + extra)
    deposit(protocol, deployer, b.id, protocol.usdc, margin_b * USDC + extra)
    test_venue.trade(a.id, rich.id, BTC, size, p, 0, {"from": deployer})
    test_venue.trade(rich.id, a.id, market_b, size, p, 0, {"from": deployer})
    test_venue.trade(rich.id, b.id, BTC, size, p, 0, {"from": deployer})
    test_venue.trade(b.id, rich.id, market_b, size, p, 0, {"from": deployer})
    for t in (a, b):
        protocol.vault.withdraw(t.id, protocol.usdc, extra, a.wallet, {"from": a.wallet})
    return a, b


def _fill(state, market, delta, price, fee=0):
    """The mirror of CrossMarginVault._fill + fee for a closing fill (no flip), on a copy of `state`."""
    s = type(state)(state.settlement, dict(state.positions), dict(state.collateral))
    size, on = s.positions[market]
    closed = delta if abs(delta) < abs(size) else -size
    q = abs(on * closed) // abs(size)
    basis = q if (on * closed) * (-size) >= 0 else -q
    s.settlement += (-closed * price) // WAD - basis - fee
    if size + delta == 0:
        del s.positions[market]
    else:
        s.positions[market] = (size + delta, on - basis)
    return s


def test_wash_close_between_siblings_across_two_markets_on_one_asset_refused(protocol, test_venue, deployer, rich,
                                                                             second_btc_market, mirror, ledger):
    """A long/short pair on two BTC markets needs only the basis add-on. Closing A's long at the band's low edge
    against its sibling B (which books the band as profit) would leave A's hedge leg naked and its equity gone:
    refused with A's equity and IM after the fill. Before the fix A ended flat with a debt the fund wrote off. (B is
    well capitalised here, so that A's side is the one refused: B's naked leg would fail the rule too.)"""
    a, b = _sibling_pair(protocol, test_venue, deployer, rich, second_btc_market, margin_b=200_000)
    p = protocol.oracle.price(BTC)
    edge = p * (BPS - 200) // BPS
    state, layout, prices, cfg = mirror(a.id)
    after = account_margin(_fill(state, BTC, -10 * WAD, edge), layout, prices, cfg)
    assert after.equity < after.initial
    with ledger([a.id, b.id]) as l:
        assert_reverts(err("InsufficientMargin", a.id, after.equity, after.initial), test_venue.trade,
                       b.id, a.id, BTC, 10 * WAD, edge, 0, {"from": deployer})
    l.assert_unchanged()


def test_dump_on_sibling_instead_of_liquidation_refused(protocol, test_venue, deployer, rich, move_price, mirror,
                                                        ledger, keeper):
    """After a crash, A has 0 < E < band x notional. Selling its position to sibling B at the band's low edge would
    hand B the band and leave A with a debt the fund writes off (before the fix: accepted, as a pure reduction).
    Refused; a keeper then liquidates A and the fund earns the penalty. (A dump that leaves A flat with E >= 0 is
    allowed: it moves the owner's own equity between its subaccounts, and the fund takes over nothing.)"""
    a = _underwater_long(protocol, test_venue, deployer, rich, move_price)
    move_price(BTC, 51_300)  # E = 9,500 - 8,700 = 800 < 2% x 51,300
    b = Trader(protocol.vault, 1)
    b.wallet = a.wallet
    deposit(protocol, deployer, b.id, protocol.usdc, 50_000 * USDC)
    p = protocol.oracle.price(BTC)
    edge = p * (BPS - 200) // BPS
    state, layout, prices, cfg = mirror(a.id)
    after = account_margin(_fill(state, BTC, -WAD, edge), layout, prices, cfg)
    assert after.equity < 0 == after.initial
    with ledger([a.id, b.id]) as l:
        assert_reverts(err("InsufficientMargin", a.id, after.equity, 0), test_venue.trade,
                       b.id, a.id, BTC, WAD, edge, 0, {"from": deployer})
    l.assert_unchanged()
    fund = protocol.vault.fundAccount()
    before = usd(protocol, fund)
    tx = protocol.vault.liquidate(a.id, [(0, BTC, WAD)], {"from": keeper})  # deeply under water: everything
    ev = tx.events["Liquidated"]
    assert ev["penalty"] > 0 and usd(protocol, fund) - before == ev["penalty"] - ev["keeperReward"] > 0
    assert equity(protocol, a.id) >= 0 and protocol.vault.badDebt() == 0


def test_fresh_account_cannot_be_bankrupted_at_the_widest_band(protocol, test_venue, deployer, rich, mirror, ledger):
    """With the band at its bound (20%, above every IM rate), a fresh account opens 1 BTC at the oracle price and
    closes it to its sibling 20% below: refused, the account keeps its equity."""
    protocol.params.setPriceBand(2000, {"from": deployer})
    a = Trader(protocol.vault, 0)
    b = Trader(protocol.vault, 1)
    b.wallet = a.wallet
    deposit(protocol, deployer, a.id, protocol.usdc, 10_000 * USDC)
    deposit(protocol, deployer, b.id, protocol.usdc, 10_000 * USDC)
    p = protocol.oracle.price(BTC)
    test_venue.trade(a.id, rich.id, BTC, WAD, p, 0, {"from": deployer})
    low = p * 8 // 10
    state, layout, prices, cfg = mirror(a.id)
    after = account_margin(_fill(state, BTC, -WAD, low), layout, prices, cfg)
    assert after.equity < 0
    with ledger([a.id, b.id]) as l:
        assert_reverts(err("InsufficientMargin", a.id, after.equity, 0), test_venue.trade,
                       b.id, a.id, BTC, WAD, low, 0, {"from": deployer})
    l.assert_unchanged()


# ---------------------------------------------------------------------------------------------- 3. stale dust
def _stale(protocol, deployer, asset):
    """Let every feed age past its max age, then refresh all but `asset`'s."""
    chain.sleep(FEED_MAX_AGE + 1)
    for k, feed in enumerate(protocol.feeds):
        if k != asset:
            set_price(feed, protocol.feeds[k].latestRoundData()[1] / 1e8, deployer)


def test_dust_of_a_stale_token_cannot_block_liquidation(protocol, test_venue, deployer, rich, move_price, mirror,
                                                        keeper):
    """An under-water owner deposits 1 wei of LINK while LINK's feed is stale. Before, every liquidation reverted
    PriceStale; now the dust counts at 0 and the keeper's planned liquidation goes through."""
    victim = _underwater_long(protocol, test_venue, deployer, rich, move_price)
    _stale(protocol, deployer, LINK)
    link = protocol.tokens[LINK]
    deposit(protocol, deployer, victim.id, link, 1)
    state, layout, prices, cfg = mirror(victim.id)
    assert prices[LINK] == 0 and state.collateral == {LINK: 1}
    # the stale dust cannot be seized (its value is unknown): it stays with the owner
    assert_reverts(err("BadLiquidationItem", victim.id, 1, LINK, 1), protocol.vault.liquidate, victim.id,
                   [(1, LINK, 1)], {"from": keeper})
    terms = LiquidationTerms(*(int(x) for x in protocol.params.liquidationConfig()))
    plan = plan_liquidation(state, layout, prices, cfg, terms)
    assert plan is not None
    tx = protocol.vault.liquidate(victim.id, plan.as_args(), {"from": keeper})
    assert tx.events["Liquidated"]["surplusAfter"] == plan.surplus_after > tx.events["Liquidated"]["surplusBefore"]


def test_dust_of_a_stale_token_does_not_freeze_a_strangers_withdrawals(protocol, deployer):
    """Anyone may deposit into any account: 1 wei of a stale token no longer freezes the stranger's withdrawals."""
    stranger = Trader(protocol.vault)
    deployer.transfer(stranger.wallet, "1 ether")
    deposit(protocol, deployer, stranger.id, protocol.usdc, 1_000 * USDC)
    _stale(protocol, deployer, LINK)
    deposit(protocol, deployer, stranger.id, protocol.tokens[LINK], 1)
    protocol.vault.withdraw(stranger.id, protocol.usdc, 1_000 * USDC, stranger.wallet, {"from": stranger.wallet})
    assert protocol.usdc.balanceOf(stranger.wallet) == 1_000 * USDC


def test_stale_dust_cannot_delay_a_write_off(protocol, test_venue, deployer, rich, move_price, mirror, keeper):
    """Anyone deposits 1 wei of LINK, whose feed is stale, into a bankrupt account. Before, once everything priced
    was taken, `liquidate` reverted LiquidationEmpty until the feed recovered, and holders could withdraw in full
    ahead of the loss. Now the keeper's plan writes the debt off in the same call; the dust passes to the fund."""
    victim = Trader(protocol.vault)
    deposit(protocol, deployer, victim.id, protocol.usdc, 9_500 * USDC)
    move_price(BTC, START[BTC])
    test_venue.trade(victim.id, rich.id, BTC, WAD, START[BTC] * WAD, 0, {"from": deployer})
    move_price(BTC, START[BTC] * 80 // 100)  # E = 9,500 - 12,000 < 0
    _stale(protocol, deployer, LINK)
    deposit(protocol, deployer, victim.id, protocol.tokens[LINK], 1)
    state, layout, prices, cfg = mirror(victim.id)
    assert prices[LINK] == 0 and equity(protocol, victim.id) < 0
    fund = protocol.vault.fundAccount()
    fund_link, fund_usd = protocol.vault.collateralOf(fund, LINK), usd(protocol, fund)
    terms = LiquidationTerms(*(int(x) for x in protocol.params.liquidationConfig()))
    plan = plan_liquidation(state, layout, prices, cfg, terms)
    tx = protocol.vault.liquidate(victim.id, plan.as_args(), {"from": keeper})
    debt = tx.events["BadDebtWrittenOff"]["debt"]
    assert debt > 0 and usd(protocol, victim.id) == 0
    assert tuple(protocol.vault.masksOf(victim.id)) == (0, 0)
    assert protocol.vault.collateralOf(victim.id, LINK) == 0
    assert protocol.vault.collateralOf(fund, LINK) == fund_link + 1
    assert usd(protocol, fund) == fund_usd - debt + tx.events["Liquidated"]["penalty"] - \
        tx.events["Liquidated"]["keeperReward"]


def test_own_collateral_behind_a_stale_feed_is_not_given_to_the_fund(protocol, test_venue, deployer, rich, move_price,
                                                                     mirror, keeper):
    """The other side of the write-off rule: a bankrupt account's own WETH (3,000 USD at the feed's last answer, far
    above the 100 USD dust threshold) while the ETH feed is stale. Its BTC long is taken, but the write-off waits
    (`LiquidationEmpty`): the WETH is not handed to the fund for a smaller debt. Once ETH has a price again, the keeper
    seizes WETH as usual, at the discount, and the account keeps the rest."""
    victim = Trader(protocol.vault)
    deposit(protocol, deployer, victim.id, protocol.usdc, 7_000 * USDC)
    deposit(protocol, deployer, victim.id, protocol.tokens[ETH], WAD)  # 3,000 USD of WETH
    move_price(BTC, START[BTC])
    test_venue.trade(victim.id, rich.id, BTC, WAD, START[BTC] * WAD, 0, {"from": deployer})
    move_price(BTC, START[BTC] * 80 // 100)  # -12,000: the USDC balance ends 5,000 below 0, the WETH is worth 3,000
    _stale(protocol, deployer, ETH)
    fund = protocol.vault.fundAccount()
    fund_weth = protocol.vault.collateralOf(fund, ETH)
    protocol.vault.liquidate(victim.id, [(0, BTC, WAD)], {"from": keeper})  # everything priced is taken
    assert usd(protocol, victim.id) < 0 and protocol.vault.collateralOf(victim.id, ETH) == WAD
    assert protocol.oracle.lastPrice(ETH) == START[ETH] * WAD
    assert_reverts(err("LiquidationEmpty", victim.id), protocol.vault.liquidate, victim.id, [], {"from": keeper})
    assert protocol.vault.collateralOf(fund, ETH) == fund_weth
    set_price(protocol.feeds[ETH], START[ETH], deployer)  # the feed is back
    state, layout, prices, cfg = mirror(victim.id)
    plan = plan_liquidation(state, layout, prices, cfg, LiquidationTerms(*(int(x) for x in
                                                                           protocol.params.liquidationConfig())))
    assert plan is not None and any(kind == 1 for kind, _, _ in plan.items)
    tx = protocol.vault.liquidate(victim.id, plan.as_args(), {"from": keeper})
    assert tx.events["Liquidated"]["taken"] > 0


def test_listing_a_collateral_without_a_feed_refused(protocol, deployer, ledger):
    """Before, a collateral listed before its feed made every account holding it revert FeedNotSet (and anyone can
    deposit it into any account). Now the listing itself needs a valid price."""
    token = TestToken.deploy("New", "NEW", 18, {"from": deployer})
    with ledger() as l:
        assert_reverts(err("FeedNotSet", 7), protocol.vault.listCollateral, token, 7, {"from": deployer})
    l.assert_unchanged()
    assert protocol.vault.numCollaterals() == 4


# ---------------------------------------------------------------------------------------------- 4. socialisation
def _bankrupt_beyond_fund(protocol, test_venue, deployer, rich, move_price, holders):
    """The fund keeps 1,000 USDC; a trader long 2 BTC on 20,000 USDC is left with about -16,000 USD by a 30% drop."""
    fund = protocol.vault.fundAccount()
    protocol.vault.setFundOperator(deployer, True, {"from": deployer})
    keep = 1_000 * USDC * SCALE
    protocol.vault.withdraw(fund, protocol.usdc, (usd(protocol, fund) - keep) // SCALE, deployer, {"from": deployer})
    for h in holders:
        deposit(protocol, deployer, h.id, protocol.usdc, 100_000 * USDC)
    x = Trader(protocol.vault)
    deposit(protocol, deployer, x.id, protocol.usdc, 20_000 * USDC)
    test_venue.trade(x.id, rich.id, BTC, 2 * WAD, START[BTC] * WAD, 0, {"from": deployer})
    move_price(BTC, START[BTC] * 7 // 10)
    assert equity(protocol, x.id) < -usd(protocol, fund)
    return x


@pytest.mark.parametrize("first", [0, 1])
def test_write_off_costs_every_holder_the_same_fraction_whatever_the_order(protocol, test_venue, deployer, rich,
                                                                         move_price, keeper, first):
    """After the write-off, two holders of 100,000 USDC withdraw in either order: each gets the same amount, and a
    depositor after the loss gets all of its deposit back (before, it was haircut like the others: 99,714 of
    100,000)."""
    holders = [Trader(protocol.vault), Trader(protocol.vault)]
    x = _bankrupt_beyond_fund(protocol, test_venue, deployer, rich, move_price, holders)
    tx = protocol.vault.liquidate(x.id, [(0, BTC, 2 * WAD)], {"from": keeper})  # anyone marks it, in one call
    w = tx.events["BadDebtWrittenOff"]
    index, _ = protocol.vault.settlementIndex()
    assert w["socialised"] > 0 and index < 10**18 and protocol.vault.badDebt() == 0
    late = Trader(protocol.vault)
    deposit(protocol, deployer, late.id, protocol.usdc, 100_000 * USDC)
    paid = {}
    for h in (holders[first], holders[1 - first], late):
        deployer.transfer(h.wallet, "1 ether")
        amount = usd(protocol, h.id) // SCALE
        protocol.vault.withdraw(h.id, protocol.usdc, amount, h.wallet, {"from": h.wallet})
        paid[h.id] = protocol.usdc.balanceOf(h.wallet)
    assert paid[holders[0].id] == paid[holders[1].id] < 100_000 * USDC
    assert paid[late.id] >= 100_000 * USDC - 1  # at most one token unit of rounding on the way in and out
    assert 100_000 * USDC - paid[holders[0].id] == pytest.approx(100_000 * USDC * (1 - index / 1e18), abs=2)


# ---------------------------------------------------------------------------------------------- 5. parameters
@pytest.fixture
def delayed(protocol, deployer):
    """A 600 s loosening delay and a guardian (accounts[4])."""
    p = protocol.params
    p.setLoosenDelay(600, {"from": deployer})
    p.grantRole(p.RISK_ADMIN_ROLE(), deployer, {"from": deployer})
    p.grantRole(p.GUARDIAN_ROLE(), accounts[4], {"from": deployer})
    return p


def test_raising_a_correlated_risk_weight_is_queued(protocol, test_venue, deployer, rich, delayed, ledger):
    """Long 10 BTC / short 50 ETH (the smaller leg, by weight): raising ETH's weight lowers this hedge's
    charge in every regime. Before, it applied at once (here MM 51,264 -> 49,862) and a refused withdrawal
    then passed; now it is queued and the withdrawal stays refused with the same values."""
    t = Trader(protocol.vault)
    deployer.transfer(t.wallet, "1 ether")
    deposit(protocol, deployer, t.id, protocol.usdc, 100_000 * USDC)
    test_venue.trade(t.id, rich.id, BTC, 10 * WAD, START[BTC] * WAD, 0, {"from": deployer})
    test_venue.trade(rich.id, t.id, ETH, 50 * WAD, START[ETH] * WAD, 0, {"from": deployer})
    e, mm, im = protocol.vault.margin(t.id)
    over = (e - im) // SCALE + 1
    refused = err("InsufficientMargin", t.id, e - over * SCALE, im)
    assert_reverts(refused, protocol.vault.withdraw, t.id, protocol.usdc, over, t.wallet, {"from": t.wallet})
    with ledger([t.id]) as l:
        tx = delayed.setRiskWeight(ETH, 1500, {"from": deployer})
    l.assert_unchanged()
    assert "ChangeQueued" in tx.events and protocol.vault.margin(t.id) == (e, mm, im)
    assert_reverts(refused, protocol.vault.withdraw, t.id, protocol.usdc, over, t.wallet, {"from": t.wallet})


def test_queued_loosening_applied_as_tightening_leaves_no_entry(protocol, deployer, delayed):
    """Queue haircut 0 -> 7%; apply 6% after the delay; 7% is then a tightening and applies at once; back to 8% (a
    tightening). Before, the 7% entry stayed ready and 8% -> 7% loosened instantly with no ChangeQueued."""
    p = delayed
    p.setHaircut(0, 700, {"from": deployer})
    p.setHaircut(0, 600, {"from": deployer})
    chain.sleep(601)
    p.setHaircut(0, 600, {"from": deployer})
    assert p.setHaircut(0, 700, {"from": deployer}).events["ParameterUpdated"]["word"] & 0xFFFF == 700
    p.setHaircut(0, 800, {"from": deployer})
    tx = p.setHaircut(0, 700, {"from": deployer})
    assert "ChangeQueued" in tx.events and p.marginConfig()[3] & 0xFFFF == 800


def test_trailing_calldata_twin_is_cancelled_with_the_original(protocol, deployer, delayed):
    """The same loosening sent with one extra calldata byte used to get its own queue id, escaping the guardian's
    cancel of the original. Now both have the canonical id: one cancel drops it, and the twin re-queues instead of
    applying after the delay."""
    p = delayed
    canonical_call = p.setHaircut.encode_input(0, 700)
    tx = deployer.transfer(p, 0, data=canonical_call + "00", gas_limit=300_000)  # the twin: one extra byte
    queued = tx.events["ChangeQueued"]
    assert queued["id"] == "0x" + web3.keccak(hexstr=canonical_call).hex().removeprefix("0x") and queued["call"] == canonical_call
    p.cancel(queued["id"], {"from": accounts[4]})  # the guardian cancels the change it was shown
    chain.sleep(601)
    tx = deployer.transfer(p, 0, data=canonical_call + "00", gas_limit=300_000)
    assert "ChangeQueued" in tx.events and p.marginConfig()[3] & 0xFFFF == 800  # queued afresh, not applied


def test_editing_a_stress_vector_is_queued(protocol, deployer, delayed):
    """Deepening one shock of an existing vector lowers the loss of a book short that asset: queued. Appending a new
    vector only adds a scenario: at once."""
    p = delayed
    n = (p.marginConfig()[0] >> 176) & 0xFF
    tx = p.setStressVector(0, [-1000, -2000, -1800, -1800, 0, 0, 0, 0], {"from": deployer})
    assert "ChangeQueued" in tx.events
    tx = p.setStressVector(n, [0, -2000, 0, 0, 0, 0, 0, 0], {"from": deployer})
    assert "ChangeQueued" not in tx.events and (p.marginConfig()[0] >> 176) & 0xFF == n + 1


# ---------------------------------------------------------------------------------------------- 6. oracle edges
def test_answer_that_normalises_to_zero_is_no_price(protocol, deployer, test_venue, rich):
    """A 20-decimal feed answering 10 (1e-19 USD) normalises to 0: a fill at price 0 passed the band before."""
    feed = ChainlinkFeed.deploy(20, 10, {"from": deployer})
    protocol.oracle.setFeed(LINK, feed, FEED_MAX_AGE, {"from": deployer})
    assert_reverts(err("PriceNotPositive", LINK, 10), protocol.oracle.price, LINK)
    t = Trader(protocol.vault)
    deposit(protocol, deployer, t.id, protocol.usdc, 1_000 * USDC)
    assert_reverts(err("PriceNotPositive", LINK, 10), test_venue.trade, t.id, rich.id, LINK, WAD, 0, 0,
                   {"from": deployer})


# ---------------------------------------------------------------------------------------------- 7. liveness
def test_hedged_book_with_margin_below_the_penalty_rate_stays_liquidatable(protocol, test_venue, deployer, rich,
                                                                         second_btc_market, mirror, keeper):
    """A long/short pair on two BTC markets carries MM = basis add-on x gross, 0.9% after a tightening: less than the
    1% penalty. Before, every take lost more to the penalty than it freed (LiquidationNotImproving for every plan:
    an account nobody could liquidate). Now the keeper's planner finds a plan and the vault accepts it."""
    a, _ = _sibling_pair(protocol, test_venue, deployer, rich, second_btc_market, margin=9_500)
    protocol.params.setMarginScalars(15_000, 90, 100, {"from": deployer})
    e, mm, _ = protocol.vault.margin(a.id)
    assert 0 < e < mm
    state, layout, prices, cfg = mirror(a.id)
    liq = int(protocol.params.liquidationConfig()[0])
    assert mm * BPS < account_margin(state, layout, prices, cfg).gross_total * 100  # MM/gross below the penalty
    terms = LiquidationTerms(*(int(x) for x in protocol.params.liquidationConfig()))
    plan = plan_liquidation(state, layout, prices, cfg, terms)
    assert plan is not None
    tx = protocol.vault.liquidate(a.id, plan.as_args(), {"from": keeper})
    ev = tx.events["Liquidated"]
    assert ev["surplusAfter"] == plan.surplus_after > ev["surplusBefore"]
    e1, m1, _ = protocol.vault.margin(a.id)
    assert ev["penalty"] == liquidation_penalty(ev["taken"], e1 + ev["penalty"], mm, m1, liq) < ev["taken"] // 100


# ---------------------------------------------------------------------------------------------- 8. rounding
def test_liquidation_never_makes_a_solvent_account_insolvent(protocol, test_venue, deployer, rich, move_price, mirror,
                                                            keeper):
    """After a socialised loss (index below 1e18), an account with 100 USD of equity, below MM, loses half its BTC
    long to a keeper. The penalty is capped at the equity left (E' = 100 USD), and the balance left is stored as
    shares rounded down: before, that left E = -1 wei, a bankrupt account (everything takable) made by rounding. Now
    the fund adds the wei, and the mirror predicts the exact books."""
    holders = [Trader(protocol.vault)]
    x = _bankrupt_beyond_fund(protocol, test_venue, deployer, rich, move_price, holders)
    protocol.vault.liquidate(x.id, [(0, BTC, 2 * WAD)], {"from": keeper})
    index = protocol.vault.settlementIndex()[0]
    assert index < INDEX_ONE
    move_price(BTC, START[BTC])
    v = Trader(protocol.vault)
    deposit(protocol, deployer, v.id, protocol.usdc, 9_500 * USDC)
    test_venue.trade(v.id, rich.id, BTC, WAD, START[BTC] * WAD, 0, {"from": deployer})
    move_price(BTC, START[BTC] - 9_400)  # E = 9,500 - 9,400 = 100 USD
    e, mm, im = protocol.vault.margin(v.id)
    assert 0 < e < mm
    state, layout, prices, cfg = mirror(v.id)
    terms = LiquidationTerms(*(int(x) for x in protocol.params.liquidationConfig()), index)
    liq = terms.word
    gross = account_margin(state, layout, prices, cfg).gross_total
    allowed = protocol.vault.maxTake(e, mm, im, gross, liq)
    price = prices[layout.market_asset[BTC]]
    # a take whose penalty is capped at E' and whose balance left loses 1 wei as shares (found by a short search)
    for amount in range(allowed * WAD // price // 2, allowed * WAD // price // 2 - 50, -1):
        items = [(0, BTC, amount)]
        after, taken, penalty = apply_liquidation(state, layout, prices, cfg, terms, items)
        no_makeup, _, _ = apply_liquidation(state, layout, prices, cfg, LiquidationTerms(liq, terms.discounts), items)
        left = no_makeup.settlement  # the balance in memory before storing, under the old rule (no make-up)
        old_equity = account_margin(no_makeup, layout, prices, cfg).equity - left + usd_of_shares(
            left * INDEX_ONE // index, index)
        if old_equity < 0:
            break
    assert old_equity < 0, "no take in the range shows the rounding"
    assert penalty < -(-taken * (liq >> 16 & 0xFFFF) // BPS)  # capped, not the rate
    fund = protocol.vault.fundAccount()
    fund0 = usd(protocol, fund)
    tx = protocol.vault.liquidate(v.id, items, {"from": keeper})
    ev = tx.events["Liquidated"]
    assert (ev["taken"], ev["penalty"]) == (taken, penalty)
    assert equity(protocol, v.id) >= 0
    assert usd(protocol, v.id) == usd_of_shares(after.settlement * INDEX_ONE // index, index)
    makeup = after.settlement - no_makeup.settlement
    assert 0 < makeup <= 3
    assert abs(usd(protocol, fund) - fund0 - (penalty - ev["keeperReward"] - makeup)) <= 1  # the fund's own shares
