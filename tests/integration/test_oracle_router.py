"""OracleRouter: normalisation to USD 1e18, every invalid-price revert (non-positive, stale, unset, sequencer down),
`pricesFor` (required prices revert, optional ones read 0), configuration guards, and what the vault does when a
price is invalid (positions wait for a valid one; collateral without one counts at zero)."""
from __future__ import annotations


import brownie
import pytest
from brownie import ZERO_ADDRESS, ChainlinkFeed, OracleRouter, accounts, chain, web3
from brownie.exceptions import VirtualMachineError

from offchain.margin.exact import account_margin
from tests.conftest import NOW, Trader, err, reverts_at

WAD = 10**18
USDC = 10**6
SCALE = 10**12
MAX_AGE = 3600  # the local deployment's max age for every feed
BTC, ETH = 0, 1


@pytest.fixture
def owner(deployer):
    return deployer


def deploy_router(owner, sequencer=ZERO_ADDRESS, grace=0):
    """An OracleRouter owned by `owner` with its sequencer-uptime feed fixed at deployment (zero address: none)."""
    r = OracleRouter.deploy(owner, sequencer, grace, {"from": owner})
    assert r.tx.events["SequencerFeedSet"] == {"feed": str(sequencer), "gracePeriod": grace}
    assert (r.sequencerFeed(), r.sequencerGracePeriod()) == (str(sequencer), grace)
    return r


@pytest.fixture
def router(owner):
    return deploy_router(owner)


@pytest.fixture
def feed(owner):
    """feed(decimals, answer) -> a new Chainlink mock."""
    return lambda decimals, answer: ChainlinkFeed.deploy(decimals, answer, {"from": owner})


def ints(values) -> list[int]:
    return [int(v) for v in values]


def updated_at(f) -> int:
    return int(f.latestRoundData()[3])


# ---------------------------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize(
    "decimals,answer,expected",
    [
        (6, 1_234_567, 1_234_567 * 10**12),  # 1.234567 USD
        (8, 6_000_012_345_678, 60_000_123_456_780_000_000_000),  # 60,000.12345678 USD
        (18, 3_000_123_456_789_012_345_678, 3_000_123_456_789_012_345_678),
        (20, 123_456_789_012_345_678_901, 1_234_567_890_123_456_789),  # 1.23456789012345678901 -> truncated
        (0, 7, 7 * WAD),
        (36, 5 * 10**36 + 10**18 - 1, 5 * WAD),  # the most decimals allowed; below 1e-18 USD is dropped
    ],
)
def test_price_normalised_to_1e18(router, feed, owner, decimals, answer, expected):
    f = feed(decimals, answer)
    tx = router.setFeed(3, f, 120, {"from": owner})
    assert tx.events["FeedSet"] == {"asset": 3, "feed": f.address, "decimals": decimals, "maxAge": 120}
    assert tuple(router.feedOf(3)) == (f.address, decimals, 120)
    assert router.price(3) == expected
    assert router.prices(1 << 3)[3] == expected


def test_price_follows_feed_updates(router, feed, owner):
    f = feed(8, 150 * 10**8)
    router.setFeed(2, f, MAX_AGE, {"from": owner})
    f.updateAnswer(14_999_999_999, {"from": owner})
    assert router.price(2) == 149_999_999_990_000_000_000


def test_deployed_router_prices_match_start_prices(protocol):
    usd = (60_000, 3_000, 150, 15)
    assert [protocol.oracle.price(k) for k in range(4)] == [p * WAD for p in usd]
    assert protocol.oracle.owner() == accounts[0]


# ---------------------------------------------------------------------------------------------- invalid answers
@pytest.mark.parametrize("answer", [0, -1, -(60_000 * 10**8), -(2**255)])
def test_price_non_positive_answer_reverts(router, feed, owner, answer):
    f = feed(8, 60_000 * 10**8)
    router.setFeed(0, f, MAX_AGE, {"from": owner})
    f.updateAnswer(answer, {"from": owner})
    with brownie.reverts(err("PriceNotPositive", 0, answer)):
        router.price(0)
    with brownie.reverts(err("PriceNotPositive", 0, answer)):
        router.prices(0b1)


