"""Deploy the whole xmargin protocol to a Brownie network and write ``deployments/<chain-id>.json``.

    .venv/bin/python scripts/deploy.py --network ganache-cli                     # a local chain Brownie starts
    .venv/bin/python scripts/deploy.py --network sepolia --account deployer      # a testnet, a Brownie keystore
    make deploy NETWORK=sepolia DEPLOY_ARGS="--account deployer"                 # the same through make
    brownie run scripts/deploy.py --network ganache-cli                          # local chains only

What is deployed where comes from ``deployments/networks.toml``: each Brownie network id names its Chainlink feeds
(real feed addresses, or ``mock_price`` for a feed the deployer updates) and its tokens (existing addresses, or test
tokens to deploy). A network without an entry gets the local plan: test tokens, mock feeds and an insurance fund of
1,000,000 test USDC; that plan is refused on chains other than the local development ids 1337 and 31337.

Re-running is safe. Every finished step (a contract deployed, a setting applied) is written at once to
``deployments/<chain-id>.partial.json``; a run that stops half-way resumes from there, checking that each recorded
contract still has code, and configuration steps check the chain before sending. When the deployment is complete,
``<chain-id>.json`` is written and the journal removed; a later run finds every contract in place and sends nothing
(``--fresh`` deploys a new set and keeps the old file as ``<chain-id>.<timestamp>.json``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import logging
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from offchain.margin.defaults import ASSETS, DEFAULT_SPEC, LOCAL_COLLATERALS, START_PRICES_USD  # noqa: E402
from offchain.chain import merge_abis  # noqa: E402
from offchain.margin.params import RiskSpec, apply_spec  # noqa: E402

log = logging.getLogger("xmargin.deploy")

DEPLOYMENTS = ROOT / "deployments"
NETWORKS_FILE = DEPLOYMENTS / "networks.toml"
LOCAL_CHAIN_IDS = (1337, 31337)
FEED_DECIMALS = 8
FEED_MAX_AGE = 3600
VOL_FEED_MAX_AGE = 86_400  # realised-volatility feeds update daily
START_VOLS = (0.6, 0.75, 1.0, 1.0)  # the local mock volatility feeds, by asset
FUND_SEED_USDC = 1_000_000  # whole tokens deposited into the insurance fund on a local chain
MAKER_FEE_BPS, TAKER_FEE_BPS = 2, 5


# ---------------------------------------------------------------------------------------------- the plan
class FeedPlan(BaseModel):
    """One asset's price feed: an existing Chainlink aggregator, or a mock the deployer updates."""

    model_config = ConfigDict(extra="forbid")
    address: str | None = Field(None, description="Chainlink AggregatorV3 proxy address")
    mock_price: float | None = Field(None, gt=0, description="deploy a mock feed starting at this USD price")
    max_age: int = Field(FEED_MAX_AGE, gt=0, lt=2**32, description="seconds; the feed's heartbeat plus a margin")

    @model_validator(mode="after")
    def _one_source(self) -> "FeedPlan":
        if (self.address is None) == (self.mock_price is None):
            raise ValueError("set exactly one of `address` (a real feed) and `mock_price` (a mock feed)")
        return self


class VolFeedPlan(BaseModel):
    """One asset's volatility feed (annualised, the shape of Chainlink's realised-volatility feeds: 1.0 = 100%): an
    existing aggregator, or a mock the deployer updates; with the bounds outside which it is not used."""

    model_config = ConfigDict(extra="forbid")
    address: str | None = Field(None, description="AggregatorV3 address of the volatility feed")
    mock_vol: float | None = Field(None, gt=0, description="deploy a mock feed starting at this volatility (0.6 = 60%)")
    max_age: int = Field(VOL_FEED_MAX_AGE, gt=0, lt=2**32, description="seconds; the feed's heartbeat plus a margin")
    min_vol_bps: int = Field(500, gt=0, lt=2**32, description="lowest usable answer, bps (500 = 5%)")
    max_vol_bps: int = Field(50_000, gt=0, lt=2**32, description="highest usable answer, bps (50000 = 500%)")

    @model_validator(mode="after")
    def _one_source(self) -> "VolFeedPlan":
        if (self.address is None) == (self.mock_vol is None):
            raise ValueError("set exactly one of `address` (a real feed) and `mock_vol` (a mock feed)")
        if self.min_vol_bps > self.max_vol_bps:
            raise ValueError(f"min_vol_bps = {self.min_vol_bps} exceeds max_vol_bps = {self.max_vol_bps}")
        return self


