"""The keeper's transaction manager: one nonce source, EIP-1559 fees, stuck-transaction replacement, failure
classification, and every signed transaction persisted in SQLite *before* it is broadcast.

Because the signed bytes are stored first, a crash at any point loses nothing and duplicates nothing: after a
restart :meth:`TxManager.poll` finds the pending rows, re-offers the same bytes (same hash) if the node forgot them,
and reports their outcome. Replacements reuse the nonce with fees raised by at least ``fee_bump_percent`` and never
beyond ``max_cost_wei`` (the opportunity's reward), so a stuck liquidation can never cost more than it pays.
"""
from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Callable

from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from eth_utils import to_checksum_address
from web3.exceptions import TransactionNotFound, Web3RPCError

from ..chain import Rpc
from ..errors import XMarginError

log = logging.getLogger(__name__)
GWEI = 10**9


class SendError(XMarginError):
    """A transaction could not be placed; ``kind`` is one of the classes below."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def classify(message: str) -> str:
    """Class of a node's refusal: 'known', 'nonce_too_low', 'underpriced', 'funds' or 'other'."""
    m = message.lower()
    if "already known" in m or "known transaction" in m or "already imported" in m:
        return "known"
    if "nonce too low" in m or "correct nonce" in m or "nonce has already been used" in m:
        return "nonce_too_low"
    if "underpriced" in m or "fee too low" in m or "less than block base fee" in m or "fee cap" in m:
        return "underpriced"
    if "insufficient funds" in m:
        return "funds"
    return "other"


@dataclass(frozen=True)
class FeePolicy:
    max_fee_cap: int  # wei per gas
    min_priority: int  # wei per gas
    history_blocks: int = 10
    percentile: float = 60.0
    bump_percent: float = 12.5
    replace_after: float = 30.0  # seconds


@dataclass(frozen=True)
class Outcome:
    opportunity: int
    tx_hash: str
    status: str  # 'included' (status 1), 'reverted' (status 0) or 'dropped' (nonce used by another transaction)
    block: int | None = None
    gas_used: int = 0