@pytest.mark.parametrize("decimals,answer", [(19, 9), (20, 99), (36, 10**18 - 1)])
def test_price_positive_answer_normalising_to_zero_reverts(router, feed, owner, decimals, answer):
    """A positive answer below 1e-18 USD (more than 18 decimals) normalises to 0: no price."""
    f = feed(decimals, answer)
    router.setFeed(2, f, MAX_AGE, {"from": owner})
    with brownie.reverts(err("PriceNotPositive", 2, answer)):
        router.price(2)
    with brownie.reverts(err("PriceNotPositive", 2, answer)):
        router.prices(0b100)
    assert ints(router.pricesFor(0, 0b100)) == [0] * 8  # optional: unavailable, read as 0
    f.updateAnswer(answer * 10 ** (decimals - 18) + 10 ** (decimals - 18), {"from": owner})  # one unit more
    assert router.price(2) == answer + 1


def test_price_stale_after_max_age_reverts(router, feed, owner):
    f = feed(8, 3_000 * 10**8)
    router.setFeed(1, f, 100, {"from": owner})
    t = chain[-1].timestamp
    f.updateRoundData(7, 3_000 * 10**8, t - 40, t - 40, {"from": owner})
    chain.mine(timestamp=t + 60)  # age 100 = max age: still valid
    assert chain[-1].timestamp == t + 60
    assert router.price(1) == 3_000 * WAD
    chain.mine(timestamp=t + 61)  # age 101
    with brownie.reverts(err("PriceStale", 1, t - 40, 100, t + 61)):
        router.price(1)
    with brownie.reverts(err("PriceStale", 1, t - 40, 100, t + 61)):
        router.prices(0b10)


def test_price_stale_with_old_round_timestamp_reverts(router, feed, owner):
    f = feed(8, 15 * 10**8)
    router.setFeed(3, f, MAX_AGE, {"from": owner})
    old = chain[-1].timestamp - MAX_AGE - 1
    f.updateRoundData(9, 15 * 10**8, old, old, {"from": owner})
    with reverts_at("PriceStale", 3, old, MAX_AGE, NOW):
        router.price(3)


def test_price_stale_after_sleep_then_fresh_after_update(protocol, deployer):
    oracle, f = protocol.oracle, protocol.feeds[ETH]
    last = updated_at(f)
    chain.sleep(MAX_AGE + 1)
    chain.mine()
    with reverts_at("PriceStale", ETH, last, MAX_AGE, NOW):
        oracle.price(ETH)
    f.updateAnswer(3_100 * 10**8, {"from": deployer})
    assert oracle.price(ETH) == 3_100 * WAD


def test_set_feed_replaces_stale_feed_at_once(router, feed, owner):
    stale = feed(8, 100 * 10**8)
    router.setFeed(4, stale, 50, {"from": owner})
    old = chain[-1].timestamp - 51
    stale.updateRoundData(2, 100 * 10**8, old, old, {"from": owner})
    with reverts_at("PriceStale", 4, old, 50, NOW):
        router.price(4)
    fresh = feed(18, 101 * WAD)
    router.setFeed(4, fresh, 50, {"from": owner})
    assert tuple(router.feedOf(4)) == (fresh.address, 18, 50)
    assert router.price(4) == 101 * WAD


@pytest.mark.parametrize("asset", [0, 5, 7, 8, 2**256 - 1])
def test_price_unset_feed_reverts_feed_not_set(router, asset):
    with brownie.reverts(err("FeedNotSet", asset)):
        router.price(asset)


def test_prices_unset_bit_in_mask_reverts_feed_not_set(router, feed, owner):
    router.setFeed(0, feed(8, 10**8), MAX_AGE, {"from": owner})
    with brownie.reverts(err("FeedNotSet", 1)):
        router.prices(0b11)


def test_prices_returns_zeros_for_unset_bits(router, feed, owner):
    router.setFeed(0, feed(8, 60_000 * 10**8), MAX_AGE, {"from": owner})
    router.setFeed(2, feed(6, 150 * 10**6), MAX_AGE, {"from": owner})
    router.setFeed(7, feed(18, 2 * WAD), MAX_AGE, {"from": owner})
    assert ints(router.prices(0b10000101)) == [60_000 * WAD, 0, 150 * WAD, 0, 0, 0, 0, 2 * WAD]
    assert ints(router.prices(0b100)) == [0, 0, 150 * WAD, 0, 0, 0, 0, 0]
    assert ints(router.prices(0)) == [0] * 8


