"""RiskParameters: every setter's bounds, indexes and access; tightening at once and loosening through the queue
(delay, ChangeNotReady, cancel); pause flags; discount/haircut consistency; stress vectors; and the packed words as
the off-chain mirror decodes them."""
from __future__ import annotations

from types import SimpleNamespace

import brownie
import pytest
from brownie import ZERO_ADDRESS, CrossMarginVault, OracleRouter, RiskParameters, TestToken, accounts, chain, web3
from eth_abi import decode
from brownie.exceptions import VirtualMachineError

from offchain.margin.defaults import FUNDING_DEFAULT
from tests.fixture_spec import FIXTURE_SPEC
from offchain.margin.exact import MarginConfig, pair_index, u16
from offchain.margin.params import apply_spec
from scripts.deploy import complete_vault_abi
from tests.conftest import NOW, b32, err, reverts_at

WAD = 10**18
HOUR = 3600
DAY = 86_400
DELAY = DAY
ADMIN_ROLE = b"\0" * 32
U112 = 2**112 - 1  # the MARKET word's fields
I96 = 2**95 - 1  # the largest cap setMarket accepts (positions are stored as int96)
OI1, SZ1 = FIXTURE_SPEC.markets[1].max_open_interest, FIXTURE_SPEC.markets[1].max_position_size


# ---------------------------------------------------------------------------------------------- decoding helpers
def words(params) -> tuple:
    """Every stored word (markets 0..3), to compare before and after a call."""
    g, c0, c1, h, stress, addons, depths = params.marginConfig()
    liq, disc = params.liquidationConfig()
    return (int(g), int(c0), int(c1), int(h), tuple(int(w) for w in stress), int(params.control()), int(liq),
            int(disc), tuple(int(params.marketWord(m)) for m in range(4)), int(params.fundingWord()), int(addons),
            int(depths), int(params.optionWord()))


def opt(params):
    """The OPTION word decoded (OptionParams)."""
    from offchain.margin.params import OptionParams

    return OptionParams.from_word(int(params.optionWord()))


def cfg(params) -> MarginConfig:
    return MarginConfig.from_chain(params.marginConfig())


def assert_stress_words(params) -> None:
    """marginConfig().stress is a fixed array of eight words: the ceil(numStress / 2) in use, then zeros."""
    raw = params.marginConfig()[4]
    c = cfg(params)
    used = (c.num_stress + 1) // 2
    assert len(raw) == 8
    assert all(int(w) == 0 for w in raw[used:]), (c.num_stress, raw)


def control(params) -> dict:
    c = int(params.control())
    return {"flags": c & 3, "band": (c >> 8) & 0xFFFF, "delay": (c >> 24) & 0xFFFFFFFF}


def market(params, m) -> dict:
    w = int(params.marketWord(m))
    return {"rate": w & 0xFFFF, "oi": (w >> 16) & U112, "size": (w >> 128) & U112}


def liquidation(params) -> dict:
    w = int(params.liquidationConfig()[0])
    return {"close": u16(w, 0), "penalty": u16(w, 1), "share": u16(w, 2), "deep": u16(w, 3),
            "reward": (w >> 64) & (2**96 - 1), "dust": w >> 160}


def discount(params, j) -> int:
    return u16(int(params.liquidationConfig()[1]), j)


def call_id(params, fn: str, *args) -> bytes:
    """The queue id of a call: keccak256 of the canonical call (selector and ABI-encoded arguments)."""
    return bytes(web3.keccak(hexstr=getattr(params, fn).encode_input(*args)))


def shocks(**by_asset) -> list[int]:
    names = ("btc", "eth", "sol", "link", "a4", "a5", "a6", "a7")
    return [by_asset.get(n, 0) for n in names]


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def params(deployer):
    """A RiskParameters set up exactly as scripts/deploy.py does (roles, then FIXTURE_SPEC), on its own: the suite
    needs no vault, and fewer deployed contracts keep the per-test snapshot/revert fast."""
    p = RiskParameters.deploy(deployer, {"from": deployer})
    p.grantRole(p.RISK_ADMIN_ROLE(), deployer, {"from": deployer})
    p.grantRole(p.GUARDIAN_ROLE(), deployer, {"from": deployer})
    apply_spec(p, FIXTURE_SPEC, deployer)
    return p


@pytest.fixture(scope="module")
def roles(params, deployer):
    """deployer: every role; guardian: GUARDIAN_ROLE only; risk: RISK_ADMIN_ROLE only; stranger: none."""
    guardian, risk, stranger = accounts[2], accounts[3], accounts[4]
    params.grantRole(params.GUARDIAN_ROLE(), guardian, {"from": deployer})
    params.grantRole(params.RISK_ADMIN_ROLE(), risk, {"from": deployer})
    return SimpleNamespace(admin=deployer, guardian=guardian, risk=risk, stranger=stranger,
                           RISK=bytes(params.RISK_ADMIN_ROLE()), GUARDIAN=bytes(params.GUARDIAN_ROLE()))


@pytest.fixture
def delayed(params, roles):
    """A loosening delay of one day (lengthening it tightens, so it applies at once)."""
    tx = params.setLoosenDelay(DELAY, {"from": roles.admin})
    assert "ChangeQueued" not in tx.events
    assert control(params)["delay"] == DELAY
    return DELAY


# ---------------------------------------------------------------------------------------------- decoding
def test_margin_word_decodes_default_spec(params):
    c = cfg(params)
    for k in range(8):
        assert c.risk_weight(k) == FIXTURE_SPEC.risk_weights.get(k, 10_000)  # unset assets fail closed at 100%
    assert (c.alpha, c.basis_addon, c.floor_rate) == (FIXTURE_SPEC.alpha_bps, FIXTURE_SPEC.basis_bps,
                                                      FIXTURE_SPEC.floor_bps)
    assert c.num_stress == len(FIXTURE_SPEC.stress) == 7
    assert_stress_words(params)  # ceil(7 / 2) = 4 words in use
    assert c.stress[3] != 0


def test_correlation_words_decode_default_spec(params):
    c = cfg(params)
    for a in range(8):
        for b in range(8):
            if a != b:
                expected = FIXTURE_SPEC.correlations.get((min(a, b), max(a, b)), 0)
                assert c.correlation(a, b) == expected


def test_stress_words_decode_default_spec(params):
    c = cfg(params)
    for s, vector in enumerate(FIXTURE_SPEC.stress):
        assert [c.shock(s, k) for k in range(8)] == vector.as_array()
    # the unused half of the last word is empty
    assert int(params.marginConfig()[4][3]) >> 128 == 0


def test_haircut_and_discount_words_decode_default_spec(params):
    c = cfg(params)
    for j in range(16):
        assert c.haircut(j) == FIXTURE_SPEC.haircuts.get(j, 10_000)
        assert discount(params, j) == FIXTURE_SPEC.discounts.get(j, 0)


def test_control_liquidation_and_market_words_decode_default_spec(params):
    assert control(params) == {"flags": 0, "band": FIXTURE_SPEC.price_band_bps, "delay": 0}
    lq = FIXTURE_SPEC.liquidation
    assert liquidation(params) == {"close": lq.close_factor_bps, "penalty": lq.penalty_bps,
                                   "share": lq.keeper_share_bps, "deep": lq.deep_bps,
                                   "reward": lq.min_keeper_reward, "dust": lq.dust}
    for m, mk in FIXTURE_SPEC.markets.items():
        assert market(params, m) == {"rate": mk.standard_mmr_bps, "oi": mk.max_open_interest,
                                     "size": mk.max_position_size}
        assert tuple(int(x) for x in params.tradeConfig(m)) == (int(params.control()), int(params.marketWord(m)))
    assert int(params.marketWord(4)) == 0  # unlisted market: caps zero (fail closed)


