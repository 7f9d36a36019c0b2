"""``xmargin risk ...``: thin commands over the risk analytics library.

    xmargin risk calibrate  [--dataset D] [--out spec.json|spec.toml] [--report report.json] [model options]
    xmargin risk backtest   [--dataset D] [--out results.json] [--plot chart.png] [model options]
    xmargin [--config FILE] risk stress     [--spec FILE] [--synthetic [--population N] [--pop-seed S]] [--plot F]
    xmargin [--config FILE] risk var        [same] [--level Q] [--dataset D]
    xmargin [--config FILE] risk cascade    [same] [--crash -0.5] [--latency 1] [--runs N] [--depth-factor 1]
                                            [--max-calls 40] [--scheduler ADDR] [--plot F]
    xmargin [--config FILE] risk fund-size  [same] [--crash -0.35] [--crash-blocks 3] [--latency 5] [--depth-factor 0.5]
                                            [--runs N] [--with-adl] [--out fund.json]
    xmargin [--config FILE] risk efficiency [same]
    xmargin [--config FILE] risk propose SPEC [--dry-run]

The account commands (stress, var, cascade, efficiency) read the accounts of the deployment the settings name (the
indexer's database, brought up to the chain's head first), at the chain's prices and margin parameters (``--spec``:
another parameter set, as a what-if); ``--synthetic`` uses the demo population (``offchain.population.generate``;
300 books, seed 7) at the local start prices instead, and the cascade commands (cascade, fund-size) add the market
makers the demo trades it against (``offchain.population.market_makers``: the opposite side deleveraging charges).
Every output starts with the line saying which. A dataset D is ``synthetic``, ``sp500``, ``nasdaq``,
``sp500_nasdaq``, ``crypto-<exchange>`` (real BTC/ETH daily closes of poloniex, coinbase-pro or bitstamp, downloaded
on first use) or a CSV of daily closes.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import ValidationError

from ..config import load_settings
from ..errors import ConfigError

log = logging.getLogger(__name__)
DATASETS_HELP = ("synthetic | sp500 | nasdaq | sp500_nasdaq | crypto-poloniex | crypto-coinbase-pro | crypto-bitstamp "
                 "| path/to/closes.csv")


def add_parser(sub: Any) -> None:
    r = sub.add_parser("risk", help="risk analytics: calibration, backtests, stress, VaR, cascades, proposals")
    rs = r.add_subparsers(dest="action", required=True)

    def model_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dataset", default="synthetic", help=DATASETS_HELP)
        p.add_argument("--days", type=int, default=3000, help="days of synthetic history")
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--lam", type=float, help="EWMA decay (default 0.94)")
        p.add_argument("--es-level", type=float, help="ES level behind the risk weights (default 0.99)")
        p.add_argument("--apc-floor", type=float, help="anti-procyclical floor, fraction of long-run vol (0.5)")
        p.add_argument("--horizon-days", type=float, help="liquidation horizon in days (default 1)")

    def pop_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--spec", help="RiskSpec JSON/TOML (default: the deployment's own parameters; with "
                       "--synthetic, the default set)")
        p.add_argument("--synthetic", action="store_true", help="the synthetic demo population, not a deployment")
        p.add_argument("--population", type=int, default=300, help="books in the demo population (--synthetic)")
        p.add_argument("--pop-seed", type=int, default=7, help="seed of the demo population (--synthetic)")

    c = rs.add_parser("calibrate", help="estimate a RiskSpec from a price history")
    model_opts(c)
    c.add_argument("--out", default="risk_spec.json", help="where to write the spec (.json or .toml)")
    c.add_argument("--report", help="write the calibration report (JSON) here")
    b = rs.add_parser("backtest", help="Kupiec/Christoffersen backtest of the rolling requirement")
    model_opts(b)
    b.add_argument("--out", help="write the results (JSON) here")
    b.add_argument("--plot", help="write a PNG chart here")
    s = rs.add_parser("stress", help="stress library and reverse stress on the population")
    pop_opts(s)
    s.add_argument("--fund", type=float, help="insurance fund, USD (default: the deployment's; 1,000,000 synthetic)")
    s.add_argument("--plot", help="write a PNG chart here")
    v = rs.add_parser("var", help="VaR/ES per account and for the protocol")
    pop_opts(v)
    v.add_argument("--dataset", default="synthetic", help=DATASETS_HELP + " (the returns behind the scenarios)")
    v.add_argument("--level", type=float, default=0.99)
    v.add_argument("--top", type=int, default=10, help="accounts shown (largest ES first)")
    k = rs.add_parser("cascade", help="liquidation-cascade simulation")
    pop_opts(k)
    k.add_argument("--crash", type=float, default=-0.5, help="move of every asset, e.g. -0.5")
    k.add_argument("--latency", type=int, nargs="+", default=[1, 3, 10], help="keeper latencies (blocks)")
    k.add_argument("--crash-blocks", type=int, default=100)
    k.add_argument("--runs", type=int, default=200)
    k.add_argument("--fund", type=float, help="insurance fund, USD (default: the deployment's; 1,000,000 synthetic)")
    k.add_argument("--scheduler", help="run on this Dask scheduler (default: risk.scheduler)")
    k.add_argument("--workers", type=int, help="run on a local Dask cluster of N processes (default: risk.workers; "
                   "0: in this process)")
    k.add_argument("--depth-factor", type=float, default=1.0, help="market depth behind the impact, times this "
                   "(0.5: depth halved)")
    k.add_argument("--max-calls", type=int, default=40, help="liquidation calls that fit in a block (0: no cap)")
    k.add_argument("--plot", help="write a PNG chart here")
    z = rs.add_parser("fund-size", help="the insurance fund the book needs for a crash (bisection over simulations)")
    pop_opts(z)
    z.add_argument("--crash", type=float, default=-0.35, help="move of every asset, e.g. -0.35")
    z.add_argument("--crash-blocks", type=int, default=3, help="blocks the crash takes")
    z.add_argument("--latency", type=int, default=5, help="keeper latency (blocks)")
    z.add_argument("--depth-factor", type=float, default=0.5, help="market depth behind the impact, times this")
    z.add_argument("--max-calls", type=int, default=40, help="liquidation calls that fit in a block (0: no cap)")
    z.add_argument("--unwind-blocks", type=int, default=10, help="blocks over which the fund desk unwinds")
    z.add_argument("--runs", type=int, default=200)
    z.add_argument("--seed", type=int, default=1, help="seed of the price paths (shared by every simulation)")
    z.add_argument("--quantile", type=float, default=0.95, help="the runs the fund must cover (0.95: p95)")
    z.add_argument("--tolerance", type=float, default=0.01, help="bisection stops within this fraction of the fund")
    z.add_argument("--with-adl", action="store_true", help="count deleveraging as cover (default: the fund alone "
                   "carries the crash; nothing deleveraged or socialised)")
    z.add_argument("--out", help="write the result (JSON) here")
    u = rs.add_parser("addons", help="the volatility scalers and correlation break an updater would send today")
    u.add_argument("--dataset", default="crypto-coinbase-pro", help=DATASETS_HELP + " (columns named by asset)")
    u.add_argument("--days", type=int, default=3000, help="days of synthetic history")
    u.add_argument("--seed", type=int, default=7)
    u.add_argument("--spec", help="the current RiskSpec JSON/TOML (default: the default set)")
    u.add_argument("--out", required=True, help="where to write the proposed spec (.json or .toml), for `risk propose`")
    e = rs.add_parser("efficiency", help="portfolio margin vs standard requirement by book type")
    pop_opts(e)
    p = rs.add_parser("propose", help="submit a RiskSpec to RiskParameters (tightening now, loosening queued)")
    p.add_argument("spec", help="RiskSpec JSON/TOML (from `xmargin risk calibrate`)")
    p.add_argument("--dry-run", action="store_true", help="show the diff and its effect on every account only")


# ---------------------------------------------------------------------------------------------- helpers
def _settings(args: argparse.Namespace):
    from .calibrate import CalibrationSettings

    fields = {"lam": args.lam, "es_level": args.es_level, "apc_floor": args.apc_floor,
              "horizon_days": args.horizon_days}
    try:
        return CalibrationSettings(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        errs = [f"--{'-'.join(str(x) for x in err['loc']).replace('_', '-')}: {err['msg']}" for err in e.errors()]
        raise ConfigError("invalid model options:\n  " + "\n  ".join(errs)) from None


CRYPTO_PREFIX = "crypto-"  # crypto-poloniex, crypto-coinbase-pro, crypto-bitstamp: real BTC/ETH daily closes


def load_dataset(dataset: str, days: int = 2000, seed: int = 7):
    """:func:`offchain.risk.data.load`, plus ``crypto-<exchange>``: real BTC and ETH daily closes, downloaded into
    ``.cache/data`` on first use (:mod:`offchain.risk.crypto_history`)."""
    from .data import load

    if dataset.startswith(CRYPTO_PREFIX):
        from .crypto_history import EXCHANGES, btc_eth

        exchange = dataset[len(CRYPTO_PREFIX):]
        if exchange not in EXCHANGES:
            raise ConfigError(f"dataset {dataset!r}: use one of {', '.join(CRYPTO_PREFIX + e for e in EXCHANGES)}")
        return btc_eth(Path(".cache") / "data", exchange)
    return load(dataset, days, seed)


def _history(args: argparse.Namespace):
    if args.days < 300 and args.dataset == "synthetic":
        raise ConfigError(f"--days {args.days}: a synthetic history for calibration needs at least 300 days")
    return load_dataset(args.dataset, args.days, args.seed)


def _spec(path: str | None):
    from ..margin.defaults import DEFAULT_SPEC
    from .propose import load_spec

    return DEFAULT_SPEC if path is None else load_spec(path)


@dataclass
class Accounts:
    """The accounts a risk command looks at, and where they came from (``source``, the first line of its output)."""

    source: str
    states: list
    labels: list[str]  # how each account is named in tables (its id, or its book number and kind)
    groups: list[list[str]]  # reporting groups of each account (efficiency)
    layout: Any
    prices: list[int]  # USD 1e18 by asset
    cfg: Any  # MarginConfig
    rates: list[int]  # standard maintenance rate of each market, bps
    assets: tuple[str, ...]
    fund: float  # insurance fund equity, USD
    spec: Any  # RiskSpec: --spec, the chain's own (a deployment) or the default set (synthetic)

    @property
    def prices_usd(self) -> np.ndarray:
        return np.asarray(self.prices, dtype=float) / 1e18


def _accounts(args: argparse.Namespace) -> Accounts:
    """The deployment's accounts (default) or the synthetic demo population (``--synthetic``)."""
    from ..margin.defaults import ASSETS, START_PRICES_USD
    from ..population import LOCAL_LAYOUT, generate, prices_wad, to_state
    from .efficiency import groups_of, groups_of_state

    spec = _spec(args.spec)
    fund = getattr(args, "fund", None)
    if args.synthetic:
        if args.population < 1:
            raise ConfigError(f"--population {args.population}: give at least 1 book")
        books = generate(args.population, args.pop_seed)
        prices = prices_wad(START_PRICES_USD)
        return Accounts(f"source: synthetic demo population ({args.population} books, seed {args.pop_seed}) at the "
                        f"local start prices; parameters: {args.spec or 'the default set'}",
                        [to_state(b, prices) for b in books], [f"book {i} ({b.kind})" for i, b in enumerate(books)],
                        [groups_of(b) for b in books], LOCAL_LAYOUT, prices,
                        spec.margin_config(), [spec.markets[m].standard_mmr_bps for m in range(len(ASSETS))], ASSETS,
                        1_000_000.0 if fund is None else fund, spec)
    from ..margin.exact import WAD, account_margin, settled
    from ..margin.snapshot import read_standard_rates
    from ..runtime import open_runtime

    settings = load_settings(args.config)
    rt = open_runtime(settings)
    try:
        head = rt.indexer.sync().head
        layout, prices, cfg, markets = rt.indexer.market_view(head)
        fund_id = int(rt.chain.address("CrossMarginVault"), 16) << 96
        # accrued funding into the balances (the analytics value balances and positions; equity is unchanged)
        states = {a: settled(s, markets) for a, s in rt.indexer.states().items()}
        fund_state = states.pop(fund_id, None)
        at = rt.chain.at(head)
        rates = read_standard_rates(at.params, layout)
    finally:
        rt.indexer.conn.close()
    if not states:
        raise ConfigError(f"the deployment on chain {rt.chain.chain_id} has no accounts at block {head}: nothing to "
                          "analyse (use --synthetic for the demo population)")
    used = 1 + max(layout.market_asset + layout.collateral_asset)
    assets = rt.chain.deployment.assets or tuple(f"asset{k}" for k in range(used))
    prices = prices[: len(assets)]  # the router answers for every asset slot; the listing uses the first few
    if fund is None:
        fund = account_margin(fund_state, layout, prices, cfg, markets).equity / WAD if fund_state is not None else 0.0
    live_ids = [a for a, s in states.items() if s.positions or s.collateral or s.settlement]
    live = [states[a] for a in live_ids]
    if not args.spec:  # the chain's own parameters, the liquidation rule included
        from .propose import read_current

        spec = read_current(rt.chain, head, len(layout.market_asset))
    return Accounts(f"source: deployment on chain {rt.chain.chain_id} at block {head}, {len(live)} accounts "
                    f"(indexer database {settings.indexer.database}); parameters: "
                    f"{args.spec or 'on-chain'}; insurance fund {fund:,.0f} USD",
                    live, [f"{a >> 96:#042x}/{a & (2**96 - 1)}" for a in live_ids],
                    [groups_of_state(s, layout, assets) for s in live], layout, [int(p) for p in prices],
                    spec.margin_config() if args.spec else cfg, rates, tuple(assets), fund, spec)


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")


