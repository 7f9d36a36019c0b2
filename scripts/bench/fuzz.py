"""The long fuzzing campaign of the Brownie state machines, one after the other on the same node, each on its own
deployment (``deploy_local`` with ``FIXTURE_SPEC``, the set the machines are written for, as in their CI tests; a
snapshot that every run reverts to):

1. the solvency state machine of tests/stateful/machine.py (invariants 1-6, the economic invariants E1-E5 and the
   attacker of tests/stateful/attacker.py), ``FUZZ_STEPS`` steps (0 skips it);
2. the option state machine of tests/stateful/options.py (``OptionSolvency`` on ``setup_options``: series zero sum and
   interest, the vault's margin equal to the exact mirror, conservation with option values, fills, wash trades,
   expiry fixing and settlement, liquidation liveness; CI test tests/stateful/test_options.py),
   ``FUZZ_OPTION_STEPS`` steps (0 skips it).

    make fuzz                                   # Anvil (Brownie network anvil-fuzz, port 8564), >= 20,000 + 3,000 steps
    FUZZ_STEPS=2000 FUZZ_OPTION_STEPS=500 FUZZ_SEED=7 make fuzz   # a shorter campaign, another seed
    FUZZ_OUT=/tmp/fuzz.json ...                 # write the results elsewhere (FORGE_FUZZ_OUT for the forge campaign)

Each phase runs batches of ``FUZZ_EXAMPLES`` runs of up to ``FUZZ_RUN_STEPS`` steps (the option machine:
``FUZZ_OPTION_EXAMPLES`` x ``FUZZ_OPTION_RUN_STEPS``; hypothesis, not derandomized; the random generator of a phase's
batch i is seeded with ``FUZZ_SEED + i``, so a campaign is reproducible) until its steps have run. Keep batches large:
hypothesis starts every batch with about ten runs of minimal or near-minimal sequences (a step or two each). Every invariant of
the machine is asserted after every step. A batch that fails is recorded (the first failure, and hypothesis's minimal
failing sequence) and the campaign goes on with the next batch: a failed assertion counts as a violation, any other
exception (e.g. a transaction the node dropped) as a harness error. It exits with status 1 if either phase had either,
if some attacker rule never ran, if a funding or deleveraging check (``MUST_CHECK``) never met a case
(``checks_missing``), or if a case the option machine must meet (``MUST`` of tests/stateful/options.py) never occurred
(``options_checks_missing``). Writes ``scripts/bench/results/fuzz.json`` after every batch: ``steps``, ``violations``,
``attacker_rules`` (rule name -> times it ran), ...; the option phase's figures under the same names prefixed
``options_`` (``options_steps``, ``options_runs``, ``options_violations``, ``options_counts``: what happened -> times,
...); keys starting with ``forge`` already in the file (the forge campaign's counts, merged by
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
from tests.stateful.options import MUST, OptionSolvency, setup_options  # noqa: E402

OUT = Path(os.environ.get("FUZZ_OUT", ROOT / "scripts" / "bench" / "results" / "fuzz.json"))


def _env(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _forge_keys() -> dict:
    """The forge campaign's keys in OUT (merged into the same file by scripts/bench/forge_fuzz.py)."""
    try:
        return {k: v for k, v in json.loads(OUT.read_text()).items() if k.startswith("forge")}
    except (OSError, ValueError):
        return {}


def _failures(result: dict, prefix: str, missing: tuple[str, ...]) -> list[str]:
    """What fails the campaign in one phase's keys (``prefix``): violations, harness errors, cases never met."""
    out = [f"{prefix}{k}: {result[prefix + k]}" for k in ("violations", "harness_errors") if result[prefix + k]]
    return out + [f"{prefix}{k}: {', '.join(result[prefix + k])}" for k in missing if result[prefix + k]]


def _deploy(setup_machine, deployer) -> tuple[dict, float]:
    """A protocol (``FIXTURE_SPEC``, as the machines' CI tests), the machine's context on it (``setup_machine``) and the
    snapshot every run reverts to; returns (context, seconds taken)."""
    t0 = time.perf_counter()
    with redirect_stdout(io.StringIO()):
        context = setup_machine(deploy_local(deployer, FIXTURE_SPEC), deployer)
        chain.snapshot()
    return context, time.perf_counter() - t0


