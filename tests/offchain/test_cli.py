"""The read-only commands an operator uses: accounts by health, one account's breakdown, the opportunity log."""
from __future__ import annotations

import random

import pytest

from .conftest import ROOT, rpc_url
from .test_faults import _toml, _xmargin
from .test_keeper import crash, under_water


def _run(*args):
    p = _xmargin(*args)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and "Traceback" not in err, err
    return out


def test_accounts_account_and_opportunities_commands(book, protocol, deployer, deployment_file, tmp_path):
    ids = book.random_book(6, random.Random(60), leverage=(3.0, 4.0), direction=1)
    cfg = _toml(tmp_path / "cli.toml",
                chain={"rpc_urls": [rpc_url()], "deployment": str(deployment_file),
                       "build_dir": str(ROOT / "build" / "contracts"), "stall_seconds": 0},
                indexer={"database": str(tmp_path / "cli.sqlite")}, keeper={"dry_run": True},
                ops={"log_format": "text"})
    crash(protocol, deployer, 0.8)
    under = under_water(protocol, ids)
    assert under
    table = _run("-c", str(cfg), "accounts").splitlines()
    listed = [line for line in table if line.startswith("0x") and int(line.split()[0], 16) in ids]
    assert len(listed) == len(ids)
    assert {int(line.split()[0], 16) for line in listed if "LIQUIDATABLE" in line} == under
    healths = [float(line.split()[4]) for line in listed]
    assert healths == sorted(healths)  # lowest health first
    target = sorted(under)[0]
    row = protocol.vault.marginDetail(target)
    detail = _run("-c", str(cfg), "account", hex(target))
    assert f"equity               {row[0] / 1e18:>18,.2f}" in detail
    assert f"maintenance margin   {row[4][5] / 1e18:>18,.2f}" in detail
    assert f"standard requirement {row[1] / 1e18:>18,.2f}" in detail and "LIQUIDATABLE" in detail
    _run("-c", str(cfg), "keeper", "run", "--once")
    log = _run("-c", str(cfg), "opportunities").splitlines()
    assert len(log) == 1 + len(under) and all(" skipped " in line and "dry run" in line for line in log[1:])


def test_readme_documents_every_setting():
    from offchain.config import SECTIONS

    readme = (ROOT / "README.md").read_text()
    assert set(SECTIONS) == {"chain", "indexer", "keeper", "ops", "risk"}
    for section, model in SECTIONS.items():
        for name, field in model.model_fields.items():
            assert f"| `{section}.{name}` |" in readme and field.description in readme, f"{section}.{name}"


def test_risk_section_sets_where_sweeps_run():
    from offchain.config import load_settings
    from offchain.errors import ConfigError

    env = {"XMARGIN_RISK__SCHEDULER": "tcp://10.0.0.5:8786", "XMARGIN_RISK__WORKERS": "6"}
    risk = load_settings(None, environ=env).risk
    assert (risk.scheduler, risk.workers) == ("tcp://10.0.0.5:8786", 6)
    assert load_settings(None, environ={}).risk.scheduler is None
    with pytest.raises(ConfigError, match="risk.workers"):
        load_settings(None, environ={"XMARGIN_RISK__WORKERS": "0"})