def _dump(obj: Any, path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2, default=float) + "\n")


# ---------------------------------------------------------------------------------------------- commands
def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import calibrate
    from .propose import write_spec

    h = _history(args)
    if not args.out.endswith((".json", ".toml")):
        raise ConfigError(f"--out {args.out}: the spec is written as .json or .toml")
    cal = calibrate(h.returns, h.assets, _settings(args), source=h.description)
    path = write_spec(cal.spec, args.out)
    if args.report:
        _dump(cal.report, args.report)
    lines = [f"calibrated on {h.description}", f"{'asset':<6} {'sigma EWMA':>10} {'sigma long':>10} {'RW bps':>7} "
             f"{'base':>6}"]
    for name, a in cal.report["assets"].items():
        lines.append(f"{name:<6} {a['sigma_ewma_daily']:>10.4f} {a['sigma_long_daily']:>10.4f} "
                     f"{a['risk_weight_bps']:>7} {a['base_risk_weight_bps'] or '-':>6}"
                     + ("  (floor binds)" if a["floor_binding"] else ""))
    lines += [f"correlations (bps): {cal.report['correlations_bps']}"]
    lines += [f"stress {s['name']}: {s['shocks_bps']}" for s in cal.report["stress"]]
    lines += [f"warning: {w}" for w in cal.report["warnings"]]
    lines.append(f"spec written to {path}")
    _write("\n".join(lines))
    return 0


