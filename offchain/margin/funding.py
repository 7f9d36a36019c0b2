"""The funding rule of ``contracts/libraries/Funding.sol`` in exact integers (the same roundings, to the wei).

Units as on-chain: indices in nano-USD per unit of size, ``premium`` in millionths of price, ``weight`` in 1e-4 USD
of fees, rates 1e18 fixed point per second, prices and amounts USD 1e18, sizes base units 1e18.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

INDEX_UNIT = 10**9
WEIGHT_UNIT = 10**14
MAX_WEIGHT = (1 << 40) - 1


def _tdiv(a: int, b: int) -> int:
    """Solidity's signed division (rounds toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


@dataclass(frozen=True)
class FundingWord:
    """The FUNDING word, decoded (IRiskParameters)."""

    window: int = 0
    period: int = 0
    premium_cap_bps: int = 0
    depth_bps: int = 0
    max_rate_per_hour: int = 0
    clamp_bps: int = 0
    interest_per_hour: int = 0
    adl_share_bps: int = 0

    @classmethod
    def decode(cls, word: int) -> "FundingWord":
        u16 = lambda slot: (word >> (16 * slot)) & 0xFFFF  # noqa: E731
        interest = u16(8)
        return cls(word & 0xFFFFFFFF, (word >> 32) & 0xFFFFFFFF, u16(4), u16(5), u16(6), u16(7),
                   interest - 0x10000 if interest >= 0x8000 else interest, u16(9))

    @property
    def on(self) -> bool:
        return self.window != 0


@dataclass(frozen=True)
class MarketFunding:
    """A market's funding state (``Funding.Market``)."""

    long_index: int = 0
    short_index: int = 0
    updated_at: int = 0
    premium: int = 0
    weight: int = 0
    carry: int = 0

    def index(self, size: int) -> int:
        """The index a position of ``size`` uses (its side's)."""
        return self.long_index if size > 0 else self.short_index


def decay(weight: int, dt: int, window: int) -> int:
    x = dt * 10**18 // window
    return weight * 10**18 // (10**18 + x + x * x // (2 * 10**18))


def depth_of(max_open_interest: int, price: int, w: FundingWord) -> int:
    """The premium depth (weight units) of a market with open-interest cap ``max_open_interest`` at ``price``."""
    return max_open_interest * price * w.depth_bps // 10**36


def rate(premium: int, weight: int, depth: int, w: FundingWord, risk_weight_bps: int) -> int:
    """The funding rate per second (1e18), longs paying when positive."""
    r = 0
    if weight != 0:
        r = _tdiv(_tdiv(premium * 10**12 * weight, weight + depth), w.period)
    r += _tdiv(w.interest_per_hour * 10**12, 3600)
    cap = min(w.max_rate_per_hour * 10**12, w.clamp_bps * risk_weight_bps * 10**10) // 3600
    return max(-cap, min(cap, r))


def advance(m: MarketFunding, now: int, w: FundingWord, max_open_interest: int, price: int,
            risk_weight_bps: int) -> tuple[MarketFunding, int]:
    """``m`` advanced to ``now`` and the rate applied (``Funding.advance``)."""
    dt = now - m.updated_at
    if dt == 0:
        return m, 0
    if not w.on or m.updated_at == 0:
        return (replace(m, updated_at=now, premium=0, weight=0) if not w.on else replace(m, updated_at=now)), 0
    weight = decay(m.weight, dt, w.window)
    r = rate(m.premium, weight, depth_of(max_open_interest, price, w), w, risk_weight_bps)
    m = replace(m, updated_at=now, weight=weight)
    if r == 0:
        return m, 0
    magnitude = abs(r) * dt * price // 10**18
    total = (magnitude if r > 0 else -magnitude) + m.carry
    q = total // INDEX_UNIT
    return replace(m, carry=total - q * INDEX_UNIT, long_index=m.long_index + q, short_index=m.short_index + q), r


def add_fill(m: MarketFunding, fill_price: int, oracle_price: int, fees: int, w: FundingWord) -> MarketFunding:
    """``m`` after a fill at ``fill_price`` that paid ``fees`` (``Funding.addFill``)."""
    fee_weight = fees // WEIGHT_UNIT
    if not w.on or fee_weight == 0:
        return m
    cap = w.premium_cap_bps * 100
    p = max(-cap, min(cap, _tdiv((fill_price - oracle_price) * 10**6, oracle_price)))
    total = m.weight + fee_weight
    return replace(m, premium=_tdiv(m.premium * m.weight + p * fee_weight, total), weight=min(total, MAX_WEIGHT))


def accrued(size: int, snapshot: int, m: MarketFunding) -> int:
    """Funding a position has accrued since it stored ``snapshot`` (USD 1e18, + received; rounded down)."""
    return (-size * (m.index(size) - snapshot)) // INDEX_UNIT


def adl_shares(notional: dict[int, int], room: dict[int, int], loss: int) -> dict[int, int]:
    """What each source side of a write-off pays of ``loss`` (``CrossMarginVault._adlShares``). Keys are sources:
    ``m`` (market m's longs were liquidated: its shorts pay) and ``16 + m`` (its shorts: its longs pay); ``notional``
    is each side's open interest times its price, ``room`` its cap (adlShare x risk weight x notional). Shares go in
    proportion to notional among the sides with room, in ascending source order, each its share of what earlier sides
    were not assigned (the parts add up to what is split); what a full side cannot take is split again."""
    due = {s: 0 for s in notional}
    room = dict(room)
    open_ = [s for s in sorted(notional) if room.get(s, 0)]
    while loss and open_:
        total = sum(notional[s] for s in open_)
        unassigned = loss
        for s in list(open_):
            part = unassigned * notional[s] // total
            unassigned, total = unassigned - part, total - notional[s]
            take = min(part, room[s])
            due[s], room[s], loss = due[s] + take, room[s] - take, loss - take
            if room[s] == 0:
                open_.remove(s)
    return due
