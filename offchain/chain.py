"""Chain access: RPC endpoints with retries, failover and stall detection; contract handles from the Brownie
build artifacts and ``deployments/<chain-id>.json``; reads pinned to one block; custom-error decoding.

Only reads are retried (they are safe to repeat). Sending a signed transaction is idempotent by hash, so
:meth:`Rpc.send` may offer the same bytes to the next endpoint; it never signs anything itself.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import requests
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from eth_utils.abi import collapse_if_tuple
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError
from web3.providers.rpc import HTTPProvider

from .errors import ChainUnavailable, DeploymentError

log = logging.getLogger(__name__)
T = TypeVar("T")

# A response cut mid-body (the connection closed before Content-Length bytes arrived) surfaces as
# ChunkedEncodingError: transient like a dropped connection, not a reason for the caller to crash.
TRANSIENT = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.HTTPError,
             requests.exceptions.ChunkedEncodingError, ConnectionError, TimeoutError)


class Rpc:
    """Several JSON-RPC endpoints, one active at a time.

    ``read(fn)`` runs ``fn(web3)`` on the active endpoint, retrying transport failures with exponential backoff,
    then moves to the next endpoint; it raises :class:`ChainUnavailable` when every endpoint failed. ``head()``
    tracks the newest block and flags a stall when the head has not moved for ``stall_seconds``; a stalled
    endpoint is left for one that is ahead. ``healthy`` is false while endpoints fail or the head is stalled.
    """

    def __init__(self, urls: Sequence[str], *, timeout: float = 10.0, retries: int = 3, backoff: float = 0.25,
                 stall_seconds: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, on_error: Callable[[str], None] | None = None) -> None:
        self.urls = list(urls)
        self._w3 = [Web3(HTTPProvider(u, request_kwargs={"timeout": timeout}, exception_retry_configuration=None))
                    for u in self.urls]
        self.active = 0
        self.retries, self.backoff, self.stall_seconds = retries, backoff, stall_seconds
        self.clock, self.sleep = clock, sleep
        self.on_error = on_error or (lambda url: None)
        self.last_head = -1
        self.last_advance = clock()
        self.down = False
        self.stalled = False
        self.errors = 0

    @property
    def w3(self) -> Web3:
        return self._w3[self.active]

    @property
    def healthy(self) -> bool:
        return not self.down and not self.stalled

    def _failed(self, i: int, err: BaseException) -> None:
        self.errors += 1
        self.on_error(self.urls[i])
        log.warning("rpc %s failed: %s", _redact(self.urls[i]), type(err).__name__)

    def _order(self) -> list[int]:
        n = len(self._w3)
        return [(self.active + k) % n for k in range(n)]

    def read(self, fn: Callable[[Web3], T]) -> T:
        """``fn(web3)`` with retries and failover (for calls that are safe to repeat)."""
        for i in self._order():
            delay = self.backoff
            for attempt in range(self.retries + 1):
                try:
                    out = fn(self._w3[i])
                except TRANSIENT as e:
                    self._failed(i, e)
                    if attempt < self.retries:
                        self.sleep(delay)
                        delay *= 2
                    continue
                if i != self.active:
                    log.warning("rpc failover to %s", _redact(self.urls[i]))
                    self.active = i
                self.down = False
                return out
        self.down = True
        raise ChainUnavailable(f"no RPC endpoint answered ({', '.join(_redact(u) for u in self.urls)})")

    def send(self, fn: Callable[[Web3], T]) -> T:
        """``fn(web3)`` once per endpoint, for sending already-signed transactions."""
        for i in self._order():
            try:
                out = fn(self._w3[i])
            except TRANSIENT as e:
                self._failed(i, e)
                continue
            self.down = False
            return out
        self.down = True
        raise ChainUnavailable("no RPC endpoint accepted the transaction")

    def head(self) -> int:
        """The newest block number; updates the stall flag and leaves a stalled endpoint for one that is ahead."""
        number = self.read(lambda w3: w3.eth.block_number)
        now = self.clock()
        if number > self.last_head:
            self.last_head, self.last_advance = number, now
            self.stalled = False
        elif self.stall_seconds and now - self.last_advance > self.stall_seconds:
            if not self.stalled:
                log.error("node stalled: head %d has not moved for %.0f s", number, now - self.last_advance)
            self.stalled = True
            better = self._ahead_of(number)
            if better is not None:
                self.active = better
                return self.head()
        return number

    def _ahead_of(self, number: int) -> int | None:
        for i in self._order()[1:]:
            try:
                if self._w3[i].eth.block_number > number:
                    log.warning("rpc failover to %s (ahead of the stalled endpoint)", _redact(self.urls[i]))
                    return i
            except TRANSIENT as e:
                self._failed(i, e)
        return None


def _redact(url: str) -> str:
    """An RPC URL without credentials or API keys (anything after the host)."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}"