# ---------------------------------------------------------------------------------------------- pricesFor
@pytest.fixture
def mixed(router, feed, owner):
    """Asset 0 valid (60,000), 1 stale, 2 no feed, 3 answer 0, 4 answer negative, 5 normalising to 0, 7 valid (2)."""
    router.setFeed(0, feed(8, 60_000 * 10**8), MAX_AGE, {"from": owner})
    stale = feed(8, 3_000 * 10**8)
    router.setFeed(1, stale, MAX_AGE, {"from": owner})
    old = chain[-1].timestamp - MAX_AGE - 1
    stale.updateRoundData(3, 3_000 * 10**8, old, old, {"from": owner})
    router.setFeed(3, feed(8, 0), MAX_AGE, {"from": owner})
    router.setFeed(4, feed(8, -5), MAX_AGE, {"from": owner})
    router.setFeed(5, feed(20, 99), MAX_AGE, {"from": owner})
    router.setFeed(7, feed(18, 2 * WAD), MAX_AGE, {"from": owner})
    return old


def test_prices_for_optional_invalid_prices_read_zero(router, mixed):
    valid = [60_000 * WAD, 0, 0, 0, 0, 0, 0, 2 * WAD]
    assert ints(router.pricesFor(0, 0xFF)) == valid  # every invalid optional price is 0, no revert
    assert ints(router.pricesFor(0b10000001, 0b01111110)) == valid  # required ones valid
    assert ints(router.pricesFor(0b1, 0)) == [60_000 * WAD] + [0] * 7  # other entries zero
    assert ints(router.pricesFor(0, 0)) == [0] * 8
    assert ints(router.pricesFor(1 << 9, (1 << 8) | 0b1)) == [60_000 * WAD] + [0] * 7  # bits above 7 ignored


@pytest.mark.parametrize("asset", [1, 2, 3, 4, 5])
def test_prices_for_required_invalid_price_reverts(router, mixed, asset):
    """A required asset reverts with the oracle's error, also when the same bit is optional too."""
    expected = {
        1: err("PriceStale", 1, mixed, MAX_AGE, chain[-1].timestamp),
        2: err("FeedNotSet", 2),
        3: err("PriceNotPositive", 3, 0),
        4: err("PriceNotPositive", 4, -5),
        5: err("PriceNotPositive", 5, 99),
    }[asset]
    for required, optional in [(1 << asset, 0), (1 << asset | 1, 0xFF), (1 << asset, 1 << asset)]:
        with brownie.reverts(expected):
            router.pricesFor(required, optional)
    assert ints(router.pricesFor(1, 1 << asset)) == [60_000 * WAD] + [0] * 7


# ---------------------------------------------------------------------------------------------- configuration
def test_set_feed_zero_max_age_reverts_bad_config(router, feed, owner):
    f = feed(8, 10**8)
    with brownie.reverts(err("BadFeedConfig", 0, 8, 0)):
        router.setFeed(0, f, 0, {"from": owner})
    assert tuple(router.feedOf(0)) == (ZERO_ADDRESS, 0, 0)


def test_set_feed_asset_above_seven_reverts_bad_config(router, feed, owner):
    f = feed(8, 10**8)
    with brownie.reverts(err("BadFeedConfig", 8, 8, MAX_AGE)):
        router.setFeed(8, f, MAX_AGE, {"from": owner})


def test_set_feed_more_than_36_decimals_reverts_bad_config(router, feed, owner):
    f = feed(37, 10**37)
    with brownie.reverts(err("BadFeedConfig", 0, 37, MAX_AGE)):
        router.setFeed(0, f, MAX_AGE, {"from": owner})


def test_set_feed_by_non_owner_reverts(router, feed, owner):
    f = feed(8, 10**8)
    stranger = accounts[4]
    with brownie.reverts(err("NotOwner", stranger)):
        router.setFeed(0, f, MAX_AGE, {"from": stranger})
    with brownie.reverts(err("NotOwner", stranger)):
        router.setOwner(stranger, {"from": stranger})
    assert router.owner() == owner


