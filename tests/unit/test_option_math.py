"""The integer mirror of OptionMath.sol (``offchain.margin.optionmath``) against a 50-digit reference and scipy, and
its exact properties: symmetry, monotonicity, no-arbitrage bounds, put-call parity (pure Python, no chain).

    PYTHONPATH=. .venv/bin/python -m pytest tests/unit/test_option_math.py -q -p no:pytest-brownie --noconftest
"""
import random
from decimal import Decimal
from fractions import Fraction
from math import isqrt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import ndtr

from offchain.margin import optionmath as om
from scripts.bench.option_math_accuracy import norm_cdf_reference, price_reference

WAD = 10**18
D_WAD = Decimal(WAD)
SPOTS = st.integers(10**12, 10**30)
STD_DEVS = st.one_of(st.just(0), st.integers(1, 10**12), st.integers(10**12, 10 * WAD))


def _ln_m(spot: int, strike: int) -> int:
    return om.ln_wad(spot) - om.ln_wad(strike)


def _price_bound(spot: int, strike: int) -> Decimal:
    return Decimal(om.PRICE_ERROR_BOUND_REL) * (spot + strike) + 1


# ---------------------------------------------------------------------------------------------- normCdf
def test_norm_cdf_error_within_bound_on_grid():
    rng = random.Random(1)
    xs = [i * 10**15 for i in range(-9_000, 9_001, 3)] + [rng.randrange(-9 * WAD, 9 * WAD) for _ in range(3000)]
    worst = max(abs(Decimal(om.norm_cdf(x)) / D_WAD - norm_cdf_reference(Decimal(x) / D_WAD)) for x in xs)
    assert worst <= Decimal(om.NORM_CDF_ERROR_BOUND)


def test_norm_cdf_agrees_with_scipy_float64():
    xs = np.linspace(-10, 10, 200_001)
    got = np.array([om.norm_cdf(int(round(x * 1e6)) * 10**12) for x in xs], dtype=float) / 1e18
    # scipy's float64 ndtr is itself good to about 2.2e-16 here
    assert np.max(np.abs(got - ndtr(np.round(xs * 1e6) / 1e6))) <= om.NORM_CDF_ERROR_BOUND + 3e-16


def test_norm_cdf_symmetric_exactly():
    rng = random.Random(2)
    xs = [0, 1, om.NORM_CDF_CUT, om.NORM_CDF_CUT - 1, 2**255 - 1]
    xs += [rng.randrange(-12 * WAD, 12 * WAD) for _ in range(5000)]
    for x in xs:
        assert om.norm_cdf(x) + om.norm_cdf(-x) == WAD, x
    assert om.norm_cdf(-(2**255)) == 0 and om.norm_cdf(0) == WAD // 2


def test_norm_cdf_non_decreasing_on_dense_grid():
    values = [om.norm_cdf(i * 10**14) for i in range(-95_000, 95_001)]
    assert all(a <= b for a, b in zip(values, values[1:]))
    assert values[0] == 0 and values[-1] == WAD


def test_norm_cdf_non_decreasing_wei_by_wei():
    rng = random.Random(3)
    for _ in range(300):
        x0 = rng.randrange(-9 * WAD, 9 * WAD)
        values = [om.norm_cdf(x) for x in range(x0, x0 + 300)]
        assert all(a <= b for a, b in zip(values, values[1:])), x0


def test_norm_cdf_saturates_at_the_cut():
    # the tail computes to 0 from 8.7534e18 on, so the cut changes nothing
    assert om._tail(8_753_403_618_931_743_584, om.exp_wad(-om._half_square(8_753_403_618_931_743_584))) == 1
    a = 8_753_403_618_931_743_585
    assert om._tail(a, om.exp_wad(-om._half_square(a))) == 0
    assert om.norm_cdf(om.NORM_CDF_CUT) == WAD and om.norm_cdf(-om.NORM_CDF_CUT) == 0


def test_rational_strictly_decreasing():
    """Every coefficient of P'Q - PQ' is negative: P/Q strictly decreases on [0, inf) (the monotonicity argument)."""
    p = [Fraction(c) for c in reversed(om._P)]
    q = [Fraction(c) for c in reversed(om._Q)]

    def mul(a, b):
        out = [Fraction(0)] * (len(a) + len(b) - 1)
        for i, x in enumerate(a):
            for j, y in enumerate(b):
                out[i + j] += x * y
        return out

    def der(a):
        return [i * a[i] for i in range(1, len(a))]

    lhs, rhs = mul(der(p), q), mul(p, der(q))
    rhs += [Fraction(0)] * (len(lhs) - len(rhs))
    assert all(x - y < 0 for x, y in zip(lhs, rhs))


