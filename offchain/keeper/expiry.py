"""Which round of a price feed fixes an expired option series.

``OptionMarkets.fixExpiry(slot, roundId)`` fixes a series at the answer of the first round of its asset's price feed
at or after the expiry, and proves it is the first by the round before: round ``roundId`` must have
``updatedAt >= expiry`` and round ``roundId - 1`` ``updatedAt < expiry``. A Chainlink round id is
``(phaseId << 64) | aggregatorRoundId``; ``roundId - 1`` is the previous round of the same phase only when the
aggregator round id is above 1, so the contract refuses a round that is the first of its phase (a feed that
switched aggregators: the previous phase's rounds are not ``roundId - 1``).

:func:`find_expiry_round` searches the current phase of a feed (``latestRoundData``, then ``getRoundData``) by
bisection over its aggregator round ids, relying on Chainlink's rounds being in time order within a phase: about
log2(rounds in the phase) + 1 calls. It does not look into earlier phases: when the first round at or after the
expiry is the first of the current phase, the answer says so and nothing is sent (the series can then only be fixed
by hand with a round of an earlier phase, if one proves it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..margin.options import Series

PHASE_SHIFT = 64
AGGREGATOR_ROUND_MASK = (1 << PHASE_SHIFT) - 1

FOUND = "found"  # round_id fixes the series
PENDING = "pending"  # no round at or after the expiry yet: try again at a later block
FIRST_OF_PHASE = "first-of-phase"  # the first round at or after the expiry is the first of its phase: cannot prove it


@dataclass(frozen=True)
class ExpiryRound:
    """The outcome of a search: ``status`` (:data:`FOUND`, :data:`PENDING` or :data:`FIRST_OF_PHASE`) and, unless
    pending, the first round of the current phase at or after the expiry (its id, answer in the feed's decimals and
    ``updatedAt``)."""

    status: str
    round_id: int = 0
    answer: int = 0
    updated_at: int = 0

    @property
    def phase(self) -> int:
        return self.round_id >> PHASE_SHIFT

    @property
    def aggregator_round(self) -> int:
        return self.round_id & AGGREGATOR_ROUND_MASK


def expired_unfixed(series: Mapping[int, Series], time: int) -> list[int]:
    """The slots of the series past their expiry at ``time`` and not fixed yet, in order."""
    return sorted(slot for slot, s in series.items() if not s.fixed_price and s.expiry <= time)


def find_expiry_round(feed: Any, expiry: int) -> ExpiryRound:
    """The round of ``feed`` (an AggregatorV3Interface handle: Brownie, or ``Chain.at(block).feed(address)`` to read
    at one block) that fixes a series expiring at ``expiry``: the first round of the feed's current phase with
    ``updatedAt >= expiry``. A round that does not exist reads as ``updatedAt`` 0 (Chainlink's mocks) and so as before
    the expiry."""
    latest, answer, _, updated_at, _ = (int(x) for x in feed.latestRoundData())
    if updated_at < expiry:
        return ExpiryRound(PENDING)
    phase = latest >> PHASE_SHIFT
    lo, hi = 1, latest & AGGREGATOR_ROUND_MASK
    best = (latest, answer, updated_at)  # invariant: the round of id hi is at or after the expiry
    while lo < hi:
        mid = (lo + hi) // 2
        round_id = (phase << PHASE_SHIFT) | mid
        _, a, _, t, _ = (int(x) for x in feed.getRoundData(round_id))
        if t >= expiry:
            hi, best = mid, (round_id, a, t)
        else:
            lo = mid + 1
    status = FOUND if best[0] & AGGREGATOR_ROUND_MASK > 1 else FIRST_OF_PHASE
    return ExpiryRound(status, *best)
