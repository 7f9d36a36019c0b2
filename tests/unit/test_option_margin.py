"""The option part of the margin (OptionMargin.sol, and PortfolioMargin with it) against the Python mirror, to the wei,
on random books (hypothesis): calls and puts on two assets, long and short, live, expired but not fixed, and fixed,
maturities from zero to 400 days, strikes from half to twice the spot, every grid size, random linear deltas of the
same assets; and the properties docs/options.md states (a one-asset book pays exactly its scan, a long option never
needs more than its grid loss, a linear book is margined as without options).
"""
import pytest
from brownie import MarginHarness, accounts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain.margin import exact as mm
from offchain.margin import options as om
from offchain.margin.defaults import DEFAULT_SPEC, OPTIONS_DEFAULT

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

WAD = 10**18
NOW = 1_800_000_000
DAY = 86_400
CFG = DEFAULT_SPEC.margin_config()
SPOTS = (60_000 * WAD, 3_000 * WAD)


@pytest.fixture(scope="module")
def harness():
    return MarginHarness.deploy({"from": accounts[0]})


@st.composite
def books(draw, max_positions=4):
    n = draw(st.integers(1, max_positions))
    positions = []
    for _ in range(n):
        asset = draw(st.integers(0, 1))
        spot = SPOTS[asset]
        strike = spot * draw(st.integers(50, 200)) // 100
        state = draw(st.sampled_from(["live", "live", "live", "expired", "fixed"]))
        expiry = NOW + draw(st.integers(1, 400 * DAY)) if state == "live" else NOW - draw(st.integers(0, DAY))
        fixed = spot * draw(st.integers(50, 200)) // 100 if state == "fixed" else 0
        size = draw(st.integers(10**15, 100 * WAD)) * draw(st.sampled_from([1, -1]))
        positions.append(om.OptionPosition(om.Series(asset, draw(st.booleans()), strike, expiry, fixed), size))
    vols = [draw(st.integers(5 * 10**16, 3 * WAD)), draw(st.integers(5 * 10**16, 3 * WAD))] + [0] * 6
    delta = [draw(st.integers(-10**24, 10**24)), draw(st.integers(-10**24, 10**24))] + [0] * 6
    steps = draw(st.integers(1, 4))
    word = OPTIONS_DEFAULT.model_copy(update={"steps": steps}).word()
    return positions, vols, delta, word


def _inputs(vols, delta, word):
    return (list(SPOTS) + [0] * 6, vols, delta, CFG.global_word, list(CFG.stress), word, NOW)


def _chain(p):
    s = p.series
    return (s.asset, s.is_call, s.strike, s.expiry, s.fixed_price, p.size)


def _mirror(positions, vols, delta, word):
    market = om.OptionMarket({}, vols, word, NOW)
    return om.option_risk(positions, list(SPOTS) + [0] * 6, delta, CFG.global_word, CFG.stress, CFG.num_stress,
                          market)


def _tuple(r: om.OptionRisk):
    return (r.value, r.notional, tuple(r.ws), r.curvature, r.short_minimum, tuple(r.stress), r.assets)


@settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(book=books())
def test_option_risk_equals_mirror(harness, book):
    positions, vols, delta, word = book
    onchain = harness.optionRisk([_chain(p) for p in positions], _inputs(vols, delta, word))
    got = (int(onchain[0]), int(onchain[1]), tuple(int(x) for x in onchain[2]), int(onchain[3]), int(onchain[4]),
           tuple(int(x) for x in onchain[5]), int(onchain[6]))
    assert got == _tuple(_mirror(positions, vols, delta, word))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(book=books())
def test_breakdown_with_options_equals_mirror(harness, book):
    positions, vols, delta, word = book
    risk = _mirror(positions, vols, delta, word)
    gross = [abs(d) + 10**22 for d in delta[:2]] + [0] * 6
    expected = mm.breakdown(delta, gross, CFG, 0, risk)
    cfg = (CFG.global_word, CFG.corr0, CFG.corr1, CFG.haircuts, list(CFG.stress), CFG.addons, CFG.depths)
    b = harness.breakdownWithOptions(delta, gross, 0, _tuple(risk), cfg)
    assert (int(b[5]), int(b[6]), int(b[3])) == (expected.maintenance, expected.initial, expected.basis)
    assert (int(b[9]), int(b[10]), int(b[1])) == (expected.curvature, expected.short_minimum, expected.k_stress)


# ------------------------------------------------------------------------------------------------ properties
def _scan(positions, vols, delta, word, asset):
    """The worst loss of the asset's whole book over the grid (options revalued, the linear delta moved with the
    spot), rounded up: the spec's scan, from the grid of option values."""
    n = om.grid_steps(word)
    rw = CFG.risk_weight(asset)
    mine = [p for p in positions if p.series.asset == asset and not p.series.fixed_price]
    sc = om._Scan(mine, SPOTS[asset], rw, n, vols[asset], word, asset, NOW)
    loss = sc.grid()
    worst = max(n * 10_000 * loss[x + n][j] - x * rw * delta[asset] for x in range(-n, n + 1) for j in range(3))
    return mm.ceil_div(worst, n * 10_000) if worst > 0 else 0


@settings(max_examples=60, deadline=None)
@given(book=books())
def test_one_asset_pays_its_scan(book):
    positions, vols, delta, word = book
    positions = [p for p in positions if p.series.asset == 0]
    if not positions or all(p.series.fixed_price for p in positions):
        return
    risk = _mirror(positions, vols, delta, word)
    assert abs(risk.ws[0]) + risk.curvature == _scan(positions, vols, delta, word, 0)


@settings(max_examples=60, deadline=None)
@given(book=books(max_positions=1))
def test_long_option_never_needs_more_than_its_value(book):
    positions, vols, _, word = book
    p = positions[0]
    if p.series.fixed_price:
        return
    long = om.OptionPosition(p.series, abs(p.size))
    risk = _mirror([long], vols, [0] * 8, word)
    b = mm.breakdown([0] * 8, [0] * 8, CFG, 0, risk)
    assert risk.short_minimum == 0
    assert b.k_correlated + b.curvature <= risk.value + 1  # the scan of a long option is at most its value


def test_linear_book_is_margined_as_without_options():
    """An option asset whose options cancel (a long and a short of the same series) leaves a perpetual's margin as it
    was: WS = ceil(RW |D| / 1e4) signed, no curvature."""
    series = om.Series(0, True, SPOTS[0], NOW + 30 * DAY)
    positions = [om.OptionPosition(series, WAD), om.OptionPosition(series, -WAD)]
    delta = [-7 * 10**22, 0, 0, 0, 0, 0, 0, 0]
    risk = _mirror(positions, [6 * 10**17] + [0] * 7, delta, OPTIONS_DEFAULT.word())
    plain = mm.breakdown(delta, [abs(delta[0])] + [0] * 7, CFG)
    assert risk.ws[0] == -mm.mul_div_up(7 * 10**22, CFG.risk_weight(0), 10_000)
    assert risk.curvature == 0 and risk.value == 0
    with_options = mm.breakdown(delta, [abs(delta[0])] + [0] * 7, CFG, 0, risk)
    assert with_options.k_correlated == plain.k_correlated
    assert with_options.maintenance == plain.maintenance + risk.short_minimum
