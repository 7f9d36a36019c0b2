"""The long Foundry invariant campaign: tests/forge (the real protocol in forge's in-process EVM) under the ``long``
profile of foundry.toml, at least 1,000,000 handler calls in all.

    make fuzz                                            # this campaign, then the Brownie one (scripts/bench/fuzz.py)
    .venv/bin/python scripts/bench/forge_fuzz.py         # this campaign alone
    FORGE_FUZZ_RUNS=20 FORGE_FUZZ_DEPTH=100 FORGE_FUZZ_SEED=7 .venv/bin/python scripts/bench/forge_fuzz.py
    FORGE_FUZZ_OUT=/tmp/fuzz.json ...                    # write the results elsewhere

forge runs one campaign per ``invariant_*`` function (runs x depth calls each) and asserts that function after every
call; a failure ends that campaign (forge shrinks it to a short call sequence). The step checks E1-E5 run inside every
call of every campaign; here (XMARGIN_FORGE_TALLY) their violations are counted per run, not asserted, so every campaign
runs to its end and a contract bug met early does not hide the rest (conservation and zero-sum are always asserted).
`make forge` runs the same campaigns strictly: the first violation fails and forge prints its shrunk sequence.
Afterwards this script reads forge's ``--json`` report and the per-run counters (.cache/forge/coverage) and merges
into ``scripts/bench/results/fuzz.json`` (read-modify-write: every other key is kept):

    forge_calls, forge_runs        handler calls and runs, summed over the invariant functions
    forge_violations               failed invariant functions (forge_failures: reason and shrunk call sequence) plus,
                                   per step check, the runs that broke it (forge_tally: runs, violations counted,
                                   the first one described)
    forge_handler_calls            "Handler.function" -> calls (reverted calls included; forge_handler_reverts)
    forge_runtime_s                wall time of the forge run (compilation included)
    forge_failed_tests             unit tests of tests/forge that failed (Findings.t.sol: known contract bugs)
    forge_coverage                 the ledger's counters summed over runs (liquidations, write-offs, E5 probes, ...)
    forge_settings                 profile, runs, depth, seed, machine

Exits with status 1 if an invariant or a unit test of tests/forge failed, forge did not run, or the campaign never
moved a funding index or never deleveraged (``MUST_COUNT``: their invariants would be untested).
"""
from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("FORGE_FUZZ_OUT", ROOT / "scripts" / "bench" / "results" / "fuzz.json"))
FORGE = ROOT / "node_modules" / ".bin" / "forge"
COVERAGE_DIR = ROOT / ".cache" / "forge" / "coverage"  # writable by the tests (fs_permissions in foundry.toml)
MIN_CALLS = 1_000_000
MUST_COUNT = ("funding_moves", "deleveragings", "positions_charged_checked")  # coverage counters that must be > 0

log = logging.getLogger("xmargin.forge_fuzz")


def forge_command(seed: str | None) -> list[str]:
    cmd = [str(FORGE), "test", "--json", "--match-path", "tests/forge/*"]
    if seed:
        cmd += ["--fuzz-seed", seed]
    return cmd


def summarise(report: dict) -> dict:
    """Totals over every invariant test of forge's --json report."""
    calls = runs = 0
    handler_calls: Counter = Counter()
    handler_reverts: Counter = Counter()
    failures = []
    failed_tests = []
    tests = 0
    for suite in report.values():
        for name, result in suite["test_results"].items():
            inv = (result.get("kind") or {}).get("Invariant")
            if inv is None:  # a unit test (tests/forge/Findings.t.sol: known contract bugs as failing tests)
                if result["status"] != "Success":
                    failed_tests.append({"test": name, "reason": result.get("reason")})
                continue
            tests += 1
            calls += inv["calls"]
            runs += inv["runs"]
            for fn, m in (inv.get("metrics") or {}).items():
                short = fn.rsplit(":", 1)[-1]  # "tests/forge/handlers/X.sol:XHandler.fn" -> "XHandler.fn"
                handler_calls[short] += m["calls"]
                handler_reverts[short] += m["reverts"]
            if result["status"] != "Success":
                failures.append({"invariant": name, "reason": result.get("reason"),
                                 "sequence": _sequence(result.get("counterexample"))})
    return {"tests": tests, "calls": calls, "runs": runs, "handler_calls": dict(sorted(handler_calls.items())),
            "handler_reverts": dict(sorted(handler_reverts.items())), "failures": failures,
            "failed_tests": failed_tests}


def _sequence(counterexample) -> list[str]:
    """The failing call sequence, one "Contract.function(args)" per call (forge's shrunk sequence)."""
    if not isinstance(counterexample, dict):
        return []
    calls = counterexample.get("Sequence") or []
    out = []
    for c in calls:
        name = c.get("contract_name") or c.get("addr") or "?"
        out.append(f"{name.rsplit(':', 1)[-1]}.{c.get('signature') or c.get('func_name')}({c.get('args', '')})")
    return out


