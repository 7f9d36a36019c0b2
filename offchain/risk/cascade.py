"""Liquidation-cascade simulation: a crash path, keepers with a latency and a block-space budget, the contract's
liquidation rule, funding, the write-off waterfall with deleveraging, the dynamic margin add-ons, and the price impact
of the insurance fund unwinding what it took over, feeding back into the oracle price.

Model, block by block and for many independent runs at once (float64, vectorised over runs x accounts):

1. Price. ``log P_b = log P_0 + path_b + noise_b + impact_b``: ``path`` goes log-linearly from 0 to the crash
   (per asset) over ``crash_blocks`` and stays there; ``noise`` is a random walk with per-block volatility
   ``noise_bps`` (70% of its variance common to all assets); ``impact`` is the permanent square-root impact of the
   fund's sales (6).
2. Volatility scalers (the dynamic add-on). An updater keeps a per-block EWMA of squared log returns per asset
   (decay ``vol_lambda``, seeded at the noise variance). When its volatility exceeds ``vol_trigger`` times the noise
   level, it proposes the scaler ``min(ratio, vol_cap)``; the proposal is on-chain ``vol_latency`` blocks later (a
   raise is a tightening: it applies at once) within RiskParameters' updater limits (at most ``vol_step`` = 5,000 bps
   per raise, one raise per asset per hour), and scalers only rise within the horizon (lowering one is a loosening,
   queued behind the delay). The spec's own scalers are the floor.
3. Funding. Every position pays ``size x price x rate`` per block, longs paying when the rate is positive: the rate is
   the spec's rule (``offchain.margin.funding.rate``) at the assumed crash premium ``crash_premium`` (capped at the
   spec's premium cap) with the fee weight at ``premium_weight`` of ``w + depth``, clamped at
   ``min(maxRate, clamp x riskWeight)`` per hour. The fund's inventory pays and receives like any position.
4. Margin of every account at that price: :func:`offchain.margin.vector.margin` (the float form of the exact mirror,
   concentration charge ``N sqrt(N / L)`` per position included when the spec publishes depths).
5. Keepers. An account seen with E < MM at block b is liquidated at block ``b + latency`` if it is still
   liquidatable then (latency 0: in the same block); one call per account per block; after a call the next one can
   land ``max(latency, 1)`` blocks later. At most ``max_calls_per_block`` calls fit in a block (block space: gas),
   the accounts with the largest MM - E first; the others stay due and go in the next blocks.
   A call takes at most ``maxTake`` (close factor, deep-underwater and dust rules as the vault): positions first, in
   proportion, at the oracle price (the fund takes them over); if the account then has no positions and a negative
   settlement balance, collateral is seized at its liquidation discount. The penalty (on the amount taken, at most
   the account's equity left; the vault's further cap at half the margin freed is not modelled) goes to the fund less
   the keeper's reward, paid out of it: ``max(share x penalty, min(min reward, penalty))`` (every modelled call takes
   all it may).
6. Write-off, as ``CrossMarginVault._writeOff``: an account left with nothing but debt is written off in the same
   call. The fund's cash less what its short options owe at the mark (its inventory otherwise not counted) covers
   what it can when positive; the rest is
   deleveraged: split over the sides opposite to the markets the account had positions liquidated in (longs
   liquidated: the shorts pay), in proportion to each side's notional (open interest x price), each side at most
   ``adlShare x riskWeight x notional`` per write-off, water-filled (:func:`adl_split`, the float form of
   ``offchain.margin.funding.adl_shares``); every position on a paying side pays its size times the side's charge per
   unit of open interest. What no side can take is socialised over the depositors' claims: that is ``bad_debt``.
   Write-offs of one run in one block are applied one after the other.
7. The fund desk unwinds the fund's inventory (taken positions and seized collateral): a fraction
   ``1 / unwind_blocks`` of it per block, sold on the market at a price moved by the square-root law
   ``Y sigma_day sqrt(Q / (V_day x depth_factor))`` (Q the USD amount sold per asset, V the market's daily volume,
   sigma its daily volatility); that move is permanent and the oracle follows it. The fund is marked to the oracle
   price every block.

8. Options (with :class:`~offchain.risk.revalue.OptionHoldings`): the volatility of every asset moves with the crash,
   log-linearly from today's to ``vol_spike`` times it over ``crash_blocks`` (as the price path), and the options
   are revalued in full every block (Black-Scholes at the block's price, that volatility and the time left); the
   margin of an account holding options is the float form of docs/options.md (the scan of its whole book per asset,
   :func:`offchain.risk.revalue.run_option_terms`). A liquidation takes option positions with its perpetuals, in the
   same proportion: the fund takes them over at the mark (it pays a long's value, a short pays it its liability),
   counted in the amount taken at their underlying notional ``|size| x spot`` (the vault's ``gross_total``). The
   desk unwinds the options as the rest (``1 / unwind_blocks`` per block) at the mark, and the dealers it sells them
   to hedge their delta in the underlying: the options' delta joins the units the desk sells, at the same
   square-root impact (paid by the fund, moving the price). On an asset where an account holds options, the
   deleveraging side of every position taken is the account's net direction there (the sign of its WS, as the vault
   marks it), and an option taken marks every perpetual market of its asset on that side; deleveraging charges
   perpetual sides only. Not modelled: the fund hedging its option inventory while it holds it, any
   impact on the volatility itself.

Outputs per run: bad debt (reaching depositors), what the fund covered, what was deleveraged, the debt written off,
fund equity at the end and its lowest point (depletion = start - lowest), the notional liquidated, the calls (and the
most in one block), the accounts liquidated, the lowest price reached with impact. Limits: one venue and one oracle per
asset (no arbitrage from other venues dampens the impact); open interest is the larger of the modelled longs and
shorts (the fund's inventory included), the desk's sales go to the market, not against a modelled account (so with
market makers in the book their shorts stay whole and the short side is a little larger than the vault's), and the
part of a paying side outside the model pays its share unrecorded; traders neither top up nor trade during the
crash; the vault's penalty cap at half the margin freed is not modelled; the oracle is the price (no oracle delay
or deviation threshold).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from ..errors import optional
from ..margin.vector import MarginArrays, OptionBook, Portfolio, margin, max_take, requirement
from .progress import Progress
from .revalue import YEAR_DAYS, OptionHoldings, run_option_terms

log = logging.getLogger(__name__)
BLOCK_SECONDS = 12.0


@dataclass(frozen=True)
class LiquidationRule:
    """The liquidation, funding and deleveraging parameters, as fractions, USD and seconds (``from_spec`` reads a
    RiskSpec; a spec without funding has funding and deleveraging off)."""

    close_factor: float
    penalty: float
    keeper_share: float
    deep: float
    min_keeper_reward: float
    dust: float
    discount: tuple[float, ...]  # per collateral id
    adl_share: float = 0.0  # share of a side's maintenance margin (RW x notional) one write-off may charge it
    funding_period: float = 0.0  # seconds over which a premium is paid (0: no funding)
    premium_cap: float = 0.0  # a fill's premium counts at most this far from the oracle (fraction)
    max_rate_per_hour: float = 0.0  # |rate| cap, fraction of notional per hour
    clamp: float = 0.0  # |rate| cap, times the asset's risk weight, per hour

    @classmethod
    def from_spec(cls, spec, n_collaterals: int) -> "LiquidationRule":
        lq, f = spec.liquidation, spec.funding
        extra = {} if f is None else {
            "adl_share": f.adl_share_bps / 1e4, "funding_period": float(f.period),
            "premium_cap": f.premium_cap_bps / 1e4,
            "max_rate_per_hour": f.max_rate_per_hour / 1e6, "clamp": f.clamp_bps / 1e4}
        return cls(lq.close_factor_bps / 1e4, lq.penalty_bps / 1e4, lq.keeper_share_bps / 1e4, lq.deep_bps / 1e4,
                   lq.min_keeper_reward / 1e18, lq.dust / 1e18,
                   tuple(spec.discounts.get(j, 0) / 1e4 for j in range(n_collaterals)), **extra)

    def funding_per_block(self, premium: float, weight: float, rw: np.ndarray) -> np.ndarray:
        """The funding rate per block (fraction of notional, longs pay when positive) of assets with risk weights
        ``rw`` at a premium ``premium`` of fee weight ``weight`` = w / (w + depth)."""
        if self.funding_period <= 0:
            return np.zeros_like(rw)
        p = float(np.clip(premium, -self.premium_cap, self.premium_cap))
        per_hour = p * weight / self.funding_period * 3600.0
        cap = np.minimum(self.max_rate_per_hour, self.clamp * rw)
        return np.clip(per_hour, -cap, cap) * BLOCK_SECONDS / 3600.0


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
    depth_factor: float = 1.0  # the market's depth (the volume behind the impact) times this: 0.5 = depth halved
    unwind_blocks: int = 10
    runs: int = 200
    seed: int = 0
    close_factor: float | None = None  # overrides the rule's
    penalty: float | None = None
    # keepers' block space: liquidation calls per block (~300k gas each: 40 calls are 12M gas, 40% of a 30M block)
    max_calls_per_block: int = 40
    crash_premium: float = -0.002  # fills print 20 bps below the oracle during the crash (capped by the spec)
    premium_weight: float = 0.5  # fee weight behind the premium, w / (w + depth): the premium counts half
    vol_latency: int = 2  # blocks from the updater seeing a jump to its scaler raise being on-chain
    vol_lambda: float = 0.9  # the updater's per-block EWMA decay
    vol_trigger: float = 2.0  # the updater raises a scaler once its volatility is this multiple of the noise
    vol_cap: float = 1.5  # the highest scaler it proposes (15,000 bps)
    # RiskParameters' updater limits: a raise of at most MAX_UPDATER_STEP (5,000 bps) per asset, once per
    # UPDATER_INTERVAL (1 hour = 300 blocks)
    vol_step: float = 0.5
    vol_interval_blocks: int = 300
    vol_spike: float = 1.0  # options' volatility at the end of the crash, times today's (log-linear over the crash)

    def with_(self, **kw) -> "CascadeScenario":
        return replace(self, **kw)

    def check(self) -> None:
        bad = [f"{k} {v}" for k, v, ok in (
            ("latency", self.latency, self.latency >= 0), ("crash_blocks", self.crash_blocks, self.crash_blocks >= 1),
            ("unwind_blocks", self.unwind_blocks, self.unwind_blocks >= 1), ("runs", self.runs, self.runs >= 1),
            ("depth_factor", self.depth_factor, self.depth_factor > 0),
            ("max_calls_per_block", self.max_calls_per_block, self.max_calls_per_block >= 0),
            ("vol_latency", self.vol_latency, self.vol_latency >= 0),
            ("vol_cap", self.vol_cap, self.vol_cap >= 1.0), ("vol_spike", self.vol_spike, self.vol_spike > 0))
            if not ok]
        if bad:
            raise ValueError(f"scenario {self.name}: " + ", ".join(bad) + " out of range (latency >= 0, crash_blocks, "
                             "unwind_blocks and runs >= 1, depth_factor > 0, max_calls_per_block >= 0 (0: no cap), "
                             "vol_latency >= 0, vol_cap >= 1, vol_spike > 0)")


@dataclass
class CascadeResult:
    scenario: CascadeScenario
    fund_start: float
    bad_debt: np.ndarray  # (runs,) socialised over the depositors' claims (after the fund and deleveraging)
    fund_end: np.ndarray
    fund_min: np.ndarray
    liquidated_notional: np.ndarray
    calls: np.ndarray
    accounts_liquidated: np.ndarray
    trough: np.ndarray  # (runs, K) lowest price / start, with impact
    price_path: np.ndarray = field(repr=False)  # (blocks + 1, K) run 0
    written_off: np.ndarray | None = None  # (runs,) debt of bankrupt accounts, before the waterfall
    fund_cover: np.ndarray | None = None  # (runs,) what the fund's settlement balance covered of it
    adl: np.ndarray | None = None  # (runs,) what deleveraging assigned to the opposite sides
    adl_paid: np.ndarray | None = field(default=None, repr=False)  # (runs, A) what each account paid by deleveraging
    funding_paid: np.ndarray | None = field(default=None, repr=False)  # (runs, A) funding each account paid (+)
    max_block_calls: np.ndarray | None = None  # (runs,) the most calls in one block
    vol_scale_max: np.ndarray | None = None  # (runs, K) the highest scaler reached
    option_notional: np.ndarray | None = None  # (runs,) underlying notional of the options liquidated (None: none held)
    option_accounts: np.ndarray | None = None  # (runs,) accounts holding options that were liquidated

    def summary(self, q: float = 0.95) -> dict:
        def pct(x: np.ndarray) -> float:
            return float(np.quantile(x, q))

        depletion = np.clip(self.fund_start - self.fund_min, 0.0, None)
        zero = np.zeros_like(self.bad_debt)
        s = self.scenario
        return {
            "crash": list(s.crash), "latency_blocks": s.latency, "crash_blocks": s.crash_blocks,
            "runs": s.runs, "impact_y": s.impact_y, "unwind_blocks": s.unwind_blocks, "depth_factor": s.depth_factor,
            "max_calls_per_block": s.max_calls_per_block, "crash_premium": s.crash_premium,
            "vol_latency": s.vol_latency, "vol_cap": s.vol_cap,
            "close_factor": s.close_factor, "insurance_fund": self.fund_start,
            "bad_debt": pct(self.bad_debt), "bad_debt_mean": float(self.bad_debt.mean()),
            "bad_debt_max": float(self.bad_debt.max()),
            "p_bad_debt": float((self.bad_debt > 0).mean()),
            "fund_depletion": pct(depletion), "fund_depletion_mean": float(depletion.mean()),
            "fund_depletion_max": float(depletion.max()),
            "p_depletion_exceeds_fund": float((depletion > self.fund_start).mean()),
            # the fund's own deficit (its inventory lost more than it held): a hole the claims stand behind
            "fund_shortfall": pct(np.clip(depletion - self.fund_start, 0.0, None)),
            "fund_end_p05": float(np.quantile(self.fund_end, 1 - q)),
            "adl": pct(self.adl if self.adl is not None else zero),
            "adl_max": float((self.adl if self.adl is not None else zero).max()),
            "written_off": pct(self.written_off if self.written_off is not None else zero),
            "fund_cover": pct(self.fund_cover if self.fund_cover is not None else zero),
            "liquidated_notional": pct(self.liquidated_notional),
            "accounts_liquidated": pct(self.accounts_liquidated), "liquidation_calls": pct(self.calls),
            "max_calls_in_a_block": float((self.max_block_calls if self.max_block_calls is not None else zero).max()),
            "vol_scaler_max": ([float(x) for x in self.vol_scale_max.max(0)] if self.vol_scale_max is not None
                               else None),
            "trough_with_impact": [float(x) for x in np.quantile(self.trough, 1 - q, axis=0)],
            "quantile": q,
            **({} if self.option_notional is None else {
                "vol_spike": s.vol_spike, "option_notional_liquidated": pct(self.option_notional),
                "option_accounts_liquidated": pct(self.option_accounts)}),
        }


def _path(s: CascadeScenario, k: int) -> np.ndarray:
    blocks = s.crash_blocks + s.after_blocks
    t = np.minimum(np.arange(blocks + 1) / max(s.crash_blocks, 1), 1.0)
    crash = np.log1p(np.clip(np.asarray(s.crash[:k] + (0.0,) * (k - len(s.crash[:k]))), -0.999, None))
    return t[:, None] * crash[None, :]


def adl_split(notional: np.ndarray, room: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """What each side pays of ``loss`` (n,): the float form of ``offchain.margin.funding.adl_shares``, for n
    write-offs at once. ``notional`` and ``room`` (n, S) are each source side's notional and cap (0: not a source).
    Pro rata to notional over the sides with room; what a full side cannot take is split again over the others,
    until the loss is assigned or every side is full (each pass fills a side or assigns everything)."""
    due = np.zeros_like(notional, dtype=float)
    room = np.asarray(room, dtype=float).copy()
    loss = np.asarray(loss, dtype=float).copy()
    open_ = room > 0
    for _ in range(notional.shape[-1]):
        live = (loss > 0) & open_.any(-1)
        if not live.any():
            break
        w = np.where(open_ & live[:, None], notional, 0.0)
        total = w.sum(-1)
        part = loss[:, None] * w / np.where(total > 0, total, 1.0)[:, None]
        take = np.minimum(part, room)
        full = open_ & (part >= room)
        due += take
        room -= take
        loss = np.where(full.any(-1), loss - take.sum(-1), 0.0)  # no side full: everything was assigned
        open_ &= ~full
    return due


def simulate(portfolio: Portfolio, prices0: Sequence[float], arr: MarginArrays, rule: LiquidationRule,
             fund: float, s: CascadeScenario, options: OptionHoldings | None = None) -> CascadeResult:
    """Run ``s.runs`` paths of scenario ``s`` on ``portfolio`` (whole USD prices ``prices0`` per asset); with
    ``options``, the same accounts' option positions (sizes (A, S) over one shared listing, struck in USD) under
    the OPTION word's figures and today's volatility per asset (8. in the module docstring)."""
    s.check()
    R, K = s.runs, portfolio.n_assets
    M, J = len(portfolio.market_asset), len(portfolio.collateral_asset)
    p0 = np.asarray(prices0, dtype=float)[:K]
    cf = rule.close_factor if s.close_factor is None else s.close_factor
    pen = rule.penalty if s.penalty is None else s.penalty
    disc = np.asarray(rule.discount[:J])
    rng = np.random.default_rng(s.seed)
    base = _path(s, K)
    blocks = len(base) - 1
    sig = s.noise_bps / 1e4
    common = rng.standard_normal((blocks, R, 1))
    own = rng.standard_normal((blocks, R, K))
    noise = np.concatenate([np.zeros((1, R, K)), np.cumsum(sig * (np.sqrt(0.7) * common + np.sqrt(0.3) * own), 0)])
    vol, volume = np.asarray(s.daily_vol[:K]), np.asarray(s.daily_volume_usd[:K]) * s.depth_factor
    ma, ca = portfolio.market_asset, portfolio.collateral_asset
    mk = np.zeros((M, K))
    mk[np.arange(M), ma] = 1.0
    cj = np.zeros((J, K))
    cj[np.arange(J), ca] = 1.0
    rw_m = arr.rw[ma]
    rate = rule.funding_per_block(s.crash_premium, s.premium_weight, rw_m)  # (M,)
    src_rw = np.concatenate([rw_m, rw_m])  # sources: 0..M-1 longs of m liquidated (shorts pay), M..2M-1 shorts

    A = len(portfolio.settlement)
    pf = Portfolio(np.repeat(portfolio.settlement[None], R, 0), np.repeat(portfolio.size[None], R, 0),
                   np.repeat(portfolio.open_notional[None], R, 0), np.repeat(portfolio.collateral[None], R, 0),
                   ma, ca, K)
    impact = np.zeros((R, K))
    fund_pos, fund_on, fund_coll = np.zeros((R, M)), np.zeros((R, M)), np.zeros((R, J))  # the fund's inventory
    cash = np.full(R, float(fund))  # the fund's settlement balance
    fund_eq = cash.copy()
    fund_min = cash.copy()
    bad, written, cover, adl = np.zeros(R), np.zeros(R), np.zeros(R), np.zeros(R)
    adl_paid, funding_paid = np.zeros((R, A)), np.zeros((R, A))
    notional = np.zeros(R)
    calls = np.zeros(R)
    max_block = np.zeros(R)
    touched = np.zeros((R, A), dtype=bool)
    sources = np.zeros((R, A, 2 * M), dtype=bool)
    due = np.full((R, A), -1)
    trough = np.ones((R, K))
    prev = np.repeat(p0[None], R, 0)
    path0 = np.empty((blocks + 1, K))
    # the volatility updater
    ref = max(sig, 1e-6)
    ewma = np.full((R, K), ref * ref)
    vs_floor = np.ones(K) if arr.vol_scale is None else np.broadcast_to(arr.vol_scale, (K,)).astype(float)
    vs = np.repeat(vs_floor[None], R, 0)
    proposed: list[np.ndarray] = []
    last_raise = np.full((R, K), -10**9)
    opt = _OptionState.start(options, R, A, K, s, base) if options is not None else None

    for b in range(blocks + 1):
        price = p0 * np.exp(base[b] + noise[b] + impact)
        pm, pc = price[:, ma], price[:, ca]
        if b > 0:
            ewma = s.vol_lambda * ewma + (1 - s.vol_lambda) * np.log(price / prev) ** 2
        ratio = np.sqrt(ewma) / ref
        proposed.append(np.where(ratio >= s.vol_trigger, np.minimum(ratio, s.vol_cap), 1.0))
        if b >= s.vol_latency:  # the updater's call lands: a raise within its step, once per interval
            want = proposed[b - s.vol_latency]
            up = (want > vs) & (b - last_raise >= s.vol_interval_blocks)
            vs = np.where(up, np.minimum(want, vs + s.vol_step), vs)
            last_raise = np.where(up, b, last_raise)
        # funding over the block just ended, at this block's price (the positions held through it)
        if rate.any():
            pay = pf.size * (pm * rate)[:, None, :]
            pf.settlement -= pay.sum(-1)
            funding_paid += pay.sum(-1)
            cash -= (fund_pos * pm * rate).sum(-1)
        prev = price
        path0[b] = price[0] / p0
        trough = np.minimum(trough, price / p0)
        arr_b = arr if (vs == 1.0).all() else replace(arr, vol_scale=vs[:, None, :])
        m = margin(pf, price, arr_b)
        equity, mm, im, gross = m.equity, m.maintenance, m.initial, m.gross
        if opt is not None:
            equity, mm, im, gross = opt.margin(pf, price, arr_b, b, m)
        liq = equity < mm
        due = np.where(liq & (due < 0), b + s.latency, due)
        due = np.where(~liq, -1, due)
        act = liq & (due >= 0) & (due <= b)
        cap = s.max_calls_per_block
        if cap and (act.sum(1) > cap).any():  # block space: the most urgent first, the others wait
            score = np.where(act, mm - equity, -np.inf)
            top = np.argpartition(-score, cap - 1, axis=1)[:, :cap]
            keep = np.zeros_like(act)
            np.put_along_axis(keep, top, True, axis=1)
            act &= keep
        if act.any():
            r_idx, a_idx = np.nonzero(act)
            max_block = np.maximum(max_block, np.bincount(r_idx, minlength=R))
            pr = price[r_idx]  # (n, K)
            size, on = pf.size[r_idx, a_idx], pf.open_notional[r_idx, a_idx]  # (n, M)
            coll = pf.collateral[r_idx, a_idx]  # (n, J)
            v = size * pr[:, ma]
            cv = coll * pr[:, ca]
            pos_gross = np.abs(v).sum(-1)
            if opt is not None:
                o_val, o_notional = opt.positions(r_idx, a_idx, pr)
                pos_gross = pos_gross + o_notional.sum(-1)
            allowed = max_take(equity[r_idx, a_idx], mm[r_idx, a_idx], im[r_idx, a_idx],
                               gross[r_idx, a_idx], cf, pen, rule.deep, rule.dust)
            with np.errstate(divide="ignore", invalid="ignore"):
                phi = np.where(pos_gross > 0, np.minimum(1.0, allowed / pos_gross), 0.0)
            settle = pf.settlement[r_idx, a_idx] + phi * (v - on).sum(-1)
            closed = (phi > 0)[:, None] & (size != 0)
            # the source side: the account's net direction (WS) on an asset it holds options on, else the position's
            ws = opt.ws[r_idx, a_idx][:, ma] if opt is not None else np.zeros_like(size)  # (n, M)
            sources[r_idx, a_idx, :M] |= closed & np.where(ws != 0, ws > 0, size > 0)
            sources[r_idx, a_idx, M:] |= closed & np.where(ws != 0, ws < 0, size < 0)
            if opt is not None:  # the fund takes the options over at the mark
                settle = settle + phi * o_val.sum(-1)
                moved = opt.take(r_idx, a_idx, phi, o_val, o_notional, cash)[:, ma]  # every market of their asset
                sources[r_idx, a_idx, :M] |= moved & (ws > 0)
                sources[r_idx, a_idx, M:] |= moved & (ws < 0)
            taken = phi * pos_gross
            np.add.at(fund_pos, r_idx, phi[:, None] * size)
            np.add.at(fund_on, r_idx, phi[:, None] * v)  # taken over at the oracle price
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
            fund_paid = (frac[:, None] * cv * (1.0 - disc)).sum(-1)
            settle += fund_paid
            np.add.at(fund_coll, r_idx, frac[:, None] * coll)
            coll = coll * (1.0 - frac[:, None])
            taken = taken + seize
            # capped by the equity left: closing at the oracle price keeps equity, a seizure only adds to it, so the
            # equity before the take is a lower bound of it
            penalty = np.minimum(pen * taken, np.clip(equity[r_idx, a_idx], 0.0, None))
            settle -= penalty
            reward = np.maximum(rule.keeper_share * penalty, np.minimum(rule.min_keeper_reward, penalty))
            np.add.at(cash, r_idx, penalty - reward - fund_paid)
            empty = (np.abs(size).sum(-1) == 0) & (coll.sum(-1) <= 1e-12)
            if opt is not None:
                empty &= np.abs(opt.size[r_idx, a_idx]).sum(-1) == 0
            debt = np.where(empty & (settle < 0), -settle, 0.0)
            settle = np.where(debt > 0, 0.0, settle)
            np.add.at(notional, r_idx, taken)
            np.add.at(calls, r_idx, 1.0)
            touched[r_idx, a_idx] = True
            pf.settlement[r_idx, a_idx] = settle
            pf.size[r_idx, a_idx] = size
            pf.open_notional[r_idx, a_idx] = on
            pf.collateral[r_idx, a_idx] = coll
            due[r_idx, a_idx] = b + max(s.latency, 1)
            if (debt > 0).any():
                w = debt > 0
                owed = opt.fund_short_liability() if opt is not None else np.zeros(R)
                _write_off(r_idx[w], a_idx[w], debt[w], pm, pf, fund_pos, cash, owed, sources, src_rw,
                           rule.adl_share, bad, written, cover, adl, adl_paid)
        # the fund desk unwinds part of the inventory; the sale moves the price (permanent square-root impact)
        f = 1.0 / s.unwind_blocks
        sell_pos, sell_on, sell_coll = fund_pos * f, fund_on * f, fund_coll * f
        units = sell_pos @ mk + sell_coll @ cj  # per asset, + = selling
        if opt is not None:  # the options at the mark; their delta is hedged in the underlying by the buyers
            units = units + opt.unwind(f, price, cash)
        q_usd = np.abs(units) * price
        move = s.impact_y * vol * np.sqrt(q_usd / volume)
        cash += (sell_pos * pm - sell_on).sum(-1) + (sell_coll * pc).sum(-1) - (q_usd * move).sum(-1)
        fund_pos -= sell_pos
        fund_on -= sell_on
        fund_coll -= sell_coll
        impact -= np.sign(units) * move
        fund_eq = cash + (fund_pos * pm - fund_on).sum(-1) + (fund_coll * pc).sum(-1)
        if opt is not None:
            fund_eq = fund_eq + opt.fund_value()
        fund_min = np.minimum(fund_min, fund_eq)
    res = CascadeResult(s, float(fund), bad, fund_eq, fund_min, notional, calls, touched.sum(1).astype(float),
                        trough, path0, written, cover, adl, adl_paid, funding_paid, max_block, vs)
    if opt is not None:
        res.option_notional = opt.liquidated
        res.option_accounts = (touched & opt.holder[None, :]).sum(1).astype(float)
    return res


@dataclass
class _OptionState:
    """The option side of one :func:`simulate`: every run's option sizes (R, A, S), the fund's option inventory
    (R, S), the volatility path, and this block's unit values and deltas."""

    listing: OptionBook  # series arrays (S,), expiry in years at the start
    holdings: OptionHoldings
    size: np.ndarray  # (R, A, S)
    holder: np.ndarray  # (A,) bool: accounts that started with options (the only ones whose margin has option terms)
    vol_path: np.ndarray  # (blocks + 1, K)
    fund: np.ndarray  # (R, S) the fund's option inventory
    liquidated: np.ndarray  # (R,) underlying notional of the options taken over
    unit: np.ndarray | None = None  # (R, S) this block's value of one unit
    spot: np.ndarray | None = None  # (R, S) this block's spot of each series
    book: OptionBook | None = None  # this block's listing (time to expiry)
    sigma: np.ndarray | None = None  # (K,) this block's volatility
    ws: np.ndarray | None = None  # (R, A, K) this block's WS of each asset an account holds options on (0 elsewhere)

    @classmethod
    def start(cls, h: OptionHoldings, runs: int, accounts: int, k: int, s: CascadeScenario,
              base: np.ndarray) -> "_OptionState":
        b = h.book
        if np.asarray(b.asset).ndim != 1:
            raise ValueError("a cascade's options share one listing: series arrays (S,)")
        size = np.asarray(b.size, float)
        if size.shape[0] != accounts:
            raise ValueError(f"option sizes for {size.shape[0]} accounts, the portfolio has {accounts}")
        n = len(np.asarray(b.asset))
        listing = OptionBook(np.zeros((1, n)), np.asarray(b.asset), np.asarray(b.is_call), np.asarray(b.strike, float),
                             np.asarray(b.expiry, float))
        # the crash's progress (0 to 1) of the price path, per block: the volatility follows it
        t = np.minimum(np.arange(len(base)) / max(s.crash_blocks, 1), 1.0)
        vol_path = np.asarray(h.sigma, float)[None, :k] * np.exp(t[:, None] * np.log(s.vol_spike))
        return cls(listing, h, np.repeat(size[None], runs, 0), np.abs(size).sum(-1) > 0, vol_path,
                   np.zeros((runs, n)), np.zeros(runs))

    def margin(self, pf: Portfolio, price: np.ndarray, arr: MarginArrays, b: int, m) -> tuple:
        """(equity, MM, IM, gross for maxTake) of every account at block ``b``: the linear figures of ``m`` for the
        accounts without options, the float margin with the option terms for the holders."""
        lst = self.listing
        self.book = OptionBook(lst.size, lst.asset, lst.is_call, lst.strike,
                               lst.expiry - b * BLOCK_SECONDS / (YEAR_DAYS * 86_400.0))
        sigma = self.sigma = self.vol_path[b]
        h = self.holder
        sub = Portfolio(pf.settlement[:, h], pf.size[:, h], pf.open_notional[:, h], pf.collateral[:, h],
                        pf.market_asset, pf.collateral_asset, pf.n_assets)
        eq, delta, gr = sub.exposure(price, arr.haircut)
        notional = np.abs(sub.values(price)[0]) if arr.depth is not None else None
        terms, values, self.unit = run_option_terms(self.size[:, h], self.book, price, sigma, arr,
                                                    self.holdings.oarr)
        mm_h, im_h = requirement(delta, gr, arr, notional, terms)
        ws, _ = terms.parts(delta, arr.rw)
        live = (self.size[:, h] != 0) @ lst.onehot(price.shape[-1]).astype(bool)  # (R, A_h, K)
        self.ws = np.zeros(self.size.shape[:2] + (price.shape[-1],))
        self.ws[:, h] = np.where(live, ws, 0.0)
        self.spot = price[:, np.asarray(lst.asset)]
        equity, mm, im = m.equity.copy(), m.maintenance.copy(), m.initial.copy()
        equity[:, h], mm[:, h], im[:, h] = eq + values, mm_h, im_h
        gross = m.gross.copy()  # the vault's gross_total: the options' underlying notional added
        gross[:, h] += (np.abs(self.size[:, h]) * self.spot[:, None, :]).sum(-1)
        return equity, mm, im, gross

    def positions(self, r: np.ndarray, a: np.ndarray, pr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values, underlying notionals), each (n, S), of the option positions of accounts (r, a)."""
        q = self.size[r, a]
        return q * self.unit[r], np.abs(q) * self.spot[r]

    def take(self, r: np.ndarray, a: np.ndarray, phi: np.ndarray, value: np.ndarray, notional: np.ndarray,
             cash: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fund takes over ``phi`` of the positions of (r, a) at the mark: it pays their value (a long's) or is
        paid it (a short's liability). Returns the assets of the positions taken (n, K)."""
        q = self.size[r, a]
        part = phi[:, None] * q
        np.add.at(self.fund, r, part)
        np.add.at(cash, r, -(phi * value.sum(-1)))
        np.add.at(self.liquidated, r, phi * notional.sum(-1))
        self.size[r, a] = q - part
        return ((phi > 0)[:, None] & (q != 0)) @ self.listing.onehot(self.vol_path.shape[1]).astype(bool)

    def fund_short_liability(self) -> np.ndarray:
        """(R,) what the fund's short options owe at this block's mark (IOptionMarkets.shortLiability): the part of
        its cash that does not cover write-offs."""
        return (np.clip(-self.fund, 0.0, None) * self.unit).sum(-1)

    def unwind(self, f: float, price: np.ndarray, cash: np.ndarray) -> np.ndarray:
        """The desk sells ``f`` of the fund's options at the mark; returns the underlying units their buyers sell to
        hedge them (R, K) (+ = selling: the fund sold a long call)."""
        sell = self.fund * f
        cash += (sell * self.unit).sum(-1)
        self.fund = self.fund - sell
        h = self.holdings
        spot, sig = self.book.per_series(price, self.sigma)
        delta = self.book.unit_deltas(spot, sig, h.oarr)[..., 0, :]  # (R, S)
        return (sell * delta) @ self.book.onehot(price.shape[-1])

    def fund_value(self) -> np.ndarray:
        return (self.fund * self.unit).sum(-1)


