"""Rebuilds every account's state from the vault's and the option registry's post-state snapshot events into SQLite.

The vault emits the full new value of whatever it changes (``PositionUpdated``, ``CollateralUpdated``,
``SettlementUpdated``), and so does the option registry (``OptionPositionUpdated``; a series' ``SeriesListed`` and
``ExpiryFixed``), so the latest event of each key *is* the state: no arithmetic is replayed. A positive
settlement balance is stored (and emitted) as shares of the vault's claims pool; ``SettlementIndexUpdated`` carries
the index that turns shares into USD, kept like any other key, and :meth:`Indexer.states` returns USD. An index event
with total shares 0 means the pool restarted (a loss took every claim): every positive balance stored before it is
void, so it zeroes them. The indexer

- fetches ``eth_getLogs`` in chunks that halve when a node rejects a range (and grow back after successes);
- checkpoints the last indexed block number and hash; before each sync it compares the checkpoint with the chain and,
  on a mismatch (a reorg), walks back over the recorded hashes to the fork point, deletes what came after and
  recomputes the affected keys from the events that remain;
- resumes from the checkpoint after a restart;
- reconciles a rotating sample of accounts against the contracts (raw state, option positions included, and
  ``AccountLens`` margin) and the option series against the registry, and repairs any difference it finds (counted
  in ``mismatches``).
"""
from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3.exceptions import Web3RPCError

from .chain import Chain
from .db import acct_int, acct_key, get_meta, set_meta
from .errors import ConfigError
from .margin.exact import INDEX_ONE, AccountState, Layout, MarginConfig, account_margin, usd_of_shares
from .margin.funding import MarketFunding
from .margin.options import OptionMarket, Series
from .margin.snapshot import (MarketView, read_account_state, read_layout, read_margin_config, read_markets,
                              read_option_market, read_prices, read_series)

log = logging.getLogger(__name__)


def _topic(abi: list, name: str) -> bytes:
    return event_abi_to_log_topic(next(i for i in abi if i.get("type") == "event" and i["name"] == name))


def _int256(word: bytes) -> int:
    v = int.from_bytes(word, "big")
    return v - (1 << 256) if v >> 255 else v


@dataclass
class SyncResult:
    head: int
    changed: set[int] = field(default_factory=set)  # accounts whose state changed (or was rolled back)
    reorg_depth: int = 0  # blocks rolled back (0: no reorg)
    logs: int = 0
    # a market or collateral was listed (the layout must be read again), or the settlement index moved (every
    # positive settlement balance changed value): read everything again
    listing_changed: bool = False


