"""Adversarial catalogue: hostile and non-standard tokens.

- Reentrancy through a token hook (ReentrantToken, an ERC777-style callback) from inside `withdraw`'s transfer into
  every other state-changing path: deposit, withdraw, liquidate, resolveBadDebt and a trade through the venue
  (OrderSettlement.settle -> vault.settleTrade). The hook of a *deposit* into the same paths is covered by
  tests/integration/test_deposit.py::test_deposit_reentrant_token_cannot_reenter.
- Fee-on-transfer: a deposit then a full withdrawal cannot take out more than arrived, and another holder's tokens stay
  whole.
- Rebasing: a positive rebase leaves a surplus in the vault that nobody can withdraw; a negative rebase makes the
  vault short of that token (why such tokens must not be listed), and the shortfall stays within that token.
"""
from __future__ import annotations

import pytest
from brownie import FeeOnTransferToken, RebasingToken, ReentrantToken, accounts, web3

from offchain.orders import Order, sign_order
from tests.adversarial.helpers import ETH, USDC, WAD, ZERO, deposit
from tests.conftest import Trader, assert_reverts, err

REENTRANCY_SELECTOR = bytes(web3.keccak(text="ReentrancyGuardReentrantCall()")[:4])


def _list(protocol, deployer, token, asset=ETH, haircut=1000):
    cid = protocol.vault.listCollateral(token, asset, {"from": deployer}).events["CollateralListed"]["id"]
    protocol.params.setHaircut(cid, haircut, {"from": deployer})  # new listings start at a 100% haircut
    return cid


@pytest.fixture(scope="module")
def ree(protocol, deployer):
    """A ReentrantToken listed as collateral on ETH, and an account holding 10 of it plus 10,000 USDC, which has made
    the token its operator (so, without the guard, the token could withdraw or trade for it)."""
    token = ReentrantToken.deploy({"from": deployer})
    cid = _list(protocol, deployer, token)
    victim = Trader(protocol.vault)
    deployer.transfer(victim.wallet, "1 ether")
    deposit(protocol, deployer, victim.id, token, 10 * WAD)
    deposit(protocol, deployer, victim.id, protocol.usdc, 10_000 * USDC)
    protocol.vault.setOperator(token, True, {"from": victim.wallet})
    token.mint(token, 10 * WAD, {"from": deployer})  # the token holds some itself, for a nested deposit
    return token, cid, victim


def _reentry_payload(protocol, token, victim, rich, kind):
    """(target, calldata, the maker order or None)."""
    vault = protocol.vault
    if kind == "deposit":
        return vault, vault.deposit.encode_input(victim.id, token, 5 * WAD), None
    if kind == "withdraw":
        return vault, vault.withdraw.encode_input(victim.id, token, 5 * WAD, accounts[5]), None
    if kind == "liquidate":
        return vault, vault.liquidate.encode_input(victim.id, []), None
    if kind == "resolveBadDebt":  # unguarded, paying nothing would succeed
        return vault, vault.resolveBadDebt.encode_input(0), None
    # a trade through the venue: orders validly signed by both sides, submitted from inside the hook
    venue, now = protocol.venue, web3.eth.get_block("latest")["timestamp"]
    p = protocol.oracle.price(ETH)
    mo = Order(victim.id, ETH, True, WAD, p, now + 3600, 1)
    to = Order(rich.id, ETH, False, WAD, p, now + 3600, 1)
    sig = lambda o, w: sign_order(o, w.private_key, web3.eth.chain_id, venue.address)  # noqa: E731
    return venue, venue.settle.encode_input(mo, sig(mo, victim.wallet), to, sig(to, rich.wallet), WAD), mo


@pytest.mark.parametrize("kind", ["deposit", "withdraw", "liquidate", "resolveBadDebt", "settle"])
def test_withdraw_hook_reentry_fails_and_moves_nothing(protocol, ree, rich, deployer, ledger, kind):
    token, cid, victim = ree
    vault = protocol.vault
    target, payload, maker_order = _reentry_payload(protocol, token, victim, rich, kind)
    token.arm(target, payload, {"from": deployer})
    with ledger([victim.id, rich.id], [victim.wallet, accounts[5], token], [token, protocol.usdc]) as l:
        vault.withdraw(victim.id, token, 2 * WAD, victim.wallet, {"from": victim.wallet})

    assert token.target() == ZERO  # the hook fired
    assert token.lastCallSucceeded() is False
    assert bytes(token.lastRevertData()) == REENTRANCY_SELECTOR
    # exactly the outer withdrawal moved: 2 tokens from the vault to the owner, nothing else
    changed = {k for k in l.before if l.before[k] != l.after[k]}
    assert changed == {
        ("token", token.address, vault.address), ("token", token.address, victim.wallet.address),
        ("collateral", victim.id),
    }
    assert l.after[("token", token.address, vault.address)] == l.before[("token", token.address, vault.address)] - 2 * WAD
    assert l.after[("collateral", victim.id)][cid] == 8 * WAD
    if maker_order is not None:
        assert protocol.venue.filledOf(maker_order) == 0  # the signed order is still unfilled, and no position opened
        assert tuple(vault.positionOf(victim.id, ETH)) == (0, 0)