def test_set_correlation_negative_values_decode_in_both_words(params, roles):
    params.setCorrelation(2, 5, -1234, {"from": roles.admin})  # pair 15: top slot of word 0
    params.setCorrelation(6, 2, -4321, {"from": roles.admin})  # pair (2, 6) = 16: bottom slot of word 1
    params.setCorrelation(7, 6, 9999, {"from": roles.admin})  # pair 27: the last one
    params.setCorrelation(0, 7, -10_000, {"from": roles.admin})
    assert (pair_index(2, 5), pair_index(2, 6), pair_index(6, 7)) == (15, 16, 27)
    c = cfg(params)
    assert (c.correlation(5, 2), c.correlation(2, 6), c.correlation(6, 7), c.correlation(7, 0)) == (
        -1234, -4321, 9999, -10_000)
    assert c.corr0 >> 240 == (-1234) % 2**16
    assert c.corr1 & 0xFFFF == (-4321) % 2**16
    assert c.correlation(0, 1) == 8000  # neighbours untouched
    assert c.correlation(2, 7) == 0


def test_set_risk_weight_last_asset_keeps_alpha(params, roles):
    before = cfg(params)
    params.setRiskWeight(7, 2500, {"from": roles.admin})
    c = cfg(params)
    assert c.risk_weight(7) == 2500
    assert (c.alpha, c.basis_addon, c.floor_rate, c.num_stress) == (
        before.alpha, before.basis_addon, before.floor_rate, before.num_stress)
    assert [c.risk_weight(k) for k in range(7)] == [before.risk_weight(k) for k in range(7)]


def test_set_stress_vector_extreme_shocks_decode(params, roles):
    vec = [-10_000, 10_000, -1, 1, -32, 77, 0, -9999]
    tx = params.setStressVector(7, vec, {"from": roles.admin})  # append as vector 7: high half of word 3
    assert tx.events["ParameterUpdated"]["index"] == 3
    c = cfg(params)
    assert c.num_stress == 8
    assert [c.shock(7, k) for k in range(8)] == vec
    assert [c.shock(6, k) for k in range(8)] == FIXTURE_SPEC.stress[6].as_array()


def test_set_market_and_liquidation_words_pack_fields(params, roles):
    params.setMarket(9, 15, 12_345 * WAD, 678 * WAD, {"from": roles.admin})
    assert market(params, 9) == {"rate": 15, "oi": 12_345 * WAD, "size": 678 * WAD}
    params.setMarket(10, 10_000, I96, I96, {"from": roles.admin})
    assert market(params, 10) == {"rate": 10_000, "oi": I96, "size": I96}
    params.setLiquidation(1000, 2000, 10_000, 10_000, 1000 * WAD, 10**24, {"from": roles.admin})
    assert liquidation(params) == {"close": 1000, "penalty": 2000, "share": 10_000, "deep": 10_000,
                                   "reward": 1000 * WAD, "dust": 10**24}


def test_fresh_deployment_fails_closed(deployer):
    p = RiskParameters.deploy(deployer, {"from": deployer})
    c = cfg(p)
    assert [c.risk_weight(k) for k in range(8)] == [10_000] * 8
    assert [c.haircut(j) for j in range(16)] == [10_000] * 16
    assert (c.alpha, c.num_stress) == (10_000, 0)
    assert market(p, 0) == {"rate": 0, "oi": 0, "size": 0}
    assert control(p) == {"flags": 0, "band": 100, "delay": 0}
    assert p.hasRole(ADMIN_ROLE, deployer)
    assert not p.hasRole(p.RISK_ADMIN_ROLE(), deployer)


# ---------------------------------------------------------------------------------------------- bounds
BOUNDS = [
    ("setRiskWeight", (0, 99), "riskWeight", 99, 100, 10_000),
    ("setRiskWeight", (3, 10_001), "riskWeight", 10_001, 100, 10_000),
    ("setCorrelation", (0, 1, -10_001), "correlation", -10_001, -10_000, 10_000),
    ("setCorrelation", (1, 0, 10_001), "correlation", 10_001, -10_000, 10_000),
    ("setStressVector", (0, [0, 0, 10_001, 0, 0, 0, 0, 0]), "shock", 10_001, -10_000, 10_000),
    ("setStressVector", (7, [0, 0, 0, 0, 0, 0, 0, -10_001]), "shock", -10_001, -10_000, 10_000),
    ("setMarginScalars", (9_999, 50, 100), "alpha", 9_999, 10_000, 30_000),
    ("setMarginScalars", (30_001, 50, 100), "alpha", 30_001, 10_000, 30_000),
    ("setMarginScalars", (15_000, 2_001, 100), "basisAddon", 2_001, 0, 2_000),
    ("setMarginScalars", (15_000, 50, 5_001), "floor", 5_001, 0, 5_000),
    ("setHaircut", (0, 10_001), "haircut", 10_001, 0, 10_000),
    ("setMarket", (0, 9, WAD, WAD), "standardMmr", 9, 10, 10_000),
    ("setMarket", (0, 10_001, WAD, WAD), "standardMmr", 10_001, 10, 10_000),
    ("setMarket", (0, 1000, I96 + 1, WAD), "maxOpenInterest", I96 + 1, 0, I96),
    ("setMarket", (0, 1000, WAD, I96 + 1), "maxPositionSize", I96 + 1, 0, I96),
    ("setLiquidation", (999, 100, 3000, 5000, 0, 0), "closeFactor", 999, 1000, 10_000),
    ("setLiquidation", (10_001, 100, 3000, 5000, 0, 0), "closeFactor", 10_001, 1000, 10_000),
    ("setLiquidation", (5000, 2001, 3000, 5000, 0, 0), "penalty", 2001, 0, 2000),
    ("setLiquidation", (5000, 100, 10_001, 5000, 0, 0), "keeperShare", 10_001, 0, 10_000),
    ("setLiquidation", (5000, 100, 3000, 10_001, 0, 0), "deep", 10_001, 0, 10_000),
    ("setLiquidation", (5000, 100, 3000, 5000, 1000 * WAD + 1, 0), "minKeeperReward", 1000 * WAD + 1, 0, 1000 * WAD),
    ("setLiquidation", (5000, 100, 3000, 5000, 0, 10**24 + 1), "dust", 10**24 + 1, 0, 10**24),
    ("setPriceBand", (9,), "priceBand", 9, 10, 2000),
    ("setPriceBand", (2001,), "priceBand", 2001, 10, 2000),
    ("setLoosenDelay", (30 * DAY + 1,), "loosenDelay", 30 * DAY + 1, 0, 30 * DAY),
    ("setPause", (4,), "pauseFlags", 4, 0, 3),
    ("setFunding", (59, 8 * HOUR, 0, 0, 0, 0, 0, 0), "fundingWindow", 59, 60, 7 * DAY),
    ("setFunding", (7 * DAY + 1, 8 * HOUR, 0, 0, 0, 0, 0, 0), "fundingWindow", 7 * DAY + 1, 60, 7 * DAY),
    ("setFunding", (HOUR, HOUR - 1, 0, 0, 0, 0, 0, 0), "fundingPeriod", HOUR - 1, HOUR, 30 * DAY),
    ("setFunding", (HOUR, 30 * DAY + 1, 0, 0, 0, 0, 0, 0), "fundingPeriod", 30 * DAY + 1, HOUR, 30 * DAY),
    ("setFunding", (HOUR, 8 * HOUR, 501, 10_000, 0, 0, 0, 0), "premiumCap", 501, 0, 500),
    ("setFunding", (HOUR, 8 * HOUR, 0, 10_001, 0, 0, 0, 0), "premiumDepth", 10_001, 0, 10_000),
    ("setFunding", (HOUR, 8 * HOUR, 0, 0, 10_001, 0, 0, 0), "maxFundingRate", 10_001, 0, 10_000),
    ("setFunding", (HOUR, 8 * HOUR, 0, 0, 0, 10_001, 0, 0), "fundingClamp", 10_001, 0, 10_000),
    ("setFunding", (HOUR, 8 * HOUR, 0, 0, 0, 0, -101, 0), "interest", -101, -100, 100),
    ("setFunding", (HOUR, 8 * HOUR, 0, 0, 0, 0, 101, 0), "interest", 101, -100, 100),
    ("setFunding", (HOUR, 8 * HOUR, 0, 0, 0, 0, 0, 10_001), "adlShare", 10_001, 0, 10_000),
    ("setVolScaler", (0, 9_999), "volScaler", 9_999, 10_000, 40_000),
    ("setVolScaler", (0, 40_001), "volScaler", 40_001, 10_000, 40_000),
    ("setCorrelationBreak", (10_001,), "correlationBreak", 10_001, 0, 10_000),
    ("setMarketDepth", (0, 65_536), "marketDepth", 65_536, 0, 65_535),
    ("setOptionSkew", (0, 10_001), "optionSkew", 10_001, 0, 10_000),  # at most MAX_SKEW_STEP above 5,000
    ("setOptionGrid", (20_001, 0, 2, 0), "volUp", 20_001, 0, 20_000),
    ("setOptionGrid", (0, 9_001, 2, 0), "volDown", 9_001, 0, 9_000),
    ("setOptionGrid", (0, 0, 0, 0), "gridSteps", 0, 1, 4),
    ("setOptionGrid", (0, 0, 5, 0), "gridSteps", 5, 1, 4),
    ("setOptionGrid", (0, 0, 2, 5_001), "shortMin", 5_001, 0, 5_000),
    ("setOptionTrading", (0, 0), "optionBand", 0, 1, 2_000),
    ("setOptionTrading", (2_001, 0), "optionBand", 2_001, 1, 2_000),
    ("setOptionTrading", (100, 2**56), "optionOpenInterest", 2**56, 0, 2**56 - 1),
]


