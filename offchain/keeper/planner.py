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
- greedy: repeatedly take (as much as the allowance left permits of) the single position, option position or
  collateral whose taking helps most: this is the shape that works when collateral itself carries the risk (e.g. a
  volatile token whose single-asset collapse scenario sets MM), and the one that closes first the options that free
  the most margin.

Option positions (items of kind 2: ``id`` the series slot, ``amount`` the size to close) are taken over by the fund at
the mark (``options.mark`` at the block's volatility and time: the fund pays a long's value, a short pays its
liability) and count in the amount taken at ``amount x spot``; a fixed series cannot be taken (it is settled into
cash by ``settleExpired``, which the keeper calls first). Every shape counts them as positions: proportional, full
and greedy alike. Their marks, and so E, MM, IM and the allowance, move with the block's time, while the amount
taken does not: a plan that takes the allowance at the head block's time exceeds it a few seconds later when time
raises E (a written option's liability decays), so with ``until`` a plan must hold at both ends of the window the
transaction may be included in. A plan's ``surplus_after`` is the contract's: ``E' - penalty - MM'`` (the fund's
make-up of the rounding is not part of it).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

from ..margin.exact import (BPS, INDEX_ONE, WAD, AccountMargin, AccountState, Layout, MarginConfig, account_margin,
                           floor_div, haircut_down, liquidation_penalty, max_take, mul_div_up, position_value_down,
                           rounding_shortfall, token_value_down, u16)
from ..margin.options import OptionMarket, mark

Item = tuple[int, int, int]  # (kind 0 position / 1 collateral / 2 option, market, collateral id or series slot, amount)


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
                      terms: LiquidationTerms, items: Sequence[Item], options: OptionMarket | None = None
                      ) -> tuple[AccountState, int, int]:
    """The account after ``items`` are taken and the penalty charged: (state, taken, penalty). Raises ValueError for
    an item the contract would refuse. ``options``: the option market at the block (needed when it holds options)."""
    s, taken, penalty, _ = _take(state, layout, prices, cfg, terms, items, options,
                                 account_margin(state, layout, prices, cfg, None, options))
    return s, taken, penalty


def _take(state: AccountState, layout: Layout, prices: Sequence[int], cfg: MarginConfig, terms: LiquidationTerms,
          items: Sequence[Item], options: OptionMarket | None, before: AccountMargin
          ) -> tuple[AccountState, int, int, AccountMargin | None]:
    """:func:`apply_liquidation` given the margin ``before``; also returns the margin after the take, before the
    penalty (None when nothing was taken)."""
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
        elif kind == 2 and s.options.get(i) and options is not None:
            size = s.options[i]
            series = options.series[i]
            price = prices[series.asset]
            if amount == 0 or amount > abs(size) or series.fixed_price or price == 0:
                raise ValueError(f"option item {i}: amount {amount} vs size {size} (fixed {series.fixed_price})")
            moved = amount if size > 0 else -amount
            s.settlement += position_value_down(moved, mark(series, price, options.vols[series.asset], options.word,
                                                            options.time))
            if size == moved:
                del s.options[i]
            else:
                s.options[i] = size - moved
            taken += amount * price // WAD
        else:
            raise ValueError(f"item {(kind, i, amount)} names nothing the account holds")
    penalty = 0
    after = None
    if taken:
        after = account_margin(s, layout, prices, cfg, None, options)
        penalty = liquidation_penalty(taken, after.equity, before.maintenance, after.maintenance, terms.word)
        s.settlement -= penalty
        if before.equity >= 0:
            s.settlement += rounding_shortfall(after.equity - penalty, s.settlement, terms.index)
    return s, taken, penalty, after


