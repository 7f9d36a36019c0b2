"""What the crash demo reads from the chain about funding and deleveraging, and the checks it makes on those readings.

The readings are plain JSON (integers in wei, nano-USD per unit, base units 1e18) written into ``summary.json``, so
:func:`verify` can be run again on a saved summary, and a test can hand it a doctored one and see it fail.

- Funding is conserved per market: the vault's ``fundingBalance(m)`` (charges collected minus payments made) minus
  the accrued funding of every open position (``fundingOf``, + received) is the rounding dust: never negative, and at
  most one wei per settlement and per position, plus what a deleveraging index shift rounds up (``OI / 1e9`` wei).
- Deleveraging charges only the opposite side: each ``Deleveraged`` event's side is the side opposite the bankrupt
  account's position in that market, and between the blocks around it each side's index moved by exactly its
  events' shifts (beyond the funding accrual both sides share).
- A write-off adds up (``debt = coveredByFund + deleveraged + socialised``, ``deleveraged`` = its events' amounts);
  it socialises only when every side it charged paid its cap
  (``adlShare * riskWeight * OI * price``, the open interest taken from the event's amount and shift, the price from
  the block before); a depositor without positions loses nothing unless something was socialised.
- The demo's own mirror of the funding each book type accrued (its chart: the events' stored indices and the vault's
  ``marketFunding``, with the exact rule) equals the chain's ``fundingOf``, to the wei.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping

from offchain.margin.snapshot import read_funding_word, read_layout, read_margin_config

INDEX_UNIT = 10**9  # nano-USD per unit: the funding index's unit
WAD = 10**18
CAP_TOLERANCE = 100  # a side counts as exhausted when charged within 1/100 of its cap (read at the block before)


def last_sizes(position_events: Iterable[Any], before: tuple[int, int] | None = None) -> dict[int, dict[int, int]]:
    """market -> {account: size} from the last ``PositionUpdated`` of each (account, market), counting only events
    before ``before`` = (block, log index) when given."""
    out: dict[int, dict[int, int]] = defaultdict(dict)
    for e in position_events:
        if before is not None and (e["blockNumber"], e["logIndex"]) >= before:
            continue
        out[int(e["args"]["market"])][int(e["args"]["account"])] = int(e["args"]["size"])
    return out


def funding_reading(chain: Any, position_events: list[Any], block: int, kinds: Mapping[int, str],
                    adl: Iterable[tuple[int, int]] = ()) -> dict:
    """Funding as the chain has it at ``block``: per market the vault's funding balance, the accrued funding of every
    open position summed by side, the settlements so far; per book type (``kinds``: account -> name, others count
    as ``other``) what its positions paid and received. ``adl``: the (block, market) of every deleveraging so far,
    whose index shift may round up by ``OI / 1e9`` wei."""
    at = chain.at(block)
    sizes = last_sizes(e for e in position_events if e["blockNumber"] <= block)
    settlements: dict[int, int] = defaultdict(int)
    for e in position_events:
        if e["blockNumber"] <= block:
            settlements[int(e["args"]["market"])] += 1
    adl_bound: dict[int, int] = defaultdict(int)
    for at_block, m in adl:
        if at_block <= block:
            adl_bound[m] += int(chain.call("CrossMarginVault", "openInterest", m, block=at_block)) // INDEX_UNIT + 1
    markets: dict[str, dict] = {}
    by_kind: dict[str, dict[str, int]] = defaultdict(lambda: {"paid": 0, "received": 0})
    for m in sorted(sizes):
        row = {"balance": int(at.vault.fundingBalance(m)), "accrued_longs": 0, "accrued_shorts": 0, "positions": 0,
               "settlements": settlements[m], "adl_rounding": adl_bound[m]}
        for account, size in sizes[m].items():
            if size == 0:
                continue
            accrued = int(at.vault.fundingOf(account, m)[0])
            row["accrued_longs" if size > 0 else "accrued_shorts"] += accrued
            row["positions"] += 1
            by_kind[kinds.get(account, "other")]["received" if accrued > 0 else "paid"] += abs(accrued)
        markets[str(m)] = row
    return {"block": block, "markets": markets, "by_kind": dict(by_kind)}


def adl_reading(chain: Any, vault: Any, position_events: list[Any], first: int, last: int,
                kinds: Mapping[int, str]) -> dict:
    """Every ``Deleveraged`` and ``BadDebtWrittenOff`` event in blocks ``first..last``, each deleveraging with the
    bankrupt account's last position in that market before it, the sides its liquidations made sources of that market
    (``source_sides``, :func:`_source_sides`) and what each book type on the charged side owes for it (``ceil(|size| *
    shift / 1e9)`` of each position there then); each (block, market) charged with both sides' index moves between
    the block before and that block (``marketFunding``, advanced to each block's time)."""
    dels = vault.events.get_sequence(first, last, "Deleveraged")
    offs = vault.events.get_sequence(first, last, "BadDebtWrittenOff")
    liquidations = vault.events.get_sequence(first, last, "Liquidated") if dels else []
    events = []
    charged: dict[str, int] = defaultdict(int)
    if dels:
        at = chain.at(first)
        layout, cfg, word = read_layout(at.vault), read_margin_config(at.params), read_funding_word(at.params)
    for e in dels:
        a = e["args"]
        account, market, shift = int(a["account"]), int(a["market"]), int(a["shift"])
        asset = layout.market_asset[market]
        price = int(chain.call("OracleRouter", "price", asset, block=e["blockNumber"] - 1))
        side = int(a["amount"]) * INDEX_UNIT // shift  # the side's size the shift spread the amount over (or less)
        cap = side * price // WAD * cfg.risk_weight(asset) * word.adl_share_bps // 10**8
        sizes = [int(p["args"]["size"]) for p in position_events
                 if int(p["args"]["account"]) == account and int(p["args"]["market"]) == market
                 and (p["blockNumber"], p["logIndex"]) < (e["blockNumber"], e["logIndex"]) and int(p["args"]["size"])]
        blocks = [int(q["blockNumber"]) for q in liquidations
                  if int(q["args"]["account"]) == account and q["blockNumber"] <= e["blockNumber"]]
        sides = _source_sides(chain, account, asset, blocks, lambda b: [
            int(p["args"]["size"]) for p in position_events if int(p["args"]["account"]) == account
            and int(p["args"]["market"]) == market and p["blockNumber"] < b and int(p["args"]["size"])][-1:])
        events.append({"block": e["blockNumber"], "tx": e["transactionHash"].hex(), "account": f"{account:#x}",
                       "market": market, "longs_pay": bool(a["longsPay"]), "amount": int(a["amount"]),
                       "shift": shift, "bankrupt_size": sizes[-1] if sizes else 0, "cap": cap,
                       "source_sides": sorted(sides)})
        holders = last_sizes(position_events, before=(e["blockNumber"], e["logIndex"]))[market]
        for holder, size in holders.items():
            if (size > 0) == bool(a["longsPay"]) and size != 0:
                charged[kinds.get(holder, "other")] += -(-abs(size) * shift // INDEX_UNIT)
    moves = []
    for block, market in sorted({(e["block"], e["market"]) for e in events}):
        before = chain.call("CrossMarginVault", "marketFunding", market, block=block - 1)
        after = chain.call("CrossMarginVault", "marketFunding", market, block=block)
        moves.append({"block": block, "market": market, "long_index_moved": int(after[0]) - int(before[0]),
                      "short_index_moved": int(after[1]) - int(before[1])})
    write_offs = [{"block": e["blockNumber"], "tx": e["transactionHash"].hex(),
                   "account": f"{int(e['args']['account']):#x}", "debt": int(e["args"]["debt"]),
                   "covered_by_fund": int(e["args"]["coveredByFund"]),
                   "deleveraged": int(e["args"]["deleveraged"]), "socialised": int(e["args"]["socialised"])}
                  for e in offs]
    return {"deleveraged": events, "index_moves": moves, "write_offs": write_offs, "charged_by_kind": dict(charged)}


def _source_sides(chain: Any, account: int, asset: int, blocks: list[int], last_size: Any) -> set[str]:
    """The sides ("long", "short") that the liquidations of ``account`` in ``blocks`` made a deleveraging source of a
    market on ``asset`` (ICrossMarginVault, "Deleveraging"): where the account held options on the asset, its net
    direction there (the sign of WS_asset in ``marginDetail``) in the block before each liquidation, both sides when
    that direction is near neutral (|WS| below 1% of its maintenance margin: the liquidation's own block may have
    moved the price or the time enough to flip it); otherwise the sign of its last position in the market before
    the liquidation (``last_size(block)``: a list of at most one size)."""
    sides: set[str] = set()
    for b in sorted(set(blocks)):
        d = chain.call("CrossMarginVault", "marginDetail", account, block=b - 1)
        options, maintenance = d[6], int(d[5][5])
        ws = int(options[2][asset])
        if (int(options[6]) >> asset) & 1 and ws != 0:
            sides |= {"long", "short"} if abs(ws) * 100 < maintenance else {"long" if ws > 0 else "short"}
        else:
            sides |= {"long" if q > 0 else "short" for q in last_size(b)}
    return sides


def verify_funding(reading: Mapping, where: str, moved: bool) -> list[str]:
    """Failures of the funding checks on a :func:`funding_reading`; ``moved``: funding must have moved money."""
    failures = []
    for m, r in reading["markets"].items():
        dust = r["balance"] - r["accrued_longs"] - r["accrued_shorts"]
        allowed = r["settlements"] + r["positions"] + r["adl_rounding"]
        if not 0 <= dust <= allowed:
            failures.append(f"{where}: funding of market {m} is not conserved: fundingBalance {r['balance']} minus "
                            f"accrued {r['accrued_longs'] + r['accrued_shorts']} leaves {dust} wei "
                            f"(allowed 0..{allowed})")
    for kind, wei in reading.get("mirror_by_kind", {}).items():
        chain = reading["by_kind"].get(kind, {"paid": 0, "received": 0})
        if wei != chain["received"] - chain["paid"]:
            failures.append(f"{where}: the demo's mirror says {kind} accrued {wei} wei, the chain "
                            f"{chain['received'] - chain['paid']}")
    if moved:
        longs = sum(r["accrued_longs"] for r in reading["markets"].values())
        shorts = sum(r["accrued_shorts"] for r in reading["markets"].values())
        if not longs < 0 < shorts:
            failures.append(f"{where}: with fills above the index longs should pay shorts; longs accrued {longs}, "
                            f"shorts {shorts} wei")
    return failures


def verify_adl(adl: Mapping, saver_before: int, saver_after: int) -> list[str]:
    """Failures of the deleveraging checks on an :func:`adl_reading` and a depositor's settlement value (wei)."""
    failures = []
    for e in adl["deleveraged"]:
        if ("short" if e["longs_pay"] else "long") not in e["source_sides"]:
            failures.append(f"deleveraging of {e['account']} in market {e['market']} (block {e['block']}) charged the "
                            f"{'longs' if e['longs_pay'] else 'shorts'}, but its liquidations made only "
                            f"{e['source_sides'] or 'no side'} a source there (its last position {e['bankrupt_size']}): "
                            f"only the side opposite a source may pay")
    for mv in adl["index_moves"]:
        here = [e for e in adl["deleveraged"] if (e["block"], e["market"]) == (mv["block"], mv["market"])]
        longs = sum(e["shift"] for e in here if e["longs_pay"])
        shorts = sum(e["shift"] for e in here if not e["longs_pay"])
        # longs pay when their index rises, shorts when theirs falls; funding moves both by the same amount
        if mv["long_index_moved"] - longs != mv["short_index_moved"] + shorts:
            failures.append(f"market {mv['market']} block {mv['block']}: the long index moved {mv['long_index_moved']}"
                            f" and the short index {mv['short_index_moved']}, but the events shift the longs by {longs}"
                            f" and the shorts by {shorts}: a side was charged that no event names")
    for w in adl["write_offs"]:
        charged = sum(e["amount"] for e in adl["deleveraged"] if e["tx"] == w["tx"] and e["account"] == w["account"])
        if charged != w["deleveraged"]:
            failures.append(f"write-off of {w['account']} (block {w['block']}): deleveraged {w['deleveraged']} but its "
                            f"Deleveraged events charge {charged}")
        if w["covered_by_fund"] + w["deleveraged"] + w["socialised"] != w["debt"]:
            failures.append(f"write-off of {w['account']} (block {w['block']}): debt {w['debt']} != fund "
                            f"{w['covered_by_fund']} + deleveraged {w['deleveraged']} + socialised {w['socialised']}")
        # a loss goes to the depositors only once the opposite sides are exhausted (the split's parts add up to the
        # loss: not a wei is left over while a side has room)
        mine = [e for e in adl["deleveraged"] if e["tx"] == w["tx"] and e["account"] == w["account"]]
        if w["socialised"]:
            for e in mine:
                if e["amount"] < e["cap"] - e["cap"] // CAP_TOLERANCE:
                    failures.append(f"write-off of {w['account']} (block {w['block']}) socialised {w['socialised']} "
                                    f"wei while the {'longs' if e['longs_pay'] else 'shorts'} of market {e['market']} "
                                    f"paid {e['amount']} of the {e['cap']} they could bear")
    socialised = any(w["socialised"] for w in adl["write_offs"])
    if saver_after > saver_before or (saver_after < saver_before and not socialised):
        failures.append(f"a depositor without positions went from {saver_before} to {saver_after} wei with "
                        f"{sum(w['socialised'] for w in adl['write_offs'])} wei socialised")
    return failures


def verify(summary: Mapping) -> list[str]:
    """Every failed check of a demo summary (empty when all hold)."""
    f = summary["funding"]
    failures = verify_funding(f["before_crash"], "before the crash", f["desk_fills"] > 0)
    failures += verify_funding(f["at_end"], "at the end", False)
    failures += verify_adl(summary["adl"], summary["saver_value"]["before"], summary["saver_value"]["after"])
    failures += verify_model(summary)
    failures += verify_options(summary)
    return failures


def verify_options(summary: Mapping) -> list[str]:
    """Option books that were liquidated had their options closed: the fund took over option positions. The fund's
    desk closed every option position the fund took over: it holds no option series at the end, unless the vault's
    rule refused every trade of the fund (the desk recorded a skip for the fund's margin: with its equity below zero,
    as in a gap on an empty fund, no trade of the fund passes). (Whether every breach was answered is the
    missed-liquidation count's, option books included; a breach may also end with the account back above MM before a
    liquidation lands.)"""
    o = summary.get("options")
    if not o or not o["books"]:
        return []
    failures = []
    if o["liquidated_accounts"] and not o["positions_taken_over"]:
        failures.append(f"{o['liquidated_accounts']} option books were liquidated but the fund took over no option "
                        f"position: their options were never closed")
    desk = summary.get("fund_option_unwinds")
    if desk is not None and o["fund_series_held"] and "fund's margin" not in desk["skipped"]:
        failures.append(f"the fund still holds {o['fund_series_held']} option series at the end: its desk did not "
                        f"close them ({desk['fills']} fills, {desk['reverted']} reverted, skipped {desk['skipped']})")
    return failures


def verify_model(summary: Mapping) -> list[str]:
    """The chain agrees in kind with the cascade model: when the model's p95 leaves depositors nothing to bear, the
    chain socialises nothing either; when the model's p95 keeps the fund's use within what it holds, so does the
    chain. (Where the model itself expects the fund to run out, as in a gap on an empty fund, the chain may too.)"""
    model = summary.get("model_p95")
    if not model:
        return []
    failures = []
    socialised = sum(w["socialised"] for w in summary["adl"]["write_offs"])
    if model["bad_debt"] == 0 and socialised:
        failures.append(f"the chain socialised {socialised} wei where the cascade model's p95 bad debt is 0")
    within = model["fund_depletion"] <= model["insurance_fund"]
    if within and summary["fund_depletion"] > summary["insurance_fund_before"]:
        failures.append(f"the fund was used beyond what it held, {summary['fund_depletion']:,.2f} of "
                        f"{summary['insurance_fund_before']:,.2f} USD, where the model's p95 keeps it within "
                        f"({model['fund_depletion']:,.2f})")
    return failures