def backtest_portfolios(assets: Sequence[str]) -> dict[str, np.ndarray]:
    """The portfolios a backtest runs (USD sensitivity per asset, 1 million notional per leg)."""
    k = len(assets)
    out = {f"long_{assets[0]}": np.eye(k)[0], f"short_{assets[0]}": -np.eye(k)[0]}
    if k > 1:
        out[f"long_{assets[0]}_short_{assets[1]}"] = np.eye(k)[0] - np.eye(k)[1]
        out["long_all"] = np.ones(k)
    return {n: 1e6 * c for n, c in out.items()}


def run_backtest(h, settings) -> tuple[dict, list]:
    from .backtest import backtest_requirement

    results = {}
    objects = []
    for name, c in backtest_portfolios(h.assets).items():
        r = backtest_requirement(f"{h.name} {name}", h.returns, c, settings)
        results[name] = r.as_dict()
        objects.append(r)
    return results, objects


def cmd_backtest(args: argparse.Namespace) -> int:
    h = _history(args)
    settings = _settings(args)
    results, objects = run_backtest(h, settings)
    lines = [f"{h.description}", f"{'portfolio':<28} {'days':>5} {'exc':>4} {'exp':>6} {'Kupiec p':>9} "
             f"{'Chr. p':>7} {'light':>7}"]
    for name, r in results.items():
        lines.append(f"{name:<28} {r['days']:>5} {r['exceptions']:>4} {r['expected']:>6.1f} {r['kupiec_p']:>9.3f} "
                     f"{r['christoffersen_p']:>7.3f} {r['traffic_light']:>7}")
    if args.out:
        _dump({"dataset": h.description, "settings": settings.model_dump(), "portfolios": results}, args.out)
    if args.plot:
        from .plots import backtest_chart

        backtest_chart(objects, args.plot, f"Requirement backtest: {h.name}")
    _write("\n".join(lines))
    return 0


