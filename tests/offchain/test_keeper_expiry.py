"""The keeper fixes expired option series on a local chain: for every listed series past its expiry and not fixed, it
finds the first round of the asset's price feed at or after the expiry and sends OptionMarkets.fixExpiry once; the
settlement job then turns the positions into cash. A series whose first round at or after the expiry is the first of
its feed's phase cannot be fixed (the contract refuses it): the keeper logs it and sends nothing."""
from __future__ import annotations

import json
import logging
import random

from brownie import chain, web3

from offchain.margin.exact import WAD
from scripts.deploy import set_price

from .conftest import USD_PER_TOKEN
from .test_keeper import miner, statuses

FEED_UNIT = 10**8  # the mock feeds' 8 decimals
PHASE = 1 << 64
KEEPER_LOG = "offchain.keeper.keeper"


def _sleep_to(t: int) -> None:
    """The next block's timestamp at about ``t`` (a little later: Ganache adds the seconds that pass)."""
    chain.sleep(t - chain.time())
    chain.mine()


def _round(feed, round_id):
    """(answer, updatedAt) of a round."""
    r = feed.getRoundData(round_id)
    return int(r[1]), int(r[3])


def _refresh(protocol, deployer, skip=()):
    """Fresh rounds at the start prices for every feed not in ``skip`` (the oracle refuses stale prices)."""
    for asset, usd in enumerate(USD_PER_TOKEN):
        if asset not in skip:
            set_price(protocol.feeds[asset], usd, deployer)


def _fixes(keeper):
    """(slot, round id, status) of the keeper's fix-expiry records."""
    rows = keeper.conn.execute("SELECT plan, status FROM opportunities WHERE keeper = ?", (keeper.address,))
    return sorted((p["items"][0], p["round"], s) for p, s in ((json.loads(p), s) for p, s in rows if p)
                  if p["shape"] == "fix-expiry")


def _sent(keeper):
    return keeper.conn.execute("SELECT COUNT(*) FROM txs WHERE keeper = ?", (keeper.address,)).fetchone()[0]


