"""Gas limits for liquidations, learned from the keeper's own receipts.

``eth_estimateGas`` executes a transaction several times (a search over the gas limit): on Ganache it costs about
eight ``eth_call``\\ s of the same liquidation (444 ms against 57 ms, measured). A keeper that sends dozens of
liquidations in one block cannot pay that for each. What a liquidation uses depends on how many positions it closes
and how much collateral it seizes (and, less, on which storage slots are cold), so the model keeps, per plan shape
(positions closed, collaterals seized), the largest gas an included liquidation of that shape used, and adds one
cold storage write per item. A shape it has not seen yet is estimated by the node; a transaction that ran out of gas removes its shape, so the next one is
estimated again. The keeper multiplies either figure by ``gas_limit_multiplier``.
"""
from __future__ import annotations

from typing import Iterable

Shape = tuple[int, int]
COLD_WRITE_GAS = 22_100  # SSTORE zero -> non-zero (20,000) + cold slot access (2,100)


def shape_of(items: Iterable[tuple[int, int, int]]) -> Shape:
    """(positions closed, collaterals seized) of a liquidation's items (kind 0 = position, 1 = collateral)."""
    kinds = [int(kind) for kind, _, _ in items]
    return kinds.count(0), kinds.count(1)


class GasModel:
    def __init__(self) -> None:
        self.used: dict[Shape, int] = {}

    def limit(self, items: Iterable[tuple[int, int, int]]) -> int | None:
        """The most gas seen for this plan's shape plus one cold storage write per item, or None (ask the node).

        The allowance covers what the seen maximum may not include: each item can give the fund a position or a
        collateral balance it did not hold (a zero-to-non-zero write, 22,100 gas with the cold access)."""
        shape = shape_of(items)
        seen = self.used.get(shape)
        return None if seen is None else seen + COLD_WRITE_GAS * sum(shape)

    def observe(self, items: Iterable[tuple[int, int, int]], gas_used: int) -> None:
        key = shape_of(items)
        self.used[key] = max(self.used.get(key, 0), int(gas_used))

    def forget(self, items: Iterable[tuple[int, int, int]]) -> None:
        self.used.pop(shape_of(items), None)
