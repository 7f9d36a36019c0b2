"""The long fuzzing campaign: the solvency state machine of tests/stateful/machine.py (invariants 1-6, the economic
invariants E1-E5 and the attacker of tests/stateful/attacker.py) on random sequences.

    make fuzz                                   # Anvil (Brownie network anvil-fuzz, port 8564), >= 20,000 steps
    FUZZ_STEPS=2000 FUZZ_SEED=7 make fuzz       # a shorter campaign, another seed (FUZZ_OUT: another file)

Runs batches of ``FUZZ_EXAMPLES`` state-machine runs of ``FUZZ_RUN_STEPS`` steps (hypothesis, not derandomized; the
random generator of batch i is seeded with ``FUZZ_SEED + i``, so a campaign is reproducible) until ``FUZZ_STEPS``
steps have run. Every invariant of the machine is asserted after every step. A batch that fails is recorded (the
first failure, and hypothesis's minimal failing sequence) and the campaign goes on with the next batch: a failed
assertion counts as a violation, any other exception (e.g. a transaction the node dropped) as a harness error. It
exits with status 1 if there was either, if some attacker rule never ran, or if a funding or deleveraging check
(``MUST_CHECK``) never met a case (``checks_missing``). Writes
``scripts/bench/results/fuzz.json`` after every batch: ``steps``, ``violations``, ``attacker_rules`` (rule name ->
times it ran), ...; keys starting with ``forge`` already in the file (the forge campaign's counts, merged by
scripts/bench/forge_fuzz.py) are kept.
"""
from __future__ import annotations

import io
import json
import os
import platform
import random
import sys
import time
import traceback
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import hypothesis.core
from brownie import accounts, chain, web3
from brownie._config import CONFIG
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from scripts.deploy import deploy_local  # noqa: E402
from tests.fixture_spec import FIXTURE_SPEC  # noqa: E402
from tests.stateful.machine import ATTACKER_RULES, MUST_CHECK, Solvency, setup  # noqa: E402

OUT = Path(os.environ.get("FUZZ_OUT", ROOT / "scripts" / "bench" / "results" / "fuzz.json"))


def _env(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _forge_keys() -> dict:
    """The forge campaign's keys in OUT (merged into the same file by scripts/bench/forge_fuzz.py)."""
    try:
        return {k: v for k, v in json.loads(OUT.read_text()).items() if k.startswith("forge")}
    except (OSError, ValueError):
        return {}


def main() -> None:
    seed = _env("FUZZ_SEED", 20261121)
    target = _env("FUZZ_STEPS", 20_000)
    examples = _env("FUZZ_EXAMPLES", 60)
    run_steps = _env("FUZZ_RUN_STEPS", 50)
    CONFIG.argv["silent"] = True
    warnings.filterwarnings("ignore", category=FutureWarning)
    deployer = accounts[0]
    t0 = time.perf_counter()
    with redirect_stdout(io.StringIO()):
        protocol = deploy_local(deployer, FIXTURE_SPEC)  # the set the machine is written for, as in CI
        Solvency.context = setup(protocol, deployer)
        chain.snapshot()
    setup_s = time.perf_counter() - t0
    violations: list = []
    errors: list = []
    batch = 0
    started = time.perf_counter()
    result: dict = {}
    while Solvency.steps - Solvency.runs < target:
        batch_seed = seed + batch
        hypothesis.core._hypothesis_global_random = random.Random(batch_seed)
        log = io.StringIO()
        Solvency.failures.clear()
        try:
            with redirect_stdout(log):  # hypothesis prints the minimal failing sequence here
                run_state_machine_as_test(Solvency, settings=settings(
                    max_examples=examples, stateful_step_count=run_steps, deadline=None, derandomize=False,
                    database=None, suppress_health_check=HealthCheck.all(), print_blob=False))
        except Exception as e:
            # What failed first (hypothesis may replay it as Flaky: chain time moves between runs). An assertion is an
            # invariant or an allowed-refusal check of the machine: a violation. Anything else (a transaction the
            # node dropped, a harness error) is recorded as an error; both fail the campaign.
            kind, first = Solvency.failures[0] if Solvency.failures else (type(e).__name__, "")
            entry = {"batch": batch, "seed": batch_seed, "first_failure": first, "error": f"{type(e).__name__}: {e}"[:2000],
                     "sequence": log.getvalue()[-6000:], "trace": traceback.format_exc()[-3000:]}
            (violations if kind == "AssertionError" else errors).append(entry)
            print(f"batch {batch}: {'VIOLATION' if kind == 'AssertionError' else 'ERROR'} {first[:600]}", flush=True)
        batch += 1
        steps = Solvency.steps - Solvency.runs
        runtime = time.perf_counter() - started
        attacker = {name: Solvency.rule_counts.get(name, 0) for name in ATTACKER_RULES}
        result = {
            "steps": steps,
            "runs": Solvency.runs,
            "invariant_checks": Solvency.steps,
            "violations": len(violations),
            "violation_details": violations,
            "harness_errors": len(errors),
            "harness_error_details": errors,
            "attacker_rules": attacker,  # every one must have run
            "attacker_rules_missing": [name for name, n in attacker.items() if n == 0],
            # funding that never moved, or deleveraging never met, would leave their checks untested
            "checks_missing": [name for name in MUST_CHECK if not Solvency.checks.get(name)],
            "batches": batch,
            "seed": seed,
            "settings": {"target_steps": target, "examples_per_batch": examples, "steps_per_run": run_steps,
                         "derandomize": False, "batch_seed": "seed + batch index"},
            "runtime_s": round(runtime, 1),
            "setup_s": round(setup_s, 1),
            "ms_per_step": round(1000 * runtime / max(steps, 1), 1),
            "rule_counts": dict(sorted(Solvency.rule_counts.items())),
            "successful_transactions": dict(sorted(Solvency.done.items())),
            "checks": dict(sorted(Solvency.checks.items())),  # how often each check met a case that exercises it
            "node": web3.provider.make_request("web3_clientVersion", [])["result"],
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "command": "make fuzz",
            **_forge_keys(),  # read again at every write: the forge campaign may finish meanwhile
        }
        OUT.parent.mkdir(parents=True, exist_ok=True)
        tmp = OUT.with_suffix(".brownie.tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(OUT)
        print(f"batch {batch}: {steps} steps, {Solvency.runs} runs, {len(violations)} violations, "
              f"{runtime:.0f} s", flush=True)
    print(json.dumps({k: result[k] for k in ("steps", "runs", "violations", "harness_errors", "runtime_s",
                                             "attacker_rules")}))
    if result["attacker_rules_missing"]:
        print("attacker rules that never ran:", ", ".join(result["attacker_rules_missing"]), flush=True)
    if result["checks_missing"]:
        print("checks that never met a case:", ", ".join(result["checks_missing"]), flush=True)
    if violations or errors or result["attacker_rules_missing"] or result["checks_missing"]:
        raise SystemExit(1)
