"""OptionMath.sol against its Python mirror (``offchain.margin.optionmath``), to the wei, and its gas.

Random inputs come from a seeded generator over the whole domain (spot and strike log-uniform in [1e-6, 1e12] USD,
|ln(S/K)| <= 20, std_dev log-uniform in [1e-12, 100] with zeros), in batches through the harness; edge cases cover
std_dev 0 and 1 wei, deep in and out of the money, spot and strike at 1 wei and at 2^128, ln(S/K) off by a few wei or
disagreeing with S/K, and the domain limits (exact custom errors).
"""
import logging
import random
import statistics

import brownie
import pytest
from brownie import OptionMathHarness, accounts

from offchain.margin import optionmath as om
from tests.conftest import err

log = logging.getLogger(__name__)
WAD = 10**18
N_RANDOM = 400
BATCH = 100
PRICE_GAS_BUDGET = 3_500
NORM_CDF_GAS_BUDGET = 3_000  # the at-the-money call of price (one implementation of the tail); off the margin path


@pytest.fixture(scope="module")
def harness():
    return OptionMathHarness.deploy({"from": accounts[0]})


def _log_uniform(rng: random.Random, lo_exp: float, hi_exp: float) -> int:
    return int(10 ** rng.uniform(lo_exp, hi_exp))


def _random_options(rng: random.Random, n: int) -> list[tuple[bool, int, int, int, int]]:
    out = []
    while len(out) < n:
        spot = _log_uniform(rng, 12, 30)
        strike = _log_uniform(rng, 12, 30)
        ln_m = om.ln_wad(spot) - om.ln_wad(strike)
        if abs(ln_m) > 20 * WAD:
            continue
        if rng.random() < 0.2:  # a caller sharing ln(spot) across strikes: a few wei off
            ln_m += rng.randint(-3, 3)
        v = 0 if rng.random() < 0.05 else _log_uniform(rng, 6, 20)
        out.append((rng.random() < 0.5, spot, strike, ln_m, v))
    return out


def _edge_options() -> list[tuple[bool, int, int, int, int]]:
    cases = []
    pairs = [(WAD, WAD), (10**12, 10**12), (10**30, 10**30), (3000 * WAD, 2000 * WAD), (2000 * WAD, 3000 * WAD),
             (10**12, 10**30), (10**30, 10**12), (1, 1), (1, 10**18), (2**128 - 1, 2**128 - 1),
             (2**128, 10**12), (10**12, 2**128), (2**128, 2**128)]
    for spot, strike in pairs:
        ln_m = om.ln_wad(spot) - om.ln_wad(strike)
        for v in (0, 1, 10**9, 10**16, 2 * 10**17, WAD, 10 * WAD, 100 * WAD, 2**128 - 1):
            for is_call in (True, False):
                cases.append((is_call, spot, strike, ln_m, v))
    # ln(S/K) disagreeing with S/K (a caller's bug): still inside [0, 1e18] and the bounds
    cases += [(True, WAD, 2 * WAD, 20 * WAD, WAD), (False, 2 * WAD, WAD, -20 * WAD, WAD),
              (True, WAD, WAD, 2**128 - 1, 1), (False, WAD, WAD, -(2**128 - 1), 2**128 - 1)]
    return cases


def _check_prices(harness, options) -> list[int]:
    gas_used = []
    for i in range(0, len(options), BATCH):
        chunk = options[i : i + BATCH]
        values, gas = harness.priceBatch(*(list(col) for col in zip(*chunk)))
        for opt, got in zip(chunk, values):
            assert got == om.price(*opt), opt
        gas_used += list(gas)
    return gas_used


def test_price_matches_python_on_random_inputs(harness):
    gas = _check_prices(harness, _random_options(random.Random(7), N_RANDOM))
    log.info("price gas over %d random inputs: min %d, median %d, max %d", len(gas), min(gas), statistics.median(gas),
             max(gas))
    assert max(gas) <= PRICE_GAS_BUDGET


