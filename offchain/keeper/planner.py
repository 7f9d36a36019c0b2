"""Choosing a liquidation: which positions to close and which collateral to seize, within the contract's rule.

:func:`apply_liquidation` replays ``CrossMarginVault.liquidate`` on an :class:`AccountState` in exact integers (the
same fills, roundings, collateral credit and penalty: ceil(rate x taken), at most the equity left and half the
maintenance margin the take frees; for an account with E >= 0, the fund's make-up of the take's and the share
rounding), so every plan is checked against the rule before it is simulated on-chain:
taken <= ``maxTake`` and ``E − MM`` rises. Because the penalty never eats more than half the margin a take frees,
a proportional take of everything the account holds always raises ``E − MM``: some plan exists for every account
below MM whose prices are valid. :func:`plan_liquidation` tries a few shapes and keeps
the one that raises ``E − MM`` most:

- proportional: every position reduced by the same fraction, as much as the rule allows;
- full: close every position and seize collateral to cover a negative settlement balance (when the rule allows it,
  i.e. the account is deeply underwater or the rest would be dust);
- collateral: seize collateral to cover a negative settlement balance (lowest liquidation discount first);
- write-off: nothing is left to take (no position, no collateral with a valid price) and the balance is negative: a
  call naming no items writes the debt off;
- greedy: repeatedly take (as much as the allowance left permits of) the single position or collateral whose taking
  helps most: this is the shape that works when collateral itself carries the risk (e.g. a volatile token whose
  single-asset collapse scenario sets MM).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

from ..margin.exact import (BPS, INDEX_ONE, WAD, AccountState, Layout, MarginConfig, account_margin, floor_div,
                           haircut_down, liquidation_penalty, max_take, mul_div_up, rounding_shortfall,
                           token_value_down, u16)

Item = tuple[int, int, int]  # (kind 0 position / 1 collateral, market or collateral id, amount)


@dataclass(frozen=True)
class LiquidationTerms:
    """The liquidation word and discounts word of ``RiskParameters.liquidationConfig()``, decoded, and the vault's
    settlement index (``settlementIndex()``; it decides the share rounding of a stored balance)."""

    word: int
    discounts: int
    index: int = INDEX_ONE

    @property
    def close_factor(self) -> int:
        return u16(self.word, 0)

    @property
    def penalty(self) -> int:
        return u16(self.word, 1)

    @property
    def keeper_share(self) -> int:
        return u16(self.word, 2)

    @property
    def deep(self) -> int:
        return u16(self.word, 3)

    @property
    def min_reward(self) -> int:
        return (self.word >> 64) & (2**96 - 1)

    @property
    def dust(self) -> int:
        return self.word >> 160

    def discount(self, cid: int) -> int:
        return u16(self.discounts, cid)


@dataclass(frozen=True)
class Plan:
    items: tuple[Item, ...]
    taken: int
    penalty: int
    allowed: int
    surplus_before: int
    surplus_after: int
    shape: str

    def as_args(self) -> list[tuple[int, int, int]]:
        return [tuple(i) for i in self.items]


def _tdiv(a: int, b: int) -> int:
    """Solidity signed division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def apply_liquidation(state: AccountState, layout: Layout, prices: Sequence[int], cfg: MarginConfig,
                      terms: LiquidationTerms, items: Sequence[Item]) -> tuple[AccountState, int, int]:
    """The account after ``items`` are taken and the penalty charged: (state, taken, penalty). Raises ValueError for
    an item the contract would refuse."""
    before = account_margin(state, layout, prices, cfg)
    s = copy.deepcopy(state)
    taken = 0
    for kind, i, amount in items:
        if kind == 0 and i in s.positions:
            size, on = s.positions[i]
            if amount == 0 or amount > abs(size):
                raise ValueError(f"position item {i}: amount {amount} vs size {size}")
            price = prices[layout.market_asset[i]]
            closed = -amount if size > 0 else amount
            basis = _tdiv(on * closed, -size)
            s.settlement += floor_div(-closed * price, WAD) - basis
            new = size + closed
            if new == 0:
                del s.positions[i]
            else:
                s.positions[i] = (new, on - basis)
            taken += amount * price // WAD
        elif kind == 1 and i in s.collateral:
            balance = s.collateral[i]
            if amount == 0 or amount > balance or prices[layout.collateral_asset[i]] == 0:
                raise ValueError(f"collateral item {i}: amount {amount} vs balance {balance}")
            value = token_value_down(amount, prices[layout.collateral_asset[i]], layout.collateral_decimals[i])
            s.settlement += haircut_down(value, terms.discount(i))
            if balance == amount:
                del s.collateral[i]
            else:
                s.collateral[i] = balance - amount
            taken += value
        else:
            raise ValueError(f"item {(kind, i, amount)} names nothing the account holds")
    penalty = 0
    if taken:
        after = account_margin(s, layout, prices, cfg)
        penalty = liquidation_penalty(taken, after.equity, before.maintenance, after.maintenance, terms.word)
        s.settlement -= penalty
        if before.equity >= 0:
            s.settlement += rounding_shortfall(after.equity - penalty, s.settlement, terms.index)
    return s, taken, penalty