# ---------------------------------------------------------------------------------------------- price
def _grid_options():
    for i in range(-40, 41):
        strike = int(D_WAD / (Decimal(i) / 20).exp())
        for v in (10**14, 10**16, 10**17, 4 * 10**17, WAD, 3 * WAD, 10 * WAD):
            for is_call in (True, False):
                yield is_call, 2000 * WAD, 2000 * strike, v


def test_price_error_within_bound_on_grid():
    for is_call, spot, strike, v in _grid_options():
        got = om.price(is_call, spot, strike, _ln_m(spot, strike), v)
        assert abs(Decimal(got) - price_reference(is_call, spot, strike, v)) <= _price_bound(spot, strike)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(is_call=st.booleans(), spot=SPOTS, ratio=st.floats(-20, 20), v=STD_DEVS)
def test_price_error_within_bound_random(is_call, spot, ratio, v):
    strike = min(max(int(spot * np.exp(ratio)), 10**12), 10**30)
    got = om.price(is_call, spot, strike, _ln_m(spot, strike), v)
    assert abs(Decimal(got) - price_reference(is_call, spot, strike, v)) <= _price_bound(spot, strike)


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(spot=SPOTS, strike=SPOTS, v=STD_DEVS, skew=st.integers(-3, 3))
def test_price_bounds_and_parity_exact(spot, strike, v, skew):
    ln_m = _ln_m(spot, strike) + skew  # a caller's ln a few wei off
    call = om.price(True, spot, strike, ln_m, v)
    put = om.price(False, spot, strike, ln_m, v)
    assert max(spot - strike, 0) <= call <= spot
    assert max(strike - spot, 0) <= put <= strike
    assert call - put == spot - strike


def test_price_at_zero_std_dev_is_intrinsic():
    for spot, strike in ((WAD, 2 * WAD), (2 * WAD, WAD), (WAD, WAD), (10**30, 10**12), (10**12, 10**30)):
        ln_m = _ln_m(spot, strike)
        assert om.price(True, spot, strike, ln_m, 0) == max(spot - strike, 0)
        assert om.price(False, spot, strike, ln_m, 0) == max(strike - spot, 0)


