"""The README's walkthrough ("A liquidation of your own, on your own chain") run as written, every line: a node of its
own on a free port (Anvil, or Ganache with the README's two Ganache lines), `make network`, `make deploy`, the
settings file, the sandbox and keeper commands. The lines run in a temporary
folder rather than the repository, so the only edits are the port (8545 is the suite's), absolute paths for
`.venv/bin/xmargin`, `node_modules/.bin/anvil` and make's `-C`, and `make deploy` writing its deployment file into
that folder (`--out`), where `xmargin` looks for it, instead of the repository's deployments/."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import ROOT, rpc_url

HEADING = "### A liquidation of your own, on your own chain"


def walkthrough() -> tuple[list[str], list[str]]:
    """The README's walkthrough: (the main block, the Ganache block that replaces its first two lines)."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text[text.index(HEADING):], re.S)[:2]
    main, ganache = ([line.split("  #")[0].strip() for line in b.splitlines() if line.strip()] for b in blocks)
    return main, ganache


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(lines, cwd, env, port, nodes):
    """Run ``lines`` in a shell; a line ending in ``&`` starts a node (appended to ``nodes``). Outputs by line."""
    out = {}
    for line in lines:
        cmd = (line.replace("127.0.0.1:8545", f"127.0.0.1:{port}").replace("PORT=8545", f"PORT={port}")
               .replace("--port 8545", f"--port {port}").replace(".venv/bin/", f"{ROOT}/.venv/bin/")
               .replace("node_modules/.bin/", f"{ROOT}/node_modules/.bin/"))
        if cmd.endswith("&"):  # a node in the background
            nodes.append(subprocess.Popen(cmd[:-1].split(), cwd=cwd, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
            _wait_port(port)
            continue
        cmd = re.sub(r"\bmake (\w+)", rf"make -C {ROOT} \1", cmd)
        cmd = re.sub(r"(make -C \S+ deploy [^&]*)", rf"\1 DEPLOY_ARGS='--out {cwd / 'deployments'}'", cmd)
        m = re.match(r"export (\w+)=\$\((.*)\)$", cmd)
        if m:
            p = subprocess.run(m.group(2), shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
            assert p.returncode == 0, f"{line}: {p.stderr}"
            env[m.group(1)] = p.stdout.strip()
            continue
        p = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0 and "Traceback" not in p.stderr, f"{line}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
        out[line] = p.stdout
    return out


def _wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"no node on port {port}")


def _check(out, lines):
    accounts = out[next(line for line in lines if line.endswith("xmargin.toml accounts"))]
    assert "LIQUIDATABLE" in accounts, accounts
    keeper = out[next(line for line in lines if line.endswith("keeper run --once"))]
    assert "1 liquidatable, 1 liquidations sent" in keeper, keeper


@pytest.mark.parametrize("node", ["anvil", "ganache"])
def test_walkthrough(node, tmp_path):
    main, ganache = walkthrough()
    assert main[0].startswith("node_modules/.bin/anvil") and main[1].startswith("make network")
    assert ganache[0].startswith("node_modules/.bin/ganache") and "CMD=ganache-cli" in ganache[1]
    lines = main if node == "anvil" else ganache + main[2:]
    home = tmp_path / "home"  # a Brownie HOME of its own, so the test never edits the project's network list
    shutil.copytree(Path(os.environ["HOME"]) / ".brownie", home / ".brownie",
                    ignore=shutil.ignore_patterns("accounts", "packages"))
    port = _free_port()
    env = {**os.environ, "TOOL_HOME": str(home)}
    env.pop("MAKEFLAGS", None)
    nodes = []
    try:
        _check(_run(lines, tmp_path, env, port, nodes), lines)
    finally:
        for n in nodes:
            n.terminate()
            n.wait(timeout=10)


@pytest.mark.parametrize("args, code, words", [
    (["sandbox", "trade", "1", "BTC", "1000"], 1, "refused: InsufficientMargin("),
    (["sandbox", "deposit", "1", "DOGE", "5"], 2, "token 'DOGE' is not listed: choose one of USDC, WBTC"),
    (["sandbox", "price", "XRP", "1"], 2, "asset 'XRP' is not listed"),
    (["sandbox", "deposit", "99", "USDC", "5"], 2, "owner '99': give an index 0..9"),
])
def test_sandbox_mistakes_get_one_line(deployment_file, tmp_path, args, code, words):
    cfg = tmp_path / "x.toml"
    cfg.write_text(f'[chain]\nrpc_urls = ["{rpc_url()}"]\ndeployment = "{deployment_file}"\nstall_seconds = 0\n')
    p = subprocess.run([str(ROOT / ".venv/bin/xmargin"), "-c", str(cfg), *args], capture_output=True, text=True,
                       timeout=120)
    errors = [line for line in p.stderr.splitlines() if not line.startswith('{"ts"')]  # log lines aside
    assert p.returncode == code and "Traceback" not in p.stderr and len(errors) == 1, p.stderr
    assert errors[0].startswith("xmargin: ") and words in errors[0], errors[0]


def test_sandbox_refuses_a_chain_that_is_not_local():
    from offchain.chain import Deployment
    from offchain.errors import ConfigError
    from offchain.sandbox import Sandbox

    class Remote:  # only what the guard reads: the chain id of a public network
        chain_id = 11155111
        deployment = Deployment(11155111, {}, 0, ("BTC",))

    with pytest.raises(ConfigError, match="only on a local chain .* this node is chain 11155111"):
        Sandbox(Remote())


def test_sandbox_accounts_lists_the_nodes_accounts_and_their_roles(deployment_file, tmp_path):
    from brownie import web3

    cfg = tmp_path / "x.toml"
    cfg.write_text(f'[chain]\nrpc_urls = ["{rpc_url()}"]\ndeployment = "{deployment_file}"\nstall_seconds = 0\n')
    p = subprocess.run([str(ROOT / ".venv/bin/xmargin"), "-c", str(cfg), "sandbox", "accounts"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = p.stdout.splitlines()[1:]
    assert [r.split()[1] for r in rows] == list(web3.eth.accounts)  # the node's unlocked accounts, in order
    assert rows[0].endswith("deployer, fund payer") and rows[-1].endswith("market maker")
