"""The account risk commands (stress, var, cascade, efficiency) on a deployment: by default they read the accounts the
indexer finds on the chain, say so on their first line, and refuse an empty deployment; `--synthetic` is the demo
population, named as such."""
from __future__ import annotations

import random
import re

from .conftest import ROOT, rpc_url
from .test_faults import _toml, _xmargin


def _risk(cfg, *args):
    p = _xmargin("-c", str(cfg), "risk", *args)
    out, err = p.communicate(timeout=600)
    return p.returncode, out, err


def test_risk_commands_read_the_deployment(book, deployment_file, tmp_path):
    cfg = _toml(tmp_path / "risk.toml", chain={"rpc_urls": [rpc_url()], "deployment": str(deployment_file),
                                               "build_dir": str(ROOT / "build" / "contracts"), "stall_seconds": 0},
                indexer={"database": str(tmp_path / "risk.sqlite")}, ops={"log_format": "text"})
    code, _, err = _risk(cfg, "stress")
    assert code == 2 and "has no accounts" in err and "--synthetic" in err  # only the fund so far

    ids = book.random_book(7, random.Random(5), leverage=(2.0, 4.0), direction=None)
    source = re.compile(r"^source: deployment on chain \d+ at block \d+, (\d+) accounts \(indexer database .*"
                        r"risk\.sqlite\); parameters: on-chain; insurance fund [\d,]+ USD$")
    outputs, counts = {}, set()
    for args in (["stress"], ["var", "--top", "3"], ["cascade", "--runs", "4", "--latency", "1", "--crash-blocks", "20"],
                 ["efficiency"]):
        code, out, err = _risk(cfg, *args)
        assert code == 0 and "Traceback" not in err, err
        first = out.splitlines()[0]
        m = source.match(first)
        assert m and int(m.group(1)) >= len(ids), first  # the book, and the counterparties it traded with
        counts.add(int(m.group(1)))
        assert "distributed" not in err  # the cascade ran in this process, with no Dask cluster or its logs
        outputs[args[0]] = out
    all_row = next(line for line in outputs["efficiency"].splitlines() if line.startswith("all "))
    assert len(counts) == 1 and int(all_row.split()[1]) == counts.pop()
    var_rows = [line.split()[0] for line in outputs["var"].splitlines() if line.startswith("0x")]
    assert len(var_rows) == 3 and all(re.fullmatch(r"0x[0-9a-f]{40}/\d+", r) for r in var_rows), var_rows  # --top 3

    code, out, err = _risk(cfg, "efficiency", "--synthetic", "--population", "40")
    assert code == 0, err
    assert out.splitlines()[0].startswith("source: synthetic demo population (40 books, seed 7)")
