"""The parameter set the suite's fixtures are written for.

Chain tests deploy ``FIXTURE_SPEC``: the default set before its through-the-cycle calibration on real crypto history
(risk weights 10-18%, BTC/ETH correlation 80%, basis 0.5%). Their account sizes, price moves and expected figures are
written for it, and its lower weights let more leverage, hence more liquidations and write-offs, into the scenarios
they check. What the tests check (the chain equals the mirror, value is conserved, liquidations, the keeper) holds for
any bounded set. The calibrated ``DEFAULT_SPEC`` is what ``make demo`` and a deployment use: tests/integration/
test_deploy.py deploys it and checks it on-chain, tests/unit check its figures, and the demo test runs it.
"""
from __future__ import annotations

from offchain.margin.defaults import BTC, DEFAULT_SPEC, ETH, LINK, SOL
from offchain.margin.params import StressVector

_RW = {BTC: 1000, ETH: 1200, SOL: 1800, LINK: 1800}

FIXTURE_SPEC = DEFAULT_SPEC.model_copy(update={
    "risk_weights": _RW,
    "correlations": {(BTC, ETH): 8000, (BTC, SOL): 7000, (BTC, LINK): 6500,
                     (ETH, SOL): 7500, (ETH, LINK): 7000, (SOL, LINK): 6500},
    "stress": [
        StressVector(name="crash", shocks={BTC: -1000, ETH: -1200, SOL: -1800, LINK: -1800}),
        StressVector(name="rally", shocks={BTC: 1000, ETH: 1200, SOL: 1800, LINK: 1800}),
        StressVector(name="btc_up_alts_down", shocks={BTC: 400, ETH: -600, SOL: -900, LINK: -900}),
        StressVector(name="btc_down_alts_up", shocks={BTC: -400, ETH: 600, SOL: 900, LINK: 900}),
        StressVector(name="eth_decouple", shocks={ETH: -800}),
        StressVector(name="sol_collapse", shocks={SOL: -3000}),
        StressVector(name="link_collapse", shocks={LINK: -3000}),
    ],
    "basis_bps": 50,
    "markets": {m: mk.model_copy(update={"standard_mmr_bps": _RW[m]}) for m, mk in DEFAULT_SPEC.markets.items()},
})
