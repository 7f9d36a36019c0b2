"""xmargin crash demo: a few hundred cross-margined traders, a keeper, and a market crash, on a local chain.

    make demo                                   # 300 traders, 12 March 2020, seed 7
    make demo DEMO_ARGS="--traders 60 --blocks 40 --scenario oct2025 --seed 3"
    make demo DEMO_ARGS="--scenario gap --fund-usdc 0"   # the fund runs out: deleveraging
    make demo DEMO_ARGS="--scenario fast"       # -35% in 3 blocks, keeper 5 blocks late, scalers raised
    .venv/bin/python scripts/demo.py --help     # every option

What it does, in order:
1. connects to a Brownie network (default ``xmargin-demo``: a Ganache that Brownie starts on port 8547) and deploys
   the protocol with ``scripts/deploy.py`` (tokens, Chainlink mock feeds, the contracts, an insurance fund of
   1,000,000 USDC), writing ``deployments/<chain-id>.json``;
2. draws a population of traders (``offchain.population``: hedged pairs, directional books, baskets, volatile
   collateral hedged by short perps, a few over-leveraged books), deposits their collateral and opens every position
   with EIP-712 orders signed by the trader and a market maker and settled through ``OrderSettlement``;
3. starts a keeper the way an operator would: ``xmargin keeper run`` in its own process, with a settings file, a
   private key from the environment, JSON logs and a /health endpoint;
4. runs a quiet period (``--quiet-hours`` of chain time, moved ahead with ``evm_increaseTime``) at the start prices
   in which the venue's fills print above the index, so funding accrues and the longs pay the shorts;
5. drives a crash shaped after a real episode (``offchain.risk.episodes``) through the Chainlink feeds, one block
   per step: the feed updates of a step go into the block with the lowest tip, after the keeper's transactions of
   the previous block; the next block is mined once the keeper has processed the last one (a keeper that keeps up
   with the chain, as on a 12-second chain);
   (or, ``--scenario gap``, a one-block gap that leaves bankrupt accounts and runs the write-off waterfall: the fund,
   then deleveraging of the opposite side; or ``--scenario fast``, -35% over 3 blocks with the keeper stalled for
   its first 5 blocks (``--keeper-lag``) and a volatility updater raising the scalers (``--vol-updater``): the
   cascade model's ``crash_35_3blocks_latency_5`` on chain, which the summary compares with the model's p95);
6. watches every account with its own indexer and the exact margin mirror, counts breaches of the maintenance
   margin and the blocks until the liquidation that follows, and checks the end state against ``AccountLens``;
   reads funding and deleveraging from the chain and checks them (``scripts/demo_checks.py``);
7. writes ``summary.json``, ``blocks.csv``, ``funding.csv``, ``chart.png`` and the keeper's log to the results folder
   and prints a report. The exit code is 1 when a liquidation was missed or a check failed.

Deposits go through a batch depositor (``BookSeeder``, anyone may deposit into any account) to keep set-up short;
every position is opened by signed orders.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402
from eth_utils import keccak  # noqa: E402

from offchain.db import acct_int  # noqa: E402
from offchain.orders import Order, sign_order  # noqa: E402
from offchain.population import (KINDS, LOCAL_LAYOUT, Book, generate, listing_market, option_listing,  # noqa: E402
                                 option_makers, option_population, option_standard_requirement, sizes_of)
from offchain.risk.option_backtest import KINDS as OPTION_KINDS  # noqa: E402
from offchain.margin.defaults import ASSETS, DEFAULT_SPEC, LOCAL_COLLATERALS, START_PRICES_USD, WAD  # noqa: E402
from offchain.risk.episodes import EPISODES, Episode  # noqa: E402
from offchain.margin.params import RiskSpec  # noqa: E402
from scripts.deploy import FUND_SEED_USDC, START_VOLS  # noqa: E402
from scripts.demo_checks import adl_reading, funding_reading, verify  # noqa: E402
from offchain.margin.exact import AccountState, account_margin, settled, standard_requirement  # noqa: E402
from offchain.margin.snapshot import (read_margin_config, read_markets, read_option_market,  # noqa: E402
                                      read_prices)

log = logging.getLogger("xmargin.demo")

USDC_DECIMALS = 6
KEEPER_KEY_ENV = "XMARGIN_DEMO_KEEPER_KEY"
SETTLE_GAS = 900_000
OPTION_SETTLE_GAS = 6_000_000  # an option maker holding 8 series is revalued in full at each fill
DEPOSIT_CHUNK = 120
QUIET_STEP = 1800  # seconds of chain time per step of the quiet period (inside the feeds' one-hour heartbeat)
OI_CAP = 2.0  # each market's open-interest cap, times the population's gross notional in it
DESK_CHUNK = 1.0  # a premium desk fill, times the population's gross notional in its market (OI + chunk <= cap)
DESK_TRIPS = 1  # the desk's round trips per market and step: fees of about half the premium's depth
SAVER_USDC = 100_000  # a depositor without positions, whose claim deleveraging must leave whole
OPTION_MAKER_SUB = 64  # the option market makers' subaccounts of the market maker's key (one per underlying)
OPTION_TAKER_FEE_BPS = 5  # OrderSettlement's taker fee on the local deployment: on the premium for options
OPTION_BASE = 256  # the venue's instrument id of option series slot s is OPTION_BASE + s
OPTION_SERIES_LIMIT = 8  # series an account other than the fund may hold at once (TooManySeries)

# A gap: every market opens a step lower in one block (a weekend gap, an exchange outage), too fast for partial
# liquidations; the deepest books go bankrupt at once, past what the fund holds, and deleveraging charges the shorts.
GAP = Episode(
    "gap", "a one-block gap (BTC -45%, ETH -55%, SOL and LINK -65%)",
    "Every asset gaps down in a single block and stays there: no liquidation can happen on the way down, so accounts "
    "levered beyond the gap go bankrupt at once and the write-off waterfall runs: the fund, then deleveraging.",
    {a: ((0.0, 1.0), (0.1, 1.0), (0.1001, low), (1.0, low)) for a, low in enumerate((0.55, 0.45, 0.35, 0.35))},
)
# A fast crash: the review's scenario for the cascade model (crash_35_3blocks_latency_5_depth_half in
# scripts/bench/results/cascade.json) on chain. The keeper is stalled for the first --keeper-lag blocks (5: a keeper
# 5 blocks late), so the accounts levered beyond 35% are bankrupt before anything can be liquidated.
FAST = Episode(
    "fast", "a fast crash: every asset -35% over 3 blocks, the keeper 5 blocks late",
    "Every asset falls 35% in three blocks and stays there while the keeper is stalled (--keeper-lag, default 5 "
    "blocks): the books levered beyond the move go bankrupt before any liquidation lands and the write-off waterfall "
    "runs (the fund, then deleveraging of the opposite side); a volatility updater raises every scaler by 5,000 bps "
    "two blocks after the move starts (--vol-updater).",
    {a: ((0.0, 1.0), (1.0, 0.65)) for a in range(4)},
)
SCENARIOS = {**EPISODES, GAP.name: GAP, FAST.name: FAST}
# Per-scenario defaults of --blocks, --keeper-lag and --vol-updater (the others: 90 blocks, no lag, no updater).
SCENARIO_DEFAULTS = {"fast": {"blocks": 3, "keeper_lag": 5, "vol_updater": True}}
# The volatility updater: the cascade model's rule (offchain.risk.cascade.CascadeScenario's vol_* defaults) on the
# prices the demo pushes, with the episode noise (40 bps per block) as the reference level.
VOL_REF_BPS = 40.0


@dataclass
class Options:
    traders: int = 300
    scenario: str = "mar2020"
    seed: int = 7
    blocks: int = 90  # blocks the crash path takes
    settle_blocks: int = 20  # extra blocks at the end prices, for the keeper to finish
    keeper_timeout: float = 120.0  # seconds to wait for the keeper to process a block before mining the next
    metrics_port: int = 9547
    out: Path = ROOT / "results" / "demo"
    quiet_hours: float = 8.0  # chain time at the start prices before the crash, fills above the index
    premium_bps: int = 20  # how far above the index the quiet period's fills print
    fund_usdc: int = FUND_SEED_USDC  # test USDC the insurance fund starts with (it also collects every fee)
    keeper_lag: int = 0  # blocks the keeper is stalled (SIGSTOP) from the crash's first block
    vol_updater: bool = False  # raise the volatility scalers by the model's rule during the crash
    option_traders: int = 30  # option books (covered calls, protective puts, delta-hedged short straddles)
    vol_spike: float = 2.0  # the volatility feeds' answers at the crash's trough, times their start values


@dataclass
class Series:
    """Per-block observations of the crash (index 0 = the block before the first price move)."""

    block: list[int] = field(default_factory=list)
    prices: list[list[float]] = field(default_factory=list)
    below_mm: list[int] = field(default_factory=list)
    liquidations: list[int] = field(default_factory=list)
    fund_usd: list[float] = field(default_factory=list)
    keeper_seconds: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- set-up
def trader_key(seed: int, i: int) -> Any:
    return Account.from_key(keccak(text=f"xmargin demo trader {seed} {i}"))


def account_of(address: str, sub: int = 0) -> int:
    return (int(address, 16) << 96) | sub


class MarketMaker:
    """The market maker (one account per market) and the relayer that submits matched orders: deposits and
    signed order pairs for the whole population, sent without waiting for each receipt."""

    def __init__(self, d: Any, seeder: Any, relayer: Any, web3: Any, chain_id: int) -> None:
        self.d, self.seeder, self.relayer, self.w3, self.chain_id = d, seeder, relayer, web3, chain_id
        self.maker_key = Account.from_key(keccak(text="xmargin demo market maker"))
        self.nonce = 0
        self.chain_time = web3.eth.get_block("latest")["timestamp"]  # orders expire a day after the chain's clock

    def maker(self, market: int) -> int:
        return account_of(self.maker_key.address, 1 + market)

    def deposit(self, token: Any, ids: list[int], amounts: list[int]) -> None:
        pairs = [(a, x) for a, x in zip(ids, amounts) if x > 0]
        if not pairs:
            return
        tx = {"from": self.relayer}
        total = sum(x for _, x in pairs)
        token.mint(self.relayer, total, tx)
        token.approve(self.seeder, total, tx)
        for i in range(0, len(pairs), DEPOSIT_CHUNK):
            part = pairs[i:i + DEPOSIT_CHUNK]
            self.seeder.depositMany(token, [a for a, _ in part], [x for _, x in part], tx)

    def orders(self, account: int, key: Any, market: int, size: int, price: int) -> tuple:
        """A matched pair: the maker's order at the oracle price and the trader's order (1% limit slack)."""
        return self.pair(self.maker(market), self.maker_key, account, key, market, size, price, 100)

    def pair(self, maker: int, maker_key: Any, taker: int, taker_key: Any, market: int, size: int, price: int,
             slack_bps: int = 0) -> tuple:
        """A matched pair: the maker's order at ``price``, the taker's (buying when ``size`` > 0) with its limit
        ``slack_bps`` beyond it. Orders expire a day after the chain's clock (``chain_time``, which may run ahead of
        this machine's: the quiet period moves it, and so does any earlier time travel on the node)."""
        self.nonce += 1
        expiry = max(int(time.time()), self.chain_time) + 86_400
        buy = size > 0
        made = Order(maker, market, not buy, abs(size), price, expiry, self.nonce)
        limit = price * (10_000 + slack_bps) // 10_000 if buy else price * (10_000 - slack_bps) // 10_000
        taken = Order(taker, market, buy, abs(size), limit, expiry, self.nonce)
        venue = self.d.venue.address
        return (made, sign_order(made, maker_key.key, self.chain_id, venue),
                taken, sign_order(taken, taker_key.key, self.chain_id, venue), abs(size))

    def settle_all(self, trades: list[tuple], progress: bool = True) -> None:
        """Submit every matched pair; fail with the first reverted trade's account."""
        hashes = []
        for n, args in enumerate(trades, 1):
            data = self.d.venue.settle.encode_input(*args)
            gas = OPTION_SETTLE_GAS if args[0].market >= OPTION_BASE else SETTLE_GAS  # an option fill revalues 2 books
            hashes.append(self.w3.eth.send_transaction(
                {"from": self.relayer.address, "to": self.d.venue.address, "data": data, "gas": gas}))
            if progress and (n % 100 == 0 or n == len(trades)):
                log.info("  orders settled: %d / %d", n, len(trades))
        for h, args in zip(hashes, trades):
            receipt = self.w3.eth.wait_for_transaction_receipt(h, timeout=600)
            if receipt.status != 1:
                raise RuntimeError(f"settlement of account {args[2].account:#x} market {args[2].market} reverted "
                                   f"(tx {h.hex()}); the population sizing and the chain disagree")


