"""The SQLite store shared by the indexer and the keeper. Plain SQL, so a server database can replace it.

Integers wider than 64 bits (account ids, sizes, balances) are stored as TEXT: account ids as 64 hex digits (so
text order is numeric order), signed amounts as decimal strings.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from .errors import ConfigError

# Schema version 1 (``PRAGMA user_version``); its statements are idempotent, so a database written before versions
# were recorded (user_version 0 with these tables) is brought to version 1 by running them again.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- block hashes of the checkpoint and of every block that carried a vault event, to find a reorg's fork point
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
-- every post-state snapshot event of the vault: kind 'position' (key = market, a = size, b = open notional),
-- 'collateral' (key = collateral id, a = balance), 'settlement' (a = balance)
CREATE TABLE IF NOT EXISTS events (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL, kind TEXT NOT NULL, account TEXT NOT NULL,
    key INTEGER NOT NULL, a TEXT NOT NULL, b TEXT NOT NULL DEFAULT '0', PRIMARY KEY (block, log_index));
CREATE INDEX IF NOT EXISTS events_by_key ON events (kind, account, key, block, log_index);
-- current state, derived from the latest event of each key
CREATE TABLE IF NOT EXISTS positions (
    account TEXT NOT NULL, market INTEGER NOT NULL, size TEXT NOT NULL, open_notional TEXT NOT NULL,
    PRIMARY KEY (account, market));
CREATE TABLE IF NOT EXISTS collateral (
    account TEXT NOT NULL, cid INTEGER NOT NULL, balance TEXT NOT NULL, PRIMARY KEY (account, cid));
CREATE TABLE IF NOT EXISTS settlement (account TEXT PRIMARY KEY, balance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS liquidations (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL, tx_hash TEXT NOT NULL, account TEXT NOT NULL,
    keeper TEXT NOT NULL, taken TEXT NOT NULL, penalty TEXT NOT NULL, reward TEXT NOT NULL,
    PRIMARY KEY (block, log_index));
CREATE INDEX IF NOT EXISTS liquidations_by_account ON liquidations (account, block);
-- keeper: one row per liquidation opportunity, seen -> simulated -> sent -> included | lost | skipped | failed
CREATE TABLE IF NOT EXISTS opportunities (
    id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, keeper TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '', block_seen INTEGER NOT NULL, block_done INTEGER, equity TEXT NOT NULL,
    maintenance TEXT NOT NULL, plan TEXT NOT NULL DEFAULT '', taken TEXT NOT NULL DEFAULT '0',
    reward TEXT NOT NULL DEFAULT '0', gas_cost_usd TEXT NOT NULL DEFAULT '0', tx_hash TEXT,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS opportunities_open ON opportunities (keeper, status);
-- keeper: every signed transaction (replacements share a nonce); 'pending' rows survive a restart
CREATE TABLE IF NOT EXISTS txs (
    hash TEXT PRIMARY KEY, keeper TEXT NOT NULL, nonce INTEGER NOT NULL, opportunity INTEGER NOT NULL,
    raw TEXT NOT NULL, max_fee INTEGER NOT NULL, priority_fee INTEGER NOT NULL, gas INTEGER NOT NULL,
    max_cost_wei TEXT NOT NULL, sent_at REAL NOT NULL, status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS txs_pending ON txs (keeper, status, nonce);
"""


# Ordered migrations: MIGRATIONS[i] takes a database from version i to version i + 1. A new version appends a
# script (ALTER TABLE, CREATE ...); never edit a released one.
MIGRATIONS: tuple[str, ...] = (SCHEMA, """
-- version 2: funding and deleveraging. A position event's c is the funding index the position stored; 'funding'
-- events (account 0, key = market) hold a market's whole funding state in a: "long,short,updatedAt,premium,weight,carry"
ALTER TABLE events ADD COLUMN c TEXT NOT NULL DEFAULT '0';
ALTER TABLE positions ADD COLUMN funding TEXT NOT NULL DEFAULT '0';
CREATE TABLE IF NOT EXISTS funding (
    market INTEGER PRIMARY KEY, long_index TEXT NOT NULL, short_index TEXT NOT NULL, updated_at INTEGER NOT NULL,
    premium INTEGER NOT NULL, weight INTEGER NOT NULL, carry INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deleveraging (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL, account TEXT NOT NULL, market INTEGER NOT NULL,
    longs_pay INTEGER NOT NULL, amount TEXT NOT NULL, shift TEXT NOT NULL, PRIMARY KEY (block, log_index));
""", """
-- version 3: options (IOptionMarkets events). 'series' events (account 0, key = slot) hold a series' whole state in
-- a: "asset,isCall,strike,expiry,fixedPrice"; 'option' events (key = slot) an account's size in a. Earlier versions
-- did not fetch the option registry's logs: the checkpoint is dropped so the next sync indexes from the start.
CREATE TABLE IF NOT EXISTS option_series (
    slot INTEGER PRIMARY KEY, asset INTEGER NOT NULL, is_call INTEGER NOT NULL, strike TEXT NOT NULL,
    expiry INTEGER NOT NULL, fixed_price TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS option_positions (
    account TEXT NOT NULL, slot INTEGER NOT NULL, size TEXT NOT NULL, PRIMARY KEY (account, slot));
CREATE TABLE IF NOT EXISTS option_trades (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL, buyer TEXT NOT NULL, seller TEXT NOT NULL,
    slot INTEGER NOT NULL, size TEXT NOT NULL, price TEXT NOT NULL, mark TEXT NOT NULL, PRIMARY KEY (block, log_index));
DELETE FROM meta WHERE key = 'checkpoint';
DELETE FROM blocks;
""")
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path | str) -> sqlite3.Connection:
    """Open (and create, or migrate to :data:`SCHEMA_VERSION`) the database; WAL so a CLI reader never blocks the
    keeper. A path that cannot be opened, or a database written by a newer xmargin, is a :class:`ConfigError`."""
    try:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except (OSError, sqlite3.Error) as e:
        raise ConfigError(f"indexer.database: cannot open {path} ({e}): choose a writable path") from None
    if version > SCHEMA_VERSION:
        conn.close()
        raise ConfigError(f"indexer.database: {path} has schema version {version}, newer than this xmargin's "
                          f"{SCHEMA_VERSION}: upgrade xmargin, or use another database file")
    for v in range(version, SCHEMA_VERSION):
        conn.executescript(f"BEGIN;\n{MIGRATIONS[v]}\nPRAGMA user_version = {v + 1};\nCOMMIT;")
    return conn


def acct_key(account: int) -> str:
    return f"{account:064x}"


def acct_int(key: str) -> int:
    return int(key, 16)


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (key, value))
