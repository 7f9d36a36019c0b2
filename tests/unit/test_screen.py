"""The float screen never misses an account the exact mirror finds liquidatable; trigger prices are where the
exact margin crosses (pure Python and numpy, no chain needed)."""
import random

import numpy as np
import pytest

from offchain.margin.defaults import DEFAULT_SPEC, OPTIONS_DEFAULT
from offchain.margin.exact import WAD, AccountState, Layout, account_margin
from offchain.margin.options import OptionMarket, Series
from offchain.margin.screen import Book, ScreenParams, screen, trigger_prices, triggered

LAYOUT = Layout((0, 1, 2, 3), (0, 1, 2, 3), (8, 18, 9, 18))
START = (60_000, 3_000, 150, 15)


def _state(rng: random.Random) -> AccountState:
    s = AccountState(settlement=int(rng.uniform(-20_000, 40_000) * WAD))
    for j in rng.sample(range(4), rng.randint(0, 3)):
        s.collateral[j] = int(rng.uniform(500, 30_000) / START[j] * 10 ** LAYOUT.collateral_decimals[j])
    for m in rng.sample(range(4), rng.randint(0, 4)):
        size = int(rng.uniform(-60_000, 60_000) / START[m] * 1e6) * 10**12
        s.positions[m] = (size, -(-size * START[m]))
    return s


# the default set, and the same with every dynamic add-on on: volatility scalers, a correlation break and liquidation
# depths small enough that the concentration charge matters at these sizes (10 and 20 million USD)
WITH_ADDONS = DEFAULT_SPEC.model_copy(update={
    "vol_scalers": {0: 12_000, 1: 20_000, 3: 40_000}, "correlation_break_bps": 7_000,
    "markets": {m: mk.model_copy(update={"depth_usd": (10 + 10 * (m % 2)) * 10**6})
                for m, mk in DEFAULT_SPEC.markets.items()}})


@pytest.fixture(scope="module", params=["default", "addons"])
def cfg(request):
    spec = DEFAULT_SPEC if request.param == "default" else WITH_ADDONS
    c = spec.margin_config()
    assert (c.addons != 0) == (request.param == "addons")
    return c


def test_screen_never_misses_a_liquidatable_account(cfg):
    rng = random.Random(11)
    states = {i: _state(rng) for i in range(3000)}
    book = Book.of(states, LAYOUT)
    params = ScreenParams.build(cfg, LAYOUT)
    checked = missed = liquidatable = 0
    for trial in range(6):
        prices = [int(p * rng.uniform(0.6, 1.4) * WAD) for p in START] + [0] * 4
        res = screen(book, params, np.array(prices, dtype=float) / WAD)
        flagged = set(res.candidates.tolist())
        certain, near = set(res.certain.tolist()), set(res.near_line.tolist())
        assert certain | near == flagged and not certain & near
        for i, s in states.items():
            m = account_margin(s, LAYOUT, prices, cfg)
            liquidatable += m.liquidatable
            missed += m.liquidatable and book.row[i] not in flagged
            assert m.liquidatable or book.row[i] not in certain  # "certain" never names a healthy account
            # the float values agree with the exact ones far inside the band
            assert abs(res.equity[book.row[i]] - m.equity / WAD) <= res.band[book.row[i]]
            assert abs(res.maintenance[book.row[i]] - m.maintenance / WAD) <= res.band[book.row[i]]
            checked += 1
        assert len(flagged) <= liquidatable + 5  # the band adds almost nothing to confirm exactly
        liquidatable = 0
    assert missed == 0 and checked == 18_000


def test_trigger_prices_bracket_the_exact_crossing(cfg):
    rng = random.Random(5)
    states = {i: _state(rng) for i in range(300)}
    prices = [p * WAD for p in START] + [0] * 4
    healthy = {i: s for i, s in states.items() if not account_margin(s, LAYOUT, prices, cfg).liquidatable}
    book = Book.of(healthy, LAYOUT)
    params = ScreenParams.build(cfg, LAYOUT)
    lower, upper = trigger_prices(book, params, np.array(prices, dtype=float) / WAD)
    hits = 0
    for i, s in healthy.items():
        r = book.row[i]
        for asset in range(4):
            for trig, outward in ((lower[r, asset], 0.999), (upper[r, asset], 1.001)):
                if np.isnan(trig):
                    continue
                hits += 1
                beyond = list(prices)
                beyond[asset] = int(trig * outward * WAD)
                inside = list(prices)
                inside[asset] = int(trig * (2 - outward) * WAD)
                assert account_margin(s, LAYOUT, beyond, cfg).liquidatable, (i, asset, trig)
                # just inside the trigger the account is still healthy (the scan finds the nearest crossing)
                assert not account_margin(s, LAYOUT, inside, cfg).liquidatable, (i, asset, trig)
    assert hits > 100
    moved = np.array(prices, dtype=float) / WAD
    moved[0] *= 0.7  # BTC -30%: the ready list is exactly the accounts whose BTC trigger was crossed
    ready = set(triggered(lower, upper, moved).tolist())
    assert ready == {r for r in range(len(book)) if lower[r, 0] >= moved[0]}


# ---------------------------------------------------------------------------------------------- with options
NOW = 1_700_000_000
DAY = 86_400