class NetworkPlan(BaseModel):
    """What to deploy on one network."""

    model_config = ConfigDict(extra="forbid")
    chain_id: int | None = Field(None, description="expected chain id (checked against the node)")
    feeds: dict[str, FeedPlan] = Field(description="asset symbol -> feed, for every asset of the risk set")
    vol_feeds: dict[str, VolFeedPlan] = Field(default_factory=dict,
                                              description="asset symbol -> volatility feed; options can be listed "
                                                          "only on assets that have one")
    settlement_token: str | None = Field(None, description="existing USD stablecoin address; unset: deploy test USDC")
    collaterals: dict[str, str | None] = Field(
        default_factory=lambda: {symbol: None for symbol, *_ in LOCAL_COLLATERALS},
        description="collateral symbol -> existing token address, or unset to deploy a test token")
    sequencer_feed: str | None = Field(None, description="L2 sequencer uptime feed (unset on L1)")
    sequencer_grace: int = Field(0, ge=0, lt=2**32, description="seconds after a sequencer restart")
    seed_fund_usdc: int = Field(0, ge=0, description="test USDC minted into the insurance fund (test USDC only)")

    @field_validator("feeds")
    @classmethod
    def _all_assets(cls, feeds: dict[str, FeedPlan]) -> dict[str, FeedPlan]:
        missing = [a for a in ASSETS if a not in feeds]
        unknown = [a for a in feeds if a not in ASSETS]
        if missing or unknown:
            raise ValueError(f"feeds must name exactly the assets {', '.join(ASSETS)} (missing: {missing or '-'}, "
                             f"unknown: {unknown or '-'})")
        return feeds

    @field_validator("vol_feeds")
    @classmethod
    def _known_assets(cls, feeds: dict[str, VolFeedPlan]) -> dict[str, VolFeedPlan]:
        unknown = [a for a in feeds if a not in ASSETS]
        if unknown:
            raise ValueError(f"vol_feeds names unknown assets {unknown}: use {', '.join(ASSETS)}")
        return feeds

    @model_validator(mode="after")
    def _consistent(self) -> "NetworkPlan":
        symbols = [symbol for symbol, *_ in LOCAL_COLLATERALS]
        if sorted(self.collaterals) != sorted(symbols):
            raise ValueError(f"collaterals must name exactly {', '.join(symbols)} (got {', '.join(self.collaterals)})")
        if self.seed_fund_usdc and self.settlement_token is not None:
            raise ValueError("seed_fund_usdc needs the test USDC: unset settlement_token or set seed_fund_usdc = 0")
        return self

    @property
    def uses_mocks(self) -> bool:
        return any(f.mock_price is not None for f in self.feeds.values())


LOCAL_PLAN = NetworkPlan(feeds={a: FeedPlan(mock_price=p) for a, p in zip(ASSETS, START_PRICES_USD)},
                         vol_feeds={a: VolFeedPlan(mock_vol=v) for a, v in zip(ASSETS, START_VOLS)},
                         seed_fund_usdc=FUND_SEED_USDC)


