"""The cascade model's write-off waterfall (fund, deleveraging, claims), its block-space cap, funding, the volatility
updater, and the fund-sizing rule (pure: no chain)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from offchain.margin.defaults import DEFAULT_SPEC, START_PRICES_USD
from offchain.margin.exact import WAD, AccountState
from offchain.margin.funding import adl_shares
from offchain.margin.vector import MarginArrays, Portfolio
from offchain.population import LOCAL_LAYOUT, generate, market_makers, prices_wad, to_state
from offchain.risk.cascade import CascadeScenario, LiquidationRule, adl_split, simulate
from offchain.risk.fundsize import check, size_fund

ROOT = Path(__file__).resolve().parents[2]
P = prices_wad(START_PRICES_USD)
CFG = DEFAULT_SPEC.margin_config()
ARR = MarginArrays.from_config(CFG, 4, 4)
RULE = LiquidationRule.from_spec(DEFAULT_SPEC, 4)
QUIET = dict(noise_bps=0.0, impact_y=0.0, crash_premium=0.0, vol_cap=1.0, max_calls_per_block=0)


def _pf(states):
    return Portfolio.from_states(states, LOCAL_LAYOUT, 4)


def test_adl_split_is_the_vaults_rule_in_floats():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 9))
        notional = {s: int(rng.integers(1, 10**7)) * WAD for s in rng.choice(32, n, replace=False)}
        room = {s: int(v * rng.uniform(0, 0.2)) for s, v in notional.items()}
        loss = int(rng.uniform(0, 1.5) * sum(room.values()))
        exact = adl_shares(notional, room, loss)
        keys = sorted(notional)
        got = adl_split(np.array([[notional[k] / WAD for k in keys]]), np.array([[room[k] / WAD for k in keys]]),
                        np.array([loss / WAD]))[0]
        for k, g in zip(keys, got):
            assert g == pytest.approx(exact[k] / WAD, rel=1e-9, abs=1e-6)
        assert got.sum() == pytest.approx(min(loss, sum(room.values())) / WAD, rel=1e-9, abs=1e-6)


def _book():
    """A long BTC + ETH book that a -35% gap makes bankrupt, the shorts opposite it (as many as the longs, as in the
    vault), another long BTC trader that stays solvent, a USDC-only depositor (USD 1e18 at BTC 60,000, ETH 3,000)."""
    return [
        AccountState(100_000 * WAD, {0: (10 * WAD, 600_000 * WAD), 1: (100 * WAD, 300_000 * WAD)}),  # bankrupt
        AccountState(600_000 * WAD, {0: (-30 * WAD, -1_800_000 * WAD)}),  # short 30 BTC
        AccountState(200_000 * WAD, {0: (-10 * WAD, -600_000 * WAD)}),  # short 10 BTC
        AccountState(300_000 * WAD, {1: (-100 * WAD, -300_000 * WAD)}),  # short 100 ETH
        AccountState(2_000_000 * WAD, {0: (30 * WAD, 1_800_000 * WAD)}),  # long 30 BTC, solvent
        AccountState(100_000 * WAD),  # a depositor: no position
    ]


def test_deleveraging_conserves_and_charges_only_the_opposite_sides():
    s = CascadeScenario("gap", (-0.35,) * 4, latency=1, crash_blocks=1, after_blocks=4, runs=2, **QUIET)
    book = _book()
    res = simulate(_pf(book), START_PRICES_USD, ARR, RULE, 10_000.0, s)
    assert res.written_off[0] > 0 and res.adl[0] > 0
    # the waterfall adds up: what the fund covered, what the sides took and what the claims bear is the debt
    np.testing.assert_allclose(res.fund_cover + res.adl + res.bad_debt, res.written_off, rtol=1e-12)
    assert res.fund_cover[0] == pytest.approx(10_000.0)
    paid = res.adl_paid[0]
    assert paid[0] == 0 and paid[4] == 0 and paid[5] == 0  # the bankrupt side, another long, the depositor
    assert paid[1] > 0 and paid[1] == pytest.approx(3 * paid[2], rel=1e-12)  # pro rata to size on the BTC short side
    assert paid[3] > 0  # the ETH shorts (the account's ETH long was liquidated too)
    assert paid.sum() == pytest.approx(res.adl[0], rel=1e-9)  # every position of a paying side is modelled here
    # the sides were full (the loss after the fund exceeded their caps): each side paid adlShare x RW x its notional
    # (open interest x price) and only the rest reached the claims
    btc, eth = 0.65 * 60_000, 0.65 * 3_000
    rw = {k: v / 1e4 for k, v in DEFAULT_SPEC.risk_weights.items()}
    assert res.adl[0] == pytest.approx(0.5 * (rw[0] * 40 * btc + rw[1] * 100 * eth), rel=1e-9)
    assert res.bad_debt[0] > 0
    assert res.bad_debt[0] == pytest.approx(res.written_off[0] - 10_000.0 - res.adl[0], rel=1e-9)
    # a smaller loss fits in the sides' room: the claims pay nothing
    book[0] = AccountState(250_000 * WAD, dict(book[0].positions))
    small = simulate(_pf(book), START_PRICES_USD, ARR, RULE, 10_000.0, s)
    assert small.adl[0] > 0 and small.bad_debt[0] == 0
    assert small.fund_cover[0] + small.adl[0] == pytest.approx(small.written_off[0], rel=1e-12)


def test_without_deleveraging_the_loss_after_the_fund_reaches_the_claims():
    s = CascadeScenario("gap", (-0.35,) * 4, latency=1, crash_blocks=1, after_blocks=4, runs=1, **QUIET)
    off = LiquidationRule(**{**RULE.__dict__, "adl_share": 0.0})
    res = simulate(_pf(_book()), START_PRICES_USD, ARR, off, 10_000.0, s)
    assert res.adl[0] == 0 and res.adl_paid.sum() == 0
    assert res.bad_debt[0] == pytest.approx(res.written_off[0] - 10_000.0, rel=1e-12) and res.bad_debt[0] > 0


@pytest.fixture(scope="module")
def crowd():
    states = [to_state(b, P) for b in generate(120, seed=3)]
    return _pf(states + market_makers(states))


def test_block_space_caps_liquidation_calls(crowd):
    s = CascadeScenario("gap", (-0.3,) * 4, latency=0, crash_blocks=1, after_blocks=30, runs=2, **QUIET)
    free = simulate(crowd, START_PRICES_USD, ARR, RULE, 1e6, s)
    assert free.max_block_calls.max() > 5
    capped = simulate(crowd, START_PRICES_USD, ARR, RULE, 1e6, s.with_(max_calls_per_block=5))
    assert capped.max_block_calls.max() == 5
    # the others wait, they are not dropped: every account the free run liquidated is liquidated too, later
    assert (capped.accounts_liquidated >= free.accounts_liquidated).all()


def test_funding_moves_value_from_one_side_to_the_other(crowd):
    s = CascadeScenario("calm", (0.0,) * 4, crash_blocks=10, after_blocks=10, runs=1, noise_bps=0.0, impact_y=0.0)
    res = simulate(crowd, START_PRICES_USD, ARR, RULE, 1e6, s)  # fills 20 bps below the oracle: shorts pay longs
    paid = res.funding_paid[0]
    only_long = (crowd.size.min(1) >= 0) & (crowd.size.max(1) > 0)
    only_short = (crowd.size.max(1) <= 0) & (crowd.size.min(1) < 0)
    assert (paid[only_long] < 0).all() and (paid[only_short] > 0).all()
    assert (paid[np.abs(crowd.size).sum(1) == 0] == 0).all()
    assert paid.sum() == pytest.approx(0.0, abs=1e-9 * np.abs(paid).sum())  # a balanced book: what shorts pay longs get


def test_volatility_scalers_rise_after_the_latency_only(crowd):
    s = CascadeScenario("gap", (-0.3,) * 4, latency=1, crash_blocks=2, after_blocks=5, runs=1, impact_y=0.0)
    assert (simulate(crowd, START_PRICES_USD, ARR, RULE, 1e6, s).vol_scale_max == s.vol_cap).all()
    late = simulate(crowd, START_PRICES_USD, ARR, RULE, 1e6, s.with_(vol_latency=50))
    assert (late.vol_scale_max == 1.0).all()


def test_fund_size_passes_at_the_fund_and_fails_ten_percent_below(crowd):
    s = CascadeScenario("fast", (-0.35,) * 4, latency=5, crash_blocks=3, after_blocks=40, depth_factor=0.5, runs=40,
                        seed=2)
    res = size_fund(crowd, START_PRICES_USD, ARR, RULE, s, tol=0.01, start=200_000.0)
    assert res.fund > 0 and res.at_fund.passes and not res.at_90pct.passes
    # an independent simulation at that fund passes the rule, one 10% smaller does not
    assert check(simulate(crowd, START_PRICES_USD, ARR, RULE, res.fund, s), with_adl=False).passes
    assert not check(simulate(crowd, START_PRICES_USD, ARR, RULE, 0.9 * res.fund, s), with_adl=False).passes


def _xmargin(*args: str) -> subprocess.CompletedProcess:
    """``xmargin`` in a subprocess run from the repository root (in a whole-suite session ``tests/offchain`` shadows
    the ``offchain`` package in this process)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "offchain.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("flag,value", [("--runs", "5"), ("--depth-factor", "0"), ("--crash-blocks", "0"),
                                        ("--latency", "-1"), ("--quantile", "1.5"), ("--max-calls", "-2")])
