"""Integration tests for CrossMarginVault.liquidate, the bad-debt waterfall (the fund first, then the settlement
index), settlement withdrawals after a socialised loss and resolveBadDebt. Expected values come from the Python
mirror (offchain.margin.exact: account_margin, max_take, liquidation_penalty, keeper_reward, usd_of_shares) applied
to the chain state.

Default parameters: penalty 1%, keeper share 30%, close factor 50%, deep 50%, min keeper reward 5 USD, dust 100 USD.
The penalty is min(ceil(1% x taken), max(E', 0), (MM - MM') / 2) with E', MM' after the take; the keeper reward is
paid out of it (30%, raised to min(5 USD, penalty) for a take of at least 99% of maxTake) and credited (USD 1e18) to
the caller's subaccount 0; the fund keeps penalty - reward. BTC risk weight 10%, alpha 1.5 (a lone BTC position of
value V has MM = 0.1 V, IM = 0.15 V); WETH haircut 10%, discount 5%.
"""
import copy
from types import SimpleNamespace

import brownie
import pytest
from brownie import TestVenue, accounts, web3

from tests.fixture_spec import FIXTURE_SPEC
from offchain.margin.exact import (BPS, account_margin, keeper_reward, liquidation_penalty, max_take, u16,
                                  usd_of_shares)
from scripts.deploy import deploy_local, set_price
from tests.conftest import Trader, err, assert_reverts

# The write-off rule on its own: deleveraging off (adlShare 0), so a loss beyond the fund reaches the claims pool
# (tests/integration/test_funding.py: deleveraging charges the opposite side before it does).
NO_ADL = FIXTURE_SPEC.funding.model_copy(update={"adl_share_bps": 0})

WAD = 10**18
USDC = 10**6
SCALE = 10**12
BTC, ETH = 0, 1  # asset, market and collateral ids coincide in the local deployment


def _tdiv(a: int, b: int) -> int:
    """Solidity signed division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def simulate(protocol, snapshot, items):
    """What `liquidate(account, items)` should do, from the mirror state (the rule in ICrossMarginVault)."""
    state, layout, prices, cfg = snapshot
    liq, discounts = (int(x) for x in protocol.params.liquidationConfig())
    before = account_margin(state, layout, prices, cfg)
    st = copy.deepcopy(state)
    taken = 0
    for kind, cid, amount in items:
        if kind == 0:
            size, on = st.positions[cid]
            price = prices[layout.market_asset[cid]]
            delta = -amount if size > 0 else amount
            basis = _tdiv(on * delta, -size)  # share of the cost basis released
            st.settlement += (-delta * price) // WAD - basis  # realised at the oracle price
            if size + delta == 0:
                del st.positions[cid]
            else:
                st.positions[cid] = (size + delta, on - basis)
            taken += amount * price // WAD
        else:
            price = prices[layout.collateral_asset[cid]]
            value = amount * price // 10 ** layout.collateral_decimals[cid]
            st.settlement += value * (BPS - u16(discounts, cid)) // BPS  # credit rounded down
            st.collateral[cid] -= amount
            if st.collateral[cid] == 0:
                del st.collateral[cid]
            taken += value
    taken_state = account_margin(st, layout, prices, cfg)  # E', MM' (before the penalty)
    allowed = max_take(before.equity, before.maintenance, before.initial, before.gross_total, liq)
    penalty = reward = 0
    if taken:
        penalty = liquidation_penalty(taken, taken_state.equity, before.maintenance, taken_state.maintenance, liq)
        reward = keeper_reward(penalty, taken, allowed, liq)
    st.settlement -= penalty
    after = account_margin(st, layout, prices, cfg)
    return SimpleNamespace(
        before=before, after=after, state=st, taken=taken, penalty=penalty, reward=reward, allowed=allowed,
        taken_equity=taken_state.equity, freed=max(before.maintenance - taken_state.maintenance, 0) // 2,
        surplus_before=before.equity - before.maintenance, surplus_after=after.equity - after.maintenance,
        liq=liq,
    )


def shares_stored(usd: int, index: int, stored_before: int) -> int:
    """What the vault stores for a settlement balance of `usd` (CrossMarginVault._store): shares rounded down when
    positive (an unchanged USD value keeps its shares), USD when not."""
    if usd <= 0:
        return usd
    if stored_before > 0 and usd_of_shares(stored_before, index) == usd:
        return stored_before
    return usd * WAD // index


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def book(protocol, test_venue, deployer):
    """Accounts built once per module (every test starts from this state through fn_isolation):
    b  a well-capitalised counterparty (5,000,000 USDC) on the other side of every trade;
    a  10,000 USDC and long 1 BTC at 60,000 (IM 9,000), liquidatable below ~55,555;
    s  10 WETH of collateral and a settlement balance of -20,000 (a BTC long closed at 40,000), no positions;
    h  10 WETH hedged by a short 10 ETH perp, and long 1 BTC at 60,000."""
    vault = protocol.vault

    def deposit(account, token, amount):
        token.mint(deployer, amount, {"from": deployer})
        token.approve(vault, amount, {"from": deployer})
        vault.deposit(account, token, amount, {"from": deployer})

    b, a, s, h = Trader(vault), Trader(vault), Trader(vault), Trader(vault)
    deposit(b.id, protocol.usdc, 5_000_000 * USDC)
    deposit(a.id, protocol.usdc, 10_000 * USDC)
    deposit(s.id, protocol.tokens[1], 10 * WAD)
    deposit(h.id, protocol.tokens[1], 10 * WAD)
    test_venue.trade(b.id, h.id, 1, 10 * WAD, 3_000 * WAD, 0, {"from": deployer})  # short 10 ETH: hedges the WETH
    test_venue.trade(h.id, b.id, 0, WAD, 60_000 * WAD, 0, {"from": deployer})
    test_venue.trade(a.id, b.id, 0, WAD, 60_000 * WAD, 0, {"from": deployer})
    test_venue.trade(s.id, b.id, 0, WAD, 60_000 * WAD, 0, {"from": deployer})
    set_price(protocol.feeds[BTC], 40_000, deployer)
    test_venue.trade(b.id, s.id, 0, WAD, 40_000 * WAD, 0, {"from": deployer})  # reduce-only: always allowed
    set_price(protocol.feeds[BTC], 60_000, deployer)
    assert vault.settlementOf(s.id) == -20_000 * WAD
    assert tuple(vault.masksOf(s.id)) == (0, 1 << 1)
    return SimpleNamespace(b=b, a=a, s=s, h=h)


@pytest.fixture
def counterparty(book):
    return book.b


@pytest.fixture
def long_btc(book):
    return book.a


@pytest.fixture
def weth_in_debt(book):
    return book.s


@pytest.fixture
def hedged(book):
    return book.h


def _keeper_credit(vault, keeper):
    """The keeper's subaccount 0, where rewards are credited."""
    return vault.settlementOf(vault.accountId(keeper, 0))


