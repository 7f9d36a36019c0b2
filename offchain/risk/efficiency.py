"""Capital efficiency of the portfolio margin by book type: MM against the standard per-position requirement,
reported only where the portfolio margin still covers the losses it is meant to cover.

For each book (exact mirror, at the given prices): ``PM`` = maintenance margin, ``STD`` = standard requirement
(sum of |notional| x the market's rate), saving ``1 - PM / STD``. Coverage: the book's one-day loss
``-c . x`` (c its equity sensitivity per asset, x a day's simple returns) is compared with PM over every day of a
scenario set (by default 20,000 days of the synthetic crypto-like model: fat tails, volatility clustering, crash
correlations); the kind's coverage holds when the pooled exception rate is at most ``1 - level`` (1% for 99%). A
kind whose coverage fails gets no saving reported (``saving`` None), since a saving bought with under-coverage is not
a saving.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..population import LOCAL_LAYOUT, Book, prices_wad, to_state
from .data import synthetic
from ..margin.defaults import ASSETS, BTC, DEFAULT_SPEC, ETH, START_PRICES_USD
from ..margin.exact import WAD, account_margin, standard_requirement
from ..margin.params import RiskSpec
from ..margin.vector import MarginArrays, Portfolio


def groups_of(book: Book) -> list[str]:
    """The reporting groups of a book: its kind; hedged pairs also by pair and by which leg is long."""
    if book.kind == "hedged_pair":
        markets = {m for m, _ in book.legs}
        if markets != {BTC, ETH}:
            return ["hedged_pair", "hedged_pair_sol_eth"]
        long = next(m for m, n in book.legs if n > 0)
        return ["hedged_pair", "hedged_pair_btc_eth", "hedged_pair_long_btc_short_eth" if long == BTC
                else "hedged_pair_long_eth_short_btc"]
    return [book.kind]


@dataclass
class GroupRow:
    group: str
    books: int
    pm_total: float
    std_total: float
    saving_median: float
    saving_aggregate: float  # 1 - sum PM / sum STD
    exception_rate: float
    coverage_holds: bool

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        if not self.coverage_holds:
            d["saving_median"] = d["saving_aggregate"] = None
        return d


def efficiency(books: Sequence[Book], spec: RiskSpec = DEFAULT_SPEC, prices_usd: Sequence[float] = START_PRICES_USD,
               scenarios: np.ndarray | None = None, level: float = 0.99) -> list[GroupRow]:
    """One row per group (see :func:`groups_of`), plus ``all``."""
    prices = prices_wad(prices_usd)
    cfg = spec.margin_config()
    layout = LOCAL_LAYOUT
    rates = [spec.markets[m].standard_mmr_bps for m in range(len(layout.market_asset))]
    if scenarios is None:
        scenarios = np.expm1(synthetic(20_000, seed=11).returns)
    states = [to_state(b, prices, layout) for b in books]
    pm = np.array([account_margin(s, layout, prices, cfg).maintenance / WAD for s in states])
    std = np.array([standard_requirement(s, layout, prices, rates) / WAD for s in states])
    pf = Portfolio.from_states(states, layout, len(ASSETS))
    arr = MarginArrays.from_config(cfg, len(ASSETS), len(layout.collateral_asset))
    sens = pf.sensitivity(np.asarray(prices_usd, dtype=float), arr.haircut)  # (A, K)
    losses = -(scenarios[:, : sens.shape[1]] @ sens.T)  # (S, A)
    exceed = losses > pm[None, :]
    groups = [groups_of(b) for b in books]
    rows = []
    for g in sorted({x for gs in groups for x in gs}) + ["all"]:
        idx = np.array([i for i, gs in enumerate(groups) if g == "all" or g in gs])
        with np.errstate(divide="ignore", invalid="ignore"):
            savings = np.where(std[idx] > 0, 1.0 - pm[idx] / std[idx], np.nan)
        rate = float(exceed[:, idx].mean())
        rows.append(GroupRow(g, len(idx), float(pm[idx].sum()), float(std[idx].sum()),
                             float(np.nanmedian(savings)) if np.isfinite(savings).any() else float("nan"),
                             1.0 - float(pm[idx].sum() / std[idx].sum()) if std[idx].sum() > 0 else float("nan"),
                             rate, rate <= 1.0 - level))
    return rows