class TxManager:
    def __init__(self, rpc: Rpc, conn: sqlite3.Connection, signer: LocalAccount, chain_id: int, policy: FeePolicy,
                 clock: Callable[[], float] = time.time) -> None:
        self.rpc, self.conn, self.signer, self.chain_id, self.policy, self.clock = (
            rpc, conn, signer, chain_id, policy, clock)
        self.address = signer.address
        self._nonce: int | None = None

    # ------------------------------------------------------------------------------------------ fees and nonces
    def fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas) from ``eth_feeHistory``: 2 x next base fee + the tip percentile,
        the tip at least ``min_priority``, the total at most ``max_fee_cap``."""
        p = self.policy
        hist = self.rpc.read(lambda w3: w3.eth.fee_history(p.history_blocks, "latest", [p.percentile]))
        next_base = int(hist["baseFeePerGas"][-1])
        tips = sorted(int(r[0]) for r in hist.get("reward", []) if r)
        tip = max(p.min_priority, tips[len(tips) // 2] if tips else 0)
        return min(p.max_fee_cap, 2 * next_base + tip), min(tip, p.max_fee_cap)

    def _chain_nonce(self, which: str = "pending") -> int:
        return self.rpc.read(lambda w3: w3.eth.get_transaction_count(self.address, which))

    def next_nonce(self) -> int:
        """The one nonce source: the larger of the node's pending count and our highest persisted nonce + 1."""
        if self._nonce is None:
            row = self.conn.execute("SELECT MAX(nonce) FROM txs WHERE keeper = ? AND status = 'pending'",
                                    (self.address,)).fetchone()
            self._nonce = max(self._chain_nonce(), (row[0] + 1) if row[0] is not None else 0)
        return self._nonce

    def resync(self) -> None:
        """Forget the cached nonce (after a reorg): the next send asks the node and the database again."""
        self._nonce = None

    def pending(self) -> list[tuple[str, int, int]]:
        """(hash, nonce, opportunity) of every transaction not yet resolved."""
        return self.conn.execute("SELECT hash, nonce, opportunity FROM txs WHERE keeper = ? AND status = 'pending' "
                                 "ORDER BY nonce", (self.address,)).fetchall()

    # ------------------------------------------------------------------------------------------ sending
    def _sign(self, tx: dict[str, Any]) -> tuple[str, str]:
        signed = self.signer.sign_transaction(tx)
        return "0x" + signed.hash.hex().removeprefix("0x"), "0x" + signed.raw_transaction.hex().removeprefix("0x")

    def _persist(self, h: str, nonce: int, opportunity: int, raw: str, max_fee: int, tip: int, gas: int,
                 max_cost: int) -> None:
        self.conn.execute("INSERT INTO txs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                          (h, self.address, nonce, opportunity, raw, max_fee, tip, gas, str(max_cost), self.clock()))

    def _set_status(self, h: str, status: str) -> None:
        self.conn.execute("UPDATE txs SET status = ? WHERE hash = ?", (status, h))

    def _broadcast(self, raw: str) -> None:
        try:
            self.rpc.send(lambda w3: w3.eth.send_raw_transaction(raw))
        except (Web3RPCError, ValueError) as e:
            kind = classify(str(e))
            if kind != "known":
                raise SendError(kind, str(e)) from None

    def send(self, opportunity: int, to: str, data: str, gas: int, max_cost_wei: int) -> str:
        """Sign, persist, broadcast. Returns the hash. Raises :class:`SendError` ('funds', 'fee_cap', 'other')."""
        refused: tuple[int, int, int] | None = None
        for attempt in range(3):
            max_fee, tip = self.fees()
            if max_fee * gas > max_cost_wei:
                max_fee = max_cost_wei // gas
                tip = min(tip, max_fee)
            nonce = self.next_nonce()
            if refused == (nonce, max_fee, tip):  # the same bytes again: refused again (and already persisted)
                raise SendError("underpriced", f"refused at maxFee {max_fee / GWEI:.2f} gwei, the most this "
                                "transaction may pay (fee cap or reward)")
            tx = {"chainId": self.chain_id, "nonce": nonce, "to": to, "data": data, "gas": gas, "value": 0,
                  "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "type": 2}
            h, raw = self._sign(tx)
            self._persist(h, nonce, opportunity, raw, max_fee, tip, gas, max_cost_wei)
            try:
                self._broadcast(raw)
            except SendError as e:
                self._set_status(h, "failed")
                if e.kind == "nonce_too_low":
                    log.warning("nonce %d too low: resyncing from the node", nonce)
                    self._nonce = None
                    continue
                if e.kind == "underpriced":
                    log.warning("fees refused (%s): re-reading the fee market", e)
                    refused = (nonce, max_fee, tip)
                    continue
                raise
            self._nonce = nonce + 1
            log.info("sent %s nonce %d opportunity %d (maxFee %.2f gwei, tip %.2f gwei, gas %d)", h, nonce,
                     opportunity, max_fee / GWEI, tip / GWEI, gas)
            return h
        raise SendError("other", "gave up after 3 attempts (nonce or fee refusals)")

    # ------------------------------------------------------------------------------------------ polling
    def poll(self) -> list[Outcome]:
        """Resolve pending transactions: receipts, nonces used elsewhere, re-broadcast of forgotten bytes and fee
        bumps of stuck transactions."""
        out: list[Outcome] = []
        by_nonce: dict[int, list[tuple[str, int]]] = {}
        for h, nonce, opp in self.pending():
            by_nonce.setdefault(nonce, []).append((h, opp))
        if not by_nonce:
            return out
        mined_nonce = self._chain_nonce("latest")
        for nonce, txs in sorted(by_nonce.items()):
            receipt = None
            for h, opp in txs:
                receipt = self._receipt(h)
                if receipt is not None:
                    status = "included" if receipt["status"] == 1 else "reverted"
                    self._set_status(h, status)
                    for other, _ in txs:
                        if other != h:
                            self._set_status(other, "replaced")
                    out.append(Outcome(opp, h, status, receipt["blockNumber"], receipt["gasUsed"]))
                    break
            if receipt is not None:
                continue
            if nonce < mined_nonce:  # the nonce went to a transaction we did not sign here
                for h, opp in txs:
                    self._set_status(h, "dropped")
                out.append(Outcome(txs[-1][1], txs[-1][0], "dropped"))
                continue
            self._keep_alive(nonce, txs)
        return out

    def _receipt(self, h: str) -> Any:
        try:
            return self.rpc.read(lambda w3: w3.eth.get_transaction_receipt(h))
        except TransactionNotFound:
            return None

    def _keep_alive(self, nonce: int, txs: list[tuple[str, int]]) -> None:
        h, opp = txs[-1]
        row = self.conn.execute("SELECT raw, max_fee, priority_fee, gas, max_cost_wei, sent_at FROM txs "
                                "WHERE hash = ?", (h,)).fetchone()
        raw, max_fee, tip, gas, max_cost, sent_at = row
        if self.clock() - sent_at < self.policy.replace_after:
            try:  # a node that restarted may have lost its mempool: offer the same bytes again (same hash)
                self.rpc.read(lambda w3: w3.eth.get_transaction(h))
            except TransactionNotFound:
                log.warning("%s unknown to the node: re-broadcasting the same bytes", h)
                try:
                    self._broadcast(raw)
                except SendError as e:
                    log.warning("re-broadcast of %s refused: %s", h, e)
            return
        bump = 1 + self.policy.bump_percent / 100
        cur_fee, cur_tip = self.fees()
        new_tip = max(-(-int(tip * bump * 1000) // 1000), cur_tip)
        new_fee = max(-(-int(max_fee * bump * 1000) // 1000), cur_fee, new_tip)
        if new_fee * gas > int(max_cost) or new_fee > self.policy.max_fee_cap:
            log.warning("%s stuck but a %.1f%% bump would exceed its cap: waiting", h, self.policy.bump_percent)
            self.conn.execute("UPDATE txs SET sent_at = ? WHERE hash = ?", (self.clock(), h))
            return
        decoded = _decode_raw(raw)
        decoded.update(maxFeePerGas=new_fee, maxPriorityFeePerGas=new_tip)
        nh, nraw = self._sign(decoded)
        self._persist(nh, nonce, opp, nraw, new_fee, new_tip, gas, int(max_cost))
        try:
            self._broadcast(nraw)
            log.warning("replaced stuck %s with %s (maxFee %.2f gwei)", h, nh, new_fee / GWEI)
        except SendError as e:
            self._set_status(nh, "failed")
            log.warning("replacement of %s refused (%s): will bump again", h, e)


def _decode_raw(raw: str) -> dict[str, Any]:
    t = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    return {"chainId": t["chainId"], "nonce": t["nonce"], "to": to_checksum_address(bytes(t["to"])), "data": "0x" +
            bytes(t["data"]).hex(), "gas": t["gas"], "value": t["value"], "maxFeePerGas": t["maxFeePerGas"],
            "maxPriorityFeePerGas": t["maxPriorityFeePerGas"], "type": 2}
