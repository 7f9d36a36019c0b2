"""The pure margin library against the Python mirror, to the wei, on random inputs (hypothesis).

Inputs cover mixed signs, hedged assets (gross > |delta|), random correlation matrices (including non-PSD ones,
where the charge clamps at zero), random stress vectors and extreme but in-domain magnitudes (|delta| up to 1e30,
i.e. a trillion USD).
"""
import pytest
from brownie import MarginHarness, accounts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain.margin import exact as mm
from offchain.margin.defaults import DEFAULT_SPEC

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def harness():
    return MarginHarness.deploy({"from": accounts[0]})


def _pack_u16(values):
    w = 0
    for i, v in enumerate(values):
        w |= (v & 0xFFFF) << (16 * i)
    return w


def _pack_stress(vectors):
    words = []
    for s in range(0, len(vectors), 2):
        w = 0
        for half, vec in enumerate(vectors[s:s + 2]):
            for k, v in enumerate(vec):
                w |= (v & 0xFFFF) << (128 * half + 16 * k)
        words.append(w)
    return tuple(words)


@st.composite
def configs(draw):
    rw = draw(st.lists(st.integers(100, 10_000), min_size=8, max_size=8))
    alpha = draw(st.integers(10_000, 30_000))
    basis = draw(st.integers(0, 2000))
    floor = draw(st.integers(0, 5000))
    ns = draw(st.integers(0, 16))
    g = _pack_u16(rw + [alpha, basis, floor]) | (ns << 176)
    corr = draw(st.lists(st.integers(-10_000, 10_000), min_size=28, max_size=28))
    c0, c1 = _pack_u16(corr[:16]), _pack_u16(corr[16:])
    haircuts = _pack_u16(draw(st.lists(st.integers(0, 10_000), min_size=16, max_size=16)))
    vectors = draw(st.lists(st.lists(st.integers(-10_000, 10_000), min_size=8, max_size=8), min_size=ns, max_size=ns))
    addons = 0
    if draw(st.booleans()):  # the dynamic add-ons: volatility add-ons per asset and a correlation break
        vol = draw(st.lists(st.sampled_from([0, 0, 1, 5_000, 29_999, 30_000]), min_size=8, max_size=8))
        addons = _pack_u16(vol + [draw(st.sampled_from([0, 1, 2_500, 9_999, 10_000]))])
    return mm.MarginConfig(g, c0, c1, haircuts, _pack_stress(vectors), addons)


magnitudes = st.one_of(st.integers(0, 10**6), st.integers(0, 10**24), st.integers(0, 10**30))


@st.composite
def exposures(draw):
    delta, gross = [], []
    for _ in range(8):
        if draw(st.booleans()):
            delta.append(0)
            gross.append(0)
            continue
        d = draw(magnitudes) * draw(st.sampled_from([1, -1]))
        hedge = draw(st.one_of(st.just(0), magnitudes))  # extra gross from offsetting legs in the same asset
        delta.append(d)
        gross.append(abs(d) + hedge)
    return delta, gross


def _chain_breakdown(harness, delta, gross, cfg, concentration=0):
    b = harness.breakdown(delta, gross, concentration, (cfg.global_word, cfg.corr0, cfg.corr1, cfg.haircuts,
                                                        list(cfg.stress), cfg.addons, cfg.depths))
    return mm.Breakdown(tuple(int(x) for x in b[0]), *(int(x) for x in b[1:]))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(cfg=configs(), exp=exposures(), concentration=st.one_of(st.just(0), magnitudes))
def test_breakdown_equals_mirror_random(harness, cfg, exp, concentration):
    delta, gross = exp
    assert _chain_breakdown(harness, delta, gross, cfg, concentration) == mm.breakdown(delta, gross, cfg, concentration)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(notional=st.one_of(magnitudes, st.integers(0, 2**110 - 1)), units=st.integers(0, 2**16 - 1))
