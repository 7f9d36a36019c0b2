"""Integration tests for the vault's admin entry points (listCollateral, listMarket, setVenue, setFundOperator): access
control by DEFAULT_ADMIN_ROLE of RiskParameters, listing limits and packing, listing only with a valid price for the
collateral's asset, and the contract size limit."""
import brownie
import pytest
from brownie import ChainlinkFeed, TestToken, TestVenue, accounts, chain, web3

from tests.conftest import NOW, err, reverts_at

WAD = 10**18
USDC = 10**6
EIP170_LIMIT = 24_576
MAX_AGE = 3600


@pytest.fixture
def new_token(deployer):
    return lambda decimals=18: TestToken.deploy("New", "NEW", decimals, {"from": deployer})


@pytest.fixture
def price_assets(protocol, deployer):
    """price_assets(*assets): a fresh 8-decimal feed (1 USD) for each asset (the deployment prices assets 0..3 only;
    a collateral can only be listed on an asset with a valid price)."""

    def _set(*assets):
        for a in assets:
            feed = ChainlinkFeed.deploy(8, 10**8, {"from": deployer})
            protocol.oracle.setFeed(a, feed, MAX_AGE, {"from": deployer})

    return _set


@pytest.fixture
def risk_admin_only(protocol, deployer):
    """accounts[2] with RISK_ADMIN_ROLE and GUARDIAN_ROLE but not DEFAULT_ADMIN_ROLE."""
    p = protocol.params
    who = accounts[2]
    p.grantRole(p.RISK_ADMIN_ROLE(), who, {"from": deployer})
    p.grantRole(p.GUARDIAN_ROLE(), who, {"from": deployer})
    assert not p.hasRole("0x" + "00" * 32, who)
    return who


# ------------------------------------------------------------------ access control
@pytest.mark.parametrize("caller_index", [1, 2])
def test_admin_entry_points_by_non_admin_revert(protocol, new_token, risk_admin_only, caller_index):
    vault = protocol.vault
    caller = accounts[caller_index]  # 1: no role at all; 2: risk admin and guardian, but not admin
    token = new_token()
    with brownie.reverts(err("NotAdmin", caller)):
        vault.listCollateral(token, 0, {"from": caller})
    with brownie.reverts(err("NotAdmin", caller)):
        vault.listMarket(0, {"from": caller})
    with brownie.reverts(err("NotAdmin", caller)):
        vault.setVenue(caller, True, {"from": caller})
    with brownie.reverts(err("NotAdmin", caller)):
        vault.setFundOperator(caller, True, {"from": caller})
    assert vault.numCollaterals() == 4
    assert vault.numMarkets() == 4
    assert not vault.venues(caller)
    assert not vault.fundOperators(caller)


def test_list_collateral_by_new_admin_succeeds(protocol, deployer, new_token):
    vault, p = protocol.vault, protocol.params
    new_admin = accounts[3]
    p.grantRole("0x" + "00" * 32, new_admin, {"from": deployer})
    token = new_token(12)

    tx = vault.listCollateral(token, 2, {"from": new_admin})

    assert dict(tx.events["CollateralListed"]) == {"id": 4, "token": token.address, "asset": 2, "decimals": 12}
    assert tx.return_value == 4
    assert vault.numCollaterals() == 5
    assert tuple(vault.collateralInfo(4)) == (token.address, 2, 12)


def test_list_market_by_admin_succeeds(protocol, deployer):
    vault = protocol.vault
    tx = vault.listMarket(3, {"from": deployer})
    assert dict(tx.events["MarketListed"]) == {"id": 4, "asset": 3}
    assert vault.numMarkets() == 5
    assert vault.marketAsset(4) == 3
    with brownie.reverts(err("UnknownMarket", 5)):
        vault.marketAsset(5)


