"""The vault's margin of random on-chain portfolios equals the Python mirror to the wei (hypothesis); with funding:
random histories of fills at premiums and of time, the vault's funding state and margin equal the Python rule's.

Each example builds a fresh subaccount through real deposits and trades (signature-free test venue, at the oracle
price), moves the Chainlink feeds, realises part of the P&L (so settlement balances go negative too), moves prices
again, then compares every field of `marginDetail` and the lens with `offchain.margin.exact`.
"""
import itertools
import logging
import os

import pytest
from brownie import accounts, chain, web3
from brownie.exceptions import VirtualMachineError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain.margin import funding as fr
from tests.fixture_spec import FIXTURE_SPEC
from offchain.margin.exact import account_margin, standard_requirement
from offchain.margin.snapshot import read_account_state as read_state
from offchain.margin.snapshot import read_funding_word, read_layout, read_margin_config, read_prices

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
    cap = FIXTURE_SPEC.markets[market].max_position_size  # 200 million USD at the start price
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
        # the dynamic add-ons at comparison time: volatility scalers, correlation break, liquidation depths (units
        # of 10 million USD; 1 = a charge of 100% at 10 million of notional)
        "vol": [draw(st.sampled_from([10_000, 10_000, 10_001, 13_000, 40_000])) for _ in range(4)],
        "break": draw(st.sampled_from([0, 0, 1, 5_000, 10_000])),
        "depth": [draw(st.sampled_from([0, 0, 1, 100, 65_535])) for _ in range(4)],
    }


def _set_prices(protocol, deployer, factors):
    for asset, (base, f) in enumerate(zip(BASE_PRICES, factors)):
        protocol.feeds[asset].updateAnswer(int(base * f * 10**8), {"from": deployer})


@settings(max_examples=int(os.environ.get("XMARGIN_MIRROR_PORTFOLIOS", 80)), deadline=None,
          suppress_health_check=list(HealthCheck))
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
    for k, v in enumerate(p["vol"]):  # the loosening delay is 0: lowering applies at once too
        protocol.params.setVolScaler(k, v, {"from": deployer})
    protocol.params.setCorrelationBreak(p["break"], {"from": deployer})
    for m, units in enumerate(p["depth"]):
        protocol.params.setMarketDepth(m, units, {"from": deployer})

    state, layout, prices, cfg = mirror(acct)
    assert [cfg.vol_scaler(k) for k in range(4)] == p["vol"] and cfg.correlation_break == p["break"]
    model = account_margin(state, layout, prices, cfg)
    rates = [FIXTURE_SPEC.markets[m].standard_mmr_bps for m in range(4)]
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
    assert (b["kCorrelated"], b["concentration"]) == (model.margin.k_correlated, model.margin.concentration)
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


# ---------------------------------------------------------------------------------------------- funding histories
HOUR = 3600
# a step of a history: a fill of one of two traders against the maker (size in USD, signed; the fill price's premium
# over the index in bps, within the 2% band; the fee each side pays, USD), time passing (the feeds refreshed at the
# same prices), or a price move
fills = st.tuples(st.just("fill"), st.integers(0, 1), st.integers(0, 3), st.integers(-300_000, 300_000),
                  st.integers(-60, 60), st.sampled_from([0, 0, 10, 200, 2_000, 20_000]))
waits = st.tuples(st.just("wait"), st.sampled_from([1, 60, 900, HOUR, 3 * HOUR, 8 * HOUR]))
moves = st.tuples(st.just("move"), st.integers(0, 3), st.floats(0.8, 1.25))
histories = st.lists(st.one_of(fills, fills, waits, moves), min_size=3, max_size=8)


