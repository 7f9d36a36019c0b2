"""The crash demo (scripts/demo.py) end to end on the suite's Ganache and on Anvil, at a small size.

It deploys with scripts/deploy.py, opens every position with signed orders, runs `xmargin keeper run` as a separate
process and crashes the market through the Chainlink feeds; here its summary is checked against the chain itself.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import requests
from brownie import accounts
from eth_utils import event_abi_to_log_topic
from web3 import HTTPProvider, Web3

from offchain.population import KINDS
from scripts.demo import ManualMining, Options, run
from scripts.deploy import vault_at

from .conftest import ROOT
from .rpc_proxy import RpcProxy


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
    vault = vault_at(info["CrossMarginVault"])
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


def test_crash_demo_on_anvil(anvil, tmp_path):
    """The same demo on Anvil (manual mining through evm_setAutomine); its counts are checked against the Liquidated
    events Anvil returns for the whole run, read here with plain JSON-RPC."""
    url, env = anvil
    out = tmp_path / "demo"
    p = subprocess.run([sys.executable, "scripts/demo.py", "--network", "anvil-test", "--traders", "24", "--blocks",
                        "14", "--settle-blocks", "8", "--seed", "11", "--metrics-port", str(free_port()), "--out",
                        str(out)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    info = json.loads((out / "31337.json").read_text())
    abi = json.loads((ROOT / "offchain" / "abi" / "CrossMarginVault.json").read_text())
    topic = "0x" + event_abi_to_log_topic(next(e for e in abi if e.get("name") == "Liquidated")).hex()
    logs = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [{
        "address": info["CrossMarginVault"], "topics": [topic], "fromBlock": hex(info["startBlock"]),
        "toBlock": hex(summary["final_block"])}]}, timeout=30).json()["result"]
    assert summary["liquidations"] == len(logs) > 0
    assert summary["missed_liquidations"] == 0 and summary["keeper_exit_code"] == 0
    assert summary["keeper_opportunities"].get("included", 0) == len(logs)


def test_demo_refuses_a_node_it_cannot_drive():
    """A node with neither miner_stop nor evm_setAutomine: one line, before anything is sent."""
    with RpcProxy() as proxy:
        proxy.unknown_methods = {"miner_stop", "evm_setAutomine"}
        with pytest.raises(SystemExit, match=r"cannot be made to mine on demand \(miner_stop: Method not found.*"
                                             r"evm_setAutomine: Method not found.*\): run the demo on Ganache or Anvil"):
            ManualMining(Web3(HTTPProvider(proxy.url))).stop()
