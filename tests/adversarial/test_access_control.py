"""Adversarial catalogue: unauthorised calls to every privileged function of every contract.

The list of privileged functions is not written by hand: it is read from the sources. A function is *privileged*
when it is external/public, not view/pure, and its header or body holds an access check (a role or owner modifier,
`_requireAdmin`, `_requireAuthorized`, `hasRole`, `isAuthorized`, a comparison with `msg.sender`, `venues[msg.sender]`),
in contracts/*.sol and in the OpenZeppelin contracts they inherit. Every state-changing function of every ABI must be
either privileged, with a case in CASES, or in PERMISSIONLESS with the reason it needs no check. A new function that
is neither fails `test_every_state_changing_function_is_classified`, and a new privileged function without a case
fails `test_every_privileged_function_has_a_case`.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from brownie import (AccountLens, CrossMarginVault, OptionMarkets, OracleRouter, OrderSettlement, RiskParameters, TestToken,
                     VaultExtension, accounts)

from offchain.chain import merge_abis
from offchain.orders import Order
from tests.adversarial.helpers import USDC, WAD, deposit
from tests.conftest import Trader, assert_reverts, err

ROOT = Path(__file__).resolve().parents[2]
OZ = ROOT / "node_modules" / "@openzeppelin" / "contracts"
SOURCES = {  # contract -> its source and the sources of what it inherits that define public functions
    "CrossMarginVault": [ROOT / "contracts/CrossMarginVault.sol", ROOT / "contracts/VaultExtension.sol",
                         ROOT / "contracts/VaultBase.sol", OZ / "utils/ReentrancyGuard.sol"],
    "RiskParameters": [ROOT / "contracts/RiskParameters.sol", OZ / "access/AccessControl.sol"],
    "OracleRouter": [ROOT / "contracts/OracleRouter.sol"],
    "OrderSettlement": [ROOT / "contracts/OrderSettlement.sol", OZ / "utils/cryptography/EIP712.sol"],
    "AccountLens": [ROOT / "contracts/AccountLens.sol"],
    "OptionMarkets": [ROOT / "contracts/OptionMarkets.sol"],
}
ABIS = {"CrossMarginVault": merge_abis(CrossMarginVault.abi, VaultExtension.abi), "RiskParameters": RiskParameters.abi,
        "OracleRouter": OracleRouter.abi, "OrderSettlement": OrderSettlement.abi, "AccountLens": AccountLens.abi,
        "OptionMarkets": OptionMarkets.abi}
GUARD = re.compile(
    r"\bonlyRole_?\(|\bonlyOwner\b|\bonlyVault\b|_requireAdmin\(\)|_requireAuthorized\(|\bhasRole\(|\bisAuthorized\(|_mayRaise\(|"
    r"msg\.sender\s*[!=]=|!=\s*msg\.sender|_msgSender\(\)\s*[!=]=|!=\s*_msgSender\(\)|venues\[msg\.sender\]"
)
# State-changing functions that need no access check, and why.
PERMISSIONLESS = {
    ("CrossMarginVault", "deposit"): "adds funds to any account (credited by balance difference)",
    ("CrossMarginVault", "setOperator"): "writes only the caller's own operator set",
    ("CrossMarginVault", "liquidate"): "permissionless by design while E < MM (AccountHealthy otherwise)",
    ("CrossMarginVault", "resolveBadDebt"): "pays settlement tokens in; cannot take anything out",
    ("OrderSettlement", "settle"): "authorised by the two EIP-712 signatures of owners or operators",
    ("CrossMarginVault", "settleExpired"): "turns fixed option positions into their payoff in cash: equity unchanged",
    ("OptionMarkets", "fixExpiry"): "fixes a series from its feed's own rounds, the round id proving the first one",
}


def _functions(path: Path):
    """(name, header, body) of every function in a Solidity file (bodies found by brace matching)."""
    src = re.sub(r"//[^\n]*|/\*.*?\*/", "", path.read_text(), flags=re.S)
    for m in re.finditer(r"\bfunction\s+(\w+)\s*\(", src):
        i, depth = m.end(), 1
        while depth:  # the parameter list
            depth += {"(": 1, ")": -1}.get(src[i], 0)
            i += 1
        j = i
        while src[j] not in "{;":
            j += 1
        header = src[i:j]
        if src[j] == ";":
            yield m.group(1), header, ""
            continue
        k, depth = j + 1, 1
        while depth:
            depth += {"{": 1, "}": -1}.get(src[k], 0)
            k += 1
        yield m.group(1), header, src[j:k]


def privileged_from_source() -> set[tuple[str, str]]:
    out = set()
    for contract, paths in SOURCES.items():
        for path in paths:
            for name, header, body in _functions(path):
                if not re.search(r"\b(external|public)\b", header) or re.search(r"\b(view|pure)\b", header):
                    continue
                if GUARD.search(header) or GUARD.search(body):
                    out.add((contract, name))
    return out


def state_changing_from_abi() -> set[tuple[str, str]]:
    return {
        (contract, item["name"])
        for contract, abi in ABIS.items()
        for item in abi
        if item["type"] == "function" and item["stateMutability"] not in ("view", "pure")
    }


@pytest.fixture(scope="module")
def world(protocol, deployer):
    """A stranger with no role, a risk admin + guardian without the admin role, and a funded trader."""
    p = protocol.params
    half = accounts[3]
    p.grantRole(p.RISK_ADMIN_ROLE(), half, {"from": deployer})
    p.grantRole(p.GUARDIAN_ROLE(), half, {"from": deployer})
    trader = Trader(protocol.vault)
    deposit(protocol, deployer, trader.id, protocol.usdc, 1_000 * USDC)
    token = TestToken.deploy("New", "NEW", 18, {"from": deployer})
    return dict(stranger=accounts[8], half=half, trader=trader, token=token,
                ADMIN=b"\0" * 32, RISK=bytes(p.RISK_ADMIN_ROLE()), GUARDIAN=bytes(p.GUARDIAN_ROLE()))


def _cases(protocol, w, caller):
    """(contract, function) -> (bound function, args, expected revert) for `caller`, who holds no role that the
    function asks for."""
    v, p, o, s, om = protocol.vault, protocol.params, protocol.oracle, protocol.venue, protocol.options
    t, usdc, token = w["trader"], protocol.usdc, w["token"]
    order = Order(t.id, 0, True, WAD, 60_000 * WAD, 2**40, 1)
    not_admin, not_risk = err("NotAdmin", caller), err("Unauthorized", caller, w["RISK"])
    not_updater = err("Unauthorized", caller, bytes(p.RISK_UPDATER_ROLE()))
    return {
        ("CrossMarginVault", "listCollateral"): (v.listCollateral, (token, 0), not_admin),
        ("CrossMarginVault", "listMarket"): (v.listMarket, (0,), not_admin),
        ("CrossMarginVault", "setVenue"): (v.setVenue, (caller, True), not_admin),
        ("CrossMarginVault", "setFundOperator"): (v.setFundOperator, (caller, True), not_admin),
        ("CrossMarginVault", "setMarginConfigPointer"): (v.setMarginConfigPointer, (caller,), not_admin),
        ("CrossMarginVault", "setControl"): (v.setControl, (1,), not_admin),  # RiskParameters only: pause trades
        ("CrossMarginVault", "settleTrade"): (v.settleTrade, (t.id, v.fundAccount(), 0, 1, 60_000 * WAD, 0, 0),
                                              err("NotVenue", caller)),
        ("CrossMarginVault", "withdraw"): (v.withdraw, (t.id, usdc, 1, caller), err("Unauthorized", caller, t.id)),
        ("RiskParameters", "setVault"): (p.setVault, (caller,), err("Unauthorized", caller, w["ADMIN"])),
        ("RiskParameters", "setLoosenDelay"): (p.setLoosenDelay, (3600,), err("Unauthorized", caller, w["ADMIN"])),
        ("RiskParameters", "setRiskWeight"): (p.setRiskWeight, (0, 100), not_risk),
        ("RiskParameters", "setCorrelation"): (p.setCorrelation, (0, 1, -10_000), not_risk),
        ("RiskParameters", "setStressVector"): (p.setStressVector, (0, [0] * 8), not_risk),
        ("RiskParameters", "popStressVector"): (p.popStressVector, (), not_risk),
        ("RiskParameters", "setMarginScalars"): (p.setMarginScalars, (10_000, 0, 0), not_risk),
        ("RiskParameters", "setHaircut"): (p.setHaircut, (0, 5000), not_risk),
        ("RiskParameters", "setLiquidationDiscount"): (p.setLiquidationDiscount, (0, 0), not_risk),
        ("RiskParameters", "setMarket"): (p.setMarket, (0, 10, 2**95 - 1, 2**95 - 1), not_risk),
        ("RiskParameters", "setLiquidation"): (p.setLiquidation, (10_000, 0, 10_000, 10_000, 1000 * WAD, 0),
                                               not_risk),
        ("RiskParameters", "setPriceBand"): (p.setPriceBand, (2000,), not_risk),
        ("RiskParameters", "setFunding"): (p.setFunding, (3600, 8 * 3600, 0, 0, 0, 0, 0, 0), not_risk),
        ("RiskParameters", "setMarketDepth"): (p.setMarketDepth, (0, 1), not_risk),
        # the dynamic add-ons also accept an updater: a caller with neither role is told the updater's role
        ("RiskParameters", "setVolScaler"): (p.setVolScaler, (0, 40_000), not_updater),
        ("RiskParameters", "setCorrelationBreak"): (p.setCorrelationBreak, (10_000,), not_updater),
        ("RiskParameters", "setPause"): (p.setPause, (3,), err("Unauthorized", caller, w["GUARDIAN"])),
        ("RiskParameters", "cancel"): (p.cancel, (b"\1" * 32,), err("Unauthorized", caller, w["GUARDIAN"])),
        ("RiskParameters", "grantRole"): (p.grantRole, (w["ADMIN"], caller),
                                          err("AccessControlUnauthorizedAccount", caller, w["ADMIN"])),
        ("RiskParameters", "revokeRole"): (p.revokeRole, (w["ADMIN"], accounts[0]),
                                           err("AccessControlUnauthorizedAccount", caller, w["ADMIN"])),
        ("RiskParameters", "renounceRole"): (p.renounceRole, (w["ADMIN"], accounts[0]),
                                             err("AccessControlBadConfirmation")),
        ("OracleRouter", "setOwner"): (o.setOwner, (caller,), err("NotOwner", caller)),
        ("OracleRouter", "setFeed"): (o.setFeed, (0, protocol.feeds[1], 1), err("NotOwner", caller)),
        ("OracleRouter", "setVolFeed"): (o.setVolFeed, (0, protocol.vol_feeds[1], 1, 1, 1), err("NotOwner", caller)),
        ("CrossMarginVault", "setOptionMarkets"): (v.setOptionMarkets, (caller,), not_admin),
        ("CrossMarginVault", "settleOptionTrade"): (v.settleOptionTrade, (t.id, v.fundAccount(), 0, 1, WAD, 0, 0),
                                                    err("NotVenue", caller)),
        ("RiskParameters", "setOptionSkew"): (p.setOptionSkew, (0, 6000), not_risk),
        ("RiskParameters", "setOptionGrid"): (p.setOptionGrid, (20_000, 9_000, 4, 5_000), not_risk),
        ("RiskParameters", "setOptionTrading"): (p.setOptionTrading, (1, 0), not_risk),
        ("OptionMarkets", "listSeries"): (om.listSeries, (10, 0, True, 60_000 * WAD, 2**39), err("NotAdmin", caller)),
        ("OptionMarkets", "applyFill"): (om.applyFill, ((1, 2, 0, 0, 0, WAD, WAD, 0), 0), err("NotVault", caller)),
        ("OptionMarkets", "takeOver"): (om.takeOver, (1, 0, 1, 0, 0, WAD, [0] * 8, 0), err("NotVault", caller)),
        ("OptionMarkets", "settleExpired"): (om.settleExpired, (1, 1, [0]), err("NotVault", caller)),
        ("OrderSettlement", "setFees"): (s.setFees, (100, 100), err("NotAdmin", caller)),
        ("OrderSettlement", "cancel"): (s.cancel, (order,), err("BadSigner", t.id, caller)),
        ("OrderSettlement", "cancelAllBefore"): (s.cancelAllBefore, (t.id, 2**255), err("BadSigner", t.id, caller)),
    }


# Functions that only the admin may call: a risk admin + guardian must be refused them too.
ADMIN_ONLY = {k for k in [
    ("CrossMarginVault", "listCollateral"), ("CrossMarginVault", "listMarket"), ("CrossMarginVault", "setVenue"),
    ("CrossMarginVault", "setFundOperator"), ("RiskParameters", "setVault"), ("RiskParameters", "setLoosenDelay"),
    ("RiskParameters", "grantRole"), ("RiskParameters", "revokeRole"), ("OracleRouter", "setOwner"),
    ("OracleRouter", "setFeed"), ("OrderSettlement", "setFees"), ("OracleRouter", "setVolFeed"),
    ("CrossMarginVault", "setOptionMarkets"), ("OptionMarkets", "listSeries"),
]}


def test_every_state_changing_function_is_classified():
    privileged = privileged_from_source()
    abi = state_changing_from_abi()
    assert privileged <= abi, f"guarded in source but not in an ABI: {privileged - abi}"
    unclassified = abi - privileged - set(PERMISSIONLESS)
    assert not unclassified, f"state-changing functions with no access check and no PERMISSIONLESS reason: {unclassified}"
    assert not (privileged & set(PERMISSIONLESS)), "a function cannot be both"


def test_every_privileged_function_has_a_case(protocol, world):
    cases = set(_cases(protocol, world, world["stranger"]))
    privileged = privileged_from_source()
    assert privileged == cases, f"no case: {privileged - cases}; stale case: {cases - privileged}"
    assert ADMIN_ONLY <= privileged


@pytest.mark.parametrize("who", ["stranger", "half"])
def test_unauthorised_calls_revert_and_move_nothing(protocol, world, ledger, who):
    """Every privileged function, called by a stranger (no role) and by a risk admin + guardian who is not the admin
    (for the admin-only functions): the exact error, as a call and as a mined transaction, and nothing moves."""
    caller = world[who]
    cases = _cases(protocol, world, caller)
    if who == "half":
        cases = {k: c for k, c in cases.items() if k in ADMIN_ONLY}
    assert len(cases) == (len(ADMIN_ONLY) if who == "half" else len(privileged_from_source()))
    p = protocol.params
    words = lambda: (p.control(), p.liquidationConfig(), p.marketWord(0), p.marginConfigPointer(),  # noqa: E731
                     protocol.oracle.owner(), protocol.oracle.feedOf(0), protocol.venue.makerFeeBps(),
                     protocol.vault.numMarkets(), protocol.vault.numCollaterals(), p.vault(),
                     p.hasRole(world["ADMIN"], caller), protocol.vault.venues(caller),
                     protocol.vault.controlWord(), protocol.vault.marginConfigPointer())
    before = words()
    with ledger([world["trader"].id], [caller]) as l:
        for (contract, name), (fn, args, expected) in sorted(cases.items()):
            assert_reverts(expected, fn, *args, {"from": caller})
    l.assert_unchanged()
    assert words() == before
