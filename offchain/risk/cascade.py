"""Liquidation-cascade simulation: a crash path, keepers with a latency, the contract's liquidation rule, and the
price impact of the insurance fund unwinding what it took over, feeding back into the oracle price.

Model, block by block and for many independent runs at once (float64, vectorised over runs x accounts):

1. Price. ``log P_b = log P_0 + path_b + noise_b + impact_b``: ``path`` goes log-linearly from 0 to the crash
   (per asset) over ``crash_blocks`` and stays there; ``noise`` is a random walk with per-block volatility
   ``noise_bps`` (70% of its variance common to all assets); ``impact`` is the permanent square-root impact of the
   fund's sales (below).
2. Margin of every account at that price: :func:`offchain.margin.vector.margin` (the float form of the exact mirror).
3. Keepers. An account seen with E < MM at block b is liquidated at block ``b + latency`` if it is still
   liquidatable then (latency 0: in the same block); one call per account per block; after a call the next one can
   land ``max(latency, 1)`` blocks later.
4. A call takes at most ``maxTake`` (close factor, deep-underwater and dust rules as the vault): positions first, in
   proportion, at the oracle price (the fund takes them over); if the account then has no positions and a negative
   settlement balance, collateral is seized at its liquidation discount. The penalty (on the amount taken, at most
   the account's equity left; the vault's further cap at half the margin freed is not modelled) goes to the fund less
   the keeper's reward, paid out of it: ``max(share x penalty, min(min reward, penalty))`` (every modelled call takes
   all it may). An account left with nothing but debt is written off: the fund absorbs the debt (bad debt).
5. The fund unwinds its inventory (taken positions and seized collateral): a fraction ``1 / unwind_blocks`` of it per
   block, sold on the market at a price moved by the square-root law ``Y sigma_day sqrt(Q / V_day)`` (Q the USD
   amount sold, V the market's daily volume, sigma its daily volatility); that move is permanent and the oracle
   follows it. The fund is marked to the oracle price every block.

Outputs per run: bad debt, fund equity at the end and its lowest point (depletion = start - lowest), the notional
liquidated, the number of calls and of accounts liquidated, the lowest price reached with impact. Limits: one venue
and one oracle per asset (no arbitrage from other venues dampens the impact), no funding or fees, keepers never run
out of gas or block space (no cap on liquidations per block), accounts do not add collateral or trade during the crash.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from ..errors import optional
from ..margin.vector import MarginArrays, Portfolio, margin, max_take
from .progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiquidationRule:
    """The liquidation parameters, as fractions and USD (``from_spec`` reads a RiskSpec)."""

    close_factor: float
    penalty: float
    keeper_share: float
    deep: float
    min_keeper_reward: float
    dust: float
    discount: tuple[float, ...]  # per collateral id

    @classmethod
    def from_spec(cls, spec, n_collaterals: int) -> "LiquidationRule":
        lq = spec.liquidation
        return cls(lq.close_factor_bps / 1e4, lq.penalty_bps / 1e4, lq.keeper_share_bps / 1e4, lq.deep_bps / 1e4,
                   lq.min_keeper_reward / 1e18, lq.dust / 1e18,
                   tuple(spec.discounts.get(j, 0) / 1e4 for j in range(n_collaterals)))


@dataclass(frozen=True)
class CascadeScenario:
    """One simulated crash. ``crash`` is the exogenous move per asset (fractions)."""

    name: str
    crash: tuple[float, ...]
    latency: int = 1
    crash_blocks: int = 100  # 20 minutes of 12-second blocks
    after_blocks: int = 100
    noise_bps: float = 15.0  # per-block volatility of the noise around the path
    impact_y: float = 1.0  # square-root law coefficient (order 1 empirically)
    daily_volume_usd: tuple[float, ...] = (2e8, 1e8, 5e7, 2e7)  # of this venue's market per asset
    daily_vol: tuple[float, ...] = (0.035, 0.045, 0.06, 0.06)
    unwind_blocks: int = 10
    runs: int = 200
    seed: int = 0
    close_factor: float | None = None  # overrides the rule's
    penalty: float | None = None

    def with_(self, **kw) -> "CascadeScenario":
        return replace(self, **kw)


@dataclass
class CascadeResult:
    scenario: CascadeScenario
    fund_start: float
    bad_debt: np.ndarray  # (runs,)
    fund_end: np.ndarray
    fund_min: np.ndarray
    liquidated_notional: np.ndarray
    calls: np.ndarray
    accounts_liquidated: np.ndarray
    trough: np.ndarray  # (runs, K) lowest price / start, with impact
    price_path: np.ndarray = field(repr=False)  # (blocks + 1, K) run 0

    def summary(self, q: float = 0.95) -> dict:
        def pct(x: np.ndarray) -> float:
            return float(np.quantile(x, q))

        depletion = np.clip(self.fund_start - self.fund_min, 0.0, None)
        s = self.scenario
        return {
            "crash": list(s.crash), "latency_blocks": s.latency, "crash_blocks": s.crash_blocks,
            "runs": s.runs, "impact_y": s.impact_y, "unwind_blocks": s.unwind_blocks,
            "close_factor": s.close_factor, "insurance_fund": self.fund_start,
            "bad_debt": pct(self.bad_debt), "bad_debt_mean": float(self.bad_debt.mean()),
            "bad_debt_max": float(self.bad_debt.max()),
            "p_bad_debt_exceeds_fund": float((self.bad_debt > self.fund_start).mean()),
            "fund_depletion": pct(depletion), "fund_depletion_mean": float(depletion.mean()),
            "fund_end_p05": float(np.quantile(self.fund_end, 1 - q)),
            "liquidated_notional": pct(self.liquidated_notional),
            "accounts_liquidated": pct(self.accounts_liquidated), "liquidation_calls": pct(self.calls),
            "trough_with_impact": [float(x) for x in np.quantile(self.trough, 1 - q, axis=0)],
            "quantile": q,
        }


def _path(s: CascadeScenario, k: int) -> np.ndarray:
    blocks = s.crash_blocks + s.after_blocks
    t = np.minimum(np.arange(blocks + 1) / max(s.crash_blocks, 1), 1.0)
    crash = np.log1p(np.clip(np.asarray(s.crash[:k] + (0.0,) * (k - len(s.crash[:k]))), -0.999, None))
    return t[:, None] * crash[None, :]


def simulate(portfolio: Portfolio, prices0: Sequence[float], arr: MarginArrays, rule: LiquidationRule,
             fund: float, s: CascadeScenario) -> CascadeResult:
    """Run ``s.runs`` paths of scenario ``s`` on ``portfolio`` (whole USD prices ``prices0`` per asset)."""
    if s.latency < 0 or s.crash_blocks < 1 or s.unwind_blocks < 1 or s.runs < 1:
        raise ValueError(f"scenario {s.name}: latency >= 0, crash_blocks >= 1, unwind_blocks >= 1, runs >= 1")
    R, K = s.runs, portfolio.n_assets
    p0 = np.asarray(prices0, dtype=float)[:K]
    cf = rule.close_factor if s.close_factor is None else s.close_factor
    pen = rule.penalty if s.penalty is None else s.penalty
    disc = np.asarray(rule.discount[: portfolio.collateral.shape[1]])
    rng = np.random.default_rng(s.seed)
    base = _path(s, K)
    blocks = len(base) - 1
    sig = s.noise_bps / 1e4
    common = rng.standard_normal((blocks, R, 1))
    own = rng.standard_normal((blocks, R, K))
    noise = np.concatenate([np.zeros((1, R, K)), np.cumsum(sig * (np.sqrt(0.7) * common + np.sqrt(0.3) * own), 0)])
    vol, volume = np.asarray(s.daily_vol[:K]), np.asarray(s.daily_volume_usd[:K])
    mk = np.zeros((len(portfolio.market_asset), K))
    mk[np.arange(len(portfolio.market_asset)), portfolio.market_asset] = 1.0
    cj = np.zeros((len(portfolio.collateral_asset), K))
    cj[np.arange(len(portfolio.collateral_asset)), portfolio.collateral_asset] = 1.0

    A = len(portfolio.settlement)
    pf = Portfolio(np.repeat(portfolio.settlement[None], R, 0), np.repeat(portfolio.size[None], R, 0),
                   np.repeat(portfolio.open_notional[None], R, 0), np.repeat(portfolio.collateral[None], R, 0),
                   portfolio.market_asset, portfolio.collateral_asset, K)
    impact = np.zeros((R, K))
    fund_units = np.zeros((R, K))  # the fund's inventory in asset units (positions and collateral)
    fund_eq = np.full(R, float(fund))
    fund_min = fund_eq.copy()
    bad = np.zeros(R)
    notional = np.zeros(R)
    calls = np.zeros(R)
    touched = np.zeros((R, A), dtype=bool)
    due = np.full((R, A), -1)
    trough = np.ones((R, K))
    prev = np.repeat(p0[None], R, 0)
    path0 = np.empty((blocks + 1, K))

    for b in range(blocks + 1):
        price = p0 * np.exp(base[b] + noise[b] + impact)
        fund_eq += (fund_units * (price - prev)).sum(-1)
        prev = price
        path0[b] = price[0] / p0
        trough = np.minimum(trough, price / p0)
        m = margin(pf, price, arr)
        liq = m.equity < m.maintenance
        due = np.where(liq & (due < 0), b + s.latency, due)
        due = np.where(~liq, -1, due)
        act = liq & (due >= 0) & (due <= b)
        if act.any():
            r_idx, a_idx = np.nonzero(act)
            pr = price[r_idx]  # (n, K)
            size, on = pf.size[r_idx, a_idx], pf.open_notional[r_idx, a_idx]  # (n, M)
            coll = pf.collateral[r_idx, a_idx]  # (n, J)
            v = size * pr[:, portfolio.market_asset]
            cv = coll * pr[:, portfolio.collateral_asset]
            pos_gross = np.abs(v).sum(-1)
            allowed = max_take(m.equity[r_idx, a_idx], m.maintenance[r_idx, a_idx], m.initial[r_idx, a_idx],
                               m.gross[r_idx, a_idx], cf, pen, rule.deep, rule.dust)
            with np.errstate(divide="ignore", invalid="ignore"):
                phi = np.where(pos_gross > 0, np.minimum(1.0, allowed / pos_gross), 0.0)
            settle = pf.settlement[r_idx, a_idx] + phi * (v - on).sum(-1)
            taken = phi * pos_gross
            np.add.at(fund_units, r_idx, (phi[:, None] * size) @ mk)
            size = size * (1.0 - phi[:, None])
            on = on * (1.0 - phi[:, None])
            # collateral: only once no position is left and the settlement balance is negative
            left = allowed - taken
            flat = phi >= 1.0
            need = np.where(flat, np.clip(-settle, 0.0, None), 0.0)
            coll_value = cv.sum(-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                avg_disc = np.where(coll_value > 0, (cv * disc).sum(-1) / np.where(coll_value > 0, coll_value, 1), 0)
                # seize enough to cover the debt and the penalty on the seizure, within what is left of the allowance
                want = need / np.clip(1.0 - avg_disc - pen, 1e-9, None)
                seize = np.minimum(np.minimum(want, coll_value), np.clip(left, 0.0, None))
                frac = np.where(coll_value > 0, seize / np.where(coll_value > 0, coll_value, 1.0), 0.0)
            settle += (frac[:, None] * cv * (1.0 - disc)).sum(-1)
            np.add.at(fund_units, r_idx, (frac[:, None] * coll) @ cj)
            fund_paid = (frac[:, None] * cv * (1.0 - disc)).sum(-1)
            coll = coll * (1.0 - frac[:, None])
            taken = taken + seize
            # capped by the equity left: closing at the oracle price keeps equity, a seizure only adds to it, so the
            # equity before the take is a lower bound of it
            penalty = np.minimum(pen * taken, np.clip(m.equity[r_idx, a_idx], 0.0, None))
            settle -= penalty
            reward = np.maximum(rule.keeper_share * penalty, np.minimum(rule.min_keeper_reward, penalty))
            # the fund: + penalty - reward - what it paid for collateral + collateral's value (marked) - bad debt
            np.add.at(fund_eq, r_idx, penalty - reward - fund_paid + seize)
            empty = (np.abs(size).sum(-1) == 0) & (coll.sum(-1) <= 1e-12)
            debt = np.where(empty & (settle < 0), -settle, 0.0)
            settle = np.where(debt > 0, 0.0, settle)
            np.add.at(fund_eq, r_idx, -debt)
            np.add.at(bad, r_idx, debt)
            np.add.at(notional, r_idx, taken)
            np.add.at(calls, r_idx, 1.0)
            touched[r_idx, a_idx] = True
            pf.settlement[r_idx, a_idx] = settle
            pf.size[r_idx, a_idx] = size
            pf.open_notional[r_idx, a_idx] = on
            pf.collateral[r_idx, a_idx] = coll
            due[r_idx, a_idx] = b + max(s.latency, 1)
        # the fund unwinds part of its inventory; the sale moves the price (permanent square-root impact)
        sell = fund_units / s.unwind_blocks
        q_usd = np.abs(sell) * price
        move = s.impact_y * vol * np.sqrt(q_usd / volume)
        fund_eq -= (q_usd * move).sum(-1)  # sold at the post-impact price
        fund_units -= sell
        impact -= np.sign(sell) * move
        fund_min = np.minimum(fund_min, fund_eq)
    return CascadeResult(s, float(fund), bad, fund_eq, fund_min, notional, calls, touched.sum(1).astype(float),
                         trough, path0)


# ---------------------------------------------------------------------------------------------- sweeps
def _run(args: tuple) -> dict:
    portfolio, prices0, arr, rule, fund, s = args
    res = simulate(portfolio, prices0, arr, rule, fund, s)
    out = res.summary()
    out["bad_debt_runs"] = res.bad_debt.tolist()
    return out


def sweep(portfolio: Portfolio, prices0: Sequence[float], arr: MarginArrays, rule: LiquidationRule, fund: float,
          scenarios: Sequence[CascadeScenario], scheduler: str | None = None, workers: int = 0) -> dict[str, dict]:
    """Every scenario's summary (with ``bad_debt_runs``, the bad debt of every run), with progress on stderr.

    In this process by default; on the Dask scheduler at ``scheduler`` (e.g. ``tcp://10.0.0.5:8786``) when one
    machine is not enough, or on a local Dask cluster of ``workers`` processes (``workers > 0``, no scheduler). A
    cluster pays off only for many scenarios of many runs: starting a local one costs seconds, and each task ships
    the whole portfolio. Dask's own logging is kept at WARNING."""
    tasks = [(portfolio, tuple(prices0), arr, rule, fund, s) for s in scenarios]
    if not scheduler and workers <= 0:
        return {s.name: _run(t) for s, t in zip(scenarios, Progress.over(tasks, "cascade scenarios"))}
    distributed = optional("dask.distributed", "a cascade on a Dask cluster")
    for name in ("distributed", "dask"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if scheduler:
        client, cluster = distributed.Client(scheduler), None
    else:
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.WARNING)
        client = distributed.Client(cluster)
    try:
        log.info("cascade sweep: %d scenarios on %s", len(tasks), client.scheduler.address)
        futures = client.map(_run, tasks, pure=False)
        bar = Progress(len(futures), "cascade scenarios")
        for _ in distributed.as_completed(futures):
            bar.advance()
        bar.close()
        results = client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return {s.name: r for s, r in zip(scenarios, results)}
