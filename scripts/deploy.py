"""Deploy the whole xmargin protocol to the active Brownie network.

    brownie run scripts/deploy.py --network ganache-cli

On a local chain it also deploys test tokens and Chainlink mock feeds (``MockV3Aggregator``) with starting prices.
It writes ``deployments/<chain-id>.json`` with every address, which the off-chain side reads.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brownie import (
    ZERO_ADDRESS,
    AccountLens,
    ChainlinkFeed,
    CrossMarginVault,
    OracleRouter,
    OrderSettlement,
    RiskParameters,
    TestToken,
    accounts,
    chain,
    web3,
)

from offchain.risk.defaults import ASSETS, DEFAULT_SPEC, WAD
from offchain.risk.params import RiskSpec, apply_spec

log = logging.getLogger(__name__)

DEPLOYMENTS = Path(__file__).resolve().parent.parent / "deployments"

# Local chain: (symbol, decimals, asset index, start price USD) of each collateral; the settlement token is USDC.
LOCAL_COLLATERALS = (("WBTC", 8, 0, 60_000), ("WETH", 18, 1, 3_000), ("WSOL", 9, 2, 150), ("LINK", 18, 3, 15))
FEED_DECIMALS = 8
FEED_MAX_AGE = 3600
FUND_SEED_USDC = 1_000_000  # whole tokens deposited into the insurance fund on a local chain
MAKER_FEE_BPS, TAKER_FEE_BPS = 2, 5


@dataclass
class Deployment:
    """Handles to every deployed contract (Brownie ``ProjectContract`` objects)."""

    usdc: Any
    tokens: list  # collateral tokens by collateral id
    feeds: list  # Chainlink feeds by asset index
    oracle: Any
    params: Any
    vault: Any
    venue: Any
    lens: Any
    start_block: int = 0  # the block before the first deployment transaction: indexers start here

    def addresses(self) -> dict:
        return {
            "chainId": chain.id,
            "settlementToken": self.usdc.address,
            "collaterals": [t.address for t in self.tokens],
            "feeds": [f.address for f in self.feeds],
            "assets": list(ASSETS),
            "OracleRouter": self.oracle.address,
            "RiskParameters": self.params.address,
            "CrossMarginVault": self.vault.address,
            "OrderSettlement": self.venue.address,
            "AccountLens": self.lens.address,
            "startBlock": self.start_block,
            "block": web3.eth.block_number,
        }


def set_price(feed: Any, usd: float | int, sender: Any) -> None:
    """Push a USD price into a local Chainlink mock feed (8 decimals)."""
    feed.updateAnswer(int(round(usd * 10**FEED_DECIMALS)), {"from": sender})


def deploy_local(deployer: Any, spec: RiskSpec = DEFAULT_SPEC, seed_fund: bool = True) -> Deployment:
    """Deploy tokens, mock feeds and the protocol, list everything and apply ``spec``; ``deployer`` holds every role."""
    tx = {"from": deployer}
    start_block = web3.eth.block_number
    usdc = TestToken.deploy("USD Coin", "USDC", 6, tx)
    tokens, feeds = [], []
    for symbol, decimals, _, price in LOCAL_COLLATERALS:
        tokens.append(TestToken.deploy(f"Wrapped {symbol}", symbol, decimals, tx))
        feeds.append(ChainlinkFeed.deploy(FEED_DECIMALS, price * 10**FEED_DECIMALS, tx))
    oracle = OracleRouter.deploy(deployer, ZERO_ADDRESS, 0, tx)  # no L2 sequencer feed on a local chain
    for asset, feed in enumerate(feeds):
        oracle.setFeed(asset, feed, FEED_MAX_AGE, tx)
    params = RiskParameters.deploy(deployer, tx)
    params.grantRole(params.RISK_ADMIN_ROLE(), deployer, tx)
    params.grantRole(params.GUARDIAN_ROLE(), deployer, tx)
    vault = CrossMarginVault.deploy(params, oracle, usdc, tx)
    params.setVault(vault, tx)  # the vault now follows every change of the margin words
    for token, (_, _, asset, _) in zip(tokens, LOCAL_COLLATERALS):
        vault.listCollateral(token, asset, tx)
    for asset in range(len(ASSETS)):
        vault.listMarket(asset, tx)
    venue = OrderSettlement.deploy(vault, params, MAKER_FEE_BPS, TAKER_FEE_BPS, tx)
    vault.setVenue(venue, True, tx)
    vault.setFundOperator(deployer, True, tx)
    lens = AccountLens.deploy(vault, tx)
    apply_spec(params, spec, deployer)
    d = Deployment(usdc, tokens, feeds, oracle, params, vault, venue, lens, start_block)
    if seed_fund:
        amount = FUND_SEED_USDC * 10**6
        usdc.mint(deployer, amount, tx)
        usdc.approve(vault, amount, tx)
        vault.deposit(vault.fundAccount(), usdc, amount, tx)
    return d


def write_deployment(d: Deployment) -> Path:
    DEPLOYMENTS.mkdir(exist_ok=True)
    path = DEPLOYMENTS / f"{chain.id}.json"
    path.write_text(json.dumps(d.addresses(), indent=2) + "\n")
    return path


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    deployer = accounts[0]
    d = deploy_local(deployer)
    path = write_deployment(d)
    for name, addr in d.addresses().items():
        log.info("%-18s %s", name, addr)
    log.info("deployment written to %s", path)


__all__ = ["Deployment", "deploy_local", "set_price", "write_deployment", "WAD"]
