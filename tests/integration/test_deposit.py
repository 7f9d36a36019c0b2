"""Integration tests for CrossMarginVault.deposit: settlement token, collateral of every decimals, non-standard tokens,
reentrancy, guards and events (post-state snapshots)."""
import brownie
import pytest
from brownie import FeeOnTransferToken, NoReturnToken, ReentrantToken, TestToken, accounts, web3

from offchain.margin.exact import account_margin
from tests.conftest import err

WAD = 10**18
USDC = 10**6
SCALE = 10**12  # USDC units -> USD 1e18
REENTRANCY_SELECTOR = bytes(web3.keccak(text="ReentrancyGuardReentrantCall()")[:4])


def _mint_approve(token, owner, amount, vault):
    token.mint(owner, amount, {"from": owner})
    token.approve(vault, amount, {"from": owner})


def _listed(vault, deployer, token_cls, asset, *args):
    """Deploy a test token and list it as the next collateral id on `asset`; returns (token, id)."""
    token = token_cls.deploy(*args, {"from": deployer})
    tx = vault.listCollateral(token, asset, {"from": deployer})
    return token, tx.events["CollateralListed"]["id"]


# ------------------------------------------------------------------ settlement token and collateral decimals
def test_deposit_settlement_credits_usd_balance(protocol, deployer, make_trader):
    vault, usdc = protocol.vault, protocol.usdc
    t = make_trader()
    amount = 1_234_567_891  # 1234.567891 USDC (6 decimals)
    _mint_approve(usdc, deployer, amount, vault)
    vault_before = usdc.balanceOf(vault)

    tx = vault.deposit(t.id, usdc, amount, {"from": deployer})

    assert tx.return_value == amount
    assert vault.settlementOf(t.id) == amount * SCALE
    assert usdc.balanceOf(vault) - vault_before == amount
    assert usdc.balanceOf(deployer) == 0
    assert tuple(vault.masksOf(t.id)) == (0, 0)  # the settlement token is not a listed collateral
    equity, mm, im = vault.margin(t.id)
    assert (equity, mm, im) == (amount * SCALE, 0, 0)


@pytest.mark.parametrize(
    "cid, amount, expected_value",
    [
        (0, 150_000_000, 90_000 * WAD),  # WBTC, 8 decimals: 1.5 BTC at 60,000
        (1, 2 * WAD, 6_000 * WAD),  # WETH, 18 decimals: 2 ETH at 3,000
        (2, 10 * 10**9 + 1, 1_500 * WAD + 150 * 10**9),  # WSOL, 9 decimals: 10.000000001 SOL at 150
    ],
)
def test_deposit_collateral_values_by_decimals(protocol, deployer, make_trader, mirror, cid, amount, expected_value):
    vault, token = protocol.vault, protocol.tokens[cid]
    haircut = {0: 800, 1: 1000, 2: 1500}[cid]
    t = make_trader()
    _mint_approve(token, deployer, amount, vault)

    tx = vault.deposit(t.id, token, amount, {"from": deployer})

    assert tx.return_value == amount
    assert vault.collateralOf(t.id, cid) == amount
    assert token.balanceOf(vault) == amount
    assert tuple(vault.masksOf(t.id)) == (0, 1 << cid)
    assert vault.settlementOf(t.id) == 0
    d = vault.marginDetail(t.id)
    asset = cid
    assert d["delta"][asset] == expected_value
    assert d["gross"][asset] == expected_value
    assert d["equity"] == expected_value * (10_000 - haircut) // 10_000
    state, layout, prices, cfg = mirror(t.id)
    m = account_margin(state, layout, prices, cfg)
    assert (d["equity"], d["margin"]["maintenance"], d["margin"]["initial"]) == (m.equity, m.maintenance, m.initial)


def test_deposit_by_third_party_into_any_account(protocol, make_trader):
    vault, weth = protocol.vault, protocol.tokens[1]
    t = make_trader()
    payer = accounts[3]
    weth.mint(payer, 5 * WAD, {"from": payer})
    weth.approve(vault, 5 * WAD, {"from": payer})

    vault.deposit(t.id, weth, 5 * WAD, {"from": payer})

    assert vault.collateralOf(t.id, 1) == 5 * WAD
    assert weth.balanceOf(payer) == 0
    assert vault.collateralOf(payer.address, 1) == 0


