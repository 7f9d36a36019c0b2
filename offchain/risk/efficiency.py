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
from ..margin.defaults import BTC, DEFAULT_SPEC, ETH, START_PRICES_USD
from ..margin.exact import WAD, AccountState, Layout, MarginConfig, account_margin, standard_requirement
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


def groups_of_state(state: AccountState, layout: Layout, assets: Sequence[str]) -> list[str]:
    """The reporting groups of an account read from a deployment: ``long``/``short`` (every position one way),
    ``hedged`` (both ways), ``collateral_only``; and, for two-position hedges, the pair (``hedged_btc_eth``)."""
    sizes = {layout.market_asset[m]: q for m, (q, _) in state.positions.items() if q}
    if not sizes:
        return ["collateral_only"] if state.collateral else ["empty"]
    if all(q > 0 for q in sizes.values()):
        return ["long"]
    if all(q < 0 for q in sizes.values()):
        return ["short"]
    out = ["hedged"]
    if len(sizes) == 2:
        out.append("hedged_" + "_".join(assets[a].lower() for a in sorted(sizes)))
    return out


def efficiency(books: Sequence[Book], spec: RiskSpec = DEFAULT_SPEC, prices_usd: Sequence[float] = START_PRICES_USD,
               scenarios: np.ndarray | None = None, level: float = 0.99) -> list[GroupRow]:
    """The synthetic demo population's rows: one per group (see :func:`groups_of`), plus ``all``."""
    prices = prices_wad(prices_usd)
    states = [to_state(b, prices, LOCAL_LAYOUT) for b in books]
    rates = [spec.markets[m].standard_mmr_bps for m in range(len(LOCAL_LAYOUT.market_asset))]
    return efficiency_of(states, [groups_of(b) for b in books], LOCAL_LAYOUT, prices, spec.margin_config(), rates,
                         scenarios, level)


def efficiency_of(states: Sequence[AccountState], groups: Sequence[Sequence[str]], layout: Layout,
                  prices: Sequence[int], cfg: MarginConfig, rates: Sequence[int],
                  scenarios: np.ndarray | None = None, level: float = 0.99) -> list[GroupRow]:
    """One row per group plus ``all``, for any accounts (``groups[i]``: the groups of ``states[i]``; ``prices``: USD
    1e18 per asset; ``rates``: the standard maintenance rate of each market, bps)."""
    prices_usd = [p / WAD for p in prices]
    n_assets = len(prices)
    if scenarios is None:
        scenarios = np.expm1(synthetic(20_000, seed=11).returns)
    pm = np.array([account_margin(s, layout, prices, cfg).maintenance / WAD for s in states])
    std = np.array([standard_requirement(s, layout, prices, rates) / WAD for s in states])
    pf = Portfolio.from_states(states, layout, n_assets)
    arr = MarginArrays.from_config(cfg, n_assets, len(layout.collateral_asset))
    sens = pf.sensitivity(np.asarray(prices_usd, dtype=float), arr.haircut)  # (A, K)
    losses = -(scenarios[:, : sens.shape[1]] @ sens.T)  # (S, A)
    exceed = losses > pm[None, :]
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