def test_set_owner_hands_over_control(router, feed, owner):
    new = accounts[5]
    tx = router.setOwner(new, {"from": owner})
    assert tx.events["OwnerSet"]["owner"] == new
    f = feed(8, 10**8)
    with brownie.reverts(err("NotOwner", owner)):
        router.setFeed(0, f, MAX_AGE, {"from": owner})
    router.setFeed(0, f, MAX_AGE, {"from": new})
    assert router.price(0) == WAD


# ---------------------------------------------------------------------------------------------- sequencer
@pytest.fixture
def seq(feed):
    """A sequencer-uptime feed (Chainlink: answer 0 = up, 1 = down; startedAt = when the status began)."""
    return feed(0, 0)


@pytest.fixture
def seq_router(owner, feed, seq):
    """A router with a sequencer-uptime feed (grace period 3600 s) and a BTC feed with a long max age."""
    r = deploy_router(owner, seq.address, 3600)
    r.setFeed(0, feed(8, 60_000 * 10**8), 10 * 86_400, {"from": owner})
    return r


def test_price_sequencer_down_reverts(seq_router, seq, owner):
    started = chain[-1].timestamp - 2 * 86_400  # down for two days
    seq.updateRoundData(2, 1, started, started, {"from": owner})
    with brownie.reverts(err("SequencerDown", started, 3600)):
        seq_router.price(0)
    with brownie.reverts(err("SequencerDown", started, 3600)):
        seq_router.prices(0b1)


def test_price_sequencer_within_grace_period_reverts(seq_router, seq, owner):
    t = chain[-1].timestamp
    seq.updateRoundData(3, 0, t, t, {"from": owner})  # back up at t
    chain.mine(timestamp=t + 3599)
    with brownie.reverts(err("SequencerDown", t, 3600)):
        seq_router.price(0)
    chain.mine(timestamp=t + 3600)  # grace period over
    assert seq_router.price(0) == 60_000 * WAD
    assert seq_router.prices(0b1)[0] == 60_000 * WAD


def test_price_sequencer_up_long_ago_succeeds(seq_router, seq, owner):
    started = chain[-1].timestamp - 86_400
    seq.updateRoundData(4, 0, started, started, {"from": owner})
    assert seq_router.price(0) == 60_000 * WAD


@pytest.mark.parametrize("grace", [0, 3600])
def test_price_sequencer_round_not_started_reverts(owner, feed, seq, grace):
    """An uptime round with startedAt 0 says nothing about how long the sequencer has been up: down, whatever the
    grace period; it also stops optional prices (pricesFor)."""
    r = deploy_router(owner, seq.address, grace)
    r.setFeed(0, feed(8, 60_000 * 10**8), 10 * 86_400, {"from": owner})
    t = chain[-1].timestamp
    seq.updateRoundData(6, 0, t, 0, {"from": owner})  # answer 0 (up), startedAt 0
    with brownie.reverts(err("SequencerDown", 0, grace)):
        r.price(0)
    with brownie.reverts(err("SequencerDown", 0, grace)):
        r.prices(0b1)
    with brownie.reverts(err("SequencerDown", 0, grace)):
        r.pricesFor(0, 0b1)
    started = t - grace - 1
    seq.updateRoundData(7, 0, t, started, {"from": owner})  # a started round, past the grace period
    assert r.price(0) == 60_000 * WAD


def test_price_without_sequencer_feed_ignores_sequencer(seq_router, seq, feed, owner):
    t = chain[-1].timestamp
    seq.updateRoundData(5, 1, t, t, {"from": owner})  # down
    with brownie.reverts(err("SequencerDown", t, 3600)):
        seq_router.price(0)
    plain = deploy_router(owner)  # no sequencer feed (an L1 deployment)
    plain.setFeed(0, seq_router.feedOf(0)[0], 10 * 86_400, {"from": owner})
    assert plain.price(0) == 60_000 * WAD


