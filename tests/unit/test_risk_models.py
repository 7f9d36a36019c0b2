"""The vectorised margin against the exact mirror, reverse stress, the cascade against a direct computation,
calibration, efficiency and the proposal diff (pure: no chain)."""
from __future__ import annotations

import numpy as np
import pytest

from offchain.population import LOCAL_LAYOUT, generate, prices_wad, to_state
from offchain.risk.calibrate import CalibrationSettings, calibrate, es_multiple, risk_weights_bps
from offchain.risk.cascade import CascadeScenario, LiquidationRule, simulate
from offchain.risk.data import synthetic
from offchain.margin.defaults import ASSETS, DEFAULT_SPEC, FUNDING_DEFAULT, START_PRICES_USD
from offchain.risk.efficiency import efficiency
from offchain.margin.exact import WAD, AccountState, account_margin
from offchain.risk.propose import bound_errors, decode_spec, diff, merged, spec_from_dict, spec_to_dict
from offchain.risk.stress import book_shortfall, reverse_account, reverse_book, shocked_prices
from offchain.margin.vector import MarginArrays, Portfolio, margin

P = prices_wad(START_PRICES_USD)
CFG = DEFAULT_SPEC.margin_config()


@pytest.fixture(scope="module")
def population():
    books = generate(120, seed=3)
    return books, [to_state(b, P) for b in books]


def test_vectorised_margin_equals_the_exact_mirror(population):
    _, states = population
    pf = Portfolio.from_states(states, LOCAL_LAYOUT, 4)
    arr = MarginArrays.from_config(CFG, 4, 4)
    moves = np.array([[0, 0, 0, 0], [-0.3, -0.35, -0.4, -0.2], [0.1, -0.2, 0.05, 0.3]])
    m = margin(pf, np.asarray(START_PRICES_USD, float) * (1 + moves), arr)  # (3, A)
    for s_i, mv in enumerate(moves):
        p = shocked_prices(P, mv)
        for i, st in enumerate(states):
            ex = account_margin(st, LOCAL_LAYOUT, p, CFG)
            assert m.maintenance[s_i, i] == pytest.approx(ex.maintenance / WAD, rel=1e-9, abs=1e-6)
            assert m.equity[s_i, i] == pytest.approx(ex.equity / WAD, rel=1e-9, abs=1e-6)
            assert m.initial[s_i, i] == pytest.approx(ex.initial / WAD, rel=1e-9, abs=1e-6)


def test_reverse_stress_move_makes_equity_negative_and_a_slightly_smaller_one_does_not():
    state = AccountState(settlement=10_000 * WAD, positions={0: (2 * WAD, 120_000 * WAD)})  # 2 BTC long at 60k
    u = np.array([-1.0, 0, 0, 0])
    res = reverse_account(state, LOCAL_LAYOUT, P, CFG, u)
    assert res.scale == pytest.approx(10_000 / 120_000, rel=1e-6)  # closed form: E0 / exposure
    at = account_margin(state, LOCAL_LAYOUT, shocked_prices(P, res.scale * u), CFG).equity
    before = account_margin(state, LOCAL_LAYOUT, shocked_prices(P, res.scale * (1 - 1e-6) * u), CFG).equity
    assert at < 0 <= before
    assert reverse_account(state, LOCAL_LAYOUT, P, CFG, -u).scale == float("inf")  # a rally never hurts a long


def test_reverse_book_crosses_the_fund_exactly(population):
    _, states = population
    pf = Portfolio.from_states(states, LOCAL_LAYOUT, 4)
    arr = MarginArrays.from_config(CFG, 4, 4)
    p0 = np.asarray(START_PRICES_USD, float)
    u = -np.ones(4)
    t = reverse_book(pf, arr, p0, u, 100_000.0)
    assert book_shortfall(pf, arr, p0, t * u) > 100_000.0 >= book_shortfall(pf, arr, p0, (t - 1e-6) * u)


def _perp_only(states):
    return [AccountState(s.settlement, dict(s.positions), {}) for s in states]