def cmd_stress(args: argparse.Namespace) -> int:
    from .stress import hypothetical, reverse_summary
    from ..margin.vector import MarginArrays, Portfolio

    acc = _accounts(args)
    rows = [r.as_dict() for r in hypothetical(acc.states, acc.layout, acc.prices, acc.cfg, acc.assets)]
    pf = Portfolio.from_states(acc.states, acc.layout, len(acc.assets))
    arr = MarginArrays.from_config(acc.cfg, len(acc.assets), len(acc.layout.collateral_asset))
    rev = reverse_summary(pf, arr, acc.prices_usd, acc.assets, acc.fund)
    lines = [acc.source,
             f"{'scenario':<20} {'liquidatable':>12} {'insolvent':>9} {'shortfall USD':>15} {'equity change USD':>18}"]
    for r in rows:
        lines.append(f"{r['name']:<20} {r['liquidatable']:>12} {r['insolvent']:>9} {r['shortfall']:>15,.0f} "
                     f"{r['equity_change']:>18,.0f}")
    lines.append(f"reverse stress (fraction of each direction, largest shock scaled to -100%): first account insolvent "
                 f"/ book shortfall above the fund of {acc.fund:,.0f} USD")
    for name, t in rev.directions.items():
        lines.append(f"  {name:<20} {rev.first_account[name]:>8.3f} / {t:>8.3f}")
    if args.plot:
        from .plots import stress_chart

        stress_chart(rows, args.plot, acc.fund)
    _write("\n".join(lines))
    return 0


