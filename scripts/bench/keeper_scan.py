"""Keeper scan benchmark: one full health evaluation of every account, three ways, on one local chain.

    make bench-keeper       (Brownie network ``anvil-bench``: Anvil on port 8655, Shanghai, 300M block gas)

The network must be a node Brownie launches itself (it moves prices and the block gas limit).

1. Deploys with ``deploy_local``, registers a ``TestVenue`` and a ``BookSeeder`` and seeds ``max(SIZES)`` random
   accounts: 1-3 collaterals (USDC, WBTC, WETH, WSOL, LINK), 1-3 perpetual positions, long, short or hedged, sized so
   that each account passes the initial-margin check of the exact mirror (``account_margin``) at the trade price.
   Deposits go through ``BookSeeder.depositMany`` and trades through ``TestVenue.tradeMany`` (one maker against many
   takers), ``DEPOSIT_CHUNK`` / ``TRADE_CHUNK`` accounts per transaction.
2. Indexes the chain with ``offchain.indexer.Indexer`` (a temporary SQLite file; timed separately), then moves the
   four oracle prices along one direction until ``TARGET_LIQUIDATABLE`` of the accounts are below maintenance margin
   (found with the screen, checked exactly afterwards), and sets the block gas limit to ``CALL_GAS_CAP`` (the cap a
   public node puts on ``eth_call``) for the views.
3. At each size in ``SIZES`` (the first n seeded accounts), pinned to one block, times
   (a) the keeper's path: prices and margin words read at the block, ``ScreenParams``, ``screen`` over a ``Book`` of
       the n accounts, ``account_margin`` (exact integers) for every account within the screen's safety band of the
       line (below the band an account is liquidatable whatever the float error) (the ``Book`` and the account states
       come from the index, kept up to date by the keeper between blocks: built before timing);
   (b) ``AccountLens.equityAndMaintenance`` in batches of the largest size that fits the call gas cap;
   (c) one ``CrossMarginVault.margin(account)`` ``eth_call`` per account;
   all over HTTP through ``offchain.chain.Chain``, best of ``REPEATS`` (one run for (c)). It fails unless the three
   find exactly the same liquidatable accounts (E < MM) and the exact mirror equals (b) and (c) to the wei for every
   account.
4. Times ``screen`` alone (with ``candidates``) on ``SYNTHETIC_ACCOUNTS`` random accounts of 8 assets and 8
   collaterals (margin words packed by ``RiskSpec.margin_config``), best of ``SYNTHETIC_REPEATS``.

Logs a table and writes ``scripts/bench/results/keeper_scan.json``; exits non-zero, after writing it, if a floor
(``FLOORS``) is missed. ``KEEPER_BENCH_SIZES`` (e.g. ``200,1000``) and ``KEEPER_BENCH_SYNTHETIC`` override the sizes
for a quick trial.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import random
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
from brownie import BookSeeder, TestVenue, accounts, chain, rpc, web3

from offchain.chain import CONTRACTS, Chain, Rpc, load_abis
from offchain.chain import Deployment as ChainDeployment
from offchain.db import connect
from offchain.indexer import Indexer
from offchain.margin.defaults import ASSETS, DEFAULT_SPEC
from offchain.margin.exact import WAD, AccountMargin, AccountState, Layout, MarginConfig, account_margin
from offchain.margin.params import StressVector
from offchain.margin.screen import Book, ScreenParams, screen
from offchain.margin.snapshot import read_layout, read_margin_config, read_prices
from scripts.deploy import FEED_DECIMALS, LOCAL_COLLATERALS, Deployment, deploy_local

log = logging.getLogger(__name__)
T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results" / "keeper_scan.json"
SIZES = tuple(int(x) for x in os.environ.get("KEEPER_BENCH_SIZES", "1000,10000").split(","))
SYNTHETIC_ACCOUNTS = int(os.environ.get("KEEPER_BENCH_SYNTHETIC", "1000000"))
SYNTHETIC_REPEATS = 5
REPEATS = 3  # (a) and (b): best of REPEATS; (c) runs once
SEED = 20_240_611
DEPOSIT_CHUNK = 1_000  # deposits per BookSeeder.depositMany transaction
TRADE_CHUNK = 300  # trades per TestVenue.tradeMany transaction
CALL_GAS_CAP = 30_000_000  # block gas limit during the views, which Anvil also applies to eth_call
LENS_BATCHES = (2_000, 1_000, 750, 600, 500, 400, 300, 200, 100)  # tried largest first
TARGET_LIQUIDATABLE = 0.03  # share of the accounts below maintenance margin after the price move
PRICE_DIRECTION = (-1.0, -1.2, 1.5, -1.8)  # relative move of BTC, ETH, SOL, LINK (scaled by one factor)
USD_START = (1, *(price for *_, price in LOCAL_COLLATERALS))  # USDC, WBTC, WETH, WSOL, LINK
DECIMALS = (6, *(dec for _, dec, *_ in LOCAL_COLLATERALS))
LEVERAGE = (0.3, 4.0)  # gross notional / collateral value before the initial-margin check shrinks it
SHRINK = (1.0, 0.8, 0.6, 0.45, 0.3, 0.2, 0.1, 0.0)
MAKER_USDC = 10**11  # whole USDC in the maker's account (the counterparty of every seeded trade)
FLOORS = {"seconds_screen_1m": 2.0, "ratio_vs_batched_10k": 100.0}  # at most / at least


def timed(fn: Callable[[], T], repeats: int = 1) -> tuple[float, T]:
    """(best wall time in seconds, result of the last run)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------ seeding
