"""The option books the demo opens and the cascade model holds (offchain.population.option_population): every book is
at or above IM under the default set by the exact mirror at the listing the demo makes (listing_market), the option
makers take the other side of every series, and the standard requirement follows Deribit's per-option rule."""
import pytest

from offchain.margin.defaults import DEFAULT_SPEC, START_PRICES_USD
from offchain.margin.exact import WAD, account_margin
from offchain.margin.options import mark
from offchain.population import (LOCAL_LAYOUT, listing_market, option_listing, option_makers, option_population,
                                 option_standard_requirement, prices_wad)
from offchain.risk.revalue import START_VOLS

START = 1_800_000_000


@pytest.fixture(scope="module")
def books():
    states, names, listing = option_population(24, 5, vols=START_VOLS)
    return states, names, listing, listing_market(listing, START, START_VOLS)


def test_every_book_is_at_or_above_initial_margin_on_the_exact_mirror(books):
    states, _, _, market = books
    prices = prices_wad(START_PRICES_USD)
    cfg = DEFAULT_SPEC.margin_config()
    for st in states:
        m = account_margin(st, LOCAL_LAYOUT, prices, cfg, None, market)
        assert m.equity >= m.initial > 0
        assert len(st.options) <= 8  # the vault's series limit per account


def test_the_listing_is_what_the_demo_lists(books):
    _, _, listing, market = books
    assert len(listing.asset) <= 32
    for slot, s in market.series.items():
        assert s.strike == int(round(START_PRICES_USD[s.asset] * listing.moneyness[slot])) * WAD
        assert s.expiry == START + listing.days[slot] * 86_400


def test_makers_take_the_other_side_of_every_series(books):
    states, _, listing, _ = books
    makers = option_makers(states, listing)
    for slot in range(len(listing.asset)):
        assert sum(s.options.get(slot, 0) for s in states + makers) == 0
    assert all(len(m.options) <= 8 for m in makers)


def test_standard_requirement_is_deribits_rule(books):
    states, _, _, market = books
    prices = prices_wad(START_PRICES_USD)
    st = next(s for s in states if any(q < 0 for q in s.options.values()))
    expected = 0.0
    for slot, size in st.options.items():
        s = market.series[slot]
        spot = prices[s.asset] / WAD
        m = mark(s, prices[s.asset], market.vols[s.asset], market.word, market.time) / WAD
        if size < 0:
            expected += -size / WAD * ((0.075 * spot if s.is_call else max(0.075 * spot, 0.075 * m)) + m)
    for market_id, (q, _) in st.positions.items():
        value = abs(q) * prices[LOCAL_LAYOUT.market_asset[market_id]] // WAD
        expected += -(-value * DEFAULT_SPEC.markets[market_id].standard_mmr_bps // 10_000) / WAD
    assert option_standard_requirement(st, market, prices) == pytest.approx(expected, rel=1e-9)