def cmd_var(args: argparse.Namespace) -> int:
    from .ewma import ewma_covariance
    from .var import all_methods, fhs_scenarios, from_scenarios, parametric, shortfall_figure
    from ..margin.vector import MarginArrays, Portfolio, margin

    if not 0.5 < args.level < 1:
        raise ConfigError(f"--level {args.level}: give a confidence level between 0.5 and 1, e.g. 0.99")
    acc = _accounts(args)
    h = load_dataset(args.dataset, 3000, 7)
    if len(h.assets) != len(acc.assets):
        raise ConfigError(f"--dataset {args.dataset} has assets {h.assets}; VaR of these accounts needs "
                          f"{', '.join(acc.assets)} (use synthetic or a CSV with those columns)")
    pf = Portfolio.from_states(acc.states, acc.layout, len(acc.assets))
    arr = MarginArrays.from_config(acc.cfg, len(acc.assets), len(acc.layout.collateral_asset))
    p0 = acc.prices_usd
    sens = pf.sensitivity(p0, arr.haircut)
    m = margin(pf, p0, arr)
    total = sens.sum(0)
    lines = [acc.source, f"returns: {h.description}",
             f"all accounts together (sum of their sensitivities) at {args.level:.1%}:"]
    for f in all_methods(total, h.returns, args.level):
        lines.append(f"  {f.method:<12} VaR {f.var:>14,.0f}  ES {f.es:>14,.0f}  ES by asset "
                     + ", ".join(f"{a} {x:,.0f}" for a, x in zip(acc.assets, f.es_contrib)))
    sf = shortfall_figure(m.equity, sens, fhs_scenarios(h.returns), args.level)
    lines.append(f"shortfall if nothing were liquidated within the day (FHS): VaR {sf['var']:,.0f} ES "
                 f"{sf['es']:,.0f} P(any) {sf['p_any']:.4f}")
    cov = ewma_covariance(h.returns)[-1]
    scen = fhs_scenarios(h.returns)
    rows = []
    for i in range(len(acc.states)):
        fhs = from_scenarios(sens[i], scen, args.level, "fhs")
        rows.append((fhs.es, i, parametric(sens[i], cov, args.level).var, fhs.var, m.maintenance[i]))
    rows.sort(reverse=True)
    width = max(len(x) for x in acc.labels)
    lines.append(f"{'account':<{width}} {'param VaR':>12} {'FHS VaR':>12} {'FHS ES':>12} {'MM':>12}")
    for es, i, pv, fv, mm in rows[: args.top]:
        lines.append(f"{acc.labels[i]:<{width}} {pv:>12,.0f} {fv:>12,.0f} {es:>12,.0f} {mm:>12,.0f}")
    _write("\n".join(lines))
    return 0