BOUND_SETTERS = sorted({b[0] for b in BOUNDS})


@pytest.mark.parametrize("fn", BOUND_SETTERS)
def test_setter_out_of_bounds_reverts(params, roles, fn):
    """Every value just outside a hard bound reverts with OutOfBounds(name, value, min, max) and changes nothing."""
    before = words(params)
    cases = [b for b in BOUNDS if b[0] == fn]
    assert cases
    for _, args, name, value, lo, hi in cases:
        with brownie.reverts(err("OutOfBounds", b32(name), value, lo, hi)):
            getattr(params, fn)(*args, {"from": roles.admin})
    assert words(params) == before


ACCEPTED_EDGES = [
    ("setRiskWeight", (0, 100)),
    ("setRiskWeight", (0, 10_000)),
    ("setCorrelation", (0, 1, -10_000)),
    ("setCorrelation", (0, 1, 10_000)),
    ("setStressVector", (7, [-10_000, 10_000, 0, 0, 0, 0, 0, 0])),
    ("setMarginScalars", (10_000, 0, 0)),
    ("setMarginScalars", (30_000, 2000, 5000)),
    ("setHaircut", (0, 10_000)),
    ("setHaircut", (0, 400)),  # = its discount
    ("setLiquidationDiscount", (0, 800)),  # = its haircut
    ("setLiquidationDiscount", (0, 0)),
    ("setMarket", (0, 10, 0, 0)),
    ("setMarket", (0, 10_000, I96, I96)),
    ("setLiquidation", (1000, 0, 0, 0, 0, 0)),
    ("setLiquidation", (10_000, 2000, 10_000, 10_000, 1000 * WAD, 10**24)),
    ("setPriceBand", (10,)),
    ("setPriceBand", (2000,)),
    ("setLoosenDelay", (30 * DAY,)),  # (0 is the deployment's value)
    ("setPause", (3,)),
    ("setFunding", (60, HOUR, 0, 0, 0, 0, -100, 0)),
    ("setFunding", (7 * DAY, 30 * DAY, 500, 10_000, 10_000, 10_000, 100, 10_000)),
    ("setVolScaler", (0, 40_000)),
    ("setVolScaler", (0, 10_000)),
    ("setCorrelationBreak", (10_000,)),
    ("setCorrelationBreak", (0,)),
    ("setMarketDepth", (0, 65_535)),
    ("setMarketDepth", (0, 0)),
    ("setOptionSkew", (0, 10_000)),
    ("setOptionSkew", (0, 0)),
    ("setOptionGrid", (20_000, 9_000, 4, 5_000)),
    ("setOptionGrid", (0, 0, 1, 0)),
    ("setOptionTrading", (1, 0)),
    ("setOptionTrading", (2_000, 2**56 - 1)),
]


@pytest.mark.parametrize("fn", sorted({e[0] for e in ACCEPTED_EDGES}))
def test_setter_at_bound_applies(params, roles, fn):
    """With no delay (the deployment's set-up state) every value on a bound applies at once."""
    for _, args in [e for e in ACCEPTED_EDGES if e[0] == fn]:
        before = words(params)
        tx = getattr(params, fn)(*args, {"from": roles.admin})
        assert "ChangeQueued" not in tx.events
        assert ("ParameterUpdated" in tx.events) or ("PauseSet" in tx.events)
        assert words(params) != before, (fn, args)


def test_set_liquidation_discount_above_half_reverts_even_within_haircut(params, roles):
    """IRiskParameters.setLiquidationDiscount: "(0 .. min(50%, its haircut))": 60% under a 100% haircut is refused,
    50% applies; the off-chain RiskSpec refuses the same value."""
    from pydantic import ValidationError

    params.setHaircut(4, 10_000, {"from": roles.admin})
    with brownie.reverts(err("OutOfBounds", b32("discount"), 6_000, 0, 5_000)):
        params.setLiquidationDiscount.call(4, 6_000, {"from": roles.admin})
    params.setLiquidationDiscount(4, 5_000, {"from": roles.admin})
    assert discount(params, 4) == 5_000
    fields = FIXTURE_SPEC.model_dump()
    fields["haircuts"][0] = 10_000
    fields["discounts"][0] = 6_000
    with pytest.raises(ValidationError, match="at most 50%"):
        type(FIXTURE_SPEC)(**fields)


BAD_INDEX = [
    ("setRiskWeight", (8, 500), "asset", 8),
    ("setCorrelation", (8, 0, 0), "asset", 8),
    ("setCorrelation", (0, 8, 0), "asset", 8),
    ("setCorrelation", (3, 3, 0), "pair", 3),
    ("setStressVector", (8, [0] * 8), "stress", 8),  # 7 vectors: 7 appends, 8 skips one
    ("setStressVector", (2**255, [0] * 8), "stress", 2**255),
    ("setHaircut", (16, 0), "collateral", 16),
    ("setLiquidationDiscount", (16, 0), "collateral", 16),
    ("setMarket", (16, 1000, 0, 0), "market", 16),
    ("setVolScaler", (8, 10_000), "asset", 8),
    ("setMarketDepth", (16, 0), "market", 16),
]