# ------------------------------------------------------------------ non-standard tokens
def test_deposit_fee_on_transfer_credits_amount_received(protocol, deployer, make_trader):
    vault = protocol.vault
    fee_token, cid = _listed(vault, deployer, FeeOnTransferToken, 1)
    assert cid == 4
    t = make_trader()
    amount = 100 * WAD + 37
    _mint_approve(fee_token, deployer, amount, vault)

    tx = vault.deposit(t.id, fee_token, amount, {"from": deployer})

    received = amount - amount // 100
    assert tx.return_value == received
    assert vault.collateralOf(t.id, cid) == received
    assert fee_token.balanceOf(vault) == received
    ev = tx.events["CollateralUpdated"]
    assert (ev["account"], ev["token"], ev["balance"]) == (t.id, fee_token.address, received)

    # a second deposit accumulates what arrived, and the event carries the post-state balance
    _mint_approve(fee_token, deployer, 50 * WAD, vault)
    tx = vault.deposit(t.id, fee_token, 50 * WAD, {"from": deployer})
    total = received + 50 * WAD - (50 * WAD) // 100
    assert vault.collateralOf(t.id, cid) == total
    assert tx.events["CollateralUpdated"]["balance"] == total


def test_deposit_and_withdraw_no_return_token(protocol, deployer, make_trader):
    vault = protocol.vault
    nrt, cid = _listed(vault, deployer, NoReturnToken, 3)
    assert tuple(vault.collateralInfo(cid)) == (nrt.address, 3, 6)
    protocol.params.setHaircut(cid, 1500, {"from": deployer})  # new listings start at a 100% haircut
    t = make_trader()
    owner = t.wallet
    deployer.transfer(owner, WAD // 10)
    nrt.mint(owner, 500 * USDC, {"from": owner})
    nrt.approve(vault, 500 * USDC, {"from": owner})

    vault.deposit(t.id, nrt, 500 * USDC, {"from": owner})
    assert vault.collateralOf(t.id, cid) == 500 * USDC
    assert nrt.balanceOf(vault) == 500 * USDC

    tx = vault.withdraw(t.id, nrt, 200 * USDC, owner, {"from": owner})
    assert tx.events["CollateralUpdated"]["balance"] == 300 * USDC
    assert vault.collateralOf(t.id, cid) == 300 * USDC
    assert nrt.balanceOf(owner) == 200 * USDC
    assert nrt.balanceOf(vault) == 300 * USDC

    vault.withdraw(t.id, nrt, 300 * USDC, owner, {"from": owner})
    assert vault.collateralOf(t.id, cid) == 0
    assert tuple(vault.masksOf(t.id)) == (0, 0)
    assert nrt.balanceOf(owner) == 500 * USDC
    assert nrt.balanceOf(vault) == 0


@pytest.mark.parametrize("reenter", ["withdraw", "deposit", "liquidate", "resolveBadDebt"])
def test_deposit_reentrant_token_cannot_reenter(protocol, deployer, make_trader, reenter):
    vault = protocol.vault
    ree, cid = _listed(vault, deployer, ReentrantToken, 1)
    protocol.params.setHaircut(cid, 1000, {"from": deployer})  # new listings start at a 100% haircut
    t = make_trader()
    owner = t.wallet
    deployer.transfer(owner, WAD // 10)
    # The account already holds 10 REE and authorises the token as operator, so without the guard the re-entrant
    # withdrawal would be allowed and would move funds.
    _mint_approve(ree, deployer, 10 * WAD, vault)
    vault.deposit(t.id, ree, 10 * WAD, {"from": deployer})
    vault.setOperator(ree, True, {"from": owner})
    ree.mint(ree, 10 * WAD, {"from": deployer})  # and the token itself holds some, for a nested deposit
    if reenter == "withdraw":
        payload = vault.withdraw.encode_input(t.id, ree, 5 * WAD, accounts[4])
    elif reenter == "deposit":
        payload = vault.deposit.encode_input(t.id, ree, 5 * WAD)
    elif reenter == "liquidate":
        payload = vault.liquidate.encode_input(t.id, [])
    else:  # unguarded, paying nothing would succeed
        payload = vault.resolveBadDebt.encode_input(0)
    ree.arm(vault, payload, {"from": deployer})

    _mint_approve(ree, deployer, 3 * WAD, vault)
    tx = vault.deposit(t.id, ree, 3 * WAD, {"from": deployer})

    assert ree.target() == "0x0000000000000000000000000000000000000000"  # the hook fired
    assert ree.lastCallSucceeded() is False
    assert bytes(ree.lastRevertData()) == REENTRANCY_SELECTOR
    # only the outer deposit moved funds
    assert tx.return_value == 3 * WAD
    assert vault.collateralOf(t.id, cid) == 13 * WAD
    assert ree.balanceOf(vault) == 13 * WAD
    assert ree.balanceOf(accounts[4]) == 0
    assert ree.balanceOf(ree) == 10 * WAD
    assert len(tx.events["CollateralUpdated"]) == 1


# ------------------------------------------------------------------ guards
def test_deposit_unknown_token_reverts(protocol, deployer, make_trader):
    vault = protocol.vault
    stray = TestToken.deploy("Stray", "STR", 18, {"from": deployer})
    _mint_approve(stray, deployer, WAD, vault)
    with brownie.reverts(err("UnknownToken", stray)):
        vault.deposit(make_trader().id, stray, WAD, {"from": deployer})
    assert stray.balanceOf(vault) == 0


def test_deposit_zero_amount_reverts(protocol, deployer, make_trader):
    vault = protocol.vault
    t = make_trader()
    with brownie.reverts(err("ZeroAmount")):
        vault.deposit(t.id, protocol.usdc, 0, {"from": deployer})
    with brownie.reverts(err("ZeroAmount")):
        vault.deposit(t.id, protocol.tokens[1], 0, {"from": deployer})


def test_deposit_paused_reverts(protocol, deployer, make_trader):
    vault, usdc, weth = protocol.vault, protocol.usdc, protocol.tokens[1]
    t = make_trader()
    p = protocol.params
    guardian = accounts[2]  # guardian only: not admin, not risk admin
    p.grantRole(p.GUARDIAN_ROLE(), guardian, {"from": deployer})
    p.setPause(2, {"from": guardian})
    assert p.control() & 3 == 2
    _mint_approve(usdc, deployer, 100 * USDC, vault)
    _mint_approve(weth, deployer, WAD, vault)
    with brownie.reverts(err("Paused", 2)):
        vault.deposit(t.id, usdc, 100 * USDC, {"from": deployer})
    with brownie.reverts(err("Paused", 2)):
        vault.deposit(t.id, weth, WAD, {"from": deployer})
    assert vault.settlementOf(t.id) == 0
    assert vault.collateralOf(t.id, 1) == 0


def test_deposit_trades_paused_still_accepts(protocol, deployer, make_trader):
    vault, usdc = protocol.vault, protocol.usdc
    t = make_trader()
    protocol.params.setPause(1, {"from": deployer})
    _mint_approve(usdc, deployer, 100 * USDC, vault)
    vault.deposit(t.id, usdc, 100 * USDC, {"from": deployer})
    assert vault.settlementOf(t.id) == 100 * USDC * SCALE


# ------------------------------------------------------------------ events
def test_deposit_settlement_event_carries_post_balance(protocol, deployer, make_trader):
    vault, usdc = protocol.vault, protocol.usdc
    t = make_trader()
    _mint_approve(usdc, deployer, 300 * USDC, vault)
    tx1 = vault.deposit(t.id, usdc, 100 * USDC, {"from": deployer})
    tx2 = vault.deposit(t.id, usdc, 200 * USDC, {"from": deployer})
    assert dict(tx1.events["SettlementUpdated"]) == {"account": t.id, "balance": 100 * USDC * SCALE}
    assert dict(tx2.events["SettlementUpdated"]) == {"account": t.id, "balance": 300 * USDC * SCALE}

    fund = vault.fundAccount()
    before = vault.settlementOf(fund)
    assert before == 1_000_000 * USDC * SCALE
    _mint_approve(usdc, deployer, 7 * USDC, vault)
    tx3 = vault.deposit(fund, usdc, 7 * USDC, {"from": deployer})
    assert dict(tx3.events["SettlementUpdated"]) == {"account": fund, "balance": before + 7 * USDC * SCALE}


def test_deposit_collateral_event_carries_post_balance(protocol, deployer, make_trader):
    vault, wbtc = protocol.vault, protocol.tokens[0]
    t = make_trader()
    _mint_approve(wbtc, deployer, 3 * 10**8, vault)
    tx1 = vault.deposit(t.id, wbtc, 10**8, {"from": deployer})
    tx2 = vault.deposit(t.id, wbtc, 2 * 10**8, {"from": deployer})
    assert dict(tx1.events["CollateralUpdated"]) == {"account": t.id, "token": wbtc.address, "balance": 10**8}
    assert dict(tx2.events["CollateralUpdated"]) == {"account": t.id, "token": wbtc.address, "balance": 3 * 10**8}
    assert "SettlementUpdated" not in tx2.events
