"""Helpers of the adversarial catalogue (docs/SECURITY.md lists every case).

Every case shows that an attack fails *and* that no funds move: `Ledger` records every token balance that matters
(the vault's and the actors') and the vault's books of the accounts involved (settlement balance, collateral,
positions), the fund, bad debt and open interest, so a test can assert "nothing changed" or the exact change."""
from __future__ import annotations

from types import SimpleNamespace

from brownie import accounts, web3

from offchain.margin.exact import account_margin, max_take
from tests.conftest import Trader

WAD = 10**18
USDC = 10**6
SCALE = 10**12  # USDC units -> USD 1e18
BPS = 10_000
BTC, ETH, SOL, LINK = 0, 1, 2, 3  # asset, market and collateral ids coincide in the local deployment
ZERO = "0x0000000000000000000000000000000000000000"


def deposit(protocol, deployer, account_id: int, token, amount: int):
    """Mint `amount` of `token` to the deployer and deposit it into `account_id` (anyone may fund any account)."""
    token.mint(deployer, amount, {"from": deployer})
    token.approve(protocol.vault, amount, {"from": deployer})
    return protocol.vault.deposit(account_id, token, amount, {"from": deployer})


class Ledger:
    """Everything that could move in an attack: token balances of the vault and of the given addresses, and the
    vault's books of the given accounts (and of the fund), bad debt and open interest."""

    def __init__(self, protocol, account_ids=(), addresses=(), tokens=None):
        self.p = protocol
        self.ids = list(account_ids) + [protocol.vault.fundAccount()]
        self.addresses = [protocol.vault.address] + [getattr(a, "address", a) for a in addresses]
        self.tokens = list(tokens) if tokens is not None else [protocol.usdc] + list(protocol.tokens)

    def read(self) -> dict:
        v = self.p.vault
        n_markets, n_coll = v.numMarkets(), v.numCollaterals()
        out = {"badDebt": v.badDebt(), "oi": [v.openInterest(m) for m in range(n_markets)]}
        for t in self.tokens:
            for a in self.addresses:
                out[("token", t.address, a)] = t.balanceOf(a)
        for i in self.ids:
            out[("settlement", i)] = v.settlementOf(i)
            out[("masks", i)] = tuple(v.masksOf(i))
            out[("collateral", i)] = [v.collateralOf(i, j) for j in range(n_coll)]
            out[("positions", i)] = [tuple(v.positionOf(i, m)) for m in range(n_markets)]
        return out

    def __enter__(self):
        self.before = self.read()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.after = self.read()
        return False

    def assert_unchanged(self):
        after = self.read()
        changed = {k: (self.before[k], after[k]) for k in self.before if self.before[k] != after[k]}
        assert not changed, f"state moved: {changed}"


def model(protocol, mirror, account_id):
    """The mirror's margin of an account and the liquidation bound, from the chain state."""
    state, layout, prices, cfg = mirror(account_id)
    m = account_margin(state, layout, prices, cfg)
    liq = int(protocol.params.liquidationConfig()[0])
    return SimpleNamespace(
        m=m, state=state, layout=layout, prices=prices,
        allowed=max_take(m.equity, m.maintenance, m.initial, m.gross_total, liq),
    )


def gas_funded(deployer, wallet, eth: str = "1 ether"):
    deployer.transfer(wallet, eth)
    return wallet


def mine_together(*send):
    """Send every transaction in `send` (callables taking a tx-params dict) into the same block: mining is paused,
    each is broadcast without waiting, then one block is mined. Returns the receipts in order."""
    web3.provider.make_request("miner_stop", [])
    try:
        txs = [fn({"required_confs": 0, "gas_limit": 3_000_000, "allow_revert": True}) for fn in send]
    finally:
        web3.provider.make_request("miner_start", [])
    receipts = [web3.eth.wait_for_transaction_receipt(tx.txid, timeout=30) for tx in txs]
    return receipts


__all__ = ["WAD", "USDC", "SCALE", "BPS", "BTC", "ETH", "SOL", "LINK", "ZERO", "Ledger", "deposit", "model",
           "gas_funded", "mine_together", "accounts"]
