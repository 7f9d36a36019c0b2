"""scripts/deploy.py on two real local nodes: the suite's Ganache (in process) and Anvil (the script as a program).

Covers: a complete deployment configured as the risk set says; a second run that sends nothing; a run cut off
half-way that resumes from its journal and reuses what was deployed; the chain id check; the network plans file.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from brownie import OracleRouter, RiskParameters, chain, web3

from offchain.margin.defaults import ASSETS, DEFAULT_SPEC, START_PRICES_USD
from offchain.margin.exact import MarginConfig
from scripts import deploy as d

ROOT = Path(__file__).resolve().parents[2]
WAD = 10**18


def rpc_call(url: str, method: str, *params):
    """One JSON-RPC request over HTTP (the suite's Ganache or a node started by a test); quantities as ints."""
    import requests

    r = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=30)
    result = r.json()["result"]
    return int(result, 16) if method in ("eth_chainId", "eth_getTransactionCount", "eth_blockNumber") else result


def check_deployment(path: Path, url: str) -> dict:
    """The deployment file names the node's chain and every protocol contract has code there."""
    info = json.loads(path.read_text())
    assert info["chainId"] == rpc_call(url, "eth_chainId") and info["assets"] == list(ASSETS)
    for name in ("OracleRouter", "RiskParameters", "CrossMarginVault", "OrderSettlement", "AccountLens"):
        assert rpc_call(url, "eth_getCode", info[name], "latest") not in ("0x", "0x0"), name
        entry = info["contracts"][name]  # address, ABI name (package data), creating transaction
        assert entry["address"] == info[name] and (ROOT / "offchain" / "abi" / f"{entry['abi']}.json").is_file()
        receipt = rpc_call(url, "eth_getTransactionReceipt", entry["tx"])
        assert receipt["contractAddress"].lower() == entry["address"].lower(), name
    return info


def margin_terms(cfg: MarginConfig) -> tuple:
    """Every term the margin formula reads from the packed words."""
    n = len(ASSETS)
    return (cfg.alpha, cfg.basis_addon, cfg.floor_rate, cfg.num_stress,
            [cfg.risk_weight(k) for k in range(n)], [cfg.haircut(j) for j in range(n)],
            [cfg.correlation(a, b) for a in range(n) for b in range(a + 1, n)],
            [cfg.shock(s, k) for s in range(cfg.num_stress) for k in range(n)], cfg.addons, cfg.depths)


