"""The gas table against Morpho Blue and Aave v3, from one run of ``make gas`` and ``make gas-peers``.

    .venv/bin/python scripts/bench/gas_table.py          (the last step of make gas-peers)

Reads ``scripts/bench/results/gas.json`` (xmargin, written by ``make gas``) and ``gas_peers.json`` (the peers, written
by ``make gas-peers``) and rewrites, from the one mapping ``ROWS``:

  * README.md between ``<!-- gas-table:begin -->`` and ``<!-- gas-table:end -->``: each comparable operation with
    xmargin's figure, Morpho's and Aave's, the xmargin/Morpho ratio, the issue's target, whether it is met, and what
    each side does that the other does not;
  * docs/gas.md between ``<!-- gas-peers-column:begin -->`` and ``<!-- gas-peers-column:end -->`` (its main table):
    the last ("peer") cell of each row, the measured peer figures of that key.

A key missing from either file stops it with the key and the command that writes it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {"gas.json": "make gas", "gas_peers.json": "make gas-peers"}
README_MARKERS = ("<!-- gas-table:begin -->", "<!-- gas-table:end -->")
DOC_MARKERS = ("<!-- gas-peers-column:begin -->", "<!-- gas-peers-column:end -->")
PEER_HEADER = "peer (measured: Morpho Blue 1.0 / Aave v3.0.2, `make gas-peers`)"
MORPHO = "morpho"  # a target of MORPHO: at most Morpho's figure on the same row


class MissingFigure(SystemExit):
    """A figure the table needs is not in the results (the message names the key and the command to run)."""


@dataclass(frozen=True)
class Row:
    operation: str
    key: str  # gas.json
    morpho: str | None  # gas_peers.json; None: Morpho has no such operation
    aave: str | None
    target: str | int  # MORPHO, or a gas figure
    caveat: str


ROWS = (
    Row("deposit (top-up)", "deposit", "morpho_supply_collateral", "aave_supply", MORPHO,
        "xmargin: one of several collaterals of a cross-margin account, no accrual; Morpho: one isolated market's "
        "collateral, no accrual; Aave: accrues the reserve, updates its rates, mints an aToken"),
    Row("first deposit", "deposit_first", "morpho_supply_collateral_first", "aave_supply_first", MORPHO,
        "xmargin creates the account's word and its collateral slot; Morpho the market position; Aave the aToken "
        "balance and enables the asset as collateral"),
    Row("account health view", "margin_view_2x2", None, "aave_account_data_2_1", 70_000,
        "xmargin: 2 collaterals x 2 perpetuals, portfolio margin with funding; Aave: 2 collaterals + 1 debt; "
        "Morpho has no account-wide view (one market per position)"),
    Row("withdraw with open exposure", "withdraw_2pos", "morpho_withdraw_collateral", "aave_withdraw", MORPHO,
        "xmargin checks IM over 2 collaterals and 2 perpetuals (2 feeds, funding); Morpho accrues one market and "
        "checks its LLTV (1 feed, mock IRM); Aave accrues and checks the health factor over 3 reserves"),
    Row("partial liquidation", "liquidate_2pos", "morpho_liquidate", "aave_liquidation_call", MORPHO,
        "xmargin closes 20% of 2 perpetuals into the fund, values the whole portfolio, pays the keeper; Morpho "
        "seizes one collateral for repaid debt in one market; Aave repays debt for collateral across the account"),
    Row("partial liquidation (collateral seized)", "seize_collateral", "morpho_liquidate", "aave_liquidation_call",
        MORPHO, "xmargin seizes 20% of WETH against a negative settlement balance: the nearest to a lending "
        "liquidation"),
    Row("trade (two signed orders, both sides checked)", "settle_trade", None, None, 200_000,
        "no lending peer: an order-book fill opening a perpetual on both sides, each margin-checked; both accounts' "
        "first orders (each creates its nonce word)"),
    Row("trade, the same accounts' next orders", "settle_trade_existing", None, None, 200_000,
        "two fresh signed orders adding to the positions opened above: the nonce words exist (a set bit each)"),
)


def load(path: Path) -> dict[str, int]:
    """One results file; a missing file names the command that writes it."""
    if not path.exists():
        raise MissingFigure(f"{path} does not exist: run `{SOURCES.get(path.name, 'its benchmark')}` first")
    return json.loads(path.read_text())


def figure(results: dict[str, int], key: str, source: str) -> int:
    """``results[key]`` of the results file ``source`` (gas.json or gas_peers.json), or a clear error."""
    if key not in results:
        raise MissingFigure(f"{source} has no key {key!r}: run `{SOURCES[source]}` to write it")
    return int(results[key])


log = logging.getLogger(__name__)


def _gas(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _peer(peers: dict[str, int], key: str | None) -> int | None:
    return None if key is None else figure(peers, key, "gas_peers.json")


def readme_table(xmargin: dict[str, int], peers: dict[str, int]) -> str:
    """The README's table: one line per row of ``ROWS``."""
    lines = [
        "| operation | xmargin key | xmargin | Morpho Blue 1.0 | Aave v3.0.2 | xmargin / Morpho | target | met | "
        "what differs |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for row in ROWS:
        ours = figure(xmargin, row.key, "gas.json")
        morpho, aave = _peer(peers, row.morpho), _peer(peers, row.aave)
        ratio = "-" if morpho is None else f"{ours / morpho:.2f}x"
        bound = morpho if row.target == MORPHO else row.target
        target = f"<= Morpho ({bound:,})" if row.target == MORPHO else f"<= {bound:,}"
        met = "yes" if ours <= bound else f"no (+{ours - bound:,})"
        lines.append(f"| {row.operation} | `{row.key}` | {ours:,} | {_gas(morpho)} | {_gas(aave)} | {ratio} | "
                     f"{target} | {met} | {row.caveat} |")
    return "\n".join(lines)


def peer_cell(key: str, peers: dict[str, int]) -> str:
    """docs/gas.md's peer cell for xmargin key ``key``: the measured peer figures of its row in ``ROWS``."""
    row = next((r for r in ROWS if r.key == key), None)
    if row is None:
        return ""
    parts = [f"{name} {_gas(_peer(peers, k))}" for name, k in (("Morpho", row.morpho), ("Aave", row.aave))
             if k is not None]
    return "; ".join(parts)


def set_peer_column(table: str, peers: dict[str, int]) -> str:
    """``table`` (docs/gas.md's main table) with the last cell of its header and of each row replaced."""
    out = []
    for line in table.split("\n"):
        if line.startswith("| key |") or line.startswith("| `"):
            cells = [c.strip() for c in line.strip()[1:-1].split("|")]
            cells[-1] = PEER_HEADER if cells[0] == "key" else peer_cell(cells[0].strip("`"), peers)
            line = "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"
        out.append(line)
    return "\n".join(out)


def between(text: str, markers: tuple[str, str]) -> tuple[int, int]:
    """Start and end offsets of what lies between ``markers`` in ``text`` (each must occur once, in order)."""
    begin, end = markers
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise SystemExit(f"expected one {begin} followed by one {end}")
    return text.index(begin) + len(begin), text.index(end)


def rewrite_readme(text: str, xmargin: dict[str, int], peers: dict[str, int]) -> str:
    start, stop = between(text, README_MARKERS)
    return text[:start] + "\n" + readme_table(xmargin, peers) + "\n" + text[stop:]


def rewrite_doc(text: str, peers: dict[str, int]) -> str:
    start, stop = between(text, DOC_MARKERS)
    return text[:start] + set_peer_column(text[start:stop], peers) + text[stop:]


def main(root: Path = ROOT) -> None:
    results = root / "scripts" / "bench" / "results"
    xmargin, peers = load(results / "gas.json"), load(results / "gas_peers.json")
    for name, rewrite in (("README.md", lambda t: rewrite_readme(t, xmargin, peers)),
                          ("docs/gas.md", lambda t: rewrite_doc(t, peers))):
        path = root / name
        path.write_text(rewrite(path.read_text()))
        log.info("rewrote %s", path)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