def load_plan(network: str, path: Path = NETWORKS_FILE) -> NetworkPlan:
    """The plan for Brownie network ``network`` from ``path`` (the local plan when the file has no entry)."""
    if not path.exists():
        return LOCAL_PLAN
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SystemExit(f"{path}: not valid TOML ({e})") from None
    entry = data.get("networks", {}).get(network)
    if entry is None:
        return LOCAL_PLAN
    try:
        return NetworkPlan.model_validate(entry)
    except ValidationError as e:
        problems = "; ".join(f"[networks.{network}].{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                             for err in e.errors())
        raise SystemExit(f"{path}: {problems}") from None


# ---------------------------------------------------------------------------------------------- the journal
class Journal:
    """Finished steps of one deployment, saved after each step so an interrupted run can resume."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.done: dict[str, Any] = json.loads(path.read_text()) if path is not None and path.exists() else {}

    def get(self, step: str) -> Any:
        return self.done.get(step)

    def record(self, step: str, value: Any = True) -> None:
        self.done[step] = value
        if self.path is not None:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.done, indent=2) + "\n")
            tmp.replace(self.path)

    def close(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@dataclass
class Deployment:
    """Handles to every deployed contract (Brownie ``ProjectContract`` objects)."""

    usdc: Any
    tokens: list  # collateral tokens by collateral id
    feeds: list  # Chainlink feeds by asset index
    oracle: Any
    vol_feeds: list  # volatility feeds by asset index (None: none)
    options: Any
    params: Any
    vault: Any
    venue: Any
    lens: Any
    start_block: int = 0  # the block before the first deployment transaction: indexers start here
    txs: dict[str, str] = field(default_factory=dict)  # deployment transaction hash by contract name

    def addresses(self) -> dict:
        """The deployment file: addresses (top level, by contract name) and, under ``contracts``, each protocol
        contract's address, the name of its ABI (``offchain/abi/<name>.json`` in the package) and the hash of the
        transaction that created it."""
        from brownie import chain, web3

        handles = {"OracleRouter": self.oracle, "RiskParameters": self.params, "CrossMarginVault": self.vault,
                   "OrderSettlement": self.venue, "AccountLens": self.lens, "OptionMarkets": self.options}
        return {
            "chainId": chain.id,
            "settlementToken": self.usdc.address,
            "collaterals": [t.address for t in self.tokens],
            "feeds": [f.address for f in self.feeds],
            "volFeeds": [f.address if f is not None else None for f in self.vol_feeds],
            "assets": list(ASSETS),
            "OracleRouter": self.oracle.address,
            "RiskParameters": self.params.address,
            "CrossMarginVault": self.vault.address,
            "OrderSettlement": self.venue.address,
            "AccountLens": self.lens.address,
            "OptionMarkets": self.options.address,
            "startBlock": self.start_block,
            "block": web3.eth.block_number,
            "contracts": {name: {"address": c.address, "abi": name, "tx": self.txs.get(name)}
                          for name, c in handles.items()},
        }


def complete_vault_abi() -> None:
    """Give Brownie's ``CrossMarginVault`` container the vault's whole ABI: its own functions and those of
    VaultExtension, which it runs by DELEGATECALL from its fallback. Every handle made afterwards (``deploy``, ``at``)
    calls, decodes and reports reverts for both; idempotent."""
    from brownie import CrossMarginVault, VaultExtension

    if len(merge_abis(CrossMarginVault.abi, VaultExtension.abi)) == len(CrossMarginVault.abi):
        return
    CrossMarginVault._build["abi"] = merge_abis(CrossMarginVault.abi, VaultExtension.abi)
    for table in ("selectors", "signatures", "topics"):
        getattr(CrossMarginVault, table).update(getattr(VaultExtension, table))


def vault_at(address: str) -> Any:
    """The vault at ``address`` with its whole ABI (:func:`complete_vault_abi`)."""
    from brownie import CrossMarginVault

    complete_vault_abi()
    return CrossMarginVault.at(address)


def set_price(feed: Any, usd: float | int, sender: Any) -> None:
    """Push a USD price into a local Chainlink mock feed (8 decimals)."""
    feed.updateAnswer(int(round(usd * 10**FEED_DECIMALS)), {"from": sender})


def set_vol(feed: Any, vol: float, sender: Any) -> None:
    """Push an annualised volatility (0.6 = 60%) into a local mock volatility feed (8 decimals)."""
    feed.updateAnswer(int(round(vol * 10**FEED_DECIMALS)), {"from": sender})


# ---------------------------------------------------------------------------------------------- deploying
def deploy(deployer: Any, plan: NetworkPlan = LOCAL_PLAN, spec: RiskSpec = DEFAULT_SPEC,
           journal: Journal | None = None) -> Deployment:
    """Deploy and configure everything ``plan`` asks for; ``deployer`` holds every role afterwards.

    With a ``journal``, steps it records as done are not repeated (contracts are re-attached and checked)."""
    from brownie import (ZERO_ADDRESS, AccountLens, ChainlinkFeed, Contract, CrossMarginVault, OptionMarkets,
                         OracleRouter, OrderSettlement, RiskParameters, TestToken, web3)

    j = journal or Journal(None)
    tx = {"from": deployer}

    txs: dict[str, str] = {}

    def contract(step: str, container: Any, *args: Any) -> Any:
        entry = j.get(step)
        if entry is not None:
            # an older journal holds the address only
            address, txid = (entry, None) if isinstance(entry, str) else (entry["address"], entry["tx"])
            if len(web3.eth.get_code(address)) == 0:
                raise SystemExit(f"the journal says {step} is at {address}, but there is no code there: the chain "
                                 f"was reset. Delete {j.path} (or pass --fresh) and deploy again.")
            log.info("  %-22s %s (already deployed)", step, address)
            txs[step] = txid
            return container.at(address)
        c = container.deploy(*args, tx)
        txs[step] = c.tx.txid
        j.record(step, {"address": c.address, "tx": c.tx.txid})
        log.info("  %-22s %s", step, c.address)
        return c

    def once(step: str, action: Callable[[], Any], done: Callable[[], bool] = lambda: False) -> None:
        if j.get(step) or done():
            return
        action()
        j.record(step)

    start_block = j.get("startBlock")
    if start_block is None:
        start_block = web3.eth.block_number
        j.record("startBlock", start_block)
    usdc = contract("USDC", TestToken, "USD Coin", "USDC", 6) if plan.settlement_token is None else \
        Contract.from_abi("USDC", plan.settlement_token, TestToken.abi)
    tokens = []
    for symbol, decimals, _, _ in LOCAL_COLLATERALS:
        address = plan.collaterals[symbol]
        tokens.append(contract(symbol, TestToken, f"Wrapped {symbol}", symbol, decimals) if address is None else
                      Contract.from_abi(symbol, address, TestToken.abi))
    feeds = []
    for asset in ASSETS:
        f = plan.feeds[asset]
        feeds.append(contract(f"feed:{asset}", ChainlinkFeed, FEED_DECIMALS, int(f.mock_price * 10**FEED_DECIMALS))
                     if f.address is None else Contract.from_abi(f"{asset}/USD", f.address, ChainlinkFeed.abi))
    oracle = contract("OracleRouter", OracleRouter, deployer, plan.sequencer_feed or ZERO_ADDRESS,
                      plan.sequencer_grace)
    for i, (asset, feed) in enumerate(zip(ASSETS, feeds)):
        max_age = plan.feeds[asset].max_age
        once(f"oracle.setFeed:{asset}", lambda i=i, feed=feed, a=max_age: oracle.setFeed(i, feed, a, tx),
             lambda i=i, feed=feed, a=max_age: tuple(oracle.feedOf(i))[::2] == (feed.address, a))
    vol_feeds: list = []
    for i, asset in enumerate(ASSETS):
        v = plan.vol_feeds.get(asset)
        if v is None:
            vol_feeds.append(None)
            continue
        feed = contract(f"volFeed:{asset}", ChainlinkFeed, FEED_DECIMALS, int(v.mock_vol * 10**FEED_DECIMALS)) \
            if v.address is None else Contract.from_abi(f"{asset} volatility", v.address, ChainlinkFeed.abi)
        vol_feeds.append(feed)
        once(f"oracle.setVolFeed:{asset}",
             lambda i=i, f=feed, v=v: oracle.setVolFeed(i, f, v.max_age, v.min_vol_bps, v.max_vol_bps, tx),
             lambda i=i, f=feed: oracle.volFeedOf(i)[0] == f.address)
    params = contract("RiskParameters", RiskParameters, deployer)
    for role in ("RISK_ADMIN_ROLE", "GUARDIAN_ROLE", "RISK_UPDATER_ROLE"):
        role_id = getattr(params, role)()
        once(f"params.grant:{role}", lambda r=role_id: params.grantRole(r, deployer, tx),
             lambda r=role_id: params.hasRole(r, deployer))
    complete_vault_abi()
    vault = contract("CrossMarginVault", CrossMarginVault, params, oracle, usdc)
    once("params.setVault", lambda: params.setVault(vault, tx))
    for cid, (token, (symbol, _, asset, _)) in enumerate(zip(tokens, LOCAL_COLLATERALS)):
        once(f"vault.listCollateral:{symbol}", lambda t=token, a=asset: vault.listCollateral(t, a, tx),
             lambda c=cid: vault.numCollaterals() > c)
    for m in range(len(ASSETS)):
        once(f"vault.listMarket:{m}", lambda m=m: vault.listMarket(m, tx), lambda m=m: vault.numMarkets() > m)
    venue = contract("OrderSettlement", OrderSettlement, vault, params, MAKER_FEE_BPS, TAKER_FEE_BPS)
    once("vault.setVenue", lambda: vault.setVenue(venue, True, tx))
    once("vault.setFundOperator", lambda: vault.setFundOperator(deployer, True, tx))
    lens = contract("AccountLens", AccountLens, vault)
    options = contract("OptionMarkets", OptionMarkets, vault, oracle, params)
    once("vault.setOptionMarkets", lambda: vault.setOptionMarkets(options, tx),
         lambda: vault.optionMarkets() == options.address)
    once("params.applySpec", lambda: apply_spec(params, spec, deployer))
    if plan.seed_fund_usdc:
        amount = plan.seed_fund_usdc * 10**6

        def seed() -> None:
            usdc.mint(deployer, amount, tx)
            usdc.approve(vault, amount, tx)
            vault.deposit(vault.fundAccount(), usdc, amount, tx)

        once("fund.seed", seed)
    return Deployment(usdc, tokens, feeds, oracle, vol_feeds, options, params, vault, venue, lens, start_block, txs)


def deploy_local(deployer: Any, spec: RiskSpec = DEFAULT_SPEC, seed_fund: bool = True) -> Deployment:
    """Test tokens, mock feeds and the protocol on a local chain, in one go (no journal): tests and benchmarks."""
    plan = LOCAL_PLAN if seed_fund else LOCAL_PLAN.model_copy(update={"seed_fund_usdc": 0})
    return deploy(deployer, plan, spec)


def write_deployment(d: Deployment, directory: Path = DEPLOYMENTS) -> Path:
    from brownie import chain

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{chain.id}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(d.addresses(), indent=2) + "\n")
    tmp.replace(path)
    return path


def existing(path: Path) -> bool:
    """A complete deployment file whose contracts all have code on the connected chain."""
    from brownie import web3

    if not path.exists():
        return False
    data = json.loads(path.read_text())
    names = ("OracleRouter", "RiskParameters", "CrossMarginVault", "OrderSettlement", "AccountLens")
    missing = [n for n in names if len(web3.eth.get_code(data[n])) == 0]
    if missing:
        log.warning("%s lists contracts without code on this chain (%s): deploying anew", path, ", ".join(missing))
    return not missing


def run_deploy(network: str, deployer: Any, plan: NetworkPlan, out: Path = DEPLOYMENTS, fresh: bool = False,
               spec: RiskSpec = DEFAULT_SPEC) -> Path:
    """Deploy (or resume, or confirm) the protocol on the connected chain; returns the deployment file."""
    from brownie import chain

    if plan.chain_id is not None and plan.chain_id != chain.id:
        raise SystemExit(f"network {network!r} is configured for chain id {plan.chain_id} but the node reports "
                         f"{chain.id}: check the RPC URL of the Brownie network or chain_id in {NETWORKS_FILE}")
    if (plan.uses_mocks or plan.seed_fund_usdc) and plan == LOCAL_PLAN and chain.id not in LOCAL_CHAIN_IDS:
        raise SystemExit(f"chain {chain.id} has no entry in {NETWORKS_FILE} and is not a local development chain "
                         f"({', '.join(map(str, LOCAL_CHAIN_IDS))}): add [networks.{network}] with its feeds")
    out.mkdir(parents=True, exist_ok=True)
    final, partial = out / f"{chain.id}.json", out / f"{chain.id}.partial.json"
    if fresh:
        for path in (final, partial):
            if path.exists():
                path.rename(path.with_name(f"{path.stem}.{int(time.time())}.json"))
    elif existing(final):
        log.info("the protocol is already deployed on chain %d (%s); nothing sent. --fresh deploys a new set.",
                 chain.id, final)
        return final
    journal = Journal(partial)
    log.info("%s deployment on %s (chain %d) from %s", "resuming the" if journal.done else "starting a", network,
             chain.id, deployer.address)
    d = deploy(deployer, plan, spec, journal)
    path = write_deployment(d, out)
    journal.close()
    for name, addr in d.addresses().items():
        log.info("%-18s %s", name, addr)
    log.info("deployment written to %s", path)
    return path


# ---------------------------------------------------------------------------------------------- CLI
def deployer_account(account: str | None, chain_id: int) -> Any:
    """A Brownie keystore account (asks for its password) or, on a local chain, the node's first account."""
    from brownie import accounts

    if account:
        return accounts.load(account)
    if chain_id in LOCAL_CHAIN_IDS and len(accounts):
        return accounts[0]
    raise SystemExit("no deployer: pass --account NAME (a Brownie keystore: `brownie accounts new NAME` or "
                     "`brownie accounts import NAME keystore.json`)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/deploy.py", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", default="ganache-cli", help="Brownie network id (default ganache-cli)")
    p.add_argument("--account", help="Brownie keystore account of the deployer (default: node account 0 on a "
                                     "local chain)")
    p.add_argument("--config", type=Path, default=NETWORKS_FILE, help=f"network plans (default {NETWORKS_FILE})")
    p.add_argument("--out", type=Path, default=DEPLOYMENTS, help="folder of the deployment file")
    p.add_argument("--fresh", action="store_true", help="deploy a new set even if one exists")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """``brownie run scripts/deploy.py`` calls this with no arguments; as a program it reads the command line."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from brownie import chain, network

    if network.is_connected():  # brownie run: the network is chosen already
        plan = load_plan(network.show_active())
        run_deploy(network.show_active(), deployer_account(None, chain.id), plan)
        return 0
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = load_plan(args.network, args.config)
    with brownie_network(args.network):
        run_deploy(args.network, deployer_account(args.account, chain.id), plan, args.out, args.fresh)
    return 0


class brownie_network:  # noqa: N801 (a context manager used like a function)
    """Load this Brownie project (its config and contracts) and connect to ``network`` for the ``with`` block.

    ``quiet`` sends Brownie's console output (a few lines per transaction) to /dev/null for the block; the scripts'
    own progress goes through ``logging`` (stderr)."""

    def __init__(self, network_id: str, quiet: bool = False) -> None:
        self.network_id = network_id
        self.quiet = contextlib.redirect_stdout(open(os.devnull, "w")) if quiet else contextlib.nullcontext()

    def __enter__(self) -> None:
        from brownie import network, project
        from brownie._config import CONFIG

        if self.network_id not in CONFIG.networks:
            known = ", ".join(sorted(CONFIG.networks))
            raise SystemExit(f"Brownie network {self.network_id!r} is not registered under {Path.home()}: register "
                             f"your node with `make network NAME={self.network_id} PORT=<port>` (README, \"Deploying\"), "
                             f"or use one of: {known}")
        self.quiet.__enter__()
        p = project.load(ROOT, name="XmarginProject")
        p.load_config()  # brownie-config.yaml: Shanghai, gas price "auto" (Ganache has a base fee)
        p._add_to_main_namespace()  # what `brownie run` does: `from brownie import CrossMarginVault` works after it
        network.connect(self.network_id)

    def __exit__(self, *exc: object) -> None:
        from brownie import network

        try:
            if network.is_connected():
                network.disconnect()
        finally:
            self.quiet.__exit__(*exc)


def use_project_tools() -> None:
    """Run directly (not through ``make``), this file uses what ``make`` does: the project's Brownie HOME
    (``.cache/home``: its networks and accounts; ``XMARGIN_BROWNIE_HOME`` names another), its solc-js compiler shim
    and its node binaries (ganache, anvil).
    Without the shim (``make build`` not run yet) it stops with that advice rather than Brownie's "Solc not installed"."""
    shim = Path(os.environ.setdefault("SOLCX_BINARY_PATH", str(ROOT / ".cache" / "solcx")))
    if not any(shim.glob("solc-v*")):
        raise SystemExit(f"no compiler under {shim}: run `make build` once first")
    os.environ["HOME"] = os.environ.get("XMARGIN_BROWNIE_HOME", str(ROOT / ".cache" / "home"))
    os.environ["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}"


if __name__ == "__main__":
    use_project_tools()
    sys.exit(main())
