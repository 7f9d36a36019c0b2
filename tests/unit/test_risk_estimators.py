"""EWMA, regimes, PSD repair, VaR/ES and the backtest statistics against closed forms and hand computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from offchain.risk.backtest import christoffersen, evaluate, kupiec, traffic_light, transitions
from offchain.risk.ewma import (correlation_from_covariance, ewma_covariance, ewma_variance, ewma_weights,
                                nearest_correlation, regimes, repair_covariance)
from offchain.risk.var import from_scenarios, normal_es, normal_var, parametric, t_var_es


def test_ewma_recursion_equals_explicit_weights():
    rng = np.random.default_rng(1)
    r = rng.standard_normal(200) * 0.02
    lam, seed = 0.94, 0.0004
    rec = ewma_variance(r, lam, seed=seed)
    t = len(r)
    w = ewma_weights(t, lam)  # newest first
    explicit = w @ (r[::-1] ** 2) + lam**t * seed
    assert rec[-1] == pytest.approx(explicit, rel=1e-12)
    assert rec[1] == pytest.approx(lam * seed + (1 - lam) * r[0] ** 2, rel=1e-15)


def test_ewma_covariance_diagonal_matches_variance_and_correlation_is_unit_diagonal():
    rng = np.random.default_rng(2)
    r = rng.standard_normal((300, 3)) * 0.01
    cov = ewma_covariance(r, 0.9)
    var = ewma_variance(r, 0.9, seed=np.diag(cov[0]))
    assert np.allclose(np.diagonal(cov, axis1=1, axis2=2), var, rtol=1e-12)
    rho = correlation_from_covariance(cov[-1])
    assert np.allclose(np.diag(rho), 1.0) and np.all(np.abs(rho) <= 1 + 1e-12)


def test_ewma_rejects_bad_lambda():
    with pytest.raises(ValueError, match="lam"):
        ewma_variance(np.zeros(10), 1.0)


def test_regimes_match_the_contract_formulas():
    rho = np.array([[1.0, 0.8, -0.2], [0.8, 1.0, 0.3], [-0.2, 0.3, 1.0]])
    low, med, high = regimes(rho)
    assert low[0, 1] == pytest.approx(0.6) and high[0, 1] == pytest.approx(1.0)  # max(0.6, 0.6); min(1.0, 1)
    assert low[0, 2] == pytest.approx(-0.15) and high[0, 2] == pytest.approx(-0.25)  # max(2r-1, 0.75r) = max(-1.4, -0.15)
    assert low[1, 2] == pytest.approx(0.225) and high[1, 2] == pytest.approx(0.375)
    assert np.allclose(np.diag(low), 1) and np.allclose(np.diag(high), 1) and np.array_equal(med, rho)


def test_psd_repair_gives_nonnegative_eigenvalues_and_keeps_the_diagonal():
    bad = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert np.linalg.eigvalsh(bad).min() < 0
    fixed = nearest_correlation(bad)
    assert np.linalg.eigvalsh(fixed).min() >= -1e-12
    assert np.allclose(np.diag(fixed), 1.0) and np.allclose(fixed, fixed.T)
    good = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert np.array_equal(nearest_correlation(good), good)
    cov = bad * np.outer([0.02, 0.03, 0.05], [0.02, 0.03, 0.05])
    rep = repair_covariance(cov)
    assert np.allclose(np.diag(rep), np.diag(cov)) and np.linalg.eigvalsh(rep).min() >= -1e-15


def test_normal_var_es_closed_forms():
    assert normal_var(1.0, 0.99) == pytest.approx(2.3263478740408408)
    assert normal_es(1.0, 0.99) == pytest.approx(2.6652142203457798)
    assert normal_es(2.0, 0.975) == pytest.approx(2 * stats.norm.pdf(1.959963984540054) / 0.025)
    v, e = t_var_es(1.0, 0.99, 1e6)  # a t with huge nu is normal
    assert v == pytest.approx(2.3263, abs=1e-3) and e == pytest.approx(2.6652, abs=1e-3)
    v5, _ = t_var_es(1.0, 0.99, 5.0)
    assert v5 == pytest.approx(stats.t.ppf(0.99, 5) * math.sqrt(3 / 5))


def test_parametric_portfolio_and_euler_contributions():
    cov = np.array([[0.04**2, 0.5 * 0.04 * 0.05], [0.5 * 0.04 * 0.05, 0.05**2]])
    c = np.array([1e6, -5e5])
    f = parametric(c, cov, 0.99)
    sigma = math.sqrt(c @ cov @ c)
    assert f.var == pytest.approx(2.3263478740408408 * sigma) and f.es == pytest.approx(2.6652142203457798 * sigma)
    assert f.var_contrib.sum() == pytest.approx(f.var) and f.es_contrib.sum() == pytest.approx(f.es)
    assert parametric(c, cov, 0.99, horizon=4).var == pytest.approx(2 * f.var)


def test_scenario_var_es_on_a_known_sample():
    x = -np.arange(1, 101, dtype=float)[:, None] / 100  # moves -1% .. -100%: losses 1 .. 100 for c = 100
    f = from_scenarios(np.array([100.0]), x, 0.95)
    assert f.var == pytest.approx(96.0) and f.es == pytest.approx(np.mean([96, 97, 98, 99, 100]))
    assert f.es_contrib.sum() == pytest.approx(f.es)


def test_kupiec_matches_a_hand_computation():
    n, x, p = 250, 8, 0.01
    phat = x / n
    lr = -2 * ((n - x) * math.log(1 - p) + x * math.log(p) - (n - x) * math.log(1 - phat) - x * math.log(phat))
    got_lr, got_p = kupiec(n, x, p)
    assert got_lr == pytest.approx(lr) and got_p == pytest.approx(stats.chi2.sf(lr, 1))
    assert kupiec(1000, 10, 0.01) == (0.0, 1.0)  # exactly the expected count
    lr0, _ = kupiec(500, 0, 0.01)
    assert lr0 == pytest.approx(-2 * 500 * math.log(0.99))


def test_christoffersen_on_constructed_sequences():
    clustered = np.array([0] * 50 + [1, 1, 1, 1] + [0] * 50 + [1, 1, 1, 1] + [0] * 50)
    assert transitions(clustered) == (147, 2, 2, 6)
    n00, n01, n10, n11 = 147, 2, 2, 6
    pi, p01, p11 = 8 / 157, 2 / 149, 6 / 8
    lr = -2 * ((n00 + n10) * math.log(1 - pi) + (n01 + n11) * math.log(pi)
               - n00 * math.log(1 - p01) - n01 * math.log(p01) - n10 * math.log(1 - p11) - n11 * math.log(p11))
    got_lr, got_p = christoffersen(clustered)
    assert got_lr == pytest.approx(lr) and got_p < 0.001
    spread = np.zeros(400, dtype=int)
    spread[::50] = 1  # isolated exceptions: no clustering
    assert christoffersen(spread)[1] > 0.5


def test_traffic_light_reproduces_the_basel_table():
    zones = [traffic_light(250, x) for x in range(12)]
    assert zones == ["green"] * 5 + ["yellow"] * 5 + ["red"] * 2


def test_evaluate_counts_exceptions_and_windows():
    losses = np.zeros(500)
    losses[[10, 300]] = 5.0
    r = evaluate("t", losses, np.ones(500))
    assert r.exceptions == 2 and r.hits.sum() == 2 and r.traffic_light == "green"
    assert sum(r.windows_250.values()) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------- VaR with options
def _straddle(size: float = -1.0):
    """A 30-day at-the-money BTC straddle of ``size`` units per leg (volatility 60%) and the perpetual (sensitivity
    USD per unit relative move) that hedges its delta."""
    from offchain.margin.defaults import OPTIONS_DEFAULT
    from offchain.margin.vector import OptionArrays, OptionBook
    from offchain.risk.revalue import OptionHoldings

    book = OptionBook(np.array([[size, size]]), np.array([0, 0]), np.array([True, False]),
                      np.array([60_000.0, 60_000.0]), np.array([30, 30]) / 365)
    h = OptionHoldings(book, OptionArrays.from_params(OPTIONS_DEFAULT, 4), np.array([0.6, 0.75, 1.0, 1.0]))
    prices = np.array([60_000.0, 3_000.0, 150.0, 15.0])
    return h, prices, -h.delta_sensitivity(prices).sum(0)


def _returns(days: int = 1500, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.standard_t(4, size=(days, 4)) / np.sqrt(2.0)
    return 0.03 * (0.8 * z[:, :1] + 0.6 * z)  # correlated, fat-tailed daily log returns


def test_delta_hedged_short_straddle_var_is_positive_where_a_delta_approximation_sees_nothing():
    from offchain.risk.var import all_methods, delta_parts, fhs_scenarios, from_parts

    h, prices, hedge = _straddle()
    r = _returns()
    figs = {f.method: f for f in all_methods(hedge, r, 0.99, options=h, prices=prices, mc_paths=20_000)}
    assert set(figs) == {"delta_normal", "fhs", "monte_carlo"}
    # the delta-normal figure of a delta-hedged book is zero: it cannot see convexity
    assert abs(figs["delta_normal"].var) < 1e-9 * 60_000
    assert from_parts(delta_parts(hedge, fhs_scenarios(r), h, prices)).var < 1e-9 * 60_000
    for m in ("fhs", "monte_carlo"):  # revalued in full: a large move either way loses (gamma, and vega)
        f = figs[m]
        assert f.var > 0.01 * 60_000 and f.es > f.var
        assert f.es_contrib.sum() == pytest.approx(f.es, rel=1e-9)
        assert f.es_contrib[0] == pytest.approx(f.es, rel=1e-9)  # all of it on BTC
    # a long straddle, hedged the same way, is the mirror image: its tails are gains; what it can lose in a day is
    # its time value's decay and a quieter volatility, a fraction of the short's VaR
    hl, _, hedge_l = _straddle(1.0)
    long_fhs = all_methods(hedge_l, r, 0.99, options=hl, prices=prices, mc_paths=2_000)[1]
    assert 0 < long_fhs.var < 0.2 * figs["fhs"].var


def test_the_volatility_moving_with_the_scenario_adds_to_a_short_straddles_tail():
    from offchain.risk.revalue import VolModel
    from offchain.risk.var import fhs_scenarios, from_parts, revalued_parts

    h, prices, hedge = _straddle()
    r = _returns()
    x = fhs_scenarios(r)
    daily = np.sqrt(ewma_variance(r)[-1])
    moving = from_parts(revalued_parts(hedge, x, h, prices, VolModel().multipliers(x, daily)))
    fixed = from_parts(revalued_parts(hedge, x, h, prices, 1.0))
    assert moving.es > fixed.es > 0


def test_perpetuals_only_var_is_unchanged_by_the_revaluation_path():
    from offchain.margin.vector import OptionBook
    from offchain.risk.var import all_methods

    h, prices, _ = _straddle()
    empty = type(h)(OptionBook(np.zeros((1, 2)), h.book.asset, h.book.is_call, h.book.strike, h.book.expiry),
                    h.oarr, h.sigma)
    c = np.array([2e6, -1.5e6, 3e5, 0.0])
    r = _returns(800)
    linear = all_methods(c, r, 0.99, mc_paths=5_000)
    through = all_methods(c, r, 0.99, mc_paths=5_000, options=empty, prices=prices)
    assert [f.method for f in linear] == ["parametric", "fhs", "monte_carlo"]
    for a, b in zip(linear, through):  # the same floats
        assert (a.var, a.es) == (b.var, b.es)
        assert (a.var_contrib == b.var_contrib).all() and (a.es_contrib == b.es_contrib).all()
    # and the linear figures are still the plain scenario quantiles of -c . x
    from offchain.risk.var import fhs_scenarios

    x = fhs_scenarios(r)
    losses = np.sort(-(x @ c))
    assert linear[1].var == losses[int(np.floor(0.99 * len(losses)))]


def test_vol_model_is_the_option_proxys_one_day_update():
    from offchain.risk.option_backtest import vol_proxy
    from offchain.risk.revalue import VolModel, spike_rule

    r = _returns(400)[:, 0]
    proxy = vol_proxy(r)  # row t from returns before day t
    var = ewma_variance(r)
    t = np.arange(50, 399)
    got = VolModel().multipliers(np.expm1(r[t]), np.sqrt(var[t]))
    np.testing.assert_allclose(got, proxy[t + 1] / proxy[t], rtol=1e-12)
    vm = VolModel()
    assert vm.multipliers(np.array([np.expm1(0.02)]), np.array([0.02]))[0] == pytest.approx(1.0)  # one sigma
    assert vm.multipliers(np.array([0.0]), np.array([0.02]))[0] == pytest.approx(np.sqrt(0.94))  # quiet: -3%
    assert vm.multipliers(np.array([0.0]), np.array([0.0]))[0] == pytest.approx(np.sqrt(0.94))  # no vol: z = 0
    assert [spike_rule(x) for x in (-0.5, -0.35, 0.0, 0.5, -0.9)] == [2.25, 1.875, 1.0, 1.25, 2.5]
