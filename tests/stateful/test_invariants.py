"""Stateful test of the solvency invariants 1-6 and the economic invariants E1-E5 under an attacker
(tests/stateful/machine.py, the attacker in tests/stateful/attacker.py).

This is the CI budget of the machine (derandomized: the same sequences on every run and machine, so CI cannot pass or
fail by luck of the draw). The long campaign is ``make fuzz`` (scripts/bench/fuzz.py), random sequences from a
recorded seed.
"""
import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from .machine import ATTACKER_RULES, MUST_CHECK, Solvency, setup

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

EXAMPLES = int(os.environ.get("XMARGIN_STATEFUL_EXAMPLES", 30))  # the CI budget (override to explore locally)
STEPS = int(os.environ.get("XMARGIN_STATEFUL_STEPS", 20))
# every kind of action must have happened at least once over the CI budget, or the budget is too small to mean much
MUST_SUCCEED = ("CrossMarginVault.deposit", "CrossMarginVault.withdraw", "TestVenue.trade", "CrossMarginVault.liquidate",
                "RiskParameters.setPause", "RiskParameters.cancel", "CrossMarginVault.setOperator",
                "LiquidationLooper.loop")
MUST_RUN = ("oracle_failure_stale", "oracle_failure_zero", "oracle_failure_negative", "apply_queued",
            "param_risk_weight_tighten", "param_haircut_loosen", "guardian_pause", "admin_unpause", "time_passes",
            "funding_hours", "gap_crash", *ATTACKER_RULES)



def test_solvency_invariants(protocol, deployer):
    from brownie import chain

    Solvency.context = setup(protocol, deployer)
    chain.snapshot()
    run_state_machine_as_test(Solvency, settings=settings(max_examples=EXAMPLES, stateful_step_count=STEPS,
                                                          deadline=None, derandomize=True, database=None,
                                                          suppress_health_check=HealthCheck.all()))
    print("runs:", Solvency.runs, "steps:", Solvency.steps, "rules:", Solvency.rule_counts,
          "successful:", Solvency.done, "checks:", Solvency.checks)
    for kind in MUST_SUCCEED:
        assert Solvency.done.get(kind, 0) > 0, f"the sequences never performed {kind} successfully"
    for name in MUST_RUN:
        assert Solvency.rule_counts.get(name, 0) > 0, f"the sequences never ran {name}"
    for name in MUST_CHECK:
        assert Solvency.checks.get(name, 0) > 0, f"the sequences never met the check {name!r}"
