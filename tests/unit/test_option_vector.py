"""The float option margin (offchain.margin.vector, docs/options.md), its agreement with the exact mirror
(offchain.margin.exact / offchain.margin.options), the standard option rule and the options section of
efficiency.json (offchain.risk.option_backtest) on a slice of real history."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from offchain.margin.defaults import BTC, DEFAULT_SPEC, ETH, LINK, OPTIONS_DEFAULT, SOL
from offchain.margin.exact import WAD, AccountState, Layout, account_margin
from offchain.margin.optionmath import SECONDS_PER_YEAR
from offchain.margin.options import OptionMarket, Series, stress_point
from offchain.margin.vector import (MarginArrays, OptionArrays, OptionBook, Portfolio, margin, option_terms,
                                    requirement, scan_parts, series_stress, stress_points, stress_worst)
from offchain.risk.crypto_history import exchange_history, fetch_database
from offchain.risk.option_backtest import BOOKS, Grid, grid_gap, options_section, standard_option

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


def parts(book: OptionBook, oarr: OptionArrays, delta: np.ndarray | None = None):
    """(WS, B, terms) of ``book`` at PRICES, SIGMA with the linear delta ``delta`` (A, K) (None: 0)."""
    arr = arrays()
    terms = option_terms(book, PRICES, SIGMA, arr, oarr)
    d = np.zeros((len(book.size), K)) if delta is None else delta
    ws, b = terms.parts(d, arr.rw)
    return ws, b, terms


def scan_of(terms, delta: np.ndarray, asset: int, account: int = 0) -> float:
    """The asset's scan computed directly: the worst loss of options plus linear delta over the grid."""
    arr = arrays()
    grid = terms.grid[account, asset]
    n = (grid.shape[0] - 1) // 2
    moves = np.arange(-n, n + 1) / n * arr.rw[asset]
    return max(0.0, float((grid - moves[:, None] * delta[account, asset]).max()))


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
    # the scan of a linear book is its linear charge, to the last bit: WS = RW D, B = 0
    np.testing.assert_array_equal(after.maintenance, before.maintenance)
    np.testing.assert_allclose(after.equity, before.equity, rtol=1e-12)
    ws, b = after.options.parts(after.delta, arr.rw)
    np.testing.assert_array_equal(ws, after.delta * arr.rw)
    assert np.all(b == 0) and np.all(after.options.grid == 0) and np.all(after.options.m == 0)
    # the perps-only call itself is the formula of exact.breakdown (tests/unit/test_risk_models.py); no option
    # terms and None are the same evaluation
    _, delta, gross = pf.exposure(PRICES, arr.haircut)
    np.testing.assert_array_equal(requirement(delta, gross, arr)[0], requirement(delta, gross, arr, None, None)[0])


def test_assets_without_options_keep_their_linear_sensitivity():
    """Options on BTC only: ETH's, SOL's and LINK's weighted sensitivities are RW D exactly, with no curvature."""
    rng = np.random.default_rng(5)
    arr = arrays()
    delta = rng.normal(0, 1e5, (20, K))
    book = listing(np.column_stack([rng.normal(0, 2, 20), rng.normal(0, 2, 20), np.zeros(20), np.zeros(20)]))
    ws, b, _ = parts(book, oarrays(), delta)
    np.testing.assert_array_equal(ws[:, 1:], delta[:, 1:] * arr.rw[1:])
    assert np.all(b[:, 1:] == 0)
    np.testing.assert_array_equal(scan_parts(np.zeros((20, K, 5, 3)), delta, arr.rw)[0], delta * arr.rw)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_one_asset_book_pays_its_scan(steps):
    """|WS| + B is the scan of options and linear delta together, for any book on one underlying; the margin of a
    one-asset book with no stress loss above it is the scan plus the short minimum."""
    rng = np.random.default_rng(steps)
    oarr = oarrays(steps=steps)
    sizes = rng.normal(0, 1, (40, 4)) * (rng.random((40, 4)) < 0.7)
    sizes[:, 2:] = 0  # BTC only
    delta = np.zeros((40, K))
    delta[:, 0] = rng.normal(0, 1, 40) * PRICES[0] * (rng.random(40) < 0.6)
    book = listing(sizes)
    ws, b, terms = parts(book, oarr, delta)
    scans = np.array([scan_of(terms, delta, 0, i) for i in range(40)])
    np.testing.assert_allclose(np.abs(ws[:, 0]) + b[:, 0], scans, rtol=1e-12, atol=1e-9)
    assert np.all(b >= 0) and np.all(np.abs(ws[:, 0]) <= scans + 1e-9)
    arr = arrays()
    mm = requirement(delta, np.abs(delta), arr, None, terms)[0]
    k_s = np.maximum((-delta @ arr.stress.T + terms.o).max(-1), 0.0)
    expected = np.maximum(np.maximum(scans, k_s) + terms.m, arr.floor * np.abs(delta).sum(-1))
    np.testing.assert_allclose(mm, expected, rtol=1e-12, atol=1e-9)


