"""Integration tests for CrossMarginVault.liquidate, the bad-debt waterfall, socialised settlement withdrawals and
resolveBadDebt. Expected values come from the Python mirror (offchain.risk.margin) applied to the chain state.

Default parameters: penalty 1%, keeper share 30%, close factor 50%, deep 50%, min keeper reward 5 USD, dust 100 USD;
the keeper reward is credited (USD 1e18) to the caller's subaccount 0 from the fund's settlement balance;
BTC risk weight 10%, alpha 1.5 (a lone BTC position of value V has MM = 0.1 V, IM = 0.15 V); WETH haircut 10%,
discount 5%.
"""
import copy
from types import SimpleNamespace

import brownie
import pytest
from brownie import accounts, web3

from offchain.risk.margin import BPS, account_margin, max_take, u16
from scripts.deploy import set_price
from tests.conftest import Trader, err, assert_reverts

WAD = 10**18
USDC = 10**6
SCALE = 10**12
BTC, ETH = 0, 1  # asset, market and collateral ids coincide in the local deployment


def _tdiv(a: int, b: int) -> int:
    """Solidity signed division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def simulate(protocol, snapshot, items, fund_balance=None):
    """What `liquidate(account, items)` should do, from the mirror state (the rule in ICrossMarginVault).
    `fund_balance`: the fund's settlement balance before the call (default: the chain's)."""
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
    penalty = -(-taken * u16(liq, 1) // BPS)  # rounded up
    st.settlement -= penalty
    after = account_margin(st, layout, prices, cfg)
    if fund_balance is None:
        fund_balance = protocol.vault.settlementOf(protocol.vault.fundAccount())
    # max(keeperShare * penalty, minKeeperReward), at most what the fund holds after receiving the penalty
    reward = min(max(penalty * u16(liq, 2) // BPS, (liq >> 64) & (2**96 - 1)), max(fund_balance + penalty, 0))
    return SimpleNamespace(
        before=before, after=after, state=st, taken=taken, penalty=penalty, reward=reward,
        allowed=max_take(before.equity, before.maintenance, before.initial, before.gross_total, liq),
        surplus_before=before.equity - before.maintenance, surplus_after=after.equity - after.maintenance,
        liq=liq,
    )


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
        (2, 0, WAD),  # unknown kind
    ],
)
def test_liquidate_bad_item_reverts(protocol, long_btc, keeper, move_price, item):
    move_price(BTC, 55_000)
    assert_reverts(
        err("BadLiquidationItem", long_btc.id, *item), protocol.vault.liquidate, long_btc.id, [item], {"from": keeper}
    )


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
    # penalty to the fund, keeper paid from the fund in USDC
    assert _keeper_credit(vault, keeper) - keeper_credit == sim.reward
    assert usdc.balanceOf(keeper) == keeper_wallet  # a credit, not a transfer
    assert vault.settlementOf(fund_id) - fund_before == sim.penalty - sim.reward
    updates = [(e["account"], e["balance"]) for e in tx.events["SettlementUpdated"]]
    assert (vault.accountId(keeper, 0), keeper_credit + sim.reward) in updates


def test_liquidate_small_take_pays_min_keeper_reward(protocol, long_btc, mirror, keeper, move_price):
    vault = protocol.vault
    move_price(BTC, 55_000)
    amount = WAD // 100  # 550 USD: penalty 5.5, 30% = 1.65 < 5
    sim = simulate(protocol, mirror(long_btc.id), [(0, 0, amount)])
    assert sim.penalty == 55 * WAD // 10
    keeper_credit = _keeper_credit(vault, keeper)
    tx = vault.liquidate(long_btc.id, [(0, 0, amount)], {"from": keeper})
    assert tx.events["Liquidated"]["keeperReward"] == sim.reward == 5 * WAD
    assert _keeper_credit(vault, keeper) - keeper_credit == 5 * WAD


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


def test_liquidate_reward_capped_at_fund_balance(protocol, long_btc, mirror, keeper, deployer, move_price):
    vault, usdc = protocol.vault, protocol.usdc
    fund_id = vault.fundAccount()
    vault.withdraw(fund_id, usdc, vault.settlementOf(fund_id) // SCALE, deployer, {"from": deployer})
    assert vault.settlementOf(fund_id) == 0
    move_price(BTC, 55_000)
    items = [(0, 0, WAD // 1000)]  # 55 USD taken: penalty 0.55 < the 5 USD minimum reward
    sim = simulate(protocol, mirror(long_btc.id), items)
    assert sim.penalty == 55 * WAD // 100 == sim.reward

    tx = vault.liquidate(long_btc.id, items, {"from": keeper})

    assert tx.events["Liquidated"]["keeperReward"] == 55 * WAD // 100
    assert _keeper_credit(vault, keeper) == 55 * WAD // 100
    assert vault.settlementOf(fund_id) == 0


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
    assert tx.events["Liquidated"]["keeperReward"] == 5 * WAD
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
    vault = protocol.vault
    fund_id = vault.fundAccount()
    move_price(BTC, 48_000)  # E = -2,000
    sim = simulate(protocol, mirror(long_btc.id), [(0, 0, WAD)])
    assert sim.state.settlement == -2_480 * WAD  # 10,000 - 12,000 realised - 480 penalty
    fund_before = vault.settlementOf(fund_id)

    tx = vault.liquidate(long_btc.id, [(0, 0, WAD)], {"from": keeper})

    assert dict(tx.events["BadDebtWrittenOff"]) == {
        "account": long_btc.id, "debt": 2_480 * WAD, "coveredByFund": 2_480 * WAD, "socialised": 0,
    }
    assert vault.settlementOf(long_btc.id) == 0
    assert tuple(vault.masksOf(long_btc.id)) == (0, 0)
    assert vault.badDebt() == 0
    reward = 480 * WAD * 3 // 10
    assert vault.settlementOf(fund_id) - fund_before == 480 * WAD - reward - 2_480 * WAD
    assert tuple(vault.margin(long_btc.id)) == (0, 0, 0)


def test_liquidate_seizing_last_collateral_writes_off(protocol, weth_in_debt, mirror, keeper, move_price):
    vault = protocol.vault
    fund_id = vault.fundAccount()
    move_price(ETH, 2_000)  # 10 WETH = 20,000 (credit 18,000) vs -20,000: E = -2,000, deep
    sim = simulate(protocol, mirror(weth_in_debt.id), [(1, 1, 10 * WAD)])
    assert sim.allowed == sim.taken == 20_000 * WAD
    debt = -sim.state.settlement
    assert debt == 20_000 * WAD - 19_000 * WAD + 200 * WAD
    fund_before = vault.settlementOf(fund_id)

    tx = vault.liquidate(weth_in_debt.id, [(1, 1, 10 * WAD)], {"from": keeper})

    ev = tx.events["BadDebtWrittenOff"]
    assert (ev["debt"], ev["coveredByFund"], ev["socialised"]) == (debt, debt, 0)
    assert vault.settlementOf(weth_in_debt.id) == 0
    assert vault.collateralOf(fund_id, 1) == 10 * WAD
    assert vault.settlementOf(fund_id) - fund_before == -19_000 * WAD + 200 * WAD - 60 * WAD - debt


def test_liquidate_flat_debtor_with_no_items_writes_off(protocol, long_btc, counterparty, test_venue, keeper,
                                                       move_price):
    """An account closed out by an ordinary (reduce-only) trade with a negative balance holds nothing to take:
    liquidating it with no items writes the debt off and pays the keeper the minimum reward."""
    vault = protocol.vault
    fund_id = vault.fundAccount()
    move_price(BTC, 48_000)
    test_venue.trade(counterparty.id, long_btc.id, 0, WAD, 48_000 * WAD, 0, {"from": keeper})
    assert vault.settlementOf(long_btc.id) == -2_000 * WAD
    assert tuple(vault.masksOf(long_btc.id)) == (0, 0)
    fund_before = vault.settlementOf(fund_id)
    keeper_credit = _keeper_credit(vault, keeper)

    tx = vault.liquidate(long_btc.id, [], {"from": keeper})

    assert tx.return_value == 5 * WAD
    ev = tx.events["Liquidated"]
    assert (ev["taken"], ev["penalty"], ev["keeperReward"]) == (0, 0, 5 * WAD)
    assert ev["surplusBefore"] == ev["surplusAfter"] == -2_000 * WAD
    assert dict(tx.events["BadDebtWrittenOff"]) == {
        "account": long_btc.id, "debt": 2_000 * WAD, "coveredByFund": 2_000 * WAD, "socialised": 0,
    }
    assert vault.settlementOf(long_btc.id) == 0
    assert vault.settlementOf(fund_id) - fund_before == -5 * WAD - 2_000 * WAD
    assert _keeper_credit(vault, keeper) - keeper_credit == 5 * WAD
    # nothing left: the account is healthy now
    assert_reverts(
        err("AccountHealthy", long_btc.id, 0, 0), vault.liquidate, long_btc.id, [], {"from": keeper}
    )


@pytest.fixture
def socialised(protocol, long_btc, deployer, keeper, move_price):
    """The fund drained by its operator, then a liquidation leaving 2,480 of debt it can cover only 336 of."""
    vault, usdc = protocol.vault, protocol.usdc
    fund_id = vault.fundAccount()
    vault.withdraw(fund_id, usdc, vault.settlementOf(fund_id) // SCALE, deployer, {"from": deployer})
    assert vault.settlementOf(fund_id) == 0
    move_price(BTC, 48_000)
    tx = vault.liquidate(long_btc.id, [(0, 0, WAD)], {"from": keeper})
    return tx


def test_liquidate_bad_debt_beyond_fund_recorded(protocol, socialised, long_btc):
    vault = protocol.vault
    # fund: +480 penalty - 144 keeper reward = 336 covers part of the 2,480
    assert dict(socialised.events["BadDebtWrittenOff"]) == {
        "account": long_btc.id, "debt": 2_480 * WAD, "coveredByFund": 336 * WAD, "socialised": 2_144 * WAD,
    }
    assert socialised.events["Liquidated"]["keeperReward"] == 144 * WAD
    assert vault.badDebt() == 2_144 * WAD
    assert vault.settlementOf(vault.fundAccount()) == 0
    assert vault.settlementOf(long_btc.id) == 0


def test_withdraw_settlement_pays_pro_rata_while_bad_debt(protocol, socialised, make_trader, fund, deployer):
    vault, usdc = protocol.vault, protocol.usdc
    payers = []
    for _ in range(2):
        t = make_trader()
        deployer.transfer(t.wallet, WAD // 10)
        fund(t.id, usdc, 50_000 * USDC)
        payers.append(t)
    fractions = []
    for t in payers:
        amount = 20_000 * USDC
        held = usdc.balanceOf(vault) * SCALE
        debt = vault.badDebt()
        expected = amount * held // (held + debt)
        assert expected < amount

        tx = vault.withdraw(t.id, usdc, amount, t.wallet, {"from": t.wallet})

        assert usdc.balanceOf(t.wallet) == expected
        assert vault.settlementOf(t.id) == 30_000 * WAD  # the account is debited the full amount
        retired = (amount - expected) * SCALE
        assert vault.badDebt() == debt - retired
        assert dict(tx.events["BadDebtReduced"]) == {"amount": retired, "remaining": debt - retired}
        fractions.append(expected / amount)
    assert fractions[0] == pytest.approx(fractions[1], abs=2e-6)  # every withdrawer bears the same fraction


def test_withdraw_settlement_return_value_is_paid_amount(protocol, socialised, make_trader, fund, deployer):
    vault, usdc = protocol.vault, protocol.usdc
    t = make_trader()
    deployer.transfer(t.wallet, WAD // 10)
    fund(t.id, usdc, 10_000 * USDC)
    held, debt = usdc.balanceOf(vault) * SCALE, vault.badDebt()
    tx = vault.withdraw(t.id, usdc, 10_000 * USDC, t.wallet, {"from": t.wallet})
    assert tx.return_value == 10_000 * USDC * held // (held + debt) < 10_000 * USDC


def test_withdraw_collateral_unaffected_by_bad_debt(protocol, socialised, make_trader, fund, deployer):
    vault, weth = protocol.vault, protocol.tokens[1]
    t = make_trader()
    deployer.transfer(t.wallet, WAD // 10)
    fund(t.id, weth, 3 * WAD)
    vault.withdraw(t.id, weth, 3 * WAD, t.wallet, {"from": t.wallet})
    assert weth.balanceOf(t.wallet) == 3 * WAD
    assert vault.badDebt() == 2_144 * WAD


def test_resolve_bad_debt_reduces_then_tops_up_fund(protocol, socialised):
    vault, usdc = protocol.vault, protocol.usdc
    fund_id = vault.fundAccount()
    payer = accounts[5]
    usdc.mint(payer, 3_000 * USDC, {"from": payer})
    usdc.approve(vault, 3_000 * USDC, {"from": payer})

    tx = vault.resolveBadDebt(1_000 * USDC, {"from": payer})
    assert dict(tx.events["BadDebtReduced"]) == {"amount": 1_000 * WAD, "remaining": 1_144 * WAD}
    assert vault.badDebt() == 1_144 * WAD
    assert vault.settlementOf(fund_id) == 0

    tx = vault.resolveBadDebt(2_000 * USDC, {"from": payer})
    assert dict(tx.events["BadDebtReduced"]) == {"amount": 1_144 * WAD, "remaining": 0}
    assert vault.badDebt() == 0
    assert vault.settlementOf(fund_id) == 856 * WAD  # the excess tops up the fund
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