def plan_liquidation(state: AccountState, layout: Layout, prices: Sequence[int], cfg: MarginConfig,
                     terms: LiquidationTerms) -> Plan | None:
    """The best plan the rule allows, or None when the account is healthy or no plan raises ``E − MM``."""
    before = account_margin(state, layout, prices, cfg)
    if not before.liquidatable:
        return None
    surplus0 = before.equity - before.maintenance
    allowed = max_take(before.equity, before.maintenance, before.initial, before.gross_total, terms.word)
    priced = [j for j, b in state.collateral.items() if b and prices[layout.collateral_asset[j]]]
    if not any(q for q, _ in state.positions.values()) and not priced and state.settlement < 0:
        # nothing left to take: a call naming no items writes the debt off (unpriced collateral goes to the fund)
        return Plan((), 0, 0, allowed, surplus0, 0, "write-off")
    best: Plan | None = None

    def consider(items: list[Item], shape: str) -> Plan | None:
        nonlocal best
        items = [it for it in items if it[2] > 0]
        if not items:
            return None
        try:
            after, taken, penalty = apply_liquidation(state, layout, prices, cfg, terms, items)
        except ValueError:
            return None
        if taken == 0 or taken > allowed:
            return None
        m = account_margin(after, layout, prices, cfg)
        plan = Plan(tuple(items), taken, penalty, allowed, surplus0, m.equity - m.maintenance, shape)
        if plan.surplus_after > surplus0 and (best is None or plan.surplus_after > best.surplus_after):
            best = plan
        return plan

    positions = sorted((m, size) for m, (size, _) in state.positions.items() if size != 0)
    price_of = {m: prices[layout.market_asset[m]] for m, _ in positions}
    if positions:
        # proportional: amount_i = |size_i| * allowed / sum_j |size_j| P_j  (so sum of floor(amount_i P_i) <= allowed)
        weight = sum(abs(q) * price_of[m] for m, q in positions)
        consider([(0, m, min(abs(q), abs(q) * allowed * WAD // weight)) for m, q in positions], "proportional")
        close_all: list[Item] = [(0, m, abs(q)) for m, q in positions]
        consider(close_all, "full")
        consider(close_all + _seize(state, layout, prices, cfg, terms, close_all, allowed), "full")
    consider(_seize(state, layout, prices, cfg, terms, [], allowed), "collateral")
    # proportional over everything (positions and priced collateral): lowers MM in proportion, so it always improves
    held = [(1, j, b) for j, b in sorted(state.collateral.items()) if b and prices[layout.collateral_asset[j]]]
    worth = before.gross_total
    if worth:
        consider([(0, m, abs(q) * allowed // worth) for m, q in positions] +
                 [(1, j, b * allowed // worth) for _, j, b in held], "proportional-all")
    # greedy: take the most helpful position or collateral first, as far as what is left of the allowance permits
    candidates = [(0, m, abs(q), price_of[m], WAD) for m, q in positions] + [
        (1, j, bal, prices[layout.collateral_asset[j]], 10 ** layout.collateral_decimals[j])
        for j, bal in sorted(state.collateral.items()) if bal and prices[layout.collateral_asset[j]]]
    chosen: list[Item] = []
    left = allowed
    for _ in range(len(candidates)):
        round_best = None
        for kind, i, cap, price, unit in candidates:
            if any(c[0] == kind and c[1] == i for c in chosen):
                continue
            plan = consider(chosen + [(kind, i, min(cap, _max_amount(left, price, unit)))], "greedy")
            if plan is not None and (round_best is None or plan.surplus_after > round_best.surplus_after):
                round_best = plan
        if round_best is None:
            break
        chosen = list(round_best.items)
        left = allowed - round_best.taken
        if left <= 0:
            break
    return best


def _max_amount(usd: int, price: int, unit: int) -> int:
    """The largest amount whose value floor(amount * price / unit) is at most ``usd``."""
    return ((usd + 1) * unit - 1) // price if price else 0


def _seize(state: AccountState, layout: Layout, prices: Sequence[int], cfg: MarginConfig, terms: LiquidationTerms,
           first: list[Item], allowed: int) -> list[Item]:
    """Collateral items (lowest discount first) covering the settlement deficit left after ``first``, within
    ``allowed``; all collateral when the deficit exceeds its value."""
    try:
        after, taken, _ = apply_liquidation(state, layout, prices, cfg, terms, first)
    except ValueError:
        return []
    need = -after.settlement
    left = allowed - taken
    items: list[Item] = []
    for cid in sorted(after.collateral, key=lambda j: (terms.discount(j), j)):
        if need <= 0 or left <= 0:
            break
        price = prices[layout.collateral_asset[cid]]
        unit = 10 ** layout.collateral_decimals[cid]
        if price == 0:
            continue
        disc = terms.discount(cid)
        # credit = floor(floor(a p / unit) (BPS - disc) / BPS) >= need + penalty on it; ask for a little more than need
        want_value = -(-(need + mul_div_up(need, terms.penalty, BPS)) * BPS // (BPS - disc)) if disc < BPS else need
        amount = -(-want_value * unit // price) + 1
        amount = min(amount, after.collateral[cid], _max_amount(left, price, unit))
        if amount <= 0:
            continue
        value = token_value_down(amount, price, layout.collateral_decimals[cid])
        items.append((1, cid, amount))
        need -= haircut_down(value, disc)
        left -= value
    return items