def test_single_short_call_mm_covers_its_worst_grid_loss():
    oarr = oarrays()
    book = listing([-1.0, 0, 0, 0])
    ws, b, terms = parts(book, oarr)
    worst = terms.grid.max()
    assert worst > 0
    assert abs(ws[0, 0]) + b[0, 0] == pytest.approx(worst, rel=1e-12)  # one underlying: exactly the scan
    assert ws[0, 0] < 0  # a short call loses when the price rises: like a short
    assert mm_of(book, oarr)[0] >= worst


@pytest.mark.parametrize("size", [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [1.0, 1.0, 0, 0], [0, 0, 3.0, 2.0],
                                  [1.0, 0.5, 2.0, 0], [0, 2.0, 0, 1.0]])
def test_long_options_never_need_more_than_their_value(size):
    """A long-only book: MM is at most its worst grid or stress loss, hence at most its value (the scan-based
    curvature; under the earlier |A2| / 2 + B split a long option could pay more than it is worth)."""
    arr, oarr = arrays(), oarrays()
    book = listing(size)
    value = book.values(PRICES, SIGMA, oarr).sum(-1)
    ws, b, terms = parts(book, oarr)
    scans = sum(abs(ws[0, k]) + b[0, k] for k in range(K))
    mm = mm_of(book, oarr)
    assert mm[0] <= max(scans, terms.o.max()) + 1e-9
    assert mm[0] <= value[0] * (1 + 1e-12)
    assert requirement(np.zeros((1, K)), np.zeros((1, K)), arr, None, terms)[1][0] <= arr.alpha * value[0] * (1 + 1e-12)


@pytest.mark.parametrize("size", [[-1.0, -1.0, 0, 0], [1.0, 0, 0, 0], [0, 0, -2.0, 1.0], [-1.0, 1.0, 1.0, -1.0]])
def test_mm_is_monotone_in_the_volatility_shocks_and_the_short_minimum(size):
    book = listing(size)
    base = dict(vol_up_bps=4000, vol_down_bps=2000, short_min_bps=50)
    mm0 = mm_of(book, oarrays(**base))[0]
    for key, more in (("vol_up_bps", 7500), ("vol_down_bps", 4500), ("short_min_bps", 200)):
        assert mm_of(book, oarrays(**{**base, key: more}))[0] >= mm0 - 1e-9, key


def test_synthetic_forward_margins_like_a_perpetual():
    """Long call + short put at one strike is S - K (zero rate): its directional part is RW S per unit, its
    curvature 0, and its margin that of a long perpetual of the same size (short minimum 0)."""
    arr, oarr = arrays(), oarrays(short_min_bps=0)
    book = listing([1.0, -1.0, 0, 0])
    ws, b, _ = parts(book, oarr)
    assert ws[0, 0] == pytest.approx(arr.rw[0] * PRICES[0], rel=1e-9)
    assert b[0, 0] == pytest.approx(0.0, abs=1e-6)
    perp = np.zeros((1, K))
    perp[0, 0] = PRICES[0]
    assert mm_of(book, oarr)[0] == pytest.approx(requirement(perp, perp, arr)[0][0], rel=1e-9)
    # and it nets against a short perpetual of the same size inside the scan, down to the floor (on the linear
    # exposure only)
    ws, b, _ = parts(book, oarr, -perp)
    assert abs(ws[0, 0]) + b[0, 0] == pytest.approx(0.0, abs=1e-6 * PRICES[0])
    assert mm_of(book, oarr, -perp)[0] == pytest.approx(arr.floor * PRICES[0], rel=1e-9)


def test_put_call_parity_in_the_scan():
    """A short call and a short put plus a long perpetual at the same strike are the same book (parity, zero
    rate): the same directional part and curvature."""
    oarr = oarrays()
    perp = np.zeros((1, K))
    perp[0, 0] = PRICES[0]
    call = parts(listing([-1.0, 0, 0, 0]), oarr, perp)
    put = parts(listing([0, -1.0, 0, 0]), oarr)
    assert call[0][0, 0] == pytest.approx(put[0][0, 0], rel=1e-6, abs=1e-6 * PRICES[0])
    assert call[1][0, 0] == pytest.approx(put[1][0, 0], rel=1e-6, abs=1e-6 * PRICES[0])


