"""The float option margin (offchain.margin.vector, docs/options.md), the standard option rule and the options
section of efficiency.json (offchain.risk.option_backtest) on a slice of real history."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from offchain.margin.defaults import DEFAULT_SPEC, OPTIONS_DEFAULT
from offchain.margin.vector import (MarginArrays, OptionArrays, OptionBook, Portfolio, asset_grid, directional_curvature,
                                    margin, option_terms, requirement, series_grid)
from offchain.risk.crypto_history import exchange_history, fetch_database
from offchain.risk.option_backtest import BOOKS, Grid, options_section, standard_option

K = 4
PRICES = np.array([60_000.0, 3_000.0, 150.0, 15.0])
SIGMA = np.array([0.6, 0.8, 1.0, 1.0])
DATA_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "data"  # where make risk-report keeps it


def arrays() -> MarginArrays:
    return MarginArrays.from_config(DEFAULT_SPEC.margin_config(), K, len(DEFAULT_SPEC.haircuts))


def oarrays(**update) -> OptionArrays:
    return OptionArrays.from_params(OPTIONS_DEFAULT.model_copy(update=update), K)


def listing(size: np.ndarray) -> OptionBook:
    """Series: 0 BTC call 60k 30d, 1 BTC put 60k 30d, 2 ETH call 3.3k 7d, 3 ETH put 2.7k 7d."""
    return OptionBook(size=np.atleast_2d(np.asarray(size, float)), asset=np.array([0, 0, 1, 1]),
                      is_call=np.array([True, False, True, False]),
                      strike=np.array([60_000.0, 60_000.0, 3_300.0, 2_700.0]), expiry=np.array([30, 30, 7, 7]) / 365)


def mm_of(book: OptionBook, oarr: OptionArrays, delta: np.ndarray | None = None) -> np.ndarray:
    arr = arrays()
    a = len(book.size)
    d = np.zeros((a, K)) if delta is None else delta
    return requirement(d, np.abs(d), arr, None, option_terms(book, PRICES, SIGMA, arr, oarr))[0]


def test_option_params_decode_to_fractions():
    o = OptionArrays.from_params(OPTIONS_DEFAULT, K)
    assert o.vol_up == OPTIONS_DEFAULT.vol_up_bps / 1e4 and o.vol_down == OPTIONS_DEFAULT.vol_down_bps / 1e4
    assert o.steps == OPTIONS_DEFAULT.steps and o.short_min == OPTIONS_DEFAULT.short_min_bps / 1e4
    assert o.skew.tolist() == [OPTIONS_DEFAULT.skew_bps.get(a, 0) / 1e4 for a in range(K)]
    assert o.spot_points().tolist() == list(range(-o.steps, o.steps + 1))


def test_linear_book_margin_is_unchanged_by_an_empty_option_book():
    rng = np.random.default_rng(3)
    a, m, j = 50, 4, 4
    pf = Portfolio(rng.normal(0, 1e4, a), rng.normal(0, 2, (a, m)), rng.normal(0, 1e4, (a, m)),
                   np.abs(rng.normal(0, 1, (a, j))), np.arange(m), np.arange(j), K)
    arr = arrays()
    scen = PRICES * np.exp(rng.normal(0, 0.05, (3, K)))
    before = margin(pf, scen, arr)
    empty = listing(np.zeros((a, 4)))
    after = margin(pf, scen, arr, empty, oarrays(), np.broadcast_to(SIGMA, (3, K)))
    np.testing.assert_allclose(after.maintenance, before.maintenance, rtol=1e-12)
    np.testing.assert_allclose(after.equity, before.equity, rtol=1e-12)
    assert np.all(after.options.b == 0) and np.all(after.options.a2 == 0) and np.all(after.options.m == 0)
    # the perps-only call itself is the formula of exact.breakdown (tests/unit/test_risk_models.py); no option
    # terms and None are the same evaluation
    _, delta, gross = pf.exposure(PRICES, arr.haircut)
    np.testing.assert_array_equal(requirement(delta, gross, arr)[0], requirement(delta, gross, arr, None, None)[0])


def test_single_short_call_mm_covers_its_worst_grid_loss():
    arr, oarr = arrays(), oarrays()
    book = listing([-1.0, 0, 0, 0])
    grid = asset_grid(book, series_grid(book, PRICES, SIGMA, arr.rw, oarr), K)
    a2, b = directional_curvature(grid)
    worst = grid.max()
    assert worst > 0
    assert abs(a2[0, 0]) / 2 + b[0, 0] >= worst - 1e-9  # |WS| + B bounds the scan from above (one underlying)
    assert mm_of(book, oarr)[0] >= worst


@pytest.mark.parametrize("size", [[-1.0, -1.0, 0, 0], [1.0, 0, 0, 0], [0, 0, -2.0, 1.0], [-1.0, 1.0, 1.0, -1.0]])
def test_mm_is_monotone_in_the_volatility_shocks_and_the_short_minimum(size):
    book = listing(size)
    base = dict(vol_up_bps=4000, vol_down_bps=2000, short_min_bps=50)
    mm0 = mm_of(book, oarrays(**base))[0]
    for key, more in (("vol_up_bps", 7500), ("vol_down_bps", 4500), ("short_min_bps", 200)):
        assert mm_of(book, oarrays(**{**base, key: more}))[0] >= mm0 - 1e-9, key


def test_synthetic_forward_margins_like_a_perpetual():
    """Long call + short put at one strike is S - K (zero rate): its directional part is 2 RW S per unit, its
    curvature 0, and its margin that of a long perpetual of the same size (short minimum 0)."""
    arr, oarr = arrays(), oarrays(short_min_bps=0)
    book = listing([1.0, -1.0, 0, 0])
    terms = option_terms(book, PRICES, SIGMA, arr, oarr)
    assert terms.a2[0, 0] == pytest.approx(2 * arr.rw[0] * PRICES[0], rel=1e-9)
    assert terms.b[0, 0] == pytest.approx(0.0, abs=1e-6)
    perp = np.zeros((1, K))
    perp[0, 0] = PRICES[0]
    assert mm_of(book, oarr)[0] == pytest.approx(requirement(perp, perp, arr)[0][0], rel=1e-9)
    # and it nets against a short perpetual of the same size, down to the floor (on the linear exposure only)
    assert mm_of(book, oarr, -perp)[0] == pytest.approx(arr.floor * PRICES[0], rel=1e-9)


def test_call_and_put_curvature_agree_at_one_strike():
    """Put-call parity: a call and a put at the same strike differ by a linear position, so their curvature
    parts are equal and their directional parts differ by 2 RW S."""
    arr, oarr = arrays(), oarrays()
    call, put = option_terms(listing([-1.0, 0, 0, 0]), PRICES, SIGMA, arr, oarr), \
        option_terms(listing([0, -1.0, 0, 0]), PRICES, SIGMA, arr, oarr)
    assert call.b[0, 0] == pytest.approx(put.b[0, 0], rel=1e-9)
    assert call.a2[0, 0] - put.a2[0, 0] == pytest.approx(-2 * arr.rw[0] * PRICES[0], rel=1e-9)


def test_no_options_means_no_curvature_and_scenarios_broadcast():
    arr, oarr = arrays(), oarrays()
    book = listing(np.array([[0, 0, 0, 0], [-1.0, 0, 1.0, 0]]))
    scen, sig = PRICES * np.array([[1.0], [0.8]]), SIGMA * np.array([[1.0], [1.5]])  # a crash that spikes volatility
    t = option_terms(book, scen, sig, arr, oarr)
    assert t.a2.shape == (2, 2, K) and t.o.shape == (2, 2, len(arr.stress)) and t.m.shape == (2, 2)
    assert np.all(t.b[:, 0] == 0) and np.all(t.o[:, 0] == 0)
    one = option_terms(book, scen[1], sig[1], arr, oarr)
    np.testing.assert_allclose(t.b[1], one.b, rtol=1e-12)
    # a listing per account gives the same terms as the shared one
    per = OptionBook(book.size, *(np.broadcast_to(v, book.size.shape) for v in (book.asset, book.is_call, book.strike,
                                                                              book.expiry)))
    np.testing.assert_allclose(option_terms(per, scen, sig, arr, oarr).o, t.o, rtol=1e-12)


def test_standard_rule_worked_example():
    """S = 100: short call K 110 mark 2, short put K 90 mark 1.5, long call (nothing)."""
    is_call = np.array([True, False, True])
    strike, mark, size = np.array([110.0, 90.0, 100.0]), np.array([2.0, 1.5, 5.0]), np.array([-1.0, -2.0, 3.0])
    mm = standard_option(is_call, 100.0, strike, mark, size)
    im = standard_option(is_call, 100.0, strike, mark, size, initial=True)
    # call: 0.075 x 100 + 2; put: 2 x (max(7.5, 0.1125) + 1.5)
    assert mm.tolist() == pytest.approx([9.5, 18.0, 0.0])
    # call: max(0.15 - 10/100, 0.10) x 100 + 2 = 12; put: 2 x max(max(0.05, 0.10) x 100 + 1.5, 9) = 23
    assert im.tolist() == pytest.approx([12.0, 23.0, 0.0])


def test_options_section_on_a_slice_of_history():
    db = fetch_database(DATA_CACHE)
    h = exchange_history(db, "bitstamp", start="2018-01-01", end="2018-05-31")
    grid = Grid(vol_up_bps=(4000,), vol_down_bps=(2000,), steps=(2,), short_min_bps=(50,))
    # a deliberately thin margin (1% risk weights, no stress vectors) so that some rows fail
    thin = DEFAULT_SPEC.model_copy(update={"risk_weights": {a: 100 for a in range(4)}, "stress": []})
    for spec in (DEFAULT_SPEC, thin):
        out = options_section({"bitstamp": h}, spec, grid=grid)
        assert {"books", "vol_proxy", "standard_rule", "by_kind", "rows", "calibration", "grid_size"} <= set(out)
        assert len(out["rows"]) == 3 * len(BOOKS)
        assert [g["steps"] for g in out["grid_size"]] == [1, 2, 3, 4]
        assert len(out["calibration"]["results"]) == 1
        for r in out["rows"]:
            assert r["test_applied"] == "coverage"
            assert r["passes"] == (r["exceptions"] <= int(0.01 * r["days"] + 1e-9))
            if not r["passes"]:
                assert r["saving_mm"] is None and r["saving_im"] is None
        for k in out["by_kind"]:
            if not k["passes"]:
                assert k["saving_mm"] is None
    assert any(not r["passes"] for r in out["rows"])  # the thin margin fails somewhere
    assert out["calibration"]["chosen"] is None