def run_batches(machine, label: str, target: int, examples: int, run_steps: int, seed: int, write) -> None:
    """Batches of ``examples`` runs of up to ``run_steps`` steps of the state machine class ``machine`` (its context
    set, the chain snapshotted; batch i seeded with ``seed + i``) until ``target`` steps have run. After every batch
    calls ``write`` with the phase's figures (steps, runs, violations, harness errors, ...) and prints a line."""
    violations: list = []
    errors: list = []
    batch = 0
    started = time.perf_counter()
    while machine.steps - machine.runs < target:
        batch_seed = seed + batch
        hypothesis.core._hypothesis_global_random = random.Random(batch_seed)
        log = io.StringIO()
        machine.failures.clear()
        try:
            with redirect_stdout(log):  # hypothesis prints the minimal failing sequence here
                run_state_machine_as_test(machine, settings=settings(
                    max_examples=examples, stateful_step_count=run_steps, deadline=None, derandomize=False,
                    database=None, suppress_health_check=HealthCheck.all(), print_blob=False))
        except Exception as e:
            # What failed first (hypothesis may replay it as Flaky: chain time moves between runs). An assertion is an
            # invariant or an allowed-refusal check of the machine: a violation. Anything else (a transaction the
            # node dropped, a harness error) is recorded as an error; both fail the campaign.
            kind, first = machine.failures[0] if machine.failures else (type(e).__name__, "")
            entry = {"batch": batch, "seed": batch_seed, "first_failure": first, "error": f"{type(e).__name__}: {e}"[:2000],
                     "sequence": log.getvalue()[-6000:], "trace": traceback.format_exc()[-3000:]}
            (violations if kind == "AssertionError" else errors).append(entry)
            print(f"{label} batch {batch}: {'VIOLATION' if kind == 'AssertionError' else 'ERROR'} {first[:600]}",
                  flush=True)
        batch += 1
        steps = machine.steps - machine.runs
        runtime = time.perf_counter() - started
        figures = {
            "steps": steps,
            "runs": machine.runs,
            "invariant_checks": machine.steps,
            "violations": len(violations),
            "violation_details": violations,
            "harness_errors": len(errors),
            "harness_error_details": errors,
            "batches": batch,
            "settings": {"target_steps": target, "examples_per_batch": examples, "steps_per_run": run_steps,
                         "derandomize": False, "batch_seed": "seed + batch index"},
            "runtime_s": round(runtime, 1),
            "ms_per_step": round(1000 * runtime / max(steps, 1), 1),
        }
        write(figures)
        print(f"{label} batch {batch}: {steps} steps, {machine.runs} runs, {len(violations)} violations, "
              f"{runtime:.0f} s", flush=True)


def main() -> None:
    seed = _env("FUZZ_SEED", 20261121)
    CONFIG.argv["silent"] = True
    warnings.filterwarnings("ignore", category=FutureWarning)
    deployer = accounts[0]
    result: dict = {}  # the solvency machine's keys, then the option machine's (options_*)
    about = {"seed": seed, "node": web3.provider.make_request("web3_clientVersion", [])["result"],
             "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
             "command": "make fuzz"}

    def write(keys: dict) -> None:
        result.update(keys)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        tmp = OUT.with_suffix(".brownie.tmp")
        # the forge keys are read again at every write: the forge campaign may finish meanwhile
        tmp.write_text(json.dumps({**result, **about, **_forge_keys()}, indent=1) + "\n")
        tmp.replace(OUT)

    failed = []
    target = _env("FUZZ_STEPS", 20_000)
    if target > 0:
        Solvency.context, setup_s = _deploy(setup, deployer)

        def solvency_keys(figures: dict) -> None:
            attacker = {name: Solvency.rule_counts.get(name, 0) for name in ATTACKER_RULES}
            write({**figures,
                   "attacker_rules": attacker,  # every one must have run
                   "attacker_rules_missing": [name for name, n in attacker.items() if n == 0],
                   # funding that never moved, or deleveraging never met, would leave their checks untested
                   "checks_missing": [name for name in MUST_CHECK if not Solvency.checks.get(name)],
                   "setup_s": round(setup_s, 1),
                   "rule_counts": dict(sorted(Solvency.rule_counts.items())),
                   "successful_transactions": dict(sorted(Solvency.done.items())),
                   "checks": dict(sorted(Solvency.checks.items()))})  # how often each check met a case

        run_batches(Solvency, "solvency", target, _env("FUZZ_EXAMPLES", 60), _env("FUZZ_RUN_STEPS", 50), seed,
                    solvency_keys)
        print(json.dumps({k: result[k] for k in ("steps", "runs", "violations", "harness_errors", "runtime_s",
                                                 "attacker_rules")}))
        failed += _failures(result, "", ("attacker_rules_missing", "checks_missing"))
    target = _env("FUZZ_OPTION_STEPS", 3_000)
    if target > 0:
        OptionSolvency.context, setup_s = _deploy(setup_options, deployer)

        def option_keys(figures: dict) -> None:
            counts = OptionSolvency.counts
            write({f"options_{k}": v for k, v in {
                **figures,
                "checks_missing": [name for name in MUST if not counts.get(name)],  # every MUST case must occur
                "setup_s": round(setup_s, 1),
                "counts": dict(sorted(counts.items()))}.items()})  # actions done and checks met, over all runs

        run_batches(OptionSolvency, "options", target, _env("FUZZ_OPTION_EXAMPLES", 60),
                    _env("FUZZ_OPTION_RUN_STEPS", 25), seed, option_keys)
        print(json.dumps({k: result[k] for k in ("options_steps", "options_runs", "options_violations",
                                                 "options_harness_errors", "options_runtime_s")}))
        failed += _failures(result, "options_", ("checks_missing",))
    for reason in failed:
        print(reason, flush=True)
    if failed:
        raise SystemExit(1)
