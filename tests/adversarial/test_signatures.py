"""Adversarial catalogue: signed orders replayed where they were not meant to apply, and malleated signatures.

Already covered in tests/integration/test_order_settlement.py (referenced in docs/SECURITY.md, not repeated here):
- another chain id in the domain: test_settle_other_chain_signature_reverts_bad_signer;
- a second OrderSettlement deployment: test_settle_other_venue_signature_reverts_bad_signer;
- the same signatures submitted again after a full fill: test_settle_replayed_signatures_revert_nonce_used;
- the high-s twin (r, n - s, v ^ 1): test_settle_malleable_signature_reverts_invalid_s;
- a 64-byte (EIP-2098 compact) signature: test_settle_short_signature_reverts_bad_length.
"""
from __future__ import annotations

import pytest
from brownie import OrderSettlement, accounts, chain
from eth_keys import keys

from offchain.orders import Order, sign_order
from tests.adversarial.helpers import BTC, USDC, WAD, deposit
from tests.conftest import Trader, assert_reverts, err


@pytest.fixture(scope="module")
def pair(protocol, deployer):
    """Two traders with 100,000 USDC each (they only sign; a third party submits)."""
    a, b = Trader(protocol.vault), Trader(protocol.vault)
    for t in (a, b):
        deposit(protocol, deployer, t.id, protocol.usdc, 100_000 * USDC)
    return a, b


def _orders(protocol, a, b, size=WAD // 10):
    p = protocol.oracle.price(BTC)
    expiry = chain.time() + 3600
    return Order(a.id, BTC, True, size, p, expiry, 7), Order(b.id, BTC, False, size, p, expiry, 7)


def _sign(protocol, order, wallet, venue=None, chain_id=None):
    return sign_order(order, wallet.private_key, chain_id or chain.id, (venue or protocol.venue).address)


def test_domain_binds_chain_and_venue(protocol):
    """The EIP-712 domain that every signature commits to names this chain and this venue's address."""
    fields, name, version, chain_id, verifying, salt, extensions = protocol.venue.eip712Domain()
    assert (fields, name, version) == ("0x0f", "xmargin OrderSettlement", "1")
    assert (chain_id, verifying) == (chain.id, protocol.venue.address)
    assert int(salt.hex(), 16) == 0 and list(extensions) == []


def test_replay_on_another_subaccount_fails_and_moves_nothing(protocol, pair, ledger):
    """An order signed for (owner, sub 0) cannot be pointed at the same owner's sub 1: the account is part of the
    signed struct, so the signature recovers some other address."""
    a, b = pair
    mo, to = _orders(protocol, a, b)
    sig_a, sig_b = _sign(protocol, mo, a.wallet), _sign(protocol, to, b.wallet)
    other_sub = a.account(1)
    moved = mo._replace(account=other_sub)
    recovered = keys.Signature(vrs=(sig_a[64] - 27, int.from_bytes(sig_a[:32], "big"),
                                    int.from_bytes(sig_a[32:64], "big"))
                               ).recover_public_key_from_msg_hash(bytes(protocol.venue.hashOrder(moved)))
    recovered = recovered.to_checksum_address()
    assert recovered != a.wallet.address
    with ledger([a.id, other_sub, b.id]) as l:
        assert_reverts(err("BadSigner", other_sub, recovered), protocol.venue.settle, moved, sig_a, to, sig_b, WAD // 10,
                       {"from": accounts[2]})
    l.assert_unchanged()
    assert protocol.venue.filledOf(to) == 0


def test_signatures_for_one_venue_fill_only_there(protocol, pair, deployer, ledger):
    """Both venues registered: a pair signed for venue 2 settles on venue 2 once, and then neither on venue 1 (other
    domain) nor again on venue 2 (filled): at most the signed size is ever traded."""
    vault = protocol.vault
    other = OrderSettlement.deploy(vault, protocol.params, 2, 5, {"from": deployer})
    vault.setVenue(other, True, {"from": deployer})
    a, b = pair
    mo, to = _orders(protocol, a, b)
    ms, ts = _sign(protocol, mo, a.wallet, other), _sign(protocol, to, b.wallet, other)
    other.settle(mo, ms, to, ts, WAD // 10, {"from": accounts[2]})
    assert vault.positionOf(a.id, BTC)[0] == WAD // 10
    with ledger([a.id, b.id]) as l:
        with pytest.raises(Exception):  # BadSigner with an unpredictable recovered address
            protocol.venue.settle.call(mo, ms, to, ts, WAD // 10, {"from": accounts[2]})
        assert_reverts(err("NonceUsed", a.id, mo.nonce), other.settle, mo, ms, to, ts, 1, {"from": accounts[2]})
    l.assert_unchanged()


@pytest.mark.parametrize("variant", ["v-27", "v=29", "v-flipped"])
def test_malleated_v_fails_and_moves_nothing(protocol, pair, ledger, variant):
    """The v byte variants of a valid signature: the raw recovery id (0/1) and an out-of-range v recover nothing
    (ECDSAInvalidSignature); the flipped parity (27 <-> 28) with the same r, s recovers another address (BadSigner).
    The original signature still works afterwards, once."""
    a, b = pair
    mo, to = _orders(protocol, a, b)
    sig, ts = _sign(protocol, mo, a.wallet), _sign(protocol, to, b.wallet)
    r, s, v = sig[:32], sig[32:64], sig[64]
    h = bytes(protocol.venue.hashOrder(mo))
    if variant == "v-27":
        bad, expected = r + s + bytes([v - 27]), err("ECDSAInvalidSignature")
    elif variant == "v=29":
        bad, expected = r + s + bytes([29]), err("ECDSAInvalidSignature")
    else:
        bad = r + s + bytes([55 - v])
        other = keys.Signature(vrs=(28 - v, int.from_bytes(r, "big"), int.from_bytes(s, "big")))
        recovered = other.recover_public_key_from_msg_hash(h).to_checksum_address()
        assert recovered != a.wallet.address
        expected = err("BadSigner", a.id, recovered)
    with ledger([a.id, b.id]) as l:
        assert_reverts(expected, protocol.venue.settle, mo, bad, to, ts, WAD // 10, {"from": accounts[2]})
    l.assert_unchanged()
    assert protocol.venue.filledOf(mo) == 0
    protocol.venue.settle(mo, sig, to, ts, WAD // 10, {"from": accounts[2]})
    assert protocol.venue.filledOf(mo) == WAD // 10