@pytest.mark.parametrize("fn", sorted({b[0] for b in BAD_INDEX}))
def test_setter_bad_index_reverts(params, roles, fn):
    for _, args, name, index in [b for b in BAD_INDEX if b[0] == fn]:
        with brownie.reverts(err("BadIndex", b32(name), index)):
            getattr(params, fn)(*args, {"from": roles.admin})


def test_set_stress_vector_beyond_sixteen_reverts_bad_index(params, roles):
    for s in range(7, 16):
        params.setStressVector(s, [-(s * 100)] * 8, {"from": roles.admin})
    assert cfg(params).num_stress == 16
    assert len(params.marginConfig()[4]) == 8
    assert cfg(params).shock(15, 3) == -1500
    with brownie.reverts(err("BadIndex", b32("stress"), 16)):
        params.setStressVector(16, [0] * 8, {"from": roles.admin})
    params.setStressVector(15, [-1600] * 8, {"from": roles.admin})  # replacing the last one still works
    assert cfg(params).shock(15, 0) == -1600


def test_pop_stress_vector_when_empty_reverts_bad_index(params, roles):
    for _ in range(7):
        params.popStressVector({"from": roles.admin})
    c = cfg(params)
    assert c.num_stress == 0
    assert_stress_words(params)
    assert all(w == 0 for w in c.stress)
    with brownie.reverts(err("BadIndex", b32("stress"), 0)):
        params.popStressVector({"from": roles.admin})


# ---------------------------------------------------------------------------------------------- access
SETTERS = [
    ("setRiskWeight", (0, 1100)),
    ("setCorrelation", (0, 1, 100)),
    ("setStressVector", (7, [-100] * 8)),
    ("popStressVector", ()),
    ("setMarginScalars", (20_000, 50, 100)),
    ("setHaircut", (0, 900)),
    ("setLiquidationDiscount", (0, 100)),
    ("setMarket", (0, 1100, WAD, WAD)),
    ("setLiquidation", (5000, 100, 3000, 5000, 0, 0)),
    ("setPriceBand", (100,)),
    ("setMarketDepth", (0, 500)),
    ("setOptionSkew", (0, 6000)),
    ("setOptionGrid", (5000, 2000, 2, 50)),
    ("setOptionTrading", (90, 10**8)),
]


@pytest.mark.parametrize("fn,args", SETTERS, ids=[s[0] for s in SETTERS])
def test_setter_by_non_risk_admin_reverts(params, roles, fn, args):
    before = words(params)
    for caller in (roles.stranger, roles.guardian):
        with brownie.reverts(err("Unauthorized", caller, roles.RISK)):
            getattr(params, fn)(*args, {"from": caller})
    assert words(params) == before
    # the same call from a holder of RISK_ADMIN_ROLE alone goes through
    tx = getattr(params, fn)(*args, {"from": roles.risk})
    assert "ParameterUpdated" in tx.events
    assert words(params) != before


def test_set_loosen_delay_by_non_admin_reverts(params, roles):
    for caller in (roles.risk, roles.guardian, roles.stranger):
        with brownie.reverts(err("Unauthorized", caller, ADMIN_ROLE)):
            params.setLoosenDelay(DAY, {"from": caller})
    assert control(params)["delay"] == 0


def test_cancel_by_stranger_reverts(params, roles, delayed):
    params.setPriceBand(500, {"from": roles.admin})
    qid = call_id(params, "setPriceBand", 500)
    for caller in (roles.stranger, roles.risk):
        with brownie.reverts(err("Unauthorized", caller, roles.GUARDIAN)):
            params.cancel(qid, {"from": caller})
    assert params.readyAt(qid) > 0


def test_cancel_unknown_change_reverts_bad_index(params, roles):
    qid = call_id(params, "setPriceBand", 500)
    with brownie.reverts(err("BadIndex", b32("queued"), int.from_bytes(qid, "big"))):
        params.cancel(qid, {"from": roles.guardian})


# ---------------------------------------------------------------------------------------------- tighten / loosen
def _rw0(p):
    return cfg(p).risk_weight(0)


def _rw4(p):
    return cfg(p).risk_weight(4)


