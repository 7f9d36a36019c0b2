"""The gas table generator (scripts/bench/gas_table.py): the tables it writes from gas.json and gas_peers.json.

    PYTHONPATH=. .venv/bin/python -m pytest tests/unit/test_gas_table.py -p no:pytest-brownie --noconftest
"""
from __future__ import annotations

import pytest

from scripts.bench.gas_table import (DOC_MARKERS, README_MARKERS, ROWS, MissingFigure, load, peer_cell,
                                     readme_table, rewrite_doc, rewrite_readme, set_peer_column)

XMARGIN = {"deposit": 50_000, "deposit_first": 80_000, "margin_view_2x2": 70_001, "withdraw_2pos": 90_000,
           "liquidate_2pos": 150_000, "seize_collateral": 100_000, "settle_trade": 200_000,
           "settle_trade_existing": 180_000}
PEERS = {"morpho_supply_collateral": 57_000, "morpho_supply_collateral_first": 74_000,
         "morpho_withdraw_collateral": 91_000, "morpho_liquidate": 118_000, "aave_supply": 159_000,
         "aave_supply_first": 200_000, "aave_account_data_2_1": 157_000, "aave_withdraw": 259_000,
         "aave_liquidation_call": 414_000}


def row_of(table: str, key: str) -> list[str]:
    line = next(line for line in table.splitlines() if f"| `{key}` |" in line)
    return [c.strip() for c in line.strip()[1:-1].split("|")]


def test_readme_table_ratio_target_and_verdict_per_row():
    table = readme_table(XMARGIN, PEERS)
    assert len(table.splitlines()) == 2 + len(ROWS)
    deposit = row_of(table, "deposit")
    assert deposit[2:8] == ["50,000", "57,000", "159,000", "0.88x", "<= Morpho (57,000)", "yes"]
    liquidation = row_of(table, "liquidate_2pos")
    assert liquidation[5:8] == ["1.27x", "<= Morpho (118,000)", "no (+32,000)"]
    view = row_of(table, "margin_view_2x2")  # Morpho has no such view: no figure, no ratio; a fixed target
    assert view[3:8] == ["-", "157,000", "-", "<= 70,000", "no (+1)"]
    trade = row_of(table, "settle_trade")  # exactly on the target is met
    assert trade[3:8] == ["-", "-", "-", "<= 200,000", "yes"]
    assert all(row_of(table, r.key)[8] for r in ROWS), "every row states what differs"


@pytest.mark.parametrize("results, key, command", [
    ("xmargin", "withdraw_2pos", "`make gas`"),
    ("peers", "aave_liquidation_call", "`make gas-peers`"),
])
def test_a_missing_key_names_the_key_and_the_command_that_writes_it(results, key, command):
    xmargin, peers = dict(XMARGIN), dict(PEERS)
    del (xmargin if results == "xmargin" else peers)[key]
    with pytest.raises(MissingFigure) as err:
        readme_table(xmargin, peers)
    assert key in str(err.value) and command in str(err.value)


def test_a_missing_results_file_names_the_command(tmp_path):
    with pytest.raises(MissingFigure, match="make gas-peers"):
        load(tmp_path / "gas_peers.json")


DOC = f"""intro
{DOC_MARKERS[0]}

| key | gas | what | peer (Aave v3, typical mainnet) |
|---|---:|---|---|
| `deposit` | 66,128 | top-up | supply ~140k |
| `deposit_settlement` | 64,084 | USDC | |
| `margin_view_2x2` | 97,294 | view | getUserAccountData ~115k |

{DOC_MARKERS[1]}
| `deposit` | 1 | outside the markers | untouched |
"""


def test_doc_peer_column_is_replaced_and_nothing_else():
    out = rewrite_doc(DOC, PEERS)
    lines = out.splitlines()
    assert "| `deposit` | 66,128 | top-up | Morpho 57,000; Aave 159,000 |" in lines
    assert "| `deposit_settlement` | 64,084 | USDC | |" in lines
    assert "| `margin_view_2x2` | 97,294 | view | Aave 157,000 |" in lines
    assert "| `deposit` | 1 | outside the markers | untouched |" in lines
    assert "typical mainnet" not in out and "~" not in out
    assert len(lines) == len(DOC.splitlines())
    assert rewrite_doc(out, PEERS) == out, "rewriting is idempotent"


def test_peer_cell_of_an_unmapped_key_is_empty_and_a_missing_peer_key_fails():
    assert peer_cell("lens_10_accounts", PEERS) == ""
    with pytest.raises(MissingFigure, match="morpho_withdraw_collateral"):
        set_peer_column("| `withdraw_2pos` | 1 | x |", {k: v for k, v in PEERS.items()
                                                       if k != "morpho_withdraw_collateral"})


def test_readme_section_between_markers_only():
    text = f"before\n{README_MARKERS[0]}\nold table\n{README_MARKERS[1]}\nafter\n"
    out = rewrite_readme(text, XMARGIN, PEERS)
    assert out.startswith(f"before\n{README_MARKERS[0]}\n| operation |") and out.endswith(f"{README_MARKERS[1]}\nafter\n")
    assert "old table" not in out
    assert rewrite_readme(out, XMARGIN, PEERS) == out
    with pytest.raises(SystemExit, match="gas-table:begin"):
        rewrite_readme("no markers here", XMARGIN, PEERS)