# ------------------------------------------------------------------------------------------------ contracts
CONTRACTS = ("CrossMarginVault", "AccountLens", "OracleRouter", "RiskParameters", "OrderSettlement", "OptionMarkets")


@dataclass(frozen=True)
class Deployment:
    """Addresses from ``deployments/<chain-id>.json`` (written by ``scripts/deploy.py``)."""

    chain_id: int
    addresses: dict[str, str]
    start_block: int
    assets: tuple[str, ...]
    settlement_token: str | None = None
    collaterals: tuple[str, ...] = ()  # token address by collateral id
    feeds: tuple[str, ...] = ()  # Chainlink feed address by asset index

    @classmethod
    def load(cls, path: Path) -> "Deployment":
        if not path.is_file():
            raise DeploymentError(f"deployment file {path} not found: deploy first (`make deploy`) "
                                  "or set chain.deployment")
        try:
            raw = json.loads(path.read_text())
            addresses = {name: to_checksum_address(raw[name]) for name in CONTRACTS}
            token = raw.get("settlementToken")
            return cls(int(raw["chainId"]), addresses, int(raw.get("startBlock", 0)), tuple(raw.get("assets", ())),
                       to_checksum_address(token) if token else None,
                       tuple(to_checksum_address(a) for a in raw.get("collaterals", ())),
                       tuple(to_checksum_address(a) for a in raw.get("feeds", ())))
        except (KeyError, ValueError, TypeError) as e:
            raise DeploymentError(f"deployment file {path} is incomplete or malformed ({e!r})") from None


def package_abi(name: str) -> list:
    """An ABI shipped with the package (``offchain/abi/<name>.json``)."""
    p = resources.files("offchain.abi") / f"{name}.json"
    if not p.is_file():
        raise DeploymentError(f"ABI {name}.json missing from the installed package: reinstall xmargin")
    return json.loads(p.read_text())


# A contract whose functions run in several artifacts: the vault runs VaultExtension's by DELEGATECALL from its
# fallback, so its ABI (ICrossMarginVault's functions, plus the library errors it may revert with) is the union.
ABI_PARTS = {"CrossMarginVault": ("CrossMarginVault", "VaultExtension")}


def merge_abis(*abis: list) -> list:
    """The union of ABIs, each item once (by type, name and input types)."""
    seen, out = set(), []
    for abi in abis:
        for item in abi:
            key = (item["type"], item.get("name"), tuple(i["type"] for i in item.get("inputs", ())))
            if key in seen:
                continue
            seen.add(key)
            out.append(item)
    return out


def build_abi(build_dir: Path, name: str) -> list:
    """The ABI of contract ``name`` from Brownie build artifacts in ``build_dir`` (merged per :data:`ABI_PARTS`)."""
    parts = []
    for part in ABI_PARTS.get(name, (name,)):
        p = build_dir / f"{part}.json"
        if not p.is_file():
            raise DeploymentError(f"ABI {p} not found: compile the contracts (`make build`) or unset chain.build_dir "
                                  "to use the ABIs shipped with the package")
        parts.append(json.loads(p.read_text())["abi"])
    return merge_abis(*parts)


def load_abis(build_dir: Path | None = None) -> dict[str, list]:
    """The ABIs of :data:`CONTRACTS`: shipped with the package (``offchain/abi/``, written by ``make build``) when
    ``build_dir`` is None, else read from Brownie build artifacts there (:func:`build_abi`)."""
    return {name: package_abi(name) if build_dir is None else build_abi(build_dir, name) for name in CONTRACTS}


