"""The crash demo (scripts/demo.py) end to end on the suite's Ganache, at a small size.

It deploys with scripts/deploy.py, opens every position with signed orders, runs `xmargin keeper run` as a separate
process and crashes the market through the Chainlink feeds; here its summary is checked against the chain itself.
"""
from __future__ import annotations

import json
import socket

import pytest

from brownie import CrossMarginVault, accounts

from offchain.population import KINDS
from scripts.demo import Options, run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_crash_demo_liquidates_every_breach(deployer, tmp_path):
    opts = Options(traders=24, scenario="mar2020", seed=11, blocks=14, settle_blocks=8, metrics_port=free_port(),
                   out=tmp_path)
    summary = run(opts, deployer, accounts[2])

    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (tmp_path / "blocks.csv").read_text().splitlines()
    assert len(rows) == 1 + 1 + opts.blocks + summary["settle_blocks"]  # header, the start, every block
    assert summary["keeper_exit_code"] == 0

    # what the chain says happened
    info = json.loads((tmp_path / "1337.json").read_text())
    vault = CrossMarginVault.at(info["CrossMarginVault"])
    events = vault.events.get_sequence(info["startBlock"], summary["final_block"], "Liquidated")
    liquidated = {e["args"]["account"] for e in events}
    assert summary["missed_liquidations"] == 0 and summary["missed_accounts"] == []
    assert summary["liquidated_accounts"] == len(liquidated) > 0
    assert summary["liquidations"] == len(events)
    assert summary["breached_accounts"] >= summary["liquidated_accounts"]
    assert summary["keeper_opportunities"] == {"included": len(events)}  # every send landed, nothing failed
    assert 1 <= summary["blocks_to_liquidation_median"] <= summary["blocks_to_liquidation_max"] <= 2
    assert summary["bad_debt"] == summary["bad_debt_covered_by_fund"] + summary["bad_debt_socialised"]
    recorded = summary["bad_debt_recorded_after"] - summary["bad_debt_recorded_before"]
    assert recorded == pytest.approx(summary["bad_debt_socialised"])  # the vault's own bad-debt ledger agrees
    assert summary["insurance_fund_before"] >= 1_000_000  # the seed, plus the trading fees of the set-up
    assert set(summary["margin_by_kind"]) == set(KINDS)
    assert sum(r["accounts"] for r in summary["margin_by_kind"].values()) == opts.traders
    hedged = summary["margin_by_kind"]["hedged_pair"]
    assert hedged["portfolio_mm"] < hedged["standard_mm"]  # the hedge is credited