# ---------------------------------------------------------------------------------------------- through the vault
@pytest.fixture(scope="module")
def book(protocol, deployer):
    """Module-wide accounts (every test reverts to this state): `weak` is long 1 BTC on 10,000 USDC, `strong` the
    short side on 100,000 USDC, `holder` has 10 WETH and 1,000 USDC; all three owners have gas."""
    vault, usdc, weth, tx = protocol.vault, protocol.usdc, protocol.tokens[ETH], {"from": deployer}
    weak, strong, holder = Trader(vault), Trader(vault), Trader(vault)
    usdc.mint(deployer, 111_000 * USDC, tx)
    usdc.approve(vault, 111_000 * USDC, tx)
    vault.deposit(weak.id, usdc, 10_000 * USDC, tx)
    vault.deposit(strong.id, usdc, 100_000 * USDC, tx)
    vault.deposit(holder.id, usdc, 1_000 * USDC, tx)
    weth.mint(deployer, 10 * WAD, tx)
    weth.approve(vault, 10 * WAD, tx)
    vault.deposit(holder.id, weth, 10 * WAD, tx)
    for t in (weak, strong, holder):
        deployer.transfer(t.wallet, "1 ether")
    return weak, strong, holder


@pytest.fixture
def opened(protocol, book, order, sign):
    """`weak` buys 1 BTC from `strong` at 60,000 (signed orders through the venue)."""
    weak, strong, _ = book
    p = protocol.oracle.price(BTC)
    mo, to = order(strong.id, BTC, False, WAD, p), order(weak.id, BTC, True, WAD, p)
    protocol.venue.settle(mo, sign(mo, strong.wallet), to, sign(to, weak.wallet), WAD, {"from": accounts[2]})
    return weak, strong


def make_stale():
    chain.sleep(MAX_AGE + 1)
    chain.mine()


