"""Sandbox actions on a local deployment (Ganache or Anvil): fund accounts with test tokens, open positions, move a
mock feed's price and top up the insurance fund, so that a liquidation can be made and watched in a few commands.

Everything is sent from the node's own unlocked accounts (``eth_accounts``): the node signs the transactions, and the
EIP-712 orders through ``eth_signTypedData_v4`` (each signature is checked locally against its owner before use), so
no key is configured. An owner is named by its index in ``eth_accounts`` or by its address; its account ``sub`` is
the id ``owner << 96 | sub``. Trades are filled against the sandbox market maker, the node's last account, which is
given test USDC as it needs. Refused on any chain but the local ids 1337 and 31337: the test tokens mint to anyone
and the mock feeds take any price, which only makes sense on a chain of your own.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from .chain import Chain, package_abi
from .errors import ConfigError, XMarginError
from .orders import Order, next_free_nonce, typed_data

log = logging.getLogger("xmargin.sandbox")

LOCAL_CHAIN_IDS = (1337, 31337)
WAD = 10**18
MAKER_FLOOR_USDC = 1_000_000  # the market maker's deposit never falls below this, nor below 5x the fill's notional


@dataclass(frozen=True)
class Holder:
    index: int
    address: str
    native: int  # wei
    usdc: int  # wallet balance, token units


class Sandbox:
    """The sandbox actions on ``chain`` (a :class:`Chain` of a local deployment)."""

    def __init__(self, chain: Chain) -> None:
        if chain.chain_id not in LOCAL_CHAIN_IDS:
            raise ConfigError(f"sandbox commands run only on a local chain (chain id 1337 or 31337); this node is chain "
                              f"{chain.chain_id}: point chain.rpc_urls at your local node")
        d = chain.deployment
        if d.settlement_token is None or not d.feeds:
            raise ConfigError("the deployment file lists no settlementToken/feeds: deploy with scripts/deploy.py")
        self.chain, self.w3 = chain, chain.rpc.w3
        self.usdc = self._erc20(d.settlement_token)
        self.collaterals = [self._erc20(a) for a in d.collaterals]
        self.feeds = [self.w3.eth.contract(address=a, abi=package_abi("ChainlinkFeed")) for a in d.feeds]
        self.vault = chain.contract(self.w3, "CrossMarginVault")
        self.venue = chain.contract(self.w3, "OrderSettlement")
        self.node_accounts = [to_checksum_address(a) for a in self.w3.eth.accounts]
        if len(self.node_accounts) < 2:
            raise ConfigError("the node has fewer than 2 unlocked accounts: start it with its default dev accounts")

    # ------------------------------------------------------------------------------------------ names
    def _erc20(self, address: str) -> Any:
        return self.w3.eth.contract(address=address, abi=package_abi("TestToken"))

    def owner(self, who: str) -> str:
        """An owner's address from an index into the node's accounts or an address."""
        if who.startswith("0x") and len(who) == 42:
            return to_checksum_address(who)
        try:
            return self.node_accounts[int(who)]
        except (ValueError, IndexError):
            raise ConfigError(f"owner {who!r}: give an index 0..{len(self.node_accounts) - 1} into the node's "
                              "accounts (`xmargin sandbox accounts`) or an address") from None

    def token(self, symbol: str) -> tuple[Any, int | None]:
        """(token contract, collateral id or None for the settlement token) of ``symbol`` (case-insensitive)."""
        if symbol.upper() == self.usdc.functions.symbol().call().upper():
            return self.usdc, None
        symbols = [t.functions.symbol().call() for t in self.collaterals]
        for cid, s in enumerate(symbols):
            if s.upper() == symbol.upper():
                return self.collaterals[cid], cid
        raise ConfigError(f"token {symbol!r} is not listed: choose one of "
                          f"{', '.join([self.usdc.functions.symbol().call(), *symbols])}")

    def asset(self, name: str) -> int:
        assets = [a.upper() for a in self.chain.deployment.assets]
        if name.upper() not in assets:
            raise ConfigError(f"asset {name!r} is not listed: choose one of {', '.join(self.chain.deployment.assets)}")
        return assets.index(name.upper())

    def market(self, name: str) -> int:
        """The first market on asset ``name`` (or a market id given as a number)."""
        if name.isdigit():
            return int(name)
        asset = self.asset(name)
        for m in range(self.chain.call("CrossMarginVault", "numMarkets")):
            if self.chain.call("CrossMarginVault", "marketAsset", m) == asset:
                return m
        raise ConfigError(f"no market on {name}")

    # ------------------------------------------------------------------------------------------ actions
    def holders(self) -> list[Holder]:
        return [Holder(i, a, self.w3.eth.get_balance(a), self.usdc.functions.balanceOf(a).call())
                for i, a in enumerate(self.node_accounts)]

    def deposit(self, who: str, symbol: str, amount: float, sub: int = 0) -> int:
        """Mint ``amount`` whole tokens of ``symbol`` to the owner and deposit them into its account ``sub``; returns
        the account id."""
        owner = self.owner(who)
        account = _account(owner, sub)
        self._mint_and_deposit(owner, account, symbol, amount)
        return account

    def fund(self, usdc: float) -> None:
        """Deposit ``usdc`` freshly minted test USDC into the insurance fund (sent by the node's first account)."""
        fund = self.vault.functions.fundAccount().call()
        self._mint_and_deposit(self.node_accounts[0], fund, self.usdc.functions.symbol().call(), usdc)

    def _mint_and_deposit(self, payer: str, account: int, symbol: str, amount: float) -> None:
        token, _ = self.token(symbol)
        units = _units(amount, token.functions.decimals().call(), "amount")
        self._send(token.functions.mint(payer, units), payer, f"mint {amount} {symbol}")
        self._send(token.functions.approve(self.vault.address, units), payer, f"approve {symbol}")
        self._send(self.vault.functions.deposit(account, token.address, units), payer, f"deposit {amount} {symbol}")

    def set_price(self, name: str, usd: float) -> int:
        """Set the mock feed of asset ``name`` to ``usd``; returns the answer written (feed decimals)."""
        if not usd > 0:
            raise ConfigError(f"price {usd}: give a positive USD price")
        feed = self.feeds[self.asset(name)]
        answer = round(usd * 10 ** feed.functions.decimals().call())
        self._send(feed.functions.updateAnswer(answer), self.node_accounts[0], f"set {name} to {usd}")
        return answer

    def oracle_price(self, market: int) -> int:
        """The last oracle price (USD, 1e18) of the market's asset."""
        asset = self.chain.call("CrossMarginVault", "marketAsset", market)
        return int(self.chain.call("OracleRouter", "lastPrice", asset))

    def trade(self, who: str, market_name: str, size: float, price: float | None = None, sub: int = 0) -> int:
        """Fill ``size`` units (positive buys, negative sells) on the market of ``market_name`` for the owner's account
        ``sub`` against the sandbox market maker, at ``price`` USD (default: the oracle price); returns the price
        filled at (1e18)."""
        if size == 0:
            raise ConfigError("size 0: give a positive size to buy or a negative one to sell")
        owner = self.owner(who)
        market = self.market(market_name)
        px = _units(price, 18, "price") if price is not None else self.oracle_price(market)
        fill = _units(abs(size), 18, "size")
        maker = self.node_accounts[-1]
        if maker == owner:
            raise ConfigError(f"owner {who} is the sandbox market maker (the node's last account): use another")
        self._stock_maker(maker, fill * px // WAD)
        expiry, buy = int(time.time()) + 3600, size > 0
        m_acct, t_acct = _account(maker, 0), _account(owner, sub)
        m = Order(m_acct, market, not buy, fill, px, expiry, next_free_nonce(self.venue, m_acct))
        t = Order(t_acct, market, buy, fill, px, expiry, next_free_nonce(self.venue, t_acct))
        self._send(self.venue.functions.settle(m, self._sign(m, maker), t, self._sign(t, owner), fill), owner,
                   f"{'buy' if buy else 'sell'} {abs(size)} on market {market}")
        return px

    def new_key(self, native: float = 10.0) -> str:
        """A fresh private key (0x-hex) whose address the node's first account pays ``native`` coins for gas: a
        keeper key for ``keeper.private_key_env`` on this local chain."""
        key = Account.create()
        wei = _units(native, 18, "native amount")
        try:
            tx = self.w3.eth.send_transaction({"from": self.node_accounts[0], "to": key.address, "value": wei})
        except ValueError as e:
            raise XMarginError(f"paying {native} to a new key: refused: {e}") from None
        self.w3.eth.wait_for_transaction_receipt(tx, timeout=120)
        log.info("new key %s funded with %s", key.address, native)
        return "0x" + bytes(key.key).hex()

    # ------------------------------------------------------------------------------------------ plumbing
    def _stock_maker(self, maker: str, notional: int) -> None:
        need = max(MAKER_FLOOR_USDC * WAD, 5 * notional)
        equity = self.chain.call("AccountLens", "equityAndMaintenance", [_account(maker, 0)])[0][0]
        if equity < need:
            self.deposit(maker, self.usdc.functions.symbol().call(), (2 * need - equity) / WAD)
            log.info("market maker %s topped up to %.0f USD", maker, 2 * need / WAD)

    def _sign(self, order: Order, signer: str) -> bytes:
        data = typed_data(order, self.chain.chain_id, self.venue.address)
        wire = {**data, "message": {k: (v if isinstance(v, bool) else str(v)) for k, v in data["message"].items()}}
        resp = self.w3.provider.make_request("eth_signTypedData_v4", [signer, wire])
        if "error" in resp:
            raise XMarginError(f"the node would not sign an order for {signer}: {resp['error'].get('message')}")
        sig = bytes.fromhex(resp["result"][2:])
        if Account.recover_message(encode_typed_data(full_message=data), signature=sig) != signer:
            raise XMarginError(f"the node signed the order for {signer} with another key")
        return sig

    def _send(self, call: Any, sender: str, what: str) -> None:
        try:
            tx = call.transact({"from": sender})
        except (ContractCustomError, ContractLogicError, ContractPanicError) as e:
            raise XMarginError(f"{what}: refused: {self.chain.errors.from_exception(e)}") from None
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, timeout=120)
        if receipt["status"] != 1:
            raise XMarginError(f"{what}: transaction {tx.hex()} reverted")
        log.info("%s: %s (block %d)", what, tx.hex(), receipt["blockNumber"])


def _account(owner: str, sub: int) -> int:
    if not 0 <= sub < 2**96:
        raise ConfigError(f"--sub {sub}: a subaccount is 0 .. 2**96 - 1")
    return int(owner, 16) << 96 | sub


def _units(x: float, decimals: int, what: str) -> int:
    if not x > 0:
        raise ConfigError(f"{what} {x}: give a positive number")
    return round(x * 10**decimals)