def test_concentration_charge_equals_mirror_and_rounds_up(harness, notional, units):
    depth = units * mm.DEPTH_UNIT
    c = harness.concentrationCharge(notional, depth)
    assert c == mm.concentration_charge(notional, depth)
    if depth and notional:  # c >= N * sqrt(N / L), i.e. c^2 L >= N^3, and above it by the rounding of the root only
        assert c * c * depth >= notional**3
        below = c - (2 * notional // 10**18 + 2)  # the root is within 2e-18 of sqrt(N / L): c - 2N/1e18 - 2 < x
        assert below <= 0 or below * below * depth < notional**3


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(cfg=configs(), exp=exposures(), asset=st.integers(0, 7), step=st.integers(1, 30_000),
       brk=st.integers(1, 10_000))
def test_addons_never_lower_the_requirement(cfg, exp, asset, step, brk):
    """The rule that lets RiskParameters apply raises at once: a higher volatility scaler or correlation break never
    lowers MM (exact mirror, equal to the library by the test above)."""
    delta, gross = exp
    before = mm.breakdown(delta, gross, cfg).maintenance
    vol = min(mm.u16(cfg.addons, asset) + step, 30_000)
    raised = mm.MarginConfig(cfg.global_word, cfg.corr0, cfg.corr1, cfg.haircuts, cfg.stress,
                             (cfg.addons & ~(0xFFFF << (16 * asset))) | (vol << (16 * asset)))
    assert mm.breakdown(delta, gross, raised).maintenance >= before
    broken = mm.MarginConfig(cfg.global_word, cfg.corr0, cfg.corr1, cfg.haircuts, cfg.stress,
                             (cfg.addons & ~(0xFFFF << 128)) | (max(brk, cfg.correlation_break) << 128))
    assert mm.breakdown(delta, gross, broken).maintenance >= before


def _default_cfg():
    from offchain.margin.exact import MarginConfig

    s = DEFAULT_SPEC
    rw = [s.risk_weights.get(k, 10_000) for k in range(8)]
    corr = [0] * 28
    for (a, b), rho in s.correlations.items():
        corr[mm.pair_index(a, b)] = rho
    g = _pack_u16(rw + [s.alpha_bps, s.basis_bps, s.floor_bps]) | (len(s.stress) << 176)
    return MarginConfig(g, _pack_u16(corr[:16]), _pack_u16(corr[16:]), 0, _pack_stress([v.as_array() for v in s.stress]))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(exp=exposures())
def test_breakdown_default_params_equals_mirror(harness, exp):
    delta, gross = exp
    cfg = _default_cfg()
    assert _chain_breakdown(harness, delta, gross, cfg) == mm.breakdown(delta, gross, cfg)


@settings(max_examples=150, deadline=None)
@given(size=st.integers(-(10**30), 10**30), price=st.integers(1, 10**30))
def test_position_value_rounds_down(harness, size, price):
    v = harness.positionValueDown(size, price)
    assert v == mm.position_value_down(size, price)
    assert v * 10**18 <= size * price < (v + 1) * 10**18


def test_hedged_pair_needs_less_than_standard():
    """Worked example of docs/margin.md: long 1 BTC / short 20 ETH at 60,000 / 3,000 under the default parameters."""
    cfg = _default_cfg()
    usd = 10**18
    delta = [60_000 * usd, -60_000 * usd, 0, 0, 0, 0, 0, 0]
    b = mm.breakdown(delta, [abs(d) for d in delta], cfg)
    standard = 60_000 * usd * 1300 // 10_000 + 60_000 * usd * 2990 // 10_000
    assert b.maintenance == 18_306 * usd and b.worst_scenario == 3  # btc_down_alts_up binds
    assert b.maintenance < standard * 72 // 100  # 25,740 standard: a saving of 28.9%
    assert b.initial == 27_459 * usd


def test_non_psd_correlation_clamps_to_zero(harness):
    cfg = _default_cfg()
    # corr(BTC, ETH) = -100% with equal weighted sensitivities of the same sign: the form is exactly 0 in medium.
    corr = [0] * 28
    corr[mm.pair_index(0, 1)] = -10_000
    cfg = mm.MarginConfig(cfg.global_word, _pack_u16(corr[:16]), 0, 0, ())
    g = cfg.global_word & ~(0xFF << 176)
    cfg = mm.MarginConfig(g, cfg.corr0, 0, 0, ())
    rw0, rw1 = cfg.risk_weight(0), cfg.risk_weight(1)
    delta = [rw1 * 10**15, rw0 * 10**15, 0, 0, 0, 0, 0, 0]  # WS_0 = WS_1 = rw0 * rw1 * 1e11, exactly
    b = _chain_breakdown(harness, delta, [abs(d) for d in delta], cfg)
    assert b == mm.breakdown(delta, [abs(d) for d in delta], cfg)
    assert b.k_regime[1] == 0 and b.k_regime[2] == 0 and b.k_regime[0] > 0
