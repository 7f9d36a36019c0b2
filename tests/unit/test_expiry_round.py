"""find_expiry_round: the first round of a feed's current phase at or after an expiry, by bisection, against a brute
force over random round histories and against the rule OptionMarkets.fixExpiry applies to the round it returns."""
from __future__ import annotations

import math
import random

from offchain.keeper.expiry import (FIRST_OF_PHASE, FOUND, PENDING, ExpiryRound, expired_unfixed,
                                    find_expiry_round)
from offchain.margin.options import Series

PHASE = 1 << 64


class Feed:
    """An AggregatorV3 in memory: rounds by full round id -> (answer, updatedAt); a missing round reads as zeros, as
    Chainlink's mock does. Counts getRoundData calls."""

    def __init__(self, rounds: dict[int, tuple[int, int]], latest: int) -> None:
        self.rounds, self.latest, self.calls = rounds, latest, 0

    def latestRoundData(self):
        return self._data(self.latest)

    def getRoundData(self, round_id: int):
        self.calls += 1
        return self._data(round_id)

    def _data(self, round_id: int):
        answer, t = self.rounds.get(round_id, (0, 0))
        return round_id, answer, t, t, round_id


def contract_accepts(feed: Feed, round_id: int, expiry: int) -> bool:
    """OptionMarkets.fixExpiry's check of a round (answer positive, the previous round of the same phase before)."""
    _, answer, _, t, _ = feed.getRoundData(round_id)
    previous = feed.getRoundData(round_id - 1)[3] if round_id & (PHASE - 1) > 1 else 0
    return round_id & (PHASE - 1) > 1 and t >= expiry and previous < expiry and answer > 0


def history(rng: random.Random, phase: int, n: int, start: int) -> dict[int, tuple[int, int]]:
    """``n`` rounds of ``phase`` from ``start``, updatedAt non-decreasing (equal times happen on-chain too)."""
    out, t = {}, start
    for k in range(1, n + 1):
        t += rng.choice((0, 1, 1, 7, 60, 3600))
        out[phase * PHASE + k] = (rng.randint(1, 10**12), t)
    return out


def brute_force(rounds: dict[int, tuple[int, int]], phase: int, n: int, expiry: int) -> int | None:
    for k in range(1, n + 1):
        if rounds[phase * PHASE + k][1] >= expiry:
            return phase * PHASE + k
    return None


def test_bisection_finds_the_first_round_at_or_after_the_expiry():
    rng = random.Random(7)
    seen = {FOUND: 0, PENDING: 0, FIRST_OF_PHASE: 0}
    for case in range(400):
        phase = rng.choice((0, 1, 3))
        n = rng.choice((1, 2, 3, 5, 17, 64, 1000))
        rounds = history(rng, phase, n, 1_000_000)
        if phase:  # an older phase with rounds later than the current one's: never looked at
            rounds.update(history(rng, phase - 1, 5, 2_000_000))
        times = [t for rid, (_, t) in rounds.items() if rid >> 64 == phase]
        expiry = rng.choice((times[0] - 1, times[-1] + 1, rng.choice(times), rng.choice(times) + 1))
        feed = Feed(rounds, phase * PHASE + n)
        r = find_expiry_round(feed, expiry)
        want = brute_force(rounds, phase, n, expiry)
        seen[r.status] += 1
        if want is None:
            assert r == ExpiryRound(PENDING), case
            continue
        assert (r.round_id, r.answer, r.updated_at) == (want, *rounds[want]), case
        assert (r.phase, r.aggregator_round) == (phase, want & (PHASE - 1))
        assert r.status == (FOUND if want & (PHASE - 1) > 1 else FIRST_OF_PHASE), case
        assert contract_accepts(feed, r.round_id, expiry) == (r.status == FOUND), case
        assert feed.calls <= math.ceil(math.log2(n)) + 2  # + 2: contract_accepts' own reads
    assert min(seen.values()) >= 20, seen  # every outcome exercised


def test_a_round_exactly_at_the_expiry_is_the_one_and_the_first_of_a_phase_is_refused():
    rounds = {PHASE + 1: (100, 900), PHASE + 2: (200, 999), PHASE + 3: (300, 1000), PHASE + 4: (400, 1000),
              PHASE + 5: (500, 1200)}
    feed = Feed(rounds, PHASE + 5)
    assert find_expiry_round(feed, 1000) == ExpiryRound(FOUND, PHASE + 3, 300, 1000)  # updatedAt == expiry counts
    assert find_expiry_round(feed, 1001) == ExpiryRound(FOUND, PHASE + 5, 500, 1200)
    assert find_expiry_round(feed, 1201) == ExpiryRound(PENDING)
    assert find_expiry_round(feed, 900) == ExpiryRound(FIRST_OF_PHASE, PHASE + 1, 100, 900)
    # a new phase whose only round is after the expiry: its round 1 cannot be proven the first
    rounds[2 * PHASE + 1] = (600, 1300)
    assert find_expiry_round(Feed(rounds, 2 * PHASE + 1), 1250) == ExpiryRound(FIRST_OF_PHASE, 2 * PHASE + 1, 600,
                                                                                   1300)


def test_expired_unfixed_lists_series_past_expiry_and_not_fixed():
    series = {0: Series(0, True, 1, 100), 3: Series(1, False, 1, 99), 5: Series(0, True, 1, 101),
              7: Series(0, True, 1, 50, fixed_price=10)}
    assert expired_unfixed(series, 100) == [0, 3]  # expiry == time is expired (fixExpiry accepts it)
    assert expired_unfixed(series, 99) == [3]
    assert expired_unfixed({}, 100) == []
