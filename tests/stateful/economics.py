"""What the economic invariants of the stateful machine expect, in exact integers and independent of the off-chain
planner: the trade rule (R2), the liquidation rule with its penalty and keeper reward (R1), the value of an account
and of an owner, and the per-segment ledger behind the invariants E1-E4 (README of tests/stateful/machine.py).

Everything here is written from the rules (NatSpec of ICrossMarginVault; R1-R5 in docs/SECURITY.md) and the margin
mirror ``offchain.margin.exact`` (equity, MM, IM of a state, verified against the chain by invariant 6). Nothing reads
the chain: the machine passes states, prices and parameter words in.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from offchain.keeper.planner import LiquidationTerms  # the decoder of liquidationConfig()
from offchain.margin.exact import (BPS, WAD, AccountState, Layout, MarginConfig, PriceUnavailable, account_margin,
                                  ceil_div, floor_div, haircut_down, mul_div_up, position_value_down,
                                  rounding_shortfall, token_value_down, u16)
from offchain.margin.funding import MarketFunding, accrued

Markets = Mapping[int, MarketFunding] | None  # each market's funding state at the evaluation's time (exact.exposure)

INDEX_ONE = 10**18
FULL_TAKE_BPS = 9_900  # R1: a take of at least 99% of maxTake earns the minimum keeper reward


# ---------------------------------------------------------------------------------------------- values
def net_value(state: AccountState, layout: Layout, prices: Sequence[int], markets: Markets = None) -> int:
    """What an account is worth at the oracle price, USD 1e18: settlement balance, collateral at its full value (a
    haircut is a margin buffer, not a loss: withdrawing the token gets all of it back), unrealised P&L and accrued
    funding."""
    v = state.settlement
    for m, (size, on) in state.positions.items():
        if size:
            v += position_value_down(size, prices[layout.market_asset[m]]) - on
            if markets and m in markets:
                v += accrued(size, state.funding.get(m, 0), markets[m])
    for j, bal in state.collateral.items():
        if bal:
            v += token_value_down(bal, prices[layout.collateral_asset[j]], layout.collateral_decimals[j])
    return v


def owner_value(states: Sequence[AccountState], layout: Layout, prices: Sequence[int], markets: Markets = None) -> int:
    """An owner's value: the sum over its subaccounts of max(net value, 0). Subaccounts are margined apart, so what
    one of them owes beyond its assets is the fund's and the claim holders' loss, not the owner's: an owner that
    bankrupts one subaccount into another has gained exactly that shortfall."""
    return sum(max(net_value(s, layout, prices, markets), 0) for s in states)


def token_usd(amount: int, price: int, decimals: int) -> int:
    return token_value_down(amount, price, decimals)


# ---------------------------------------------------------------------------------------------- fills (R2)
def _tdiv(a: int, b: int) -> int:
    """Solidity signed division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def roundtrip(old_usd: int, new_usd: int, index: int) -> int:
    """The USD balance the vault reads back after storing ``new_usd``: a positive balance is kept as shares rounded
    down (an unchanged balance keeps its shares)."""
    if new_usd <= 0 or new_usd == old_usd or index == INDEX_ONE:
        return new_usd
    return (new_usd * INDEX_ONE // index) * index // INDEX_ONE


def fill(state: AccountState, market: int, delta: int, price: int, markets: Markets = None
         ) -> tuple[AccountState, bool]:
    """``CrossMarginVault._fill``: the state after a fill of ``delta`` at ``price`` and whether the position grew; the
    position's accrued funding is realised and it stores its (new) side's index."""
    s = copy.deepcopy(state)
    size, on = s.positions.get(market, (0, 0))
    new = size + delta
    fm = markets.get(market) if markets else None
    if fm is not None and size:
        s.settlement += accrued(size, s.funding.get(market, 0), fm)
    if size == 0 or (size > 0) == (delta > 0):
        increased = True
        on += ceil_div(delta * price, WAD)
    else:
        closed = delta if abs(delta) < abs(size) else -size
        basis = _tdiv(on * closed, -size)
        s.settlement += floor_div(-closed * price, WAD) - basis
        on -= basis
        increased = closed != delta
        if increased:
            on = ceil_div((delta - closed) * price, WAD)
    if new == 0:
        s.positions.pop(market, None)
        s.funding.pop(market, None)
    else:
        s.positions[market] = (new, on)
        s.funding[market] = fm.index(new) if fm is not None else 0
    return s, increased


@dataclass
class TradeVerdict:
    error: str  # "" when the trade must go through, else the first custom error the vault must raise
    after: tuple[AccountState, AccountState] | None = None  # buyer, seller after the fill
    increased: tuple[bool, bool] = (False, False)
    below_im: tuple[bool, bool] = (False, False)  # a side accepted below IM (a pure reduction, R2)


@dataclass(frozen=True)
class Market:
    asset: int
    max_position: int
    max_oi: int
    open_interest: int


def trade_verdict(buyer: AccountState, seller: AccountState, market: Market, market_id: int, size: int, price: int,
                  layout: Layout, prices: Sequence[int], cfg: MarginConfig, band_bps: int, trades_paused: bool,
                  index: int, markets: Markets = None) -> TradeVerdict:
    """What the vault must do with ``buyer`` buying ``size`` from ``seller`` at ``price`` (fees 0), in its order of
    checks: size, band, position caps (buyer, seller), pause, open interest, then the trade rule R2 for each side."""
    if size == 0:
        return TradeVerdict("ZeroAmount")
    oracle = prices[market.asset]
    if abs(price - oracle) * BPS > oracle * band_bps:
        return TradeVerdict("PriceOutsideBand")
    b, b_up = fill(buyer, market_id, size, price, markets)
    s, s_up = fill(seller, market_id, -size, price, markets)
    for st, up in ((b, b_up), (s, s_up)):
        if up and abs(st.positions.get(market_id, (0, 0))[0]) > market.max_position:
            return TradeVerdict("PositionTooLarge")
    if (b_up or s_up) and trades_paused:
        return TradeVerdict("Paused")
    longs = lambda st: max(st.positions.get(market_id, (0, 0))[0], 0)  # noqa: E731
    change = longs(b) + longs(s) - longs(buyer) - longs(seller)
    if change > 0 and market.open_interest + change > market.max_oi:
        return TradeVerdict("OpenInterestTooLarge")
    b.settlement = roundtrip(buyer.settlement, b.settlement, index)
    s.settlement = roundtrip(seller.settlement, s.settlement, index)
    below = []
    for before, after, up, no_worse in ((buyer, b, b_up, price <= oracle), (seller, s, s_up, price >= oracle)):
        m1 = account_margin(after, layout, prices, cfg, markets)
        if m1.equity >= m1.initial:
            below.append(False)
            continue
        m0 = account_margin(before, layout, prices, cfg, markets)
        if not up and no_worse and m1.equity >= 0 and m1.equity - m1.maintenance > m0.equity - m0.maintenance:
            below.append(True)
            continue
        return TradeVerdict("InsufficientMargin", (b, s), (b_up, s_up))
    return TradeVerdict("", (b, s), (b_up, s_up), (below[0], below[1]))


# ---------------------------------------------------------------------------------------------- liquidation (R1)
def allowed_take(equity: int, mm: int, im: int, gross: int, t: LiquidationTerms) -> int:
    """maxTake (ICrossMarginVault): everything when deep under water or when the rest would be dust, else
    min(closeFactor * gross, the amount that restores IM if the requirement fell in proportion)."""
    if equity * BPS < mm * t.deep:
        return gross
    allowed = gross * t.close_factor // BPS
    den = im * BPS - t.penalty * gross
    if den > 0:
        allowed = min(allowed, mul_div_up(gross * BPS, im - equity, den))
    return gross if gross - allowed < t.dust else allowed


def rule_penalty(taken: int, equity_after: int, mm_before: int, mm_after: int, t: LiquidationTerms) -> int:
    """R1: min(ceil(rate * taken), max(E', 0), (MM - MM') / 2 if MM' < MM else 0)."""
    freed = (mm_before - mm_after) // 2 if mm_after < mm_before else 0
    return min(mul_div_up(taken, t.penalty, BPS), max(equity_after, 0), freed)


def rule_reward(penalty: int, taken: int, allowed: int, t: LiquidationTerms) -> int:
    """R1: min(keeperShare * penalty, penalty), raised to min(minKeeperReward, penalty) for a take of >= 99% of
    maxTake."""
    reward = min(penalty * t.keeper_share // BPS, penalty)
    if taken * BPS >= allowed * FULL_TAKE_BPS:
        reward = max(reward, min(t.min_reward, penalty))
    return reward


@dataclass
class LiquidationOutcome:
    error: str  # "" when the vault must accept the call
    taken: int = 0
    penalty: int = 0
    reward: int = 0
    allowed: int = 0
    surplus_before: int = 0
    surplus_after: int = 0
    after: AccountState | None = None  # the account after the call (and its write-off)
    debt: int = 0  # written off in the same call (the unpriced collateral passing to the fund with it)


def liquidation_outcome(state: AccountState, items: Sequence[tuple[int, int, int]], layout: Layout,
                        prices: Sequence[int], cfg: MarginConfig, t: LiquidationTerms,
                        self_keeper: bool = False, index: int = INDEX_ONE,
                        last_prices: Sequence[int] | None = None, markets: Markets = None) -> LiquidationOutcome:
    """What ``liquidate(account, items)`` must do (ICrossMarginVault and R1), in the vault's order of checks.
    ``self_keeper``: the caller's subaccount 0 is the account (the reward is credited to it); ``index``: the
    settlement index (the balance is stored as shares, rounded down); ``last_prices``: the feeds' last answers
    (``IOracleRouter.lastPrice``, 0 when not positive), which decide whether unpriced collateral is dust (default:
    ``prices``); ``markets``: each market's funding state (a closed position realises its accrued funding)."""
    m0 = account_margin(state, layout, prices, cfg, markets)
    if m0.equity >= m0.maintenance:
        return LiquidationOutcome("AccountHealthy")
    s = copy.deepcopy(state)
    taken = 0
    for kind, i, amount in items:
        if kind == 0 and s.positions.get(i, (0, 0))[0] != 0:
            size = s.positions[i][0]
            if amount == 0 or amount > abs(size):
                return LiquidationOutcome("BadLiquidationItem")
            price = prices[layout.market_asset[i]]
            s, _ = fill(s, i, -amount if size > 0 else amount, price, markets)
            taken += amount * price // WAD
        elif kind == 1 and s.collateral.get(i, 0) != 0:
            price = prices[layout.collateral_asset[i]]
            if amount == 0 or amount > s.collateral[i] or price == 0:
                return LiquidationOutcome("BadLiquidationItem")
            s.collateral[i] -= amount
            if s.collateral[i] == 0:
                del s.collateral[i]
            value = token_value_down(amount, price, layout.collateral_decimals[i])
            s.settlement += haircut_down(value, t.discount(i))
            taken += value
        else:
            return LiquidationOutcome("BadLiquidationItem")
    # a write-off: nothing left to take (no position, no collateral with a valid price, what has none is dust at its
    # feed's last answer) and a debt
    last = prices if last_prices is None else last_prices
    unpriced = sum(token_value_down(b, last[layout.collateral_asset[j]], layout.collateral_decimals[j])
                   for j, b in s.collateral.items())
    bankrupt = (not s.positions and not any(prices[layout.collateral_asset[j]] for j in s.collateral)
                and s.settlement < 0 and unpriced < max(t.dust, 1))
    if taken == 0 and not bankrupt:
        return LiquidationOutcome("LiquidationEmpty")
    allowed = allowed_take(m0.equity, m0.maintenance, m0.initial, m0.gross_total, t)
    if taken > allowed:
        return LiquidationOutcome("LiquidationTooLarge", taken, allowed=allowed)
    before = m0.equity - m0.maintenance
    penalty = reward = 0
    after = before
    if taken:
        m1 = account_margin(s, layout, prices, cfg, markets)
        penalty = rule_penalty(taken, m1.equity, m0.maintenance, m1.maintenance, t)
        after = m1.equity - penalty - m1.maintenance
        if after <= before:
            return LiquidationOutcome("LiquidationNotImproving", taken, penalty, 0, allowed, before, after)
        reward = rule_reward(penalty, taken, allowed, t)
        s.settlement -= penalty
        if m0.equity >= 0:  # rounding never makes a solvent account insolvent: the fund makes up the wei
            s.settlement += rounding_shortfall(m1.equity - penalty, s.settlement, index)
    if self_keeper:
        s.settlement += reward
    debt = -s.settlement if bankrupt and s.settlement < 0 else 0
    if debt:
        s.settlement = 0
        s.collateral = {}
    s.settlement = roundtrip(state.settlement, s.settlement, index)
    return LiquidationOutcome("", taken, penalty, reward, allowed, before, after, s, debt)


def proportional_items(state: AccountState, layout: Layout, prices: Sequence[int], cfg: MarginConfig,
                       t: LiquidationTerms, markets: Markets = None) -> list[tuple[int, int, int]]:
    """R1's liveness witness: the same fraction (maxTake / gross) of every position and of every priced collateral."""
    m = account_margin(state, layout, prices, cfg, markets)
    allowed = allowed_take(m.equity, m.maintenance, m.initial, m.gross_total, t)
    gross = m.gross_total
    if gross == 0:
        return []
    items = [(0, mk, abs(q) * allowed // gross) for mk, (q, _) in sorted(state.positions.items()) if q]
    items += [(1, j, b * allowed // gross) for j, b in sorted(state.collateral.items())
              if b and prices[layout.collateral_asset[j]]]
    return [it for it in items if it[2] > 0]


# ---------------------------------------------------------------------------------------------- the ledger
@dataclass
class Snapshot:
    """Everything the economic invariants compare between two checkpoints."""

    block: int
    states: dict[int, AccountState]
    prices: list[int]
    cfg: MarginConfig
    index: int
    bad_debt: int
    markets: Markets = None  # each market's funding state at ``block``


@dataclass
class Segment:
    """What happened between two checkpoints at the same prices, as the rules and the vault's events saw it."""

    flows: dict[str, int] = field(default_factory=dict)  # owner -> USD that entered (+) or left (-) its accounts
    transfers: dict[str, int] = field(default_factory=dict)  # owner -> USD gained from other owners' fills
    fills: dict[int, int] = field(default_factory=dict)  # account -> fills and takes (rounding allowance)
    restarts: int = 0  # pool restarts (a loss took every claim: all claims held before are void)
    adl: dict[int, int] = field(default_factory=dict)  # account -> most its side's deleveraging charges can take
    deleveraged: list[tuple[int, bool, int]] = field(default_factory=list)  # (market, longs pay, index shift)

    def flow(self, owner: str, usd: int) -> None:
        self.flows[owner] = self.flows.get(owner, 0) + usd

    def transfer(self, owner: str, usd: int) -> None:
        self.transfers[owner] = self.transfers.get(owner, 0) + usd

    def touched(self, account: int, n: int = 1) -> None:
        self.fills[account] = self.fills.get(account, 0) + n

    def charged(self, account: int, usd: int) -> None:
        self.adl[account] = self.adl.get(account, 0) + usd


@dataclass(frozen=True)
class Liquidation:
    account: int
    keeper: str  # address
    taken: int
    penalty: int
    reward: int


@dataclass(frozen=True)
class WriteOff:
    account: int
    debt: int
    covered: int
    socialised: int


def check_segment(prev: Snapshot, now: Snapshot, seg: Segment, owners: dict[str, list[int]], fund: int,
                  keeper_owner: dict[str, str], layout: Layout, liquidations: Sequence[Liquidation],
                  write_offs: Sequence[WriteOff]) -> list[str]:
    """E1, E2 and E3 between two checkpoints with the same prices (the caller starts a new segment at every price
    move). ``keeper_owner`` maps a liquidation caller's address to the owner credited with its reward. Returns the
    violations (empty when all hold)."""
    assert prev.prices == now.prices, "a segment spans a price move"
    problems: list[str] = []
    prices = now.prices
    rewards: dict[str, int] = {}
    for liq in liquidations:
        # E2: rewards come out of the penalty
        if liq.reward > liq.penalty:
            problems.append(f"E2: keeper reward {liq.reward} > penalty {liq.penalty} (account {liq.account:#x})")
        owner = keeper_owner.get(liq.keeper.lower())
        if owner is not None:
            rewards[owner] = rewards.get(owner, 0) + min(liq.reward, liq.penalty)
    if sum(liq.reward for liq in liquidations) > sum(liq.penalty for liq in liquidations):
        problems.append("E2: keeper rewards exceed the penalties collected")
    n_events = len(liquidations) + len(write_offs) + sum(seg.fills.values())
    # E1: no owner gains more than deposits - withdrawals + the rewards R1 allows + what other owners' fills gave it
    for owner, ids in owners.items():
        before = owner_value([prev.states[a] for a in ids], layout, prices, prev.markets)
        after = owner_value([now.states[a] for a in ids], layout, prices, now.markets)
        allowance = seg.flows.get(owner, 0) + rewards.get(owner, 0) + seg.transfers.get(owner, 0)
        tol = 4 * len(ids) + 4 * sum(seg.fills.get(a, 0) for a in ids) + 4
        if after - before > allowance + tol:
            problems.append(f"E1: owner {owner} gained {after - before} > allowed {allowance} (+{tol} wei rounding)")
    # E2: the fund loses only the bad debt it covers, and only debt that a price move created (E < 0 at the start
    # of the segment, at the same prices)
    fund_before = net_value(prev.states[fund], layout, prices, prev.markets)
    fund_after = net_value(now.states[fund], layout, prices, now.markets)
    covered = sum(w.covered for w in write_offs)
    tol = 8 * n_events + 8 + seg.adl.get(fund, 0)  # the fund's positions pay deleveraging like any other
    if fund_after - fund_before < -covered - tol:
        problems.append(f"E2: the fund lost {fund_before - fund_after} with {covered} of covered bad debt")
    ratio = (now.index, prev.index)

    def socialised_share(s0: AccountState) -> int:  # what an index drop took from the account's positive balance
        if seg.restarts:
            return max(s0.settlement, 0)
        return max(s0.settlement, 0) - max(s0.settlement, 0) * ratio[0] // ratio[1]

    def equity(state: AccountState, markets: Markets) -> int | None:  # None: a position without a valid price
        try:
            return account_margin(state, layout, prices, now.cfg, markets).equity
        except PriceUnavailable:
            return None

    for w in write_offs:
        s0 = prev.states.get(w.account)
        e0 = equity(s0, prev.markets) if s0 is not None else 0
        if s0 is None or (e0 is not None and e0 - socialised_share(s0) >= 0):
            problems.append(f"E2: bad debt {w.debt} written off for {w.account:#x}, whose equity was {e0} >= 0 at the "
                            f"last price move: a trade or a liquidation created it")
    # E3: negative equity only from price moves: no account's equity falls below min(its equity at the start of the
    # segment, revalued with the current parameters, 0), beyond rounding, its share of a socialised loss and the
    # deleveraging charges of its side
    for a, s1 in now.states.items():
        if a == fund or a not in prev.states:
            continue
        s0 = prev.states[a]
        e0, e1 = equity(s0, prev.markets), equity(s1, now.markets)
        if e0 is None or e1 is None:
            continue
        haircut = socialised_share(s0) + seg.adl.get(a, 0)
        tol = 3 * seg.fills.get(a, 0) + 3 + haircut
        if e1 < min(e0, 0) - tol:
            problems.append(f"E3: equity of {a:#x} went from {e0} to {e1} without a price move"
                            f" (socialised share {haircut})")
    return problems