def test_price_gas_near_the_money(harness):
    """Both tails evaluated (|d1|, |d2| < 8.8): the costly path, what a margin scan mostly meets."""
    rng = random.Random(9)
    options = []
    for _ in range(200):
        spot = _log_uniform(rng, 12, 30)
        strike = int(spot * 10 ** rng.uniform(-0.3, 0.3))
        ln_m = om.ln_wad(spot) - om.ln_wad(strike)
        options.append((rng.random() < 0.5, spot, strike, ln_m, _log_uniform(rng, 16, 19)))
    gas = _check_prices(harness, options)
    log.info("price gas near the money over %d inputs: min %d, median %d, max %d", len(gas), min(gas),
             statistics.median(gas), max(gas))
    assert max(gas) <= PRICE_GAS_BUDGET


def test_price_matches_python_on_edge_cases(harness):
    _check_prices(harness, _edge_options())


def test_norm_cdf_matches_python(harness):
    rng = random.Random(11)
    xs = [rng.randrange(-10 * WAD, 10 * WAD) for _ in range(N_RANDOM)]
    xs += [0, 1, -1, om.NORM_CDF_CUT, om.NORM_CDF_CUT - 1, -om.NORM_CDF_CUT, 8_753_403_618_931_743_584, 2**255 - 1,
           -(2**255)]
    gas_used = []
    for i in range(0, len(xs), BATCH):
        values, gas = harness.normCdfBatch(xs[i : i + BATCH])
        assert list(values) == [om.norm_cdf(x) for x in xs[i : i + BATCH]]
        gas_used += list(gas)
    gas_used = gas_used[:N_RANDOM]
    log.info("normCdf gas over %d random inputs: min %d, median %d, max %d", len(gas_used), min(gas_used),
             statistics.median(gas_used), max(gas_used))
    assert max(gas_used) <= NORM_CDF_GAS_BUDGET


def test_solady_ports_match(harness):
    rng = random.Random(5)
    ln_xs = [1, 2, WAD, 2**255 - 1] + [rng.randrange(1, 2 ** rng.randrange(1, 255)) for _ in range(300)]
    assert list(harness.lnWadBatch(ln_xs)) == [om.ln_wad(x) for x in ln_xs]
    exp_xs = [-41446531673892822313, -41446531673892822312, 0, 135305999368893231588]
    exp_xs += [rng.randrange(-42 * WAD, 135 * WAD) for _ in range(300)]
    assert list(harness.expWadBatch(exp_xs)) == [om.exp_wad(x) for x in exp_xs]
    sq_xs = [0, 1, 2, 3, 255, 256, 2**256 - 1] + [rng.randrange(0, 2 ** rng.randrange(1, 257)) for _ in range(300)]
    assert list(harness.sqrtBatch(sq_xs)) == [om.sqrt(x) for x in sq_xs]


def test_std_dev_matches_python(harness):
    rng = random.Random(3)
    sigmas = [0, 1, WAD, 2**96 - 1] + [_log_uniform(rng, 15, 20) for _ in range(200)]
    seconds = [0, 1, 31_536_000, 2**48 - 1] + [rng.randrange(0, 10 * 31_536_000) for _ in range(200)]
    assert list(harness.stdDevBatch(sigmas, seconds)) == [om.std_dev(s, t) for s, t in zip(sigmas, seconds)]


def test_price_reverts_outside_domain(harness):
    for args in [(True, 0, WAD, 0, WAD), (True, WAD, 0, 0, WAD), (True, 2**128 + 1, WAD, 0, WAD),
                 (False, WAD, 2**128 + 1, 0, 0), (True, WAD, WAD, 2**128, WAD), (True, WAD, WAD, -(2**128), WAD),
                 (True, WAD, WAD, 0, 2**128), (True, WAD, WAD, -(2**255), WAD)]:
        with pytest.raises(om.OptionMathDomainError):
            om.price(*args)
        with brownie.reverts(err("OptionOutOfDomain", *args[1:])):
            harness.price(*args)


def test_ln_and_std_dev_revert_outside_domain(harness):
    for x in (0, 2**255, 2**256 - 1):
        with brownie.reverts(err("LnOutOfDomain", x)):
            harness.lnWad(x)
    for sigma, seconds in ((2**96, 1), (WAD, 2**48)):
        with brownie.reverts(err("StdDevOutOfDomain", sigma, seconds)):
            harness.stdDev(sigma, seconds)
