"""Market crashes shaped after real episodes, as block-by-block price paths.

These are not tick data (none ships with the project): each episode is a few keyframes per asset — the fraction of
the episode elapsed and the price relative to the start — read from public daily and hourly charts of the day,
interpolated in log space, with seeded noise on top. They are close enough to the real shape (depth, speed, the
order in which assets fell, the rebound) to exercise liquidations, and they are labelled approximations.

Assets are the local deployment's: 0 BTC, 1 ETH, 2 SOL, 3 LINK. SOL had no liquid market in March 2020 (its
mainnet beta started on 16 March 2020); it follows ETH with a higher beta there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..margin.defaults import BTC, ETH, LINK, SOL


@dataclass(frozen=True)
class Episode:
    name: str
    title: str
    description: str
    keyframes: dict[int, tuple[tuple[float, float], ...]]  # asset -> ((time 0..1, price / start), ...)

    def trough(self) -> dict[int, float]:
        """The lowest price relative to the start, per asset."""
        return {a: min(m for _, m in frames) for a, frames in self.keyframes.items()}

    def path(self, blocks: int, seed: int = 0, noise_bps: float = 40.0, assets: int = 4) -> np.ndarray:
        """Prices relative to the start, shape ``(blocks + 1, assets)``: row 0 is all ones, row ``blocks`` the end.

        ``noise_bps`` is the standard deviation of a per-block log-return noise, common across assets for 70% of its
        variance (markets fall together); it vanishes at the keyframes' end points so depth and end level hold.
        """
        if blocks < 2:
            raise ValueError(f"an episode needs at least 2 blocks (got blocks={blocks})")
        t = np.linspace(0.0, 1.0, blocks + 1)
        rng = np.random.default_rng(seed)
        common = rng.standard_normal(blocks + 1)
        out = np.ones((blocks + 1, assets))
        bridge = np.sin(np.pi * t)  # zero at both ends
        for a in range(assets):
            frames = self.keyframes.get(a, ((0.0, 1.0), (1.0, 1.0)))
            ft, fm = zip(*frames)
            base = np.interp(t, ft, np.log(fm))
            own = rng.standard_normal(blocks + 1)
            shocks = (np.sqrt(0.7) * common + np.sqrt(0.3) * own) * noise_bps / 10_000
            walk = np.cumsum(shocks) - np.cumsum(shocks)[-1] * t  # a Brownian bridge: 0 at both ends
            out[:, a] = np.exp(base + walk * bridge)
        out[0] = 1.0
        return out


EPISODES: dict[str, Episode] = {
    e.name: e
    for e in (
        Episode(
            "mar2020",
            "12-13 March 2020 ('Black Thursday')",
            "BTC fell from about $7,950 to about $3,850 (-52%) in roughly 30 hours, in two legs with a partial rebound "
            "between them; ETH fell further (about $195 to $90, -54%) and LINK about -50%; both ended the day near "
            "-40%. On-chain keepers and auctions failed on Ethereum that day (MakerDAO's zero-bid auctions).",
            {
                BTC: ((0.0, 1.0), (0.25, 0.86), (0.45, 0.72), (0.55, 0.78), (0.8, 0.48), (0.9, 0.55), (1.0, 0.62)),
                ETH: ((0.0, 1.0), (0.25, 0.84), (0.45, 0.68), (0.55, 0.74), (0.8, 0.46), (0.9, 0.52), (1.0, 0.58)),
                SOL: ((0.0, 1.0), (0.25, 0.80), (0.45, 0.62), (0.55, 0.70), (0.8, 0.40), (0.9, 0.47), (1.0, 0.52)),
                LINK: ((0.0, 1.0), (0.25, 0.85), (0.45, 0.70), (0.55, 0.76), (0.8, 0.50), (0.9, 0.56), (1.0, 0.60)),
            },
        ),
        Episode(
            "oct2025",
            "10 October 2025 (tariff-news liquidation cascade)",
            "Within about an hour in the evening (UTC) BTC fell about 14% (roughly $122k to $105k), ETH about 21%, "
            "SOL about 30% and mid-cap alts far more (LINK about -40%, many thinner tokens -70% or worse on some "
            "venues) in the largest single-day liquidation on record; prices recovered a good part within hours.",
            {
                BTC: ((0.0, 1.0), (0.2, 0.97), (0.45, 0.90), (0.6, 0.86), (0.75, 0.90), (1.0, 0.93)),
                ETH: ((0.0, 1.0), (0.2, 0.96), (0.45, 0.85), (0.6, 0.79), (0.75, 0.85), (1.0, 0.89)),
                SOL: ((0.0, 1.0), (0.2, 0.95), (0.45, 0.80), (0.6, 0.70), (0.75, 0.80), (1.0, 0.85)),
                LINK: ((0.0, 1.0), (0.2, 0.94), (0.45, 0.75), (0.6, 0.60), (0.75, 0.74), (1.0, 0.80)),
            },
        ),
    )
}


def episode(name: str) -> Episode:
    try:
        return EPISODES[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose one of: {', '.join(EPISODES)}") from None
