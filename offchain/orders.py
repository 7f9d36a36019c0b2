"""EIP-712 orders for ``OrderSettlement``: build, hash and sign them off-chain."""
from __future__ import annotations

from typing import NamedTuple

from eth_account import Account
from eth_account.messages import encode_typed_data

DOMAIN_NAME = "xmargin OrderSettlement"
DOMAIN_VERSION = "1"
ORDER_FIELDS = [
    {"name": "account", "type": "uint256"},
    {"name": "market", "type": "uint256"},
    {"name": "isBuy", "type": "bool"},
    {"name": "size", "type": "uint256"},
    {"name": "limitPrice", "type": "uint256"},
    {"name": "expiry", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
]


class Order(NamedTuple):
    """An order as the venue's ``Order`` struct (a tuple, so it passes straight to contract calls).

    Size in base units 1e18, limit price USD 1e18, expiry unix seconds.
    """

    account: int
    market: int
    isBuy: bool
    size: int
    limitPrice: int
    expiry: int
    nonce: int


def typed_data(order: Order, chain_id: int, venue: str) -> dict:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Order": ORDER_FIELDS,
        },
        "primaryType": "Order",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id, "verifyingContract": venue},
        "message": order._asdict(),
    }


def sign_order(order: Order, private_key: str, chain_id: int, venue: str) -> bytes:
    """Signature (65 bytes r || s || v) of ``order`` for the venue at ``venue`` on ``chain_id``."""
    signed = Account.sign_message(encode_typed_data(full_message=typed_data(order, chain_id, venue)), private_key)
    return bytes(signed.signature)


def next_free_nonce(venue, account: int) -> int:
    """The lowest nonce of ``account`` that the venue (a web3 contract of ``OrderSettlement``) has not seen used (no
    order under it filled or cancelled) and that is not below the account's floor (``cancelAllBefore``).

    Orders under consecutive nonces share their bitmap words: the first order of a word creates it (20,000 gas), the
    others set a bit (2,900); a nonce taken from the clock opens a new word every time. A signed order that has not
    filled yet does not hold its nonce here: give each order signed before the previous one fills its own nonce."""
    nonce = venue.functions.minNonce(account).call()
    while True:
        word = venue.functions.nonceBitmap(account, nonce >> 8).call()
        free = ~word & ~((1 << (nonce & 0xFF)) - 1) & ((1 << 256) - 1)
        if free:
            return (nonce >> 8 << 8) + (free & -free).bit_length() - 1
        nonce = ((nonce >> 8) + 1) << 8

