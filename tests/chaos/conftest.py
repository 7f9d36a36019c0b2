"""Keeper chaos: the bundled keeper runs its real loop (a thread, as `xmargin keeper run` does) against the suite's
Ganache through a fault-injecting TCP proxy, while a block producer mines a block every ``BLOCK_TIME`` seconds (a
chain does not stop when the keeper is blind). Each test injects one fault, crashes the market, ends the fault and
measures:

- ``missed``: accounts still under water per AccountLens when the test ends (must be 0);
- ``duplicates``: keeper transactions mined beyond one per opportunity, or mined without a record in the keeper's
  database (legitimate replacements share a nonce, so at most one of them can be mined; must be 0);
- ``recovery_s``: seconds from the end of the fault to the keeper being healthy with no account left under water.

Every test adds its entry to ``scripts/bench/results/chaos.json`` (entries of faults not run are kept).
"""
from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from brownie import web3

from tests.offchain.conftest import BookBuilder, book, deployment_file, keeper_wallet, make_keeper, new_wallet, \
    rpc_url, seeder, settings_for  # noqa: F401 (fixtures)
from tests.offchain.test_keeper import crash, under_water

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "scripts" / "bench" / "results" / "chaos.json"
BLOCK_TIME = 0.5
RECOVERY_LIMIT = 30.0  # seconds: a keeper that needs longer has not recovered


class BlockProducer:
    """Mines an empty block every ``interval`` seconds on the node (straight, not through the proxy)."""

    def __init__(self, url: str, interval: float = BLOCK_TIME) -> None:
        self.url, self.interval = url, interval
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.paused.is_set():
                requests.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []},
                              timeout=30)

    def __enter__(self) -> "BlockProducer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


class KeeperLoop:
    """``keeper.run`` in a thread; an exception that escapes the loop is kept (the keeper process would die)."""

    def __init__(self, keeper) -> None:
        self.keeper = keeper
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.keeper.run(self.stop)
        except BaseException as e:  # noqa: BLE001 (reported by the test)
            self.error = e

    def __enter__(self) -> "KeeperLoop":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and self.error is None

    def synced(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.error is None, f"the keeper loop died: {self.error!r}"
            if self.keeper.health()["healthy"] and self.keeper.last_block >= web3.eth.block_number - 1:
                return
            time.sleep(0.05)
        raise AssertionError("the keeper never caught up with the chain")


def wait_recovered(loop: KeeperLoop, protocol, ids, limit: float = RECOVERY_LIMIT) -> float | None:
    """Seconds until the keeper is healthy and no account is under water; None if not within ``limit``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        assert loop.error is None, f"the keeper loop died: {loop.error!r}"
        if loop.keeper.health()["healthy"] and not under_water(protocol, ids):
            return round(time.monotonic() - t0, 2)
        time.sleep(0.05)
    return None


def _h(x) -> str:
    h = x.hex() if hasattr(x, "hex") else str(x)
    return h.lower().removeprefix("0x")


def keeper_transactions(address: str, since: int) -> list[tuple[str, int]]:
    """(hash, status) of every transaction from ``address`` mined after block ``since`` on the current chain."""
    out = []
    for n in range(since + 1, web3.eth.block_number + 1):
        for tx in web3.eth.get_block(n, full_transactions=True)["transactions"]:
            if tx["from"].lower() == address.lower():
                out.append((_h(tx["hash"]), web3.eth.get_transaction_receipt(tx["hash"])["status"]))
    return out


def duplicates(keeper, since: int, external: set[str] = frozenset()) -> int:
    """Keeper transactions mined beyond one per opportunity, plus mined ones the keeper has no record of."""
    rows = {_h(h): opp for h, opp in keeper.conn.execute("SELECT hash, opportunity FROM txs WHERE keeper = ?",
                                                          (keeper.address,))}
    mined = [h for h, _ in keeper_transactions(keeper.address, since) if h not in external]
    unknown = sum(1 for h in mined if h not in rows)
    per_opportunity = Counter(rows[h] for h in mined if h in rows)
    return unknown + sum(c - 1 for c in per_opportunity.values())


class ChaosResults(dict):
    """Entries by fault, written to chaos.json as soon as each is recorded (merged with entries of faults not run)."""

    def __setitem__(self, fault: str, entry: dict) -> None:
        super().__setitem__(fault, entry)
        old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        by_fault = {e["fault"]: e for e in old.get("faults", [])}
        by_fault[fault] = entry
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({
            "node": web3.provider.make_request("web3_clientVersion", [])["result"],
            "block_time_s": BLOCK_TIME,
            "recovery_limit_s": RECOVERY_LIMIT,
            "written_by": "pytest tests/chaos (each test records its own entry)",
            "faults": [by_fault[k] for k in sorted(by_fault)],
        }, indent=1) + "\n")


@pytest.fixture(scope="session")
def chaos_results():
    return ChaosResults()


@pytest.fixture
def scenario(book, protocol, deployer):
    """scenario(seed) -> account ids: 4 accounts deep enough under water after ``crash()`` to be closed in one call
    and 3 that need partial liquidations (close factor), all long."""

    def _make(seed: int):
        rng = random.Random(seed)
        return book.random_book(4, rng, leverage=(3.0, 4.0), direction=1) + \
            book.random_book(3, rng, leverage=(2.0, 2.4), direction=1)

    return _make


@pytest.fixture
def producer():
    with BlockProducer(rpc_url()) as p:
        yield p


def crash_all(protocol, deployer, factor=0.7):
    crash(protocol, deployer, factor)


__all__ = ["BookBuilder", "KeeperLoop", "BlockProducer", "wait_recovered", "duplicates", "keeper_transactions",
           "crash_all", "under_water"]