def _write_off(r_ev, a_ev, debt, pm, pf, fund_pos, cash, owed, sources, src_rw, adl_share, bad, written, cover, adl,
               adl_paid) -> None:
    """The waterfall of the write-offs of one block (event arrays): the fund's cash less ``owed`` (R,) (its short
    options' liability), deleveraging, the claims. A run's write-offs go one after the other (round k takes the k-th
    of every run); arrays are updated in place."""
    M = pm.shape[1]
    order = np.argsort(r_ev, kind="stable")
    r_ev, a_ev, debt = r_ev[order], a_ev[order], debt[order]
    first = np.searchsorted(r_ev, r_ev, side="left")
    rank = np.arange(len(r_ev)) - first
    for k in range(int(rank.max()) + 1):
        sel = rank == k
        r, a, d = r_ev[sel], a_ev[sel], debt[sel]
        c = np.minimum(d, np.clip(cash[r] - owed[r], 0.0, None))
        cash[r] -= c
        loss = d - c
        size, fpos = pf.size[r], fund_pos[r]  # (n, A, M), (n, M)
        longs = np.clip(size, 0, None).sum(1) + np.clip(fpos, 0, None)
        shorts = np.clip(-size, 0, None).sum(1) + np.clip(-fpos, 0, None)
        oi = np.maximum(longs, shorts)  # (n, M) open interest, units
        side_notional = np.concatenate([oi * pm[r], oi * pm[r]], -1)  # (n, 2M)
        room = np.where(sources[r, a], adl_share * src_rw * side_notional, 0.0)
        due = adl_split(side_notional, room, loss)
        oi2 = np.concatenate([oi, oi], -1)
        per_unit = due / np.where(oi2 > 0, oi2, 1.0)  # USD per unit of the paying side's size
        paid = (np.clip(-size, 0, None) * per_unit[:, None, :M]).sum(-1) \
            + (np.clip(size, 0, None) * per_unit[:, None, M:]).sum(-1)  # (n, A)
        pf.settlement[r] -= paid
        adl_paid[r] += paid
        cash[r] -= (np.clip(-fpos, 0, None) * per_unit[:, :M] + np.clip(fpos, 0, None) * per_unit[:, M:]).sum(-1)
        # what the sides could not take reaches the claims; a float residue of the split (the vault's parts add up
        # to the wei) is not a loss
        rest = loss - due.sum(-1)
        rest = np.where(rest <= 1e-9 * np.maximum(loss, 1.0), 0.0, rest)
        adl[r] += loss - rest
        bad[r] += rest
        cover[r] += c
        written[r] += d
        sources[r, a] = False


