"""`pip install .` into a clean virtual environment gives a working keeper: only the package (pyproject.toml and
offchain/) is copied out of the repository, installed with its declared dependencies (pinned to requirements.lock as
constraints, without Brownie), and its `xmargin` command liquidates the under-water accounts of a local deployment,
from a directory outside the repository, with no build folder (the ABIs come from the package)."""
from __future__ import annotations

import random
import shutil
import subprocess
import sys

from brownie import web3

from .conftest import ROOT, rpc_url
from .test_faults import _toml
from .test_keeper import crash, liquidated_since, under_water


def test_pip_install_gives_a_working_keeper(book, protocol, deployer, deployment_file, keeper_wallet, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "offchain", src / "offchain", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", "-c",
                          ROOT / "requirements.lock", str(src)], capture_output=True, text=True, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-3000:]
    shutil.rmtree(src)  # the installed copy must stand alone
    xmargin = venv / "bin" / "xmargin"
    freeze = subprocess.run([venv / "bin" / "pip", "freeze"], capture_output=True, text=True).stdout.lower()
    assert "eth-brownie" not in freeze and "scipy==" in freeze, freeze

    version = subprocess.run([xmargin, "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("xmargin "), version.stderr

    ids = book.random_book(4, random.Random(71), leverage=(3.0, 4.0), direction=1)
    crash(protocol, deployer, 0.4)
    under = under_water(protocol, ids)
    assert under
    cfg = _toml(tmp_path / "keeper.toml", chain={"rpc_urls": [rpc_url()], "deployment": str(deployment_file),
                                                 "stall_seconds": 0},
                indexer={"database": str(tmp_path / "keeper.sqlite")},
                keeper={"private_key_env": "XMARGIN_TEST_KEY"}, ops={"log_format": "text"})
    start = web3.eth.block_number
    run = subprocess.run([xmargin, "-c", str(cfg), "keeper", "run", "--once"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300, env={"PATH": "/usr/bin:/bin", "XMARGIN_TEST_KEY":
                                                         keeper_wallet.private_key})
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert f"{len(under)} liquidatable, {len(under)} liquidations sent" in run.stdout, run.stdout
    done = {a for a, k in liquidated_since(protocol, start + 1) if k == keeper_wallet.address}
    assert done == under
