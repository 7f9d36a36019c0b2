"""The keeper loop: new block -> index -> prices -> screen -> exact check -> plan -> simulate -> profit gate -> send.

Every liquidation opportunity gets a row in ``opportunities`` that moves seen -> simulated -> sent -> included, or
ends as lost (another keeper was first: its ``Liquidated`` event is on-chain), skipped (dry run, unprofitable) or
failed (with the reason). An account with an open opportunity is not planned again until that one is resolved, so
a keeper never sends a duplicate; the chain arbitrates between keepers.

Options: accounts holding them are screened and confirmed with the option market read at the block (the indexed
series, the volatilities, the OPTION word, the block's time), and planned with option items. Before liquidating, a
small job turns positions in fixed series into cash (``vault.settleExpired``, permissionless; recorded as an
opportunity of shape ``settle-expired``): a fixed series cannot be taken over and a write-off needs none left, so an
account holding one is liquidated from the next block on, once the settlement is mined. Before that, shard 0 fixes
every series past its expiry (``OptionMarkets.fixExpiry`` with the round :func:`.expiry.find_expiry_round` finds in
the asset's price feed; an opportunity of shape ``fix-expiry`` and account 0, once per series), so the settlement
job finds it fixed at the next block. Option values move with time, so an account holding them is sent for only if
it is below MM from the head block's time to ``inclusion_seconds`` later, with a plan that fits the rule at both
(``plan_liquidation``'s ``until``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
from eth_utils import to_checksum_address
from web3.exceptions import ContractLogicError

from ..chain import Chain
from ..db import acct_int, acct_key
from ..errors import ChainUnavailable
from ..indexer import Indexer
from ..ops import Metrics
from ..margin.exact import WAD, AccountState, Layout, MarginConfig, PriceUnavailable, account_margin, settled
from ..margin.screen import Book, ScreenParams, screen
from ..margin.funding import MarketFunding
from ..margin.options import OptionMarket
from ..margin.snapshot import read_account_state, read_margin_config, read_markets, read_prices
from .expiry import FIRST_OF_PHASE, FOUND, ExpiryRound, expired_unfixed, find_expiry_round
from .gas import GasModel
from .planner import LiquidationTerms, Plan, plan_liquidation
from .txmanager import SendError, TxManager

BALANCE_EVERY = 30.0  # seconds between reads of the keeper's gas balance
log = logging.getLogger(__name__)
OPEN = ("seen", "simulated", "sent")
ZERO = "0x0000000000000000000000000000000000000000"
RACE_ERRORS = {"AccountHealthy", "BadLiquidationItem", "LiquidationEmpty", "LiquidationTooLarge",
               "LiquidationNotImproving", "BadOptionItem"}
SETTLE = "settle-expired"  # the plan shape of a settleExpired job
FIX = "fix-expiry"  # the plan shape of a fixExpiry job (account 0: a series is no account's)
JOBS = {SETTLE: "settleExpired", FIX: "fixExpiry"}
Sent = Literal["sent", "simulation failed", "dry run", "send failed"]


def _sql(v: Any) -> Any:
    """SQLite binds 64-bit integers only: wider ones (USD 1e18 amounts) are stored as text."""
    return str(v) if isinstance(v, int) and not -2**63 <= v < 2**63 else v


def shard_of(account: int, n: int) -> int:
    """The shard (0..n-1) of an account: a hash of its id, so subaccounts of one owner spread too."""
    return int.from_bytes(hashlib.blake2b(account.to_bytes(32, "big"), digest_size=8).digest(), "big") % n


@dataclass
class KeeperOptions:
    shard: tuple[int, int] = (0, 1)
    dry_run: bool = False
    min_profit_usd: float = 0.0
    cleanup_bad_debt: bool = True
    gas_token_asset: int | None = 1
    gas_token_usd: float | None = None
    gas_limit_multiplier: float = 1.25
    max_per_block: int = 50
    poll_interval: float = 1.0
    lens_batch: int = 200
    low_balance_wei: int = 5 * 10**16  # warn below this native balance (0: never)
    settle_expired: bool = True  # send settleExpired for accounts holding fixed option series
    inclusion_seconds: int = 30  # an option account's plan holds from the head's time to this many seconds later
    fix_expiry: bool = True  # shard 0: send OptionMarkets.fixExpiry for listed series past expiry, not yet fixed


@dataclass
class StepReport:
    block: int
    screened: bool = False  # False when the head had not moved (only pending transactions were polled)
    candidates: int = 0
    liquidatable: int = 0
    sent: list[int] = field(default_factory=list)  # accounts
    settled: list[int] = field(default_factory=list)  # accounts whose fixed option positions a transaction settles
    fixed: list[int] = field(default_factory=list)  # series slots a fixExpiry transaction was sent for
    outcomes: list[tuple[int, str]] = field(default_factory=list)  # (opportunity, status)


class Keeper:
    def __init__(self, chain: Chain, indexer: Indexer, txm: TxManager | None, options: KeeperOptions,
                 metrics: Metrics | None = None, clock: Callable[[], float] = time.time,
                 reconcile_every: int = 0) -> None:
        self.chain, self.indexer, self.txm, self.opt = chain, indexer, txm, options
        self.conn = indexer.conn
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.address = txm.address if txm is not None else ZERO
        self.reconcile_every = reconcile_every
        self.last_block = -1
        self.last_ok = clock()
        self.gas_model = GasModel()
        self.book: Book | None = None
        self.states: dict[int, AccountState] = {}
        self.layout: Layout | None = None
        self.markets: dict[int, MarketFunding] = {}  # each market's funding state at the last block screened
        self.option_market: OptionMarket | None = None  # series, volatilities, OPTION word, time at that block
        self._params: tuple[MarginConfig, ScreenParams] | None = None
        self._last_reconcile = -1
        self._balance_at = float("-inf")
        self._fix_tried: dict[int, int] = {}  # slot -> round id whose fixExpiry failed its simulation (or dry run)
        self._fix_noted: dict[int, tuple[str, int]] = {}  # slot -> (status, round) last logged of an unfixable series

    # ------------------------------------------------------------------------------------------ health
    def health(self) -> dict[str, Any]:
        rpc = self.chain.rpc
        stale = self.clock() - self.last_ok > max(30.0, 10 * self.opt.poll_interval)
        return {"healthy": rpc.healthy and not stale, "head": self.last_block, "rpc_down": rpc.down,
                "stalled": rpc.stalled, "seconds_since_step": round(self.clock() - self.last_ok, 1),
                "endpoint": rpc.active}

    # ------------------------------------------------------------------------------------------ loop
    def run(self, stop: threading.Event) -> None:
        log.info("keeper %s running (shard %d/%d%s)", self.address, *self.opt.shard,
                 ", dry run" if self.opt.dry_run else "")
        while not stop.is_set():
            self.step()
            stop.wait(self.opt.poll_interval)
        log.info("keeper stopped at block %d", self.last_block)

    def step(self) -> StepReport | None:
        """One iteration; never raises for RPC trouble (reports unhealthy and tries again next time)."""
        t0 = time.perf_counter()
        try:
            report = self._step()
        except ChainUnavailable as e:
            log.error("step skipped: %s", e)
            report = None
        finally:
            self.metrics.healthy.set(1 if self.health()["healthy"] else 0)
            self.metrics.step_seconds.set(time.perf_counter() - t0)
        return report

    def _step(self) -> StepReport | None:
        head = self.chain.rpc.head()
        report = StepReport(head)
        if self.txm is not None:
            for outcome in self.txm.poll():
                report.outcomes.append((outcome.opportunity, self._resolve(outcome)))
        if head == self.last_block:
            self.last_ok = self.clock()
            return report
        checkpoint = self.indexer.checkpoint
        sync = self.indexer.sync(head)
        self._refresh_market(head, sync.listing_changed)
        mine = {a for a in sync.changed if self._mine(a)}
        if mine:
            fresh = self.indexer.states(mine)
            self.states.update(fresh)
            assert self.book is not None
            self.book.update(fresh, self.layout, self._scale)
        if sync.reorg_depth:  # the fork point: the old checkpoint minus the depth rolled back
            self._reopen_after_reorg((checkpoint[0] if checkpoint else head) - sync.reorg_depth)
        self.metrics.accounts.set(len(self.states))
        if self.reconcile_every and head - self._last_reconcile >= self.reconcile_every:
            self._last_reconcile = head
            bad = self.indexer.reconcile(lens_batch=self.opt.lens_batch)
            if bad:
                self.metrics.reconcile_mismatches.inc(len(bad))
                fresh = self.indexer.states(bad)
                self.states.update(fresh)
                self.book.update(fresh, self.layout, self._scale)
        self._fix_expiries(head, report)
        self._settle_expired(head, report)
        self._liquidate(head, report)
        self._check_balance()
        self.last_block = head
        self.last_ok = self.clock()
        self.metrics.head.set(head)
        self.metrics.lag.set(max(0, self.chain.rpc.last_head - head))
        return report

    def _check_balance(self) -> None:
        """The gas balance as a metric, and a warning while it is below the configured floor (a keeper that cannot pay
        gas misses every liquidation silently otherwise). After the block's liquidations, and at most every
        ``BALANCE_EVERY`` seconds: one RPC call, never in front of a liquidation."""
        if self.txm is None or self.clock() - self._balance_at < BALANCE_EVERY:
            return
        self._balance_at = self.clock()
        wei = self.chain.rpc.read(lambda w3: w3.eth.get_balance(self.address))
        self.metrics.balance.set(wei / 1e18)
        low = wei < self.opt.low_balance_wei
        self.metrics.balance_low.set(1 if low else 0)
        if low:
            log.warning("keeper %s holds %.6f of the native token for gas, below keeper.low_balance_eth (%.6f): "
                        "top it up", self.address, wei / 1e18, self.opt.low_balance_wei / 1e18)

    def _mine(self, account: int) -> bool:
        return account != self._fund_id() and shard_of(account, self.opt.shard[1]) == self.opt.shard[0]

    def _refresh_market(self, head: int, listing_changed: bool) -> None:
        """Prices, margin words and liquidation terms at ``head``; the layout (and the book) only when the indexer
        saw a listing event."""
        at = self.chain.at(head)
        if listing_changed or self.layout is None:
            layout, prices, cfg, markets = self.indexer.market_view(head)
            self.layout = layout
            self._scale = np.array([10.0 ** -d for d in layout.collateral_decimals])
            self.book = Book(len(layout.collateral_asset))
            self.states = self.indexer.states([a for a in self.indexer.accounts() if self._mine(a)])
            self.book.update(self.states, layout, self._scale)
        else:
            prices, cfg = read_prices(at.oracle, self.layout), read_margin_config(at.params)
            markets = read_markets(at.vault, self.layout, prices)
        if self._params is None or self._params[0] != cfg:
            self._params = (cfg, ScreenParams.build(cfg, self.layout))
        self.prices, self.markets = prices, markets
        self.option_market = self.indexer.option_market(head)
        self.terms = LiquidationTerms(*(int(x) for x in at.params.liquidationConfig()), self.indexer.settlement_index)

    # ------------------------------------------------------------------------------------------ liquidation
    def _liquidate(self, head: int, report: StepReport) -> None:
        assert self.book is not None and self.layout is not None and self._params is not None
        cfg, params = self._params
        if len(self.book) == 0:
            return
        res = screen(self.book, params, np.array(self.prices, dtype=float) / WAD, self.markets, self.option_market)
        rows = res.candidates
        report.screened = True
        report.candidates = len(rows)
        self.metrics.candidates.set(len(rows))
        open_accounts = self._open_accounts()
        confirmed = []
        until = self._until()
        for r in rows:
            account = self.book.ids[r]
            state = self.states[account]
            try:
                m = account_margin(state, self.layout, self.prices, cfg, self.markets, self.option_market)
                # options gain or lose value with time: below MM too at the latest time of inclusion?
                due = m.liquidatable and (until is None or not any(state.options.values()) or account_margin(
                    state, self.layout, self.prices, cfg, self.markets, self.option_market.at(until)).liquidatable)
            except PriceUnavailable as e:  # the vault cannot value it either: nothing to do until the feed is back
                log.debug("account %#x skipped: %s", account, e)
                continue
            if due:
                confirmed.append((m.equity - m.maintenance, account, m))
            elif m.liquidatable:
                log.info("account %#x below MM at block %d but not %d s later (its options' time value): not sent",
                         account, head, self.opt.inclusion_seconds)
        report.liquidatable = len(confirmed)
        self.metrics.liquidatable.set(len(confirmed))
        sent = 0
        for _, account, m in sorted(confirmed):  # deepest first
            if account in open_accounts or sent >= self.opt.max_per_block:
                continue
            if self._attempt(account, m, head, cfg):
                report.sent.append(account)
                sent += 1

    def _until(self) -> int | None:
        """The latest block time a liquidation sent at this head is planned to be included at (None: no options)."""
        return None if self.option_market is None else self.option_market.time + self.opt.inclusion_seconds

    def _open_accounts(self) -> set[int]:
        return {acct_int(r[0]) for r in self.conn.execute(
            f"SELECT account FROM opportunities WHERE keeper = ? AND status IN ({','.join('?' * len(OPEN))})",
            (self.address, *OPEN))}

    def _settle_expired(self, head: int, report: StepReport) -> None:
        """``vault.settleExpired`` for every account of this shard (and the fund, in shard 0) holding fixed option
        series, one transaction per account; an account with one in flight is not liquidated until it is mined."""
        market = self.option_market
        if not self.opt.settle_expired or market is None:
            return
        fixed = sorted(i for i, s in market.series.items() if s.fixed_price)
        if not fixed:
            return
        fund, busy = self._fund_id(), self._open_accounts()
        for account, slots in self.indexer.holders(fixed).items():
            if account in busy or not (self._mine(account) or (account == fund and self.opt.shard[0] == 0)):
                continue
            opp = self._insert(account, head, 0, 0, {"shape": SETTLE, "items": slots}, 0)
            if self._send_job(opp, "CrossMarginVault", "settleExpired", [account, slots], head) == "sent":
                report.settled.append(account)

    def _fix_expiries(self, head: int, report: StepReport) -> None:
        """``OptionMarkets.fixExpiry`` for every listed series past its expiry at the head block and not fixed yet,
        with the first round of its asset's price feed at or after the expiry (:func:`.expiry.find_expiry_round`,
        read at the head block), one transaction per series; shard 0 only (a series is no account's). A series with
        a fix in flight is not sent again, nor one whose fix with the same round failed its simulation (or was a dry
        run). A series whose round is the first of its feed's phase cannot be fixed (the contract refuses it): it is
        logged and skipped, as one waiting for its first round at or after the expiry is."""
        market = self.option_market
        if not self.opt.fix_expiry or market is None or self.opt.shard[0] != 0:
            return
        due = expired_unfixed(market.series, market.time)
        if not due:
            return
        busy, at = self._open_fixes(), self.chain.at(head)
        found: dict[tuple[str, int], ExpiryRound | None] = {}  # one search per feed and expiry
        for slot in due:
            s = market.series[slot]
            if slot in busy:
                continue
            feed = str(at.oracle.feedOf(s.asset)[0])
            if (feed, s.expiry) not in found:
                found[(feed, s.expiry)] = self._expiry_round(slot, s.asset, at, feed, s.expiry)
            r = found[(feed, s.expiry)]
            if r is None:
                continue
            if r.status != FOUND:
                self._note_unfixable(slot, s.asset, s.expiry, r)
                continue
            if self._fix_tried.get(slot) == r.round_id:
                continue
            opp = self._insert(0, head, 0, 0, {"shape": FIX, "items": [slot], "round": r.round_id}, 0)
            outcome = self._send_job(opp, "OptionMarkets", "fixExpiry", [slot, r.round_id], head)
            if outcome == "sent":
                report.fixed.append(slot)
                log.info("series %d: fixExpiry sent with round %d (answer %d, updated %d, expiry %d)", slot,
                         r.round_id, r.answer, r.updated_at, s.expiry)
            elif outcome in ("simulation failed", "dry run"):
                self._fix_tried[slot] = r.round_id
                if outcome == "simulation failed":
                    log.warning("series %d: fixExpiry with round %d fails its simulation (opportunity %d): not sent "
                                "again with this round", slot, r.round_id, opp)

    def _expiry_round(self, slot: int, asset: int, at: Any, feed: str, expiry: int) -> ExpiryRound | None:
        """The search of ``asset``'s price feed ``feed`` at the block ``at`` is pinned to; None (logged) when it has
        no feed or its rounds cannot be read."""
        if int(feed, 16) == 0:
            log.warning("series %d cannot be fixed: asset %d has no price feed", slot, asset)
            return None
        try:
            return find_expiry_round(at.feed(feed), expiry)
        except ContractLogicError as e:
            log.warning("series %d: the rounds of asset %d's price feed %s cannot be read (%s): not fixed this block",
                        slot, asset, feed, self.chain.errors.from_exception(e))
            return None

    def _note_unfixable(self, slot: int, asset: int, expiry: int, r: ExpiryRound) -> None:
        """Log a series the keeper cannot fix (yet), once per series and outcome."""
        if self._fix_noted.get(slot) == (r.status, r.round_id):
            return
        self._fix_noted[slot] = (r.status, r.round_id)
        if r.status == FIRST_OF_PHASE:
            log.warning("series %d (asset %d, expiry %d) cannot be fixed by the keeper: the first round of the price "
                        "feed at or after the expiry, %d (phase %d, aggregator round %d, updated %d), is the first of "
                        "its phase, and fixExpiry needs the previous round of the same phase to prove it; the series "
                        "stays margined at intrinsic value at the spot until it is fixed by hand with a round of an "
                        "earlier phase that proves the expiry, if one does", slot, asset, expiry, r.round_id,
                        r.phase, r.aggregator_round, r.updated_at)
        else:
            log.info("series %d (asset %d) expired at %d: waiting for the first round of its price feed at or after "
                     "the expiry", slot, asset, expiry)

    def _open_fixes(self) -> set[int]:
        """The slots with a fixExpiry of this keeper in flight."""
        rows = self.conn.execute(f"SELECT plan FROM opportunities WHERE keeper = ? AND account = ? AND status IN "
                                 f"({','.join('?' * len(OPEN))})", (self.address, acct_key(0), *OPEN))
        return {slot for plan in (json.loads(p) for (p,) in rows if p) if plan.get("shape") == FIX
                for slot in plan["items"]}

    def _send_job(self, opp: int, name: str, fn: str, args: list[Any], head: int) -> Sent:
        """Simulate, then send ``name.fn(*args)`` (a permissionless job: no reward, the fee cap bounds its cost) for
        opportunity ``opp``, which ends failed or skipped unless sent."""
        def call(w3: Any) -> Any:
            return getattr(self.chain.contract(w3, name).functions, fn)(*args)

        try:
            try:
                self.chain.rpc.read(lambda w3: call(w3).call({"from": self.address}, "latest"))
                gas = int(int(self.chain.rpc.read(lambda w3: call(w3).estimate_gas({"from": self.address})))
                          * self.opt.gas_limit_multiplier)
            except ContractLogicError as e:
                self._close(opp, "failed", f"simulation: {self.chain.errors.from_exception(e)}", head)
                return "simulation failed"
            if self.opt.dry_run or self.txm is None:
                self._close(opp, "skipped", "dry run", head)
                return "dry run"
            try:
                data = self.chain.encode(name, fn, *args)
                h = self.txm.send(opp, self.chain.address(name), data, gas, gas * self.txm.policy.max_fee_cap)
            except SendError as e:
                self._close(opp, "failed", str(e), head)
                return "send failed"
        except ChainUnavailable as e:
            self._interrupted(opp, e, head)
            raise
        self._update(opp, "sent", tx_hash=h)
        return "sent"

    def _interrupted(self, opp: int, e: ChainUnavailable, head: int) -> bool:
        """The node went away half-way through opportunity ``opp``. An opportunity left open would block its account
        (or series) for good: close it as failed (returns True), unless a signed transaction was persisted, which
        poll() resolves (the opportunity is sent)."""
        row = self.conn.execute("SELECT hash FROM txs WHERE opportunity = ? AND status = 'pending' "
                                "ORDER BY sent_at DESC LIMIT 1", (opp,)).fetchone()
        if row is not None:
            self._update(opp, "sent", tx_hash=row[0])
            return False
        self._close(opp, "failed", f"rpc unavailable: {e}", head)
        return True

    def _fund_id(self) -> int:
        return int(self.chain.address("CrossMarginVault"), 16) << 96

    def _attempt(self, account: int, m: Any, head: int, cfg: MarginConfig) -> bool:
        state = settled(self.states[account], self.markets)  # what the vault will realise: plan on balances alone
        plan = plan_liquidation(state, self.layout, self.prices, cfg, self.terms, self.option_market, self._until())
        opp = self._record(account, head, m, plan)
        try:
            return self._pursue(opp, account, m, head, cfg, plan)
        except ChainUnavailable as e:
            if self._interrupted(opp, e, head):
                self.metrics.failed.inc()
            raise

    def _pursue(self, opp: int, account: int, m: Any, head: int, cfg: MarginConfig, plan: Plan | None) -> bool:
        if plan is None:
            self._close(opp, "failed", "no plan raises E - MM within the rule", head)
            self.metrics.failed.inc()
            return False
        try:
            reward = int(self.chain.rpc.read(lambda w3: self.chain.contract(w3, "CrossMarginVault").functions
                                             .liquidate(account, plan.as_args()).call({"from": self.address}, "latest")))
            # an account holding options costs gas by the series it holds, which the learned shapes do not see
            learned = None if self.states[account].options else self.gas_model.limit(plan.items)
            gas = learned or int(self.chain.rpc.read(
                lambda w3: self.chain.contract(w3, "CrossMarginVault").functions
                .liquidate(account, plan.as_args()).estimate_gas({"from": self.address})))
        except ContractLogicError as e:
            reason = self.chain.errors.from_exception(e)
            other = self._liquidated_by_other(account, head)
            if other or self.chain.errors.name(reason) in RACE_ERRORS and self._state_moved(account):
                self._close(opp, "lost", f"simulation: {reason}; liquidated first by {other or 'another tx'}", head)
                self.metrics.lost.inc()
            else:
                self._close(opp, "failed", f"simulation: {reason}", head)
                self.metrics.failed.inc()
            return False
        gas = int(gas * self.opt.gas_limit_multiplier)
        self._update(opp, "simulated", reward=reward)
        if self.opt.dry_run or self.txm is None:
            self._close(opp, "skipped", "dry run", head)
            return False
        max_fee, _ = self.txm.fees()
        gas_usd = self._gas_usd(gas * max_fee)
        self._update(opp, "simulated", gas_cost_usd=gas_usd)
        deficit = m.equity < 0
        profit = reward - gas_usd
        if profit < int(self.opt.min_profit_usd * WAD) and not (deficit and self.opt.cleanup_bad_debt):
            self._close(opp, "skipped", f"unprofitable: reward {reward / WAD:.4f} USD, gas up to "
                        f"{gas_usd / WAD:.4f} USD", head)
            return False
        # replacements may spend up to the reward (or the fee cap for bad-debt cleanup)
        cap = self._usd_to_wei(reward) if profit >= 0 else gas * self.txm.policy.max_fee_cap
        cap = max(cap, gas * max_fee)
        try:
            data = self.chain.encode("CrossMarginVault", "liquidate", account, plan.as_args())
            h = self.txm.send(opp, self.chain.address("CrossMarginVault"), data, gas, cap)
        except SendError as e:
            self._close(opp, "failed", str(e), head)
            self.metrics.failed.inc()
            return False
        self._update(opp, "sent", tx_hash=h)
        self.metrics.sent.inc()
        return True

    def _gas_price_usd(self) -> int:
        if self.opt.gas_token_usd is not None:
            return int(self.opt.gas_token_usd * WAD)
        return int(self.prices[self.opt.gas_token_asset])

    def _gas_usd(self, wei: int) -> int:
        return wei * self._gas_price_usd() // WAD

    def _usd_to_wei(self, usd: int) -> int:
        price = self._gas_price_usd()
        return usd * WAD // price if price else 0

    def _liquidated_by_other(self, account: int, since: int) -> str | None:
        vault = self.chain.address("CrossMarginVault")
        topic0 = "0x" + self.indexer.t_liquidated.hex()
        logs = self.chain.rpc.read(lambda w3: w3.eth.get_logs({
            "address": vault, "fromBlock": since, "toBlock": "latest",
            "topics": [topic0, "0x" + account.to_bytes(32, "big").hex()]}))
        for lg in logs:
            keeper = to_checksum_address(bytes(lg["topics"][2])[12:])
            if keeper != self.address:
                return keeper
        return None

    def _state_moved(self, account: int) -> bool:
        at = self.chain.at("latest")
        return read_account_state(at.vault, account, at.options).canonical() != self.states[account].canonical()

    # ------------------------------------------------------------------------------------------ outcomes
    def _resolve(self, outcome: Any) -> str:
        row = self.conn.execute("SELECT account, block_seen, plan FROM opportunities WHERE id = ?",
                                (outcome.opportunity,)).fetchone()
        account, seen = acct_int(row[0]), row[1]
        plan = json.loads(row[2]) if row[2] else {}
        items = plan.get("items", [])
        if plan.get("shape") in JOBS:
            status = "included" if outcome.status == "included" else "failed"
            reason = f"{JOBS[plan['shape']]} {outcome.status}"
            if outcome.status == "reverted":
                reason += f": {self._revert_reason(outcome.tx_hash, outcome.block)}"
            self._close(outcome.opportunity, status, reason, outcome.block)
            return status
        if outcome.status == "included":
            if not plan.get("options"):  # see _pursue: option accounts are estimated by the node
                self.gas_model.observe(items, outcome.gas_used)
            reward = self._reward_in(outcome.tx_hash)
            self._close(outcome.opportunity, "included", f"gas used {outcome.gas_used}", outcome.block,
                        reward=reward)
            self.metrics.included.inc()
            return "included"
        other = self._liquidated_by_other(account, seen)
        if other:
            self._close(outcome.opportunity, "lost", f"{outcome.status}: liquidated first by {other}", outcome.block)
            self.metrics.lost.inc()
            return "lost"
        reason = outcome.status
        if outcome.status == "reverted":
            self.gas_model.forget(items)  # perhaps out of gas: estimate this shape again
            reason = f"reverted: {self._revert_reason(outcome.tx_hash, outcome.block)}"
        self._close(outcome.opportunity, "failed", reason, outcome.block)
        self.metrics.failed.inc()
        return "failed"

    def _reward_in(self, tx_hash: str) -> int:
        receipt = self.chain.rpc.read(lambda w3: w3.eth.get_transaction_receipt(tx_hash))
        for lg in receipt["logs"]:
            if bytes(lg["topics"][0]) == self.indexer.t_liquidated:
                return int.from_bytes(bytes(lg["data"])[64:96], "big")
        return 0

    def _revert_reason(self, tx_hash: str, block: int | None) -> str:
        """The error of a mined revert, replayed with ``eth_call`` on the state after its block: the transactions
        after it in the block (the next prices, say) are applied, so the error and its figures may differ from those
        at inclusion, and a revert that depended on what changed within the block may not come back at all."""
        tx = self.chain.rpc.read(lambda w3: w3.eth.get_transaction(tx_hash))
        try:
            self.chain.rpc.read(lambda w3: w3.eth.call({"from": tx["from"], "to": tx["to"], "data": tx["input"]},
                                                       block))
        except ContractLogicError as e:
            return f"{self.chain.errors.from_exception(e)} (replayed after block {block})"
        return f"unknown (does not revert when replayed after block {block})"

    def _reopen_after_reorg(self, fork: int) -> None:
        """Opportunities concluded in blocks that no longer exist are re-checked from scratch, except our own
        liquidations that were reorged out: their signed transactions go back to pending (poll() re-offers the same
        bytes, same nonce, or sees the nonce used), so the account is not planned a second time meanwhile. The
        cached nonce is dropped: the nonces of reorged-out transactions are free again."""
        if self.txm is not None:
            rows = self.conn.execute(
                "SELECT o.id, t.hash FROM opportunities o JOIN txs t ON t.opportunity = o.id WHERE o.keeper = ? "
                "AND o.status = 'included' AND o.block_done > ? AND t.status = 'included'", (self.address, fork))
            for opp, h in rows.fetchall():
                if self.txm._receipt(h) is None:
                    self.conn.execute("UPDATE txs SET status = 'pending', sent_at = ? WHERE hash = ?",
                                      (self.clock(), h))
                    self.conn.execute("UPDATE opportunities SET status = 'sent', block_done = NULL, reason = "
                                      "'reorged out: transaction re-offered' WHERE id = ?", (opp,))
            self.txm.resync()
        n = self.conn.execute("UPDATE opportunities SET status = 'failed', reason = 'reorged out' "
                              "WHERE keeper = ? AND block_done > ? AND status != 'sent'",
                              (self.address, fork)).rowcount
        if n:
            log.warning("%d opportunities concluded after block %d were reorged out", n, fork)

    # ------------------------------------------------------------------------------------------ records
    def _record(self, account: int, block: int, m: Any, plan: Plan | None) -> int:
        return self._insert(account, block, m.equity, m.maintenance, {
            "shape": plan.shape, "items": plan.as_args(), "options": len(self.states[account].options)}
            if plan else None, plan.taken if plan else 0)

    def _insert(self, account: int, block: int, equity: int, maintenance: int, plan: dict[str, Any] | None,
                taken: int) -> int:
        now = self.clock()
        cur = self.conn.execute(
            "INSERT INTO opportunities (account, keeper, status, block_seen, equity, maintenance, plan, taken, "
            "created, updated) VALUES (?, ?, 'seen', ?, ?, ?, ?, ?, ?, ?)",
            (acct_key(account), self.address, block, str(equity), str(maintenance),
             json.dumps(plan) if plan else "", str(taken), now, now))
        log.info("opportunity %d: account %#x equity %.2f MM %.2f plan %s", cur.lastrowid, account, equity / WAD,
                 maintenance / WAD, plan["shape"] if plan else None)
        return int(cur.lastrowid)

    def _update(self, opp: int, status: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE opportunities SET status = ?, updated = ?{', ' + sets if sets else ''} "
                          "WHERE id = ?", (status, self.clock(), *(_sql(v) for v in fields.values()), opp))

    def _close(self, opp: int, status: str, reason: str, block: int | None, **fields: Any) -> None:
        self._update(opp, status, reason=reason, block_done=block, **fields)
        log.info("opportunity %d %s: %s", opp, status, reason)
