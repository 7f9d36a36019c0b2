"""Integration tests for CrossMarginVault.withdraw: authorisation (owner, operator, fund operators), balances, the
initial-margin rule checked against the Python mirror, pauses, subaccount isolation and reentrancy."""
import brownie
import pytest
from brownie import ReentrantToken, accounts, web3

from offchain.margin.exact import account_margin
from tests.conftest import err, assert_reverts

WAD = 10**18
USDC = 10**6
SCALE = 10**12
BTC_PRICE = 60_000 * WAD
REENTRANCY_SELECTOR = bytes(web3.keccak(text="ReentrancyGuardReentrantCall()")[:4])


@pytest.fixture
def funded_trader(make_trader, deployer):
    """A trader whose wallet holds a little ETH, so it can send its own transactions."""

    def _make(sub=0):
        t = make_trader(sub)
        deployer.transfer(t.wallet, WAD // 10)
        return t

    return _make


@pytest.fixture
def counterparty(make_trader, fund, protocol):
    """A well-capitalised account to trade against."""
    c = make_trader()
    fund(c.id, protocol.usdc, 5_000_000 * USDC)
    return c


def _after(mirror, account, settlement_delta=0, collateral_delta=None):
    """Margin of the account as it would be after the change, from the Python mirror."""
    state, layout, prices, cfg = mirror(account)
    state.settlement += settlement_delta
    for cid, d in (collateral_delta or {}).items():
        state.collateral[cid] = state.collateral.get(cid, 0) + d
        if state.collateral[cid] == 0:
            del state.collateral[cid]
    return account_margin(state, layout, prices, cfg)


# ------------------------------------------------------------------ who may withdraw
def test_withdraw_by_owner_pays_out(protocol, funded_trader, fund):
    vault, usdc, wbtc = protocol.vault, protocol.usdc, protocol.tokens[0]
    t = funded_trader()
    fund(t.id, usdc, 1_000 * USDC)
    fund(t.id, wbtc, 2 * 10**8)

    tx1 = vault.withdraw(t.id, usdc, 400 * USDC, t.wallet, {"from": t.wallet})
    tx2 = vault.withdraw(t.id, wbtc, 10**8, t.wallet, {"from": t.wallet})

    assert usdc.balanceOf(t.wallet) == 400 * USDC
    assert wbtc.balanceOf(t.wallet) == 10**8
    assert vault.settlementOf(t.id) == 600 * USDC * SCALE
    assert vault.collateralOf(t.id, 0) == 10**8
    assert dict(tx1.events["SettlementUpdated"]) == {"account": t.id, "balance": 600 * USDC * SCALE}
    assert dict(tx2.events["CollateralUpdated"]) == {"account": t.id, "token": wbtc.address, "balance": 10**8}


def test_withdraw_full_collateral_clears_mask(protocol, funded_trader, fund):
    vault, weth = protocol.vault, protocol.tokens[1]
    t = funded_trader()
    fund(t.id, weth, 3 * WAD)
    vault.withdraw(t.id, weth, 3 * WAD, accounts[5], {"from": t.wallet})
    assert tuple(vault.masksOf(t.id)) == (0, 0)
    assert weth.balanceOf(accounts[5]) == 3 * WAD
    assert tuple(vault.margin(t.id)) == (0, 0, 0)


def test_withdraw_by_operator_succeeds(protocol, funded_trader, fund):
    vault, usdc = protocol.vault, protocol.usdc
    t = funded_trader()
    op = accounts[6]
    fund(t.id, usdc, 1_000 * USDC)
    vault.setOperator(op, True, {"from": t.wallet})
    assert vault.isAuthorized(t.id, op)
    assert vault.isAuthorized(t.account(7), op)  # operators cover every subaccount

    before = usdc.balanceOf(op)
    vault.withdraw(t.id, usdc, 250 * USDC, op, {"from": op})

    assert usdc.balanceOf(op) - before == 250 * USDC
    assert vault.settlementOf(t.id) == 750 * USDC * SCALE


def test_withdraw_by_revoked_operator_reverts(protocol, funded_trader, fund):
    vault, usdc = protocol.vault, protocol.usdc
    t = funded_trader()
    op = accounts[6]
    fund(t.id, usdc, 1_000 * USDC)
    vault.setOperator(op, True, {"from": t.wallet})
    vault.setOperator(op, False, {"from": t.wallet})
    assert_reverts(err("Unauthorized", op, t.id), vault.withdraw, t.id, usdc, USDC, op, {"from": op})


def test_withdraw_by_stranger_reverts(protocol, funded_trader, fund):
    vault, usdc, weth = protocol.vault, protocol.usdc, protocol.tokens[1]
    t = funded_trader()
    stranger = accounts[7]
    fund(t.id, usdc, 1_000 * USDC)
    fund(t.id, weth, WAD)
    assert_reverts(err("Unauthorized", stranger, t.id), vault.withdraw, t.id, usdc, USDC, stranger, {"from": stranger})
    assert_reverts(err("Unauthorized", stranger, t.id), vault.withdraw, t.id, weth, WAD, stranger, {"from": stranger})
    # an operator of another owner is a stranger here
    other = funded_trader()
    vault.setOperator(stranger, True, {"from": other.wallet})
    assert_reverts(err("Unauthorized", stranger, t.id), vault.withdraw, t.id, usdc, USDC, stranger, {"from": stranger})
    assert vault.settlementOf(t.id) == 1_000 * USDC * SCALE
    assert vault.collateralOf(t.id, 1) == WAD


def test_withdraw_fund_by_non_operator_reverts(protocol, deployer):
    vault, usdc = protocol.vault, protocol.usdc
    fund_id = vault.fundAccount()
    stranger = accounts[7]
    assert_reverts(
        err("Unauthorized", stranger, fund_id),
        vault.withdraw, fund_id, usdc, USDC, stranger, {"from": stranger},
    )
    # the deployer is a fund operator
    vault.withdraw(fund_id, usdc, 10 * USDC, accounts[8], {"from": deployer})
    assert vault.settlementOf(fund_id) == (1_000_000 - 10) * USDC * SCALE


# ------------------------------------------------------------------ balances and guards
def test_withdraw_more_than_balance_reverts(protocol, funded_trader, fund):
    vault, usdc, wsol = protocol.vault, protocol.usdc, protocol.tokens[2]
    t = funded_trader()
    fund(t.id, usdc, 1_000 * USDC)
    fund(t.id, wsol, 5 * 10**9)
    assert_reverts(
        err("InsufficientBalance", t.id, usdc, 1_000 * USDC, 1_000 * USDC + 1),
        vault.withdraw, t.id, usdc, 1_000 * USDC + 1, t.wallet, {"from": t.wallet},
    )
    assert_reverts(
        err("InsufficientBalance", t.id, wsol, 5 * 10**9, 5 * 10**9 + 1),
        vault.withdraw, t.id, wsol, 5 * 10**9 + 1, t.wallet, {"from": t.wallet},
    )
    # collateral never held
    assert_reverts(
        err("InsufficientBalance", t.id, protocol.tokens[3], 0, 1),
        vault.withdraw, t.id, protocol.tokens[3], 1, t.wallet, {"from": t.wallet},
    )


def test_withdraw_settlement_with_negative_balance_reverts(protocol, funded_trader, fund, counterparty, test_venue,
                                                           move_price):
    vault, usdc = protocol.vault, protocol.usdc
    t = funded_trader()
    fund(t.id, protocol.tokens[1], 10 * WAD)  # 30,000 USD of WETH, credit 27,000
    test_venue.trade(t.id, counterparty.id, 0, WAD // 10, BTC_PRICE, 0)  # long 0.1 BTC
    move_price(0, 50_000)
    test_venue.trade(counterparty.id, t.id, 0, WAD // 10, 50_000 * WAD, 0)  # close: realise -1,000
    assert vault.settlementOf(t.id) == -1_000 * WAD
    assert_reverts(
        err("InsufficientBalance", t.id, usdc, 0, 1),
        vault.withdraw, t.id, usdc, 1, t.wallet, {"from": t.wallet},
    )


def test_withdraw_zero_amount_reverts(protocol, funded_trader, fund):
    vault = protocol.vault
    t = funded_trader()
    fund(t.id, protocol.usdc, 10 * USDC)
    assert_reverts(err("ZeroAmount"), vault.withdraw, t.id, protocol.usdc, 0, t.wallet, {"from": t.wallet})


def test_withdraw_unknown_token_reverts(protocol, funded_trader, deployer):
    vault = protocol.vault
    t = funded_trader()
    assert_reverts(err("UnknownToken", deployer), vault.withdraw, t.id, deployer, 1, t.wallet, {"from": t.wallet})


# ------------------------------------------------------------------ initial-margin rule
def test_withdraw_settlement_below_initial_reverts(protocol, funded_trader, fund, counterparty, test_venue, mirror):
    vault, usdc = protocol.vault, protocol.usdc
    t = funded_trader()
    fund(t.id, usdc, 10_000 * USDC)
    test_venue.trade(t.id, counterparty.id, 0, WAD, BTC_PRICE, 0)  # long 1 BTC: IM = 1.5 * 10% * 60,000 = 9,000
    amount = 1_000 * USDC + 1
    m = _after(mirror, t.id, settlement_delta=-amount * SCALE)
    assert m.equity < m.initial
    assert (m.equity, m.initial) == (9_000 * WAD - SCALE, 9_000 * WAD)  # hand check of the mirror
    assert_reverts(
        err("InsufficientMargin", t.id, m.equity, m.initial),
        vault.withdraw, t.id, usdc, amount, t.wallet, {"from": t.wallet},
    )
    assert vault.settlementOf(t.id) == 10_000 * USDC * SCALE


def test_withdraw_collateral_below_initial_reverts(protocol, funded_trader, fund, counterparty, test_venue, mirror):
    vault, weth = protocol.vault, protocol.tokens[1]
    t = funded_trader()
    fund(t.id, weth, 10 * WAD)  # 30,000 USD, credit 27,000
    test_venue.trade(t.id, counterparty.id, 0, WAD, BTC_PRICE, 0)  # long 1 BTC
    # 5 WETH may go (E 13,500 >= IM 11,700) ...
    ok = _after(mirror, t.id, collateral_delta={1: -5 * WAD})
    assert ok.equity >= ok.initial
    vault.withdraw(t.id, weth, 5 * WAD, t.wallet, {"from": t.wallet})
    assert tuple(vault.margin(t.id)) == (ok.equity, ok.maintenance, ok.initial)
    # ... one more does not
    amount = WAD
    m = _after(mirror, t.id, collateral_delta={1: -amount})
    assert m.equity < m.initial
    assert_reverts(
        err("InsufficientMargin", t.id, m.equity, m.initial),
        vault.withdraw, t.id, weth, amount, t.wallet, {"from": t.wallet},
    )
    assert vault.collateralOf(t.id, 1) == 5 * WAD
    assert weth.balanceOf(t.wallet) == 5 * WAD


def test_withdraw_down_to_exact_initial_succeeds(protocol, funded_trader, fund, counterparty, test_venue, mirror):
    vault, usdc = protocol.vault, protocol.usdc
    t = funded_trader()
    fund(t.id, usdc, 10_000 * USDC)
    test_venue.trade(t.id, counterparty.id, 0, WAD, BTC_PRICE, 0)
    vault.withdraw(t.id, usdc, 1_000 * USDC, t.wallet, {"from": t.wallet})
    equity, mm, im = vault.margin(t.id)
    assert equity == im == 9_000 * WAD
    m = account_margin(*mirror(t.id))
    assert (m.equity, m.maintenance, m.initial) == (equity, mm, im)
    assert usdc.balanceOf(t.wallet) == 1_000 * USDC


# ------------------------------------------------------------------ pauses
def test_withdraw_while_trades_and_deposits_paused_succeeds(protocol, funded_trader, fund, deployer):
    vault, usdc, weth = protocol.vault, protocol.usdc, protocol.tokens[1]
    t = funded_trader()
    fund(t.id, usdc, 500 * USDC)
    fund(t.id, weth, 2 * WAD)
    protocol.params.setPause(3, {"from": deployer})
    assert protocol.params.control() & 3 == 3

    vault.withdraw(t.id, usdc, 500 * USDC, t.wallet, {"from": t.wallet})
    vault.withdraw(t.id, weth, WAD, t.wallet, {"from": t.wallet})

    assert usdc.balanceOf(t.wallet) == 500 * USDC
    assert weth.balanceOf(t.wallet) == WAD
    assert vault.settlementOf(t.id) == 0
    assert vault.collateralOf(t.id, 1) == WAD


# ------------------------------------------------------------------ subaccounts
def test_withdraw_subaccount_margin_isolated(protocol, funded_trader, fund, counterparty, test_venue, mirror):
    vault, usdc = protocol.vault, protocol.usdc
    t = funded_trader()
    sub0, sub1 = t.account(0), t.account(1)
    fund(sub0, usdc, 100_000 * USDC)
    fund(sub1, usdc, 1_000 * USDC)

    # sub 1 cannot open a position its own collateral does not cover, however rich sub 0 is
    state, layout, prices, cfg = mirror(sub1)
    state.positions[0] = (WAD, BTC_PRICE)
    m = account_margin(state, layout, prices, cfg)
    assert_reverts(
        err("InsufficientMargin", sub1, m.equity, m.initial),
        test_venue.trade, sub1, counterparty.id, 0, WAD, BTC_PRICE, 0,
    )

    # a position sized for sub 1 alone; withdrawing sub 1 below its IM fails although sub 0 holds 100,000
    test_venue.trade(sub1, counterparty.id, 0, WAD // 10, BTC_PRICE, 0)  # IM 900
    assert tuple(vault.margin(sub1)) == (1_000 * WAD, 600 * WAD, 900 * WAD)
    assert tuple(vault.margin(sub0)) == (100_000 * WAD, 0, 0)
    amount = 101 * USDC
    m = _after(mirror, sub1, settlement_delta=-amount * SCALE)
    assert_reverts(
        err("InsufficientMargin", sub1, m.equity, m.initial),
        vault.withdraw, sub1, usdc, amount, t.wallet, {"from": t.wallet},
    )
    assert_reverts(
        err("InsufficientBalance", sub1, usdc, 1_000 * USDC, 2_000 * USDC),
        vault.withdraw, sub1, usdc, 2_000 * USDC, t.wallet, {"from": t.wallet},
    )

    # sub 0 is unaffected by sub 1's position: it can withdraw everything
    vault.withdraw(sub0, usdc, 100_000 * USDC, t.wallet, {"from": t.wallet})
    assert vault.settlementOf(sub0) == 0
    assert tuple(vault.margin(sub1)) == (1_000 * WAD, 600 * WAD, 900 * WAD)


# ------------------------------------------------------------------ reentrancy
def test_withdraw_reentrant_token_cannot_reenter(protocol, funded_trader, deployer):
    vault = protocol.vault
    ree = ReentrantToken.deploy({"from": deployer})
    cid = vault.listCollateral(ree, 1, {"from": deployer}).events["CollateralListed"]["id"]
    protocol.params.setHaircut(cid, 1000, {"from": deployer})  # new listings start at a 100% haircut
    t = funded_trader()
    ree.mint(deployer, 10 * WAD, {"from": deployer})
    ree.approve(vault, 10 * WAD, {"from": deployer})
    vault.deposit(t.id, ree, 10 * WAD, {"from": deployer})
    vault.setOperator(ree, True, {"from": t.wallet})  # without the guard the nested withdrawal would be allowed
    ree.arm(vault, vault.withdraw.encode_input(t.id, ree, 5 * WAD, accounts[4]), {"from": deployer})

    vault.withdraw(t.id, ree, 2 * WAD, t.wallet, {"from": t.wallet})

    assert ree.lastCallSucceeded() is False
    assert bytes(ree.lastRevertData()) == REENTRANCY_SELECTOR
    assert vault.collateralOf(t.id, cid) == 8 * WAD
    assert ree.balanceOf(t.wallet) == 2 * WAD
    assert ree.balanceOf(accounts[4]) == 0
    assert ree.balanceOf(vault) == 8 * WAD