def test_cascade_without_impact_or_latency_equals_a_direct_computation(population):
    _, states = population
    states = _perp_only(states)
    pf = Portfolio.from_states(states, LOCAL_LAYOUT, 4)
    arr = MarginArrays.from_config(CFG, 4, 4)
    rule = LiquidationRule(close_factor=1.0, penalty=0.01, keeper_share=0.3, deep=1.0, min_keeper_reward=0.0,
                           dust=0.0, discount=(0.0,) * 4)
    s = CascadeScenario("direct", (-0.6,) * 4, latency=0, crash_blocks=40, after_blocks=5, noise_bps=0.0,
                        impact_y=0.0, unwind_blocks=1, runs=2, max_calls_per_block=0, vol_cap=1.0)
    res = simulate(pf, START_PRICES_USD, arr, rule, 1e6, s)
    # direct: each account is closed in full at the first block where E < MM
    p0 = np.asarray(START_PRICES_USD, float)
    path = np.exp(np.minimum(np.arange(46) / 40, 1.0)[:, None] * np.log(0.4) * np.ones(4))
    bad = fund = notional = 0.0
    count = 0
    for i in range(len(states)):
        one = Portfolio(pf.settlement[i:i + 1], pf.size[i:i + 1], pf.open_notional[i:i + 1],
                        pf.collateral[i:i + 1], pf.market_asset, pf.collateral_asset, 4)
        for b in range(46):
            m = margin(one, p0 * path[b], arr)
            if m.equity[0] < m.maintenance[0]:
                v = one.size[0] * (p0 * path[b])[pf.market_asset]
                taken = np.abs(v).sum()
                after = one.settlement[0] + (v - one.open_notional[0]).sum() - 0.01 * taken
                bad += max(0.0, -after)
                fund += 0.01 * taken * 0.7
                notional += taken
                count += 1
                break
    assert res.written_off[0] == pytest.approx(bad, rel=1e-9, abs=1e-6)
    assert res.fund_cover[0] == res.written_off[0] and res.bad_debt[0] == 0 == res.adl[0]  # the fund had enough
    assert res.accounts_liquidated[0] == count and res.calls[0] == count
    assert res.liquidated_notional[0] == pytest.approx(notional, rel=1e-9)
    assert res.fund_end[0] == pytest.approx(1e6 + fund - bad, rel=1e-9)


def test_cascade_latency_and_impact_only_make_things_worse(population):
    _, states = population
    pf = Portfolio.from_states(states, LOCAL_LAYOUT, 4)
    arr = MarginArrays.from_config(CFG, 4, 4)
    rule = LiquidationRule.from_spec(DEFAULT_SPEC, 4)
    base = CascadeScenario("b", (-0.5,) * 4, latency=0, crash_blocks=5, after_blocks=20, noise_bps=0, runs=1,
                           impact_y=0.0, vol_cap=1.0, max_calls_per_block=0)
    r0 = simulate(pf, START_PRICES_USD, arr, rule, 1e6, base)
    r_late = simulate(pf, START_PRICES_USD, arr, rule, 1e6, base.with_(latency=3))
    r_imp = simulate(pf, START_PRICES_USD, arr, rule, 1e6, base.with_(impact_y=1.0))
    assert r_late.written_off[0] >= r0.written_off[0] and r_late.written_off[0] > 0
    assert r_imp.trough[0].max() < 0.5 + 1e-12  # the fund's sales push prices below the exogenous -50%


def test_calibrated_risk_weight_is_the_normal_es():
    s = CalibrationSettings(apc_floor=0.0, horizon_days=4.0)
    rw = risk_weights_bps(np.array([0.02]), np.array([0.05]), s)
    assert rw[0] == int(np.ceil(0.02 * 2 * es_multiple(0.99) * 10_000))
    floored = risk_weights_bps(np.array([0.02]), np.array([0.05]), CalibrationSettings(apc_floor=0.8))
    assert floored[0] == int(np.ceil(0.04 * es_multiple(0.99) * 10_000))


