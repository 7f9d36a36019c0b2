"""Shared fixtures: a full local deployment on Ganache, funded traders and trading helpers."""
from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import brownie
from brownie import TestVenue, accounts, chain, web3
from brownie.exceptions import VirtualMachineError

from offchain.orders import Order, sign_order
from tests.fixture_spec import FIXTURE_SPEC
from offchain.margin.snapshot import read_account_state as read_state
from offchain.margin.snapshot import read_layout, read_margin_config, read_prices
from scripts.deploy import deploy_local, set_price

ROOT = Path(__file__).resolve().parents[1]
WAD = 10**18
USDC = 10**6
_nonces = itertools.count(1)


@pytest.fixture(scope="session")
def deployer():
    return accounts[0]


@pytest.fixture(scope="session")
def keeper():
    return accounts[1]


@pytest.fixture(scope="module")
def protocol(deployer):
    return deploy_local(deployer, FIXTURE_SPEC)


@pytest.fixture(scope="module")
def vault(protocol):
    return protocol.vault


@pytest.fixture(scope="module")
def test_venue(protocol, deployer):
    venue = TestVenue.deploy(protocol.vault, {"from": deployer})
    protocol.vault.setVenue(venue, True, {"from": deployer})
    return venue


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    """Every test starts from the module's deployment (snapshot/revert on the node)."""


class Trader:
    """A trader: a local key (no gas needed: deposits are funded by the deployer, orders are signed)."""

    def __init__(self, vault, sub: int = 0):
        self.wallet = accounts.add()
        self.vault = vault
        self.sub = sub

    @property
    def id(self) -> int:
        return (int(self.wallet.address, 16) << 96) | self.sub

    def account(self, sub: int) -> int:
        return (int(self.wallet.address, 16) << 96) | sub


@pytest.fixture
def make_trader(protocol):
    return lambda sub=0: Trader(protocol.vault, sub)


@pytest.fixture
def fund(protocol, deployer):
    """fund(account_id, token, amount): mint `amount` (token units) to the deployer and deposit it."""

    def _fund(account_id: int, token, amount: int):
        token.mint(deployer, amount, {"from": deployer})
        token.approve(protocol.vault, amount, {"from": deployer})
        return protocol.vault.deposit(account_id, token, amount, {"from": deployer})

    return _fund


@pytest.fixture
def sign(protocol):
    """sign(order, wallet) -> signature for the deployed venue."""

    def _sign(order: Order, wallet) -> bytes:
        return sign_order(order, wallet.private_key, chain.id, protocol.venue.address)

    return _sign


@pytest.fixture
def order(protocol):
    """order(account, market, is_buy, size, price, expiry=None, nonce=None) -> Order."""

    def _order(account, market, is_buy, size, price, expiry=None, nonce=None):
        return Order(
            account, market, is_buy, int(size), int(price),
            expiry if expiry is not None else chain.time() + 3600,
            nonce if nonce is not None else next(_nonces),
        )

    return _order


@pytest.fixture
def oracle_price(protocol):
    return lambda asset: protocol.oracle.price(asset)


@pytest.fixture
def move_price(protocol, deployer):
    """move_price(asset, usd): push a new price to the asset's Chainlink mock feed."""
    return lambda asset, usd: set_price(protocol.feeds[asset], usd, deployer)


@pytest.fixture
def mirror(protocol):
    """Reads an account's raw state, the layout, prices and config from the chain, for the Python margin model."""

    def _read(account_id: int):
        layout = read_layout(protocol.vault)
        return (
            read_state(protocol.vault, account_id),
            layout,
            read_prices(protocol.oracle, layout),
            read_margin_config(protocol.params),
        )

    return _read

def err(name: str, *args) -> str:
    """The revert message Brownie reports for custom error `name(args)`: use with ``brownie.reverts(err(...))``.

    Addresses are lower-case hex, bytes/bytes32 print as Python bytes literals (pad names to 32 bytes with
    ``b32("name")``), integers in decimal.
    """

    def fmt(a) -> str:
        if hasattr(a, "address"):
            a = a.address
        if isinstance(a, str) and a.startswith("0x") and len(a) == 42:
            return a.lower()
        if isinstance(a, (bytes, bytearray)):
            return repr(bytes(a))
        return str(a)

    return f"{name}: " + ", ".join(fmt(a) for a in args)


def b32(text: str) -> bytes:
    """A short string as a right-padded bytes32 (how Solidity stores `bytes32 name = "text"`)."""
    return text.encode().ljust(32, b"\0")


NOW = object()  # placeholder for block.timestamp of the reverting transaction (or of the latest block for a call)


def _mined(txid) -> bool:
    return bool(txid) and len(txid) > 2 and int(txid, 16) != 0


@contextmanager
def reverts_at(name: str, *args):
    """Exact custom-error match where an argument is ``NOW``: the block timestamp the failing code saw (the block of
    the mined, reverted transaction, or the latest block for a call: Ganache's eth_call runs on the latest block)."""
    try:
        yield
    except VirtualMachineError as e:
        if _mined(e.txid):
            ts = web3.eth.get_block(web3.eth.get_transaction_receipt(e.txid)["blockNumber"])["timestamp"]
        else:
            ts = chain[-1].timestamp
        expected = err(name, *(ts if a is NOW else a for a in args))
        assert e.revert_msg == expected, f"revert {e.revert_msg!r}, expected {expected!r}"
    else:
        raise AssertionError(f"did not revert (expected {name})")


def assert_reverts(expected: str, fn, *args) -> None:
    """`fn(*args)` reverts with exactly `expected`, both as a call (the revert data decoded by Brownie) and as a mined
    transaction. The transaction is sent without Brownie's post-mortem trace (Ganache 7 reports custom-error data in a
    field Brownie does not read, so it would replay the whole margin computation step by step, which costs seconds
    per revert); the exact error is checked on the call against the same state."""
    with brownie.reverts(expected):
        fn.call(*args)
    saved = web3._supports_traces
    web3._supports_traces = False
    try:
        with brownie.reverts():
            fn(*args)
    finally:
        web3._supports_traces = saved


# ---------------------------------------------------------------------------------------------- Anvil
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def anvil(tmp_path):
    """An Anvil node on a free port, and a Brownie HOME where the network `anvil-test` points at it."""
    exe = shutil.which("anvil", path=str(ROOT / "node_modules" / ".bin"))
    assert exe, "anvil is installed by `make install` (npm package @foundry-rs/anvil)"
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--hardfork", "shanghai", "--gas-limit", "30000000",
                             "--accounts", "10", "--silent"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    home = tmp_path / "home"
    shutil.copytree(Path(os.environ["HOME"]) / ".brownie", home / ".brownie",
                    ignore=shutil.ignore_patterns("accounts", "packages"))
    env = {**os.environ, "HOME": str(home), "XMARGIN_BROWNIE_HOME": str(home), "PYTHONPATH": str(ROOT)}
    brownie_cli = [str(Path(sys.executable).with_name("brownie"))]
    subprocess.run(brownie_cli + ["networks", "add", "Development", "anvil-test", "cmd=anvil", f"port={port}",
                                  "host=http://127.0.0.1", "evm_version=shanghai", "accounts=10"],
                   env=env, cwd=ROOT, check=True, capture_output=True)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield url, env
    proc.terminate()
    proc.wait(timeout=10)
