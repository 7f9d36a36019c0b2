"""Liquidation plans of accounts holding options (pure Python, the exact mirror): option items within the allowance,
E - MM rises as the contract requires, fixed series are never named, and the options that free the most margin go
first."""
import random

import pytest

from offchain.keeper.planner import LiquidationTerms, apply_liquidation, plan_liquidation
from offchain.margin.defaults import DEFAULT_SPEC, OPTIONS_DEFAULT
from offchain.margin.exact import WAD, AccountState, account_margin, max_take
from offchain.margin.options import OptionMarket, Series, mark

from tests.unit.test_screen import LAYOUT, NOW, START, _listing, _option_state

LQ = DEFAULT_SPEC.liquidation
TERMS = LiquidationTerms(LQ.close_factor_bps | LQ.penalty_bps << 16 | LQ.keeper_share_bps << 32 | LQ.deep_bps << 48
                         | LQ.min_keeper_reward << 64 | LQ.dust << 160,
                         sum(d << (16 * j) for j, d in DEFAULT_SPEC.discounts.items()))
CFG = DEFAULT_SPEC.margin_config()


def _market(series, vol=0.9, time=NOW):
    return OptionMarket(series, [int(vol * WAD)] * 3 + [0] * 5, OPTIONS_DEFAULT.word(), time)


def _check(state, prices, market, plan):
    """The plan is what the contract accepts: within maxTake, E - MM rises, no fixed series, and replaying it gives
    the plan's figures."""
    before = account_margin(state, LAYOUT, prices, CFG, None, market)
    assert plan is not None and plan.taken <= plan.allowed == max_take(
        before.equity, before.maintenance, before.initial, before.gross_total, TERMS.word)
    assert plan.surplus_after > plan.surplus_before == before.equity - before.maintenance
    assert all(not market.series[i].fixed_price for k, i, _ in plan.items if k == 2)
    after, taken, penalty = apply_liquidation(state, LAYOUT, prices, CFG, TERMS, plan.items, market)
    assert (taken, penalty) == (plan.taken, plan.penalty)
    m = account_margin(after, LAYOUT, prices, CFG, None, market)
    assert m.equity - m.maintenance >= plan.surplus_after  # the fund's make-up of the rounding only adds


def _liquidatable(rng, trials, per_trial):
    """(state, prices, market) of random option accounts below MM, over ``trials`` random markets."""
    series = _listing(rng)
    for trial in range(trials):
        prices = [int(p * rng.uniform(0.6, 1.4) * WAD) for p in START] + [0] * 4
        market = _market(series, rng.uniform(0.4, 1.5), NOW + 600 * trial)
        for _ in range(per_trial):
            s = _option_state(rng, series)
            if account_margin(s, LAYOUT, prices, CFG, None, market).liquidatable:
                yield s, prices, market


def test_every_liquidatable_option_account_gets_a_plan_that_raises_its_surplus():
    planned = with_options = 0
    for s, prices, market in _liquidatable(random.Random(23), 3, 60):
        plan = plan_liquidation(s, LAYOUT, prices, CFG, TERMS, market)
        _check(s, prices, market, plan)
        planned += 1
        with_options += any(k == 2 for k, _, _ in plan.items)
    assert planned > 30 and with_options > planned // 2


def test_options_only_account_closes_the_short_that_frees_most_margin_first():
    """A written BTC put far in the money (most of the margin) and a small far out-of-the-money call: the allowance
    goes to the put, at the mark, and the fixed series the account still holds is left for settleExpired."""
    series = {0: Series(0, False, 70_000 * WAD, NOW + 20 * 86_400), 1: Series(0, True, 90_000 * WAD, NOW + 20 * 86_400),
              2: Series(0, True, 50_000 * WAD, NOW - 86_400, 55_000 * WAD)}
    market = _market(series, 0.8)
    prices = [60_000 * WAD, 3_000 * WAD, 150 * WAD, 15 * WAD] + [0] * 4
    s = AccountState(settlement=62_000 * WAD, options={0: -4 * WAD, 1: -WAD // 2, 2: WAD})
    m = account_margin(s, LAYOUT, prices, CFG, None, market)
    assert m.liquidatable and m.equity > m.maintenance // 2  # not deep: the close factor applies
    plan = plan_liquidation(s, LAYOUT, prices, CFG, TERMS, market)
    _check(s, prices, market, plan)
    (kind, slot, amount), = plan.items  # the whole allowance on the put
    assert (kind, slot) == (2, 0) and 0 < amount < 4 * WAD and plan.taken == amount * prices[0] // WAD
    after, _, penalty = apply_liquidation(s, LAYOUT, prices, CFG, TERMS, plan.items, market)
    liability = -(-amount * mark(series[0], prices[0], market.vols[0], market.word, market.time) // WAD)
    assert after.options == {0: -4 * WAD + amount, 1: -WAD // 2, 2: WAD}
    assert after.settlement == s.settlement - liability - penalty  # the short paid its liability at the mark


def _verdict(state, prices, market, items):
    """What the vault answers to ``liquidate(items)`` for ``state`` in a block of ``market.time``: None (it
    liquidates) or its error."""
    before = account_margin(state, LAYOUT, prices, CFG, None, market)
    if not before.liquidatable:
        return "AccountHealthy"
    after, taken, _ = apply_liquidation(state, LAYOUT, prices, CFG, TERMS, items, market)
    if taken > max_take(before.equity, before.maintenance, before.initial, before.gross_total, TERMS.word):
        return "LiquidationTooLarge"
    m = account_margin(after, LAYOUT, prices, CFG, None, market)
    return None if m.equity - m.maintenance > before.equity - before.maintenance else "LiquidationNotImproving"


def test_option_plans_hold_until_the_latest_time_of_inclusion():
    """The vault values options at the time of the block that includes the liquidation. A plan made at the head
    block's time takes the whole allowance, which moves with time (written options' liability decays: E rises, IM - E
    and with it the allowance shrink) while the amount taken does not: seconds later it is too large. A plan made
    with ``until`` fits the rule at every time of its window (the failure of the crash demo's option books)."""
    late = planned = 0
    for s, prices, market in _liquidatable(random.Random(23), 4, 80):
        head = plan_liquidation(s, LAYOUT, prices, CFG, TERMS, market)
        late += _verdict(s, prices, market.at(market.time + 6), head.items) is not None
        plan = plan_liquidation(s, LAYOUT, prices, CFG, TERMS, market, market.time + 30)
        if plan is None:  # above MM at the window's end: nothing to send
            assert _verdict(s, prices, market.at(market.time + 30), head.items) == "AccountHealthy"
            continue
        assert plan.taken <= plan.allowed <= head.allowed and plan.surplus_after > plan.surplus_before
        for dt in (0, 1, 6, 17, 30):
            assert _verdict(s, prices, market.at(market.time + dt), plan.items) is None, (dt, plan)
        planned += 1
    assert late >= 5 and planned > 150


def test_option_item_on_a_fixed_series_or_beyond_the_size_is_refused():
    series = {0: Series(0, True, 60_000 * WAD, NOW + 86_400), 1: Series(0, True, 50_000 * WAD, NOW - 10, 55_000 * WAD)}
    market = _market(series)
    prices = [60_000 * WAD] + [0] * 7
    s = AccountState(settlement=-1_000 * WAD, options={0: -WAD, 1: WAD})
    for items in ([(2, 1, WAD)], [(2, 0, 2 * WAD)], [(2, 0, 0)], [(2, 3, WAD)]):
        with pytest.raises(ValueError):
            apply_liquidation(s, LAYOUT, prices, CFG, TERMS, items, market)