def test_set_venue_by_admin_toggles_trading(protocol, deployer, make_trader, fund):
    vault = protocol.vault
    venue = TestVenue.deploy(vault, {"from": deployer})
    a, b = make_trader(), make_trader()
    fund(a.id, protocol.usdc, 100_000 * USDC)
    fund(b.id, protocol.usdc, 100_000 * USDC)
    with brownie.reverts(err("NotVenue", venue)):
        venue.trade(a.id, b.id, 0, WAD // 10, 60_000 * WAD, 0, {"from": deployer})

    tx = vault.setVenue(venue, True, {"from": deployer})
    assert dict(tx.events["VenueSet"]) == {"venue": venue.address, "enabled": True}
    assert vault.venues(venue)
    venue.trade(a.id, b.id, 0, WAD // 10, 60_000 * WAD, 0, {"from": deployer})
    assert vault.positionOf(a.id, 0)[0] == WAD // 10

    tx = vault.setVenue(venue, False, {"from": deployer})
    assert dict(tx.events["VenueSet"]) == {"venue": venue.address, "enabled": False}
    with brownie.reverts(err("NotVenue", venue)):
        venue.trade(a.id, b.id, 0, WAD // 10, 60_000 * WAD, 0, {"from": deployer})


def test_set_fund_operator_by_admin_authorises_fund_withdrawals(protocol, deployer):
    vault, usdc = protocol.vault, protocol.usdc
    fund_id = vault.fundAccount()
    assert fund_id == int(vault.address, 16) << 96
    op = accounts[4]
    with brownie.reverts(err("Unauthorized", op, fund_id)):
        vault.withdraw(fund_id, usdc, USDC, op, {"from": op})

    tx = vault.setFundOperator(op, True, {"from": deployer})
    assert dict(tx.events["OperatorSet"]) == {"owner": vault.address, "operator": op.address, "approved": True}
    assert vault.isAuthorized(fund_id, op)
    vault.withdraw(fund_id, usdc, 100 * USDC, op, {"from": op})
    assert usdc.balanceOf(op) == 100 * USDC

    vault.setFundOperator(op, False, {"from": deployer})
    assert not vault.isAuthorized(fund_id, op)
    with brownie.reverts(err("Unauthorized", op, fund_id)):
        vault.withdraw(fund_id, usdc, USDC, op, {"from": op})


def test_set_operator_does_not_grant_fund_access(protocol):
    """An owner's own operator list never covers the fund: only the admin's fund operators do."""
    vault = protocol.vault
    op = accounts[4]
    vault.setOperator(op, True, {"from": accounts[5]})
    assert vault.isAuthorized(int(accounts[5].address, 16) << 96, op)
    assert not vault.isAuthorized(vault.fundAccount(), op)


# ------------------------------------------------------------------ listing rules
def test_list_collateral_already_listed_reverts(protocol, deployer):
    vault = protocol.vault
    for token in [protocol.usdc, *protocol.tokens]:
        with brownie.reverts(err("AlreadyListed", token)):
            vault.listCollateral(token, 0, {"from": deployer})
    assert vault.numCollaterals() == 4


def test_list_collateral_twice_reverts(protocol, deployer, new_token):
    vault = protocol.vault
    token = new_token()
    vault.listCollateral(token, 1, {"from": deployer})
    with brownie.reverts(err("AlreadyListed", token)):
        vault.listCollateral(token, 2, {"from": deployer})
    assert vault.numCollaterals() == 5


def test_list_unknown_asset_reverts(protocol, deployer, new_token, price_assets):
    vault = protocol.vault
    price_assets(7)
    token = new_token()
    with brownie.reverts(err("UnknownAsset", 8)):
        vault.listCollateral(token, 8, {"from": deployer})
    with brownie.reverts(err("UnknownAsset", 8)):
        vault.listMarket(8, {"from": deployer})
    with brownie.reverts(err("UnknownAsset", 2**255)):
        vault.listMarket(2**255, {"from": deployer})
    # asset 7 is the last valid one
    vault.listCollateral(token, 7, {"from": deployer})
    vault.listMarket(7, {"from": deployer})
    assert tuple(vault.collateralInfo(4))[1] == 7
    assert vault.marketAsset(4) == 7


def test_list_collateral_too_many_decimals_reverts(protocol, deployer, new_token):
    """Decimals are packed in 5 bits: 31 is the most a listing can hold."""
    vault = protocol.vault
    wide = new_token(32)
    with brownie.reverts(err("UnknownToken", wide)):
        vault.listCollateral(wide, 0, {"from": deployer})
    ok = new_token(31)
    vault.listCollateral(ok, 0, {"from": deployer})
    assert tuple(vault.collateralInfo(4)) == (ok.address, 0, 31)


def test_list_collateral_when_full_reverts(protocol, deployer, new_token, price_assets):
    vault = protocol.vault
    price_assets(4, 5, 6, 7)
    listed = {j: tuple(vault.collateralInfo(j)) for j in range(4)}
    for j in range(4, 16):  # ids 4..15 with every asset and a spread of decimals, to check the packing
        token = new_token((j * 7) % 32)
        tx = vault.listCollateral(token, j % 8, {"from": deployer})
        assert tx.events["CollateralListed"]["id"] == j
        listed[j] = (token.address, j % 8, (j * 7) % 32)
    assert vault.numCollaterals() == 16
    assert {j: tuple(vault.collateralInfo(j)) for j in range(16)} == listed
    extra = new_token()
    with brownie.reverts(err("ListingFull", 16)):
        vault.listCollateral(extra, 0, {"from": deployer})
    with brownie.reverts(err("UnknownToken", "0x" + "00" * 20)):
        vault.collateralInfo(16)


def test_list_collateral_without_feed_reverts_feed_not_set(protocol, deployer, new_token, price_assets):
    """No feed for asset 5: the listing reverts with the oracle's error and lists nothing; with a feed it goes through."""
    vault = protocol.vault
    token = new_token()
    assert tuple(protocol.oracle.feedOf(5))[0] == "0x" + "00" * 20
    with brownie.reverts(err("FeedNotSet", 5)):
        vault.listCollateral(token, 5, {"from": deployer})
    assert vault.numCollaterals() == 4
    price_assets(5)
    vault.listCollateral(token, 5, {"from": deployer})
    assert tuple(vault.collateralInfo(4)) == (token.address, 5, 18)


def test_list_collateral_with_stale_price_reverts_price_stale(protocol, deployer, new_token):
    """The ETH feed's answer is older than its max age: listing a token on ETH reverts PriceStale until it is fresh."""
    vault, f = protocol.vault, protocol.feeds[1]
    token = new_token()
    old = chain[-1].timestamp - MAX_AGE - 1
    f.updateRoundData(77, 3_000 * 10**8, old, old, {"from": deployer})
    with reverts_at("PriceStale", 1, old, MAX_AGE, NOW):
        vault.listCollateral(token, 1, {"from": deployer})
    assert vault.numCollaterals() == 4
    f.updateAnswer(3_000 * 10**8, {"from": deployer})
    tx = vault.listCollateral(token, 1, {"from": deployer})
    assert tx.events["CollateralListed"]["id"] == 4


def test_list_collateral_highest_id_usable(protocol, deployer, new_token, make_trader, fund, mirror):
    """A deposit into collateral id 15 (the top bit of the uint16 mask) is valued like any other."""
    from offchain.margin.exact import account_margin

    vault = protocol.vault
    for _ in range(4, 16):
        token = new_token(8)
        vault.listCollateral(token, 0, {"from": deployer})
    protocol.params.setHaircut(15, 2000, {"from": deployer})
    t = make_trader()
    fund(t.id, token, 10**8)  # 1 unit on BTC at 60,000
    assert tuple(vault.masksOf(t.id)) == (0, 1 << 15)
    equity, mm, im = vault.margin(t.id)
    assert equity == 48_000 * WAD
    m = account_margin(*mirror(t.id))
    assert (m.equity, m.maintenance, m.initial) == (equity, mm, im)


def test_list_market_when_full_reverts(protocol, deployer):
    vault = protocol.vault
    for m in range(4, 16):
        tx = vault.listMarket(m % 8, {"from": deployer})
        assert tx.events["MarketListed"]["id"] == m
    assert vault.numMarkets() == 16
    assert [vault.marketAsset(m) for m in range(16)] == [0, 1, 2, 3] + [m % 8 for m in range(4, 16)]
    with brownie.reverts(err("ListingFull", 16)):
        vault.listMarket(0, {"from": deployer})
    assert vault.numMarkets() == 16


# ------------------------------------------------------------------ size
def test_deploy_vault_runtime_code_under_size_limit(protocol):
    """Both halves of the vault (its own code and the extension it delegates to) fit the EIP-170 limit."""
    for address in (protocol.vault.address, protocol.vault.extension()):
        size = len(web3.eth.get_code(address))
        assert 0 < size < EIP170_LIMIT, f"runtime code of {address} is {size} bytes"
