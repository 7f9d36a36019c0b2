"""Stateful test of the option invariants (tests/stateful/options.py): per-series zero sum and interest, the vault's
margin equal to the exact mirror with options, conservation with option values, the trade rule, wash trades, expiry
fixing and settlement, and liquidation liveness under any volatility feed. The CI budget (derandomized)."""
import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from .options import MUST, OptionSolvency, setup_options

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

EXAMPLES = int(os.environ.get("XMARGIN_OPTION_EXAMPLES", 20))
STEPS = int(os.environ.get("XMARGIN_OPTION_STEPS", 12))


def test_option_invariants(protocol, deployer):
    from brownie import chain

    OptionSolvency.context = setup_options(protocol, deployer)
    chain.snapshot()
    run_state_machine_as_test(OptionSolvency, settings=settings(max_examples=EXAMPLES, stateful_step_count=STEPS,
                                                                deadline=None, derandomize=True, database=None,
                                                                suppress_health_check=HealthCheck.all()))
    print("runs:", OptionSolvency.runs, "counts:", OptionSolvency.counts)
    for name in MUST:
        assert OptionSolvency.counts.get(name, 0) > 0, f"the sequences never met {name!r}"