def cascade_inputs(spec, states, layout, n_assets):
    from .cascade import LiquidationRule
    from ..margin.vector import MarginArrays, Portfolio

    pf = Portfolio.from_states(states, layout, n_assets)
    arr = MarginArrays.from_config(spec.margin_config(), n_assets, len(layout.collateral_asset))
    return pf, arr, LiquidationRule.from_spec(spec, len(layout.collateral_asset))


def _cascade_book(acc: Accounts, args: argparse.Namespace) -> list:
    """The accounts a cascade runs on: a deployment's as they are (its counterparties are accounts too); the synthetic
    population with the market makers the demo trades it against."""
    if not args.synthetic:
        return acc.states
    from ..population import market_makers

    return acc.states + market_makers(acc.states, acc.layout, acc.prices)


def cmd_fund_size(args: argparse.Namespace) -> int:
    from .cascade import CascadeScenario
    from .fundsize import size_fund
    from ..margin.vector import MarginArrays

    for flag, value, ok, want in (
            ("--crash", args.crash, -0.99 <= args.crash <= 1.0, "a move between -0.99 and 1 (e.g. -0.35)"),
            ("--crash-blocks", args.crash_blocks, args.crash_blocks >= 1, "at least 1 block"),
            ("--latency", args.latency, args.latency >= 0, "0 or more blocks"),
            ("--depth-factor", args.depth_factor, args.depth_factor > 0, "a positive factor (0.5: depth halved)"),
            ("--max-calls", args.max_calls, args.max_calls >= 0, "0 (no cap) or more calls per block"),
            ("--unwind-blocks", args.unwind_blocks, args.unwind_blocks >= 1, "at least 1 block"),
            ("--runs", args.runs, args.runs >= 20, "at least 20 runs (a quantile of fewer says little)"),
            ("--quantile", args.quantile, 0.5 <= args.quantile < 1, "a level in [0.5, 1), e.g. 0.95"),
            ("--tolerance", args.tolerance, 0 < args.tolerance < 0.5, "a fraction in (0, 0.5), e.g. 0.01")):
        if not ok:
            raise ConfigError(f"{flag} {value}: give {want}")
    acc = _accounts(args)
    pf, _, rule = cascade_inputs(acc.spec, _cascade_book(acc, args), acc.layout, len(acc.assets))
    arr = MarginArrays.from_config(acc.cfg, len(acc.assets), len(acc.layout.collateral_asset))
    name = (f"crash_{abs(args.crash) * 100:.0f}_{args.crash_blocks}blocks_latency_{args.latency}"
            f"_depth_{args.depth_factor:g}")
    s = CascadeScenario(name, (args.crash,) * len(acc.assets), latency=args.latency, crash_blocks=args.crash_blocks,
                        depth_factor=args.depth_factor, max_calls_per_block=args.max_calls,
                        unwind_blocks=args.unwind_blocks, runs=args.runs, seed=args.seed)
    res = size_fund(pf, tuple(acc.prices_usd), arr, rule, s, args.with_adl, args.quantile, args.tolerance,
                    start=acc.fund if acc.fund > 0 else 1e6)
    out = {"source": acc.source, "scenario": name, "current_fund": acc.fund, **res.as_dict()}
    if args.out:
        _dump(out, args.out)
    a, b = res.at_fund, res.at_90pct
    q = f"p{args.quantile * 100:g}"
    lines = [acc.source, f"scenario {name}: {args.runs} runs, {args.max_calls or 'no'} calls per block cap, fund "
             f"desk over {args.unwind_blocks} blocks; rule: {out['rule']}",
             f"{'fund':>12} {'need ' + q:>14} {'depletion ' + q:>16} {'ADL ' + q:>12} {'bad debt ' + q:>14}  result",
             *(f"{c.fund:>12,.0f} {c.need:>14,.0f} {c.depletion:>16,.0f} {c.adl:>12,.0f} {c.bad_debt:>14,.0f}  "
               f"{'passes' if c.passes else 'fails'}" for c in (a, b)),
             f"fund needed: {res.fund:,.0f} USD (current {acc.fund:,.0f}: "
             f"{'enough' if acc.fund >= res.fund else 'short by ' + format(res.fund - acc.fund, ',.0f')}); "
             f"{res.simulations} simulations in {res.seconds:.0f} s"]
    if args.out:
        lines.append(f"written to {args.out}")
    _write("\n".join(lines))
    return 0