@pytest.fixture
def stored_funding(protocol, deployer):
    """Open-interest caps of 20 million USD (a premium depth of 40,000 USD of fees, so fills move the rate), and each
    market's stored funding state as the vault's FundingUpdated events left it (kept current by the test)."""
    vault = protocol.vault
    for m, spec in FIXTURE_SPEC.markets.items():  # lower caps: a tightening, applied at once
        protocol.params.setMarket(m, spec.standard_mmr_bps, 20_000_000 * WAD // BASE_PRICES[m],
                                  spec.max_position_size, {"from": deployer})
    stored = {m: fr.MarketFunding() for m in range(4)}
    for ev in vault.events.get_sequence(0, event_type="FundingUpdated"):
        a = ev.args
        stored[a.market] = fr.MarketFunding(a.longIndex, a.shortIndex, a.updatedAt, a.premium, a.weight, a.carry)
    return stored


def _markets_now(protocol, stored, block):
    """Every market's funding state advanced by the Python rule to ``block``'s time, checked against the vault's
    ``marketFunding`` view field by field (the rate that applies from then on included)."""
    params, vault = protocol.params, protocol.vault
    word = read_funding_word(params)
    cfg = read_margin_config(params)
    now = web3.eth.get_block(block).timestamp
    markets = {}
    for m in range(4):
        price = protocol.oracle.price(m, block_identifier=block)
        cap = int(params.marketWord(m, block_identifier=block)) >> 16 & (2**112 - 1)
        rw = cfg.risk_weight(m)
        advanced, _ = fr.advance(stored[m], now, word, cap, price, rw)
        view = vault.marketFunding(m, block_identifier=block)
        rate = fr.rate(advanced.premium, advanced.weight, fr.depth_of(cap, price, word), word, rw)
        assert (view["longIndex"], view["shortIndex"], view["premium"], view["weight"], view["updatedAt"],
                view["carry"], view["ratePerSecond"]) == (advanced.long_index, advanced.short_index, advanced.premium,
                                                          advanced.weight, advanced.updated_at, advanced.carry, rate)
        markets[m] = advanced
    return markets


def _fill(protocol, test_venue, deployer, stored, buyer, seller, market, size, premium_bps, fee_usd):
    """A fill through the venue; the market's stored funding state after it must be the Python rule's (the interval
    advanced, then the fill's fee-weighted premium added). Returns whether it went through."""
    oracle = protocol.oracle.price(market)
    price = oracle * (10_000 + premium_bps) // 10_000
    args = (buyer, seller, market, size, price, fee_usd * WAD, {"from": deployer})
    try:
        test_venue.trade.call(*args)
    except VirtualMachineError as e:
        # the venue's caps refuse a random fill too: open interest, or one account's position (PositionTooLarge)
        assert e.revert_msg.startswith(("InsufficientMargin", "OpenInterestTooLarge", "PositionTooLarge")), e.revert_msg
        return False
    tx = test_venue.trade(*args)
    word = read_funding_word(protocol.params)
    cap = int(protocol.params.marketWord(market)) >> 16 & (2**112 - 1)
    rw = read_margin_config(protocol.params).risk_weight(market)
    if "FundingUpdated" in tx.events:
        a = tx.events["FundingUpdated"][0]
        advanced, _ = fr.advance(stored[market], web3.eth.get_block(tx.block_number).timestamp, word, cap, oracle, rw)
        expected = fr.add_fill(advanced, price, oracle, 2 * fee_usd * WAD, word)
        stored[market] = fr.MarketFunding(a["longIndex"], a["shortIndex"], a["updatedAt"], a["premium"], a["weight"],
                                          a["carry"])
        assert stored[market] == expected, "the stored funding state after a fill differs from the Python rule"
    return True