def test_no_options_means_no_curvature_and_scenarios_broadcast():
    arr, oarr = arrays(), oarrays()
    book = listing(np.array([[0, 0, 0, 0], [-1.0, 0, 1.0, 0]]))
    scen, sig = PRICES * np.array([[1.0], [0.8]]), SIGMA * np.array([[1.0], [1.5]])  # a crash that spikes volatility
    t = option_terms(book, scen, sig, arr, oarr)
    assert t.grid.shape == (2, 2, K, 2 * oarr.steps + 1, 3) and t.o.shape == (2, 2, len(arr.stress))
    assert t.m.shape == (2, 2)
    delta = np.zeros((2, 2, K))
    ws, b = t.parts(delta, arr.rw)
    assert np.all(b[:, 0] == 0) and np.all(ws[:, 0] == 0) and np.all(t.o[:, 0] == 0)
    one = option_terms(book, scen[1], sig[1], arr, oarr)
    np.testing.assert_allclose(t.grid[1], one.grid, rtol=1e-12)
    np.testing.assert_allclose(b[1], one.parts(delta[1], arr.rw)[1], rtol=1e-12)
    # a listing per account gives the same terms as the shared one
    per = OptionBook(book.size, *(np.broadcast_to(v, book.size.shape) for v in (book.asset, book.is_call, book.strike,
                                                                              book.expiry)))
    np.testing.assert_allclose(option_terms(per, scen, sig, arr, oarr).o, t.o, rtol=1e-12)


# ---------------------------------------------------------------------------------------------- float vs exact
LAYOUT = Layout((BTC, ETH, SOL, LINK), (BTC, ETH, SOL, LINK), (8, 18, 9, 18))
NOW = 1_700_000_000
UNIT = np.array([1.0, 20.0, 400.0, 4000.0])  # units of about 60k USD per asset


