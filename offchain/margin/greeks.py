"""Option positions for display: the exact mark and value (:mod:`offchain.margin.options`) and the float Greeks of
:mod:`offchain.margin.optionmath` at the volatility the mark uses (the asset's, bent by the skew at the strike).

Units: ``delta`` in units of the underlying, ``gamma`` in units per USD of the underlying's price, ``vega`` in USD per
volatility point (0.01), ``theta`` in USD per day (time decay at zero rate); each for the whole position (size
included). A fixed series has no risk left: its Greeks are 0 and its mark is its payoff.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .exact import WAD, position_value_down
from .optionmath import SECONDS_PER_YEAR, delta_np, gamma_np, theta_np, vega_np
from .options import OptionMarket, Series, mark, skew

DAYS_PER_YEAR = SECONDS_PER_YEAR / 86_400


@dataclass(frozen=True)
class PositionGreeks:
    slot: int
    series: Series
    size: int  # base units 1e18, + long
    mark: int  # per unit, USD 1e18 (exact: OptionMarkets.mark)
    value: int  # floor(size * mark), USD 1e18
    sigma: float  # the volatility of the mark (skew at the strike), a fraction a year
    delta: float
    gamma: float
    vega: float
    theta: float


def position_greeks(sizes: Mapping[int, int], prices: Sequence[int], market: OptionMarket) -> list[PositionGreeks]:
    """Mark, value and Greeks of each option position (slot -> size) at ``prices`` (USD 1e18 per asset)."""
    slots = sorted(i for i, q in sizes.items() if q)
    if not slots:
        return []
    ser = [market.series[i] for i in slots]
    spot = np.array([prices[s.asset] / WAD for s in ser])
    strike = np.array([s.strike / WAD for s in ser])
    years = np.array([max(s.expiry - market.time, 0) / SECONDS_PER_YEAR for s in ser])
    live = np.array([not s.fixed_price and s.expiry > market.time for s in ser])
    with np.errstate(divide="ignore", invalid="ignore"):
        bend = np.abs(np.log(spot / strike))
    sigma = np.where(live, [market.vols[s.asset] / WAD * (1 + skew(market.word, s.asset) / 1e4 * b)
                            for s, b in zip(ser, bend)], 0.0)
    std = np.where(live, sigma * np.sqrt(years), 0.0)
    units = np.array([sizes[i] / WAD for i in slots])
    is_call = np.array([s.is_call for s in ser])
    delta = np.where(live, units * delta_np(is_call, spot, strike, std), 0.0)
    gamma = units * gamma_np(spot, strike, std)
    vega = units * vega_np(spot, strike, std, years) / 100
    theta = units * theta_np(spot, strike, std, years) / DAYS_PER_YEAR
    out = []
    for k, (i, s) in enumerate(zip(slots, ser)):
        per_unit = mark(s, prices[s.asset], market.vols[s.asset], market.word, market.time)
        out.append(PositionGreeks(i, s, sizes[i], per_unit, position_value_down(sizes[i], per_unit),
                                  float(sigma[k]), float(delta[k]), float(gamma[k]), float(vega[k]),
                                  float(theta[k])))
    return out


def totals_by_asset(greeks: Sequence[PositionGreeks]) -> dict[int, tuple[float, float, float, float]]:
    """(delta, gamma, vega, theta) summed over the positions of each underlying."""
    out: dict[int, tuple[float, float, float, float]] = {}
    for g in greeks:
        d, ga, v, t = out.get(g.series.asset, (0.0, 0.0, 0.0, 0.0))
        out[g.series.asset] = (d + g.delta, ga + g.gamma, v + g.vega, t + g.theta)
    return out
