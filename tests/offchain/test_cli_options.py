"""The operator's view of options: `xmargin account` shows each option position with its mark and Greeks, the
Greeks per underlying and the option part of the margin (the vault's figures); `xmargin options` lists the series."""
from __future__ import annotations

import random

from .conftest import ROOT, WAD, rpc_url
from .test_cli import _run
from .test_faults import _toml


def _usd(x: int) -> str:
    return f"{x / WAD:,.2f}"


def test_account_shows_option_positions_greeks_and_the_option_margin(book, protocol, deployment_file, tmp_path):
    book.list_series()
    ids = book.option_book(4, random.Random(81), perp_share=1.0)
    cfg = _toml(tmp_path / "cli.toml",
                chain={"rpc_urls": [rpc_url()], "deployment": str(deployment_file),
                       "build_dir": str(ROOT / "build" / "contracts"), "stall_seconds": 0},
                indexer={"database": str(tmp_path / "cli.sqlite")}, keeper={"dry_run": True},
                ops={"log_format": "text"})
    target = max(ids, key=lambda a: bin(protocol.vault.optionsOf(a)).count("1"))
    mask = protocol.vault.optionsOf(target)
    slots = [i for i in range(32) if mask >> i & 1]
    detail = _run("-c", str(cfg), "account", hex(target))
    row = protocol.vault.marginDetail(target)
    risk = row["options"]
    assert f"equity               {row['equity'] / 1e18:>18,.2f}" in detail
    assert f"maintenance margin   {row['margin']['maintenance'] / 1e18:>18,.2f}" in detail
    assert f"option curvature     {_usd(risk['curvature']):>18}" in detail
    assert f"short-option minimum {_usd(risk['shortMinimum']):>18}" in detail
    assert f"option value         {_usd(risk['value']):>18}" in detail
    for a in range(8):
        if risk["assets"] >> a & 1:
            assert _usd(risk["ws"][a]) in detail.split("option WS by asset")[1].splitlines()[0]
    lines = detail.splitlines()
    for slot in slots:
        i = next(k for k, line in enumerate(lines) if line.startswith(f"  slot {slot:<2} "))
        size, mark, value, delta, gamma, vega, theta = lines[i + 1].split()
        assert mark == _usd(protocol.options.mark(slot))
        assert float(size.replace(",", "")) == protocol.options.sizeOf(target, slot) / WAD
        short = protocol.options.sizeOf(target, slot) < 0
        assert (float(vega.replace(",", "")) < 0) == short and (float(theta.replace(",", "")) > 0) == short
    assert any(line.startswith("  options on ") for line in lines)
    assert "option stress losses #0" in detail


def test_options_command_lists_series_with_marks_and_holders(book, protocol, deployment_file, tmp_path):
    listing = book.list_series()
    ids = book.option_book(3, random.Random(82), perp_share=0.0)
    cfg = _toml(tmp_path / "cli.toml",
                chain={"rpc_urls": [rpc_url()], "deployment": str(deployment_file),
                       "build_dir": str(ROOT / "build" / "contracts"), "stall_seconds": 0},
                indexer={"database": str(tmp_path / "cli.sqlite")}, ops={"log_format": "text"})
    out = _run("-c", str(cfg), "options", "--trades", "3").splitlines()
    assert out[0].endswith(f"{len(listing)} series listed")
    for slot, *_ in listing:
        line = next(x for x in out if x.split()[:1] == [str(slot)])
        assert _usd(protocol.options.mark(slot)) in line
        s = protocol.options.series(slot)
        holders = sum(bool(protocol.options.sizeOf(a, slot)) for a in ids + [book.maker])
        assert line.split()[-3:] == [f"{s[5] / WAD:,.4f}", f"{s[6] / WAD:,.4f}", str(holders)]
    assert sum(x.startswith("  block ") for x in out) == 3