class ErrorDecoder:
    """Custom-error selector -> ``Name(arg, ...)`` from every ABI it is given."""

    def __init__(self, abis: Iterable[list]) -> None:
        self._by_selector: dict[bytes, tuple[str, list[str]]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") == "error":
                    types = [i["type"] for i in item["inputs"]]
                    sel = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
                    self._by_selector[sel] = (item["name"], types)

    def decode(self, data: str | bytes | None) -> str:
        if data is None:
            return "reverted"
        raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else data
        name, types = self._by_selector.get(raw[:4], (None, []))
        if name is None:
            return f"reverted (0x{raw.hex()})" if raw else "reverted"
        try:
            args = abi_decode(types, raw[4:])
        except Exception:  # malformed payload: show the name only
            return name
        return f"{name}({', '.join(str(a) for a in args)})"

    def from_exception(self, e: BaseException) -> str:
        """The decoded revert of a web3 exception; nodes put the revert data in different places (Anvil: ``data``
        as a hex string; Ganache: a dict with ``result`` or ``data``, sometimes only in the exception's args)."""
        if isinstance(e, (ContractCustomError, ContractPanicError, ContractLogicError)):
            for where in (e.data, *e.args):
                if isinstance(where, dict):
                    where = where.get("result") or where.get("data")
                if isinstance(where, str) and where.startswith("0x"):
                    return self.decode(where)
        return str(e)

    @staticmethod
    def name(reason: str) -> str:
        return reason.split("(", 1)[0]


@dataclass
class Chain:
    """The protocol's contracts on one chain, reached through :class:`Rpc`."""

    rpc: Rpc
    deployment: Deployment
    abis: dict[str, list]
    errors: ErrorDecoder = field(init=False)
    _cache: dict[tuple[int, str], Any] = field(default_factory=dict, init=False)
    _signatures: dict[tuple[str, str], tuple[bytes, list[str], list[str]]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.errors = ErrorDecoder(self.abis.values())

    @classmethod
    def connect(cls, rpc: Rpc, deployment_path: Path | None, build_dir: Path | None = None) -> "Chain":
        chain_id = rpc.read(lambda w3: w3.eth.chain_id)
        path = deployment_path or Path("deployments") / f"{chain_id}.json"
        deployment = Deployment.load(path)
        if deployment.chain_id != chain_id:
            raise DeploymentError(f"{path} is for chain {deployment.chain_id} but the RPC serves chain {chain_id}")
        vault = deployment.addresses["CrossMarginVault"]
        if rpc.read(lambda w3: w3.eth.get_code(vault)) in (b"", None):
            raise DeploymentError(f"no contract at CrossMarginVault {vault} on chain {chain_id}: {path} is stale "
                                  "(redeploy, or point chain.deployment at the right file)")
        return cls(rpc, deployment, load_abis(build_dir))

    @property
    def chain_id(self) -> int:
        return self.deployment.chain_id

    def address(self, name: str) -> str:
        return self.deployment.addresses[name]

    def contract(self, w3: Web3, name: str) -> Any:
        key = (id(w3), name)
        if key not in self._cache:
            self._cache[key] = w3.eth.contract(address=self.address(name), abi=self.abis[name])
        return self._cache[key]

    def call(self, name: str, fn: str, *args: Any, block: int | str = "latest", to: str | None = None) -> Any:
        """A view call, retried and failed over, pinned to ``block``.

        Encodes and decodes with eth-abi and sends one raw ``eth_call`` (web3's contract-call path costs several
        milliseconds of Python per call; a keeper makes these calls every block). A revert raises
        ``ContractLogicError`` carrying the revert data. ``to``: call that address, with the ABI of ``name`` (one of
        the deployment's contracts or an ABI shipped with the package, e.g. ``ChainlinkFeed`` for a price feed),
        instead of the deployment's ``name``."""
        selector, in_types, out_types = self._signature(name, fn)
        request = [{"to": to or self.address(name), "data": "0x" + (selector + abi_encode(in_types, args)).hex()},
                   hex(block) if isinstance(block, int) else block]

        def do(w3: Web3) -> str:
            resp = w3.provider.make_request("eth_call", request)
            if "error" in resp:
                err = resp["error"]
                data = err.get("data")
                data = (data.get("data") or data.get("result")) if isinstance(data, dict) else data
                raise ContractLogicError(f"{name}.{fn} reverted: {err.get('message')}", data=data)
            return resp["result"]

        out = abi_decode(out_types, bytes.fromhex(self.rpc.read(do)[2:]))
        return out[0] if len(out) == 1 else out

    def _signature(self, name: str, fn: str) -> tuple[bytes, list[str], list[str]]:
        key = (name, fn)
        if key not in self._signatures:
            abi = self.abis[name] if name in self.abis else package_abi(name)
            item = next(i for i in abi if i.get("type") == "function" and i["name"] == fn)
            in_types = [collapse_if_tuple(i) for i in item["inputs"]]
            self._signatures[key] = (function_signature_to_4byte_selector(f"{fn}({','.join(in_types)})"), in_types,
                                     [collapse_if_tuple(o) for o in item["outputs"]])
        return self._signatures[key]

    def encode(self, name: str, fn: str, *args: Any) -> str:
        return self.contract(self.rpc.w3, name).encode_abi(fn, args=list(args))

    def at(self, block: int | str) -> "Pinned":
        """Brownie-style handles whose view calls all run at ``block``: ``chain.at(n).vault.masksOf(a)``."""
        return Pinned(self, block)

    def timestamp(self, block: int | str) -> int:
        """The timestamp of ``block`` (what the contracts' ``block.timestamp`` is in a call pinned to it)."""
        return int(self.rpc.read(lambda w3: w3.eth.get_block(block)["timestamp"]))

    def lens_health(self, accounts: Sequence[int], block: int, batch: int) -> tuple[list[int], list[int]]:
        """(equity, maintenance) of every account from ``AccountLens.equityAndMaintenance``, in batches, at one block.

        An account holding options costs gas by the series it holds (each revalued over its asset's grid: about
        70,000 gas a series), so a batch of them can exceed a node's gas cap on ``eth_call`` (geth's default: 50
        million): a batch the node refuses is halved until it passes; a single account that still fails raises."""
        equity: list[int] = []
        maintenance: list[int] = []
        for i in range(0, len(accounts), batch):
            e, m = self._lens(list(accounts[i:i + batch]), block)
            equity.extend(e)
            maintenance.extend(m)
        return equity, maintenance

    def _lens(self, part: list[int], block: int) -> tuple[list[int], list[int]]:
        try:
            e, m = self.call("AccountLens", "equityAndMaintenance", part, block=block)
        except ContractLogicError as err:
            if len(part) == 1:
                raise
            log.warning("AccountLens refused a batch of %d accounts (%s): halving it", len(part), err)
            half = len(part) // 2
            (e1, m1), (e2, m2) = self._lens(part[:half], block), self._lens(part[half:], block)
            return e1 + e2, m1 + m2
        return [int(x) for x in e], [int(x) for x in m]


class _Handle:
    def __init__(self, chain: Chain, name: str, block: int | str, to: str | None = None) -> None:
        self._chain, self._name, self._block, self._to = chain, name, block, to

    def __getattr__(self, fn: str) -> Callable[..., Any]:
        return lambda *args: self._chain.call(self._name, fn, *args, block=self._block, to=self._to)


class Pinned:
    def __init__(self, chain: Chain, block: int | str) -> None:
        self.block = block
        self.vault = _Handle(chain, "CrossMarginVault", block)
        self.oracle = _Handle(chain, "OracleRouter", block)
        self.params = _Handle(chain, "RiskParameters", block)
        self.options = _Handle(chain, "OptionMarkets", block)
        self._chain = chain

    def feed(self, address: str) -> _Handle:
        """The Chainlink price feed (AggregatorV3Interface: ``latestRoundData``, ``getRoundData``, ``decimals``) at
        ``address``, read at the same block (with the shipped ``ChainlinkFeed`` ABI, whose AggregatorV3 functions
        any feed answers)."""
        return _Handle(self._chain, "ChainlinkFeed", self.block, address)