def test_price_deep_in_and_out_of_the_money():
    spot = 3000 * WAD
    for strike in (spot // 10**6, spot * 10**6):
        ln_m = _ln_m(spot, strike)
        for v in (10**12, 10**17, WAD):
            assert om.price(True, spot, strike, ln_m, v) == max(spot - strike, 0)
            assert om.price(False, spot, strike, ln_m, v) == max(strike - spot, 0)
    # stdDev far above the domain of interest: the call tends to S, the put to K
    assert om.price(True, spot, spot, 0, 100 * WAD) == spot
    assert om.price(False, spot, 2 * spot, _ln_m(spot, 2 * spot), 100 * WAD) == 2 * spot


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(is_call=st.booleans(), spot=SPOTS, ratio=st.floats(-3, 3), v=st.integers(10**9, 5 * WAD),
       bump=st.integers(1, WAD // 10))
def test_price_non_decreasing_in_std_dev_within_rounding(is_call, spot, ratio, v, bump):
    strike = min(max(int(spot * np.exp(ratio)), 10**12), 10**30)
    ln_m = _ln_m(spot, strike)
    lo = om.price(is_call, spot, strike, ln_m, v)
    hi = om.price(is_call, spot, strike, ln_m, v + bump)
    assert hi >= lo - 2 * _price_bound(spot, strike)


def test_price_outside_domain_raises():
    for args in ((True, 0, WAD, 0, WAD), (True, WAD, 2**128 + 1, 0, WAD), (True, WAD, WAD, -(2**128), WAD),
                 (False, WAD, WAD, 0, 2**128)):
        with pytest.raises(om.OptionMathDomainError, match="OptionOutOfDomain"):
            om.price(*args)
    with pytest.raises(om.OptionMathDomainError, match="LnOutOfDomain"):
        om.ln_wad(0)
    with pytest.raises(om.OptionMathDomainError, match="StdDevOutOfDomain"):
        om.std_dev(2**96, 1)


# ---------------------------------------------------------------------------------------------- helpers
def test_std_dev_is_the_exact_floor():
    rng = random.Random(4)
    assert om.std_dev(WAD, 0) == 0 and om.std_dev(WAD, om.SECONDS_PER_YEAR) == WAD
    for _ in range(2000):
        sigma, seconds = rng.randrange(0, 5 * WAD), rng.randrange(0, 5 * om.SECONDS_PER_YEAR)
        v = om.std_dev(sigma, seconds)
        assert v == isqrt(sigma * sigma * seconds // om.SECONDS_PER_YEAR)
        assert v * v * om.SECONDS_PER_YEAR <= sigma * sigma * seconds < (v + 1) ** 2 * om.SECONDS_PER_YEAR


def test_solady_ports():
    rng = random.Random(5)
    for _ in range(3000):
        x = rng.randrange(0, 2 ** rng.randrange(1, 257))
        assert om.sqrt(x) == isqrt(x)
    for _ in range(1000):
        x = rng.randrange(1, 2 ** rng.randrange(1, 255))
        assert abs(om.ln_wad(x) - (Decimal(x) / D_WAD).ln() * D_WAD) < 2
        y = rng.randrange(-41 * WAD, 40 * WAD)
        ref = (Decimal(y) / D_WAD).exp() * D_WAD
        assert abs(om.exp_wad(y) - ref) <= ref * Decimal("1e-17") + 1


# ---------------------------------------------------------------------------------------------- float twin
def test_float_price_matches_exact():
    rng = random.Random(6)
    for _ in range(500):
        spot, strike = rng.uniform(1, 1e5), rng.uniform(1, 1e5)
        v = rng.choice([0.0, rng.uniform(1e-4, 5)])
        is_call = rng.random() < 0.5
        s, k, vw = int(spot * 1e18), int(strike * 1e18), int(v * 1e18)
        exact = om.price(is_call, s, k, _ln_m(s, k), vw) / 1e18
        approx = float(om.price_np(is_call, s / 1e18, k / 1e18, vw / 1e18))
        assert approx == pytest.approx(exact, rel=1e-9, abs=1e-9 * (spot + strike))


def test_float_greeks_match_finite_differences():
    spot, strike = np.array([80.0, 100.0, 125.0]), 100.0
    sigma, t = 0.6, 0.25
    v = sigma * np.sqrt(t)
    h = 1e-3
    for is_call in (True, False):
        num_delta = (om.price_np(is_call, spot + h, strike, v) - om.price_np(is_call, spot - h, strike, v)) / (2 * h)
        assert np.allclose(om.delta_np(is_call, spot, strike, v), num_delta, atol=1e-6)
    num_gamma = (om.price_np(True, spot + h, strike, v) - 2 * om.price_np(True, spot, strike, v)
                 + om.price_np(True, spot - h, strike, v)) / h**2
    assert np.allclose(om.gamma_np(spot, strike, v), num_gamma, rtol=1e-4)
    ds = 1e-6
    num_vega = (om.price_np(True, spot, strike, (sigma + ds) * np.sqrt(t))
                - om.price_np(True, spot, strike, (sigma - ds) * np.sqrt(t))) / (2 * ds)
    assert np.allclose(om.vega_np(spot, strike, v, t), num_vega, rtol=1e-6)
    dt = 1e-7  # theta: the value's change per year of calendar time, T falling
    num_theta = (om.price_np(False, spot, strike, sigma * np.sqrt(t - dt))
                 - om.price_np(False, spot, strike, sigma * np.sqrt(t + dt))) / (2 * dt)
    assert np.allclose(om.theta_np(spot, strike, v, t), num_theta, rtol=1e-5)


def test_float_functions_broadcast_and_handle_zero_std_dev():
    spot = np.linspace(50, 150, 5)[:, None]
    v = np.array([0.0, 0.1, 0.5])[None, :]
    assert om.price_np(True, spot, 100.0, v).shape == (5, 3)
    assert np.array_equal(om.price_np(True, spot, 100.0, v)[:, 0], np.maximum(spot[:, 0] - 100, 0))
    assert np.array_equal(om.price_np(False, spot, 100.0, v)[:, 0], np.maximum(100 - spot[:, 0], 0))
    assert om.delta_np(np.array([True, False]), 120.0, 100.0, 0.0).tolist() == [1.0, 0.0]
    for f in (om.gamma_np(spot, 100.0, v), om.vega_np(spot, 100.0, v, 0.5), om.theta_np(spot, 100.0, v, 0.5)):
        assert f.shape == (5, 3) and np.all(np.isfinite(f)) and np.all(f[:, 0] == 0)