def plan_liquidation(state: AccountState, layout: Layout, prices: Sequence[int], cfg: MarginConfig,
                     terms: LiquidationTerms, options: OptionMarket | None = None, until: int | None = None
                     ) -> Plan | None:
    """The best plan the rule allows, or None when the account is healthy or no plan raises ``E − MM``.
    ``options``: the option market at the block (needed when the account holds options). ``until``: the latest block
    time the transaction may be included at. Option values move with time (theta), and with them E, MM, IM and so
    the allowance, so for an account holding options the plan must hold at both ends of the window from
    ``options.time`` to ``until``: below MM at both, the smaller allowance, ``E − MM`` raised at both (the plan's
    figures are those at ``options.time``)."""
    markets = [options]
    if options is not None and until is not None and until != options.time and any(state.options.values()):
        markets.append(options.at(until))
    befores = [account_margin(state, layout, prices, cfg, None, m) for m in markets]
    before = befores[0]
    if not all(b.liquidatable for b in befores):
        return None
    surplus0 = before.equity - before.maintenance
    allowed = min(max_take(b.equity, b.maintenance, b.initial, b.gross_total, terms.word) for b in befores)
    priced = [j for j, b in state.collateral.items() if b and prices[layout.collateral_asset[j]]]
    if (not any(q for q, _ in state.positions.values()) and not any(state.options.values()) and not priced
            and state.settlement < 0):
        # nothing left to take: a call naming no items writes the debt off (unpriced collateral goes to the fund)
        return Plan((), 0, 0, allowed, surplus0, 0, "write-off")
    best: Plan | None = None

    def consider(items: list[Item], shape: str) -> Plan | None:
        nonlocal best
        items = [it for it in items if it[2] > 0]
        if not items:
            return None
        try:
            takes = [_take(state, layout, prices, cfg, terms, items, m, b) for m, b in zip(markets, befores)]
        except ValueError:
            return None
        _, taken, penalty, m = takes[0]
        if m is None or taken > allowed:
            return None
        plan = Plan(tuple(items), taken, penalty, allowed, surplus0, m.equity - penalty - m.maintenance, shape)
        improves = all(a.equity - p - a.maintenance > b.equity - b.maintenance
                       for (_, _, p, a), b in zip(takes, befores))
        if improves and (best is None or plan.surplus_after > best.surplus_after):
            best = plan
        return plan

    # positions and live option positions: (kind, id, size, price of the underlying), taken at amount x price
    positions = [(0, m, size, prices[layout.market_asset[m]]) for m, (size, _) in sorted(state.positions.items())
                 if size != 0]
    if options is not None:
        positions += [(2, i, size, prices[options.series[i].asset]) for i, size in sorted(state.options.items())
                      if size and not options.series[i].fixed_price and prices[options.series[i].asset]]
    if positions:
        # proportional: amount_i = |size_i| * allowed / sum_j |size_j| P_j  (so sum of floor(amount_i P_i) <= allowed)
        weight = sum(abs(q) * p for _, _, q, p in positions)
        consider([(k, i, min(abs(q), abs(q) * allowed * WAD // weight)) for k, i, q, _ in positions], "proportional")
        close_all: list[Item] = [(k, i, abs(q)) for k, i, q, _ in positions]
        consider(close_all, "full")
        consider(close_all + _seize(state, layout, prices, cfg, terms, close_all, allowed, options), "full")
    consider(_seize(state, layout, prices, cfg, terms, [], allowed, options), "collateral")
    # proportional over everything (positions, options and priced collateral): lowers MM in proportion
    held = [(1, j, b) for j, b in sorted(state.collateral.items()) if b and prices[layout.collateral_asset[j]]]
    worth = before.gross_total
    if worth:
        consider([(k, i, abs(q) * allowed // worth) for k, i, q, _ in positions] +
                 [(1, j, b * allowed // worth) for _, j, b in held], "proportional-all")
    # greedy: take the most helpful position, option or collateral first, as far as what is left of the allowance
    # permits
    candidates = [(k, i, abs(q), p, WAD) for k, i, q, p in positions] + [
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
           first: list[Item], allowed: int, options: OptionMarket | None) -> list[Item]:
    """Collateral items (lowest discount first) covering the settlement deficit left after ``first``, within
    ``allowed``; all collateral when the deficit exceeds its value."""
    try:
        after, taken, _ = apply_liquidation(state, layout, prices, cfg, terms, first, options)
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