# (call, args, read, value before, value after); tightening calls apply at once even with a delay. Asset 4 has a
# zero correlation with every other asset (its weight is set to 50% before the delay, in the test).
TIGHTENING = [
    ("setRiskWeight", (4, 5000), _rw4, 5000, 5000),  # unchanged counts as not loosening
    ("setRiskWeight", (4, 6000), _rw4, 5000, 6000),  # raising an uncorrelated asset's weight
    ("setStressVector", (7, shocks(btc=500)), lambda p: cfg(p).num_stress, 7, 8),  # appending tightens
    ("setMarginScalars", (16_000, 60, 100), lambda p: (cfg(p).alpha, cfg(p).basis_addon, cfg(p).floor_rate),
     (15_000, 50, 100), (16_000, 60, 100)),
    ("setHaircut", (1, 1100), lambda p: cfg(p).haircut(1), 1000, 1100),
    ("setMarket", (1, 1300, OI1 // 10, SZ1), lambda p: market(p, 1),
     {"rate": 1200, "oi": OI1, "size": SZ1}, {"rate": 1300, "oi": OI1 // 10, "size": SZ1}),
    ("setPriceBand", (150,), lambda p: control(p)["band"], 200, 150),
    # options: larger shocks and minimum, steps doubled (its points include the old ones), a higher skew, a narrower
    # band and a lower cap tighten
    ("setOptionGrid", (5000, 2500, 4, 60), lambda p: (opt(p).vol_up_bps, opt(p).steps), (4000, 2), (5000, 4)),
    ("setOptionSkew", (1, 6000), lambda p: opt(p).skew_bps[1], 5000, 6000),
    ("setOptionTrading", (90, 10**8), lambda p: (opt(p).band_bps, opt(p).max_open_interest_usd), (100, 5 * 10**8),
     (90, 10**8)),
    ("setLoosenDelay", (2 * DELAY,), lambda p: control(p)["delay"], DELAY, 2 * DELAY),
]


def test_tightening_applies_at_once_with_delay(params, roles):
    """One after the other (each case touches its own parameter, or follows the previous one)."""
    params.setRiskWeight(4, 5000, {"from": roles.admin})  # no delay yet: applies at once
    assert all(cfg(params).correlation(4, k) == 0 for k in range(8) if k != 4)
    params.setLoosenDelay(DELAY, {"from": roles.admin})
    for fn, args, read, old, new in TIGHTENING:
        assert read(params) == old, (fn, args)
        tx = getattr(params, fn)(*args, {"from": roles.admin})
        assert "ChangeQueued" not in tx.events, (fn, args)
        assert "ParameterUpdated" in tx.events, (fn, args)
        assert read(params) == new, (fn, args)
        assert params.readyAt(call_id(params, fn, *args)) == 0


# loosening (or ambiguous) changes: queued first
LOOSENING = [
    ("setRiskWeight", (0, 900), _rw0, 1000, 900),
    # raising BTC's weight: BTC is correlated with ETH, SOL and LINK, so a hedge's charge could fall
    ("setRiskWeight", (0, 1100), _rw0, 1000, 1100),
    ("setCorrelation", (0, 1, 9000), lambda p: cfg(p).correlation(0, 1), 8000, 9000),  # always queued
    ("setStressVector", (0, shocks(btc=-900, eth=-1200, sol=-1800, link=-1800)),
     lambda p: cfg(p).shock(0, 0), -1000, -900),
    # editing an existing vector, even every shock deeper, is queued (a long/short book gains from its short leg)
    ("setStressVector", (0, shocks(btc=-1100, eth=-1300, sol=-1800, link=-2000, a4=-1)),
     lambda p: [cfg(p).shock(0, k) for k in range(8)], FIXTURE_SPEC.stress[0].as_array(),
     [-1100, -1300, -1800, -2000, -1, 0, 0, 0]),
    ("popStressVector", (), lambda p: cfg(p).num_stress, 7, 6),
    ("setMarginScalars", (16_000, 40, 100), lambda p: (cfg(p).alpha, cfg(p).basis_addon),
     (15_000, 50), (16_000, 40)),  # one of three falls
    ("setHaircut", (1, 900), lambda p: cfg(p).haircut(1), 1000, 900),
    ("setLiquidationDiscount", (1, 400), lambda p: discount(p, 1), 500, 400),  # always queued, even lowering
    ("setMarket", (1, 1200, OI1 + 1, SZ1), lambda p: market(p, 1)["oi"], OI1, OI1 + 1),
    ("setMarket", (1, 1100, OI1, SZ1), lambda p: market(p, 1)["rate"], 1200, 1100),
    ("setLiquidation", (6000, 200, 3000, 5000, 5 * WAD, 100 * WAD), lambda p: liquidation(p)["close"], 5000, 6000),
    # funding moves value between traders: every change waits, even one that lowers every rate
    ("setFunding", (2 * HOUR, 8 * HOUR, 0, 0, 0, 0, 0, 0), lambda p: int(p.fundingWord()) & 0xFFFFFFFF,
     FUNDING_DEFAULT.window, 2 * HOUR),
    ("setPriceBand", (300,), lambda p: control(p)["band"], 200, 300),
    ("setOptionGrid", (3000, 2000, 2, 50), lambda p: opt(p).vol_up_bps, 4000, 3000),  # a smaller shock
    ("setOptionGrid", (4000, 2000, 3, 50), lambda p: opt(p).steps, 2, 3),  # 3 steps miss the points at +-RW/2
    ("setOptionSkew", (1, 4000), lambda p: opt(p).skew_bps[1], 5000, 4000),
    ("setOptionTrading", (100, 6 * 10**8), lambda p: opt(p).max_open_interest_usd, 5 * 10**8, 6 * 10**8),
    ("setLoosenDelay", (DELAY // 2,), lambda p: control(p)["delay"], DELAY, DELAY // 2),
]


@pytest.mark.parametrize("fn,args,read,old,new", LOOSENING, ids=[f"{t[0]}-{i}" for i, t in enumerate(LOOSENING)])
def test_loosening_queues_then_applies_after_delay(params, roles, delayed, fn, args, read, old, new):
    qid = call_id(params, fn, *args)
    before = words(params)
    tx = getattr(params, fn)(*args, {"from": roles.admin})
    ready = tx.timestamp + DELAY
    ev = tx.events["ChangeQueued"]
    assert (bytes(ev["id"]), bytes(ev["call"]), ev["readyAt"]) == (qid, web3.to_bytes(hexstr=tx.input), ready)
    assert "ParameterUpdated" not in tx.events
    assert words(params) == before and read(params) == old  # the first call does not change the word
    assert params.readyAt(qid) == ready
    with reverts_at("ChangeNotReady", qid, ready, NOW):
        getattr(params, fn)(*args, {"from": roles.admin})
    chain.sleep(DELAY)
    tx2 = getattr(params, fn)(*args, {"from": roles.admin})
    assert tx2.timestamp >= ready
    assert "ParameterUpdated" in tx2.events
    assert read(params) == new
    assert params.readyAt(qid) == 0


def test_loosening_repeated_just_before_ready_reverts(params, roles, delayed):
    tx = params.setRiskWeight(0, 900, {"from": roles.admin})
    ready = tx.timestamp + DELAY
    qid = call_id(params, "setRiskWeight", 0, 900)
    chain.sleep(DELAY - 30)
    with reverts_at("ChangeNotReady", qid, ready, NOW):
        params.setRiskWeight(0, 900, {"from": roles.admin})
    assert _rw0(params) == 1000


def test_queued_change_applied_by_another_risk_admin(params, roles, delayed):
    params.setPriceBand(400, {"from": roles.admin})
    chain.sleep(DELAY)
    params.setPriceBand(400, {"from": roles.risk})  # same calldata, same id
    assert control(params)["band"] == 400


def test_queued_change_with_other_value_is_a_separate_change(params, roles, delayed):
    params.setPriceBand(400, {"from": roles.admin})
    chain.sleep(DELAY)
    tx = params.setPriceBand(401, {"from": roles.admin})  # not the queued call: queued on its own
    assert "ChangeQueued" in tx.events
    assert control(params)["band"] == 200


def test_no_delay_loosening_applies_at_once(params, roles):
    assert control(params)["delay"] == 0
    tx = params.setRiskWeight(0, 500, {"from": roles.admin})
    assert "ChangeQueued" not in tx.events
    assert _rw0(params) == 500
    params.setCorrelation(0, 1, -500, {"from": roles.admin})
    assert cfg(params).correlation(0, 1) == -500


def test_shortening_delay_to_zero_waits_for_the_old_delay(params, roles, delayed):
    params.setLoosenDelay(0, {"from": roles.admin})
    assert control(params)["delay"] == DELAY
    chain.sleep(DELAY)
    params.setLoosenDelay(0, {"from": roles.admin})
    assert control(params)["delay"] == 0
    params.setPriceBand(500, {"from": roles.admin})  # now loosening applies at once
    assert control(params)["band"] == 500


# ---------------------------------------------------------------------------------------------- cancel
@pytest.mark.parametrize("who", ["guardian", "admin"])
def test_cancel_queued_change_drops_it(params, roles, delayed, who):
    params.setHaircut(1, 900, {"from": roles.admin})
    qid = call_id(params, "setHaircut", 1, 900)
    tx = params.cancel(qid, {"from": getattr(roles, who)})
    assert bytes(tx.events["ChangeCancelled"]["id"]) == qid
    assert params.readyAt(qid) == 0
    chain.sleep(DELAY)
    tx = params.setHaircut(1, 900, {"from": roles.admin})  # queued afresh, not applied
    assert "ChangeQueued" in tx.events
    assert cfg(params).haircut(1) == 1000
    with brownie.reverts(err("BadIndex", b32("queued"), int.from_bytes(call_id(params, "setHaircut", 1, 800), "big"))):
        params.cancel(call_id(params, "setHaircut", 1, 800), {"from": roles.guardian})


def test_trailing_calldata_bytes_make_no_twin(params, roles, delayed):
    """setPriceBand(500) sent with four extra calldata bytes is queued under the canonical id (ChangeQueued carries the
    canonical call), so repeating it is ChangeNotReady, and cancelling the canonical id stops it."""
    canonical = params.setPriceBand.encode_input(500)
    qid = call_id(params, "setPriceBand", 500)
    tx = roles.admin.transfer(params.address, 0, data=canonical + "deadbeef")
    ready = tx.timestamp + DELAY
    ev = tx.events["ChangeQueued"]
    assert (bytes(ev["id"]), bytes(ev["call"]), ev["readyAt"]) == (qid, web3.to_bytes(hexstr=canonical), ready)
    assert params.readyAt(qid) == ready
    assert params.readyAt(bytes(web3.keccak(hexstr=canonical + "deadbeef"))) == 0
    with reverts_at("ChangeNotReady", qid, ready, NOW):  # the canonical call finds the same entry
        params.setPriceBand(500, {"from": roles.admin})
    tx = params.cancel(qid, {"from": roles.guardian})
    assert bytes(tx.events["ChangeCancelled"]["id"]) == qid and params.readyAt(qid) == 0
    chain.sleep(DELAY)
    tx = roles.admin.transfer(params.address, 0, data=canonical + "00")  # after the delay: only queued afresh
    assert bytes(tx.events["ChangeQueued"]["id"]) == qid
    assert control(params)["band"] == 200


def test_trailing_calldata_change_applied_by_canonical_call(params, roles, delayed):
    canonical = params.setPriceBand.encode_input(500)
    roles.admin.transfer(params.address, 0, data=canonical + "ff" * 32)
    chain.sleep(DELAY)
    tx = params.setPriceBand(500, {"from": roles.admin})
    assert "ChangeQueued" not in tx.events and control(params)["band"] == 500
    assert params.readyAt(call_id(params, "setPriceBand", 500)) == 0


def test_queued_loosening_applied_as_tightening_leaves_no_entry(params, roles, delayed):
    """Bands 300 and 400 are both queued (widening from 200). After the delay 400 is applied; 300 is now a narrowing
    and applies at once, deleting its entry: once the band is back at 200, widening to 300 waits the full delay
    again instead of reusing a stale entry."""
    q300 = call_id(params, "setPriceBand", 300)
    params.setPriceBand(300, {"from": roles.admin})
    params.setPriceBand(400, {"from": roles.admin})
    assert params.readyAt(q300) != 0
    chain.sleep(DELAY)
    params.setPriceBand(400, {"from": roles.admin})
    assert params.readyAt(call_id(params, "setPriceBand", 400)) == 0
    tx = params.setPriceBand(300, {"from": roles.admin})  # 400 -> 300: tightening
    assert "ChangeQueued" not in tx.events and control(params)["band"] == 300
    assert params.readyAt(q300) == 0
    params.setPriceBand(200, {"from": roles.admin})  # tightening
    tx = params.setPriceBand(300, {"from": roles.admin})
    assert "ChangeQueued" in tx.events and control(params)["band"] == 200
    assert params.readyAt(q300) == tx.timestamp + DELAY


# ---------------------------------------------------------------------------------------------- pause
def test_set_pause_guardian_sets_flags(params, roles):
    band_delay = control(params)["band"], control(params)["delay"]
    tx = params.setPause(1, {"from": roles.guardian})
    assert tx.events["PauseSet"]["flags"] == 1
    assert control(params)["flags"] == 1
    params.setPause(3, {"from": roles.guardian})
    assert control(params)["flags"] == 3
    params.setPause(3, {"from": roles.guardian})  # re-setting clears nothing
    assert (control(params)["band"], control(params)["delay"]) == band_delay


def test_set_pause_guardian_clearing_reverts(params, roles):
    for current, new in [(1, 0), (3, 1), (3, 2), (2, 1), (1, 2), (2, 0)]:
        params.setPause(0, {"from": roles.admin})
        params.setPause(current, {"from": roles.guardian})
        with brownie.reverts(err("Unauthorized", roles.guardian, ADMIN_ROLE)):
            params.setPause(new, {"from": roles.guardian})
        assert control(params)["flags"] == current


def test_set_pause_admin_clears_flags(params, roles):
    params.setPause(3, {"from": roles.guardian})
    tx = params.setPause(0, {"from": roles.admin})
    assert tx.events["PauseSet"]["flags"] == 0
    assert control(params)["flags"] == 0


def test_set_pause_by_stranger_reverts(params, roles):
    with brownie.reverts(err("Unauthorized", roles.stranger, roles.GUARDIAN)):
        params.setPause(1, {"from": roles.stranger})
    with brownie.reverts(err("Unauthorized", roles.risk, roles.GUARDIAN)):
        params.setPause(2, {"from": roles.risk})
    params.setPause(1, {"from": roles.guardian})
    with brownie.reverts(err("Unauthorized", roles.stranger, ADMIN_ROLE)):
        params.setPause(0, {"from": roles.stranger})
    assert control(params)["flags"] == 1


def test_set_pause_applies_at_once_with_delay(params, roles, delayed):
    params.setPause(2, {"from": roles.guardian})
    params.setPause(0, {"from": roles.admin})  # unpausing is not queued
    assert control(params)["flags"] == 0


# ---------------------------------------------------------------------------------------------- discount / haircut
def test_set_liquidation_discount_above_haircut_reverts(params, roles):
    with brownie.reverts(err("DiscountAboveHaircut", 0, 801, 800)):
        params.setLiquidationDiscount(0, 801, {"from": roles.admin})
    assert discount(params, 0) == 400


def test_set_haircut_below_discount_reverts(params, roles):
    with brownie.reverts(err("DiscountAboveHaircut", 0, 400, 399)):
        params.setHaircut(0, 399, {"from": roles.admin})
    assert cfg(params).haircut(0) == 800


def test_set_haircut_below_discount_reverts_even_when_queued_path(params, roles, delayed):
    with brownie.reverts(err("DiscountAboveHaircut", 2, 750, 700)):
        params.setHaircut(2, 700, {"from": roles.admin})  # loosening, but checked before queueing
    assert params.readyAt(call_id(params, "setHaircut", 2, 700)) == 0


# ---------------------------------------------------------------------------------------------- stress vectors
def test_set_stress_vector_append_and_pop(params, roles):
    vec = shocks(btc=-2500, eth=2500)
    tx = params.setStressVector(7, vec, {"from": roles.admin})
    assert bytes(tx.events["ParameterUpdated"]["parameter"]) == b32("stress")
    assert cfg(params).num_stress == 8 and [cfg(params).shock(7, k) for k in range(8)] == vec
    params.popStressVector({"from": roles.admin})
    c = cfg(params)
    assert c.num_stress == 7
    assert_stress_words(params)
    assert c.stress[3] >> 128 == 0  # the popped vector's bits are cleared
    params.popStressVector({"from": roles.admin})
    c = cfg(params)
    assert c.num_stress == 6
    assert_stress_words(params)  # word 3 (vector 6) no longer in use: zero
    assert [c.shock(5, k) for k in range(8)] == FIXTURE_SPEC.stress[5].as_array()
    # appending again at 6 starts from a clean slot
    params.setStressVector(6, shocks(a7=-3), {"from": roles.admin})
    assert [cfg(params).shock(6, k) for k in range(8)] == shocks(a7=-3)


# vector 2 is {BTC: +400, ETH: -600, SOL: -900, LINK: -900}
STRESS_AWAY_FROM_ZERO = [  # applied in this order, each from the previous one
    shocks(btc=500, eth=-700, sol=-1000, link=-1000),  # every shock further from zero
    shocks(btc=500, eth=-700, sol=-1000, link=-1000, a5=200),  # a zero becomes non-zero, the rest unchanged
    shocks(btc=10_000, eth=-10_000, sol=-1000, link=-1000, a4=-10_000, a5=200),
]
STRESS_TOWARDS_ZERO = [  # each from vector 2 as deployed
    shocks(btc=300, eth=-700, sol=-1000, link=-1000),  # one shrinks
    shocks(btc=400, eth=-500, sol=-900, link=-900),  # a negative one shrinks
    shocks(btc=0, eth=-700, sol=-1000, link=-1000),  # one goes to zero
    shocks(btc=-400, eth=-600, sol=-900, link=-900),  # one flips sign
    shocks(btc=500, eth=600, sol=-900, link=-900),  # a negative one flips
]


def test_set_stress_vector_edit_away_from_zero_queues(params, roles, delayed):
    """Editing an existing vector is queued whatever the direction of its shocks; after the delay it applies."""
    deployed = FIXTURE_SPEC.stress[2].as_array()
    for vec in STRESS_AWAY_FROM_ZERO:
        tx = params.setStressVector(2, vec, {"from": roles.admin})
        assert "ChangeQueued" in tx.events and "ParameterUpdated" not in tx.events, vec
        assert [cfg(params).shock(2, k) for k in range(8)] == deployed
    chain.sleep(DELAY)
    vec = STRESS_AWAY_FROM_ZERO[-1]
    params.setStressVector(2, vec, {"from": roles.admin})
    assert [cfg(params).shock(2, k) for k in range(8)] == vec
    assert params.readyAt(call_id(params, "setStressVector", 2, vec)) == 0


def test_set_stress_vector_towards_zero_or_flipped_queues(params, roles, delayed):
    deployed = FIXTURE_SPEC.stress[2].as_array()
    for vec in STRESS_TOWARDS_ZERO:
        tx = params.setStressVector(2, vec, {"from": roles.admin})
        assert "ChangeQueued" in tx.events, vec
        assert [cfg(params).shock(2, k) for k in range(8)] == deployed


# ---------------------------------------------------------------------------------------------- published words
def published(pointer) -> MarginConfig:
    """Decode the data contract at `pointer`: one STOP byte, then the 12 margin words (global, corr0, corr1, haircuts,
    stress[8]), the LIQUIDATION, DISCOUNT and FUNDING words (`published_liquidation`), 16 MARKET words, the ADDON and
    DEPTH words, and the OPTION word (`published_options`)."""
    code = bytes(web3.eth.get_code(pointer))
    assert code[0] == 0 and len(code) == 1 + 34 * 32
    g, c0, c1, h, stress = decode(["uint256", "uint256", "uint256", "uint256", "uint256[8]"], code[1:1 + 12 * 32])
    addons, depths = decode(["uint256", "uint256"], code[1 + 31 * 32:1 + 33 * 32])
    return MarginConfig(g, c0, c1, h, tuple(stress), addons, depths)


def published_liquidation(pointer) -> tuple[int, int]:
    """The LIQUIDATION and DISCOUNT words after the margin words of the data contract at `pointer`."""
    code = bytes(web3.eth.get_code(pointer))
    assert len(code) == 1 + 34 * 32
    return tuple(decode(["uint256", "uint256"], code[1 + 12 * 32:1 + 14 * 32]))


def published_options(pointer) -> int:
    """The OPTION word, the last word of the data contract at `pointer`."""
    code = bytes(web3.eth.get_code(pointer))
    assert len(code) == 1 + 34 * 32
    return int.from_bytes(code[1 + 33 * 32:], "big")


@pytest.fixture
def sink(params, roles):
    """A vault connected to the module's RiskParameters (setVault by the admin)."""
    tx = {"from": roles.admin}
    usdc = TestToken.deploy("USD Coin", "USDC", 6, tx)
    oracle = OracleRouter.deploy(roles.admin, ZERO_ADDRESS, 0, tx)
    complete_vault_abi()
    vault = CrossMarginVault.deploy(params, oracle, usdc, tx)
    params.setVault(vault, tx)
    return vault


def test_margin_config_matches_published_data_contract(params):
    assert published(params.marginConfigPointer()) == cfg(params)
    assert published_liquidation(params.marginConfigPointer()) == tuple(int(w) for w in params.liquidationConfig())
    assert published_options(params.marginConfigPointer()) == int(params.optionWord())


OPTION_SETTERS = [
    ("setOptionSkew", (1, 7_000), lambda p: opt(p).skew_bps.get(1) == 7_000),
    ("setOptionGrid", (20_000, 9_000, 4, 5_000), lambda p: opt(p).steps == 4),
    ("setOptionTrading", (1, 0), lambda p: opt(p).band_bps == 1),
]


@pytest.mark.parametrize("fn,args,check", OPTION_SETTERS, ids=[m[0] for m in OPTION_SETTERS])
def test_option_setter_publishes_word_to_vault(params, roles, sink, fn, args, check):
    """The vault reads the OPTION word from the published data contract (and passes it on to OptionMarkets): a
    change republishes."""
    old = params.marginConfigPointer()
    getattr(params, fn)(*args, {"from": roles.admin})
    new = params.marginConfigPointer()
    assert check(params) and new != old and sink.marginConfigPointer() == new
    assert published_options(new) == int(params.optionWord()) != published_options(old)
    assert published(new) == published(old)  # the margin words are unchanged


LIQUIDATION_SETTERS = [
    ("setLiquidation", (6000, 200, 4000, 4000, 7 * WAD, 50 * WAD), lambda p: liquidation(p)["close"] == 6000),
    ("setLiquidationDiscount", (1, 300), lambda p: discount(p, 1) == 300),
]


@pytest.mark.parametrize("fn,args,check", LIQUIDATION_SETTERS, ids=[m[0] for m in LIQUIDATION_SETTERS])
def test_liquidation_setter_publishes_words_to_vault(params, roles, sink, fn, args, check):
    """The vault reads the LIQUIDATION and DISCOUNT words from the published data contract: a change republishes."""
    old = params.marginConfigPointer()
    getattr(params, fn)(*args, {"from": roles.admin})
    new = params.marginConfigPointer()
    assert check(params) and new != old and sink.marginConfigPointer() == new
    assert published_liquidation(new) == tuple(int(w) for w in params.liquidationConfig())
    assert published_liquidation(old) != published_liquidation(new)
    assert published(new) == published(old)  # the margin words are unchanged


# ---------------------------------------------------------------------------------------------- CONTROL word
def test_set_vault_pushes_control_word(params, roles):
    """A CONTROL change before the vault is set is not lost: setVault pushes the current word."""
    tx = {"from": roles.admin}
    complete_vault_abi()
    vault = CrossMarginVault.deploy(params, OracleRouter.deploy(roles.admin, ZERO_ADDRESS, 0, tx),
                                    TestToken.deploy("USD Coin", "USDC", 6, tx), tx)
    assert vault.controlWord() == params.control()
    params.setPause(1, {"from": roles.guardian})
    params.setPriceBand(150, tx)
    assert vault.controlWord() != params.control()  # not connected yet
    params.setVault(vault, tx)
    assert vault.controlWord() == params.control() == (150 << 8) | 1


def test_control_setters_push_control_word_to_vault(params, roles, sink):
    assert sink.controlWord() == params.control()
    steps = [
        (params.setPause, (1,), roles.guardian, lambda c: c["flags"] == 1),
        (params.setPause, (3,), roles.guardian, lambda c: c["flags"] == 3),
        (params.setPriceBand, (150,), roles.risk, lambda c: c["band"] == 150),
        (params.setLoosenDelay, (DELAY,), roles.admin, lambda c: c["delay"] == DELAY),
        (params.setPriceBand, (120,), roles.risk, lambda c: c["band"] == 120),  # narrowing: at once
        (params.setPause, (0,), roles.admin, lambda c: c["flags"] == 0),
    ]
    for fn, args, who, check in steps:
        tx = fn(*args, {"from": who})
        assert check(control(params)), fn
        assert sink.controlWord() == params.control(), fn
        assert tx.events["ParameterUpdated"]["word"] == params.control()
    # a loosening is queued: the vault's copy does not move until it is applied
    word = params.control()
    params.setPriceBand(300, {"from": roles.risk})
    assert params.control() == sink.controlWord() == word
    chain.sleep(DELAY)
    params.setPriceBand(300, {"from": roles.risk})
    assert control(params)["band"] == 300
    assert sink.controlWord() == params.control() != word


def test_set_vault_by_non_admin_reverts(params, roles):
    for caller in (roles.risk, roles.guardian, roles.stranger):
        with brownie.reverts(err("Unauthorized", caller, ADMIN_ROLE)):
            params.setVault(accounts[7], {"from": caller})
    assert params.vault() == ZERO_ADDRESS


def test_set_vault_twice_reverts(params, roles, sink):
    assert params.vault() == sink.address
    with brownie.reverts(err("VaultAlreadySet", sink)):
        params.setVault(accounts[7], {"from": roles.admin})


MARGIN_SETTERS = [
    ("setRiskWeight", (2, 2000), lambda c: c.risk_weight(2) == 2000),
    ("setCorrelation", (1, 3, -2500), lambda c: c.correlation(3, 1) == -2500),
    ("setStressVector", (7, shocks(a5=-700)), lambda c: c.num_stress == 8 and c.shock(7, 5) == -700),
    ("popStressVector", (), lambda c: c.num_stress == 6 and c.stress[3] == 0),
    ("setMarginScalars", (20_000, 100, 200), lambda c: (c.alpha, c.basis_addon, c.floor_rate) == (20_000, 100, 200)),
    ("setHaircut", (3, 1700), lambda c: c.haircut(3) == 1700),
]


@pytest.mark.parametrize("fn,args,check", MARGIN_SETTERS, ids=[m[0] for m in MARGIN_SETTERS])
def test_margin_setter_publishes_words_to_vault(params, roles, sink, fn, args, check):
    old = params.marginConfigPointer()
    assert sink.marginConfigPointer() == old
    getattr(params, fn)(*args, {"from": roles.admin})
    new = params.marginConfigPointer()
    assert new != old
    assert sink.marginConfigPointer() == new
    assert check(published(new)) and check(cfg(params))
    assert not check(published(old))  # the previous data contract keeps the previous words


def test_queued_margin_change_publishes_only_when_applied(params, roles, sink, delayed):
    old = params.marginConfigPointer()
    params.setRiskWeight(1, 1000, {"from": roles.admin})  # loosening (1200 -> 1000): queued
    assert params.marginConfigPointer() == sink.marginConfigPointer() == old
    chain.sleep(DELAY)
    params.setRiskWeight(1, 1000, {"from": roles.admin})
    new = params.marginConfigPointer()
    assert new != old and sink.marginConfigPointer() == new
    assert published(new).risk_weight(1) == 1000


# ---------------------------------------------------------------------------------------------- dynamic add-ons
@pytest.fixture
def updater(params, roles):
    """accounts[5] with RISK_UPDATER_ROLE only."""
    u = accounts[5]
    params.grantRole(params.RISK_UPDATER_ROLE(), u, {"from": roles.admin})
    return u


def _addons(params) -> tuple[int, int]:
    a, d = params.addonWords()
    return int(a), int(d)


def test_updater_raises_at_once_within_its_step_and_interval(params, roles, updater, delayed):
    """An updater's raise applies at once even with a loosening delay, by at most MAX_UPDATER_STEP per call and once
    per UPDATER_INTERVAL per parameter; each limit reverts with UpdaterLimit and changes nothing."""
    step, interval = params.MAX_UPDATER_STEP(), params.UPDATER_INTERVAL()
    assert (step, interval) == (5_000, HOUR)
    tx = params.setVolScaler(1, 10_000 + step, {"from": updater})
    assert "ChangeQueued" not in tx.events and cfg(params).vol_scaler(1) == 10_000 + step
    assert published(params.marginConfigPointer()) == cfg(params)  # the vault reads the new word
    raised_at = params.updaterRaisedAt(1)
    before = words(params)
    with brownie.reverts(err("UpdaterLimit", b32("volScaler"), 10_000 + step, 10_000 + step + 1,
                             raised_at + interval)):
        params.setVolScaler(1, 10_000 + step + 1, {"from": updater})  # too soon
    chain.sleep(interval)
    chain.mine()
    with brownie.reverts(err("UpdaterLimit", b32("volScaler"), 10_000 + step, 10_000 + 2 * step + 1,
                             raised_at + interval)):
        params.setVolScaler(1, 10_000 + 2 * step + 1, {"from": updater})  # too far
    assert words(params) == before
    params.setVolScaler(1, 10_000 + 2 * step, {"from": updater})
    assert cfg(params).vol_scaler(1) == 10_000 + 2 * step
    # another parameter has its own interval: the correlation break can be raised now
    params.setCorrelationBreak(step, {"from": updater})
    assert cfg(params).correlation_break == step
    with brownie.reverts(err("UpdaterLimit", b32("correlationBreak"), step, step + 1,
                             params.updaterRaisedAt(8) + interval)):
        params.setCorrelationBreak(step + 1, {"from": updater})


def test_lowering_an_addon_waits_the_delay_for_updater_and_admin(params, roles, updater, delayed):
    params.setVolScaler(0, 20_000, {"from": roles.admin})  # the risk admin raises by any amount, at once
    params.setCorrelationBreak(10_000, {"from": roles.admin})
    assert cfg(params).vol_scaler(0) == 20_000 and cfg(params).correlation_break == 10_000
    for who, fn, args, read in ((updater, "setVolScaler", (0, 15_000), lambda: cfg(params).vol_scaler(0)),
                                (roles.admin, "setCorrelationBreak", (2_000,), lambda: cfg(params).correlation_break)):
        old = read()
        tx = getattr(params, fn)(*args, {"from": who})
        assert "ChangeQueued" in tx.events and read() == old
        with brownie.reverts():
            getattr(params, fn)(*args, {"from": who})  # ChangeNotReady
        chain.sleep(DELAY)
        chain.mine()
        getattr(params, fn)(*args, {"from": who})
        assert read() == args[-1]


def test_addon_setters_refuse_strangers_and_depth_is_risk_admin_only(params, roles, updater):
    before = words(params)
    updater_role = bytes(params.RISK_UPDATER_ROLE())
    for caller in (roles.stranger, roles.guardian):
        with brownie.reverts(err("Unauthorized", caller, updater_role)):
            params.setVolScaler(0, 11_000, {"from": caller})
        with brownie.reverts(err("Unauthorized", caller, updater_role)):
            params.setCorrelationBreak(100, {"from": caller})
    with brownie.reverts(err("Unauthorized", updater, roles.RISK)):
        params.setMarketDepth(0, 100, {"from": updater})
    assert words(params) == before


def test_market_depth_tightens_when_set_or_lowered_and_queues_otherwise(params, roles, delayed):
    """A depth where there was none, or a lower one, raises every charge: at once. A higher depth or 0 (off):
    queued."""
    depth = lambda: u16(_addons(params)[1], 2)  # noqa: E731
    for units, queued in ((500, False), (400, False), (400, False), (600, True), (0, True)):
        old = depth()
        tx = params.setMarketDepth(2, units, {"from": roles.admin})
        assert ("ChangeQueued" in tx.events) == queued, units
        assert depth() == (old if queued else units)
        if queued:
            chain.sleep(DELAY)
            chain.mine()
            params.setMarketDepth(2, units, {"from": roles.admin})
            assert depth() == units