def random_accounts(rng: np.random.Generator, n_accounts: int, n_series: int = 16):
    """A shared listing of ``n_series`` series on BTC and ETH (and a few on SOL) and accounts holding 0-6 of them
    with perpetuals and collateral (integers, as the vault stores them)."""
    prices = [int(p * WAD) for p in PRICES]
    series = {}
    for i in range(n_series):
        asset = int(rng.choice([BTC, BTC, ETH, ETH, SOL]))
        strike = int(PRICES[asset] * rng.uniform(0.6, 1.5) * 100) * WAD // 100
        expiry = NOW + int(rng.integers(3_600, 200 * 86_400))
        series[i] = Series(asset, bool(rng.random() < 0.5), strike, expiry)
    states = []
    for _ in range(n_accounts):
        st = AccountState(settlement=int(rng.normal(0, 2e4) * WAD))
        for i in rng.choice(n_series, size=int(rng.integers(0, 7)), replace=False):
            st.options[int(i)] = int(rng.normal(0, 2) * UNIT[series[int(i)].asset] * 1e6) * 10**12
        for m in range(4):
            if rng.random() < 0.5:
                q = int(rng.normal(0, 1.5) * UNIT[m] * 1e6) * 10**12
                st.positions[m] = (q, q * prices[m] // WAD + int(rng.normal(0, 1e3) * WAD))
        for c in range(4):
            if rng.random() < 0.4:
                st.collateral[c] = int(abs(rng.normal(0, 1)) * UNIT[c] * 10 ** LAYOUT.collateral_decimals[c])
        states.append(st)
    return prices, series, states


def float_book(series: dict[int, Series], states: list[AccountState]) -> OptionBook:
    slots = sorted(series)
    size = np.array([[st.options.get(i, 0) / WAD for i in slots] for st in states])
    return OptionBook(size=size, asset=np.array([series[i].asset for i in slots]),
                      is_call=np.array([series[i].is_call for i in slots]),
                      strike=np.array([series[i].strike / WAD for i in slots]),
                      expiry=np.array([(series[i].expiry - NOW) / SECONDS_PER_YEAR for i in slots]))


@pytest.mark.parametrize("variant", ["default", "steps1", "steps3_scalers"])
def test_float_margin_agrees_with_the_exact_mirror(variant):
    """Random books of options, perpetuals and collateral: the float MM (vector.margin) within 1e-6 of the
    exact integer mirror (exact.account_margin with options.option_risk), and equity likewise."""
    spec, params = DEFAULT_SPEC, OPTIONS_DEFAULT
    if variant == "steps1":
        params = params.model_copy(update={"steps": 1, "vol_up_bps": 7500, "vol_down_bps": 4500})
    elif variant == "steps3_scalers":
        params = params.model_copy(update={"steps": 3, "short_min_bps": 200})
        spec = spec.model_copy(update={"vol_scalers": {BTC: 12_000, ETH: 15_000}, "correlation_break_bps": 3000})
    cfg = spec.margin_config()
    rng = np.random.default_rng({"default": 11, "steps1": 12, "steps3_scalers": 13}[variant])
    prices, series, states = random_accounts(rng, 60)
    vols = [int(v * WAD) for v in SIGMA]
    market = OptionMarket(series, vols, params.word(), NOW)
    exact = [account_margin(st, LAYOUT, prices, cfg, None, market) for st in states]
    arr = MarginArrays.from_config(cfg, K, len(LAYOUT.collateral_asset))
    pf = Portfolio.from_states(states, LAYOUT, K)
    fl = margin(pf, PRICES, arr, float_book(series, states), OptionArrays.from_params(params, K), SIGMA)
    mm_exact = np.array([e.maintenance / WAD for e in exact])
    eq_exact = np.array([e.equity / WAD for e in exact])
    assert sum(e.options is not None for e in exact) > 40 and mm_exact.min() > 0
    np.testing.assert_allclose(fl.maintenance, mm_exact, rtol=1e-6)
    np.testing.assert_allclose(fl.equity, eq_exact, rtol=1e-6, atol=1e-6 * np.abs(eq_exact).max())
    # and the parts: each option asset's WS and the curvature
    ws, b = fl.options.parts(fl.delta, arr.rw)
    for i, e in enumerate(exact):
        if e.options is None:
            continue
        for a in range(K):
            if (e.options.assets >> a) & 1:
                assert ws[i, a] == pytest.approx(e.options.ws[a] / WAD, rel=1e-6, abs=1e-6 * PRICES[a] * UNIT[a])
        assert b[i].sum() == pytest.approx(e.options.curvature / WAD, rel=1e-6, abs=1e-3)


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
        assert {"books", "vol_proxy", "standard_rule", "by_kind", "rows", "calibration", "grid_size",
                "below_grid"} <= set(out)
        assert len(out["below_grid"]["results"]) == 16
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


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_stress_points_equal_the_exact_rule(n):
    """The float model's grid point of each stress shock is the contract's (trunc(shock n / RW), clamped), from the
    bps integers, including shocks that are grid points, beyond the grid and a zero risk weight."""
    rng = np.random.default_rng(n)
    shocks = np.concatenate([rng.integers(-9_999, 9_999, 200), [0, 1300, -1300, 650, -650, 2600, -2600, 433]])
    for rw in (1300, 2990, 1, 0):
        got = stress_points(shocks[:, None] / 1e4, np.array([rw / 1e4]), n)[:, 0]
        assert list(got) == [stress_point(n, rw, int(s)) for s in shocks]
    assert stress_point(2, 1300, 650) == 1 and stress_point(2, 1300, 649) == 0 and stress_point(2, 1300, -5000) == -2


def test_stress_reads_the_volatility_shock_worse_at_the_grid_point():
    """A short call loses more under the up shock at every point: its stress loss is the up-shock revaluation, more
    than under the down shock; a long call the reverse (the down shock)."""
    arr, o = arrays(), oarrays()
    for size, worse in ((-1.0, 1), (1.0, 0)):
        book = listing([size, 0, 0, 0])
        grid = option_terms(book, PRICES, SIGMA, arr, o).grid
        unit = series_stress(book, PRICES, SIGMA, arr.stress, o)
        per_asset = book.by_asset(unit, K, trailing=2)  # (1, K, nS, 2)
        got = stress_worst(grid, per_asset, stress_points(arr.stress, arr.rw, o.steps))
        np.testing.assert_allclose(got, per_asset[..., worse].sum(-2))
        assert (per_asset[0, BTC, :, worse] >= per_asset[0, BTC, :, 1 - worse]).all()


def test_grid_gap_finds_interior_worst_losses_and_the_short_minimum_covers_btc_at_two_steps():
    """grid_gap measures what the grid misses: a butterfly centred on a grid point has no gap at that grid size and
    one centred between points has; on BTC's risk weight the 2-step grid with the short minimum leaves nothing
    uncovered while the 1-step grid does (the default's reason, efficiency.json grid_gap)."""
    gap = grid_gap(1300)
    rows = {r["book"]: r for r in gap["rows"] if r["days"] == 30 and r["sigma"] == 0.5}
    assert rows["short_butterfly_c+0.5_w0.25"]["gap_2"] == 0.0 < rows["short_butterfly_c+0.5_w0.25"]["gap_1"]
    assert rows["short_butterfly_c+0.3_w0.25"]["gap_2"] > 0.0
    assert rows["short_call"]["gap_1"] == 0.0 and rows["short_straddle"]["gap_2"] == 0.0
    by_steps = {s["steps"]: s for s in gap["summary"]}
    assert by_steps[2]["books_uncovered"] == 0 < by_steps[1]["books_uncovered"]