def _compare(protocol, stored, accounts_):
    """The vault's margin, marginDetail and fundingOf of each account equal the mirror's at the latest block, with
    every market's funding state from the Python rule."""
    vault = protocol.vault
    block = web3.eth.block_number
    markets = _markets_now(protocol, stored, block)
    layout = read_layout(vault)
    prices = read_prices(protocol.oracle, layout)
    cfg = read_margin_config(protocol.params)
    accrued_seen = 0
    for acct in accounts_:
        state = read_state(vault, acct)
        model = account_margin(state, layout, prices, cfg, markets)
        d = vault.marginDetail(acct, block_identifier=block)
        owed = 0
        for m, (size, _) in state.positions.items():
            due = fr.accrued(size, state.funding.get(m, 0), markets[m])
            assert tuple(vault.fundingOf(acct, m, block_identifier=block)) == (due, state.funding.get(m, 0))
            owed += due
        accrued_seen += owed != 0
        assert d["funding"] == owed
        assert d["equity"] == model.equity
        assert (tuple(d["delta"]), tuple(d["gross"])) == (model.delta, model.gross)
        assert (d["margin"]["maintenance"], d["margin"]["initial"]) == (model.maintenance, model.initial)
        assert tuple(vault.margin(acct, block_identifier=block)) == (model.equity, model.maintenance, model.initial)
    return accrued_seen


@settings(max_examples=int(os.environ.get("XMARGIN_MIRROR_HISTORIES", 200)), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(history=histories)
def _funding_histories(protocol, test_venue, maker_wallet, funder, stored_funding, history):
    """Random histories of fills (at premiums, paying fees: the funding rate moves), price moves and time (seconds
    to 8 hours): every fill stores the funding state the Python rule computes, and after every wait and at the end
    the vault's funding state of every market equals ``offchain.margin.funding`` advanced from the stored one, and each
    trader's margin, marginDetail and fundingOf equal ``offchain.margin.exact`` to the wei."""
    vault, deployer = protocol.vault, funder
    sub = next(_subs)
    traders = [(int(deployer.address, 16) << 96) | (sub << 8) | i for i in range(2)]
    maker = (int(maker_wallet.address, 16) << 96) | sub
    vault.deposit(maker, protocol.usdc, 10**12 * 10**6, {"from": deployer})
    for t in traders:
        vault.deposit(t, protocol.usdc, 400_000 * 10**6, {"from": deployer})
    accrued = 0  # comparisons of an account with non-zero accrued funding
    for step in history:
        if step[0] == "fill":
            _, who, market, usd, premium, fee = step
            size = abs(usd) * WAD * WAD // protocol.oracle.price(market)
            if size:
                buyer, seller = (traders[who], maker) if usd > 0 else (maker, traders[who])
                if _fill(protocol, test_venue, deployer, stored_funding, buyer, seller, market, size, premium, fee):
                    FUNDING_SEEN["fills"] += 1
        elif step[0] == "wait":
            chain.sleep(step[1])
            for feed in protocol.feeds:
                feed.updateAnswer(feed.latestRoundData()[1], {"from": deployer})
            accrued += _compare(protocol, stored_funding, traders)
        else:
            _, asset, f = step
            feed = protocol.feeds[asset]
            feed.updateAnswer(max(int(feed.latestRoundData()[1] * f), 1), {"from": deployer})
    accrued += _compare(protocol, stored_funding, traders)
    FUNDING_SEEN["histories"] += 1
    FUNDING_SEEN["histories with accrued funding"] += accrued > 0


FUNDING_SEEN = {"histories": 0, "fills": 0, "histories with accrued funding": 0}


def test_vault_equals_mirror_with_funding_over_random_histories(protocol, test_venue, maker_wallet, funder,
                                                                  stored_funding):
    """The histories of ``_funding_histories``; then, that at least a fifth of them compared an account with non-zero
    accrued funding (not only zeros: a history needs a fill and then a wait to accrue any)."""
    FUNDING_SEEN.update(dict.fromkeys(FUNDING_SEEN, 0))
    _funding_histories(protocol, test_venue, maker_wallet, funder, stored_funding)
    logging.getLogger(__name__).info("funding histories: %s", FUNDING_SEEN)
    assert FUNDING_SEEN["histories"] > 0, FUNDING_SEEN
    assert FUNDING_SEEN["histories with accrued funding"] >= max(1, FUNDING_SEEN["histories"] // 5), FUNDING_SEEN