def test_calibrate_produces_a_valid_spec_and_roundtrips_through_json():
    h = synthetic(600, seed=5)
    cal = calibrate(h.returns, h.assets)
    assert set(cal.spec.risk_weights) >= {0, 1, 2, 3} and not bound_errors(cal.spec)
    assert [v.name for v in cal.spec.stress][:2] == ["crash", "rally"]
    assert spec_from_dict(spec_to_dict(cal.spec)) == cal.spec
    assert cal.spec.margin_config() == spec_from_dict(spec_to_dict(cal.spec)).margin_config()


def test_funding_decodes_round_trips_and_a_change_is_one_queued_set_funding():
    cur = decode_spec(CFG, 0, 0, 0, [], funding=FUNDING_DEFAULT.word())
    assert cur.funding == FUNDING_DEFAULT
    assert decode_spec(CFG, 0, 0, 0, []).funding is None  # a zero window: funding off
    prop = cur.model_copy(update={"funding": FUNDING_DEFAULT.model_copy(update={"adl_share_bps": 2500})})
    (change,) = [c for c in diff(cur, prop) if c.fn == "setFunding"]
    assert (change.old, change.args, change.tightening) == (FUNDING_DEFAULT.as_args(), prop.funding.as_args(), False)
    assert not [c for c in diff(cur, cur) if c.fn == "setFunding"]
    # a proposal without funding (what calibration does not estimate) leaves the chain's as it is
    assert not [c for c in diff(cur, cur.model_copy(update={"funding": None})) if c.fn == "setFunding"]
    spec = DEFAULT_SPEC.model_copy(update={"funding": prop.funding})
    assert spec_from_dict(spec_to_dict(spec)) == spec


def test_efficiency_hedged_btc_eth_pairs_save_with_coverage():
    # The default set is calibrated through the cycle on real prices: long BTC / short ETH pairs need about 30% of
    # a leg (ETH rallies of 2015-2017) against 13% + 29.9% standard, a saving near 29%; the reverse pair near 50%.
    rows = {r.group: r for r in efficiency(generate(300, seed=7))}
    for name, least in (("hedged_pair_long_btc_short_eth", 0.25), ("hedged_pair_long_eth_short_btc", 0.45)):
        pair = rows[name]
        assert pair.coverage_holds and pair.saving_median >= least, (name, pair)
    assert rows["directional"].saving_median == pytest.approx(0.0, abs=1e-9)  # no offsets to credit


def test_diff_classifies_like_the_contract_and_merge_applies_only_tightening():
    cur = decode_spec(CFG, 0, 0, 0, [])
    prop = DEFAULT_SPEC.model_copy(update={"risk_weights": {0: 1500, 1: 1000},
                                           "correlations": {(0, 1): 7000}})
    changes = {c.fn + str(c.args[:1]): c for c in diff(cur, prop)}
    # BTC is correlated with ETH, SOL and LINK: a higher weight can lower a hedged book's charge, so it is queued
    assert not changes["setRiskWeight(0,)"].tightening and not changes["setRiskWeight(1,)"].tightening
    assert not changes["setCorrelation(0,)"].tightening
    now = merged(cur, list(changes.values()), only_tightening=True).margin_config()
    assert (now.risk_weight(0), now.risk_weight(1), now.correlation(0, 1)) == (
        DEFAULT_SPEC.risk_weights[0], DEFAULT_SPEC.risk_weights[1], DEFAULT_SPEC.correlations[(0, 1)])
    # asset 4 has no correlation with any other: raising its weight tightens and applies at once
    cur4 = cur.model_copy(update={"risk_weights": {**cur.risk_weights, 4: 5000}})
    up = diff(cur4, cur4.model_copy(update={"risk_weights": {**cur.risk_weights, 4: 6000}}))
    assert [(c.fn, c.args, c.tightening) for c in up] == [("setRiskWeight", (4, 6000), True)]
    assert merged(cur4, up, only_tightening=True).margin_config().risk_weight(4) == 6000
    # appending a stress vector tightens; editing one is queued
    edit = cur.model_copy(update={"stress": [cur.stress[0].model_copy(update={"shocks": {0: -2000}})] + cur.stress[1:]})
    assert [c.tightening for c in diff(cur, edit)] == [False]


def test_decode_spec_reproduces_the_margin_words():
    cur = decode_spec(CFG, 0, 0, 0, [])
    assert cur.margin_config() == CFG