def test_fund_size_names_the_bad_flag(flag, value):
    p = _xmargin("risk", "fund-size", "--synthetic", "--population", "5", flag, value)
    assert p.returncode == 2, p.stderr
    shown = value if flag != "--depth-factor" else "0.0"
    assert p.stderr.startswith(f"xmargin: {flag} {shown}") and "give" in p.stderr, p.stderr


def test_fund_size_command_writes_the_fund(tmp_path):
    out = tmp_path / "fund.json"
    p = _xmargin("risk", "fund-size", "--synthetic", "--population", "40", "--runs", "20", "--crash-blocks", "2",
                 "--out", str(out))
    assert p.returncode == 0, p.stderr
    got = json.loads(out.read_text())
    assert got["at_fund"]["passes"] and not got["at_90pct"]["passes"] and got["fund"] == got["at_fund"]["fund"]
    assert f"fund needed: {got['fund']:,.0f} USD" in p.stdout
    assert p.stdout.startswith("source: synthetic demo population")


# ---------------------------------------------------------------------------------------------- options
def _holdings(sizes, expiry_days=30, sigma=(0.6, 0.75, 1.0, 1.0)):
    """A BTC straddle listing (call and put at 60,000, ``expiry_days``) with ``sizes`` (A, 2)."""
    from offchain.margin.defaults import OPTIONS_DEFAULT
    from offchain.margin.vector import OptionArrays, OptionBook
    from offchain.risk.revalue import OptionHoldings

    book = OptionBook(np.asarray(sizes, float), np.array([0, 0]), np.array([True, False]),
                      np.array([60_000.0, 60_000.0]), np.array([expiry_days, expiry_days]) / 365)
    return OptionHoldings(book, OptionArrays.from_params(OPTIONS_DEFAULT, 4), np.asarray(sigma, float))


