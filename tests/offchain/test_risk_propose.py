"""`xmargin risk propose` against a local deployment: dry-run diff and effect, a real submission (tightening applies
at once, loosening is queued behind the delay), and an out-of-bounds proposal refused before anything is sent."""
from __future__ import annotations

import json
import random

from brownie import web3

from offchain.runtime import open_runtime
from tests.fixture_spec import FIXTURE_SPEC
from offchain.margin.exact import account_margin, u16
from offchain.risk.propose import Submitter, diff, effect, prepare, spec_to_dict, submit, write_spec

from .conftest import ROOT, rpc_url
from .test_faults import _toml, _xmargin


def _config(tmp_path, deployment_file, name, key_env=None):
    keeper = {"dry_run": True} if key_env is None else {"private_key_env": key_env}
    return _toml(tmp_path / f"{name}.toml",
                 chain={"rpc_urls": [rpc_url()], "deployment": str(deployment_file),
                        "build_dir": str(ROOT / "build" / "contracts"), "stall_seconds": 0},
                 indexer={"database": str(tmp_path / f"{name}.sqlite")}, keeper=keeper, ops={"log_format": "text"})


def _tighter(spec=FIXTURE_SPEC, factor=2.0):
    return spec.model_copy(update={"risk_weights": {k: min(10_000, int(v * factor))
                                                    for k, v in spec.risk_weights.items()}})


def test_dry_run_diff_and_effect_match_a_direct_computation(book, protocol, deployment_file, tmp_path, settings_for):
    ids = book.random_book(12, random.Random(71), leverage=(3.0, 4.0), direction=1)
    proposed = _tighter()
    spec_path = write_spec(proposed, tmp_path / "tight.json")
    rt = open_runtime(settings_for("dry"))
    head = rt.indexer.sync().head
    layout, prices, cfg, _ = rt.indexer.market_view(head)
    p = prepare(rt.chain, proposed, head, layout, rt.chain.deployment.assets)
    assert p.current.margin_config() == cfg  # the decoded on-chain set reproduces the published words
    # every asset is correlated with another in the default set: a risk weight rise can lower a hedge's charge, so
    # the contract queues it (R5) and the proposal says so
    assert {c.fn for c in p.changes} == {"setRiskWeight"} and not any(c.tightening for c in p.changes)
    eff = effect(rt.indexer.states(), layout, prices, p.current, p.changes)
    new_cfg = proposed.margin_config()
    direct_now = sorted(a for a in ids if account_margin(_state(protocol, a), layout, prices,
                                                         cfg).liquidatable)
    direct_after = sorted(a for a in ids if account_margin(_state(protocol, a), layout, prices,
                                                           new_cfg).liquidatable)
    assert direct_after and len(direct_after) > len(direct_now)
    assert sorted(set(eff.liquidatable_all) & set(ids)) == direct_after
    assert sorted(set(eff.newly_all) & set(ids)) == sorted(set(direct_after) - set(direct_now))
    assert eff.newly_immediate == []  # nothing applies before the delay
    block = web3.eth.block_number
    proc = _xmargin("-c", str(_config(tmp_path, deployment_file, "cli")), "risk", "propose", str(spec_path),
                    "--dry-run")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "dry run: nothing sent" in out and "[delayed] risk weight BTC: 1000 -> 2000" in out
    assert f"(+{len(eff.newly_all)})" in out
    assert web3.eth.block_number == block  # nothing was sent
    assert protocol.params.marginConfig()[0] == cfg.global_word


def _state(protocol, account):
    from offchain.margin.snapshot import read_account_state

    return read_account_state(protocol.vault, account)


def test_submit_tightens_at_once_and_queues_a_loosening(protocol, deployer, new_wallet, settings_for):
    params = protocol.params
    admin = new_wallet()
    params.grantRole(params.RISK_ADMIN_ROLE(), admin, {"from": deployer})
    params.setLoosenDelay(3600, {"from": deployer})  # lengthening: applies at once
    haircut0 = FIXTURE_SPEC.haircuts[0]
    proposed = FIXTURE_SPEC.model_copy(update={"haircuts": {**FIXTURE_SPEC.haircuts, 0: haircut0 + 500},
                                               "correlations": {**FIXTURE_SPEC.correlations, (0, 1): 7000},
                                               "loosen_delay": 3600})
    rt = open_runtime(settings_for("submit", admin))
    head = rt.indexer.sync().head
    layout = rt.indexer.market_view(head)[0]
    p = prepare(rt.chain, proposed, head, layout)
    assert [(c.fn, c.tightening) for c in p.changes] == [("setCorrelation", False), ("setHaircut", True)]
    from offchain.keys import load_signer

    signer = load_signer(settings_for("submit", admin), rt.chain.chain_id)
    outcomes = submit(p, Submitter(rt.chain, signer))
    assert [(o.change.fn, o.status) for o in outcomes] == [("setCorrelation", "queued"), ("setHaircut", "applied")]
    words = params.marginConfig()
    from offchain.margin.exact import MarginConfig

    cfg = MarginConfig.from_chain(words)
    assert u16(cfg.haircuts, 0) == haircut0 + 500 and cfg.correlation(0, 1) == 8000  # the queued one not yet
    ready = outcomes[0].ready_at
    assert ready == web3.eth.get_block("latest")["timestamp"] + 3600 or ready > 0
    # proposing again before the delay reports the queued change and sends nothing new
    nonce = web3.eth.get_transaction_count(admin.address)
    p2 = prepare(rt.chain, proposed, "latest", layout)
    again = submit(p2, Submitter(rt.chain, signer))
    assert [o.status for o in again] == ["already queued"] and web3.eth.get_transaction_count(admin.address) == nonce


def test_out_of_bounds_proposal_is_refused_before_sending(protocol, deployer, new_wallet, deployment_file, tmp_path,
                                                          monkeypatch):
    admin = new_wallet()
    protocol.params.grantRole(protocol.params.RISK_ADMIN_ROLE(), admin, {"from": deployer})
    raw = spec_to_dict(FIXTURE_SPEC)
    raw["risk_weights"]["0"] = 20_000
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    block = web3.eth.block_number
    env = {"XMARGIN_TEST_KEY_OOB": admin.private_key}
    proc = _xmargin("-c", str(_config(tmp_path, deployment_file, "oob", "XMARGIN_TEST_KEY_OOB")), "risk", "propose",
                    str(bad), env=env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in err
    assert "risk_weights" in err and "20000" in err
    assert web3.eth.block_number == block and web3.eth.get_transaction_count(admin.address) == 0


def test_diff_against_the_deployment_is_empty_for_the_deployed_spec(protocol, settings_for):
    rt = open_runtime(settings_for("same"))
    p = prepare(rt.chain, FIXTURE_SPEC, "latest", rt.indexer.market_view(rt.indexer.sync().head)[0])
    assert diff(p.current, FIXTURE_SPEC) == []