def _net_size(vault, market, book):
    """Sum of sizes over every account that ever traded in this module, and the fund: zero by construction."""
    ids = [book.a.id, book.b.id, book.s.id, book.h.id, vault.fundAccount()]
    return sum(vault.positionOf(i, market)[0] for i in ids)


# ------------------------------------------------------------------ the rule's pure functions
def liq_word(close=5000, penalty=100, share=3000, deep=5000, min_reward=5 * WAD, dust=100 * WAD) -> int:
    """A LIQUIDATION word (IRiskParameters layout); the defaults are the deployment's."""
    return close | penalty << 16 | share << 32 | deep << 48 | min_reward << 64 | dust << 160


PENALTY_CASES = [  # (taken, E', MM, MM', expected): min(ceil(1% x taken), max(E', 0), (MM - MM') / 2)
    (10_000 * WAD, 5_000 * WAD, 1_000 * WAD, 0, 100 * WAD),  # the rate binds
    (10_001, 5_000 * WAD, 1_000 * WAD, 0, 101),  # rounded up
    (10_000 * WAD, 40 * WAD, 1_000 * WAD, 0, 40 * WAD),  # the equity left binds
    (10_000 * WAD, 0, 1_000 * WAD, 0, 0),
    (10_000 * WAD, -5, 1_000 * WAD, 0, 0),  # no equity left: no penalty
    (10_000 * WAD, 5_000 * WAD, 150 * WAD, 0, 75 * WAD),  # half the freed margin binds
    (10_000 * WAD, 5_000 * WAD, 151, 0, 75),  # rounded down
    (10_000 * WAD, 5_000 * WAD, 1_000 * WAD, 1_000 * WAD, 0),  # nothing freed
    (10_000 * WAD, 5_000 * WAD, 1_000 * WAD, 1_001 * WAD, 0),  # the take raised MM
]


@pytest.mark.parametrize("taken,equity_after,mm_before,mm_after,expected", PENALTY_CASES)
def test_liquidation_penalty_function(protocol, taken, equity_after, mm_before, mm_after, expected):
    liq = liq_word()
    assert protocol.vault.liquidationPenalty(taken, equity_after, mm_before, mm_after, liq) == expected
    assert liquidation_penalty(taken, equity_after, mm_before, mm_after, liq) == expected


REWARD_CASES = [  # (penalty, taken, allowed, word, expected)
    (100 * WAD, 50, 100, liq_word(), 30 * WAD),  # 30% of the penalty
    (100 * WAD, 99, 100, liq_word(), 30 * WAD),  # a full take: the share is above the minimum
    (10 * WAD, 99, 100, liq_word(), 5 * WAD),  # a full take: raised to the minimum
    (10 * WAD, 9_900, 10_000, liq_word(), 5 * WAD),  # exactly 99%
    (10 * WAD, 9_899, 10_000, liq_word(), 3 * WAD),  # just below: the share only
    (2 * WAD, 100, 100, liq_word(), 2 * WAD),  # the minimum capped at the penalty
    (1, 100, 100, liq_word(), 1),
    (1, 50, 100, liq_word(), 0),  # 30% of 1 wei, rounded down
    (0, 100, 100, liq_word(), 0),
    (7 * WAD, 1, 10**30, liq_word(share=10_000, min_reward=1_000 * WAD), 7 * WAD),  # share 100%: the penalty
    (7 * WAD, 10**30, 10**30, liq_word(share=0, min_reward=1_000 * WAD), 7 * WAD),
    (7 * WAD, 10**30, 10**30, liq_word(share=0, min_reward=0), 0),
]


@pytest.mark.parametrize("penalty,taken,allowed,word,expected", REWARD_CASES)
def test_keeper_reward_function(protocol, penalty, taken, allowed, word, expected):
    assert protocol.vault.keeperReward(penalty, taken, allowed, word) == expected
    assert keeper_reward(penalty, taken, allowed, word) == expected


