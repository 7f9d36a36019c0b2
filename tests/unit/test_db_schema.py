"""The SQLite schema is versioned (PRAGMA user_version) and migrated in order; a database the code cannot read is
refused with one line, never used."""
import sqlite3

import pytest

from offchain.db import MIGRATIONS, SCHEMA_VERSION, connect
from offchain.errors import ConfigError


def _version(path):
    with sqlite3.connect(path) as c:
        return c.execute("PRAGMA user_version").fetchone()[0]


def test_new_database_gets_the_current_version(tmp_path):
    conn = connect(tmp_path / "new.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "events", "positions", "collateral", "settlement", "opportunities", "txs"} <= tables


def test_database_from_before_versions_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as c:  # what an earlier xmargin wrote: the tables, user_version 0
        c.executescript(MIGRATIONS[0])
        c.execute("INSERT INTO meta (key, value) VALUES ('vault', '0xabc')")
        c.execute("INSERT INTO meta (key, value) VALUES ('checkpoint', '123')")
        c.execute("INSERT INTO settlement (account, balance) VALUES ('01', '5')")
    assert _version(path) == 0
    conn = connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'vault'").fetchone()[0] == "0xabc"
    assert conn.execute("SELECT balance FROM settlement WHERE account = '01'").fetchone()[0] == "5"
    # version 3 indexes the option registry's events, which earlier versions never fetched: the next sync starts
    # again from the deployment's first block (idempotent: every event is a snapshot)
    assert conn.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone() is None
    conn.close()
    assert _version(path) == SCHEMA_VERSION
    connect(path).close()  # opening again changes nothing
    assert _version(path) == SCHEMA_VERSION


def test_database_of_a_newer_xmargin_is_refused(tmp_path):
    path = tmp_path / "newer.sqlite"
    with sqlite3.connect(path) as c:
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigError, match=rf"schema version {SCHEMA_VERSION + 1}, newer than .* upgrade xmargin"):
        connect(path)
    assert _version(path) == SCHEMA_VERSION + 1  # untouched


def test_unwritable_path_names_the_setting(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match=r"^indexer.database: cannot open .*choose a writable path"):
        connect(blocker / "db.sqlite")
