"""Risk report: requirement backtests, cascade scenarios, capital efficiency and the stress table.

    .venv/bin/python scripts/bench/risk_report.py        (or `make risk-report`)
    .venv/bin/python scripts/bench/risk_report.py --only cascade     (one section: `make risk-report ONLY=cascade`)

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


# The two fast crashes the fund is sized for (review finding: a crash over 100 blocks hid them), as CascadeScenarios
# on top of the defaults (keeper cap 40 calls per block, crash premium -20 bps, scalers up to 1.5 two blocks after the
# updater sees the jump, the fund desk unwinding over 10 blocks).
ACCEPTANCE = {
    "crash_35_3blocks_latency_5_depth_half": dict(crash=(-0.35,) * 4, latency=5, crash_blocks=3, depth_factor=0.5),
    "crash_50_10blocks_latency_1": dict(crash=(-0.5,) * 4, latency=1, crash_blocks=10),
}
SIZING_SEED, CHECK_SEED = 1, 2  # the fund is sized on one set of paths and checked on another
FUND_STEP_USD = 50_000.0  # the rule's fund is rounded up to this


def cascades(states) -> dict:
    """Fund sizing (offchain.risk.fundsize) for the acceptance scenarios, then every scenario at the sized fund (paths
    independent of the sizing) and at the deployed fund (FUND_USD)."""
    from offchain.population import market_makers
    from offchain.risk.fundsize import size_fund

    book = states + market_makers(states)  # the demo trades the population against one market maker per market
    pf, arr, rule = cascade_inputs(DEFAULT_SPEC, book, LOCAL_LAYOUT, len(ASSETS))
    t = time.time()
    sizing = {}
    for name, kw in ACCEPTANCE.items():
        r = size_fund(pf, START_PRICES_USD, arr, rule, CascadeScenario(name, runs=RUNS, seed=SIZING_SEED, **kw),
                      start=FUND_USD)
        sizing[name] = r.as_dict()
        print(f"  fund-size {name}: {r.fund:,.0f} USD (need p95 {r.at_fund.need:,.0f}; at 90%: "
              f"{'passes' if r.at_90pct.passes else 'fails'}), {r.simulations} simulations, {r.seconds:.0f} s")
    fund = float(np.ceil(max(r["fund"] for r in sizing.values()) / FUND_STEP_USD) * FUND_STEP_USD)
    crash50 = (-0.5,) * 4
    base = CascadeScenario("crash_50_latency_1", crash50, latency=1, runs=RUNS, seed=CHECK_SEED)
    scenarios = [CascadeScenario(name, runs=RUNS, seed=CHECK_SEED, **kw) for name, kw in ACCEPTANCE.items()] + [
        CascadeScenario("crash_35_3blocks_latency_5_depth_half_cap_10_calls", runs=RUNS, seed=CHECK_SEED,
                        max_calls_per_block=10, **ACCEPTANCE["crash_35_3blocks_latency_5_depth_half"]),
        base,
        base.with_(name="crash_50_latency_3", latency=3),
        base.with_(name="crash_50_latency_10", latency=10),
        base.with_(name="crash_50_gap_1_block", crash_blocks=1),
        base.with_(name="crash_50_latency_1_thin_market",
                   daily_volume_usd=tuple(v / 20 for v in base.daily_volume_usd)),
        base.with_(name="crash_50_latency_1_unwind_1_block", unwind_blocks=1),
        base.with_(name="crash_50_10blocks_latency_1_desk_3_blocks", crash_blocks=10, unwind_blocks=3),
        base.with_(name="crash_50_10blocks_latency_1_no_block_cap", crash_blocks=10, max_calls_per_block=0),
        base.with_(name="crash_50_10blocks_latency_1_no_vol_scaler", crash_blocks=10, vol_cap=1.0),
        base.with_(name="crash_30_latency_1", crash=(-0.3,) * 4),
        base.with_(name="mar2020_shape_latency_3", crash=(-0.52, -0.54, -0.54, -0.50), latency=3, crash_blocks=300),
        base.with_(name="oct2025_shape_latency_1", crash=(-0.14, -0.21, -0.30, -0.40), crash_blocks=60),
    ]
    out = sweep(pf, START_PRICES_USD, arr, rule, fund, scenarios,
                scheduler=os.environ.get("DASK_SCHEDULER_ADDRESS"), workers=2)
    at_deployed = sweep(pf, START_PRICES_USD, arr, rule, FUND_USD, scenarios[:len(ACCEPTANCE)],
                        scheduler=os.environ.get("DASK_SCHEDULER_ADDRESS"), workers=0)
    elapsed = time.time() - t
    cascade_chart({n: np.asarray(r["bad_debt_runs"]) for n, r in out.items()}, fund, OUT / "cascade.png")
    for rows in (out, at_deployed):
        for r in rows.values():
            r.pop("bad_debt_runs")
    def verdict(rows: dict, f: float) -> dict:
        v = {}
        for name in ACCEPTANCE:
            r = rows[name]
            v[name] = {"bad_debt_zero": r["bad_debt"] == 0, "depletion_within_fund": r["fund_depletion"] <= f}
            v[name]["passes"] = all(v[name].values())
        return v

    accept = verdict(out, fund)
    print(f"  fund by the rule: {fund:,.0f} USD (deployed {FUND_USD:,.0f}); p95 over {RUNS} runs, paths seed "
          f"{CHECK_SEED}")
    print(f"  {'scenario':<44} {'fund':>10} {'bad debt':>10} {'depletion':>10} {'ADL':>9} {'written off':>11} "
          f"{'liquidated':>11} {'accts':>5}")
    for rows in (out, at_deployed):
        for name, r in rows.items():
            print(f"  {name:<44} {r['insurance_fund']:>10,.0f} {r['bad_debt']:>10,.0f} {r['fund_depletion']:>10,.0f} "
                  f"{r['adl']:>9,.0f} {r['written_off']:>11,.0f} {r['liquidated_notional']:>11,.0f} "
                  f"{r['accounts_liquidated']:>5.0f}")
    for label, f, v in (("rule's fund", fund, accept), ("deployed fund", FUND_USD, verdict(at_deployed, FUND_USD))):
        for name, a in v.items():
            print(f"  acceptance at the {label} {f:,.0f}: {name}: {'PASSES' if a['passes'] else 'FAILS'} {a}")
    depths = with_market_depths()
    return {"population": f"offchain.population.generate({POPULATION}, seed={POP_SEED}) at the start prices, with "
                          "the demo's market makers (offchain.population.market_makers)",
            "spec": "DEFAULT_SPEC", "quantile": 0.95, "runs": RUNS, "seconds": elapsed,
            "insurance_fund": fund, "fund_rule": "offchain.risk.fundsize (xmargin risk fund-size): the smallest fund "
            "whose p95 depletion + deleveraged + socialised stays covered with nothing deleveraged or socialised, on "
            f"paths of seed {SIZING_SEED}; the largest over the acceptance scenarios, rounded up to "
            f"{FUND_STEP_USD:,.0f} USD; scenarios below run on paths of seed {CHECK_SEED}",
            "sizing": sizing, "acceptance": accept, "scenarios": out,
            "at_deployed_fund": {"insurance_fund": FUND_USD, "acceptance": verdict(at_deployed, FUND_USD),
                                 "scenarios": at_deployed},
            "with_market_depths": depths, **{name: r for name, r in out.items()}}


# Liquidation depths for the concentration charge N sqrt(N / L): one day of the venue's volume in each market (the
# CascadeScenario's daily_volume_usd), a multiple of the 10M USD unit RiskParameters stores.
MARKET_DEPTHS_USD = {0: 200_000_000, 1: 100_000_000, 2: 50_000_000, 3: 20_000_000}


def with_market_depths() -> dict:
    """The acceptance scenarios under DEFAULT_SPEC plus market depths: the population drawn with the same seed but
    sized under that spec (traders cannot open what IM refuses), the fund sized by the rule, checked on other paths
    at that fund and at the deployed one."""
    from offchain.population import market_makers
    from offchain.risk.fundsize import size_fund

    spec = DEFAULT_SPEC.model_copy(update={"markets": {
        m: r.model_copy(update={"depth_usd": MARKET_DEPTHS_USD[m]}) for m, r in DEFAULT_SPEC.markets.items()}})
    books = generate(POPULATION, POP_SEED, spec=spec)
    states = [to_state(b, prices_wad(START_PRICES_USD)) for b in books]
    pf, arr, rule = cascade_inputs(spec, states + market_makers(states), LOCAL_LAYOUT, len(ASSETS))
    sizing = {name: size_fund(pf, START_PRICES_USD, arr, rule,
                              CascadeScenario(name, runs=RUNS, seed=SIZING_SEED, **kw), start=FUND_USD).as_dict()
              for name, kw in ACCEPTANCE.items()}
    fund = float(np.ceil(max(r["fund"] for r in sizing.values()) / FUND_STEP_USD) * FUND_STEP_USD)
    scenarios = [CascadeScenario(name, runs=RUNS, seed=CHECK_SEED, **kw) for name, kw in ACCEPTANCE.items()]
    out = {"depth_usd": MARKET_DEPTHS_USD, "gross_notional_usd": sum(b.gross_usd for b in books),
           "gross_notional_usd_without_depths": sum(b.gross_usd for b in generate(POPULATION, POP_SEED)),
           "insurance_fund": fund, "sizing": sizing}
    for label, f in (("at_rule_fund", fund), ("at_deployed_fund", FUND_USD)):
        rows = sweep(pf, START_PRICES_USD, arr, rule, f, scenarios, workers=0)
        for r in rows.values():
            r.pop("bad_debt_runs")
            r["passes"] = r["bad_debt"] == 0 and r["fund_depletion"] <= f
        out[label] = rows
    print(f"  with market depths {MARKET_DEPTHS_USD}: book gross {out['gross_notional_usd']:,.0f} USD (without "
          f"{out['gross_notional_usd_without_depths']:,.0f}); fund by the rule {fund:,.0f}")
    for label in ("at_rule_fund", "at_deployed_fund"):
        for name, r in out[label].items():
            print(f"    {label:<17} {name:<40} fund {r['insurance_fund']:>10,.0f} bad debt {r['bad_debt']:>8,.0f} "
                  f"depletion {r['fund_depletion']:>10,.0f} ADL {r['adl']:>8,.0f} {'PASSES' if r['passes'] else 'FAILS'}")
    return out


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


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=["backtests", "cascade", "efficiency", "stress"],
                   help="run one section (its JSON only)")
    only = p.parse_args(argv).only
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    books = generate(POPULATION, POP_SEED)
    states = [to_state(b, prices_wad(START_PRICES_USD)) for b in books]
    timings = {}
    for title, fn, arg, fname in (("backtests (Kupiec, Christoffersen, traffic light)", backtests, None,
                                   "risk_backtest.json"),
                                  ("cascade scenarios (demo population, fund sized by the rule)", cascades, states,
                                   "cascade.json"),
                                  ("capital efficiency by book type", efficiency_report, books, "efficiency.json"),
                                  ("stress table (instant moves, nothing liquidated first)", stress_report, states,
                                   "stress.json")):
        if only and not fname.startswith({"backtests": "risk_backtest", "cascade": "cascade",
                                          "efficiency": "efficiency", "stress": "stress"}[only]):
            continue
        section(title)
        t = time.time()
        result = fn() if arg is None else fn(arg)
        timings[fname] = round(time.time() - t, 1)
        result["seconds"] = timings[fname]
        dump(fname, result)
    print(f"\nwritten to {OUT} in {time.time() - t0:.0f} s: {timings}")


if __name__ == "__main__":
    main()