def test_keeper_fixes_expired_series_at_the_first_round_after_expiry_and_settles_them(book, make_keeper,
                                                                                   keeper_wallet, protocol, deployer):
    """BTC's feed gets a dozen rounds before the expiry (the last one second before it), one exactly at it, and more
    after; ETH's a round five minutes before and two after. The keeper fixes the two BTC series at the round exactly
    at the expiry and the ETH series at ETH's first round after it, each with one transaction, while the later series
    stays live; the next step settles every position at its payoff; steps after that send nothing."""
    listing = book.list_series(((6, 0, True, 58_000, 2), (7, 0, False, 62_000, 2), (8, 1, True, 3_000, 2),
                                (9, 0, True, 60_000, 5)))
    ids = book.option_book(6, random.Random(43), listing=listing, perp_share=0.0)
    k = make_keeper("fix", keeper_wallet)
    assert k.step().fixed == []  # nothing expired yet
    om, btc, eth = protocol.options, protocol.feeds[0], protocol.feeds[1]
    expiry = int(om.series(6)[3])
    assert int(om.series(7)[3]) == int(om.series(8)[3]) == expiry < int(om.series(9)[3])

    _sleep_to(expiry - 300)
    set_price(eth, 3_050, deployer)  # ETH: the last round before the expiry
    eth_before = int(eth.latestRound())
    _sleep_to(expiry + 60)
    set_price(eth, 3_111, deployer)  # ETH: the first round at or after it
    set_price(eth, 2_900, deployer)
    eth_first = eth_before + 1
    # BTC: a history written round by round, with the times chosen: 12 rounds before, the last 1 s before the
    # expiry, then one at exactly the expiry (61,234), two after, and a fresh one now
    r0 = int(btc.latestRound())
    times = [expiry - 3_600 + 300 * i for i in range(11)] + [expiry - 1, expiry, expiry + 30, expiry + 45]
    answers = [59_000 + 100 * i for i in range(12)] + [61_234, 57_000, 64_000]
    for i, (t, usd) in enumerate(zip(times, answers)):
        btc.updateRoundData(r0 + 1 + i, usd * FEED_UNIT, t, t, {"from": deployer})
    btc_first = r0 + 13
    set_price(btc, 60_000, deployer)
    _refresh(protocol, deployer, skip=(0, 1))
    # the rounds the contract must be given, checked on the feeds themselves
    assert _round(btc, btc_first) == (61_234 * FEED_UNIT, expiry) and _round(btc, btc_first - 1)[1] == expiry - 1
    assert _round(eth, eth_first)[0] == 3_111 * FEED_UNIT
    assert _round(eth, eth_first)[1] >= expiry > _round(eth, eth_before)[1]

    holders = [a for a in ids + [book.maker] if int(protocol.vault.optionsOf(a)) & 0b111 << 6]
    assert book.maker in holders and len(holders) >= 4
    sizes = {a: {s: int(om.sizeOf(a, s)) for s in (6, 7, 8)} for a in holders}
    before = {a: int(protocol.vault.settlementOf(a)) for a in holders}
    start = web3.eth.block_number

    miner(False)  # the fixes wait in the pool: a step meanwhile sends none again
    try:
        report = k.step()
        assert report.fixed == [6, 7, 8] and report.settled == []
        again = k.step()  # the head has not moved: only the pool is polled
        assert again.fixed == [] and _sent(k) == 3
        k._fix_expiries(report.block, again)  # the job itself, run again while they are in flight
        assert again.fixed == [] and _sent(k) == 3
        web3.provider.make_request("evm_mine", [])
    finally:
        miner(True)

    fixed = {int(e.args.slot): (int(e.args.price), int(e.args.roundId)) for e in
             om.events.get_sequence(start, event_type="ExpiryFixed")}
    assert fixed == {6: (61_234 * WAD, btc_first), 7: (61_234 * WAD, btc_first), 8: (3_111 * WAD, eth_first)}
    assert [int(om.series(s)[4]) for s in (6, 7, 8, 9)] == [61_234 * WAD, 61_234 * WAD, 3_111 * WAD, 0]

    report = k.step()  # the fixes' receipts; the indexer sees them fixed: the settlement job's turn
    assert report.fixed == [] and set(report.settled) == set(holders)
    assert _fixes(k) == [(6, btc_first, "included"), (7, btc_first, "included"), (8, eth_first, "included")]
    k.step()  # the settlements' receipts
    payoff = {6: 3_234 * WAD, 7: 766 * WAD, 8: 111 * WAD}  # 61,234 - 58,000; 62,000 - 61,234; 3,111 - 3,000
    for a in holders:
        assert int(protocol.vault.optionsOf(a)) & 0b111 << 6 == 0
        cash = sum(q * payoff[s] // WAD for s, q in sizes[a].items())  # floor, as positionValueDown
        assert int(protocol.vault.settlementOf(a)) - before[a] == cash, hex(a)
    assert {s for _, s, _ in statuses(k)} == {"included"}

    sent = _sent(k)
    chain.mine()
    report = k.step()
    assert (report.fixed, report.settled, _sent(k)) == ([], [], sent)  # nothing left to fix or settle

    _sleep_to(int(om.series(9)[3]) + 10)  # the later series expires: fixed at its own first round
    _refresh(protocol, deployer)
    assert k.step().fixed == [9]
    assert int(om.series(9)[4]) == USD_PER_TOKEN[0] * WAD


def test_keeper_skips_a_series_whose_only_round_after_expiry_opens_a_new_phase(book, make_keeper, keeper_wallet,
                                                                              protocol, deployer, caplog):
    """BTC's feed moves to a new phase after the expiry: the only round at or after it is round 1 of phase 1, which
    fixExpiry refuses (no previous round of the same phase proves it is the first). The keeper logs that, once, and
    sends nothing for it. ETH's feed is in phase 1 with rounds before and after the expiry: its series is fixed with
    the phase's round id (by shard 0's keeper only; a dry run simulates it once)."""
    listing = book.list_series(((6, 0, True, 58_000, 2), (8, 1, True, 3_000, 2)))
    book.option_book(3, random.Random(44), listing=listing, perp_share=0.0)
    k = make_keeper("phase", keeper_wallet)
    k.step()
    om, btc, eth = protocol.options, protocol.feeds[0], protocol.feeds[1]
    expiry = int(om.series(6)[3])
    _sleep_to(expiry - 120)
    set_price(btc, 59_000, deployer)  # phase 0's last round, before the expiry
    _sleep_to(expiry + 60)
    now = chain.time()
    btc.updateRoundData(PHASE | 1, 61_000 * FEED_UNIT, now, now, {"from": deployer})  # phase 1, round 1
    for i, (t, usd) in enumerate(((expiry - 600, 3_050), (expiry - 5, 3_080), (expiry + 5, 3_222), (now, 3_000))):
        eth.updateRoundData(PHASE | (i + 1), usd * FEED_UNIT, t, t, {"from": deployer})
    _refresh(protocol, deployer, skip=(0, 1))
    # the contract refuses BTC's only candidate, and accepts ETH's phase-1 round 3
    assert not _simulates(om.fixExpiry, 6, PHASE | 1) and _simulates(om.fixExpiry, 8, PHASE | 3)

    dry = make_keeper("phase-dry")  # no key: simulates, never sends
    other = make_keeper("phase-shard", keeper={"shard": "1/2"})  # series are shard 0's
    for _ in range(2):
        dry.step()
        other.step()
        chain.mine()
    assert _fixes(dry) == [(8, PHASE | 3, "skipped")]  # simulated once: a dry run is not repeated every block
    assert _fixes(other) == [] and int(om.series(8)[4]) == 0

    caplog.clear()  # the dry run's keeper logged series 6 too, once
    with caplog.at_level(logging.INFO, logger=KEEPER_LOG):
        report = k.step()
        chain.mine()
        k.step()
        chain.mine()
        k.step()
    assert report.fixed == [8]
    assert int(om.series(8)[4]) == 3_222 * WAD and int(om.series(6)[4]) == 0
    assert _fixes(k) == [(8, PHASE | 3, "included")]  # no record, no transaction for series 6
    skipped = [r for r in caplog.records if r.levelno == logging.WARNING and "series 6" in r.getMessage()]
    assert len(skipped) == 1, [r.getMessage() for r in skipped]  # logged once, not at every block
    msg = skipped[0].getMessage()
    assert "cannot be fixed" in msg and "first of its phase" in msg and f"{PHASE | 1}" in msg


def _simulates(fn, *args) -> bool:
    try:
        fn.call(*args)
    except Exception:  # noqa: BLE001 (a revert, whatever its form in Brownie)
        return False
    return True
