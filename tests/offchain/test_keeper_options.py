"""The keeper with options on a local chain: after a price crash and a volatility spike it liquidates every account
below maintenance margin, option positions included (items of kind 2 taken over by the fund at the mark), misses none
and sends nothing for a healthy account; the mirror agrees with the vault before and after. And the settlement job:
positions in fixed series are turned into cash with settleExpired."""
from __future__ import annotations

import json
import random

from brownie import chain, web3

from offchain.margin.exact import account_margin
from offchain.margin.snapshot import read_account_state
from scripts.deploy import set_price, set_vol

from .conftest import USD_PER_TOKEN
from .test_keeper import liquidated_since, miner, run_until_quiet, statuses, under_water


def _mirror_equals_vault(book, protocol, ids):
    """The mirror (option market read at the latest block) equals the vault's margin of every account; returns the
    accounts it finds liquidatable."""
    layout, prices, cfg = book.market()
    market = book.option_market()
    under = set()
    for a in ids:
        m = account_margin(read_account_state(protocol.vault, a, protocol.options), layout, prices, cfg, None, market)
        assert tuple(protocol.vault.margin(a)) == (m.equity, m.maintenance, m.initial), hex(a)
        if m.liquidatable:
            under.add(a)
    return under


def test_keeper_liquidates_option_accounts_after_a_crash_and_a_volatility_spike(book, make_keeper, keeper_wallet,
                                                                               protocol, deployer):
    book.list_series()
    rng = random.Random(41)
    ids = book.option_book(24, rng)
    keeper = make_keeper("options", keeper_wallet)
    assert keeper.step().liquidatable == 0
    assert _mirror_equals_vault(book, protocol, ids) == set()
    start = web3.eth.block_number
    set_price(protocol.feeds[0], USD_PER_TOKEN[0] * 0.84, deployer)  # BTC -16%, ETH -12%
    set_price(protocol.feeds[1], USD_PER_TOKEN[1] * 0.88, deployer)
    set_vol(protocol.vol_feeds[0], 1.1, deployer)  # volatility nearly doubles
    set_vol(protocol.vol_feeds[1], 1.3, deployer)
    under = under_water(protocol, ids)
    assert _mirror_equals_vault(book, protocol, ids) == under
    assert 4 <= len(under) <= len(ids) - 4
    run_until_quiet(keeper)
    done = liquidated_since(protocol, start)
    assert {a for a, _ in done} == under  # every one of them, and no healthy account touched
    assert under_water(protocol, ids) == set() and _mirror_equals_vault(book, protocol, ids) == set()
    rows = statuses(keeper)
    assert {s for _, s, _ in rows} == {"included"}
    plans = [json.loads(p) for (p,) in keeper.conn.execute("SELECT plan FROM opportunities")]
    assert sum(any(kind == 2 for kind, _, _ in p["items"]) for p in plans) >= len(under) // 2
    fund = protocol.vault.fundAccount()
    taken = protocol.options.events.get_sequence(start, event_type="OptionPositionUpdated")
    assert any(int(e.args.account) == fund for e in taken)  # the fund took option positions over


def test_option_liquidations_hold_when_included_seconds_after_the_head(book, make_keeper, keeper_wallet, protocol,
                                                                      deployer):
    """The vault values options at the time of the block that includes a liquidation, seconds after the head block
    the keeper planned at. An account caught just below MM gets a plan taking the whole allowance, which then rests on
    IM - E (not the close factor) and shrinks with time for written options (their liability decays, E rises) while
    the amount taken does not: included 20 s later, such plans reverted with LiquidationTooLarge. The keeper plans
    for the window (keeper.inclusion_seconds, 30 s by default): through a gradual crash with every block mined 20 s
    after the head, every liquidation it sends is included and none is missed."""
    book.list_series()
    ids = book.option_book(24, random.Random(41))
    keeper = make_keeper("late", keeper_wallet)
    keeper.step()
    start = web3.eth.block_number
    sent = 0
    for step in range(1, 9):  # BTC and ETH -2.5% a block, volatility +8%: accounts cross MM a few at a time
        set_price(protocol.feeds[0], USD_PER_TOKEN[0] * (1 - 0.025 * step), deployer)
        set_price(protocol.feeds[1], USD_PER_TOKEN[1] * (1 - 0.025 * step), deployer)
        set_vol(protocol.vol_feeds[0], 0.6 * (1 + 0.08 * step), deployer)
        set_vol(protocol.vol_feeds[1], 0.75 * (1 + 0.08 * step), deployer)
        miner(False)
        try:
            sent += len(keeper.step().sent)  # planned at the head's time; the transactions wait in the pool
            # mined 20 s after the head, whatever the step took (a revert is read from its receipt)
            web3.provider.make_request("evm_mine", [web3.eth.get_block("latest").timestamp + 20])
        finally:
            miner(True)
        keeper.step()  # their receipts
    assert sent >= 6
    assert [r for r in statuses(keeper) if r[1] != "included"] == []
    run_until_quiet(keeper)
    assert under_water(protocol, ids) == set()  # none missed
    rows = statuses(keeper)
    assert {s for _, s, _ in rows} == {"included"} and len(rows) == len(liquidated_since(protocol, start))


def test_keeper_settles_positions_in_fixed_series(book, make_keeper, keeper_wallet, protocol, deployer, keeper):
    listing = book.list_series(((6, 0, True, 58_000, 2), (7, 0, False, 62_000, 2)))
    ids = book.option_book(5, random.Random(42), listing=listing, perp_share=0.0)
    k = make_keeper("settle", keeper_wallet)
    k.step()
    chain.sleep(protocol.options.series(6)[3] - chain.time() + 60)
    for asset, usd in enumerate(USD_PER_TOKEN):
        set_price(protocol.feeds[asset], 61_000 if asset == 0 else usd, deployer)
    for slot in (6, 7):
        protocol.options.fixExpiry(slot, protocol.feeds[0].latestRound(), {"from": keeper})
    holders = [a for a in ids + [book.maker] if protocol.vault.optionsOf(a)]
    assert book.maker in holders and len(holders) >= 4
    before = {a: protocol.vault.margin(a)[0] for a in holders}
    report = k.step()
    assert set(report.settled) == set(holders) - ({book.maker} if not k._mine(book.maker) else set())
    k.step()  # receipts
    for a in report.settled:
        assert protocol.vault.optionsOf(a) == 0
        assert protocol.vault.margin(a)[0] == before[a]  # the payoff was already equity: now it is cash
    rows = [r for r in statuses(k)]
    assert rows and all(s == "included" for _, s, _ in rows)
    assert k.step().settled == []  # nothing left to settle