def test_withdraw_with_stale_collateral_price_counts_it_at_zero(protocol, book, test_venue, mirror, move_price,
                                                                deployer):
    """`holder` (10 WETH, 1,000 USDC) is long 0.1 BTC. ETH goes stale, BTC stays fresh: the WETH counts at 0 (no
    equity, delta or gross), and a withdrawal passes exactly when E >= IM with it at 0."""
    vault, usdc, weth = protocol.vault, protocol.usdc, protocol.tokens[ETH]
    _, strong, holder = book
    test_venue.trade(holder.id, strong.id, BTC, WAD // 10, 60_000 * WAD, 0, {"from": deployer})
    make_stale()
    move_price(BTC, 60_000)  # fresh again; ETH stays stale
    e, mm, im = vault.margin(holder.id)
    assert e == 1_000 * WAD  # the WETH adds nothing
    m = account_margin(*mirror(holder.id))
    assert (m.equity, m.maintenance, m.initial) == (e, mm, im)
    d = vault.marginDetail(holder.id)
    assert (d["delta"][ETH], d["gross"][ETH]) == (0, 0)
    assert 0 < im < e
    spare = (e - im) // SCALE  # the most USDC that keeps E >= IM
    with brownie.reverts(err("InsufficientMargin", holder.id, e - (spare + 1) * SCALE, im)):
        vault.withdraw(holder.id, usdc, spare + 1, holder.wallet, {"from": holder.wallet})
    vault.withdraw(holder.id, usdc, spare, holder.wallet, {"from": holder.wallet})
    assert usdc.balanceOf(holder.wallet) == spare
    # the WETH counts at 0: taking it out leaves E and IM as they are, so it passes while E >= IM
    vault.withdraw(holder.id, weth, 10 * WAD, holder.wallet, {"from": holder.wallet})
    assert weth.balanceOf(holder.wallet) == 10 * WAD
    assert tuple(vault.margin(holder.id)) == (e - spare * SCALE, mm, im)


def test_withdraw_with_stale_collateral_below_initial_margin_reverts(protocol, book, test_venue, move_price,
                                                                     deployer):
    """With the WETH at 0 the same account is below IM after a larger position: nothing can be withdrawn, the WETH
    neither, until its price is fresh again."""
    vault, usdc, weth = protocol.vault, protocol.usdc, protocol.tokens[ETH]
    _, strong, holder = book
    test_venue.trade(holder.id, strong.id, BTC, WAD, 60_000 * WAD, 0, {"from": deployer})  # IM ~9,000 > 1,000 USDC
    make_stale()
    move_price(BTC, 60_000)
    e, _, im = vault.margin(holder.id)
    assert e == 1_000 * WAD < im
    with brownie.reverts(err("InsufficientMargin", holder.id, e, im)):
        vault.withdraw(holder.id, weth, 1, holder.wallet, {"from": holder.wallet})
    with brownie.reverts(err("InsufficientMargin", holder.id, e - USDC * SCALE, im)):
        vault.withdraw(holder.id, usdc, USDC, holder.wallet, {"from": holder.wallet})
    protocol.feeds[ETH].updateAnswer(3_000 * 10**8, {"from": deployer})
    vault.withdraw(holder.id, weth, WAD, holder.wallet, {"from": holder.wallet})
    assert weth.balanceOf(holder.wallet) == WAD


def test_withdraw_with_position_on_stale_asset_reverts(protocol, book, test_venue, deployer):
    """A position needs its price: `holder`, short 1 ETH against its WETH, cannot withdraw while ETH is stale."""
    vault, usdc, weth = protocol.vault, protocol.usdc, protocol.tokens[ETH]
    _, strong, holder = book
    test_venue.trade(strong.id, holder.id, ETH, WAD, 3_000 * WAD, 0, {"from": deployer})
    last = updated_at(protocol.feeds[ETH])
    make_stale()
    with reverts_at("PriceStale", ETH, last, MAX_AGE, NOW):  # a mined transaction
        vault.withdraw(holder.id, weth, WAD, holder.wallet, {"from": holder.wallet})
    with reverts_at("PriceStale", ETH, last, MAX_AGE, NOW):
        vault.withdraw(holder.id, usdc, 100 * USDC, holder.wallet, {"from": holder.wallet})
    with reverts_at("PriceStale", ETH, last, MAX_AGE, NOW):
        vault.margin(holder.id)
    protocol.feeds[ETH].updateAnswer(3_000 * 10**8, {"from": deployer})
    vault.withdraw(holder.id, weth, WAD, holder.wallet, {"from": holder.wallet})
    assert vault.collateralOf(holder.id, ETH) == 9 * WAD
    assert weth.balanceOf(holder.wallet) == WAD


def test_trade_on_stale_price_reverts(protocol, book, order, sign, deployer):
    vault, venue = protocol.vault, protocol.venue
    weak, strong, _ = book
    p = protocol.oracle.price(BTC)
    last = updated_at(protocol.feeds[BTC])
    make_stale()
    mo, to = order(strong.id, BTC, False, WAD // 10, p), order(weak.id, BTC, True, WAD // 10, p)  # not expired
    args = (mo, sign(mo, strong.wallet), to, sign(to, weak.wallet), WAD // 10)
    with reverts_at("PriceStale", BTC, last, MAX_AGE, NOW):
        venue.settle(*args, {"from": accounts[2]})
    protocol.feeds[BTC].updateAnswer(60_000 * 10**8, {"from": deployer})
    venue.settle(*args, {"from": accounts[2]})
    assert vault.positionOf(weak.id, BTC)[0] == WAD // 10


def _liquidation_items(protocol, account, price):
    """Close the largest BTC amount the liquidation rule allows (kind 0 = position, market BTC)."""
    vault = protocol.vault
    d = vault.marginDetail(account)
    liq, _ = protocol.params.liquidationConfig()
    allowed = vault.maxTake(d["equity"], d["margin"]["maintenance"], d["margin"]["initial"], sum(d["gross"]), liq)
    return [(0, BTC, allowed * WAD // price)]


def test_liquidate_on_stale_price_reverts_until_fresh(protocol, opened, move_price, keeper, deployer):
    vault = protocol.vault
    weak, strong = opened
    move_price(BTC, 55_000)
    equity, mm, _ = vault.margin(weak.id)
    assert equity < mm  # liquidatable at the fresh price
    items = _liquidation_items(protocol, weak.id, 55_000 * WAD)
    last = updated_at(protocol.feeds[BTC])
    make_stale()
    # neither the unhealthy account nor the healthy one can be liquidated on a stale price
    with reverts_at("PriceStale", BTC, last, MAX_AGE, NOW):
        vault.liquidate(weak.id, items, {"from": keeper})
    with reverts_at("PriceStale", BTC, last, MAX_AGE, NOW):
        vault.liquidate.call(strong.id, [(0, BTC, WAD // 10)], {"from": keeper})
    assert vault.positionOf(weak.id, BTC)[0] == WAD
    # a fresh price: the unhealthy account does not escape, the healthy one stays protected
    move_price(BTC, 55_000)
    tx = vault.liquidate(weak.id, items, {"from": keeper})
    ev = tx.events["Liquidated"]
    assert (ev["account"], ev["keeper"]) == (weak.id, keeper.address)
    assert ev["taken"] == items[0][2] * 55_000 * WAD // WAD
    assert vault.positionOf(weak.id, BTC)[0] == WAD - items[0][2]
    assert ev["surplusAfter"] > ev["surplusBefore"]
    e2, m2, _ = vault.margin(strong.id)
    with brownie.reverts(err("AccountHealthy", strong.id, e2, m2)):
        vault.liquidate.call(strong.id, [(0, BTC, WAD // 10)], {"from": keeper})


def test_liquidate_healthy_account_on_stale_price_reverts(protocol, opened, keeper, deployer):
    """A stale price that would make a healthy account look unhealthy is not used: the call waits for a fresh one."""
    vault, f = protocol.vault, protocol.feeds[BTC]
    weak, _ = opened
    t = chain[-1].timestamp
    old = t - MAX_AGE - 10
    f.updateRoundData(99, 50_000 * 10**8, old, old, {"from": deployer})  # an old, low answer
    with reverts_at("PriceStale", BTC, old, MAX_AGE, NOW):
        vault.liquidate(weak.id, [(0, BTC, WAD // 10)], {"from": keeper})
    f.updateAnswer(60_000 * 10**8, {"from": deployer})
    equity, mm, _ = vault.margin(weak.id)
    assert equity >= mm
    with brownie.reverts(err("AccountHealthy", weak.id, equity, mm)):
        vault.liquidate.call(weak.id, [(0, BTC, WAD // 10)], {"from": keeper})
    assert vault.positionOf(weak.id, BTC)[0] == WAD


# ---------------------------------------------------------------------------------------------- volatility feeds
def test_vol_feed_configuration_guards(router, owner, feed):
    f = feed(8, 60_000_000)
    with brownie.reverts(err("NotOwner", accounts[5])):
        router.setVolFeed(0, f, 86_400, 500, 50_000, {"from": accounts[5]})
    for args in ((8, f, 86_400, 500, 50_000), (0, f, 0, 500, 50_000), (0, f, 86_400, 0, 50_000),
                 (0, f, 86_400, 600, 500)):
        with brownie.reverts(err("BadVolFeedConfig", args[0], args[2], args[3], args[4])):
            router.setVolFeed(*args, {"from": owner})
    tx = router.setVolFeed(0, f, 86_400, 500, 50_000, {"from": owner})
    assert tx.events["VolFeedSet"]["maxVolBps"] == 50_000
    assert tuple(router.volFeedOf(0)) == (f.address, 8, 86_400, 500, 50_000)


def test_vols_strict_and_last_answer(router, owner, feed):
    """Strict: a fresh answer within the bounds, or VolatilityUnavailable(asset, value, updatedAt). Not strict: the
    last answer clamped to the bounds (the upper bound for a non-positive answer), whatever its age."""
    f = feed(8, 60_000_000)  # 60%
    router.setVolFeed(1, f, 86_400, 500, 50_000, {"from": owner})
    assert ints(router.vols(2, True))[1] == 6 * 10**17
    with brownie.reverts(err("VolatilityUnavailable", 0, 0, 0)):  # no feed for asset 0
        router.vols(3, False)
    f.updateAnswer(600_000_000, {"from": owner})  # 600%: above the 500% bound
    with brownie.reverts(err("VolatilityUnavailable", 1, 6 * WAD, updated_at(f))):
        router.vols(2, True)
    assert ints(router.vols(2, False))[1] == 5 * WAD
    f.updateAnswer(1_000_000, {"from": owner})  # 1%: below the 5% bound
    assert ints(router.vols(2, False))[1] == 5 * 10**16
    f.updateAnswer(-1, {"from": owner})
    assert ints(router.vols(2, False))[1] == 5 * WAD
    f.updateAnswer(75_000_000, {"from": owner})
    chain.sleep(86_401)
    chain.mine()
    with brownie.reverts(err("VolatilityUnavailable", 1, 75 * 10**16, updated_at(f))):
        router.vols(2, True)
    assert ints(router.vols(2, False))[1] == 75 * 10**16  # a stale feed's last answer: liquidations go on
