"""``xmargin``: a thin command line over the library.

    xmargin [--config FILE] keeper run [--dry-run] [--shard i/n] [--once] [--metrics-port P]
    xmargin [--config FILE] index [--reconcile]
    xmargin [--config FILE] accounts [--limit N]
    xmargin [--config FILE] account ID
    xmargin [--config FILE] options [--trades N]
    xmargin [--config FILE] opportunities [--status S] [--limit N]
    xmargin config reference | xmargin [--config FILE] config check
    xmargin [--config FILE] risk {calibrate,backtest,stress,var,cascade,fund-size,efficiency,propose} ...
    xmargin [--config FILE] sandbox {accounts,deposit,trade,price,fund,new-key} ...   (local chains only)

Exit codes: 0 ok, 1 other error, 2 bad settings, 3 key problem, 4 no RPC endpoint answered, 5 deployment/artifacts
do not match the chain, 130 interrupted.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import Sequence

from . import __version__
from .config import Settings, load_settings, reference
from .db import connect
from .errors import ChainUnavailable, ConfigError, XMarginError
from .margin.exact import WAD, account_margin, standard_requirement
from .margin.funding import INDEX_UNIT, WEIGHT_UNIT, accrued
from .margin.greeks import position_greeks, totals_by_asset
from .margin.options import OptionMarket, Series
from .margin.snapshot import MarketView, read_funding_word, read_standard_rates
from .ops import OpsServer, setup_logging
from .runtime import build_keeper, open_runtime

log = logging.getLogger("xmargin")


# ---------------------------------------------------------------------------------------------- commands
def cmd_keeper_run(settings: Settings, args: argparse.Namespace) -> int:
    rt = open_runtime(settings)
    keeper = build_keeper(rt)
    server = None
    if settings.ops.metrics_port:
        o = settings.ops
        try:
            server = OpsServer(o.metrics_host, o.metrics_port, rt.metrics, keeper.health).start()
        except OSError as e:
            raise ConfigError(f"ops.metrics_port: cannot serve on {o.metrics_host}:{o.metrics_port} ({e.strerror}): "
                              "choose a free port (--metrics-port), or 0 for none") from None
        log.info("metrics and health on http://%s:%d/", settings.ops.metrics_host, server.port)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping after the current step", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if args.once:
            r = keeper.step()
            _write("no answer from the node: nothing done" if r is None else
                   f"block {r.block}: {len(keeper.states)} accounts tracked, {r.candidates} flagged by the screen, "
                   f"{r.liquidatable} liquidatable, {len(r.sent)} liquidations sent"
                   + (" (dry run)" if settings.keeper.dry_run else ""))
            return 0 if r is not None else ChainUnavailable.exit_code
        else:
            keeper.run(stop)
    finally:
        if server is not None:
            server.stop()
        rt.indexer.conn.close()
    return 0


def cmd_index(settings: Settings, args: argparse.Namespace) -> int:
    rt = open_runtime(settings)
    res = rt.indexer.sync()
    out = [f"indexed to block {res.head}: {res.logs} events, {len(res.changed)} accounts changed, "
           f"{len(rt.indexer.accounts())} accounts tracked" + (f", reorg of {res.reorg_depth}" if res.reorg_depth
                                                                else "")]
    if args.reconcile:
        bad = rt.indexer.reconcile(rt.indexer.accounts(), settings.chain.lens_batch)
        out.append(f"reconciled against AccountLens: {len(bad)} mismatches (repaired)")
    _write("\n".join(out))
    return 0


def _usd(x: int) -> str:
    return f"{x / WAD:,.2f}"


def cmd_accounts(settings: Settings, args: argparse.Namespace) -> int:
    rt = open_runtime(settings)
    res = rt.indexer.sync()
    layout, prices, cfg, markets = rt.indexer.market_view(res.head)
    options = rt.indexer.option_market(res.head)
    fund = int(rt.chain.address("CrossMarginVault"), 16) << 96
    rows = []
    for a, s in rt.indexer.states().items():
        if a == fund or (not s.positions and not s.collateral and not s.options):
            continue
        m = account_margin(s, layout, prices, cfg, markets, options)
        health = m.equity / m.maintenance if m.maintenance else float("inf")
        rows.append((health, a, m))
    rows.sort(key=lambda r: r[0])
    lines = [f"block {res.head}: {len(rows)} accounts with positions, options or collateral (lowest health first)",
             f"{'account':<66} {'equity':>16} {'MM':>14} {'IM':>14} {'E/MM':>8}  status"]
    for health, a, m in rows[: args.limit]:
        status = "LIQUIDATABLE" if m.liquidatable else ("below IM" if m.equity < m.initial else "ok")
        lines.append(f"{a:#066x} {_usd(m.equity):>16} {_usd(m.maintenance):>14} {_usd(m.initial):>14} "
                     f"{health:>8.3f}  {status}")
    _write("\n".join(lines))
    return 0


def cmd_account(settings: Settings, args: argparse.Namespace) -> int:
    """One account's breakdown; given an owner's address (0x + 40 hex digits), every subaccount of it that the
    indexer knows (account id = owner << 96 | subaccount)."""
    try:
        account = int(args.id, 0)
    except ValueError:
        raise ConfigError(f"account id {args.id!r} is not a number (decimal or 0x-hex)") from None
    owner = args.id.lower().startswith("0x") and len(args.id) == 42
    rt = open_runtime(settings)
    res = rt.indexer.sync()
    if owner:
        subs = [a for a in rt.indexer.accounts() if a >> 96 == account]
        if not subs:
            _write(f"owner {args.id} has no account with a balance, position or collateral at block {res.head} "
                   f"(its subaccount n is the id {args.id} << 96 | n)")
            return 0
    else:
        subs = [account]
    view = rt.indexer.market_view(res.head)  # read once for every subaccount shown
    rates = read_standard_rates(rt.chain.at(res.head).params, view.layout)
    options = rt.indexer.option_market(res.head)
    for a in subs:
        _account(rt, res.head, a, view, rates, options)
    return 0


def _account(rt, head: int, account: int, view: MarketView, rates: list[int], options: OptionMarket | None) -> None:
    layout, prices, cfg, markets = view
    s = rt.indexer.states([account])[account]
    if not s.positions and not s.collateral and not s.settlement and not s.options:
        _write(f"account {account:#066x} is empty at block {head} (no balance, position or collateral); an owner's "
               f"subaccount n is the id owner << 96 | n, or give the owner's address")
        return
    m = account_margin(s, layout, prices, cfg, markets, options)
    std = standard_requirement(s, layout, prices, rates)
    b = m.margin
    names = rt.chain.deployment.assets
    lines = [f"account {account:#066x} (owner {account >> 96:#042x}, subaccount {account & (2**96 - 1)}) at block {head}",
             f"  settlement balance   {_usd(s.settlement):>18} USD"]
    for mk, (size, on) in sorted(s.positions.items()):
        asset = layout.market_asset[mk]
        owed = accrued(size, s.funding.get(mk, 0), markets[mk]) if mk in markets else 0
        lines.append(f"  position market {mk} ({_name(names, asset)}): size {size / WAD:,.6f} "
                     f"open notional {_usd(on)} mark {_usd(size * prices[asset] // WAD)} accrued funding {_usd(owed)}")
    for cid, bal in sorted(s.collateral.items()):
        asset = layout.collateral_asset[cid]
        lines.append(f"  collateral {cid} ({_name(names, asset)}): {bal / 10 ** layout.collateral_decimals[cid]:,.6f}")
    if options is not None and s.options:
        lines += _option_lines(s.options, prices, options, m.options, cfg, names, head)
    lines += [f"  equity               {_usd(m.equity):>18}",
              f"  maintenance margin   {_usd(b.maintenance):>18}",
              f"  initial margin       {_usd(b.initial):>18}",
              f"  K (low/medium/high)  {' / '.join(_usd(k) for k in b.k_regime)}",
              f"  K with vol scalers   {_usd(b.k_correlated):>18} (correlation break {cfg.correlation_break / 100:g}%)",
              f"  concentration charge {_usd(b.concentration):>18}",
              f"  stress charge        {_usd(b.k_stress):>18} (worst scenario {_scenario(cfg, b.worst_scenario)})",
              f"  basis add-on         {_usd(b.basis):>18}",
              f"  floor charge         {_usd(b.floor_charge):>18}",
              f"  standard requirement {_usd(std):>18} (per position, no offsets)",
              "  net delta by asset   " + ", ".join(f"{_name(names, k)} {_usd(d)}" for k, d in enumerate(m.delta) if d),
              f"  status               {'LIQUIDATABLE' if m.liquidatable else 'healthy'}"]
    _write("\n".join(lines))


def _series_name(s: Series, names: Sequence[str]) -> str:
    return f"{_name(names, s.asset)} {'call' if s.is_call else 'put'} {s.strike / WAD:,.0f}"


def _expiry(s: Series, now: int) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(s.expiry))
    if s.fixed_price:
        return f"{when}, fixed at {_usd(s.fixed_price)}"
    return f"{when}, {(s.expiry - now) / 86_400:.1f} d" if s.expiry > now else f"{when}, expired, not fixed"


def _option_lines(sizes: dict[int, int], prices: list[int], market: OptionMarket, risk, cfg, names: Sequence[str],
                  head: int) -> list[str]:
    """Each option position with its mark and Greeks, the Greeks per underlying, and the option part of the margin."""
    greeks = position_greeks(sizes, prices, market)
    lines = [f"  option positions     {'size':>12} {'mark':>12} {'value':>14} {'delta':>10} {'gamma':>11} "
             f"{'vega/pt':>11} {'theta/d':>11}"]
    for g in greeks:
        lines.append(f"  slot {g.slot:<2} {_series_name(g.series, names)} ({_expiry(g.series, market.time)}"
                     + (f", vol {g.sigma * 100:.1f}%" if g.sigma else "") + ")")
        lines.append(f"  {'':<20} {g.size / WAD:>12,.4f} {_usd(g.mark):>12} {_usd(g.value):>14} {g.delta:>10,.4f} "
                     f"{g.gamma:>11.3e} {g.vega:>11,.2f} {g.theta:>11,.2f}")
    for asset, (d, ga, v, t) in sorted(totals_by_asset(greeks).items()):
        lines.append(f"  options on {_name(names, asset):<9} {'':>12} {'':>12} {'':>14} {d:>10,.4f} {ga:>11.3e} "
                     f"{v:>11,.2f} {t:>11,.2f}")
    if risk is not None:
        lines += [f"  option value         {_usd(risk.value):>18} (underlying notional {_usd(risk.notional)})",
                  "  option WS by asset   " + (", ".join(f"{_name(names, a)} {_usd(risk.ws[a])}" for a in range(8)
                                                          if (risk.assets >> a) & 1) or "none (no live series)"),
                  f"  option curvature     {_usd(risk.curvature):>18}",
                  f"  short-option minimum {_usd(risk.short_minimum):>18}",
                  "  option stress losses " + ", ".join(f"{_scenario(cfg, k)} {_usd(risk.stress[k])}"
                                                        for k in range(cfg.num_stress))]
    return lines


def _scenario(cfg, s: int) -> str:
    """``#s``, with the name of the default set's vector when the on-chain vector ``s`` is that one (the chain keeps
    shocks, not names)."""
    from .margin.defaults import DEFAULT_SPEC

    known = DEFAULT_SPEC.stress[s] if 0 <= s < len(DEFAULT_SPEC.stress) else None
    same = known is not None and known.as_array() == [cfg.shock(s, k) for k in range(8)]
    return f"#{s} ({known.name})" if same else f"#{s}"


def _name(names: Sequence[str], asset: int) -> str:
    return names[asset] if asset < len(names) else f"asset {asset}"


def cmd_funding(settings: Settings, args: argparse.Namespace) -> int:
    """Each market's funding now (rate, premium, indices, open interest, the funding balance) and the deleveraging
    events indexed so far."""
    rt = open_runtime(settings)
    res = rt.indexer.sync()
    view = rt.indexer.market_view(res.head)
    vault = rt.chain.at(res.head).vault
    names = rt.chain.deployment.assets
    word = read_funding_word(rt.chain.at(res.head).params)
    lines = [f"block {res.head}: funding {'on' if word.on else 'off (no FUNDING word: RiskParameters.setFunding)'}",
             f"{'market':<12} {'rate %/h':>10} {'premium bps':>12} {'fee weight USD':>15} {'long index':>16} "
             f"{'short index':>16} {'open interest':>16} {'balance USD':>13}"]
    for m, asset in enumerate(view.layout.market_asset):
        f = view.markets.get(m)
        label = f"{m} {_name(names, asset)}"
        if f is None:
            lines.append(f"{label:<12} (no valid price for its asset)")
            continue
        rate = int(vault.marketFunding(m)[4])
        lines.append(f"{label:<12} {rate * 3600 / WAD * 100:>10.5f} {f.premium / 100:>12.2f} "
                     f"{f.weight * WEIGHT_UNIT / WAD:>15,.2f} {f.long_index / INDEX_UNIT:>16,.6f} "
                     f"{f.short_index / INDEX_UNIT:>16,.6f} {int(vault.openInterest(m)) / WAD:>16,.4f} "
                     f"{int(vault.fundingBalance(m)) / WAD:>13,.2f}")
    adl = rt.indexer.deleveraging()
    lines.append(f"deleveraging events: {len(adl)}")
    for block, _, account, m, longs_pay, amount, _ in adl[-args.limit:]:
        lines.append(f"  block {block}: account {account:#x} in market {m}: {'longs' if longs_pay else 'shorts'} "
                     f"paid {amount / WAD:,.2f} USD")
    _write("\n".join(lines))
    return 0


def cmd_options(settings: Settings, args: argparse.Namespace) -> int:
    """Every listed option series at the head: its state, mark, the volatility of the mark (skewed at the strike),
    open interest and holders; then the latest option trades indexed."""
    rt = open_runtime(settings)
    res = rt.indexer.sync()
    market = rt.indexer.option_market(res.head)
    if market is None:
        _write(f"block {res.head}: no option series listed")
        return 0
    at = rt.chain.at(res.head)
    view = rt.indexer.market_view(res.head)
    names = rt.chain.deployment.assets
    holders = rt.indexer.holders(market.series)
    count = {i: sum(i in slots for slots in holders.values()) for i in market.series}
    lines = [f"block {res.head}: {len(market.series)} series listed",
             f"{'slot':>4} {'series':<22} {'expiry':<40} {'mark':>12} {'vol %':>7} {'long OI':>12} {'short OI':>12} "
             f"{'holders':>7}"]
    for i, s in sorted(market.series.items()):
        spot = view.prices[s.asset]
        unit = position_greeks({i: WAD}, view.prices, market)[0] if spot or s.fixed_price else None
        per_unit = unit.mark if unit is not None else None
        vol = unit.sigma * 100 if unit is not None and unit.sigma else None
        row = at.options.series(i)
        lines.append(f"{i:>4} {_series_name(s, names):<22} {_expiry(s, market.time):<40} "
                     f"{_usd(per_unit) if per_unit is not None else 'no price':>12} "
                     f"{f'{vol:.1f}' if vol is not None else '-':>7} {int(row[5]) / WAD:>12,.4f} "
                     f"{int(row[6]) / WAD:>12,.4f} {count[i]:>7}")
    trades = rt.indexer.option_trades(args.trades)
    if trades:
        lines.append(f"latest option trades ({len(trades)}):")
        for block, buyer, seller, slot, size, price, mk in trades:
            lines.append(f"  block {block}: slot {slot} size {size / WAD:,.4f} at {_usd(price)} (mark {_usd(mk)}) "
                         f"buyer {buyer:#x} seller {seller:#x}")
    _write("\n".join(lines))
    return 0


def cmd_opportunities(settings: Settings, args: argparse.Namespace) -> int:
    conn = connect(settings.indexer.database)
    q = "SELECT id, account, keeper, status, block_seen, block_done, taken, reward, tx_hash, reason FROM opportunities"
    params: list = []
    if args.status:
        q += " WHERE status = ?"
        params.append(args.status)
    q += " ORDER BY id DESC LIMIT ?"
    params.append(args.limit)
    lines = [f"{'id':>5} {'account':<19} {'status':<9} {'seen':>7} {'done':>7} {'taken USD':>14} "
             f"{'reward USD':>11}  reason"]
    for oid, acct, _keeper, status, seen, done, taken, reward, _tx, reason in conn.execute(q, params):
        short = f"0x{acct[:8]}..{acct[-6:]}"
        lines.append(f"{oid:>5} {short:<19} {status:<9} {seen:>7} {done or '':>7} {int(taken) / WAD:>14,.2f} "
                     f"{int(reward) / WAD:>11,.2f}  {reason}")
    _write("\n".join(lines))
    return 0


def cmd_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    from .runtime import open_chain
    from .sandbox import Sandbox

    sb = Sandbox(open_chain(settings))
    if args.action == "accounts":
        usdc = sb.usdc.functions.symbol().call()
        unit = 10 ** sb.usdc.functions.decimals().call()
        lines = [f"{'#':>2} {'address':<42} {'native':>12} {usdc + ' wallet':>16}  role"]
        for h in sb.holders():
            role = "deployer, fund payer" if h.index == 0 else "market maker" if h.index == len(sb.node_accounts) - 1 \
                else ""
            lines.append(f"{h.index:>2} {h.address} {h.native / 1e18:>12,.3f} "
                         f"{h.usdc / unit:>16,.2f}  {role}")
        _write("\n".join(lines))
    elif args.action == "deposit":
        account = sb.deposit(args.owner, args.token, args.amount, args.sub)
        _write(f"deposited {args.amount:,} {args.token.upper()} into account {account:#x}")
    elif args.action == "trade":
        px = sb.trade(args.owner, args.market, args.size, args.price, args.sub)
        account = int(sb.owner(args.owner), 16) << 96 | args.sub
        _write(f"{'bought' if args.size > 0 else 'sold'} {abs(args.size):,} on {args.market.upper()} at "
               f"{px / WAD:,.2f} USD for account {account:#x}")
    elif args.action == "price":
        sb.set_price(args.asset, args.usd)
        _write(f"{args.asset.upper()} feed set to {args.usd:,} USD")
    elif args.action == "new-key":
        _write(sb.new_key(args.native))
    elif args.action == "fund":
        sb.fund(args.usdc)
        _write(f"insurance fund topped up by {args.usdc:,} USD")
    return 0


def cmd_config(settings_path: str | None, args: argparse.Namespace) -> int:
    if args.action == "reference":
        _write(reference())
        return 0
    s = load_settings(settings_path)
    redacted = s.model_dump(mode="json", exclude={"source"})
    _write(f"settings from {s.source} are valid:\n" + "\n".join(
        f"  {sec}.{k} = {v!r}" for sec, fields in redacted.items() for k, v in fields.items()))
    return 0


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")


# ---------------------------------------------------------------------------------------------- parsing
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xmargin", description="xmargin off-chain engine: indexer, risk, keeper.")
    p.add_argument("--config", "-c", help="TOML settings file (see `xmargin config reference`)")
    p.add_argument("--version", action="version", version=f"xmargin {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keeper", help="run the liquidation keeper").add_subparsers(dest="action", required=True)
    run = k.add_parser("run", help="run until SIGTERM/SIGINT")
    run.add_argument("--dry-run", action="store_true", default=None, help="plan and simulate, never send")
    run.add_argument("--shard", help="i/n: handle shard i of n")
    run.add_argument("--once", action="store_true", help="one step, then exit")
    run.add_argument("--metrics-port", type=int, help="serve /metrics and /health on this port")
    ix = sub.add_parser("index", help="index the vault's events into the database")
    ix.add_argument("--reconcile", action="store_true", help="then compare every account with AccountLens")
    acc = sub.add_parser("accounts", help="accounts by health, lowest first")
    acc.add_argument("--limit", type=int, default=50)
    one = sub.add_parser("account", help="margin breakdown of one account")
    one.add_argument("id", help="account id (decimal or 0x-hex)")
    ops_ = sub.add_parser("options", help="the option series listed: state, mark, volatility, open interest")
    ops_.add_argument("--trades", type=int, default=10, help="latest option trades shown")
    fun = sub.add_parser("funding", help="each market's funding rate and indices, and the deleveraging events")
    fun.add_argument("--limit", type=int, default=20, help="deleveraging events shown (latest)")
    opp = sub.add_parser("opportunities", help="the keeper's liquidation records")
    opp.add_argument("--status", choices=["seen", "simulated", "sent", "included", "lost", "skipped", "failed"])
    opp.add_argument("--limit", type=int, default=50)
    sb = sub.add_parser("sandbox", help="local chains only: test tokens, trades, mock prices, the fund")
    sba = sb.add_subparsers(dest="action", required=True)
    sba.add_parser("accounts", help="the node's unlocked accounts (owners by index)")
    dep = sba.add_parser("deposit", help="mint a test token to an owner and deposit it into its account")
    dep.add_argument("owner", help="index into `sandbox accounts`, or an address")
    dep.add_argument("token", help="USDC or a collateral symbol (WBTC, WETH, ...)")
    dep.add_argument("amount", type=float, help="whole tokens")
    tr = sba.add_parser("trade", help="fill a signed order pair against the sandbox market maker")
    tr.add_argument("owner", help="index into `sandbox accounts`, or an address")
    tr.add_argument("market", help="the asset of the market (BTC, ETH, ...) or a market id")
    tr.add_argument("size", type=float, help="units: positive buys, negative sells (e.g. -- -2 to sell 2)")
    tr.add_argument("--price", type=float, help="USD (default: the oracle price)")
    for p_ in (dep, tr):
        p_.add_argument("--sub", type=int, default=0, help="subaccount (account id = owner << 96 | sub)")
    pr = sba.add_parser("price", help="set a mock feed's price")
    pr.add_argument("asset", help="BTC, ETH, ...")
    pr.add_argument("usd", type=float)
    nk = sba.add_parser("new-key", help="print a fresh private key, its address paid coins for gas (a keeper key)")
    nk.add_argument("--native", type=float, default=10.0, help="coins sent to it (default 10)")
    fu = sba.add_parser("fund", help="deposit test USDC into the insurance fund")
    fu.add_argument("usdc", type=float)
    cfg = sub.add_parser("config", help="settings reference and validation")
    cfg.add_argument("action", choices=["reference", "check"])
    from .risk.commands import add_parser as add_risk_parser

    add_risk_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "config":
            return cmd_config(args.config, args)
        if args.command == "risk":
            from .risk.commands import run as run_risk

            return run_risk(args.config, args)
        keeper_flags = {}
        ops_flags = {}
        if args.command == "keeper":
            keeper_flags = {"dry_run": args.dry_run, "shard": args.shard}
            ops_flags = {"metrics_port": args.metrics_port}
        settings = load_settings(args.config, keeper=keeper_flags, ops=ops_flags)
        setup_logging(settings.ops.log_format, settings.ops.log_level)
        commands = {"keeper": cmd_keeper_run, "index": cmd_index, "accounts": cmd_accounts, "account": cmd_account,
                    "opportunities": cmd_opportunities, "sandbox": cmd_sandbox, "funding": cmd_funding,
                    "options": cmd_options}
        return commands[args.command](settings, args)
    except XMarginError as e:
        sys.stderr.write(f"xmargin: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