def test_bound_errors_name_the_field():
    bad = DEFAULT_SPEC.model_copy(update={"risk_weights": {0: 20_000}, "price_band_bps": 5})
    errs = bound_errors(bad)
    assert any("risk_weights[0] = 20000" in e for e in errs) and any("price_band_bps = 5" in e for e in errs)


# ---------------------------------------------------------------------------------------------- stress with options
def test_float_stress_of_a_perpetuals_book_matches_the_exact_mirror_and_ignores_volatility(population):
    from offchain.risk.stress import LIBRARY, float_hypothetical, hypothetical

    _, states = population
    states = _perp_only(states)  # float and exact agree to 1e-9 on positions and settlement
    pf = Portfolio.from_states(states, LOCAL_LAYOUT, 4)
    arr = MarginArrays.from_config(CFG, 4, 4)
    exact = hypothetical(states, LOCAL_LAYOUT, P, CFG, ASSETS)
    flt = float_hypothetical(pf, arr, np.asarray(START_PRICES_USD, float), ASSETS)
    assert [r.name for r in flt] == [s.name for s in LIBRARY]
    for e, f in zip(exact, flt):
        assert (e.liquidatable, e.insolvent) == (f.liquidatable, f.insolvent)
        assert f.shortfall == pytest.approx(e.shortfall, rel=1e-6, abs=1e-3)
    vol_only = {r.name: r for r in flt if r.name in ("vol_spike", "vol_crush")}
    assert all(r.equity_change == 0 and r.shortfall == 0 for r in vol_only.values())


def test_stress_scenarios_carry_a_volatility_shock_that_moves_option_books_only():
    from offchain.risk.stress import scenario

    mar = scenario("mar2020").vol_vector(ASSETS)
    np.testing.assert_allclose(mar, [1 + 2.5 * 0.52, 1 + 2.5 * 0.54, 1 + 2.5 * 0.54, 1 + 2.5 * 0.50])
    assert (scenario("vol_spike").vol_vector(ASSETS) == 2.0).all() and not scenario("vol_spike").vector(ASSETS).any()
    assert scenario("rally_50").vol_vector(ASSETS)[0] == 1.25


@pytest.fixture(scope="module")
def option_stress():
    from offchain.risk.stress import option_book_stress

    return {(r["book"], r["underlying"]): r for r in option_book_stress(DEFAULT_SPEC)}


def test_option_book_stress_revalues_with_the_volatility_shock(option_stress):
    straddle = option_stress[("short_straddle_hedged_30d_atm", "BTC")]
    put = option_stress[("protective_put_perp_30d_atm", "BTC")]
    sc = straddle["scenarios"]
    # a short straddle loses when volatility doubles and gains when it collapses, with prices unchanged; a long
    # put (protective) the other way round
    assert sc["vol_spike"]["loss_pct"] > 5 and sc["vol_crush"]["loss_pct"] < 0
    assert put["scenarios"]["vol_spike"]["loss_pct"] < 0 < put["scenarios"]["vol_crush"]["loss_pct"]
    # with no price move the whole loss is the volatility's
    assert sc["vol_spike"]["vol_part_pct"] == sc["vol_spike"]["loss_pct"]
    # a crash with its volatility spike costs the short straddle more than the same crash at unchanged volatility
    assert sc["crash_30"]["vol_part_pct"] > 0
    # the spec's own stress charge is part of the MM (MM >= K_S), and the library's mar2020 far exceeds both
    assert straddle["mm_pct"] >= straddle["protocol_stress_pct"] > 0
    assert straddle["worst_loss_over_mm"] > 2
    # the BTC+ETH book loses the sum of its two legs (one account, figures of both notionals)
    both = option_stress[("short_straddle_hedged_30d_atm", "BTC+ETH")]["scenarios"]["vol_spike"]["loss_pct"]
    eth = option_stress[("short_straddle_hedged_30d_atm", "ETH")]["scenarios"]["vol_spike"]["loss_pct"]
    assert both == pytest.approx((sc["vol_spike"]["loss_pct"] * 60_000 + eth * 3_000) / 63_000, abs=2e-3)