def test_deploy_on_ganache_is_complete_and_idempotent(deployer, tmp_path):
    path = d.run_deploy("ganache-cli", deployer, d.LOCAL_PLAN, out=tmp_path)
    info = check_deployment(path, web3.provider.endpoint_uri)
    vault = d.vault_at(info["CrossMarginVault"])
    params = RiskParameters.at(info["RiskParameters"])
    assert vault.numMarkets() == len(ASSETS) and vault.numCollaterals() == len(ASSETS)
    assert margin_terms(MarginConfig.from_chain(params.marginConfig())) == margin_terms(DEFAULT_SPEC.margin_config())
    oracle = OracleRouter.at(info["OracleRouter"])
    assert [oracle.price(a) // WAD for a in range(len(ASSETS))] == list(START_PRICES_USD)
    fund = vault.fundAccount()
    assert vault.settlementOf(fund) == d.FUND_SEED_USDC * WAD
    assert not (tmp_path / f"{chain.id}.partial.json").exists()

    nonce = deployer.nonce
    again = d.run_deploy("ganache-cli", deployer, d.LOCAL_PLAN, out=tmp_path)
    assert again == path and deployer.nonce == nonce  # found complete: nothing sent
    assert json.loads(path.read_text()) == info

    d.run_deploy("ganache-cli", deployer, d.LOCAL_PLAN, out=tmp_path, fresh=True)
    new = json.loads(path.read_text())
    assert new["CrossMarginVault"] != info["CrossMarginVault"]
    kept = [p for p in tmp_path.glob(f"{chain.id}.*.json") if "partial" not in p.name]
    assert len(kept) == 1 and json.loads(kept[0].read_text()) == info


def test_interrupted_deploy_resumes_from_its_journal(deployer, tmp_path, monkeypatch):
    n0 = deployer.nonce
    d.run_deploy("ganache-cli", deployer, d.LOCAL_PLAN, out=tmp_path / "whole")
    whole = deployer.nonce - n0  # transactions of a deployment in one go
    record = d.Journal.record

    def cut_off(self, step, value=True):
        record(self, step, value)
        if step == "vault.listCollateral:WETH":
            raise KeyboardInterrupt("cut off half-way")

    monkeypatch.setattr(d.Journal, "record", cut_off)
    with pytest.raises(KeyboardInterrupt):
        d.run_deploy("ganache-cli", deployer, d.LOCAL_PLAN, out=tmp_path)
    partial = json.loads((tmp_path / f"{chain.id}.partial.json").read_text())
    assert not (tmp_path / f"{chain.id}.json").exists()
    assert partial["CrossMarginVault"] and "OrderSettlement" not in partial

    monkeypatch.setattr(d.Journal, "record", record)
    nonce = deployer.nonce
    before_cut = nonce - n0 - whole
    path = d.run_deploy("ganache-cli", deployer, d.LOCAL_PLAN, out=tmp_path)
    info = json.loads(path.read_text())
    assert info["CrossMarginVault"] == partial["CrossMarginVault"]["address"]  # reused, not deployed again
    assert info["contracts"]["CrossMarginVault"]["tx"] == partial["CrossMarginVault"]["tx"]  # its creation, kept
    assert info["RiskParameters"] == partial["RiskParameters"]["address"]
    assert info["collaterals"][:2] == [partial["WBTC"]["address"], partial["WETH"]["address"]]
    vault = d.vault_at(info["CrossMarginVault"])
    assert vault.numCollaterals() == len(ASSETS)  # WBTC and WETH were listed once, the rest now
    assert before_cut > 0 and deployer.nonce - nonce == whole - before_cut  # nothing sent twice, nothing missing
    assert not (tmp_path / f"{chain.id}.partial.json").exists()


def test_wrong_chain_id_is_refused_before_sending(deployer, tmp_path):
    plan = d.LOCAL_PLAN.model_copy(update={"chain_id": 11155111})
    nonce = deployer.nonce
    with pytest.raises(SystemExit, match="configured for chain id 11155111 but the node reports 1337"):
        d.run_deploy("sepolia", deployer, plan, out=tmp_path)
    assert deployer.nonce == nonce


def test_network_plans_file():
    sepolia = d.load_plan("sepolia")
    assert sepolia.chain_id == 11155111
    assert sepolia.feeds["BTC"].address == "0x1b44F3514812d835EB1BDB0acB33d3fA3351Ee43"
    assert sepolia.feeds["SOL"].mock_price == 150
    assert d.load_plan("no-such-network") == d.LOCAL_PLAN


MOCKS = "\n".join(f"feeds.{a} = {{ mock_price = 1 }}" for a in ASSETS)


@pytest.mark.parametrize("entry, message", [
    ('feeds.BTC = { address = "0x1" , mock_price = 5 }', "exactly one of `address`"),
    ('feeds.BTC = { address = "0x1" }', "feeds must name exactly the assets"),
    (MOCKS + '\nsettlement_token = "0x2"\nseed_fund_usdc = 5', "seed_fund_usdc needs the test USDC"),
    ('feeds = {}\ncolour = "red"', "colour"),
])
def test_network_plan_errors_name_the_field(tmp_path, entry, message):
    path = tmp_path / "networks.toml"
    path.write_text(f"[networks.x]\n{entry}\n")
    with pytest.raises(SystemExit, match=message) as e:
        d.load_plan("x", path)
    assert "[networks.x]" in str(e.value)


def test_deploy_script_on_anvil(anvil, tmp_path):
    url, env = anvil
    out = tmp_path / "deployments"
    cmd = [sys.executable, "scripts/deploy.py", "--network", "anvil-test", "--out", str(out)]
    first = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    path = out / "31337.json"
    info = check_deployment(path, url)
    deployer = rpc_call(url, "eth_accounts")[0]
    nonce = rpc_call(url, "eth_getTransactionCount", deployer, "latest")
    assert nonce > 40  # the whole deployment: contracts, listings, the risk set, the fund

    second = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already deployed" in second.stderr + second.stdout
    assert rpc_call(url, "eth_getTransactionCount", deployer, "latest") == nonce
    assert json.loads(path.read_text()) == info

    typo = subprocess.run([sys.executable, "scripts/deploy.py", "--network", "anvil-tset"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert typo.returncode == 1 and "Traceback" not in typo.stderr, typo.stderr
    assert "'anvil-tset' is not registered" in typo.stderr and "make network NAME=anvil-tset" in typo.stderr

    # the off-chain side reads this deployment from Anvil
    index = subprocess.run([str(Path(sys.executable).with_name("xmargin")), "index"], cwd=tmp_path, text=True,
                           capture_output=True, timeout=120,
                           env={**env, "XMARGIN_CHAIN__RPC_URLS": url, "XMARGIN_CHAIN__DEPLOYMENT": str(path),
                                "XMARGIN_CHAIN__BUILD_DIR": str(ROOT / "build" / "contracts"),
                                "XMARGIN_INDEXER__DATABASE": str(tmp_path / "x.sqlite")})
    assert index.returncode == 0, index.stdout + index.stderr
    assert "1 accounts tracked" in index.stdout  # the insurance fund's seed deposit
