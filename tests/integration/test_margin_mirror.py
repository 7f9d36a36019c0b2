"""The vault's margin of random on-chain portfolios equals the Python mirror to the wei (hypothesis).

Each example builds a fresh subaccount through real deposits and trades (signature-free test venue, at the oracle
price), moves the Chainlink feeds, realises part of the P&L (so settlement balances go negative too), moves prices
again, then compares every field of `marginDetail` and the lens with `offchain.margin.exact`.
"""
import itertools

import pytest
from brownie import accounts
from brownie.exceptions import VirtualMachineError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain.margin.defaults import DEFAULT_SPEC
from offchain.margin.exact import account_margin, standard_requirement

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

WAD = 10**18
BASE_PRICES = (60_000, 3_000, 150, 15)
_subs = itertools.count(1)


@pytest.fixture(scope="module")
def maker_wallet():
    """Owner of the deep-pocketed counterparties (one subaccount per example, so no position cap is reached)."""
    return accounts.add()


@pytest.fixture(scope="module")
def funder(protocol, deployer):
    """The deployer with large balances and allowances of every token, so each deposit is one transaction."""
    for token in [protocol.usdc, *protocol.tokens]:
        token.mint(deployer, 2**200, {"from": deployer})
        token.approve(protocol.vault, 2**256 - 1, {"from": deployer})
    return deployer


def sizes(market: int):
    cap = DEFAULT_SPEC.markets[market].max_position_size  # 200 million USD at the start price
    return st.one_of(
        st.just(0),
        st.integers(-(10**18), 10**18),  # up to one unit
        st.integers(-(10**21), 10**21),
        st.integers(-cap, cap),  # up to the market's max position size
    )
price_moves = st.lists(st.floats(0.5, 2.0), min_size=4, max_size=4)


@st.composite
def portfolios(draw):
    return {
        "usdc": draw(st.one_of(st.just(0), st.integers(1, 10**20))),  # token units (6 decimals)
        # up to 1e9 whole tokens of each collateral (decimals 8, 18, 9, 18)
        "collateral": [draw(st.one_of(st.just(0), st.integers(1, 10 ** (d + 9)))) for d in (8, 18, 9, 18)],
        "sizes": [draw(sizes(m)) for m in range(4)],
        "move1": draw(price_moves),
        "close": [draw(st.floats(0, 1)) for _ in range(4)],
        "move2": draw(price_moves),
    }


def _set_prices(protocol, deployer, factors):
    for asset, (base, f) in enumerate(zip(BASE_PRICES, factors)):
        protocol.feeds[asset].updateAnswer(int(base * f * 10**8), {"from": deployer})


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(p=portfolios())
def test_vault_margin_equals_mirror_random_portfolios(protocol, test_venue, maker_wallet, funder, mirror, p):
    vault = protocol.vault
    deployer = funder
    sub = next(_subs)
    acct = (int(deployer.address, 16) << 96) | sub
    maker = (int(maker_wallet.address, 16) << 96) | sub
    vault.deposit(maker, protocol.usdc, 10**15 * 10**6, {"from": deployer})
    if p["usdc"]:
        vault.deposit(acct, protocol.usdc, p["usdc"], {"from": deployer})
    for j, amount in enumerate(p["collateral"]):
        if amount:
            vault.deposit(acct, protocol.tokens[j], amount, {"from": deployer})
    for market, q in enumerate(p["sizes"]):
        if q:
            _trade(test_venue, protocol, acct, maker, market, q, deployer)
    _set_prices(protocol, deployer, p["move1"])
    for market, frac in enumerate(p["close"]):
        size = vault.positionOf(acct, market)[0]
        q = -int(size * frac)
        if q:
            _trade(test_venue, protocol, acct, maker, market, q, deployer)
    _set_prices(protocol, deployer, p["move2"])

    state, layout, prices, cfg = mirror(acct)
    model = account_margin(state, layout, prices, cfg)
    rates = [DEFAULT_SPEC.markets[m].standard_mmr_bps for m in range(4)]
    d = vault.marginDetail(acct)
    b = d["margin"]
    assert d["equity"] == model.equity
    assert tuple(d["delta"]) == model.delta
    assert tuple(d["gross"]) == model.gross
    assert tuple(b["kRegime"]) == model.margin.k_regime
    assert b["kStress"] == model.margin.k_stress
    if model.margin.k_stress:
        assert b["worstScenario"] == model.margin.worst_scenario
    assert b["basis"] == model.margin.basis
    assert b["floorCharge"] == model.margin.floor_charge
    assert b["maintenance"] == model.maintenance
    assert b["initial"] == model.initial
    assert d["standard"] == standard_requirement(state, layout, prices, rates)
    assert tuple(vault.margin(acct)) == (model.equity, model.maintenance, model.initial)
    h = protocol.lens.healthOf([acct])[0]
    assert (h["equity"], h["maintenance"], h["initial"]) == (model.equity, model.maintenance, model.initial)


def _trade(test_venue, protocol, acct, maker, market, q, deployer):
    """Trade at the oracle price; an opening trade the account cannot margin is simply not part of the portfolio."""
    price = protocol.oracle.price(market)
    buyer, seller = (acct, maker) if q > 0 else (maker, acct)
    args = (buyer, seller, market, abs(q), price, 0, {"from": deployer})
    try:
        test_venue.trade.call(*args)
    except VirtualMachineError as e:
        assert e.revert_msg.startswith("InsufficientMargin"), e.revert_msg
        return
    test_venue.trade(*args)
