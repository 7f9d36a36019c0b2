"""Faults: the keeper killed between sending and inclusion, the node dropping or stalling, bad settings and keys.

The kill/restart test runs the real ``xmargin keeper run`` command in a subprocess and kills it with SIGKILL."""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from brownie import chain, web3
from eth_account import Account

from offchain.config import load_settings
from offchain.db import acct_int
from offchain.errors import KeyLoadError
from offchain.keys import load_signer
from offchain.ops import OpsServer

from .conftest import ROOT, rpc_url, wait_for
from .rpc_proxy import RpcProxy
from .test_keeper import crash, liquidated_since, miner, under_water


def _toml(path, **sections):
    lines = []
    for name, fields in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in fields.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _xmargin(*args, env=None, **kw):
    return subprocess.Popen([sys.executable, "-m", "offchain.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, **kw)


def _count(db, sql, *args):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        conn.close()


def test_keeper_killed_after_sending_resumes_without_resending(book, keeper_wallet, deployment_file, tmp_path,
                                                               protocol, deployer):
    ids = book.random_book(4, random.Random(44), leverage=(3.0, 4.0), direction=1)
    db = tmp_path / "keeper.sqlite"
    cfg = _toml(tmp_path / "keeper.toml",
                chain={"rpc_urls": [rpc_url()], "deployment": str(deployment_file),
                       "build_dir": str(ROOT / "build" / "contracts"), "stall_seconds": 0, "request_timeout": 60},
                indexer={"database": str(db), "reconcile_every": 0},
                keeper={"private_key_env": "XMARGIN_TEST_KEY", "poll_interval": 0.1},
                ops={"log_format": "json"})
    env = {"XMARGIN_TEST_KEY": keeper_wallet.private_key}
    crash(protocol, deployer, 0.4)
    under = under_water(protocol, ids)
    assert under
    start = web3.eth.block_number
    miner(False)
    try:
        first = _xmargin("-c", str(cfg), "keeper", "run", env=env)
        wait_for(lambda: _count(db, "SELECT COUNT(*) FROM opportunities WHERE status = 'sent'") == len(under),
              what="the first keeper to send")
        first.send_signal(signal.SIGKILL)  # no chance to clean up: the transactions are in the mempool only
        first.wait(10)
        queued = _in_mempool(keeper_wallet.address)
        rows = _count(db, "SELECT COUNT(*) FROM txs")
        assert queued == rows == len(under)
        second = _xmargin("-c", str(cfg), "keeper", "run", env=env)
        time.sleep(4)  # many polls at the same head: nothing may be sent again
        assert _in_mempool(keeper_wallet.address) == queued
        assert _count(db, "SELECT COUNT(*) FROM txs") == rows
    finally:
        miner(True)
        web3.provider.make_request("evm_mine", [])
    wait_for(lambda: _count(db, "SELECT COUNT(*) FROM opportunities WHERE status = 'included'") >= len(under),
          what="the restarted keeper to see its transactions included")
    second.send_signal(signal.SIGTERM)
    out, err = second.communicate(timeout=30)
    assert second.returncode == 0, err
    assert "keeper stopped" in err and "Traceback" not in err
    assert keeper_wallet.private_key.removeprefix("0x") not in err + out  # the key is never logged
    assert {a for a, _ in liquidated_since(protocol, start)} == under
    assert _count(db, "SELECT COUNT(*) FROM txs WHERE status = 'included'") == len(under)


def _in_mempool(address):
    """Transactions of ``address`` waiting in the node's pool (Ganache does not count them in the 'pending' nonce)."""
    pool = web3.provider.make_request("txpool_content", [])["result"]["pending"]
    return sum(len(txs) for sender, txs in pool.items() if sender.lower() == address.lower())


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_keeper_reports_unhealthy_while_the_node_is_down_and_recovers(book, make_keeper, keeper_wallet, protocol,
                                                                      deployer):
    ids = book.random_book(3, random.Random(45), leverage=(3.0, 4.0), direction=1)
    with RpcProxy() as proxy:
        # a timeout well above the slowest honest call (Ganache's eth_estimateGas of a liquidation takes 0.5-0.7 s
        # on an idle machine and over 1 s on a loaded one) and no read retries, so the slow phase costs one timeout
        keeper = make_keeper("flaky", keeper_wallet, chain={"rpc_urls": [proxy.url], "request_timeout": 5,
                                                            "retries": 0})
        server = OpsServer("127.0.0.1", 0, keeper.metrics, keeper.health).start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            assert keeper.step() is not None and _get(base + "/health")[0] == 200
            proxy.drop = True  # the node is gone
            assert keeper.step() is None  # no exception escapes the loop
            code, body = _get(base + "/health")
            assert code == 503 and json.loads(body)["rpc_down"] is True
            crash(protocol, deployer, 0.45)  # the market moves while the keeper is blind
            under = under_water(protocol, ids)
            proxy.drop, proxy.delay = False, 6.0  # back, but slower than the keeper's timeout
            assert keeper.step() is None and _get(base + "/health")[0] == 503
            proxy.delay = 0
            report = None
            for _ in range(3):  # back to normal: healthy again within a few steps
                report = keeper.step()
                if report is not None:
                    break
            assert report is not None and _get(base + "/health")[0] == 200
            # every account that went under water while the keeper was blind got exactly one liquidation sent, in
            # this step or in a step the node cut short after the transaction was persisted
            sent = keeper.conn.execute("SELECT account, COUNT(*) FROM opportunities WHERE status IN "
                                       "('sent', 'included') GROUP BY account").fetchall()
            assert under and {acct_int(a) for a, _ in sent} == under and all(n == 1 for _, n in sent)
            metrics = _get(base + "/metrics")[1]
            errors = [line for line in metrics.splitlines() if line.startswith("xmargin_rpc_errors_total")]
            assert errors and float(errors[0].split()[-1]) > 0
            assert "xmargin_healthy 1.0" in metrics
        finally:
            server.stop()


def test_stalled_node_is_detected_and_left_for_one_that_moves(book, make_keeper, keeper_wallet):
    book.random_book(2, random.Random(46))
    with RpcProxy() as proxy:
        proxy.frozen_head = web3.eth.block_number
        keeper = make_keeper("stall", keeper_wallet, chain={"rpc_urls": [proxy.url, rpc_url()], "stall_seconds": 0.5})
        keeper.step()
        chain.mine(2)
        time.sleep(0.7)
        keeper.step()  # the first endpoint still says the old head: stalled, and the second one is ahead
        assert keeper.chain.rpc.active == 1 and keeper.health()["healthy"]
        assert keeper.last_block == web3.eth.block_number
    with RpcProxy() as alone:
        alone.frozen_head = web3.eth.block_number
        lonely = make_keeper("stall1", keeper_wallet, chain={"rpc_urls": [alone.url], "stall_seconds": 0.5})
        lonely.step()
        time.sleep(0.7)
        lonely.step()
        assert lonely.health()["healthy"] is False and lonely.health()["stalled"] is True
        alone.frozen_head = None
        chain.mine()
        lonely.step()
        assert lonely.health()["healthy"]


# ---------------------------------------------------------------------------------------------- settings and keys
def test_bad_settings_give_one_clear_message_and_exit_code_2(tmp_path):
    bad = _toml(tmp_path / "bad.toml", keeper={"shard": "3/2", "max_fee_gwie": 3}, chain={"rpc_urls": ["ws://x"]})
    p = _xmargin("-c", str(bad), "keeper", "run")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "Traceback" not in err
    assert "keeper.shard" in err and "0 <= i < n" in err
    assert f"keeper.max_fee_gwie (from {bad}): unknown field" in err and "chain.rpc_urls" in err
    broken = tmp_path / "broken.toml"
    broken.write_text("[chain\nrpc_urls = 3")
    p = _xmargin("-c", str(broken), "index")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "not valid TOML" in err and "Traceback" not in err
    p = _xmargin("-c", str(tmp_path / "missing.toml"), "index")
    assert p.communicate(timeout=60)[1].startswith("xmargin: config file") and p.returncode == 2
    p = _xmargin("index", env={"XMARGIN_KEEPER__POLL_INTERVAL": "-1"})
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 2 and "keeper.poll_interval (from XMARGIN_KEEPER__POLL_INTERVAL)" in err


def test_bad_keys_give_clear_messages_and_exit_code_3(tmp_path, deployment_file, keeper_wallet, monkeypatch):
    keystore = tmp_path / "keeper.json"
    keystore.write_text(json.dumps(Account.encrypt(keeper_wallet.private_key, "right horse")))
    common = {"rpc_urls": [rpc_url()], "deployment": str(deployment_file),
              "build_dir": str(ROOT / "build" / "contracts"), "stall_seconds": 0}
    cfg = _toml(tmp_path / "k.toml", chain=common, indexer={"database": str(tmp_path / "k.sqlite")},
                keeper={"keystore": str(keystore)})
    for password, expected in (("wrong", "cannot decrypt"), (None, "set $XMARGIN_KEYSTORE_PASSWORD")):
        env = {"XMARGIN_KEYSTORE_PASSWORD": password} if password else {}
        p = _xmargin("-c", str(cfg), "keeper", "run", "--once", env=env)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 3 and expected in err and "Traceback" not in err, err
        assert "right horse" not in err + out
    p = _xmargin("-c", str(cfg), "keeper", "run", "--once", env={"XMARGIN_KEYSTORE_PASSWORD": "right horse"})
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and keeper_wallet.address in err, err
    nokey = _toml(tmp_path / "n.toml", chain=common, indexer={"database": str(tmp_path / "n.sqlite")})
    p = _xmargin("-c", str(nokey), "keeper", "run", "--once")
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 3 and "no signing key" in err
    down = _toml(tmp_path / "d.toml", chain={**common, "rpc_urls": ["http://127.0.0.1:9"], "retries": 0})
    p = _xmargin("-c", str(down), "index")
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 4 and "no RPC endpoint answered" in err
    # a plain key is refused anywhere but on a local development chain
    monkeypatch.setenv("XMARGIN_TEST_PLAIN_KEY", keeper_wallet.private_key)
    s = load_settings(None, environ={}, keeper={"private_key_env": "XMARGIN_TEST_PLAIN_KEY"})
    with pytest.raises(KeyLoadError, match="refused on chain 1 "):
        load_signer(s, 1)
    assert load_signer(s, 1337).address == keeper_wallet.address