# ------------------------------------------------------------------ preconditions
def test_liquidate_healthy_account_reverts(protocol, long_btc, mirror, keeper, move_price):
    vault = protocol.vault
    move_price(BTC, 56_000)  # E 6,000 >= MM 5,600
    m = account_margin(*mirror(long_btc.id))
    assert (m.equity, m.maintenance) == (6_000 * WAD, 5_600 * WAD)
    assert_reverts(
        err("AccountHealthy", long_btc.id, m.equity, m.maintenance),
        vault.liquidate, long_btc.id, [(0, 0, WAD // 10)], {"from": keeper},
    )


def test_liquidate_fund_account_reverts(protocol, keeper):
    vault = protocol.vault
    assert_reverts(err("FundNotLiquidatable"), vault.liquidate, vault.fundAccount(), [], {"from": keeper})
    assert_reverts(err("FundNotLiquidatable"), vault.liquidate, vault.fundAccount(), [(0, 0, 1)], {"from": keeper})


def test_liquidate_empty_items_reverts(protocol, long_btc, keeper, move_price):
    move_price(BTC, 55_000)
    assert_reverts(err("LiquidationEmpty", long_btc.id), protocol.vault.liquidate, long_btc.id, [], {"from": keeper})


@pytest.mark.parametrize(
    "item",
    [
        (0, 0, WAD + 1),  # closing more than held
        (0, 0, 0),  # closing nothing
        (0, 1, WAD),  # a market not held
        (0, 20, WAD),  # a market that does not exist
        (1, 0, 1),  # collateral not held
        (3, 0, WAD),  # unknown kind (2 is an option series)
    ],
)
def test_liquidate_bad_item_reverts(protocol, long_btc, keeper, move_price, item):
    move_price(BTC, 55_000)
    assert_reverts(
        err("BadLiquidationItem", long_btc.id, *item), protocol.vault.liquidate, long_btc.id, [item], {"from": keeper}
    )


def test_liquidate_option_not_held_reverts(protocol, long_btc, keeper, move_price):
    """An option item (kind 2) for a series slot the account does not hold: the registry refuses it."""
    move_price(BTC, 55_000)
    assert_reverts(err("BadOptionItem", long_btc.id, 0, WAD), protocol.vault.liquidate, long_btc.id, [(2, 0, WAD)],
                   {"from": keeper})


def test_liquidate_seizing_more_collateral_than_held_reverts(protocol, weth_in_debt, keeper, move_price):
    move_price(ETH, 2_500)
    item = (1, 1, 10 * WAD + 1)
    assert_reverts(
        err("BadLiquidationItem", weth_in_debt.id, *item),
        protocol.vault.liquidate, weth_in_debt.id, [item], {"from": keeper},
    )


# ------------------------------------------------------------------ partial liquidation
def test_liquidate_partial_within_close_factor_improves(protocol, book, long_btc, mirror, keeper, move_price):
    vault, usdc = protocol.vault, protocol.usdc
    fund_id = vault.fundAccount()
    move_price(BTC, 55_432.1)  # E 5,432.1 < MM 5,543.21, not deep
    amount = 3 * WAD // 10 + 7  # odd size: the penalty must round up
    sim = simulate(protocol, mirror(long_btc.id), [(0, 0, amount)])
    assert sim.before.liquidatable and sim.taken <= sim.allowed
    assert (sim.taken * 100) % BPS != 0  # the penalty is not exact
    fund_before = vault.settlementOf(fund_id)
    keeper_wallet, keeper_credit = usdc.balanceOf(keeper), _keeper_credit(vault, keeper)
    oi_before = vault.openInterest(0)

    tx = vault.liquidate(long_btc.id, [(0, 0, amount)], {"from": keeper})

    ev = tx.events["Liquidated"]
    assert ev["account"] == long_btc.id and ev["keeper"] == keeper.address
    assert ev["taken"] == sim.taken
    assert ev["penalty"] == sim.penalty == sim.taken // 100 + 1
    assert ev["keeperReward"] == sim.reward == sim.penalty * 3_000 // 10_000  # USD 1e18, not rounded to USDC
    assert sim.reward % SCALE != 0
    assert ev["surplusBefore"] == sim.surplus_before
    assert ev["surplusAfter"] == sim.surplus_after
    assert ev["surplusBefore"] < ev["surplusAfter"]
    # the account is now exactly the mirror's after-state
    state = mirror(long_btc.id)[0]
    assert state.settlement == sim.state.settlement
    assert state.positions == sim.state.positions
    assert tuple(vault.margin(long_btc.id)) == (sim.after.equity, sim.after.maintenance, sim.after.initial)
    # the closed part now sits with the fund, at the oracle price
    price = 55_432_1 * WAD // 10
    assert tuple(vault.positionOf(fund_id, 0)) == (amount, -(-amount * price // WAD))
    assert _net_size(vault, 0, book) == 0
    assert vault.openInterest(0) == oi_before
    # the penalty (the rate: neither E' nor half the freed margin binds) to the fund, the reward out of it
    assert sim.penalty < min(sim.taken_equity, sim.freed)
    assert _keeper_credit(vault, keeper) - keeper_credit == sim.reward
    assert usdc.balanceOf(keeper) == keeper_wallet  # a credit, not a transfer
    assert vault.settlementOf(fund_id) - fund_before == sim.penalty - sim.reward
    updates = [(e["account"], e["balance"]) for e in tx.events["SettlementUpdated"]]
    assert (vault.accountId(keeper, 0), keeper_credit + sim.reward) in updates


def test_liquidate_small_take_pays_share_of_penalty_only(protocol, long_btc, mirror, keeper, move_price):
    """A small slice earns its share of its own penalty, not the minimum reward (that needs a take of 99% of
    maxTake), so slicing cannot farm minimum rewards."""
    vault = protocol.vault
    fund_id = vault.fundAccount()
    move_price(BTC, 55_000)
    amount = WAD // 100  # 550 USD: penalty 5.5, 30% = 1.65 < the 5 USD minimum
    sim = simulate(protocol, mirror(long_btc.id), [(0, 0, amount)])
    assert sim.penalty == 55 * WAD // 10
    assert sim.taken * BPS < sim.allowed * 9_900
    keeper_credit, fund_before = _keeper_credit(vault, keeper), vault.settlementOf(fund_id)
    tx = vault.liquidate(long_btc.id, [(0, 0, amount)], {"from": keeper})
    assert tx.events["Liquidated"]["keeperReward"] == sim.reward == 165 * WAD // 100
    assert tx.return_value == sim.reward
    assert _keeper_credit(vault, keeper) - keeper_credit == 165 * WAD // 100
    assert vault.settlementOf(fund_id) - fund_before == sim.penalty - sim.reward == 385 * WAD // 100


def test_liquidate_min_keeper_reward_only_for_a_take_of_99_percent_of_max_take(protocol, long_btc, mirror, keeper,
                                                                             deployer, move_price):
    """With a minimum reward of 1,000 USD (above any share here), the smallest take reaching 99% of maxTake earns
    min(1,000, penalty) = the whole penalty; one wei of size less earns 30% of its penalty."""
    vault, p = protocol.vault, protocol.params
    lq = FIXTURE_SPEC.liquidation
    p.setLiquidation(lq.close_factor_bps, lq.penalty_bps, lq.keeper_share_bps, lq.deep_bps, 1_000 * WAD, lq.dust,
                     {"from": deployer})  # no loosening delay in the local deployment: applies at once
    move_price(BTC, 55_000)
    snap = mirror(long_btc.id)
    allowed = simulate(protocol, snap, []).allowed
    price = 55_000 * WAD
    full = -(-allowed * 9_900 * WAD // (BPS * price))  # the least size whose notional is 99% of maxTake
    assert (full * price // WAD) * BPS >= allowed * 9_900 > ((full - 1) * price // WAD) * BPS
    at = simulate(protocol, snap, [(0, 0, full)])
    below = simulate(protocol, snap, [(0, 0, full - 1)])
    assert at.reward == at.penalty < 1_000 * WAD  # the minimum, capped at the penalty
    assert below.reward == below.penalty * 3_000 // BPS < below.penalty
    assert vault.liquidate.call(long_btc.id, [(0, 0, full - 1)], {"from": keeper}) == below.reward
    fund_id = vault.fundAccount()
    fund_before = vault.settlementOf(fund_id)
    tx = vault.liquidate(long_btc.id, [(0, 0, full)], {"from": keeper})
    ev = tx.events["Liquidated"]
    assert (ev["taken"], ev["penalty"], ev["keeperReward"]) == (at.taken, at.penalty, at.reward)
    assert vault.settlementOf(fund_id) == fund_before  # the keeper took the whole penalty, the fund nothing


def test_liquidate_keeper_reward_withdrawable(protocol, long_btc, mirror, keeper, move_price):
    vault, usdc = protocol.vault, protocol.usdc
    move_price(BTC, 55_000)
    sim = simulate(protocol, mirror(long_btc.id), [(0, 0, WAD // 5)])  # 11,000 taken: penalty 110, reward 33
    vault.liquidate(long_btc.id, [(0, 0, WAD // 5)], {"from": keeper})
    assert sim.reward == 33 * WAD
    keeper_account = vault.accountId(keeper, 0)
    before = usdc.balanceOf(keeper)
    vault.withdraw(keeper_account, usdc, 33 * USDC, keeper, {"from": keeper})
    assert usdc.balanceOf(keeper) - before == 33 * USDC
    assert vault.settlementOf(keeper_account) == 0


def test_liquidate_reward_paid_out_of_penalty_with_empty_fund(protocol, long_btc, mirror, keeper, deployer,
                                                             move_price):
    """The fund drained to 0: the reward comes out of the penalty, so the fund's balance rises, never falls."""
    vault, usdc = protocol.vault, protocol.usdc
    fund_id = vault.fundAccount()
    vault.withdraw(fund_id, usdc, vault.settlementOf(fund_id) // SCALE, deployer, {"from": deployer})
    assert vault.settlementOf(fund_id) == 0
    move_price(BTC, 55_000)
    items = [(0, 0, WAD // 1000)]  # 55 USD taken: penalty 0.55
    sim = simulate(protocol, mirror(long_btc.id), items)
    assert sim.penalty == 55 * WAD // 100 and sim.reward == 165 * WAD // 1000

    tx = vault.liquidate(long_btc.id, items, {"from": keeper})

    assert tx.events["Liquidated"]["keeperReward"] == 165 * WAD // 1000
    assert _keeper_credit(vault, keeper) == 165 * WAD // 1000
    assert vault.settlementOf(fund_id) == 385 * WAD // 1000


def test_liquidate_own_account_credits_reward_to_it(protocol, long_btc, mirror, deployer, move_price):
    vault = protocol.vault
    deployer.transfer(long_btc.wallet, WAD // 10)
    move_price(BTC, 55_000)
    items = [(0, 0, WAD // 5)]
    sim = simulate(protocol, mirror(long_btc.id), items)
    tx = vault.liquidate(long_btc.id, items, {"from": long_btc.wallet})
    assert tx.events["Liquidated"]["keeper"] == long_btc.wallet.address
    assert tx.events["Liquidated"]["keeperReward"] == sim.reward == 33 * WAD
    assert vault.settlementOf(long_btc.id) == sim.state.settlement + sim.reward


def test_liquidate_over_allowed_reverts(protocol, long_btc, mirror, keeper, move_price):
    vault = protocol.vault
    move_price(BTC, 55_432.1)
    snap = mirror(long_btc.id)
    m = account_margin(*snap)
    liq = int(protocol.params.liquidationConfig()[0])
    allowed = max_take(m.equity, m.maintenance, m.initial, m.gross_total, liq)
    assert allowed < m.gross_total * 5000 // BPS  # `needed` binds, not the close factor
    assert allowed == vault.maxTake(m.equity, m.maintenance, m.initial, m.gross_total, liq)
    price = 55_432_1 * WAD // 10
    largest = ((allowed + 1) * WAD - 1) // price  # the largest size whose notional is within `allowed`
    too_large = largest + 1
    assert_reverts(
        err("LiquidationTooLarge", long_btc.id, too_large * price // WAD, allowed),
        vault.liquidate, long_btc.id, [(0, 0, too_large)], {"from": keeper},
    )
    half = WAD // 2  # the close factor alone would allow this
    assert_reverts(
        err("LiquidationTooLarge", long_btc.id, half * price // WAD, allowed),
        vault.liquidate, long_btc.id, [(0, 0, half)], {"from": keeper},
    )
    # exactly at the limit is allowed
    sim = simulate(protocol, snap, [(0, 0, largest)])
    tx = vault.liquidate(long_btc.id, [(0, 0, largest)], {"from": keeper})
    assert tx.events["Liquidated"]["taken"] == sim.taken <= allowed
    assert tx.events["Liquidated"]["surplusAfter"] == sim.surplus_after


def test_liquidate_closing_hedge_not_improving_reverts(protocol, hedged, mirror, keeper, move_price):
    vault = protocol.vault
    move_price(BTC, 36_000)  # E 3,000 < MM 3,900, not deep
    items = [(0, 1, 5 * WAD)]  # close half of the short ETH perp that hedges the WETH
    sim = simulate(protocol, mirror(hedged.id), items)
    assert sim.before.liquidatable
    assert sim.before.equity * BPS >= sim.before.maintenance * 5000  # not deep
    assert sim.taken <= sim.allowed  # within the size rule: only the improvement rule fails
    assert sim.after.maintenance > sim.before.maintenance and sim.penalty == 0  # nothing freed: no penalty
    assert sim.surplus_after < sim.surplus_before
    assert_reverts(
        err("LiquidationNotImproving", hedged.id, sim.surplus_before, sim.surplus_after),
        vault.liquidate, hedged.id, items, {"from": keeper},
    )
    # closing the BTC long instead does improve
    ok = simulate(protocol, mirror(hedged.id), [(0, 0, WAD // 2)])
    tx = vault.liquidate(hedged.id, [(0, 0, WAD // 2)], {"from": keeper})
    assert tx.events["Liquidated"]["surplusAfter"] == ok.surplus_after > ok.surplus_before


def test_liquidate_beyond_close_factor_reverts(protocol, hedged, mirror, keeper, move_price):
    vault = protocol.vault
    move_price(BTC, 36_000)
    m = account_margin(*mirror(hedged.id))
    liq = int(protocol.params.liquidationConfig()[0])
    gross = m.gross_total  # 36,000 BTC + 30,000 WETH + 30,000 short ETH
    assert gross == 96_000 * WAD
    allowed = max_take(m.equity, m.maintenance, m.initial, gross, liq)
    needed = -(-gross * BPS * (m.initial - m.equity) // (m.initial * BPS - 100 * gross))
    assert allowed == gross // 2 < needed  # here the close factor binds
    items = [(0, 0, WAD), (0, 1, 4 * WAD)]  # 36,000 + 12,000 = exactly the close factor
    over = [(0, 0, WAD), (0, 1, 4 * WAD + 1)]
    assert_reverts(
        err("LiquidationTooLarge", hedged.id, 48_000 * WAD + 3_000, allowed),
        vault.liquidate, hedged.id, over, {"from": keeper},
    )
    sim = simulate(protocol, mirror(hedged.id), items)
    tx = vault.liquidate(hedged.id, items, {"from": keeper})
    assert tx.events["Liquidated"]["taken"] == sim.taken == allowed
    assert tx.events["Liquidated"]["surplusAfter"] == sim.surplus_after


# ------------------------------------------------------------------ full closure
def test_liquidate_deep_underwater_closes_all(protocol, book, long_btc, mirror, keeper, move_price):
    vault = protocol.vault
    fund_id = vault.fundAccount()
    move_price(BTC, 52_000)  # E 2,000 < 50% of MM 5,200
    sim = simulate(protocol, mirror(long_btc.id), [(0, 0, WAD)])
    assert sim.allowed == sim.before.gross_total == sim.taken == 52_000 * WAD

    tx = vault.liquidate(long_btc.id, [(0, 0, WAD)], {"from": keeper})

    assert tx.events["Liquidated"]["taken"] == 52_000 * WAD
    assert tx.events["Liquidated"]["penalty"] == 520 * WAD
    assert tx.events["Liquidated"]["surplusAfter"] == sim.surplus_after == 1_480 * WAD
    assert tuple(vault.masksOf(long_btc.id)) == (0, 0)
    assert vault.settlementOf(long_btc.id) == 1_480 * WAD  # 10,000 - 8,000 realised - 520 penalty
    assert "BadDebtWrittenOff" not in tx.events
    assert tuple(vault.positionOf(fund_id, 0)) == (WAD, 52_000 * WAD)
    assert _net_size(vault, 0, book) == 0


def test_liquidate_not_deep_full_close_reverts(protocol, long_btc, mirror, keeper, move_price):
    move_price(BTC, 55_000)  # E 5,000 >= 50% of MM 5,500: partial only
    sim = simulate(protocol, mirror(long_btc.id), [(0, 0, WAD)])
    assert sim.allowed < sim.taken
    assert_reverts(
        err("LiquidationTooLarge", long_btc.id, sim.taken, sim.allowed),
        protocol.vault.liquidate, long_btc.id, [(0, 0, WAD)], {"from": keeper},
    )


def test_liquidate_dust_remainder_closes_all(protocol, make_trader, fund, counterparty, test_venue, mirror, keeper,
                                            move_price):
    vault = protocol.vault
    d = make_trader()
    fund(d.id, protocol.usdc, 30 * USDC)
    size = 3 * WAD // 1000  # 0.003 BTC = 180 USD, IM 27
    test_venue.trade(d.id, counterparty.id, 0, size, 60_000 * WAD, 0)
    move_price(BTC, 55_000)  # E 15 < MM 16.5, not deep
    snap = mirror(d.id)
    sim = simulate(protocol, snap, [(0, 0, size)])
    m = sim.before
    assert m.liquidatable and m.equity * BPS >= m.maintenance * 5000
    # without the dust rule the limit would be well below the whole position
    liq_no_dust = sim.liq & ((1 << 160) - 1)
    assert max_take(m.equity, m.maintenance, m.initial, m.gross_total, liq_no_dust) < m.gross_total - 80 * WAD
    assert sim.allowed == m.gross_total == sim.taken

    tx = vault.liquidate(d.id, [(0, 0, size)], {"from": keeper})

    assert tx.events["Liquidated"]["taken"] == sim.taken
    # a full take: the minimum reward (5 USD), capped at the 1.65 USD penalty the call collects
    assert tx.events["Liquidated"]["penalty"] == sim.penalty == 165 * WAD // 100
    assert tx.events["Liquidated"]["keeperReward"] == sim.reward == sim.penalty
    assert tuple(vault.masksOf(d.id)) == (0, 0)
    assert vault.settlementOf(d.id) == sim.state.settlement > 0


# ------------------------------------------------------------------ collateral seizure
def test_liquidate_seizes_collateral_at_discount(protocol, weth_in_debt, mirror, keeper, move_price):
    vault = protocol.vault
    fund_id = vault.fundAccount()
    move_price(ETH, 2_500.37)  # WETH ~25,004 (credit ~22,503) vs -20,000: E ~2,503 < MM ~3,750, not deep
    amount = 4 * WAD + 123_456_789  # odd amount and price: value and credit round down
    sim = simulate(protocol, mirror(weth_in_debt.id), [(1, 1, amount)])
    value = amount * 250_037 * 10**16 // WAD
    credit = value * 9_500 // 10_000
    assert sim.taken == value and value * 9_500 % 10_000 != 0
    assert sim.before.liquidatable and sim.taken <= sim.allowed
    fund_settlement = vault.settlementOf(fund_id)
    fund_weth = vault.collateralOf(fund_id, 1)
    keeper_credit = _keeper_credit(vault, keeper)

    tx = vault.liquidate(weth_in_debt.id, [(1, 1, amount)], {"from": keeper})

    ev = tx.events["Liquidated"]
    assert (ev["taken"], ev["penalty"], ev["keeperReward"]) == (value, sim.penalty, sim.reward)
    assert (ev["surplusBefore"], ev["surplusAfter"]) == (sim.surplus_before, sim.surplus_after)
    assert ev["surplusBefore"] < ev["surplusAfter"]
    assert vault.settlementOf(weth_in_debt.id) == -20_000 * WAD + credit - sim.penalty
    assert vault.collateralOf(weth_in_debt.id, 1) == 10 * WAD - amount
    assert vault.collateralOf(fund_id, 1) - fund_weth == amount
    assert vault.settlementOf(fund_id) - fund_settlement == -credit + sim.penalty - sim.reward
    assert _keeper_credit(vault, keeper) - keeper_credit == sim.reward
    assert tuple(vault.margin(weth_in_debt.id)) == (sim.after.equity, sim.after.maintenance, sim.after.initial)
    updates = {(e["account"], e["balance"]) for e in tx.events["CollateralUpdated"]}
    assert updates == {(weth_in_debt.id, 10 * WAD - amount), (fund_id, fund_weth + amount)}


def test_liquidate_position_and_collateral_sum_taken(protocol, make_trader, fund, counterparty, test_venue, mirror,
                                                    keeper, move_price):
    vault = protocol.vault
    t = make_trader()
    fund(t.id, protocol.tokens[1], 10 * WAD)
    test_venue.trade(t.id, counterparty.id, 0, WAD, 60_000 * WAD, 0)
    move_price(BTC, 40_000)  # E 7,000 < MM 7,600
    items = [(0, 0, WAD // 5), (1, 1, 2 * WAD)]
    sim = simulate(protocol, mirror(t.id), items)
    assert sim.taken == 8_000 * WAD + 6_000 * WAD <= sim.allowed
    tx = vault.liquidate(t.id, items, {"from": keeper})
    ev = tx.events["Liquidated"]
    assert (ev["taken"], ev["penalty"]) == (sim.taken, 140 * WAD)
    assert (ev["surplusBefore"], ev["surplusAfter"]) == (sim.surplus_before, sim.surplus_after)
    assert tuple(vault.margin(t.id)) == (sim.after.equity, sim.after.maintenance, sim.after.initial)


# ------------------------------------------------------------------ bad debt
def test_liquidate_bad_debt_covered_by_fund(protocol, long_btc, mirror, keeper, move_price):
    """E = -2,000: maxTake is everything, and no penalty can be charged (no equity left), so the keeper earns
    nothing; the 2,000 of debt is written off in the same call and the fund covers it."""
    vault = protocol.vault
    fund_id = vault.fundAccount()
    move_price(BTC, 48_000)  # E = -2,000
    sim = simulate(protocol, mirror(long_btc.id), [(0, 0, WAD)])
    assert sim.allowed == sim.taken == 48_000 * WAD
    assert (sim.penalty, sim.reward) == (0, 0)
    assert sim.state.settlement == -2_000 * WAD  # 10,000 - 12,000 realised
    fund_before, keeper_credit = vault.settlementOf(fund_id), _keeper_credit(vault, keeper)
    index_before = tuple(vault.settlementIndex())

    tx = vault.liquidate(long_btc.id, [(0, 0, WAD)], {"from": keeper})

    assert tx.return_value == 0
    ev = tx.events["Liquidated"]
    assert (ev["taken"], ev["penalty"], ev["keeperReward"]) == (48_000 * WAD, 0, 0)
    assert dict(tx.events["BadDebtWrittenOff"]) == {
        "account": long_btc.id, "debt": 2_000 * WAD, "coveredByFund": 2_000 * WAD, "deleveraged": 0, "socialised": 0,
    }
    assert "SettlementIndexUpdated" not in tx.events
    assert vault.settlementOf(long_btc.id) == 0
    assert tuple(vault.masksOf(long_btc.id)) == (0, 0)
    assert vault.badDebt() == 0
    assert vault.settlementOf(fund_id) - fund_before == -2_000 * WAD
    assert _keeper_credit(vault, keeper) == keeper_credit
    assert tuple(vault.margin(long_btc.id)) == (0, 0, 0)
    # the shares of the liquidated account's former claim left the pool; the index did not move
    assert tuple(vault.settlementIndex())[0] == index_before[0] == WAD


def test_liquidate_seizing_last_collateral_writes_off(protocol, weth_in_debt, mirror, keeper, move_price):
    vault = protocol.vault
    fund_id = vault.fundAccount()
    move_price(ETH, 2_000)  # 10 WETH = 20,000 (credit 18,000) vs -20,000: E = -2,000, deep
    sim = simulate(protocol, mirror(weth_in_debt.id), [(1, 1, 10 * WAD)])
    assert sim.allowed == sim.taken == 20_000 * WAD
    assert (sim.penalty, sim.reward) == (0, 0)  # E' = -1,000: no penalty
    debt = -sim.state.settlement
    assert debt == 20_000 * WAD - 19_000 * WAD
    fund_before = vault.settlementOf(fund_id)

    tx = vault.liquidate(weth_in_debt.id, [(1, 1, 10 * WAD)], {"from": keeper})

    ev = tx.events["BadDebtWrittenOff"]
    assert (ev["debt"], ev["coveredByFund"], ev["socialised"]) == (debt, debt, 0)
    assert (tx.events["Liquidated"]["penalty"], tx.events["Liquidated"]["keeperReward"]) == (0, 0)
    assert vault.settlementOf(weth_in_debt.id) == 0
    assert vault.collateralOf(fund_id, 1) == 10 * WAD
    assert vault.settlementOf(fund_id) - fund_before == -19_000 * WAD - debt


def test_liquidate_flat_debtor_cannot_be_left_by_a_trade_and_is_written_off_in_one_call(
        protocol, long_btc, counterparty, test_venue, keeper, deployer, move_price):
    """Closing a bankrupt position by an ordinary trade at the oracle price would leave a flat account in debt: the
    trade rule refuses it (E < 0). One liquidation of everything closes it and writes the debt off at once; nothing
    is left to liquidate afterwards."""
    vault = protocol.vault
    fund_id = vault.fundAccount()
    move_price(BTC, 48_000)
    assert_reverts(err("InsufficientMargin", long_btc.id, -2_000 * WAD, 0),
                   test_venue.trade, counterparty.id, long_btc.id, 0, WAD, 48_000 * WAD, 0, {"from": deployer})
    fund_before = vault.settlementOf(fund_id)

    tx = vault.liquidate(long_btc.id, [(0, 0, WAD)], {"from": keeper})

    assert tx.events["Liquidated"]["surplusBefore"] == -2_000 * WAD - 4_800 * WAD
    assert tx.events["Liquidated"]["surplusAfter"] == -2_000 * WAD
    assert tx.events["BadDebtWrittenOff"]["debt"] == 2_000 * WAD
    assert vault.settlementOf(fund_id) - fund_before == -2_000 * WAD
    assert_reverts(
        err("AccountHealthy", long_btc.id, 0, 0), vault.liquidate, long_btc.id, [], {"from": keeper}
    )


@pytest.fixture
def socialised(protocol, book, long_btc, make_trader, fund, deployer, keeper, move_price):
    """Deleveraging off. Two holders deposit 50,000 USDC each; the fund is drained by its operator; then a bankrupt
    account (E = -2,000) is closed in one call: no penalty (no equity left), no fund cover, and the 2,000 of debt is socialised over every
    positive settlement balance by lowering the index. Returns the transaction, the holders, the pool's shares at
    the write-off and the index before and after."""
    vault, usdc = protocol.vault, protocol.usdc
    protocol.params.setFunding(*NO_ADL.as_args(), {"from": deployer})
    fund_id = vault.fundAccount()
    holders = []
    for _ in range(2):
        t = make_trader()
        deployer.transfer(t.wallet, WAD // 10)
        fund(t.id, usdc, 50_000 * USDC)
        holders.append(t)
    vault.withdraw(fund_id, usdc, vault.settlementOf(fund_id) // SCALE, deployer, {"from": deployer})
    assert vault.settlementOf(fund_id) == 0
    move_price(BTC, 48_000)
    index0, shares0 = vault.settlementIndex()
    assert index0 == WAD
    shares = shares0 - vault.storedSettlementOf(long_btc.id)  # the bankrupt account's claim leaves the pool first
    loss = 2_000 * WAD
    index1 = index0 * (shares - loss) // shares  # claims = shares at index 1
    tx = vault.liquidate(long_btc.id, [(0, 0, WAD)], {"from": keeper})
    return SimpleNamespace(tx=tx, holders=holders, shares=shares, index0=index0, index1=index1, loss=loss)


def test_liquidate_bad_debt_beyond_fund_socialised_through_index(protocol, socialised, book, long_btc, keeper):
    vault, tx = protocol.vault, socialised.tx
    assert dict(tx.events["BadDebtWrittenOff"]) == {
        "account": long_btc.id, "debt": 2_000 * WAD, "coveredByFund": 0, "deleveraged": 0, "socialised": 2_000 * WAD,
    }
    assert (tx.events["Liquidated"]["penalty"], tx.events["Liquidated"]["keeperReward"]) == (0, 0)
    lost = socialised.shares - usd_of_shares(socialised.shares, socialised.index1)  # rounded against the holders
    assert 2_000 * WAD <= lost < 2_000 * WAD + WAD // 10**6
    assert dict(tx.events["SettlementIndexUpdated"]) == {
        "index": socialised.index1, "totalShares": socialised.shares, "socialised": lost,
    }
    assert tuple(vault.settlementIndex()) == (socialised.index1, socialised.shares)
    assert vault.badDebt() == 0  # the claims covered all of it
    assert vault.settlementOf(vault.fundAccount()) == 0
    assert vault.settlementOf(long_btc.id) == 0
    # every claim at that moment lost the same fraction: stored shares unchanged, USD value at the new index
    for t in [book.b] + socialised.holders:
        stored = vault.storedSettlementOf(t.id)
        assert vault.settlementOf(t.id) == usd_of_shares(stored, socialised.index1)
    assert vault.storedSettlementOf(socialised.holders[0].id) == 50_000 * WAD
    assert vault.settlementOf(socialised.holders[0].id) == 50_000 * socialised.index1


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_withdraw_settlement_pays_in_full_after_socialised_loss(protocol, socialised, order):
    """Both holders bore the same fraction at the write-off; each withdraws all it has, in either order, and is paid
    exactly what it asked (no haircut at withdrawal time); the index does not move."""
    vault, usdc = protocol.vault, protocol.usdc
    value = 50_000 * socialised.index1  # USD of 50,000e18 shares
    assert value < 50_000 * WAD
    for i in order:
        t = socialised.holders[i]
        amount = value // SCALE
        tx = vault.withdraw(t.id, usdc, amount, t.wallet, {"from": t.wallet})
        assert tx.return_value == amount
        assert usdc.balanceOf(t.wallet) == amount
        assert "BadDebtReduced" not in tx.events
        left = value - amount * SCALE
        assert vault.storedSettlementOf(t.id) == shares_stored(left, socialised.index1, 50_000 * WAD)
        assert vault.settlementOf(t.id) == usd_of_shares(vault.storedSettlementOf(t.id), socialised.index1)
        assert tuple(vault.settlementIndex())[0] == socialised.index1
    assert usdc.balanceOf(socialised.holders[0].wallet) == usdc.balanceOf(socialised.holders[1].wallet)


def test_deposit_after_socialised_loss_is_not_haircut(protocol, socialised, make_trader, fund, deployer):
    """A claim created after the write-off buys shares at the new index: it is worth its deposit (rounded down to
    the wei) and is withdrawn in full."""
    vault, usdc = protocol.vault, protocol.usdc
    t = make_trader()
    deployer.transfer(t.wallet, WAD // 10)
    fund(t.id, usdc, 10_000 * USDC)
    shares = 10_000 * WAD * WAD // socialised.index1
    assert vault.storedSettlementOf(t.id) == shares
    value = usd_of_shares(shares, socialised.index1)
    assert vault.settlementOf(t.id) == value and 10_000 * WAD - 1 <= value <= 10_000 * WAD
    amount = value // SCALE
    tx = vault.withdraw(t.id, usdc, amount, t.wallet, {"from": t.wallet})
    assert tx.return_value == amount == usdc.balanceOf(t.wallet)
    assert amount >= 10_000 * USDC - 1  # at most one token unit of rounding


def test_withdraw_collateral_unaffected_by_bad_debt(protocol, socialised, make_trader, fund, deployer):
    vault, weth = protocol.vault, protocol.tokens[1]
    t = make_trader()
    deployer.transfer(t.wallet, WAD // 10)
    fund(t.id, weth, 3 * WAD)
    tx = vault.withdraw(t.id, weth, 3 * WAD, t.wallet, {"from": t.wallet})
    assert tx.return_value == 3 * WAD
    assert weth.balanceOf(t.wallet) == 3 * WAD
    assert vault.badDebt() == 0
    assert tuple(vault.settlementIndex()) == (socialised.index1, socialised.shares)


@pytest.fixture
def beyond_every_claim(deployer, keeper):
    """A fresh deployment (deleveraging off) with an empty fund and one claim: `h` holds 1,000 USDC. `t`, long 1 BTC on 10,000 USDC
    against `c` (who holds WBTC and no settlement balance), is liquidated at 40,000: a debt of 10,000 against 1,000 of
    claims. The loss takes every claim: the pool restarts (index 1e18, no shares) and what the claims could not absorb
    is recorded in badDebt."""
    w = deploy_local(deployer, FIXTURE_SPEC.model_copy(update={"funding": NO_ADL}), seed_fund=False)
    venue = TestVenue.deploy(w.vault, {"from": deployer})
    w.vault.setVenue(venue, True, {"from": deployer})

    def deposit(account, token, amount):
        token.mint(deployer, amount, {"from": deployer})
        token.approve(w.vault, amount, {"from": deployer})
        w.vault.deposit(account, token, amount, {"from": deployer})

    t, c, h = Trader(w.vault), Trader(w.vault), Trader(w.vault)
    deposit(t.id, w.usdc, 10_000 * USDC)
    deposit(c.id, w.tokens[0], 2 * 10**8)
    deposit(h.id, w.usdc, 1_000 * USDC)
    venue.trade(t.id, c.id, 0, WAD, 60_000 * WAD, 0, {"from": deployer})
    set_price(w.feeds[BTC], 40_000, deployer)
    assert w.vault.margin(t.id)[0] == -10_000 * WAD
    tx = w.vault.liquidate(t.id, [(0, 0, WAD)], {"from": keeper})
    return SimpleNamespace(w=w, tx=tx, h=h, c=c, venue=venue)


def test_bad_debt_beyond_every_claim_recorded(beyond_every_claim):
    b = beyond_every_claim
    vault, tx = b.w.vault, b.tx
    assert dict(tx.events["BadDebtWrittenOff"]) == {
        "account": tx.events["Liquidated"]["account"], "debt": 10_000 * WAD, "coveredByFund": 0, "deleveraged": 0,
        "socialised": 10_000 * WAD,
    }
    assert dict(tx.events["SettlementIndexUpdated"]) == {"index": WAD, "totalShares": 0, "socialised": 1_000 * WAD}
    assert tuple(vault.settlementIndex()) == (WAD, 0)
    assert vault.settlementOf(b.h.id) == 0 == vault.storedSettlementOf(b.h.id)  # the claim is void
    assert vault.badDebt() == 9_000 * WAD
    accounts[0].transfer(b.h.wallet, "1 ether")
    assert_reverts(err("InsufficientBalance", b.h.id, b.w.usdc, 0, 1), vault.withdraw, b.h.id, b.w.usdc, 1,
                   b.h.wallet, {"from": b.h.wallet})


def test_write_off_after_restart_is_socialised(beyond_every_claim, deployer, keeper):
    """R4: a write-off beyond the fund lowers the index over every claim at that moment; badDebt only keeps what
    exceeds every claim. After the loss above restarted the pool, a holder deposits 100,000 USDC and
    a second account goes bankrupt by 2,000 (the fund has nothing to cover it): 100,000 of claims cover the 2,000, so
    the index must fall by about 2% and badDebt must not grow."""
    b = beyond_every_claim
    w, vault = b.w, b.w.vault
    debt0 = vault.badDebt()
    h2, t2 = Trader(vault), Trader(vault)
    for account, amount in ((h2.id, 100_000 * USDC), (t2.id, 10_000 * USDC)):
        w.usdc.mint(deployer, amount, {"from": deployer})
        w.usdc.approve(vault, amount, {"from": deployer})
        vault.deposit(account, w.usdc, amount, {"from": deployer})
    c = b.c
    w.tokens[0].mint(deployer, 2 * 10**8, {"from": deployer})  # more WBTC for the counterparty's second short
    w.tokens[0].approve(vault, 2 * 10**8, {"from": deployer})
    vault.deposit(c.id, w.tokens[0], 2 * 10**8, {"from": deployer})
    b.venue.trade(t2.id, c.id, 0, WAD, 40_000 * WAD, 0, {"from": deployer})
    set_price(w.feeds[BTC], 28_000, deployer)
    assert vault.margin(t2.id)[0] == -2_000 * WAD
    assert vault.settlementOf(vault.fundAccount()) <= 0  # no cover
    index0, shares0 = vault.settlementIndex()
    claims = usd_of_shares(shares0 - vault.storedSettlementOf(t2.id), index0)
    assert claims >= 100_000 * WAD - 1

    tx = vault.liquidate(t2.id, [(0, 0, WAD)], {"from": keeper})

    assert tx.events["BadDebtWrittenOff"]["socialised"] == 2_000 * WAD
    assert vault.badDebt() == debt0  # the claims absorb all of it
    index1, _ = vault.settlementIndex()
    assert index1 == index0 * (claims - 2_000 * WAD) // claims
    assert vault.settlementOf(h2.id) < 98_001 * WAD
    assert vault.settlementOf(b.h.id) == 0  # the claim voided by the restart stays void


def test_resolve_bad_debt_reduces_then_tops_up_fund(beyond_every_claim):
    b = beyond_every_claim
    vault, usdc = b.w.vault, b.w.usdc
    fund_id = vault.fundAccount()
    debt = vault.badDebt()
    assert debt == 9_000 * WAD
    payer = accounts[5]
    usdc.mint(payer, 10_000 * USDC, {"from": payer})
    usdc.approve(vault, 10_000 * USDC, {"from": payer})

    tx = vault.resolveBadDebt(5_000 * USDC, {"from": payer})
    assert dict(tx.events["BadDebtReduced"]) == {"amount": 5_000 * WAD, "remaining": debt - 5_000 * WAD}
    assert vault.badDebt() == debt - 5_000 * WAD
    assert vault.settlementOf(fund_id) == 0

    tx = vault.resolveBadDebt(5_000 * USDC, {"from": payer})
    assert dict(tx.events["BadDebtReduced"]) == {"amount": debt - 5_000 * WAD, "remaining": 0}
    assert vault.badDebt() == 0
    excess = 10_000 * WAD - debt  # tops up the fund, as shares at the restarted index 1e18
    assert vault.storedSettlementOf(fund_id) == excess
    assert vault.settlementOf(fund_id) == excess
    assert usdc.balanceOf(payer) == 0


def test_resolve_bad_debt_without_debt_tops_up_fund(protocol, deployer):
    vault, usdc = protocol.vault, protocol.usdc
    fund_id = vault.fundAccount()
    before = vault.settlementOf(fund_id)
    usdc.mint(deployer, 500 * USDC, {"from": deployer})
    usdc.approve(vault, 500 * USDC, {"from": deployer})
    vault.resolveBadDebt(500 * USDC, {"from": deployer})
    assert vault.badDebt() == 0
    assert vault.settlementOf(fund_id) - before == 500 * WAD


# ------------------------------------------------------------------ pauses
def test_liquidate_while_trades_and_deposits_paused_succeeds(protocol, long_btc, mirror, keeper, deployer,
                                                             move_price):
    vault = protocol.vault
    move_price(BTC, 55_000)
    protocol.params.setPause(3, {"from": deployer})
    items = [(0, 0, WAD // 4)]
    sim = simulate(protocol, mirror(long_btc.id), items)
    tx = vault.liquidate(long_btc.id, items, {"from": keeper})
    assert tx.events["Liquidated"]["taken"] == sim.taken == 13_750 * WAD
    assert vault.positionOf(long_btc.id, 0)[0] == 3 * WAD // 4
    assert vault.positionOf(vault.fundAccount(), 0)[0] == WAD // 4