def _listing(rng: random.Random) -> dict[int, Series]:
    """Series on BTC, ETH and SOL from an hour to 200 days, near and far from the money; one expired and not yet fixed
    (its intrinsic value), one fixed (its payoff)."""
    out = {}
    for slot in range(12):
        asset = rng.choice((0, 0, 1, 1, 2))
        strike = int(START[asset] * rng.uniform(0.6, 1.5) * 100) * WAD // 100
        out[slot] = Series(asset, rng.random() < 0.5, strike, NOW + rng.randint(3_600, 200 * DAY))
    out[12] = Series(0, False, 58_000 * WAD, NOW - 600)
    out[13] = Series(1, True, 2_900 * WAD, NOW - DAY, 3_050 * WAD)
    return out


def _option_state(rng: random.Random, series: dict[int, Series]) -> AccountState:
    s = _state(rng)
    units = (1.0, 20.0, 400.0)
    for slot in rng.sample(sorted(series), rng.randint(1, 5)):
        sign = -1 if rng.random() < 0.7 else 1  # mostly written: the accounts a crash or a volatility spike hurts
        s.options[slot] = sign * int(rng.uniform(0.05, 3) * units[series[slot].asset] * 1e6) * 10**12
    return s


@pytest.mark.parametrize("spec", ["default", "addons"])
def test_screen_with_options_never_misses_and_confirms_exactly(spec):
    """A population holding calls and puts (short mostly), perpetuals and collateral, screened with the float option
    margin under price crashes and rallies and volatility spikes and drops: every account the exact mirror finds
    liquidatable is a candidate, "certain" never names a healthy one, and the float equity and MM are within the band
    of the exact ones (so after exact confirmation nothing healthy is sent)."""
    cfg = (DEFAULT_SPEC if spec == "default" else WITH_ADDONS).margin_config()
    rng = random.Random(17)
    series = _listing(rng)
    states = {i: (_option_state(rng, series) if i % 4 else _state(rng)) for i in range(240)}
    book = Book.of(states, LAYOUT)
    params = ScreenParams.build(cfg, LAYOUT)
    word = OPTIONS_DEFAULT.word()
    missed = liquidatable = flagged_total = 0
    for trial in range(5):
        prices = [int(p * rng.uniform(0.6, 1.4) * WAD) for p in START] + [0] * 4
        vols = [int(rng.uniform(0.3, 1.6) * WAD) for _ in range(3)] + [0] * 5
        market = OptionMarket(series, vols, word, NOW + trial * 3_600)
        res = screen(book, params, np.array(prices, dtype=float) / WAD, options=market)
        flagged = set(res.candidates.tolist())
        certain = set(res.certain.tolist())
        n_liq = 0
        for i, s in states.items():
            m = account_margin(s, LAYOUT, prices, cfg, None, market)
            r = book.row[i]
            n_liq += m.liquidatable
            missed += m.liquidatable and r not in flagged
            assert m.liquidatable or r not in certain
            assert abs(res.equity[r] - m.equity / WAD) <= res.band[r], (i, res.equity[r], m.equity / WAD)
            assert abs(res.maintenance[r] - m.maintenance / WAD) <= res.band[r], (i, res.maintenance[r],
                                                                                   m.maintenance / WAD)
        assert len(flagged) <= n_liq + 3
        liquidatable += n_liq
        flagged_total += len(flagged)
    assert missed == 0 and 50 < liquidatable < 5 * 240 - 50  # both sides of the line are exercised


def test_screen_refuses_options_without_their_market():
    s = AccountState(settlement=10**22, options={0: -WAD})
    book = Book.of({1: s}, LAYOUT)
    with pytest.raises(ValueError, match="OptionMarket"):
        screen(book, ScreenParams.build(DEFAULT_SPEC.margin_config(), LAYOUT), np.array(START + (0,) * 4, float))


def test_trigger_prices_of_option_accounts_bracket_the_exact_crossing():
    """Rows holding options get their triggers too (evaluated row by row): just beyond a trigger the exact mirror
    finds the account liquidatable, just inside it healthy."""
    cfg = DEFAULT_SPEC.margin_config()
    rng = random.Random(29)
    series = _listing(rng)
    market = OptionMarket(series, [int(0.8 * WAD)] * 3 + [0] * 5, OPTIONS_DEFAULT.word(), NOW)
    prices = [p * WAD for p in START] + [0] * 4
    states = {}
    while len(states) < 6:
        s = _option_state(rng, series)
        if not account_margin(s, LAYOUT, prices, cfg, None, market).liquidatable:
            states[len(states)] = s
    book = Book.of(states, LAYOUT)
    lower, upper = trigger_prices(book, ScreenParams.build(cfg, LAYOUT), np.array(prices, dtype=float) / WAD,
                                  grid=12, iterations=20, options=market)
    hits = 0
    for i, s in states.items():
        for asset in range(3):
            for trig, outward in ((lower[book.row[i], asset], 0.995), (upper[book.row[i], asset], 1.005)):
                if np.isnan(trig):
                    continue
                hits += 1
                beyond, inside = list(prices), list(prices)
                beyond[asset] = int(trig * outward * WAD)
                inside[asset] = int(trig * (2 - outward) * WAD)
                assert account_margin(s, LAYOUT, beyond, cfg, None, market).liquidatable, (i, asset, trig)
                assert not account_margin(s, LAYOUT, inside, cfg, None, market).liquidatable, (i, asset, trig)
    assert hits >= 4
