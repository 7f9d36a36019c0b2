"""The demo's option books (offchain.population): every book opens at or above IM under the default set, the kinds
are what they say (a covered call holds the token and a short call on it, a protective put a long perpetual and a
long put, a hedged straddle two short options and a perpetual against their delta), and the standard requirement
follows Deribit's per-option rule."""
import pytest

from offchain.margin.defaults import BTC, DEFAULT_SPEC, ETH, START_PRICES_USD
from offchain.margin.exact import WAD, account_margin
from offchain.population import (LOCAL_LAYOUT, OPTION_SERIES, option_market, option_standard_requirement,
                                 option_state, option_traders, prices_wad)

START = 1_800_000_000
VOLS = (0.6, 0.75, 1.0, 1.0)


@pytest.fixture(scope="module")
def books():
    market = option_market(START, VOLS)
    return market, option_traders(24, 3, market)


def test_every_book_opens_at_or_above_initial_margin(books):
    market, traders = books
    prices = prices_wad(START_PRICES_USD)
    cfg = DEFAULT_SPEC.margin_config()
    for t in traders:
        m = account_margin(option_state(t, prices, market), LOCAL_LAYOUT, prices, cfg, options=market)
        assert m.equity >= m.initial > 0, t
        assert m.options is not None and m.options.assets == 1 << t.asset


def test_the_kinds_hold_what_they_say(books):
    market, traders = books
    series = {slot: (asset, call, k) for slot, asset, call, k, _ in OPTION_SERIES}
    assert {t.kind for t in traders} == {"covered_call", "protective_put", "hedged_straddle"}
    assert {t.asset for t in traders} == {BTC, ETH}
    for t in traders:
        legs = {series[slot][1:]: size for slot, size in t.options}
        if t.kind == "covered_call":
            (cid, units), = t.collateral.items()
            assert legs.keys() == {(True, 1.1)} and legs[(True, 1.1)] < 0 and units > 0 and not t.legs
        elif t.kind == "protective_put":
            assert legs.keys() == {(False, 0.9)} and legs[(False, 0.9)] > 0
            assert t.legs == ((t.asset, legs[(False, 0.9)]),)
        else:
            assert legs.keys() == {(True, 1.0), (False, 1.0)} and all(q < 0 for q in legs.values())
            (market_id, hedge), = t.legs  # a short ATM straddle is short a little delta: the perpetual buys it back
            assert market_id == t.asset and 0 < hedge < abs(legs[(True, 1.0)]) // 5


def test_standard_requirement_is_deribits_rule(books):
    market, traders = books
    prices = prices_wad(START_PRICES_USD)
    t = next(t for t in traders if t.kind == "hedged_straddle")
    state = option_state(t, prices, market)
    spot = START_PRICES_USD[t.asset]
    expected = 0.0
    from offchain.margin.options import mark
    for slot, size in t.options:
        s = market.series[slot]
        m = mark(s, prices[s.asset], market.vols[s.asset], market.word, market.time) / WAD
        rule = 0.075 * spot + m if s.is_call else max(0.075 * spot, 0.075 * m) + m
        expected += abs(size) / WAD * rule
    (market_id, hedge), = t.legs
    expected += -(-hedge * prices[t.asset] // WAD) / WAD * DEFAULT_SPEC.markets[market_id].standard_mmr_bps / 1e4
    assert option_standard_requirement(state, market, prices) == pytest.approx(expected, rel=1e-9)