def coverage(path: Path) -> tuple[dict, dict]:
    """The ledger's per-run lines (one JSON object per run, from afterInvariant): counters summed, and per step check
    the runs that broke it, the violations counted and the first one described."""
    total: Counter = Counter()
    tally: dict = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            run = json.loads(line)
            first = run.pop("first", {})
            for check, n in run.pop("violations", {}).items():
                t = tally.setdefault(check, {"runs": 0, "violations": 0, "first": None})
                t["violations"] += n
                t["runs"] += n > 0
                if n and t["first"] is None:
                    t["first"] = first.get(check)
            total.update(run)
    return dict(sorted(total.items())), tally


def merge(result: dict) -> None:
    """Read-modify-write of fuzz.json: the forge_* keys are replaced, every other key kept."""
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    data.update(result)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(OUT)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    profile = os.environ.get("FOUNDRY_PROFILE", "long")
    env = dict(os.environ, FOUNDRY_PROFILE=profile)
    if "FORGE_FUZZ_RUNS" in os.environ:
        env["FOUNDRY_INVARIANT_RUNS"] = os.environ["FORGE_FUZZ_RUNS"]
    if "FORGE_FUZZ_DEPTH" in os.environ:
        env["FOUNDRY_INVARIANT_DEPTH"] = os.environ["FORGE_FUZZ_DEPTH"]
    seed = os.environ.get("FORGE_FUZZ_SEED")
    COVERAGE_DIR.mkdir(parents=True, exist_ok=True)
    cov_path = COVERAGE_DIR / f"run-{os.getpid()}.jsonl"
    cov_path.unlink(missing_ok=True)
    env["XMARGIN_FORGE_COVERAGE"] = str(cov_path.relative_to(ROOT))
    env["XMARGIN_FORGE_TALLY"] = "true"
    cmd = forge_command(seed)
    log.info("forge campaign (profile %s, runs %s, depth %s): %s", profile, env.get("FOUNDRY_INVARIANT_RUNS", "from "
             "foundry.toml"), env.get("FOUNDRY_INVARIANT_DEPTH", "from foundry.toml"), " ".join(cmd))
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    runtime = time.perf_counter() - started
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        log.error("forge produced no JSON report (exit %d):\n%s", proc.returncode, proc.stderr[-4000:])
        return 1
    s = summarise(report)
    cov, tally = coverage(cov_path)
    broken_runs = sum(t["runs"] for t in tally.values())
    result = {
        "forge_calls": s["calls"],
        "forge_runs": s["runs"],
        "forge_violations": len(s["failures"]) + broken_runs,
        "forge_handler_calls": s["handler_calls"],
        "forge_runtime_s": round(runtime, 1),
        "forge_handler_reverts": s["handler_reverts"],
        "forge_failures": s["failures"],
        "forge_tally": {k: v for k, v in sorted(tally.items()) if v["runs"]},
        "forge_failed_tests": s["failed_tests"],
        "forge_invariants": s["tests"],
        "forge_coverage": cov,
        "forge_settings": {
            "profile": profile,
            "runs_per_invariant": s["runs"] // max(s["tests"], 1),
            "depth": s["calls"] // max(s["runs"], 1),
            "seed": seed or "random",
            "forge": subprocess.run([str(FORGE), "--version"], capture_output=True, text=True).stdout.splitlines()[0],
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "command": "scripts/bench/forge_fuzz.py (make fuzz)",
        },
    }
    merge(result)
    cov_path.unlink(missing_ok=True)
    log.info("%d invariants, %d runs, %d calls (%.0f calls/s), %d violations, %.0f s; coverage: %s", s["tests"],
             s["runs"], s["calls"], s["calls"] / max(runtime, 1e-9), result["forge_violations"], runtime,
             json.dumps(cov))
    for f in s["failures"]:
        log.error("VIOLATION %s: %s\n  %s", f["invariant"], f["reason"], "\n  ".join(f["sequence"][-40:]))
    for check, t in result["forge_tally"].items():
        log.error("VIOLATION %s in %d runs (%d counted), first: %s", check, t["runs"], t["violations"], t["first"])
    for t in s["failed_tests"]:
        log.error("FAILED TEST %s: %s", t["test"], t["reason"])
    if s["calls"] < MIN_CALLS and profile == "long" and not ({"FORGE_FUZZ_RUNS", "FORGE_FUZZ_DEPTH"} & set(os.environ)):
        log.warning("the long profile made %d calls, fewer than %d: raise runs or depth in foundry.toml", s["calls"],
                    MIN_CALLS)
    if proc.returncode != 0 and not (s["failures"] or s["failed_tests"]):
        log.error("forge exited with %d:\n%s", proc.returncode, proc.stderr[-4000:])
        return 1
    # funding that never moved, or deleveraging never met, would leave their invariants untested
    unmet = [k for k in MUST_COUNT if not cov.get(k)]
    if unmet:
        log.error("the campaign never met: %s", ", ".join(unmet))
    return 1 if result["forge_violations"] or s["failed_tests"] or unmet else 0


if __name__ == "__main__":
    sys.exit(main())