def gross_by_market(books: list[Book]) -> list[float]:
    """The population's gross notional in each market (USD at the start prices)."""
    gross = [0.0] * len(ASSETS)
    for b in books:
        for m, n in b.legs:
            gross[m] += abs(n)
    return gross


def demo_spec(books: list[Book], option_traders: int = 0, seed: int = 0) -> RiskSpec:
    """The default risk set with each market's open-interest cap sized to the population: ``OI_CAP`` times its
    gross notional (the option books' perpetual hedges included). The premium's depth is a share of that cap
    (docs/funding.md), so a cap of the default's two billion USD would make the demo's few million of fills move no
    funding at all."""
    gross = gross_by_market(books)
    if option_traders:
        states, _, _ = option_population(option_traders, seed, vols=START_VOLS)
        for st in states:
            for m, (q, _) in st.positions.items():
                gross[m] += abs(q) / WAD * START_PRICES_USD[m]
    markets = {m: r.model_copy(update={"max_open_interest": int(OI_CAP * gross[m] + 1) * WAD // START_PRICES_USD[m]})
               for m, r in DEFAULT_SPEC.markets.items()}
    return DEFAULT_SPEC.model_copy(update={"markets": markets})


def seed_population(d: Any, books: list[Book], seed: int, relayer: Any, web3: Any, chain_id: int,
                    seeder_contract: Any) -> tuple[list[int], MarketMaker]:
    """Deposit every trader's collateral and the makers', then open every leg with signed orders."""
    s = MarketMaker(d, seeder_contract, relayer, web3, chain_id)
    keys = [trader_key(seed, i) for i in range(len(books))]
    ids = [account_of(k.address) for k in keys]
    prices = [int(p) * WAD for p in START_PRICES_USD]
    gross = gross_by_market(books)
    log.info("depositing collateral of %d traders and %d market makers", len(books), len(ASSETS))
    usdc = [int(b.settlement_usd * 10**USDC_DECIMALS) for b in books]
    makers = [s.maker(m) for m in range(len(ASSETS))]
    s.deposit(d.usdc, ids + makers, usdc + [int((g + 1_000_000) * 10**USDC_DECIMALS) for g in gross])
    for cid, (_, decimals, asset, _) in enumerate(LOCAL_COLLATERALS):
        amounts = [int(b.collateral_usd.get(cid, 0.0) * 10**decimals * WAD // prices[asset]) for b in books]
        s.deposit(d.tokens[cid], ids, amounts)
    trades = []
    for acct, key, b in zip(ids, keys, books):
        for market, notional in b.legs:
            size = sizes_of(market, notional, prices)
            if size:
                trades.append(s.orders(acct, key, market, size, prices[market]))
    log.info("opening %d positions with signed orders through OrderSettlement", len(trades))
    s.settle_all(trades)
    return ids, s


def option_maker_accounts(maker: MarketMaker, listing: Any = None) -> dict[int, int]:
    """asset -> the account making the option markets of that underlying (a subaccount of the market maker's key,
    from ``OPTION_MAKER_SUB``, one per asset of the listing in its order: ``offchain.population.option_makers``)."""
    listing = listing if listing is not None else option_listing()
    return {a: account_of(maker.maker_key.address, OPTION_MAKER_SUB + i)
            for i, a in enumerate(dict.fromkeys(listing.asset))}


def option_kind(name: str) -> str:
    """The book kind of an option population name (``offchain.population.option_population``)."""
    return next(k for k in OPTION_KINDS if name.startswith(k))


def seed_options(d: Any, opts: Options, maker: MarketMaker, spec: RiskSpec, deployer: Any
                 ) -> tuple[list[int], list[str]]:
    """List the option series (``offchain.population.option_listing``: calls at 1 and 1.1 S, puts at 1 and 0.9 S,
    7 and 30 days, on BTC and ETH), deposit the option books of ``option_population`` (the same books the cascade
    model's options section holds) and their market makers' USDC, and open them with signed orders: options
    against one option market maker per underlying at the model mark, perpetuals against the market makers at the
    oracle price. Each book deposits what its trades need at every step (the exact mirror, at the listing's time)."""
    if opts.option_traders == 0:
        return [], []
    t0 = maker.w3.eth.get_block("latest")["timestamp"]
    listing = option_listing()
    for slot, (asset, call, m, days) in enumerate(zip(listing.asset, listing.is_call, listing.moneyness,
                                                      listing.days)):
        d.options.listSeries(slot, asset, call, int(round(START_PRICES_USD[asset] * m)) * WAD, t0 + days * 86_400,
                             {"from": deployer})
    states, names, _ = option_population(opts.option_traders, opts.seed, spec, vols=START_VOLS)
    makers = option_makers(states, listing)
    market = listing_market(listing, t0, START_VOLS, spec)
    prices = [int(p) * WAD for p in START_PRICES_USD]
    cfg = spec.margin_config()
    keys = [trader_key(opts.seed, 100_000 + i) for i in range(len(states))]
    ids = [account_of(k.address) for k in keys]
    maker_of = option_maker_accounts(maker, listing)
    maker_ids = list(maker_of.values())
    assert len(maker_ids) == len(makers)
    deposits, trades = [], []
    for acct, key, st in zip(ids, keys, states):
        steps = [("option", slot, q) for slot, q in sorted(st.options.items())] + \
                [("perp", m, q) for m, (q, _) in sorted(st.positions.items())]
        deposits.append(_option_book_deposit(st, steps, prices, cfg, market))
        for kind, i, q in steps:
            if kind == "option":
                mark = int(d.options.mark(i))
                trades.append(maker.pair(maker_of[listing.asset[i]], maker.maker_key, acct, key, OPTION_BASE + i, q,
                                         mark, 100))
            else:
                trades.append(maker.orders(acct, key, i, q, prices[i]))
    log.info("depositing collateral of %d option books and %d option market makers", len(states), len(makers))
    maker.deposit(d.usdc, ids + maker_ids, [int(x * 10**USDC_DECIMALS) for x in deposits]
                  + [int(m.settlement // WAD * 10**USDC_DECIMALS) for m in makers])
    for cid in range(len(LOCAL_COLLATERALS)):
        maker.deposit(d.tokens[cid], ids, [st.collateral.get(cid, 0) for st in states])
    log.info("opening %d option and hedge positions with signed orders", len(trades))
    maker.settle_all(trades)
    return ids, names


def _option_book_deposit(st: Any, steps: list, prices: list[int], cfg: Any, market: Any) -> float:
    """USDC (whole) a book deposits so that every step of its opening leaves it above IM with 5% to spare and it
    holds the book's settlement balance at the end: premiums at the mark and the taker fee paid from it."""
    from offchain.margin.exact import AccountState
    from offchain.margin.options import mark

    fee = OPTION_TAKER_FEE_BPS / 10_000
    cash = st.settlement / WAD  # what the book holds once open
    flows = []  # the settlement change of each step (premium, fee, perpetual cost basis in the position)
    for kind, i, q in steps:
        if kind == "option":
            s = market.series[i]
            premium = q / WAD * mark(s, prices[s.asset], market.vols[s.asset], market.word, market.time) / WAD
            flows.append(-premium - abs(premium) * fee)
        else:
            flows.append(-abs(q) / WAD * prices[i] / WAD * fee)
    deposit = max(cash - sum(flows), 0.0)
    need = 0.0
    for k in range(1, len(steps) + 1):  # each prefix: its IM against what it holds
        options = {i: q for kind, i, q in steps[:k] if kind == "option"}
        positions = {i: (q, -(-q * prices[i] // WAD)) for kind, i, q in steps[:k] if kind == "perp"}
        held = deposit + sum(flows[:k])
        state = AccountState(int(held * 1e6) * 10**12, positions, dict(st.collateral), {}, options)
        m = account_margin(state, LOCAL_LAYOUT, prices, cfg, None, market)
        need = max(need, (1.05 * m.initial - m.equity) / WAD)
    return deposit + max(need, 0.0) + 10.0


def push_vols(d: Any, web3: Any, sender: str, rel: Any, trough: dict, spike: float, base: int) -> None:
    """The volatility feeds follow the crash: each asset's answer is its start value times 1 + (spike - 1) x the
    share of the crash's depth its price has fallen so far (the start value again when it has not)."""
    for asset, feed in enumerate(d.vol_feeds):
        if feed is None:
            continue
        depth = 1.0 - trough.get(asset, 1.0)
        fallen = min(max((1.0 - float(rel[asset])) / depth, 0.0), 1.0) if depth > 0 else 0.0
        vol = START_VOLS[asset] * (1.0 + (spike - 1.0) * fallen)
        web3.eth.send_transaction({"from": sender, "to": feed.address, "gas": 120_000,
                                   "data": feed.updateAnswer.encode_input(int(round(vol * 1e8))),
                                   "maxFeePerGas": 4 * base + 10**9, "maxPriorityFeePerGas": 0})


class FundDesk:
    """The insurance fund's operator (what the vault's fund operators are for): after each block it closes the
    positions the fund took over in liquidations with signed orders through the venue: perpetuals against the market
    maker at the oracle price, option positions against the option market maker of their underlying at the model
    mark. Its orders carry a tip, so they land in the next block before that block's price and volatility updates.

    Before it sends an option order it checks the venue's rules with the exact mirror on the monitor's view of the
    block: the series is live, the fill is within the OPTION word's band of the mark (it is the mark), the series'
    open-interest cap holds, the market maker stays within 8 series and ends at or above IM (or the fill is a pure
    reduction that raises its E - MM), and so does the fund; then it calls the settlement on that block (a revert
    the mirror did not foresee is not sent). What it does not send is counted in ``option_skipped`` by reason
    and tried again at the next block. It sends one order per series at a time: a series whose last order has no
    receipt yet waits (a second order would close the position twice)."""

    MIN_NOTIONAL_USD = 25_000
    # option orders per block: a fill revalues both books in full (about 1-1.5 M gas measured), so six take a third
    # of the 30 M block at most and leave the rest to the keeper's liquidations; the others wait a block
    OPTION_UNWINDS_PER_BLOCK = 6
    EXPIRY_MARGIN = 3600  # seconds: a series this close to its expiry is left to settle at expiry
    # seconds: the fund buys a short back at the mark this much later than the block it read (the mark only decays
    # with time, and the block that includes the order is later), so it pays no more than the mark it is included at
    # (the vault's rule for a fund below its IM: a close no worse than the mark); it sells a long at the mark it read
    OPTION_PRICE_AHEAD = 600

    def __init__(self, maker: MarketMaker, fund: int, deployer: Any, option_makers: dict[int, int] | None = None
                 ) -> None:
        self.s, self.fund = maker, fund
        self.key = Account.from_key(keccak(text="xmargin demo fund desk"))
        maker.d.vault.setFundOperator(self.key.address, True, {"from": deployer})
        self.unwinds = 0
        self.option_makers = dict(option_makers or {})  # asset -> the account making its option markets
        self.maker_fee_bps = int(maker.d.venue.makerFeeBps()) if self.option_makers else 0
        self.taker_fee_bps = int(maker.d.venue.takerFeeBps()) if self.option_makers else 0
        self.option_sent: list[dict] = []  # every option order sent: slot, size (the fund's trade), price, tx
        self.option_pending: dict[int, bytes] = {}  # slot -> the transaction of its order without a receipt yet
        self.option_reverted = 0
        self.option_skipped: dict[str, int] = {}

    def unwind(self, positions: dict[int, tuple[int, int]], prices: list[int], layout: Any, base_fee: int) -> None:
        for market, (size, _) in sorted(positions.items()):
            price = prices[layout.market_asset[market]]
            if size == 0 or abs(size) * price // WAD < self.MIN_NOTIONAL_USD * WAD:
                continue
            args = self.s.orders(self.fund, self.key, market, -size, price)
            self._send(args, SETTLE_GAS, base_fee)
            self.unwinds += 1

    def _send(self, args: tuple, gas: int, base_fee: int) -> bytes:
        return self.s.w3.eth.send_transaction({
            "from": self.s.relayer.address, "to": self.s.d.venue.address, "gas": gas,
            "data": self.s.d.venue.settle.encode_input(*args), "maxPriorityFeePerGas": 2 * 10**9,
            "maxFeePerGas": 4 * base_fee + 3 * 10**9})

    def _skip(self, reason: str) -> None:
        self.option_skipped[reason] = self.option_skipped.get(reason, 0) + 1

    def receipts(self) -> None:
        """Collect the receipts of the option orders that have one (a reverted order is counted, and its series
        is tried again at the next block)."""
        from web3.exceptions import TransactionNotFound

        for slot, tx in list(self.option_pending.items()):
            try:
                receipt = self.s.w3.eth.get_transaction_receipt(tx)
            except TransactionNotFound:
                continue
            if receipt is None:
                continue
            del self.option_pending[slot]
            if receipt["status"] != 1:
                self.option_reverted += 1
                log.warning("the fund desk's option order in series %d reverted (tx %s)", slot, tx.hex())

    def unwind_options(self, monitor: "Monitor", base_fee: int) -> int:
        """Close the fund's option positions as the monitor read them at its last block, against the option market
        makers at the model mark of that block; returns the orders sent."""
        from offchain.margin.params import OptionParams
        from offchain.margin.options import mark

        self.receipts()
        market = monitor.option_market
        if market is None or not self.option_makers:
            return 0
        word = OptionParams.from_word(market.word)
        fund_state = monitor.fund_state
        books = {a: monitor.counterparties[a] for a in self.option_makers.values() if a in monitor.counterparties}
        sent = 0
        for slot, size in sorted(monitor.fund_options.items()):
            if size == 0 or slot in self.option_pending:
                continue
            if sent >= self.OPTION_UNWINDS_PER_BLOCK:
                self._skip("deferred to the next block")
                continue
            series = market.series.get(slot)
            if series is None or series.fixed_price or series.expiry <= market.time + self.EXPIRY_MARGIN:
                self._skip("series not live")
                continue
            maker = self.option_makers.get(series.asset)
            if maker is None or maker not in books:
                self._skip("no option market maker")
                continue
            spot = monitor.prices[series.asset]
            ahead = self.OPTION_PRICE_AHEAD if size < 0 else 0
            price = mark(series, spot, market.vols[series.asset], market.word, market.time + ahead)
            if not self._cap_holds(slot, size, books[maker].options.get(slot, 0), spot, word.max_open_interest_usd):
                self._skip("open-interest cap")
                continue
            after_maker = self._side_after(books[maker], slot, size, price, self.maker_fee_bps)
            if after_maker is None or not self._side_ok(books[maker], after_maker, slot, size, monitor):
                self._skip("market maker's margin or series limit")
                continue
            after_fund = self._side_after(fund_state, slot, -size, price, self.taker_fee_bps)
            if after_fund is None or not self._side_ok(fund_state, after_fund, slot, -size, monitor, fund=True):
                self._skip("fund's margin")
                continue
            args = self.s.pair(maker, self.s.maker_key, self.fund, self.key, OPTION_BASE + slot, -size, price, 100)
            data = self.s.d.venue.settle.encode_input(*args)
            try:  # on the block the desk read: its orders land first in the next one, before the price updates
                self.s.w3.eth.call({"from": self.s.relayer.address, "to": self.s.d.venue.address, "data": data,
                                    "gas": OPTION_SETTLE_GAS})
            except Exception as e:  # noqa: BLE001 - a revert the mirror did not foresee: logged, counted, not sent
                log.warning("the fund desk's option order in series %d would revert: %s", slot, e)
                self._skip("would revert")
                continue
            tx = self._send(args, OPTION_SETTLE_GAS, base_fee)
            self.option_pending[slot] = tx
            self.option_sent.append({"slot": slot, "size": -size, "price": price, "tx": tx.hex()})
            books[maker], fund_state = after_maker, after_fund
            sent += 1
        return sent

    def _cap_holds(self, slot: int, size: int, maker_size: int, spot: int, cap_usd: int) -> bool:
        """The series' open-interest cap after the fill (the fund's ``size`` goes to 0, the maker's grows by it):
        checked only when the long interest grows (the venue's rule), against the chain's long interest."""
        grows = (max(maker_size + size, 0) - max(maker_size, 0)) - max(size, 0)
        if grows <= 0:
            return True
        longs = int(self.s.d.options.series(slot)[5]) + grows
        return longs * spot // WAD <= cap_usd * WAD

    @staticmethod
    def _side_after(state: Any, slot: int, delta: int, price: int, fee_bps: int) -> Any:
        """``state`` after it trades ``delta`` of ``slot`` at ``price`` (the premium rounded against it, the fee on
        the premium rounded up, as OrderSettlement and the vault do), or None past the 8-series limit."""
        import copy

        from offchain.margin.exact import ceil_div

        held = state.options.get(slot, 0)
        if held == 0 and sum(1 for q in state.options.values() if q) >= OPTION_SERIES_LIMIT:
            return None  # a new series past the limit (the fund only ever reduces here: it holds the series)
        premium_up = ceil_div(abs(delta) * price, WAD)
        fee = ceil_div(premium_up * fee_bps, 10_000)
        after = copy.deepcopy(state)
        after.settlement += (-premium_up if delta > 0 else abs(delta) * price // WAD) - fee
        if held + delta:
            after.options[slot] = held + delta
        else:
            after.options.pop(slot, None)
        return after

    @staticmethod
    def _side_ok(before: Any, after: Any, slot: int, delta: int, monitor: "Monitor", fund: bool = False) -> bool:
        """The vault's rule for one side of an option fill at the mark: at or above IM after it, or a pure reduction
        that raises E - MM and leaves E >= 0 (any E for the ``fund``)."""
        view = (monitor.layout, monitor.prices, monitor.cfg, monitor.markets, monitor.option_market)
        m = account_margin(after, *view)
        if m.equity >= m.initial:
            return True
        held = before.options.get(slot, 0)
        reducing = held * delta < 0 and abs(delta) <= abs(held)
        b = account_margin(before, *view)
        return reducing and (m.equity >= 0 or fund) and m.equity - m.maintenance > b.equity - b.maintenance

    def option_report(self, options: Any, oracle: Any, first: int, last: int) -> dict:
        """The fund's option fills in blocks ``first..last`` as the chain has them (``OptionTrade`` events naming the
        fund: the fund trades options only through this desk in the demo): how many, their underlying notional and
        premium (USD), how far from the mark each printed, in bps of the spot (the band is a limit on that), and the
        most gas one used."""
        fills = [e for e in options.events.get_sequence(first, last, "OptionTrade")
                 if self.fund in (int(e["args"]["buyer"]), int(e["args"]["seller"]))]
        notional = premium = 0.0
        worst = 0.0
        gas = [int(self.s.w3.eth.get_transaction_receipt(e["transactionHash"])["gasUsed"]) for e in fills]
        for e in fills:
            a = e["args"]
            asset = int(options.series(int(a["slot"]))[0])
            spot = int(oracle.price(asset, block_identifier=e["blockNumber"] - 1))  # before the block's feed updates
            notional += int(a["size"]) * spot / WAD / WAD
            premium += int(a["size"]) * int(a["price"]) / WAD / WAD
            worst = max(worst, abs(int(a["price"]) - int(a["mark"])) * 10_000 / spot)
        return {"orders_sent": len(self.option_sent), "fills": len(fills), "reverted": self.option_reverted,
                "without_receipt": len(self.option_pending), "skipped": dict(sorted(self.option_skipped.items())),
                "underlying_notional_usd": notional, "premium_usd": premium,
                "max_distance_from_mark_bps_of_spot": worst, "max_gas_used": max(gas, default=0),
                "fill_txs": sorted({e["transactionHash"].hex() for e in fills})}


class PremiumDesk:
    """Buyers who pay up: in the quiet period the venue's fills print ``premium_bps`` above the index. The desk (two
    subaccounts of one owner) buys and sells back at that price, ``DESK_TRIPS`` round trips of ``DESK_CHUNK`` of the
    population's gross per market and step, signed orders through the venue like every trade. It ends each step
    flat and leaves the population's books alone; what it pays is the fees, and the fees are what weighs a premium
    (docs/funding.md: moving the rate costs more than it earns)."""

    def __init__(self, maker: MarketMaker, gross: list[float], premium_bps: int) -> None:
        self.s, self.premium_bps = maker, premium_bps
        self.key = Account.from_key(keccak(text="xmargin demo premium desk"))
        self.buyer, self.seller = account_of(self.key.address, 1), account_of(self.key.address, 2)
        self.chunk = [DESK_CHUNK * g for g in gross]
        margin = int(max(self.chunk) * 10**USDC_DECIMALS)  # a whole chunk's notional: far above its IM
        maker.deposit(maker.d.usdc, [self.buyer, self.seller], [margin, margin])
        self.fills = 0

    def trade(self, prices: list[int]) -> None:
        trades = []
        for m, chunk in enumerate(self.chunk):
            size = sizes_of(m, chunk, prices)
            if not size:
                continue
            price = prices[m] * (10_000 + self.premium_bps) // 10_000
            for _ in range(DESK_TRIPS):
                trades.append(self.s.pair(self.seller, self.key, self.buyer, self.key, m, size, price))
                trades.append(self.s.pair(self.seller, self.key, self.buyer, self.key, m, -size, price))
        self.s.settle_all(trades, progress=False)
        self.fills += len(trades)


@dataclass
class FundingSeries:
    """Observations of the quiet period (index 0 = its start): each market's funding rate (``marketFunding``) and
    the funding each book type has accrued (:func:`funding_by_group`)."""

    hours: list[float] = field(default_factory=list)
    rate_bps_per_hour: list[list[float]] = field(default_factory=list)  # longs pay when positive
    net_usd: dict[str, list[float]] = field(default_factory=dict)  # book type -> accrued funding, + received


def funding_by_group(monitor: "Monitor", block: int, groups: dict[str, list[int]]) -> dict[str, int]:
    """The funding each group's positions have accrued at ``block`` (wei, + received), from the monitor's index of
    the events (sizes and stored indices) and the vault's ``marketFunding`` views, with the exact mirror."""
    monitor.rt.indexer.sync(block)
    at = monitor.rt.chain.at(block)
    markets = read_markets(at.vault, monitor.layout, read_prices(at.oracle, monitor.layout))
    states = monitor.rt.indexer.states([a for accounts in groups.values() for a in accounts])
    return {name: sum(settled(states[a], markets).settlement - states[a].settlement for a in accounts if a in states)
            for name, accounts in groups.items()}


def observe_funding(monitor: "Monitor", block: int, groups: dict[str, list[int]], series: FundingSeries,
                    hours: float) -> None:
    at = monitor.rt.chain.at(block)
    series.hours.append(hours)
    series.rate_bps_per_hour.append([int(at.vault.marketFunding(m)[4]) * 3600 * 10_000 / WAD
                                     for m in range(len(ASSETS))])
    for name, wei in funding_by_group(monitor, block, groups).items():
        series.net_usd.setdefault(name, []).append(wei / WAD)


def quiet_period(opts: Options, d: Any, web3: Any, deployer: Any, desk: PremiumDesk, monitor: "Monitor",
                 groups: dict[str, list[int]]) -> FundingSeries:
    """``opts.quiet_hours`` of chain time at the start prices, in steps of ``QUIET_STEP`` seconds (the feeds are
    updated every step, inside their heartbeat), the desk's fills above the index in each."""
    from brownie import chain

    from scripts.deploy import set_price

    series = FundingSeries()
    prices = [int(p) * WAD for p in START_PRICES_USD]
    observe_funding(monitor, web3.eth.block_number, groups, series, 0.0)
    steps = int(opts.quiet_hours * 3600) // QUIET_STEP
    log.info("quiet period: %g hours of chain time at the start prices, fills %d bps above the index", opts.quiet_hours,
             opts.premium_bps)
    for i in range(1, steps + 1):
        chain.sleep(QUIET_STEP)
        for feed, usd in zip(d.feeds, START_PRICES_USD):
            set_price(feed, usd, deployer)
        desk.s.chain_time = web3.eth.get_block("latest")["timestamp"]
        if opts.premium_bps:
            desk.trade(prices)
        observe_funding(monitor, web3.eth.block_number, groups, series, i * QUIET_STEP / 3600)
        if i % 4 == 0 or i == steps:
            log.info("  hour %4.1f | rate (bps/hour) %s | accrued %s", series.hours[-1],
                     " ".join(f"{a} {r:+.3f}" for a, r in zip(ASSETS, series.rate_bps_per_hour[-1])),
                     ", ".join(f"{k} {v[-1]:+,.0f}" for k, v in series.net_usd.items()))
    return series


# ---------------------------------------------------------------------------------------------- keeper
def start_keeper(out: Path, rpc_url: str, deployment: Path, metrics_port: int, key: str) -> subprocess.Popen:
    """``xmargin keeper run`` in its own process, configured by a settings file like an operator's."""
    settings = out / "keeper.toml"
    settings.write_text(
        "# Settings of the demo's keeper (see `xmargin config reference`).\n"
        f"[chain]\nrpc_urls = [\"{rpc_url}\"]\ndeployment = \"{deployment}\"\n"
        f"build_dir = \"{ROOT / 'build' / 'contracts'}\"\nstall_seconds = 0\nrequest_timeout = 120\n"
        f"[indexer]\ndatabase = \"{out / 'keeper.sqlite'}\"\nreconcile_every = 0\n"
        f"[keeper]\nprivate_key_env = \"{KEEPER_KEY_ENV}\"\npoll_interval = 0.1\nreplace_after_seconds = 600\n"
        "max_liquidations_per_block = 60\nmin_priority_fee_gwei = 1.0\n"
        f"[ops]\nmetrics_port = {metrics_port}\nlog_format = \"json\"\n")
    exe = Path(sys.executable).with_name("xmargin")
    cmd = [str(exe), "--config", str(settings), "keeper", "run"] if exe.exists() else \
        [sys.executable, "-m", "offchain.cli", "--config", str(settings), "keeper", "run"]
    env = {**os.environ, KEEPER_KEY_ENV: key, "PYTHONPATH": str(ROOT)}
    log.info("starting the keeper: %s", " ".join(cmd))
    with open(out / "keeper.log", "w") as logfile:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, env=env, stdout=logfile, stderr=subprocess.STDOUT, cwd=ROOT)


def stop_keeper(proc: subprocess.Popen) -> int:
    """Stop the keeper (SIGTERM, a clean shutdown; killed after 30 s) and return its exit code."""
    proc.terminate()
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def keeper_head(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return json.loads(r.read())["head"]
    except Exception:  # 503 while it is unhealthy, or not listening yet: it has not processed anything new
        return None


def wait_keeper(proc: subprocess.Popen, port: int, block: int, timeout: float) -> float:
    """Seconds until the keeper reports ``block`` processed (raises if it died)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the keeper exited with code {proc.returncode}; see keeper.log")
        head = keeper_head(port)
        if head is not None and head >= block:
            return time.monotonic() - t0
        time.sleep(0.05)
    log.warning("keeper has not processed block %d after %.0f s; mining on", block, timeout)
    return timeout


# ---------------------------------------------------------------------------------------------- crash
class Monitor:
    """Every account's exact margin after each block, from its own index of the vault's events."""

    def __init__(self, runtime: Any, traders: list[int], fund: int, counterparties: list[int] = ()) -> None:
        self.rt, self.traders, self.fund = runtime, traders, fund
        self.watch = list(counterparties)  # accounts the fund desk trades against (their state after each block)
        self.counterparties: dict[int, Any] = {}
        self.breach: dict[int, int] = {}  # account -> block its current breach started
        self.latencies: list[int] = []  # blocks from breach to the liquidation that answered it
        self.recovered = 0  # breaches that ended with the account back above MM without a liquidation
        self.liquidated: set[int] = set()
        self.breached: set[int] = set()
        self.fund_positions: dict[int, tuple[int, int]] = {}
        self.fund_options: dict[int, int] = {}  # slot -> the fund's size, from the same index as its perpetuals
        self.fund_state: Any = None
        self.prices: list[int] = []
        self.markets: Any = None
        self.option_market: Any = None
        self.last = runtime.rpc.head()  # liquidations are counted over every block after this one, whoever mined it
        # the listing and the margin words do not change during the crash (unless a volatility updater runs:
        # ``refresh_cfg``): read once, then only the prices
        self.layout, _, self.cfg, _ = runtime.indexer.market_view(runtime.rpc.head())
        self.refresh_cfg = False

    def observe(self, block: int) -> tuple[int, int, float]:
        """Index up to ``block``; returns (accounts below MM, liquidations since the last observation, fund equity
        USD). Liquidations come from the vault's ``Liquidated`` events in every block since the last observation, so
        a block the demo did not mine itself (a node that mined on its own) is counted too."""
        self.rt.indexer.sync(block)
        at = self.rt.chain.at(block)
        if self.refresh_cfg:
            self.cfg = read_margin_config(at.params)
        layout, cfg = self.layout, self.cfg
        prices = read_prices(at.oracle, layout)
        markets = read_markets(at.vault, layout, prices)
        states = self.rt.indexer.states(self.traders + [self.fund] + self.watch)
        options = self.rt.indexer.option_market(block)
        liq_rows = self.rt.indexer.conn.execute("SELECT account FROM liquidations WHERE block > ? AND block <= ?",
                                                (self.last, block)).fetchall()
        self.last = block
        liquidated_now = {acct_int(a) for (a,) in liq_rows}
        below = 0
        for acct in self.traders:
            st = states.get(acct)
            m = account_margin(st, layout, prices, cfg, markets, options) if st is not None else None
            under = m is not None and m.liquidatable
            if acct in liquidated_now:
                self.liquidated.add(acct)
                if acct in self.breach:
                    self.latencies.append(block - self.breach.pop(acct))
            if under:
                below += 1
                self.breached.add(acct)
                self.breach.setdefault(acct, block)
            elif acct in self.breach:
                self.breach.pop(acct)
                self.recovered += 1
        fund = account_margin(states[self.fund], layout, prices, cfg, markets, options).equity \
            if self.fund in states else 0
        self.fund_state = states.get(self.fund, AccountState())
        self.fund_positions = self.fund_state.positions
        self.fund_options = dict(self.fund_state.options)
        self.counterparties = {a: states.get(a, AccountState()) for a in self.watch}
        self.prices, self.markets, self.option_market = prices, markets, options
        return below, len(liq_rows), fund / WAD


class ManualMining:
    """Between :meth:`stop` and :meth:`restore` the node mines only when the demo asks (``evm_mine``): Ganache
    through ``miner_stop``/``miner_start``, Anvil (and Hardhat) through ``evm_setAutomine``. A node that takes
    neither is refused with one line: the crash is replayed one block at a time, and the keeper's reaction measured
    per block, only on a node the demo can drive."""

    MODES = ((("miner_stop", []), ("miner_start", [])), (("evm_setAutomine", [False]), ("evm_setAutomine", [True])))

    def __init__(self, web3: Any) -> None:
        self.web3 = web3
        self.resume: tuple[str, list] | None = None

    def stop(self) -> None:
        answers = []
        for (stop, args), resume in self.MODES:
            resp = self.web3.provider.make_request(stop, args)
            if "error" not in resp:
                self.resume = resume
                return
            answers.append(f"{stop}: {resp['error'].get('message')}")
        raise SystemExit(f"the node at {self.web3.provider.endpoint_uri} cannot be made to mine on demand "
                         f"({'; '.join(answers)}): run the demo on Ganache or Anvil")

    def restore(self) -> None:
        if self.resume is not None:
            self.web3.provider.make_request(*self.resume)
            self.resume = None


class VolUpdater:
    """A volatility updater holding RISK_UPDATER_ROLE (and no other role), so RiskParameters' limits apply to it: a
    raise of at most MAX_UPDATER_STEP, once an hour per asset. Its rule is the cascade model's: a per-block EWMA of
    squared log returns of the oracle prices (decay ``vol_lambda``), seeded at the reference level; once its
    volatility is ``vol_trigger`` times the reference it proposes ``min(ratio, vol_cap)``, sent so that it lands
    ``vol_latency`` blocks after the block that triggered it, with a tip (before the block's feed updates)."""

    def __init__(self, d: Any, web3: Any, deployer: Any, account: Any) -> None:
        from offchain.risk.cascade import CascadeScenario

        self.d, self.web3, self.sender = d, web3, account.address
        d.params.grantRole(d.params.RISK_UPDATER_ROLE(), account, {"from": deployer})
        self.rule = CascadeScenario("demo", (0.0,))
        self.ref = VOL_REF_BPS / 1e4
        self.var = [self.ref ** 2] * len(ASSETS)
        self.scaler = [1.0] * len(ASSETS)
        self.raised: dict[int, int] = {}  # asset -> block index of its raise
        self.pending: list[tuple[int, int, int]] = []  # (block index to land in, asset, bps)
        self.sent: list[dict] = []

    def observe(self, i: int, prev: list[float], usd: list[float]) -> None:
        """The prices of block ``i`` (and of the block before): queue the raises the rule proposes."""
        r = self.rule
        for k, (a, b) in enumerate(zip(prev, usd)):
            self.var[k] = r.vol_lambda * self.var[k] + (1 - r.vol_lambda) * float(np.log(b / a)) ** 2
            ratio = float(np.sqrt(self.var[k])) / self.ref
            want = min(ratio, r.vol_cap) if ratio >= r.vol_trigger else 1.0
            if want > self.scaler[k] and k not in self.raised and all(p[1] != k for p in self.pending):
                bps = int(np.ceil(min(want, self.scaler[k] + r.vol_step) * 10_000))
                self.pending.append((i + r.vol_latency, k, bps))

    def send_due(self, next_block_index: int, base_fee: int) -> None:
        """Send the raises that must land in the block about to be mined."""
        for item in [p for p in self.pending if p[0] <= next_block_index]:
            self.pending.remove(item)
            _, k, bps = item
            self.web3.eth.send_transaction({
                "from": self.sender, "to": self.d.params.address, "gas": 300_000,
                "data": self.d.params.setVolScaler.encode_input(k, bps),
                "maxPriorityFeePerGas": 2 * 10**9, "maxFeePerGas": 4 * base_fee + 3 * 10**9})
            self.scaler[k] = bps / 10_000
            self.raised[k] = next_block_index
            self.sent.append({"asset": ASSETS[k], "bps": bps, "crash_block": next_block_index})


def model_check(books: list[Book], opts: "Options", fund_usd: float) -> dict:
    """The cascade model (offchain.risk.cascade) on the demo's book (the population and its market makers) for the
    demo's crash: what it expects at p95 of 200 runs. The demo's fund desk trades at the oracle price (no impact) and
    its prices follow the episode's path, so the model runs without impact and with the path's end move."""
    from offchain.margin.defaults import DEFAULT_SPEC as SPEC
    from offchain.margin.defaults import OPTIONS_DEFAULT
    from offchain.margin.vector import OptionArrays
    from offchain.population import market_makers, option_sizes, prices_wad, to_state
    from offchain.risk.cascade import CascadeScenario, simulate
    from offchain.risk.commands import cascade_inputs
    from offchain.risk.revalue import OptionHoldings

    p = prices_wad(START_PRICES_USD)
    states = [to_state(b, p) for b in books]
    book = states + market_makers(states)
    held = None
    if opts.option_traders:  # the demo's option books (seed_options) and their makers, as the chain holds them
        ost, _, listing = option_population(opts.option_traders, opts.seed, vols=START_VOLS)
        traders = states + ost
        book = traders + market_makers(traders) + option_makers(ost, listing)
        held = OptionHoldings(listing.book(option_sizes(book, len(listing.asset)), START_PRICES_USD),
                              OptionArrays.from_params(OPTIONS_DEFAULT, len(ASSETS)), np.asarray(START_VOLS, float))
    pf, arr, rule = cascade_inputs(SPEC, book, LOCAL_LAYOUT, len(ASSETS))
    trough = SCENARIOS[opts.scenario].trough()
    s = CascadeScenario(f"demo_{opts.scenario}", tuple(trough.get(a, 1.0) - 1.0 for a in range(len(ASSETS))),
                        latency=max(opts.keeper_lag, 1), after_blocks=opts.settle_blocks,
                        # the gap falls in one block (after a flat start that changes nothing); the others over --blocks
                        crash_blocks=1 if opts.scenario == "gap" else opts.blocks,
                        impact_y=0.0, runs=200, seed=opts.seed, vol_cap=1.5 if opts.vol_updater else 1.0,
                        vol_spike=opts.vol_spike if held is not None else 1.0)
    r = simulate(pf, START_PRICES_USD, arr, rule, fund_usd, s, options=held).summary()
    return {k: r[k] for k in ("crash", "latency_blocks", "crash_blocks", "runs", "insurance_fund", "bad_debt",
                              "fund_depletion", "adl", "written_off", "fund_cover", "accounts_liquidated",
                              "p_bad_debt")}


def push_prices(d: Any, web3: Any, sender: str, usd: list[float], base: int) -> None:
    """Queue one ``updateAnswer`` per feed with no tip: they sort after the keeper's transactions in the block."""
    for feed, p in zip(d.feeds, usd):
        web3.eth.send_transaction({"from": sender, "to": feed.address, "gas": 120_000,
                                   "data": feed.updateAnswer.encode_input(int(round(p * 1e8))),
                                   "maxFeePerGas": 4 * base + 10**9, "maxPriorityFeePerGas": 0})


def margins_by_kind(rt: Any, ids: list[int], books: list[Book], block: int) -> dict[str, dict[str, float]]:
    """Portfolio MM against the standard per-position requirement, summed per book kind (USD)."""
    layout, prices, cfg, markets = rt.indexer.market_view(block)
    states = rt.indexer.states(ids)
    rates = [DEFAULT_SPEC.markets[m].standard_mmr_bps for m in range(len(layout.market_asset))]
    out: dict[str, dict[str, float]] = {k: {"accounts": 0, "portfolio_mm": 0.0, "standard_mm": 0.0} for k in KINDS}
    for acct, b in zip(ids, books):
        st = states[acct]
        row = out[b.kind]
        row["accounts"] += 1
        row["portfolio_mm"] += account_margin(st, layout, prices, cfg, markets).maintenance / WAD
        row["standard_mm"] += standard_requirement(st, layout, prices, rates) / WAD
    for row in out.values():
        row["saved_pct"] = 100 * (1 - row["portfolio_mm"] / row["standard_mm"]) if row["standard_mm"] else 0.0
    return out


def option_margins_by_kind(rt: Any, ids: list[int], names: list[str], block: int
                          ) -> dict[str, dict[str, float]]:
    """The option books' portfolio MM against their standard requirement (Deribit's per-option rule, perpetuals at
    their standard rate), summed per book kind (USD)."""
    layout, prices, cfg, markets = rt.indexer.market_view(block)
    options = rt.indexer.option_market(block)
    states = rt.indexer.states(ids)
    out: dict[str, dict[str, float]] = {k: {"accounts": 0, "portfolio_mm": 0.0, "standard_mm": 0.0}
                                        for k in OPTION_KINDS}
    for acct, name in zip(ids, names):
        st = states[acct]
        row = out[option_kind(name)]
        row["accounts"] += 1
        row["portfolio_mm"] += account_margin(st, layout, prices, cfg, markets, options).maintenance / WAD
        row["standard_mm"] += option_standard_requirement(st, options, prices, DEFAULT_SPEC, layout)
    for row in out.values():
        row["saved_pct"] = 100 * (1 - row["portfolio_mm"] / row["standard_mm"]) if row["standard_mm"] else 0.0
    return out


def option_takeovers(options: Any, fund: int, first: int, last: int, fills: set[str] = frozenset()) -> int:
    """Option positions the fund took over in liquidations in blocks ``first..last``: its OptionPositionUpdated
    events outside the transactions ``fills`` of its desk's option fills (the fund trades options only through the
    desk in the demo)."""
    return sum(1 for e in options.events.get_sequence(first, last, "OptionPositionUpdated")
               if int(e["args"]["account"]) == fund and e["transactionHash"].hex() not in fills)


# ---------------------------------------------------------------------------------------------- report
def write_chart(path: Path, series: Series, scenario: str, quiet: FundingSeries) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(range(len(series.block)))
    fig = plt.figure(figsize=(10, 15))
    grid = fig.add_gridspec(6, 1)
    funding = fig.add_subplot(grid[0])
    for name, values in quiet.net_usd.items():
        funding.plot(quiet.hours, [v / 1e3 for v in values], label=name.replace("_", " "))
    funding.axhline(0, color="black", lw=0.6)
    funding.set_ylabel("funding accrued,\nk USD (+ received)")
    funding.set_xlabel("hours of the quiet period before the crash (fills above the index; longs pay shorts)")
    funding.legend(loc="upper left", ncol=3, fontsize=8)
    funding.set_title(f"xmargin crash demo: {SCENARIOS[scenario].title}")
    top = fig.add_subplot(grid[2])
    axes = [top] + [fig.add_subplot(grid[i], sharex=top) for i in range(3, 6)]
    rates = fig.add_subplot(grid[1], sharex=funding)
    for a, name in enumerate(ASSETS):
        rates.plot(quiet.hours, [r[a] for r in quiet.rate_bps_per_hour], label=name)
    rates.set_ylabel("funding rate,\nbps / hour")
    rates.legend(loc="upper left", ncol=4, fontsize=8)
    for a, name in enumerate(ASSETS):
        axes[0].plot(x, [100 * p[a] / series.prices[0][a] for p in series.prices], label=name)
    axes[0].set_ylabel("price, % of start")
    axes[0].legend(loc="lower left", ncol=4)
    axes[1].step(x, series.below_mm, where="post", color="tab:red")
    axes[1].set_ylabel("accounts below MM")
    axes[2].bar(x, series.liquidations, color="tab:purple")
    axes[2].set_ylabel("liquidations / block")
    axes[3].plot(x, [f / 1e6 for f in series.fund_usd], color="tab:green")
    axes[3].set_ylabel("insurance fund, M USD")
    axes[3].set_xlabel("block since the crash began")
    for ax in axes + [funding, rates]:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(summary: dict) -> str:
    s = summary
    rows = [
        ("traders", f"{s['traders']}"),
        ("scenario", f"{s['scenario']} ({s['crash_blocks']} blocks + {s['settle_blocks']} at the end prices)"),
        ("accounts that breached MM", f"{s['breached_accounts']}"),
        ("accounts liquidated", f"{s['liquidated_accounts']}"),
        ("liquidation transactions", f"{s['liquidations']}"),
        ("blocks breach -> liquidation", f"median {s['blocks_to_liquidation_median']}, "
                                         f"max {s['blocks_to_liquidation_max']}"),
        ("missed liquidations", f"{s['missed_liquidations']}"),
        ("insurance fund before", f"{s['insurance_fund_before']:,.2f} USD"),
        ("insurance fund after", f"{s['insurance_fund_after']:,.2f} USD"),
        ("bad debt (fund / deleveraged / socialised)", f"{s['bad_debt']:,.2f} USD ({s['bad_debt_covered_by_fund']:,.2f}"
                                                      f" / {s['bad_debt_deleveraged']:,.2f} / "
                                                      f"{s['bad_debt_socialised']:,.2f})"),
        ("write-offs / deleveraging events", f"{len(s['adl']['write_offs'])} / {len(s['adl']['deleveraged'])}"),
        ("fund used (before - lowest)", f"{s['fund_depletion']:,.2f} USD"),
        ("keeper stalled", f"{s['keeper_lag_blocks']} blocks from the crash's start"),
        ("volatility updater", "off" if not s["vol_updater"] else ", ".join(
            f"{r['asset']} {r['bps']} bps in crash block {r['crash_block']}" for r in s["vol_updater"]["raises"])
            or "no raise"),
        ("model p95 (200 runs, same book)", "n/a (not a straight move)" if not s["model_p95"] else
         f"bad debt {s['model_p95']['bad_debt']:,.0f}, fund depletion {s['model_p95']['fund_depletion']:,.0f}, "
         f"deleveraged {s['model_p95']['adl']:,.0f}, written off {s['model_p95']['written_off']:,.0f} USD"),
        ("keeper opportunities", ", ".join(f"{k} {v}" for k, v in sorted(s["keeper_opportunities"].items()))),
        ("quiet period", f"{s['funding']['hours']:g} hours, fills {s['funding']['premium_bps']} bps above the index "
                         f"({s['funding']['desk_fills']} fills, {s['funding']['desk_fees']:,.0f} USD of fees)"),
        ("wall time", f"{s['seconds']['total']:.0f} s (set-up {s['seconds']['setup']:.0f}, quiet "
                      f"{s['seconds']['quiet']:.0f}, crash {s['seconds']['crash']:.0f})"),
        ("option books (volatility spike at the trough)", f"{s['options']['books']} (x{s['options']['vol_spike']:g}): "
                                                          f"{s['options']['breached_accounts']} breached MM, "
                                                          f"{s['options']['liquidated_accounts']} liquidated, "
                                                          f"{s['options']['positions_taken_over']} option positions "
                                                          f"taken over by the fund"),
        ("fund desk unwinds", f"{s['fund_unwind_trades']} perpetual orders; {s['fund_option_unwinds']['fills']} option "
                              f"fills ({s['fund_option_unwinds']['underlying_notional_usd']:,.0f} USD underlying, "
                              f"{s['fund_option_unwinds']['premium_usd']:,.0f} USD premium, at most "
                              f"{s['fund_option_unwinds']['max_distance_from_mark_bps_of_spot']:.2f} bps of the spot "
                              f"from the mark), {s['fund_option_unwinds']['reverted']} reverted; the fund holds "
                              f"{s['options']['fund_series_held']} option series at the end"),
        ("checks", "all hold" if not s["checks_failed"] else f"{len(s['checks_failed'])} FAILED"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = ["", "xmargin crash demo — results", "-" * (width + 40)]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    lines += ["", "margin required before the crash, by book type (portfolio MM vs standard per-position MM)",
              f"{'book type':<18}{'accounts':>9}{'portfolio MM':>16}{'standard MM':>16}{'saved':>9}"]
    for kind, r in s["margin_by_kind"].items():
        lines.append(f"{kind:<18}{r['accounts']:>9}{r['portfolio_mm']:>16,.0f}{r['standard_mm']:>16,.0f}"
                     f"{r['saved_pct']:>8.1f}%")
    if s["options"]["margin_by_kind"]:
        lines += ["", "option books before the crash (portfolio MM vs standard: Deribit's per-option rule, perpetuals at "
                  "their standard rate)", f"{'book type':<26}{'accounts':>9}{'portfolio MM':>16}{'standard MM':>16}"
                  f"{'saved':>9}"]
        for kind, r in s["options"]["margin_by_kind"].items():
            saved = f"{r['saved_pct']:>8.1f}%" if r["standard_mm"] else "     n/a"  # no standard: nothing to compare
            lines.append(f"{kind:<26}{r['accounts']:>9}{r['portfolio_mm']:>16,.0f}{r['standard_mm']:>16,.0f}{saved}")
    lines += ["", "funding over the quiet period, by book type (USD; read with fundingOf at its end)",
              f"{'book type':<18}{'paid':>14}{'received':>14}{'net':>14}"]
    for kind, r in s["funding"]["by_kind"].items():
        lines.append(f"{kind:<18}{r['paid']:>14,.2f}{r['received']:>14,.2f}{r['net']:>+14,.2f}")
    if s["adl_by_market"]:
        lines += ["", "deleveraging (USD charged to the side opposite the bankrupt positions)",
                  f"{'market':<8}{'events':>8}{'longs paid':>16}{'shorts paid':>16}"]
        for market, r in s["adl_by_market"].items():
            lines.append(f"{market:<8}{r['events']:>8}{r['longs_paid']:>16,.2f}{r['shorts_paid']:>16,.2f}")
        lines.append("charged, by book type: " + ", ".join(f"{k} {v / WAD:,.2f}" for k, v in
                                                           sorted(s["adl"]["charged_by_kind"].items())))
    lines += [f"FAILED: {f}" for f in s["checks_failed"]]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- the run
def run(opts: Options, deployer: Any, relayer: Any) -> dict:
    """The whole demo on the connected Brownie network; returns the summary (also written to ``opts.out``)."""
    from brownie import BookSeeder, chain, web3
    from brownie import accounts as accounts_

    from offchain.runtime import open_runtime
    from offchain.config import load_settings
    from scripts.deploy import LOCAL_PLAN, deploy, write_deployment

    t_start = time.monotonic()
    path = SCENARIOS[opts.scenario].path(opts.blocks, seed=opts.seed)
    opts.out.mkdir(parents=True, exist_ok=True)
    log.info("results folder: %s", opts.out)
    books = generate(opts.traders, opts.seed)
    log.info("deploying the protocol (scripts/deploy.py) on chain %d", chain.id)
    spec = demo_spec(books, opts.option_traders, opts.seed)
    d = deploy(deployer, LOCAL_PLAN.model_copy(update={"seed_fund_usdc": opts.fund_usdc}), spec)
    deployment = write_deployment(d, opts.out)
    seeder = BookSeeder.deploy(d.vault, {"from": relayer})
    ids, maker = seed_population(d, books, opts.seed, relayer, web3, chain.id, seeder)
    premium = PremiumDesk(maker, gross_by_market(books), opts.premium_bps)
    opt_ids, opt_names = seed_options(d, opts, maker, spec, deployer)
    saver = account_of(Account.from_key(keccak(text="xmargin demo saver")).address)
    maker.deposit(d.usdc, [saver], [SAVER_USDC * 10**USDC_DECIMALS])

    rpc_url = web3.provider.endpoint_uri
    keeper_key = Account.from_key(keccak(text=f"xmargin demo keeper {opts.seed}"))
    deployer.transfer(keeper_key.address, 100 * WAD)
    settings = load_settings(None, environ={}, chain={"rpc_urls": [rpc_url], "deployment": str(deployment),
                             "build_dir": str(ROOT / "build" / "contracts"), "stall_seconds": 0,
                             "request_timeout": 120}, indexer={"database": str(opts.out / "monitor.sqlite"),
                                                               "reconcile_every": 0})
    for stale in ("monitor.sqlite", "keeper.sqlite"):
        (opts.out / stale).unlink(missing_ok=True)
    rt = open_runtime(settings)
    fund = int(d.vault.fundAccount())
    option_maker_of = option_maker_accounts(maker) if opt_ids else {}
    monitor = Monitor(rt, ids + opt_ids, fund, list(option_maker_of.values()))
    desk = FundDesk(maker, fund, deployer, option_maker_of)
    updater = VolUpdater(d, web3, deployer, accounts_[3]) if opts.vol_updater else None
    monitor.refresh_cfg = updater is not None
    keeper = start_keeper(opts.out, rpc_url, deployment, opts.metrics_port, keeper_key.key.hex())
    paused = False
    series = Series()
    summary: dict[str, Any] = {}
    mining = ManualMining(web3)
    kinds = {**{a: b.kind for a, b in zip(ids, books)}, **{a: option_kind(n) for a, n in zip(opt_ids, opt_names)},
             **{account_of(maker.maker_key.address, OPTION_MAKER_SUB + i): "option_market_maker" for i in range(2)},
             **{maker.maker(m): "market_maker" for m in range(len(ASSETS))},
             premium.buyer: "premium_desk", premium.seller: "premium_desk", fund: "insurance_fund"}
    groups = {k: [a for a, b in zip(ids, books) if b.kind == k] for k in KINDS}
    groups["market_maker"] = [maker.maker(m) for m in range(len(ASSETS))]
    try:
        wait_keeper(keeper, opts.metrics_port, web3.eth.block_number, opts.keeper_timeout)
        quiet_first, t_quiet = web3.eth.block_number + 1, time.monotonic()
        quiet = quiet_period(opts, d, web3, deployer, premium, monitor, groups)
        head = web3.eth.block_number
        desk_fees = sum(int(e["args"]["fees"]) for e in d.vault.events.get_sequence(quiet_first, head, "Trade"))
        wait_keeper(keeper, opts.metrics_port, head, opts.keeper_timeout)
        below, _, fund_before = monitor.observe(head)
        t0 = time.monotonic()
        funding_before = funding_reading(rt.chain, d.vault.events.get_sequence(d.start_block, head, "PositionUpdated"),
                                         head, kinds)
        log.info("funding at the end of the quiet period read from the chain in %.1f s", time.monotonic() - t0)
        funding_before["mirror_by_kind"] = funding_by_group(monitor, head, groups)
        saver_before = int(rt.chain.call("CrossMarginVault", "settlementOf", saver, block=head))
        if below:
            raise RuntimeError(f"{below} accounts are below MM before the crash; the population sizing is wrong")
        by_kind = margins_by_kind(rt, ids, books, head)
        option_by_kind = option_margins_by_kind(rt, opt_ids, opt_names, head) if opt_ids else {}
        bad_debt_before = d.vault.badDebt() / WAD
        series.block.append(head)
        series.prices.append([float(p) for p in START_PRICES_USD])
        series.below_mm.append(0)
        series.liquidations.append(0)
        series.fund_usd.append(fund_before)
        series.keeper_seconds.append(0.0)
        t_crash = time.monotonic()
        log.info("crash: %s over %d blocks, keeper %s", SCENARIOS[opts.scenario].title, opts.blocks,
                 keeper_key.address)
        mining.stop()
        timing = {"keeper": 0.0, "mine": 0.0, "monitor": 0.0}
        steps = [path[min(i, opts.blocks)] for i in range(1, opts.blocks + opts.settle_blocks + 1)]
        base_fee = web3.eth.get_block("latest").get("baseFeePerGas", 0)
        if opts.keeper_lag:  # a slow keeper: stalled from the crash's first block for keeper_lag blocks
            os.kill(keeper.pid, signal.SIGSTOP)
            paused = True
            log.info("keeper stalled for %d blocks", opts.keeper_lag)
        prev_usd = [float(p) for p in START_PRICES_USD]
        trough = SCENARIOS[opts.scenario].trough()
        for i, rel in enumerate(steps, 1):
            usd = [float(p) * float(r) for p, r in zip(START_PRICES_USD, rel)]
            t0 = time.monotonic()
            if updater is not None:
                updater.send_due(i, base_fee)
            if i <= opts.blocks:
                push_prices(d, web3, deployer.address, usd, base_fee)
                if opt_ids:
                    push_vols(d, web3, deployer.address, rel, trough, opts.vol_spike, base_fee)
            web3.provider.make_request("evm_mine", [])
            timing["mine"] += time.monotonic() - t0
            head = web3.eth.get_block("latest")
            block, base_fee = head["number"], head.get("baseFeePerGas", 0)
            if updater is not None:
                updater.observe(i, prev_usd, usd)
            prev_usd = usd
            if paused and i >= opts.keeper_lag:
                os.kill(keeper.pid, signal.SIGCONT)
                paused = False
                log.info("keeper resumed after block %d of the crash", i)
            t0 = time.monotonic()
            waited = 0.0 if paused else wait_keeper(keeper, opts.metrics_port, block, opts.keeper_timeout)
            t1 = time.monotonic()
            below, liq, fund_usd = monitor.observe(block)
            desk.unwind(monitor.fund_positions, monitor.prices, monitor.layout, base_fee)
            desk.unwind_options(monitor, base_fee)
            timing["keeper"] += t1 - t0
            timing["monitor"] += time.monotonic() - t1
            for lst, v in ((series.block, block), (series.prices, usd), (series.below_mm, below),
                           (series.liquidations, liq), (series.fund_usd, fund_usd), (series.keeper_seconds, waited)):
                lst.append(v)
            if i % 5 == 0 or liq or i == len(steps):
                moves = " ".join(f"{a} {100 * (float(r) - 1):+.1f}%" for a, r in zip(ASSETS, rel))
                log.info("block %3d/%d  %s | below MM %3d | liquidated %3d (total %d) | fund %.3fM USD",
                         i, len(steps), moves, below, liq, sum(series.liquidations), fund_usd / 1e6)
            if i > opts.blocks and below == 0 and not monitor.breach and not paused:
                break
        mining.restore()
        for tx in list(desk.option_pending.values()):  # the desk's last orders, mined once the node mines again
            web3.eth.wait_for_transaction_receipt(tx, timeout=120)
        desk.receipts()
        stop_keeper(keeper)  # its work is done; the end state is read without it screening the last blocks
        t_end = time.monotonic()
        final = web3.eth.block_number
        on_chain = len(d.vault.events.get_sequence(series.block[0] + 1, final, "Liquidated"))
        if on_chain != sum(series.liquidations):  # the block-by-block record must be the chain's
            raise RuntimeError(f"the demo counted {sum(series.liquidations)} liquidations but the chain has "
                               f"{on_chain} Liquidated events after block {series.block[0]}")
        equity, maintenance = rt.chain.lens_health(ids + opt_ids, final, 100)
        still_below = [a for a, e, m in zip(ids + opt_ids, equity, maintenance) if e < m]
        missed = sorted(set(still_below) | set(monitor.breach))
        t0 = time.monotonic()
        positions = d.vault.events.get_sequence(d.start_block, final, "PositionUpdated")
        log.info("%d PositionUpdated events in %.1f s", len(positions), time.monotonic() - t0)
        adl = adl_reading(rt.chain, d.vault, positions, series.block[0], final, kinds)
        funding_end = funding_reading(rt.chain, positions, final, kinds,
                                      [(e["block"], e["market"]) for e in adl["deleveraged"]])
        log.info("funding and deleveraging at the end read from the chain in %.1f s", time.monotonic() - t0)
        covered, deleveraged, socialised = (sum(w[k] for w in adl["write_offs"]) / WAD
                                            for k in ("covered_by_fund", "deleveraged", "socialised"))
        opp = keeper_opportunities(opts.out / "keeper.sqlite")
        option_unwinds = desk.option_report(d.options, d.oracle, series.block[0] + 1, final)
        lat = monitor.latencies
        summary = {
            "traders": opts.traders, "scenario": opts.scenario, "seed": opts.seed, "crash_blocks": opts.blocks,
            "settle_blocks": len(series.block) - 1 - opts.blocks,
            "chain_id": chain.id, "rpc_url": rpc_url, "deployment": str(deployment),
            "breached_accounts": len(monitor.breached), "liquidated_accounts": len(monitor.liquidated),
            "liquidations": sum(series.liquidations),
            "blocks_to_liquidation_median": statistics.median(lat) if lat else 0,
            "blocks_to_liquidation_max": max(lat) if lat else 0,
            "breaches_recovered_without_liquidation": monitor.recovered,
            "missed_liquidations": len(missed), "missed_accounts": [f"{a:#x}" for a in missed],
            "insurance_fund_before": fund_before, "insurance_fund_after": series.fund_usd[-1],
            "bad_debt": covered + deleveraged + socialised, "bad_debt_covered_by_fund": covered,
            "bad_debt_deleveraged": deleveraged, "bad_debt_socialised": socialised,
            "bad_debt_recorded_before": bad_debt_before,
            "bad_debt_recorded_after": d.vault.badDebt() / WAD,
            "keeper_opportunities": opp, "margin_by_kind": by_kind,
            "options": {
                "books": len(opt_ids), "vol_spike": opts.vol_spike, "margin_by_kind": option_by_kind,
                "breached_accounts": len(monitor.breached & set(opt_ids)),
                "liquidated_accounts": len(monitor.liquidated & set(opt_ids)),
                "positions_taken_over": option_takeovers(d.options, fund, series.block[0] + 1, final,
                                                         set(option_unwinds["fill_txs"])),
                "fund_series_held": int(d.vault.optionsOf(fund)).bit_count()},
            "fund_unwind_trades": desk.unwinds,
            "fund_option_unwinds": option_unwinds,
            "funding": {"hours": opts.quiet_hours, "premium_bps": opts.premium_bps, "desk_fills": premium.fills,
                        "desk_fees": desk_fees / WAD, "by_kind": usd_by_kind(funding_before["by_kind"]),
                        "before_crash": funding_before, "at_end": funding_end},
            "adl": adl, "adl_by_market": adl_by_market(adl),
            "keeper_lag_blocks": opts.keeper_lag,
            "vol_updater": None if updater is None else {
                "raises": updater.sent, "scalers_bps_at_end": [
                    10_000 + ((int(d.params.marginConfig()[5]) >> (16 * k)) & 0xFFFF) for k in range(len(ASSETS))]},
            "fund_lowest": min(series.fund_usd), "fund_depletion": fund_before - min(series.fund_usd),
            # the model's crash is a straight move to the trough: comparable for the monotone scenarios only
            "model_p95": model_check(books, opts, fund_before) if opts.scenario in ("fast", "gap") else None,
            "saver_value": {"before": saver_before,
                            "after": int(rt.chain.call("CrossMarginVault", "settlementOf", saver, block=final))},
            "seconds": {"setup": t_quiet - t_start, "quiet": t_crash - t_quiet, "crash": t_end - t_crash,
                        "total": t_end - t_start,
                        "crash_waiting_for_keeper": timing["keeper"], "crash_mining": timing["mine"],
                        "crash_monitor": timing["monitor"]},
        }
    finally:
        mining.restore()
        if paused:
            os.kill(keeper.pid, signal.SIGCONT)
        code = stop_keeper(keeper)
        rt.indexer.conn.close()
    summary["keeper_exit_code"] = code
    summary["final_block"] = series.block[-1]
    summary["checks_failed"] = verify(summary)
    write_outputs(opts.out, summary, series, quiet)
    return summary


def usd_by_kind(by_kind: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Funding paid and received per book type, USD (from wei)."""
    return {k: {"paid": v["paid"] / WAD, "received": v["received"] / WAD, "net": (v["received"] - v["paid"]) / WAD}
            for k, v in sorted(by_kind.items())}


def adl_by_market(adl: dict) -> dict[str, dict[str, float]]:
    """Deleveraging events and what they charged, per market and side (USD)."""
    out: dict[str, dict[str, float]] = {}
    for e in adl["deleveraged"]:
        row = out.setdefault(ASSETS[e["market"]], {"events": 0, "longs_paid": 0.0, "shorts_paid": 0.0})
        row["events"] += 1
        row["longs_paid" if e["longs_pay"] else "shorts_paid"] += e["amount"] / WAD
    return out


def keeper_opportunities(db: Path) -> dict[str, int]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT status, COUNT(*) FROM opportunities GROUP BY status").fetchall())


def write_outputs(out: Path, summary: dict, series: Series, quiet: FundingSeries) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with open(out / "blocks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["block", *[f"{a}_usd" for a in ASSETS], "below_mm", "liquidations", "fund_usd", "keeper_s"])
        for row in zip(series.block, series.prices, series.below_mm, series.liquidations, series.fund_usd,
                       series.keeper_seconds):
            w.writerow([row[0], *[f"{p:.6f}" for p in row[1]], row[2], row[3], f"{row[4]:.2f}", f"{row[5]:.3f}"])
    with open(out / "funding.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["hours", *[f"{a}_rate_bps_per_hour" for a in ASSETS], *[f"{k}_usd" for k in quiet.net_usd]])
        for i, hours in enumerate(quiet.hours):
            w.writerow([f"{hours:g}", *[f"{r:.6f}" for r in quiet.rate_bps_per_hour[i]],
                        *[f"{v[i]:.2f}" for v in quiet.net_usd.values()]])
    write_chart(out / "chart.png", series, summary["scenario"], quiet)


# ---------------------------------------------------------------------------------------------- CLI
def parse_args(argv: list[str]) -> tuple[Options, str]:
    p = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Options()
    p.add_argument("--traders", type=int, default=d.traders, help=f"number of traders (default {d.traders})")
    p.add_argument("--scenario", default=d.scenario, choices=sorted(SCENARIOS),
                   help="crash shaped after which day, `gap`: every market gaps down in one block, or `fast`: -35%% "
                        "over 3 blocks with a slow keeper")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the population and the price noise")
    p.add_argument("--blocks", type=int, default=None,
                   help=f"blocks the crash takes (default {d.blocks}; fast: 3)")
    p.add_argument("--keeper-lag", type=int, default=None,
                   help="blocks the keeper is stalled from the crash's first block (default 0; fast: 5)")
    p.add_argument("--vol-updater", action=argparse.BooleanOptionalAction, default=None,
                   help="raise the volatility scalers by the cascade model's rule (default off; fast: on)")
    p.add_argument("--settle-blocks", type=int, default=d.settle_blocks,
                   help="at most this many blocks at the end prices for the keeper to finish")
    p.add_argument("--quiet-hours", type=float, default=d.quiet_hours,
                   help=f"hours of chain time before the crash, fills above the index (default {d.quiet_hours:g})")
    p.add_argument("--premium-bps", type=int, default=d.premium_bps,
                   help=f"how far above the index the quiet period's fills print (default {d.premium_bps})")
    p.add_argument("--fund-usdc", type=int, default=d.fund_usdc,
                   help=f"USDC the insurance fund starts with (default {d.fund_usdc:,}); a thin fund runs out sooner")
    p.add_argument("--option-traders", type=int, default=d.option_traders,
                   help=f"option books: covered calls, protective puts, hedged short straddles (default "
                        f"{d.option_traders}; 0: none)")
    p.add_argument("--vol-spike", type=float, default=d.vol_spike,
                   help=f"the volatility feeds at the crash's trough, times their start values (default {d.vol_spike:g})")
    p.add_argument("--network", default="xmargin-demo", help="Brownie network to run on (default xmargin-demo)")
    p.add_argument("--metrics-port", type=int, default=d.metrics_port, help="the keeper's /health and /metrics port")
    p.add_argument("--out", type=Path, default=None, help="results folder (default results/demo/<scenario>-<seed>)")
    a = p.parse_args(argv)
    for name, default in (("blocks", d.blocks), ("keeper_lag", d.keeper_lag), ("vol_updater", d.vol_updater)):
        if getattr(a, name) is None:
            setattr(a, name, SCENARIO_DEFAULTS.get(a.scenario, {}).get(name, default))
    for name, low in (("traders", 1), ("blocks", 2), ("keeper_lag", 0), ("settle_blocks", 0), ("quiet_hours", 0),
                      ("premium_bps", 0), ("fund_usdc", 0), ("option_traders", 0), ("vol_spike", 1)):
        if getattr(a, name) < low:
            p.error(f"--{name.replace('_', '-')} must be at least {low} (got {getattr(a, name)})")
    if a.premium_bps > DEFAULT_SPEC.price_band_bps:
        p.error(f"--premium-bps must be inside the venue's price band, {DEFAULT_SPEC.price_band_bps} bps "
                f"(got {a.premium_bps})")
    out = a.out or ROOT / "results" / "demo" / f"{a.scenario}-{a.seed}-{a.traders}"
    return Options(a.traders, a.scenario, a.seed, a.blocks, a.settle_blocks, d.keeper_timeout, a.metrics_port,
                   out.resolve(), a.quiet_hours, a.premium_bps, a.fund_usdc, a.keeper_lag, a.vol_updater,
                   a.option_traders, a.vol_spike), a.network


def interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    opts, network_name = parse_args(sys.argv[1:] if argv is None else argv)
    from brownie import accounts

    from scripts.deploy import brownie_network

    signal.signal(signal.SIGTERM, interrupted)  # stop the keeper and the chain on the way out
    with brownie_network(network_name, quiet=True):
        summary = run(opts, accounts[0], accounts[2])
    log.info(report(summary))
    log.info("\nresults: %s (summary.json, chart.png, blocks.csv, funding.csv, keeper.log)", opts.out)
    if summary["missed_liquidations"]:
        log.error("%d liquidations were missed: %s", summary["missed_liquidations"], summary["missed_accounts"])
    for failure in summary["checks_failed"]:
        log.error("check failed: %s", failure)
    return 1 if summary["missed_liquidations"] or summary["checks_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
