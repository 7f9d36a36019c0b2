"""The floor table's parts (docs/gas.md, "Where the gas goes against the peers' targets") from a gas trace:
scripts/bench/gas_trace.py::columns."""
from __future__ import annotations

import pytest

from scripts.bench.gas_trace import COLUMNS, columns


def _trace(by_class: dict, call_steps: dict, intrinsic: int, refund: int) -> dict:
    execution = sum(by_class.values())
    return {"gas_used": intrinsic + execution - refund, "intrinsic_and_calldata": intrinsic, "execution": execution,
            "refund": refund, "by_class": by_class, "call_steps": call_steps}


def test_each_part_goes_to_its_column_and_call_steps_to_their_target():
    trace = _trace({
        "OrderSettlement::storage read": 4_200, "OrderSettlement::storage write": 20_000, "OrderSettlement::call": 6_300,
        "OrderSettlement::events": 2_012, "OrderSettlement::compute": 900,
        "CrossMarginVault::storage read": 10_800, "CrossMarginVault::call": 5_400, "CrossMarginVault::keccak": 252,
        "OracleRouter::storage read": 2_100, "OracleRouter::call": 2_621, "OracleRouter::compute": 300,
        "ChainlinkFeed::storage read": 8_400, "TestToken::storage write": 2_900, "TestToken::events": 1_756,
    }, {
        "OrderSettlement -> ecrecover": 3_100, "OrderSettlement -> CrossMarginVault": 3_200,
        "CrossMarginVault -> OracleRouter": 2_600, "CrossMarginVault -> TestToken": 2_800,
        "OracleRouter -> ChainlinkFeed": 2_621,
    }, intrinsic=21_000, refund=2_800)
    got = columns(trace)
    assert got == {
        "intrinsic": 21_000, "prices": 2_100 + 300 + 8_400 + 2_600 + 2_621, "token": 2_900 + 1_756 + 2_800,
        "reads": 4_200 + 10_800, "writes": 20_000, "events": 2_012, "signatures": 3_100,
        "arithmetic": 900 + 252 + 3_200, "refund": -2_800,
    }
    assert tuple(got) == COLUMNS and sum(got.values()) == trace["gas_used"]


def test_a_call_class_without_its_call_steps_is_refused():
    """A contract's call class whose steps are missing would drop gas from the table: the parts must sum to the gas."""
    trace = _trace({"CrossMarginVault::call": 2_600, "CrossMarginVault::compute": 1_000}, {}, intrinsic=21_000,
                   refund=0)
    with pytest.raises(RuntimeError, match="the parts sum to 22000, the trace used 24600"):
        columns(trace)