class Indexer:
    def __init__(self, chain: Chain, conn: sqlite3.Connection, *, log_chunk: int = 2000, reorg_window: int = 64,
                 reconcile_every: int = 0, reconcile_sample: int = 200) -> None:
        self.chain, self.conn = chain, conn
        self.max_chunk = self.chunk = log_chunk
        self.reorg_window = reorg_window
        self.reconcile_every, self.reconcile_sample = reconcile_every, reconcile_sample
        self.mismatches = 0
        abi = chain.abis["CrossMarginVault"]
        self.t_position = _topic(abi, "PositionUpdated")
        self.t_collateral = _topic(abi, "CollateralUpdated")
        self.t_settlement = _topic(abi, "SettlementUpdated")
        self.t_index = _topic(abi, "SettlementIndexUpdated")
        self.t_liquidated = _topic(abi, "Liquidated")
        self.t_funding = _topic(abi, "FundingUpdated")
        self.t_adl = _topic(abi, "Deleveraged")
        self.t_listed = (_topic(abi, "CollateralListed"), _topic(abi, "MarketListed"))
        oabi = chain.abis["OptionMarkets"]
        self.t_series = _topic(oabi, "SeriesListed")
        self.t_fixed = _topic(oabi, "ExpiryFixed")
        self.t_option = _topic(oabi, "OptionPositionUpdated")
        self.t_option_trade = _topic(oabi, "OptionTrade")
        self._token_ids: dict[str, int] = {}
        self._check_identity()

    def _check_identity(self) -> None:
        vault = self.chain.address("CrossMarginVault")
        stored = get_meta(self.conn, "vault")
        if stored is None:
            set_meta(self.conn, "vault", vault)
            set_meta(self.conn, "chain_id", str(self.chain.chain_id))
        elif stored != vault or get_meta(self.conn, "chain_id") != str(self.chain.chain_id):
            raise ConfigError(f"indexer.database holds chain {get_meta(self.conn, 'chain_id')} vault {stored}, not "
                              f"chain {self.chain.chain_id} vault {vault}: use another database file")

    # ------------------------------------------------------------------------------------------ checkpoint
    @property
    def checkpoint(self) -> tuple[int, str] | None:
        n = get_meta(self.conn, "checkpoint")
        if n is None:
            return None
        h = self.conn.execute("SELECT hash FROM blocks WHERE number = ?", (int(n),)).fetchone()
        return int(n), h[0]

    def _hash(self, number: int) -> str:
        return _norm(self.chain.rpc.read(lambda w3: w3.eth.get_block(number)["hash"].hex()))

    # ------------------------------------------------------------------------------------------ sync
    def sync(self, head: int | None = None) -> SyncResult:
        """Index up to ``head`` (default: the chain's head), handling a reorg first."""
        head = self.chain.rpc.head() if head is None else head
        res = SyncResult(head)
        index = self.settlement_index
        cp = self.checkpoint
        if cp is not None and cp[0] <= head and self._hash(cp[0]) != cp[1]:
            res.reorg_depth = self._rollback(res.changed)
            cp = self.checkpoint
        elif cp is not None and cp[0] > head:  # the node went back (a revert on a dev chain): also a reorg
            res.reorg_depth = self._rollback(res.changed)
            cp = self.checkpoint
        res.listing_changed = self.settlement_index != index  # a reorg took back a socialised loss
        start = (cp[0] + 1) if cp is not None else self.chain.deployment.start_block
        while start <= head:
            end = min(start + self.chunk - 1, head)
            got = self._fetch(start, end)
            if got is None:
                continue  # chunk shrank or the chain moved under us: try again
            logs, end_hash = got
            with self.conn:
                self.conn.execute("BEGIN")
                changed, listed = self._apply(logs)
                res.changed |= changed
                res.listing_changed |= listed
                self._record_block(end, end_hash)
                set_meta(self.conn, "checkpoint", str(end))
                self._prune(end)
            res.logs += len(logs)
            start = end + 1
            if self.chunk < self.max_chunk:
                self.chunk = min(self.max_chunk, self.chunk * 2)
        return res

    def _fetch(self, start: int, end: int) -> tuple[list, str] | None:
        emitters = [self.chain.address("CrossMarginVault"), self.chain.address("OptionMarkets")]
        before = self._hash(end)
        try:
            logs = self.chain.rpc.read(lambda w3: w3.eth.get_logs({"address": emitters, "fromBlock": start,
                                                                    "toBlock": end}))
        except (Web3RPCError, ValueError) as e:
            if self.chunk == 1:
                raise
            self.chunk = max(1, (end - start + 1) // 2)
            log.warning("getLogs %d-%d rejected (%s): chunk now %d blocks", start, end, e, self.chunk)
            return None
        if self._hash(end) != before:
            log.warning("chain moved under getLogs %d-%d: refetching", start, end)
            return None
        return logs, before

    def _record_block(self, number: int, block_hash: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO blocks (number, hash) VALUES (?, ?)", (number, _norm(block_hash)))

    def _prune(self, head: int) -> None:
        # keep the newest `reorg_window` recorded hashes; anything deeper is final for our purposes
        self.conn.execute("DELETE FROM blocks WHERE number NOT IN (SELECT number FROM blocks ORDER BY number DESC "
                          "LIMIT ?)", (self.reorg_window,))

    # ------------------------------------------------------------------------------------------ events
    def _collateral_id(self, token: str) -> int:
        if token not in self._token_ids:
            vault = self.chain.at("latest").vault
            self._token_ids = {to_checksum_address(vault.collateralInfo(j)[0]): j
                               for j in range(vault.numCollaterals())}
        return self._token_ids[token]

    def _apply(self, logs: Iterable) -> tuple[set[int], bool]:
        """Store ``logs``; returns the accounts whose state changed and whether anything was listed."""
        changed: set[int] = set()
        listed = False
        for lg in logs:
            topics = lg["topics"]
            t0 = bytes(topics[0])
            data = bytes(lg["data"])
            bn, li = lg["blockNumber"], lg["logIndex"]
            if t0 in (self.t_position, self.t_collateral, self.t_settlement):
                account = int.from_bytes(bytes(topics[1]), "big")
                c = 0
                if t0 == self.t_position:
                    kind, key = "position", int.from_bytes(bytes(topics[2]), "big")
                    a, b, c = _int256(data[:32]), _int256(data[32:64]), _int256(data[64:96])
                elif t0 == self.t_collateral:
                    token = to_checksum_address(bytes(topics[2])[12:])
                    kind, key, a, b = "collateral", self._collateral_id(token), int.from_bytes(data[:32], "big"), 0
                else:
                    kind, key, a, b = "settlement", 0, _int256(data[:32]), 0
                self.conn.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                  (bn, li, kind, acct_key(account), key, str(a), str(b), str(c)))
                self._set_state(kind, account, key, a, b, c)
                self._record_block(bn, lg["blockHash"].hex())
                changed.add(account)
            elif t0 == self.t_liquidated:
                account = int.from_bytes(bytes(topics[1]), "big")
                keeper = to_checksum_address(bytes(topics[2])[12:])
                taken, penalty, reward = (int.from_bytes(data[i:i + 32], "big") for i in (0, 32, 64))
                self.conn.execute("INSERT OR REPLACE INTO liquidations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                  (bn, li, lg["transactionHash"].hex(), acct_key(account), keeper, str(taken),
                                   str(penalty), str(reward)))
            elif t0 == self.t_index:
                index, shares = int.from_bytes(data[:32], "big"), int.from_bytes(data[32:64], "big")
                self.conn.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                  (bn, li, "index", acct_key(0), 0, str(index), str(shares), "0"))
                self._set_state("index", 0, 0, index, shares)
                if shares == 0:  # the pool restarted: every claim stored before is void
                    changed |= self._void_claims()
                self._record_block(bn, lg["blockHash"].hex())
                listed = True
            elif t0 == self.t_funding:
                market = int.from_bytes(bytes(topics[1]), "big")
                words = [_int256(data[i:i + 32]) for i in range(0, 6 * 32, 32)]  # long, short, premium, weight, carry, at
                encoded = ",".join(str(w) for w in (words[0], words[1], words[5], words[2], words[3], words[4]))
                self.conn.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                  (bn, li, "funding", acct_key(0), market, encoded, "0", "0"))
                self._set_state("funding", 0, market, encoded, 0)
                self._record_block(bn, lg["blockHash"].hex())
            elif t0 == self.t_adl:
                account, market = (int.from_bytes(bytes(topics[i]), "big") for i in (1, 2))
                longs_pay, amount, shift = (int.from_bytes(data[i:i + 32], "big") for i in (0, 32, 64))
                self.conn.execute("INSERT OR REPLACE INTO deleveraging VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  (bn, li, acct_key(account), market, longs_pay, str(amount), str(shift)))
            elif t0 in self.t_listed:
                self._token_ids = {}  # reload the token -> id map on next use
                listed = True
            elif t0 == self.t_option:
                account, slot = (int.from_bytes(bytes(topics[i]), "big") for i in (1, 2))
                size = _int256(data[:32])
                self.conn.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                  (bn, li, "option", acct_key(account), slot, str(size), "0", "0"))
                self._set_state("option", account, slot, size, 0)
                self._record_block(bn, lg["blockHash"].hex())
                changed.add(account)
            elif t0 in (self.t_series, self.t_fixed):
                slot = int.from_bytes(bytes(topics[1]), "big")
                if t0 == self.t_series:
                    asset, is_call, strike, expiry = (int.from_bytes(data[i:i + 32], "big") for i in range(0, 128, 32))
                    s = Series(asset, bool(is_call), strike, expiry)
                else:
                    listed_ = self.series().get(slot)
                    if listed_ is None:  # listed before the deployment's start block: ask the registry
                        listed_ = read_series(self.chain.at(bn).options, [slot])[slot]
                    s = Series(listed_.asset, listed_.is_call, listed_.strike, listed_.expiry,
                               int.from_bytes(data[:32], "big"))
                encoded = _encode_series(s)
                self.conn.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                  (bn, li, "series", acct_key(0), slot, encoded, "0", "0"))
                self._set_state("series", 0, slot, encoded, 0)
                self._record_block(bn, lg["blockHash"].hex())
            elif t0 == self.t_option_trade:
                buyer, seller, slot = (int.from_bytes(bytes(topics[i]), "big") for i in (1, 2, 3))
                size, price, mark = (int.from_bytes(data[i:i + 32], "big") for i in (0, 32, 64))
                self.conn.execute("INSERT OR REPLACE INTO option_trades VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                  (bn, li, acct_key(buyer), acct_key(seller), slot, str(size), str(price), str(mark)))
        return changed, listed

    def _set_state(self, kind: str, account: int, key: int, a: int | str, b: int, c: int = 0) -> None:
        k = acct_key(account)
        if kind == "position":
            if a == 0:
                self.conn.execute("DELETE FROM positions WHERE account = ? AND market = ?", (k, key))
            else:
                self.conn.execute("INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?)",
                                  (k, key, str(a), str(b), str(c)))
        elif kind == "funding":
            if a == 0:  # rolled back to before the market's first touch
                self.conn.execute("DELETE FROM funding WHERE market = ?", (key,))
            else:
                self.conn.execute("INSERT OR REPLACE INTO funding VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  (key, *str(a).split(",")))
        elif kind == "collateral":
            if a == 0:
                self.conn.execute("DELETE FROM collateral WHERE account = ? AND cid = ?", (k, key))
            else:
                self.conn.execute("INSERT OR REPLACE INTO collateral VALUES (?, ?, ?)", (k, key, str(a)))
        elif kind == "option":
            if a == 0:
                self.conn.execute("DELETE FROM option_positions WHERE account = ? AND slot = ?", (k, key))
            else:
                self.conn.execute("INSERT OR REPLACE INTO option_positions VALUES (?, ?, ?)", (k, key, str(a)))
        elif kind == "series":
            if a == 0:  # rolled back to before the slot's first listing
                self.conn.execute("DELETE FROM option_series WHERE slot = ?", (key,))
            else:
                asset, is_call, strike, expiry, fixed = str(a).split(",")
                self.conn.execute("INSERT OR REPLACE INTO option_series VALUES (?, ?, ?, ?, ?, ?)",
                                  (key, int(asset), int(is_call), strike, int(expiry), fixed))
        elif kind == "index":
            set_meta(self.conn, "settlement_index", str(a))
        else:
            self.conn.execute("INSERT OR REPLACE INTO settlement VALUES (?, ?)", (k, str(a)))

    def _void_claims(self) -> set[int]:
        voided = [acct_int(k) for (k,) in self.conn.execute(
            "SELECT account FROM settlement WHERE balance NOT LIKE '-%' AND balance != '0'")]
        self.conn.execute("UPDATE settlement SET balance = '0' WHERE balance NOT LIKE '-%'")
        return set(voided)

    def _replay_settlement(self, account: str) -> None:
        """Recomputes one account's stored balance from the events kept: its latest ``SettlementUpdated``, void
        (0) if positive and a pool restart came after it."""
        row = self.conn.execute("SELECT block, log_index, a FROM events WHERE kind = 'settlement' AND account = ? "
                                "ORDER BY block DESC, log_index DESC LIMIT 1", (account,)).fetchone()
        if row is None:
            self.conn.execute("DELETE FROM settlement WHERE account = ?", (account,))
            return
        block, log_index, balance = row
        if int(balance) > 0 and self.conn.execute(
                "SELECT 1 FROM events WHERE kind = 'index' AND b = '0' AND (block > ? OR (block = ? AND log_index > ?))"
                " LIMIT 1", (block, block, log_index)).fetchone():
            balance = "0"
        self.conn.execute("INSERT OR REPLACE INTO settlement VALUES (?, ?)", (account, balance))

    @property
    def settlement_index(self) -> int:
        """The vault's settlement index at the checkpoint (USD 1e18 per 1e18 shares)."""
        return int(get_meta(self.conn, "settlement_index") or INDEX_ONE)

    # ------------------------------------------------------------------------------------------ reorgs
    def _rollback(self, changed: set[int]) -> int:
        checkpoint = self.checkpoint
        assert checkpoint is not None
        ancestor = None
        for number, block_hash in self.conn.execute("SELECT number, hash FROM blocks ORDER BY number DESC").fetchall():
            try:
                same = self._hash(number) == block_hash
            except Exception:  # the block no longer exists on this chain
                same = False
            if same:
                ancestor = number
                break
        if ancestor is None:
            ancestor = self.chain.deployment.start_block - 1
            log.error("reorg deeper than the %d recorded blocks: re-indexing from block %d", self.reorg_window,
                      ancestor + 1)
        with self.conn:
            self.conn.execute("BEGIN")
            keys = self.conn.execute("SELECT DISTINCT kind, account, key FROM events WHERE block > ?",
                                     (ancestor,)).fetchall()
            if any(kind == "index" for kind, _, _ in keys):  # a restart may be undone: every claim is recomputed
                keys += [("settlement", a, 0) for (a,) in self.conn.execute(
                    "SELECT DISTINCT account FROM events WHERE kind = 'settlement'")]
                keys = list(dict.fromkeys(keys))
            self.conn.execute("DELETE FROM events WHERE block > ?", (ancestor,))
            self.conn.execute("DELETE FROM liquidations WHERE block > ?", (ancestor,))
            self.conn.execute("DELETE FROM deleveraging WHERE block > ?", (ancestor,))
            self.conn.execute("DELETE FROM option_trades WHERE block > ?", (ancestor,))
            self.conn.execute("DELETE FROM blocks WHERE number > ?", (ancestor,))
            for kind, account, key in keys:
                row = self.conn.execute(
                    "SELECT a, b, c FROM events WHERE kind = ? AND account = ? AND key = ? "
                    "ORDER BY block DESC, log_index DESC LIMIT 1", (kind, account, key)).fetchone()
                if kind in ("funding", "series"):
                    self._set_state(kind, 0, key, row[0] if row else 0, 0)
                    continue
                a, b, c = (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)
                if kind == "settlement":
                    self._replay_settlement(account)
                elif kind == "index" and row is None:
                    self.conn.execute("DELETE FROM meta WHERE key = 'settlement_index'")
                else:
                    self._set_state(kind, acct_int(account), key, a, b, c)
                if kind != "index":
                    changed.add(acct_int(account))
            if ancestor >= self.chain.deployment.start_block:
                self._record_block(ancestor, self._hash(ancestor))
                set_meta(self.conn, "checkpoint", str(ancestor))
            else:
                self.conn.execute("DELETE FROM meta WHERE key = 'checkpoint'")
        depth = checkpoint[0] - ancestor
        log.warning("reorg: rolled back %d blocks to %d (%d keys recomputed)", depth, ancestor, len(keys))
        return depth

    # ------------------------------------------------------------------------------------------ reads
    def accounts(self) -> list[int]:
        rows = self.conn.execute("SELECT account FROM settlement UNION SELECT account FROM positions "
                                 "UNION SELECT account FROM collateral UNION SELECT account FROM option_positions"
                                 ).fetchall()
        return sorted(acct_int(r[0]) for r in rows)

    def states(self, accounts: Iterable[int] | None = None) -> dict[int, AccountState]:
        """Indexed state of ``accounts`` (default: all)."""
        if accounts is None:
            out: dict[int, AccountState] = {}
            self._load(out, "", ())
            return out
        keys = [acct_key(a) for a in accounts]
        out = {acct_int(k): AccountState() for k in keys}
        for i in range(0, len(keys), 500):  # only the rows asked for (the keeper asks every block)
            part = keys[i:i + 500]
            self._load(out, f" WHERE account IN ({','.join('?' * len(part))})", part)
        return out

    def _load(self, out: dict[int, AccountState], where: str, args: Sequence[str]) -> None:
        index = self.settlement_index
        for k, bal in self.conn.execute("SELECT account, balance FROM settlement" + where, args):
            out.setdefault(acct_int(k), AccountState()).settlement = usd_of_shares(int(bal), index)
        for k, m, size, on, snap in self.conn.execute(
                "SELECT account, market, size, open_notional, funding FROM positions" + where, args):
            state = out.setdefault(acct_int(k), AccountState())
            state.positions[m] = (int(size), int(on))
            state.funding[m] = int(snap)
        for k, cid, bal in self.conn.execute("SELECT account, cid, balance FROM collateral" + where, args):
            out.setdefault(acct_int(k), AccountState()).collateral[cid] = int(bal)
        for k, slot, size in self.conn.execute("SELECT account, slot, size FROM option_positions" + where, args):
            out.setdefault(acct_int(k), AccountState()).options[slot] = int(size)

    def holders(self, slots: Iterable[int]) -> dict[int, list[int]]:
        """The accounts holding a position in any of ``slots``, each with the slots it holds of them."""
        slots = list(slots)
        out: dict[int, list[int]] = {}
        for k, slot in self.conn.execute(f"SELECT account, slot FROM option_positions WHERE slot IN "
                                         f"({','.join('?' * len(slots))}) ORDER BY account, slot", slots):
            out.setdefault(acct_int(k), []).append(slot)
        return out

    def series(self) -> dict[int, Series]:
        """Every listed option series by slot, as of the checkpoint (rebuilt from events alone)."""
        return {slot: Series(asset, bool(is_call), int(strike), expiry, int(fixed)) for
                slot, asset, is_call, strike, expiry, fixed in self.conn.execute(
                    "SELECT slot, asset, is_call, strike, expiry, fixed_price FROM option_series")}

    def option_trades(self, limit: int) -> list[tuple[int, int, int, int, int, int, int]]:
        """The latest ``OptionTrade`` events indexed, newest first: (block, buyer, seller, slot, size, price, mark)."""
        return [(b, acct_int(buyer), acct_int(seller), slot, int(size), int(price), int(mark)) for
                b, buyer, seller, slot, size, price, mark in self.conn.execute(
                    "SELECT block, buyer, seller, slot, size, price, mark FROM option_trades "
                    "ORDER BY block DESC, log_index DESC LIMIT ?", (limit,))]

    # ------------------------------------------------------------------------------------------ reconciliation
    def market_view(self, block: int) -> MarketView:
        """Layout, oracle prices, margin words and every market's funding state at ``block`` (one consistent view)."""
        at = self.chain.at(block)
        layout = read_layout(at.vault)
        prices = read_prices(at.oracle, layout)
        return MarketView(layout, prices, read_margin_config(at.params), read_markets(at.vault, layout, prices))

    def option_market(self, block: int) -> OptionMarket | None:
        """What option values depend on at ``block``: the indexed series, the volatilities as a liquidation or view
        uses them, the OPTION word and the block's timestamp (None while no series was ever listed: no account can
        hold an option)."""
        series = self.series()
        if not series:
            return None
        at = self.chain.at(block)
        return read_option_market(at.options, at.oracle, at.params, self.chain.timestamp(block), series)

    def funding_states(self) -> dict[int, MarketFunding]:
        """Each market's funding state as of its last ``FundingUpdated`` (rebuilt from events alone; advance it to
        a time with ``offchain.margin.funding.advance``)."""
        return {m: MarketFunding(int(lo), int(sh), at, prem, w, carry) for m, lo, sh, at, prem, w, carry in
                self.conn.execute("SELECT market, long_index, short_index, updated_at, premium, weight, carry "
                                  "FROM funding")}

    def deleveraging(self) -> list[tuple[int, int, int, int, bool, int, int]]:
        """Every ``Deleveraged`` event indexed: (block, log index, account, market, longs pay, amount, shift)."""
        return [(b, li, acct_int(a), m, bool(lp), int(am), int(sh)) for b, li, a, m, lp, am, sh in self.conn.execute(
            "SELECT block, log_index, account, market, longs_pay, amount, shift FROM deleveraging "
            "ORDER BY block, log_index")]

    def reconcile(self, accounts: list[int] | None = None, lens_batch: int = 200) -> list[int]:
        """Compare indexed state and mirror margin with the contracts at the checkpoint; repair and return mismatches.

        Without ``accounts``, a rotating sample of ``reconcile_sample`` accounts is checked."""
        cp = self.checkpoint
        if cp is None:
            return []
        block = cp[0]
        if accounts is None:
            everyone = self.accounts()
            if not everyone:
                return []
            offset = int(get_meta(self.conn, "reconcile_offset") or 0) % len(everyone)
            accounts = (everyone[offset:] + everyone[:offset])[: self.reconcile_sample]
            set_meta(self.conn, "reconcile_offset", str(offset + len(accounts)))
        self._reconcile_series(block)
        states = self.states(accounts)
        layout, prices, cfg, markets = self.market_view(block)
        options = self.option_market(block)
        equity, maintenance = self.chain.lens_health(accounts, block, lens_batch)
        bad = []
        at = self.chain.at(block)
        for a, e, m in zip(accounts, equity, maintenance):
            chain_state = read_account_state(at.vault, a, at.options)
            same = chain_state.canonical() == states[a].canonical()
            if same:
                mine = account_margin(states[a], layout, prices, cfg, markets, options)
                same = (mine.equity, mine.maintenance) == (e, m)
            if not same:
                bad.append(a)
                self._repair(a, chain_state)
        if bad:
            self.mismatches += len(bad)
            log.error("reconciliation at block %d: %d of %d accounts differed from the chain and were repaired",
                      block, len(bad), len(accounts))
        return bad

    def _reconcile_series(self, block: int) -> None:
        """Compare the indexed option series with the registry's at ``block``; repair and count a difference."""
        chain_series = read_series(self.chain.at(block).options)
        if chain_series == self.series():
            return
        self.mismatches += 1
        log.error("reconciliation at block %d: the indexed option series differed from the registry and were "
                  "repaired", block)
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM option_series")
            for slot, s in chain_series.items():
                self._set_state("series", 0, slot, _encode_series(s), 0)

    def _repair(self, account: int, state: AccountState) -> None:
        k = acct_key(account)
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM positions WHERE account = ?", (k,))
            self.conn.execute("DELETE FROM collateral WHERE account = ?", (k,))
            self.conn.execute("DELETE FROM option_positions WHERE account = ?", (k,))
            stored = int(self.chain.at(self.checkpoint[0]).vault.storedSettlementOf(account))
            self.conn.execute("INSERT OR REPLACE INTO settlement VALUES (?, ?)", (k, str(stored)))
            for m, (size, on) in state.positions.items():
                self._set_state("position", account, m, size, on, state.funding.get(m, 0))
            for cid, bal in state.collateral.items():
                self._set_state("collateral", account, cid, bal, 0)
            for slot, size in state.options.items():
                self._set_state("option", account, slot, size, 0)


def _encode_series(s: Series) -> str:
    return f"{s.asset},{int(s.is_call)},{s.strike},{s.expiry},{s.fixed_price}"


def _norm(h: str) -> str:
    h = h.lower()
    return h if h.startswith("0x") else "0x" + h

