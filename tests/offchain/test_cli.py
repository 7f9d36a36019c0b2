"""The read-only commands an operator uses: accounts by health, one account's breakdown, the opportunity log."""
from __future__ import annotations

import random
import re
import socket

import pytest

from offchain.margin.defaults import DEFAULT_SPEC
from offchain.margin.exact import MarginConfig

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
    assert f"equity               {row['equity'] / 1e18:>18,.2f}" in detail
    assert f"maintenance margin   {row['margin']['maintenance'] / 1e18:>18,.2f}" in detail
    assert f"standard requirement {row['standard'] / 1e18:>18,.2f}" in detail and "LIQUIDATABLE" in detail
    # the binding vector by its index, named only when the chain's shocks are the default set's (they are not here:
    # the suite deploys FIXTURE_SPEC, whose vectors differ from the calibrated default's)
    s = row["margin"]["worstScenario"]
    known = DEFAULT_SPEC.stress[s]
    chain_shocks = [MarginConfig.from_chain(protocol.params.marginConfig()).shock(s, k) for k in range(8)]
    name = f" ({known.name})" if known.as_array() == chain_shocks else ""
    assert f"(worst scenario #{s}{name})" in detail, detail
    owner = _run("-c", str(cfg), "account", "0x" + f"{target >> 96:040x}")  # an owner's address: its subaccounts
    assert f"account {target:#066x} (owner {target >> 96:#042x}" in owner and "LIQUIDATABLE" in owner
    empty = _run("-c", str(cfg), "account", hex((target >> 96 << 96) + 999))
    assert "is empty at block" in empty and "owner << 96 | n" in empty
    once = _run("-c", str(cfg), "keeper", "run", "--once")
    assert f"{len(under)} liquidatable, 0 liquidations sent (dry run)" in once, once
    log = _run("-c", str(cfg), "opportunities").splitlines()
    assert len(log) == 1 + len(under) and all(" skipped " in line and "dry run" in line for line in log[1:])


def test_docs_document_every_setting():
    from offchain.config import SECTIONS

    readme = (ROOT / "docs" / "keeper.md").read_text()
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
    assert load_settings(None, environ={}).risk.workers == 0  # in this process unless asked
    with pytest.raises(ConfigError, match="risk.workers"):
        load_settings(None, environ={"XMARGIN_RISK__WORKERS": "-1"})


def _fails_in_one_line(*args, code=2):
    p = _xmargin(*args)
    out, err = p.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert p.returncode == code and "Traceback" not in err and len(lines) == 1 and lines[0].startswith("xmargin: "), err
    return lines[0]


def test_operator_mistakes_get_one_line_and_the_documented_exit_code(deployment_file, tmp_path):
    chain = {"rpc_urls": [rpc_url()], "deployment": str(deployment_file), "stall_seconds": 0}
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = _toml(tmp_path / "db.toml", chain=chain, indexer={"database": str(blocker / "x.sqlite")},
                ops={"log_format": "text"})
    assert "indexer.database: cannot open" in _fails_in_one_line("-c", str(cfg), "index")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = _toml(tmp_path / "port.toml", chain=chain, indexer={"database": str(tmp_path / "k.sqlite")},
                    keeper={"dry_run": True}, ops={"log_format": "text", "metrics_port": port})
        assert f"ops.metrics_port: cannot serve on 127.0.0.1:{port}" in _fails_in_one_line("-c", str(cfg), "keeper",
                                                                                          "run", "--once")
    version = _xmargin("--version")
    out, _ = version.communicate(timeout=60)
    declared = re.search(r'__version__ = "(.+)"', (ROOT / "offchain" / "__init__.py").read_text()).group(1)
    assert version.returncode == 0 and out.strip() == f"xmargin {declared}"


def test_config_reference_is_valid_toml_with_the_defaults_once_uncommented():
    import tomllib

    from offchain.config import load_settings, reference

    text = reference()
    uncommented = "\n".join(line[2:] if re.match(r"# [a-z_]+ = ", line) else line for line in text.splitlines())
    data = tomllib.loads(uncommented)
    assert data["keeper"]["dry_run"] is False and data["chain"]["rpc_urls"] == ["http://127.0.0.1:8545"]
    assert sum(len(v) for v in data.values()) > 30
    assert load_settings(None, environ={}, **data).model_dump() == load_settings(None, environ={}).model_dump()


def test_a_bad_value_names_where_it_came_from(tmp_path):
    from offchain.config import load_settings
    from offchain.errors import ConfigError

    cfg = tmp_path / "k.toml"
    cfg.write_text("[keeper]\npoll_interval = 2.0\n[indexer]\nlog_chunk = -5\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg, environ={"XMARGIN_KEEPER__POLL_INTERVAL": "-1"}, ops={"metrics_port": 70000})
    text = str(e.value)
    assert "keeper.poll_interval (from XMARGIN_KEEPER__POLL_INTERVAL):" in text
    assert f"indexer.log_chunk (from {cfg}):" in text
    assert "ops.metrics_port (from the --metrics-port flag):" in text