def cmd_cascade(args: argparse.Namespace) -> int:
    from .cascade import CascadeScenario, sweep
    from ..margin.vector import MarginArrays

    if not -0.99 <= args.crash <= 1.0:
        raise ConfigError(f"--crash {args.crash}: give a move between -0.99 and 1 (e.g. -0.5)")
    if args.runs < 1 or args.crash_blocks < 1 or any(lat < 0 for lat in args.latency):
        raise ConfigError("--runs and --crash-blocks must be >= 1 and every --latency >= 0")
    acc = _accounts(args)
    if args.depth_factor <= 0 or args.max_calls < 0:
        raise ConfigError(f"--depth-factor {args.depth_factor} must be > 0 and --max-calls {args.max_calls} >= 0")
    pf, _, rule = cascade_inputs(acc.spec, _cascade_book(acc, args), acc.layout, len(acc.assets))
    arr = MarginArrays.from_config(acc.cfg, len(acc.assets), len(acc.layout.collateral_asset))
    scenarios = [CascadeScenario(f"crash_{abs(args.crash) * 100:.0f}_latency_{lat}", (args.crash,) * len(acc.assets),
                                 latency=lat, crash_blocks=args.crash_blocks, runs=args.runs,
                                 depth_factor=args.depth_factor, max_calls_per_block=args.max_calls)
                 for lat in args.latency]
    risk = load_settings(args.config).risk  # the [risk] section: where sweeps run
    p0 = tuple(acc.prices_usd)
    out = sweep(pf, p0, arr, rule, acc.fund, scenarios, args.scheduler or risk.scheduler,
                risk.workers if args.workers is None else args.workers)
    lines = [acc.source, f"{'scenario':<24} {'bad debt p95':>14} {'fund':>12} {'depletion p95':>14} {'ADL p95':>12} "
             f"{'liquidated p95':>15} {'accounts':>8}"]
    for name, r in out.items():
        lines.append(f"{name:<24} {r['bad_debt']:>14,.0f} {r['insurance_fund']:>12,.0f} {r['fund_depletion']:>14,.0f} "
                     f"{r['adl']:>12,.0f} {r['liquidated_notional']:>15,.0f} {r['accounts_liquidated']:>8.0f}")
    if args.plot:
        from .plots import cascade_chart

        cascade_chart({n: np.asarray(r["bad_debt_runs"]) for n, r in out.items()}, acc.fund, args.plot)
    _write("\n".join(lines))
    return 0


def cmd_efficiency(args: argparse.Namespace) -> int:
    from .efficiency import efficiency_of

    acc = _accounts(args)
    lines = [acc.source, f"{'group':<32} {'books':>5} {'PM USD':>12} {'STD USD':>12} {'saving med':>10} "
             f"{'saving agg':>10} {'exc. rate':>9} coverage"]
    for r in efficiency_of(acc.states, acc.groups, acc.layout, acc.prices, acc.cfg, acc.rates):
        d = r.as_dict()
        med = "n/a" if d["saving_median"] is None else f"{d['saving_median']:.1%}"
        agg = "n/a" if d["saving_aggregate"] is None else f"{d['saving_aggregate']:.1%}"
        lines.append(f"{r.group:<32} {r.books:>5} {r.pm_total:>12,.0f} {r.std_total:>12,.0f} {med:>10} {agg:>10} "
                     f"{r.exception_rate:>9.4f} {'holds' if r.coverage_holds else 'FAILS'}")
    _write("\n".join(lines))
    return 0


