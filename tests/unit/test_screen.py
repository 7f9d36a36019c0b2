"""The float screen never misses an account the exact mirror finds liquidatable; trigger prices are where the
exact margin crosses (pure Python and numpy, no chain needed)."""
import random

import numpy as np
import pytest

from offchain.margin.defaults import DEFAULT_SPEC
from offchain.margin.exact import WAD, AccountState, Layout, account_margin
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
