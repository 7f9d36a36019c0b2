"""The keeper loop: new block -> index -> prices -> screen -> exact check -> plan -> simulate -> profit gate -> send.

Every liquidation opportunity gets a row in ``opportunities`` that moves seen -> simulated -> sent -> included, or
ends as lost (another keeper was first: its ``Liquidated`` event is on-chain), skipped (dry run, unprofitable) or
failed (with the reason). An account with an open opportunity is not planned again until that one is resolved, so
a keeper never sends a duplicate; the chain arbitrates between keepers.

Options: accounts holding them are screened and confirmed with the option market read at the block (the indexed
series, the volatilities, the OPTION word, the block's time), and planned with option items. Before liquidating, a
small job turns positions in fixed series into cash (``vault.settleExpired``, permissionless; recorded as an
opportunity of shape ``settle-expired``): a fixed series cannot be taken over and a write-off needs none left, so an
account holding one is liquidated from the next block on, once the settlement is mined.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

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


@dataclass
class StepReport:
    block: int
    screened: bool = False  # False when the head had not moved (only pending transactions were polled)
    candidates: int = 0
    liquidatable: int = 0
    sent: list[int] = field(default_factory=list)  # accounts
    settled: list[int] = field(default_factory=list)  # accounts whose fixed option positions a transaction settles
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
        for r in rows:
            account = self.book.ids[r]
            try:
                m = account_margin(self.states[account], self.layout, self.prices, cfg, self.markets,
                                   self.option_market)
            except PriceUnavailable as e:  # the vault cannot value it either: nothing to do until the feed is back
                log.debug("account %#x skipped: %s", account, e)
                continue
            if m.liquidatable:
                confirmed.append((m.equity - m.maintenance, account, m))
        report.liquidatable = len(confirmed)
        self.metrics.liquidatable.set(len(confirmed))
        sent = 0
        for _, account, m in sorted(confirmed):  # deepest first
            if account in open_accounts or sent >= self.opt.max_per_block:
                continue
            if self._attempt(account, m, head, cfg):
                report.sent.append(account)
                sent += 1

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
            try:
                if self._send_settle(opp, account, slots, head):
                    report.settled.append(account)
            except ChainUnavailable as e:
                self._close(opp, "failed", f"rpc unavailable: {e}", head)
                raise

    def _send_settle(self, opp: int, account: int, slots: list[int], head: int) -> bool:
        def fn(w3: Any) -> Any:
            return self.chain.contract(w3, "CrossMarginVault").functions.settleExpired(account, slots)

        try:
            self.chain.rpc.read(lambda w3: fn(w3).call({"from": self.address}, "latest"))
            gas = int(int(self.chain.rpc.read(lambda w3: fn(w3).estimate_gas({"from": self.address})))
                      * self.opt.gas_limit_multiplier)
        except ContractLogicError as e:
            self._close(opp, "failed", f"simulation: {self.chain.errors.from_exception(e)}", head)
            return False
        if self.opt.dry_run or self.txm is None:
            self._close(opp, "skipped", "dry run", head)
            return False
        try:
            data = self.chain.encode("CrossMarginVault", "settleExpired", account, slots)
            h = self.txm.send(opp, self.chain.address("CrossMarginVault"), data, gas,
                              gas * self.txm.policy.max_fee_cap)
        except SendError as e:
            self._close(opp, "failed", str(e), head)
            return False
        self._update(opp, "sent", tx_hash=h)
        return True

    def _fund_id(self) -> int:
        return int(self.chain.address("CrossMarginVault"), 16) << 96

    def _attempt(self, account: int, m: Any, head: int, cfg: MarginConfig) -> bool:
        state = settled(self.states[account], self.markets)  # what the vault will realise: plan on balances alone
        plan = plan_liquidation(state, self.layout, self.prices, cfg, self.terms, self.option_market)
        opp = self._record(account, head, m, plan)
        try:
            return self._pursue(opp, account, m, head, cfg, plan)
        except ChainUnavailable as e:
            # The node went away half-way. An opportunity left open would block the account for good (it is not
            # planned again while open): close it, unless a signed transaction was persisted, which poll() resolves.
            row = self.conn.execute("SELECT hash FROM txs WHERE opportunity = ? AND status = 'pending' "
                                    "ORDER BY sent_at DESC LIMIT 1", (opp,)).fetchone()
            if row is not None:
                self._update(opp, "sent", tx_hash=row[0])
            else:
                self._close(opp, "failed", f"rpc unavailable: {e}", head)
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
        if plan.get("shape") == SETTLE:
            status = "included" if outcome.status == "included" else "failed"
            self._close(outcome.opportunity, status, f"settleExpired {outcome.status}", outcome.block)
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
        tx = self.chain.rpc.read(lambda w3: w3.eth.get_transaction(tx_hash))
        try:
            self.chain.rpc.read(lambda w3: w3.eth.call({"from": tx["from"], "to": tx["to"], "data": tx["input"]},
                                                       block))
        except ContractLogicError as e:
            return self.chain.errors.from_exception(e)
        return "unknown (does not revert when replayed)"

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