# ------------------------------------------------------------------ fee-on-transfer
def test_fee_on_transfer_round_trip_cannot_extract(protocol, deployer, ledger):
    vault = protocol.vault
    fot = FeeOnTransferToken.deploy({"from": deployer})
    cid = _list(protocol, deployer, fot)
    other, attacker = Trader(vault), Trader(vault)
    deployer.transfer(attacker.wallet, "1 ether")
    deposit(protocol, deployer, other.id, fot, 100 * WAD)  # an honest holder: 99 arrive
    assert vault.collateralOf(other.id, cid) == 99 * WAD

    fot.mint(attacker.wallet, 50 * WAD, {"from": attacker.wallet})
    fot.approve(vault, 50 * WAD, {"from": attacker.wallet})
    credited = vault.deposit(attacker.id, fot, 50 * WAD, {"from": attacker.wallet}).return_value
    assert credited == 50 * WAD - 50 * WAD // 100 == fot.balanceOf(vault) - 99 * WAD

    # asking for more than was credited fails, and moves nothing
    with ledger([attacker.id, other.id], [attacker.wallet], [fot]) as l:
        assert_reverts(err("InsufficientBalance", attacker.id, fot, credited, credited + 1),
                       vault.withdraw, attacker.id, fot, credited + 1, attacker.wallet, {"from": attacker.wallet})
    l.assert_unchanged()

    # the full credit comes out (the receiver pays the token's own fee); the honest holder's 99 stay in the vault
    vault.withdraw(attacker.id, fot, credited, attacker.wallet, {"from": attacker.wallet})
    assert fot.balanceOf(attacker.wallet) == credited - credited // 100
    assert fot.balanceOf(vault) == vault.collateralOf(other.id, cid) == 99 * WAD
    assert vault.collateralOf(attacker.id, cid) == 0


# ------------------------------------------------------------------ rebasing
@pytest.fixture
def rebasing(protocol, deployer):
    vault = protocol.vault
    token = RebasingToken.deploy({"from": deployer})
    cid = _list(protocol, deployer, token)
    a, b = Trader(vault), Trader(vault)
    for t in (a, b):
        deployer.transfer(t.wallet, "1 ether")
        token.mint(t.wallet, 100 * WAD, {"from": deployer})
        token.approve(vault, 100 * WAD, {"from": t.wallet})
        vault.deposit(t.id, token, 100 * WAD, {"from": t.wallet})
    assert token.balanceOf(vault) == 200 * WAD
    return token, cid, a, b


def test_rebasing_up_surplus_cannot_be_withdrawn(protocol, rebasing, ledger):
    token, cid, a, b = rebasing
    vault = protocol.vault
    token.rebase(11 * WAD // 10, {"from": a.wallet})  # +10% for every holder, the vault included
    assert token.balanceOf(vault) == 220 * WAD
    assert vault.collateralOf(a.id, cid) == 100 * WAD  # books are in token units credited, not shares

    with ledger([a.id, b.id], [a.wallet, b.wallet], [token]) as l:
        assert_reverts(err("InsufficientBalance", a.id, token, 100 * WAD, 110 * WAD),
                       vault.withdraw, a.id, token, 110 * WAD, a.wallet, {"from": a.wallet})
    l.assert_unchanged()
    # each gets what was credited (less the token's own 1-wei share rounding); the 20 of surplus stay in the vault,
    # owned by no account
    vault.withdraw(a.id, token, 100 * WAD, a.wallet, {"from": a.wallet})
    vault.withdraw(b.id, token, 100 * WAD, b.wallet, {"from": b.wallet})
    for t in (a, b):
        assert 100 * WAD - 1 <= token.balanceOf(t.wallet) <= 100 * WAD
        assert vault.collateralOf(t.id, cid) == 0
    assert 20 * WAD <= token.balanceOf(vault) <= 20 * WAD + 2


def test_rebasing_down_shortfall_confined_to_that_token(protocol, rebasing, rich, ledger):
    """Not an attack by a user but a property of the token: after a -10% rebase the vault holds 180 against 200
    credited, so the last withdrawer of that token is short. It is why rebasing tokens must not be listed
    (docs/SECURITY.md); the books of other tokens and accounts are untouched."""
    token, cid, a, b = rebasing
    vault = protocol.vault
    token.rebase(9 * WAD // 10, {"from": a.wallet})
    assert token.balanceOf(vault) == 180 * WAD
    vault.withdraw(a.id, token, 100 * WAD, a.wallet, {"from": a.wallet})
    with ledger([b.id, rich.id], [b.wallet]) as l:
        assert_reverts("balance", vault.withdraw, b.id, token, 100 * WAD, b.wallet, {"from": b.wallet})
    l.assert_unchanged()
    assert vault.collateralOf(b.id, cid) == 100 * WAD and token.balanceOf(vault) == 80 * WAD
    # the USDC side of the vault is unaffected: the rich counterparty withdraws in full
    accounts[0].transfer(rich.wallet, "1 ether")
    vault.withdraw(rich.id, protocol.usdc, 5_000_000 * USDC, rich.wallet, {"from": rich.wallet})
    assert protocol.usdc.balanceOf(rich.wallet) == 5_000_000 * USDC