@dataclass
class Seeder:
    d: Deployment
    seeder: Any
    venue: Any
    deployer: Any
    maker: int
    gas: int = 0  # the most gas one seeding transaction used

    @classmethod
    def deploy(cls, d: Deployment, deployer: Any) -> "Seeder":
        tx = {"from": deployer}
        venue = TestVenue.deploy(d.vault, tx)
        d.vault.setVenue(venue, True, tx)
        s = cls(d, BookSeeder.deploy(d.vault, tx), venue, deployer, (int(deployer.address, 16) << 96) | 7)
        s.deposit(0, [s.maker], [MAKER_USDC * 10**6])
        return s

    def send(self, fn: Any, *args: Any) -> None:
        """Send a transaction and wait for its receipt through web3: Brownie's own wait races Anvil (the sender's
        nonce moves before the mined transaction can be fetched, which Brownie reports as a dropped transaction)."""
        tx = fn(*args, {"from": self.deployer, "required_confs": 0})
        receipt = web3.eth.wait_for_transaction_receipt(tx.txid, timeout=600)
        if receipt["status"] != 1:
            raise RuntimeError(f"seeding transaction {tx.txid} reverted")
        self.gas = max(self.gas, receipt["gasUsed"])

    def deposit(self, token_index: int, ids: Sequence[int], amounts: Sequence[int]) -> None:
        """``amounts[i]`` of token ``token_index`` (0 = USDC, then the collaterals) into ``ids[i]``."""
        token = [self.d.usdc, *self.d.tokens][token_index]
        pairs = [(a, x) for a, x in zip(ids, amounts) if x]
        total = sum(x for _, x in pairs)
        self.send(token.mint, self.deployer, total)
        self.send(token.approve, self.seeder, total)
        for i in range(0, len(pairs), DEPOSIT_CHUNK):
            part = pairs[i:i + DEPOSIT_CHUNK]
            self.send(self.seeder.depositMany, token, [a for a, _ in part], [x for _, x in part])

    def trade(self, market: int, price: int, ids: Sequence[int], sizes: Sequence[int]) -> None:
        """Each account buys ``sizes[i]`` (negative: sells) of ``market`` from the maker at ``price``."""
        pairs = [(a, q) for a, q in zip(ids, sizes) if q]
        for i in range(0, len(pairs), TRADE_CHUNK):
            part = pairs[i:i + TRADE_CHUNK]
            self.send(self.venue.tradeMany, self.maker, [a for a, _ in part], market, [q for _, q in part], price)

    def random_book(self, n: int, rng: random.Random, layout: Layout, prices: list[int],
                    cfg: MarginConfig) -> list[int]:
        """``n`` random accounts, each passing the initial-margin check; returns their ids."""
        ids = [(rng.getrandbits(160) << 96) | rng.getrandbits(8) for _ in range(n)]
        deposits = [[0] * n for _ in USD_START]
        sizes = [[0] * n for _ in layout.market_asset]
        for i in range(n):
            value = 0.0
            for t in rng.sample(range(len(USD_START)), rng.randint(1, 3)):
                usd = rng.uniform(1_000, 50_000)
                deposits[t][i] = int(usd / USD_START[t] * 10 ** DECIMALS[t])
                value += usd
            markets = rng.sample(range(len(layout.market_asset)), rng.randint(1, 3))
            style = rng.choice(("long", "short", "hedged"))
            signs = {m: (1 if style == "long" else -1 if style == "short" else (-1) ** k)
                     for k, m in enumerate(markets)}
            gross = value * rng.uniform(*LEVERAGE)
            base = {m: gross / len(markets) / USD_START[1 + layout.market_asset[m]] * signs[m] for m in markets}
            state = AccountState(settlement=deposits[0][i] * 10**12,
                                 collateral={t - 1: deposits[t][i] for t in range(1, len(USD_START)) if deposits[t][i]})
            for shrink in SHRINK:  # the venue reverts below IM: stay above it, exactly
                qs = {m: int(q * shrink * 1e6) * 10**12 for m, q in base.items()}
                state.positions = {m: (q, -(-q * prices[layout.market_asset[m]] // WAD)) for m, q in qs.items() if q}
                m_ = account_margin(state, layout, prices, cfg)
                if m_.equity >= m_.initial:
                    break
            for m, q in qs.items():
                sizes[m][i] = q
        for t, amounts in enumerate(deposits):
            self.deposit(t, ids, amounts)
        for m, qs in enumerate(sizes):
            self.trade(m, prices[layout.market_asset[m]], ids, qs)
        return ids


# ------------------------------------------------------------------------------------------------ the chain side
def offchain_chain(d: Deployment) -> Chain:
    """The off-chain engine's view of this deployment (its own web3 over HTTP, as the keeper runs)."""
    addresses = d.addresses()
    deployment = ChainDeployment(chain.id, {name: addresses[name] for name in CONTRACTS}, d.start_block, ASSETS)
    return Chain(Rpc([web3.provider.endpoint_uri], timeout=600), deployment, load_abis(ROOT / "build" / "contracts"))


def move_prices(s: Seeder, book: Book, layout: Layout, cfg: MarginConfig, n: int) -> list[float]:
    """Scale PRICE_DIRECTION until TARGET_LIQUIDATABLE of the first n rows screen below MM; push the feeds."""
    d = s.d
    p0 = np.array(read_prices(d.oracle, layout), dtype=float) / WAD
    params = ScreenParams.build(cfg, layout)
    sub = Book(book.n_collaterals, book.ids[:n], {}, book.const[:n], book.perp[:n], book.perp_abs[:n],
               book.coll[:n])

    def moved(t: float) -> np.ndarray:
        p = p0.copy()
        p[: len(PRICE_DIRECTION)] *= 1 + t * np.array(PRICE_DIRECTION)
        return p

    def share(t: float) -> float:
        res = screen(sub, params, moved(t))
        return float(np.mean(res.equity < res.maintenance))

    lo, hi = 0.0, 0.5
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if share(mid) >= TARGET_LIQUIDATABLE else (mid, hi)
    target = moved(hi)
    for asset, feed in enumerate(d.feeds):
        s.send(feed.updateAnswer, int(round(target[asset] * 10**FEED_DECIMALS)))
    return [float(x / p0[k] - 1) for k, x in enumerate(target[: len(d.feeds)])]


@dataclass
class Scan:
    liquidatable: set[int]
    equity: dict[int, int]
    maintenance: dict[int, int]


def scan_screen(ch: Chain, block: int, layout: Layout, book: Book, states: dict[int, AccountState]) -> Scan:
    """(a) Health of every account: prices and words at ``block``, the float screen, and the exact mirror for the
    accounts within the safety band of the line (below the band they are liquidatable whatever the float error)."""
    at = ch.at(block)
    prices, cfg = read_prices(at.oracle, layout), read_margin_config(at.params)
    res = screen(book, ScreenParams.build(cfg, layout), np.array(prices, dtype=float) / WAD)
    exact: dict[int, AccountMargin] = {}
    for r in res.near_line:
        account = book.ids[r]
        exact[account] = account_margin(states[account], layout, prices, cfg)
    certain = {book.ids[r] for r in res.certain}
    return Scan(certain | {a for a, m in exact.items() if m.liquidatable}, {a: m.equity for a, m in exact.items()},
                {a: m.maintenance for a, m in exact.items()})


def screen_parts(ch: Chain, block: int, layout: Layout, book: Book, states: dict[int, AccountState]) -> dict:
    """The three parts of (a), each timed alone (best of REPEATS): the two reads, the screen, the exact check."""
    at = ch.at(block)
    t_read, (prices, cfg) = timed(lambda: (read_prices(at.oracle, layout), read_margin_config(at.params)), REPEATS)
    params = ScreenParams.build(cfg, layout)
    t_screen, rows = timed(lambda: screen(book, params, np.array(prices, dtype=float) / WAD).candidates, REPEATS)
    res = screen(book, params, np.array(prices, dtype=float) / WAD)
    t_exact, _ = timed(lambda: [account_margin(states[book.ids[r]], layout, prices, cfg) for r in res.near_line],
                       REPEATS)
    return {"read_prices_and_words": t_read, "screen": t_screen, "exact_near_line": t_exact,
            "exact_all_candidates": timed(lambda: [account_margin(states[book.ids[r]], layout, prices, cfg)
                                                   for r in rows], REPEATS)[0]}


def scan_lens(ch: Chain, block: int, ids: list[int], batch: int) -> Scan:
    """(b) ``AccountLens.equityAndMaintenance`` in batches, pinned to ``block``."""
    equity, maintenance = ch.lens_health(ids, block, batch)
    return Scan({a for a, e, m in zip(ids, equity, maintenance) if e < m}, dict(zip(ids, equity)),
                dict(zip(ids, maintenance)))


def scan_per_account(ch: Chain, block: int, ids: list[int]) -> Scan:
    """(c) One ``CrossMarginVault.margin(account)`` eth_call per account, pinned to ``block``."""
    vault = ch.at(block).vault
    rows = {a: vault.margin(a) for a in ids}
    return Scan({a for a, (e, m, _) in rows.items() if e < m}, {a: int(r[0]) for a, r in rows.items()},
                {a: int(r[1]) for a, r in rows.items()})


def largest_lens_batch(ch: Chain, block: int, ids: list[int]) -> int:
    """The largest LENS_BATCHES size whose call fits the node's call gas cap (tried on the first accounts)."""
    for batch in LENS_BATCHES:
        if batch > len(ids):
            continue
        try:
            ch.lens_health(ids[:batch], block, batch)
            return batch
        except Exception as e:  # out of gas at the cap: try a smaller batch
            log.info("lens batch %d does not fit the call gas cap (%s)", batch, type(e).__name__)
    raise RuntimeError("no AccountLens batch size fits the call gas cap")


def check_agreement(n: int, a: Scan, b: Scan, c: Scan, exact_all: dict[int, AccountMargin]) -> None:
    """Same liquidatable set three ways; the exact mirror equals the lens and the vault to the wei."""
    problems = []
    if not a.liquidatable == b.liquidatable == c.liquidatable:
        problems.append(f"liquidatable sets differ: screen {len(a.liquidatable)}, lens {len(b.liquidatable)}, "
                        f"per account {len(c.liquidatable)}")
    for account, m in exact_all.items():
        if (m.equity, m.maintenance) != (b.equity[account], b.maintenance[account]):
            problems.append(f"{account:#x}: mirror {m.equity}/{m.maintenance}, "
                            f"lens {b.equity[account]}/{b.maintenance[account]}")
        if (b.equity[account], b.maintenance[account]) != (c.equity[account], c.maintenance[account]):
            problems.append(f"{account:#x}: lens and vault.margin differ")
    for account in a.equity:
        if (a.equity[account], a.maintenance[account]) != (b.equity[account], b.maintenance[account]):
            problems.append(f"{account:#x}: screen's exact confirmation differs from the lens")
    if problems:
        raise SystemExit(f"keeper scan at {n} accounts disagrees ({len(problems)} problems): " +
                         "; ".join(problems[:5]))


# ------------------------------------------------------------------------------------------------ synthetic 1M
def synthetic_params() -> tuple[ScreenParams, np.ndarray]:
    """Screen parameters of 8 assets and 8 collaterals (one per asset), packed as RiskParameters publishes them."""
    rng = random.Random(SEED)
    a = 8
    spec = DEFAULT_SPEC.model_copy(update={
        "risk_weights": {k: rng.randrange(800, 2500) for k in range(a)},
        "correlations": {(k, l): rng.randrange(3000, 9000) for k in range(a) for l in range(k + 1, a)},
        "stress": [StressVector(name=f"s{s}", shocks={k: rng.randrange(-3000, 3000) for k in range(a)})
                   for s in range(8)],
        "haircuts": {j: rng.randrange(500, 2000) for j in range(a)},
    })
    layout = Layout(tuple(range(a)), tuple(range(a)), (8, 18, 9, 18, 18, 6, 18, 8))
    prices = np.array([60_000, 3_000, 150, 15, 1.0, 0.5, 40, 7], dtype=float)
    return ScreenParams.build(spec.margin_config(), layout), prices


def synthetic_book(n: int, prices: np.ndarray) -> Book:
    """n accounts: each asset held as collateral or traded with probability 0.3, notional ~ lognormal USD."""
    rng = np.random.default_rng(SEED)
    a = len(prices)
    usd = lambda: rng.lognormal(np.log(10_000), 1.0, (n, a))  # noqa: E731
    coll = np.where(rng.random((n, a)) < 0.3, usd() / prices, 0.0)
    perp = np.where(rng.random((n, a)) < 0.3, usd() * rng.choice((-1.0, 1.0), (n, a)) / prices, 0.0)
    entry = prices * rng.uniform(0.9, 1.1, (n, a))
    const = rng.uniform(-0.2, 0.5, n) * (coll * prices).sum(axis=1) - (perp * entry).sum(axis=1)
    return Book(a, list(range(n)), {}, const, perp, np.abs(perp), coll)


def bench_synthetic(n: int) -> dict[str, float]:
    params, prices = synthetic_params()
    book = synthetic_book(n, prices)
    seconds, rows = timed(lambda: screen(book, params, prices).candidates, SYNTHETIC_REPEATS)
    return {"seconds": seconds, "candidates": len(rows)}


# ------------------------------------------------------------------------------------------------ main
def node_version() -> str:
    return str(web3.provider.make_request("web3_clientVersion", [])["result"])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", message=r"rpc\.\w+ should not be called directly")
    if not rpc.is_child():
        raise SystemExit("refusing to run on a node Brownie did not launch (it moves prices and the gas limit): "
                         "use `make bench-keeper` (network anvil-bench)")
    t_start = time.perf_counter()
    out: dict[str, Any] = {"node": node_version(), "cores": os.cpu_count(), "python": platform.python_version(),
                           "numpy": np.__version__}
    n_max = max(SIZES)

    deployer = accounts[0]
    d = deploy_local(deployer)
    layout, cfg = read_layout(d.vault), read_margin_config(d.params)
    seeder = Seeder.deploy(d, deployer)
    seconds, ids = timed(lambda: seeder.random_book(n_max, random.Random(SEED), layout,
                                                    read_prices(d.oracle, layout), cfg))
    out["seeding_seconds"] = round(seconds, 1)
    out["seeded_accounts"] = n_max
    log.info("seeded %d accounts in %.1f s (head %d)", n_max, seconds, web3.eth.block_number)

    ch = offchain_chain(d)
    with tempfile.TemporaryDirectory() as tmp:
        indexer = Indexer(ch, connect(Path(tmp) / "index.sqlite"))
        seconds, sync = timed(indexer.sync)
        out["indexing_seconds"] = round(seconds, 2)
        log.info("indexed %d logs in %.2f s", sync.logs, seconds)
        states = indexer.states(ids)
        t_book, book = timed(lambda: Book.of(states, layout))
        out["book_build_seconds_10k"] = round(t_book, 3)

        out["price_move"] = dict(zip(ASSETS, (round(x, 4) for x in move_prices(seeder, book, layout, cfg, n_max))))
        web3.provider.make_request("evm_setBlockGasLimit", [hex(CALL_GAS_CAP)])
        chain.mine()
        indexer.sync()  # nothing changed but the prices: the index is current at the measured block
        block = web3.eth.block_number
        batch = largest_lens_batch(ch, block, ids)
        out["lens_batch"] = batch
        out["call_gas_cap"] = CALL_GAS_CAP
        prices = read_prices(ch.at(block).oracle, layout)

        for n in SIZES:
            sub_ids = ids[:n]
            sub_book = Book.of({a: states[a] for a in sub_ids}, layout)
            t_a, a = timed(lambda: scan_screen(ch, block, layout, sub_book, states), REPEATS)
            t_b, b = timed(lambda: scan_lens(ch, block, sub_ids, batch), REPEATS)
            t_c, c = timed(lambda: scan_per_account(ch, block, sub_ids))
            parts = screen_parts(ch, block, layout, sub_book, states)
            exact_all = {x: account_margin(states[x], layout, prices, cfg) for x in sub_ids}
            check_agreement(n, a, b, c, exact_all)
            key = f"{n // 1000}k"
            out.update({f"seconds_screen_exact_{key}": t_a, f"seconds_lens_batched_{key}": t_b,
                        f"seconds_per_account_{key}": t_c, f"ratio_vs_batched_{key}": t_b / t_a,
                        f"ratio_vs_per_account_{key}": t_c / t_a, f"liquidatable_{key}": len(a.liquidatable),
                        f"exact_checked_{key}": len(a.equity),
                        f"seconds_screen_exact_parts_{key}": {k: round(v, 6) for k, v in parts.items()}})
            log.info("%d accounts: screen+exact %.4f s, lens %.3f s, per account %.2f s; %d candidates, "
                     "%d liquidatable (all three agree, exact == lens to the wei)",
                     n, t_a, t_b, t_c, len(a.equity), len(a.liquidatable))

    syn = bench_synthetic(SYNTHETIC_ACCOUNTS)
    out.update({"synthetic_accounts": SYNTHETIC_ACCOUNTS, "seconds_screen_1m": syn["seconds"],
                "accounts_per_s_screen_1m": SYNTHETIC_ACCOUNTS / syn["seconds"],
                "candidates_screen_1m": syn["candidates"]})
    out["total_seconds"] = round(time.perf_counter() - t_start, 1)
    out["method"] = METHOD
    report(out)
    write(out)
    check_floors(out)


METHOD = {
    "chain": "Anvil (Brownie network anvil-bench), Shanghai; seeded with 300M-gas blocks, then the block gas limit "
             "(which Anvil also applies to eth_call) set to call_gas_cap for the views; all calls over HTTP through "
             "offchain.chain.Chain, pinned to one block",
    "seeding": "BookSeeder.depositMany + TestVenue.tradeMany; each account checked against IM with the exact mirror; "
               "then prices moved along price_move until ~3% of accounts screen below MM",
    "screen_exact": "read_prices + read_margin_config at the block, ScreenParams.build, screen() over a Book of the "
                    "n accounts (built from the index beforehand), account_margin for every account within the safety band of the line; best of 3",
    "lens_batched": "AccountLens.equityAndMaintenance in batches of lens_batch (largest of 2000/1000/750/600/500/... "
                    "that fits the call gas cap), Chain.lens_health; best of 3",
    "per_account": "CrossMarginVault.margin(account), one eth_call each; one run",
    "screen_1m": "screen() + candidates on synthetic_accounts random accounts, 8 assets, 8 collaterals, 8 stress "
                 "vectors; best of 5; index time (indexing_seconds, book_build_seconds_10k) not included anywhere",
}


def report(out: dict[str, Any]) -> None:
    log.info("")
    log.info("xmargin keeper scan benchmark: one full health evaluation of every account (%s, %s cores)",
             out["node"], out["cores"])
    log.info("%-44s %12s %12s", "", "1,000", "10,000")
    log.info("%s", "-" * 70)
    rows = (("(a) screen + exact confirmation, s", "seconds_screen_exact", "{:.4f}"),
            (f"(b) AccountLens batched ({out['lens_batch']}/call), s", "seconds_lens_batched", "{:.3f}"),
            ("(c) vault.margin per account, s", "seconds_per_account", "{:.2f}"),
            ("(b) / (a)", "ratio_vs_batched", "{:.0f}x"),
            ("(c) / (a)", "ratio_vs_per_account", "{:.0f}x"),
            ("exact checks (near the line)", "exact_checked", "{}"),
            ("liquidatable (all three agree)", "liquidatable", "{}"))
    for label, key, fmt in rows:
        log.info("%-44s %12s %12s", label, *(fmt.format(out[f"{key}_{k}"]) if f"{key}_{k}" in out else "-"
                                           for k in ("1k", "10k")))
    for k in ("1k", "10k"):
        if f"seconds_screen_exact_parts_{k}" in out:
            log.info("(a) at %s in parts: %s", k, ", ".join(f"{name} {v * 1e3:.1f} ms" for name, v in
                                                             out[f"seconds_screen_exact_parts_{k}"].items()))
    log.info("%s", "-" * 70)
    log.info("screen alone, %s accounts x 8 assets: %.3f s = %s accounts/s (%d candidates)",
             f"{out['synthetic_accounts']:,}", out["seconds_screen_1m"], f"{out['accounts_per_s_screen_1m']:,.0f}",
             out["candidates_screen_1m"])
    log.info("seeding %s accounts: %.1f s; indexing: %.2f s; whole run: %.0f s", f"{out['seeded_accounts']:,}",
             out["seeding_seconds"], out["indexing_seconds"], out["total_seconds"])


def write(out: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    rounded = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}
    RESULTS.write_text(json.dumps(rounded, indent=2) + "\n")
    log.info("written %s", RESULTS)


def check_floors(out: dict[str, Any]) -> None:
    checks = [("seconds_screen_1m", out.get("seconds_screen_1m"), "<=", FLOORS["seconds_screen_1m"]),
              ("ratio_vs_batched_10k", out.get("ratio_vs_batched_10k"), ">=", FLOORS["ratio_vs_batched_10k"])]
    broken = []
    for key, value, op, floor in checks:
        if value is None:
            continue
        ok = value <= floor if op == "<=" else value >= floor
        log.info("floor %-22s %10.3f %s %8.1f  %s", key, value, op, floor, "ok" if ok else "BROKEN")
        if not ok:
            broken.append(f"{key} = {value:.3f} (floor {op} {floor})")
    if broken:
        raise SystemExit("keeper scan floor missed: " + "; ".join(broken))