def cmd_propose(config: str | None, args: argparse.Namespace) -> int:
    from ..runtime import open_runtime
    from ..keys import load_signer
    from ..ops import setup_logging
    from .propose import Submitter, describe, effect, load_spec, prepare, submit

    proposed = load_spec(args.spec)  # refuses a malformed or out-of-bounds spec before touching the chain
    settings = load_settings(config, keeper={"dry_run": True} if args.dry_run else {})
    setup_logging(settings.ops.log_format, settings.ops.log_level)
    rt = open_runtime(settings)
    res = rt.indexer.sync()
    layout, prices, _, _ = rt.indexer.market_view(res.head)
    proposal = prepare(rt.chain, proposed, res.head, layout, rt.chain.deployment.assets)
    fund = int(rt.chain.address("CrossMarginVault"), 16) << 96
    proposal.effect = effect(rt.indexer.states(), layout, prices, proposal.current, proposal.changes, skip=[fund])
    if not args.dry_run:
        signer = load_signer(settings, rt.chain.chain_id)
        if signer is None:
            raise ConfigError("propose needs a key: set keeper.keystore (or keeper.private_key_env on a local "
                              "chain), or use --dry-run")
        k = settings.keeper
        submit(proposal, Submitter(rt.chain, signer, k.max_fee_gwei, k.min_priority_fee_gwei))
    _write(("dry run: nothing sent\n" if args.dry_run else "") + "\n".join(describe(proposal)))
    rt.indexer.conn.close()
    return 0


def cmd_addons(args: argparse.Namespace) -> int:
    from ..margin.defaults import ASSETS
    from .history_backtest import DynamicSettings, dynamic_addons, updater_steps
    from .propose import write_spec

    if not args.out.endswith((".json", ".toml")):
        raise ConfigError(f"--out {args.out}: the spec is written as .json or .toml")
    h = load_dataset(args.dataset, args.days, args.seed)
    unknown = [a for a in h.assets if a not in ASSETS]
    if unknown:
        raise ConfigError(f"--dataset {args.dataset}: its columns {', '.join(unknown)} are not assets of the "
                          f"deployment ({', '.join(ASSETS)}); use a history of those assets")
    spec = _spec(args.spec)
    vol, brk = dynamic_addons(h, spec, DynamicSettings(), [ASSETS.index(a) for a in h.assets])
    proposed, steps = updater_steps(spec, vol[-1], float(brk[-1]), ASSETS)
    write_spec(proposed, args.out)
    lines = [f"source: {h.description}; last day {h.dates[-1] if h.dates else h.days}; rule: "
             f"{DynamicSettings()}", f"  {'add-on':<28} {'current':>8} {'target':>8} {'send':>8}  action"]
    lines += [f"  {s.what:<28} {s.current:>8} {s.target:>8} {s.send:>8}  {s.action}" for s in steps]
    lines.append(f"written {args.out}: send it with `xmargin risk propose {args.out}` (an updater key may raise by "
                 f"5,000 bps per call and parameter, once an hour)")
    _write("\n".join(lines))
    return 0


def run(config: str | None, args: argparse.Namespace) -> int:
    """Dispatch ``xmargin risk <action>``; library ValueErrors (bad numbers) become ConfigError (exit 2)."""
    if args.action == "propose":
        return cmd_propose(config, args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    commands = {"calibrate": cmd_calibrate, "backtest": cmd_backtest, "stress": cmd_stress, "var": cmd_var,
                "cascade": cmd_cascade, "fund-size": cmd_fund_size, "efficiency": cmd_efficiency, "addons": cmd_addons}
    try:
        return commands[args.action](args)
    except ValueError as e:
        raise ConfigError(str(e)) from None