# ---------------------------------------------------------------------------------------------- sweeps
def _run(args: tuple) -> dict:
    portfolio, prices0, arr, rule, fund, s, *rest = args
    options = rest[0] if rest else None
    t = time.time()
    res = simulate(portfolio, prices0, arr, rule, fund, s, options)
    out = res.summary()
    out["seconds"] = round(time.time() - t, 2)  # this scenario's simulation (in its worker)
    out["bad_debt_runs"] = res.bad_debt.tolist()
    if options is not None:
        out["fund_depletion_runs"] = np.clip(res.fund_start - res.fund_min, 0.0, None).tolist()
    return out


def sweep(portfolio: Portfolio, prices0: Sequence[float], arr: MarginArrays, rule: LiquidationRule, fund: float,
          scenarios: Sequence[CascadeScenario], scheduler: str | None = None, workers: int = 0,
          options: OptionHoldings | None = None) -> dict[str, dict]:
    """Every scenario's summary (with ``bad_debt_runs``, the bad debt of every run; with ``options``, the accounts'
    option positions, also ``fund_depletion_runs``), with progress on stderr.

    In this process by default; on the Dask scheduler at ``scheduler`` (e.g. ``tcp://10.0.0.5:8786``) when one
    machine is not enough, or on a local Dask cluster of ``workers`` processes (``workers > 0``, no scheduler). A
    cluster pays off only for many scenarios of many runs: starting a local one costs seconds, and each task ships
    the whole portfolio. Dask's own logging is kept at WARNING."""
    tasks = [(portfolio, tuple(prices0), arr, rule, fund, s) + ((options,) if options is not None else ())
             for s in scenarios]
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