def test_run_option_terms_equal_the_float_margins_terms():
    from offchain.margin.defaults import OPTIONS_DEFAULT
    from offchain.margin.vector import OptionArrays, option_terms
    from offchain.population import option_listing
    from offchain.risk.revalue import run_option_terms

    rng = np.random.default_rng(5)
    lst = option_listing()
    sizes = rng.normal(0, 3, (7, len(lst.asset))) * (rng.random((7, len(lst.asset))) < 0.4)
    book = lst.book(sizes, START_PRICES_USD)
    oarr = OptionArrays.from_params(OPTIONS_DEFAULT, 4)
    prices = np.asarray(START_PRICES_USD) * np.exp(rng.normal(0, 0.1, (3, 4)))
    sigma = np.array([0.7, 0.9, 1.0, 1.0])
    ref = option_terms(book, prices, sigma, ARR, oarr)
    got, values, _ = run_option_terms(np.repeat(sizes[None], 3, 0), book, prices, sigma, ARR, oarr)
    for a, b in ((got.grid, ref.grid), (got.o, ref.o), (got.m, ref.m)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(values, book.values(prices, sigma, oarr).sum(-1), rtol=1e-12)


def test_a_cascade_with_an_empty_option_book_is_the_perpetuals_cascade(crowd):
    s = CascadeScenario("gap", (-0.35,) * 4, latency=1, crash_blocks=3, after_blocks=20, runs=3, vol_spike=2.0)
    plain = simulate(crowd, START_PRICES_USD, ARR, RULE, 2e5, s)
    empty = simulate(crowd, START_PRICES_USD, ARR, RULE, 2e5, s, _holdings(np.zeros((len(crowd.settlement), 2))))
    for f in ("bad_debt", "fund_end", "fund_min", "liquidated_notional", "calls", "written_off", "adl", "trough"):
        assert (getattr(plain, f) == getattr(empty, f)).all(), f
    assert plain.option_notional is None and (empty.option_notional == 0).all()
    assert "vol_spike" not in plain.summary() and empty.summary()["vol_spike"] == 2.0


def _short_straddle_book(settlement: float):
    """A short BTC straddle (1 unit per leg) with ``settlement`` USD and no perpetual, the long side with plenty."""
    states = [AccountState(int(settlement) * WAD), AccountState(10_000_000 * WAD)]
    return _pf(states), _holdings([[-1.0, -1.0], [1.0, 1.0]])


@pytest.mark.parametrize("crash_blocks", [40, 1])
def test_options_go_to_the_fund_at_the_mark_as_a_direct_computation_says(crash_blocks):
    from offchain.margin.vector import OptionBook, margin

    pf, h = _short_straddle_book(20_000)
    rule = LiquidationRule(close_factor=1.0, penalty=0.01, keeper_share=0.3, deep=1.0, min_keeper_reward=0.0,
                           dust=0.0, discount=(0.0,) * 4)
    s = CascadeScenario("direct", (-0.6,) * 4, latency=0, crash_blocks=crash_blocks, after_blocks=5, runs=2,
                        unwind_blocks=1, vol_spike=2.0, **QUIET)
    res = simulate(pf, START_PRICES_USD, ARR, rule, 1e6, s, h)
    p0 = np.asarray(START_PRICES_USD, float)
    b_ = h.book
    one = Portfolio(pf.settlement[:1], pf.size[:1], pf.open_notional[:1], pf.collateral[:1], pf.market_asset,
                    pf.collateral_asset, 4)
    for b in range(crash_blocks + 6):  # the first block at which the straddle is below MM: closed in full at the mark
        t = min(b / crash_blocks, 1.0)
        price, sigma = p0 * 0.4 ** t, h.sigma * 2.0 ** t
        book = OptionBook(b_.size[:1], b_.asset, b_.is_call, b_.strike, b_.expiry - b * 12 / (365 * 86_400))
        m = margin(one, price, ARR, book, h.oarr, sigma)
        if m.equity[0] < m.maintenance[0]:
            taken = 2 * price[0]  # the options' underlying notional
            penalty = min(0.01 * taken, max(m.equity[0], 0.0))
            after = m.equity[0] - penalty
            break
    else:
        raise AssertionError("the straddle was never liquidatable")
    assert 0 < b <= crash_blocks
    assert res.option_notional[0] == pytest.approx(taken, rel=1e-12)
    assert res.option_accounts[0] == 1 and res.accounts_liquidated[0] == 1
    assert res.written_off[0] == pytest.approx(max(0.0, -after), rel=1e-9, abs=1e-6)
    assert (res.written_off[0] > 0) == (crash_blocks == 1)  # a gap leaves the short straddle bankrupt
    # the fund paid nothing for what it took at the mark and sold it back at the mark within the block (no impact):
    # it keeps its share of the penalty less the debt it covered
    assert res.fund_end[0] == pytest.approx(1e6 + 0.7 * penalty - res.written_off[0], rel=1e-9)


def test_a_volatility_spike_liquidates_short_options_sooner_and_deeper():
    pf, h = _short_straddle_book(20_000)
    s = CascadeScenario("c", (-0.3,) * 4, latency=2, crash_blocks=20, after_blocks=10, runs=1, **QUIET)
    flat = simulate(pf, START_PRICES_USD, ARR, RULE, 1e6, s, h)
    spiked = simulate(pf, START_PRICES_USD, ARR, RULE, 1e6, s.with_(vol_spike=2.5), h)
    assert spiked.option_notional[0] > 0
    assert spiked.written_off[0] + spiked.fund_start - spiked.fund_min[0] > flat.written_off[0] + \
        flat.fund_start - flat.fund_min[0]


def test_the_desks_option_sales_move_the_price_through_their_delta():
    pf, h = _short_straddle_book(20_000)
    s = CascadeScenario("c", (-0.5,) * 4, latency=0, crash_blocks=10, after_blocks=20, runs=1, noise_bps=0.0,
                        crash_premium=0.0, vol_cap=1.0, max_calls_per_block=0, vol_spike=2.0,
                        daily_volume_usd=(2e5, 1e8, 5e7, 2e7))
    res = simulate(pf, START_PRICES_USD, ARR, RULE, 1e6, s, h)
    still = simulate(pf, START_PRICES_USD, ARR, RULE, 1e6, s.with_(impact_y=0.0), h)
    assert res.option_notional[0] > 0
    # the fund took a short put deep in the money (a long delta): its buyers sell the underlying to hedge it
    assert res.trough[0, 0] < still.trough[0, 0] - 1e-6
    assert res.trough[0, 1] == pytest.approx(still.trough[0, 1])  # ETH: no option there


def test_option_population_is_sized_and_its_makers_take_the_other_side():
    from offchain.margin.defaults import OPTIONS_DEFAULT
    from offchain.margin.vector import OptionArrays, margin
    from offchain.population import OPTION_UTILISATION, option_makers, option_population, option_sizes
    from offchain.risk.revalue import START_VOLS

    states, names, listing = option_population(25, seed=3)
    assert len(states) == len(names) == 25 and all(s.options for s in states)
    assert all(len(s.options) <= 8 for s in states)  # the vault's per-account series limit
    makers = option_makers(states, listing)
    assert all(len(m.options) <= 8 for m in makers)
    book = states + makers
    sizes = option_sizes(book, len(listing.asset))
    assert np.abs(sizes.sum(0)).max() < 1e-9  # every long has a short
    pf = Portfolio.from_states(states, LOCAL_LAYOUT, 4)
    m = margin(pf, np.asarray(START_PRICES_USD, float), ARR, listing.book(sizes[:25], START_PRICES_USD),
               OptionArrays.from_params(OPTIONS_DEFAULT, 4), np.asarray(START_VOLS))
    u = m.initial / m.equity
    assert (u > OPTION_UTILISATION[0] * 0.97).all() and (u < OPTION_UTILISATION[1] * 1.03).all()
    # the perpetuals-only population is drawn as before: the option traders are a separate draw
    assert [b.kind for b in generate(20, seed=3)] == [b.kind for b in generate(20, seed=3)]


@pytest.mark.parametrize("case", ["short-put-crash", "delta-hedged-short-call-rally"])
def test_an_option_sellers_bankruptcy_is_deleveraged_on_its_assets_perpetual_side(case):
    """A seller of 10 BTC puts after a 60% gap, or of 10 BTC calls delta-hedged by a 5 BTC perpetual long after an 80%
    rally, is bankrupt. The fund takes the shorts over and is paid their liability, but that cash is owed to the
    options: it covers the debt only from its own 10,000 (the vault's shortLiability rule). The side that pays is the
    book's net direction on BTC (WS): net long after the crash (the perpetual shorts pay), net short after the rally
    (the longs pay, the hedge's own liquidation included), within adlShare of the side's maintenance margin; the
    other side pays nothing."""
    crash = case == "short-put-crash"
    hedge = {} if crash else {0: (5 * WAD, 300_000 * WAD)}
    states = [AccountState(20_000 * WAD, hedge), AccountState(10_000_000 * WAD),
              AccountState(1_000_000 * WAD, {0: (10 * WAD, 600_000 * WAD)}),
              AccountState(1_000_000 * WAD, {0: (-(10 if crash else 15) * WAD, -(600_000 if crash else 900_000) * WAD)})]
    leg = [0.0, -10.0] if crash else [-10.0, 0.0]
    h = _holdings([leg, [-x for x in leg], [0.0, 0.0], [0.0, 0.0]])
    move = -0.6 if crash else 0.8
    s = CascadeScenario("gap", (move,) * 4, latency=1, crash_blocks=1, after_blocks=3, runs=1, **QUIET)
    res = simulate(_pf(states), START_PRICES_USD, ARR, RULE, 10_000.0, s, h)
    assert res.written_off[0] > 100_000
    assert res.fund_cover[0] == pytest.approx(10_000.0)  # not the shorts' liability it was paid
    rw = DEFAULT_SPEC.risk_weights[0] / 1e4
    oi = 10 if crash else 15  # the fund holds the hedge it took
    assert res.adl[0] == pytest.approx(RULE.adl_share * rw * oi * (1 + move) * 60_000, rel=1e-9)  # the side is full
    paid = res.adl_paid[0]
    payer, other = (3, 2) if crash else (2, 3)
    assert paid[payer] > 0 and paid[other] == 0 and paid[0] == paid[1] == 0
    assert paid[payer] == pytest.approx(res.adl[0] * (10 / oi), rel=1e-9)  # its part of the side
    assert res.bad_debt[0] == pytest.approx(res.written_off[0] - 10_000.0 - res.adl[0], rel=1e-9)
