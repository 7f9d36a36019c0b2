"""Risk report: requirement backtests, cascade scenarios, capital efficiency and the stress table.

    .venv/bin/python scripts/bench/risk_report.py        (or `make risk-report`)

Writes scripts/bench/results/risk_backtest.json, cascade.json, efficiency.json, stress.json and PNG charts next to
them. The cascade scenarios run on a local Dask cluster (2 worker processes); set DASK_SCHEDULER_ADDRESS to use a
running cluster instead.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from offchain.population import LOCAL_LAYOUT, generate, prices_wad, to_state  # noqa: E402
from offchain.risk.calibrate import CalibrationSettings, calibrate  # noqa: E402
from offchain.risk.cascade import CascadeScenario, sweep  # noqa: E402
from offchain.risk.commands import cascade_inputs, run_backtest  # noqa: E402
from offchain.risk.data import real, synthetic  # noqa: E402
from offchain.margin.defaults import ASSETS, DEFAULT_SPEC, START_PRICES_USD  # noqa: E402
from offchain.risk.efficiency import efficiency  # noqa: E402
from offchain.margin.params import StressVector  # noqa: E402
from offchain.risk.plots import backtest_chart, cascade_chart, stress_chart  # noqa: E402
from offchain.risk.stress import hypothetical, reverse_summary  # noqa: E402

OUT = ROOT / "scripts" / "bench" / "results"
FUND_USD = 1_000_000.0  # scripts/deploy.py FUND_SEED_USDC
POPULATION, POP_SEED = 300, 7  # the demo population (make demo)
RUNS = 200


def dump(name: str, obj) -> None:
    (OUT / name).write_text(json.dumps(obj, indent=2, default=float) + "\n")


def section(title: str) -> None:
    print(f"\n== {title}")


def backtests() -> dict:
    settings = CalibrationSettings()
    out = {"settings": settings.model_dump(), "coverage": 0.99, "requirement": (
        "MM of a constant 1M USD-per-leg portfolio, recalibrated every day from the returns before it (EWMA vol and "
        "correlation, ES risk weights with the anti-procyclical floor, three regimes, derived stress vectors), "
        "against the next day's loss"), "headline": "long position in the first asset (BTC / S&P 500)"}
    for key, h in (("synthetic", synthetic(3000, 7)), ("real_sp500_nasdaq", real("sp500_nasdaq"))):
        results, objs = run_backtest(h, settings)
        head = results[next(iter(results))]
        out[key] = {"dataset": h.description, "days": head["days"], "exceptions": head["exceptions"],
                    "expected": head["expected"], "kupiec_p": head["kupiec_p"],
                    "christoffersen_p": head["christoffersen_p"],
                    "conditional_coverage_p": head["conditional_coverage_p"],
                    "traffic_light": head["traffic_light"], "kupiec_pass_95": head["kupiec_pass_95"],
                    "portfolios": results}
        if key.startswith("real"):
            out[key]["limits"] = ("equity indices (S&P 500, Nasdaq Composite), not crypto: about a third of BTC's "
                                  "volatility; daily closes only (no intraday path, so the horizon is one trading "
                                  "day); trading days only (weekend gaps); 1999-2018")
        backtest_chart(objs, OUT / f"backtest_{key}.png", f"Requirement backtest: {h.description[:80]}")
        print(f"{key}: {h.description}")
        print(f"  {'portfolio':<28} {'days':>5} {'exc':>4} {'exp':>6} {'Kupiec p':>9} {'Chr. p':>7} light")
        for name, r in results.items():
            print(f"  {name:<28} {r['days']:>5} {r['exceptions']:>4} {r['expected']:>6.1f} {r['kupiec_p']:>9.3f} "
                  f"{r['christoffersen_p']:>7.3f} {r['traffic_light']}")
    return out


def cascades(states) -> dict:
    pf, arr, rule = cascade_inputs(DEFAULT_SPEC, states, LOCAL_LAYOUT, len(ASSETS))
    crash50 = (-0.5,) * 4
    base = CascadeScenario("crash_50_latency_1", crash50, latency=1, runs=RUNS, seed=1)
    scenarios = [
        base,
        base.with_(name="crash_50_latency_3", latency=3),
        base.with_(name="crash_50_latency_10", latency=10),
        base.with_(name="crash_50_latency_1_in_10_blocks", crash_blocks=10),
        base.with_(name="crash_50_gap_1_block", crash_blocks=1),
        base.with_(name="crash_50_latency_1_thin_market", daily_volume_usd=tuple(v / 20 for v in base.daily_volume_usd)),
        base.with_(name="crash_50_latency_1_unwind_1_block", unwind_blocks=1),
        base.with_(name="crash_30_latency_1", crash=(-0.3,) * 4),
        base.with_(name="mar2020_shape_latency_3", crash=(-0.52, -0.54, -0.54, -0.50), latency=3, crash_blocks=300),
        base.with_(name="oct2025_shape_latency_1", crash=(-0.14, -0.21, -0.30, -0.40), crash_blocks=60),
    ]
    t = time.time()
    out = sweep(pf, START_PRICES_USD, arr, rule, FUND_USD, scenarios,
                scheduler=os.environ.get("DASK_SCHEDULER_ADDRESS"), workers=2)
    elapsed = time.time() - t
    cascade_chart({n: np.asarray(r["bad_debt_runs"]) for n, r in out.items()}, FUND_USD, OUT / "cascade.png")
    print(f"  {'scenario':<34} {'bad debt p95':>13} {'fund':>10} {'depletion p95':>14} {'liquidated p95':>15} "
          f"{'accts':>5}")
    for name, r in out.items():
        r.pop("bad_debt_runs")
        print(f"  {name:<34} {r['bad_debt']:>13,.0f} {r['insurance_fund']:>10,.0f} {r['fund_depletion']:>14,.0f} "
              f"{r['liquidated_notional']:>15,.0f} {r['accounts_liquidated']:>5.0f}")
    return {"population": f"offchain.population.generate({POPULATION}, seed={POP_SEED}) at the start prices",
            "spec": "DEFAULT_SPEC", "quantile": 0.95, "runs": RUNS, "seconds": elapsed, "scenarios": out,
            **{name: r for name, r in out.items()}}


def efficiency_report(books) -> dict:
    h = synthetic(3000, 7)
    cal = calibrate(h.returns, h.assets, CalibrationSettings(), source=h.description)
    cal_ttc = calibrate(h.returns, h.assets, CalibrationSettings(apc_floor=1.0), source=h.description)
    eth = DEFAULT_SPEC.stress_index("eth_decouple")
    what_if = DEFAULT_SPEC.model_copy(update={"stress": [
        s if i != eth else StressVector(name="eth_decouple", shocks={1: -1500}) for i, s in enumerate(DEFAULT_SPEC.stress)]})
    out = {"coverage_test": "pooled one-day exception rate of MM over 20,000 synthetic days <= 1%", "specs": {}}
    for name, spec in (("default", DEFAULT_SPEC), ("eth_decouple_15pct", what_if),
                       ("calibrated_apc_0.5", cal.spec), ("calibrated_apc_1.0", cal_ttc.spec)):
        rows = [r.as_dict() for r in efficiency(books, spec)]
        out["specs"][name] = {r["group"]: r for r in rows}
        print(f"  spec {name}")
        for r in rows:
            med = "n/a" if r["saving_median"] is None else f"{r['saving_median']:.1%}"
            agg = "n/a" if r["saving_aggregate"] is None else f"{r['saving_aggregate']:.1%}"
            print(f"    {r['group']:<32} {r['books']:>4} saving median {med:>7} aggregate {agg:>7} "
                  f"exceptions {r['exception_rate']:.4f} {'holds' if r['coverage_holds'] else 'FAILS'}")
    return out


def stress_report(states) -> dict:
    prices = prices_wad(START_PRICES_USD)
    cfg = DEFAULT_SPEC.margin_config()
    rows = [r.as_dict() for r in hypothetical(states, LOCAL_LAYOUT, prices, cfg, ASSETS)]
    pf, arr, _ = cascade_inputs(DEFAULT_SPEC, states, LOCAL_LAYOUT, len(ASSETS))
    rev = reverse_summary(pf, arr, np.asarray(START_PRICES_USD, float), ASSETS, FUND_USD)
    stress_chart(rows, OUT / "stress.png", FUND_USD)
    print(f"  {'scenario':<20} {'liq.':>5} {'insolvent':>9} {'shortfall USD':>14}")
    for r in rows:
        print(f"  {r['name']:<20} {r['liquidatable']:>5} {r['insolvent']:>9} {r['shortfall']:>14,.0f}")
    return {"rows": rows, "reverse_book": rev.directions, "reverse_first_account": rev.first_account}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    books = generate(POPULATION, POP_SEED)
    states = [to_state(b, prices_wad(START_PRICES_USD)) for b in books]
    timings = {}
    for title, fn, arg, fname in (("backtests (Kupiec, Christoffersen, traffic light)", backtests, None,
                                   "risk_backtest.json"),
                                  ("cascade scenarios (demo population, fund 1,000,000 USD)", cascades, states,
                                   "cascade.json"),
                                  ("capital efficiency by book type", efficiency_report, books, "efficiency.json"),
                                  ("stress table (instant moves, nothing liquidated first)", stress_report, states,
                                   "stress.json")):
        section(title)
        t = time.time()
        result = fn() if arg is None else fn(arg)
        timings[fname] = round(time.time() - t, 1)
        result["seconds"] = timings[fname]
        dump(fname, result)
    print(f"\nwritten to {OUT} in {time.time() - t0:.0f} s: {timings}")


if __name__ == "__main__":
    main()
