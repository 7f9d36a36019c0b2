"""Where the gas of a benchmark transaction goes (``settle_option_trade`` by default), traced step by step.

    brownie run scripts/bench/gas_trace.py --network ganache-cli
    GAS_TRACE_KEYS=settle_option_trade,liquidate_option brownie run scripts/bench/gas_trace.py --network ganache-cli

Runs the gas benchmark's scenarios (``scripts/bench/gas.py``, in its order, so the state is the one ``make gas``
measures; ``GAS_TRACE_QUICK=1`` runs the option scenarios alone, whose figures then differ by a few hundred gas) and,
as each key in ``GAS_TRACE_KEYS`` (transactions only) is recorded, asks the node for ``debug_traceTransaction`` of
its transaction (no memory, no storage) and attributes every step's gas:

  * to the contract whose code runs (a DELEGATECALL runs the target's code: the vault's extension shows as
    VaultExtension), through the call stack rebuilt from the CALL/STATICCALL/DELEGATECALL steps;
  * to the internal function whose source region holds the step's pc (Brownie's ``pcMap``, ``fn``; ``?`` for the
    compiler's own routines: ABI coding, dispatch, checked arithmetic), and to the chain of internal calls (jumps
    marked ``i``/``o`` in the map) for inclusive figures: the call tree, calls of the same name under one parent
    merged (``x2``: the maker's and the taker's, or the buyer's and the seller's).

A call step is charged its own cost (cold access, memory; the gas the callee did not use is excluded): the gas before
it minus the gas after the callee returned minus what the callee used. Gas used = intrinsic and calldata + the steps'
sum - the refund. Writes ``reports/trace_<key>.json`` and logs the tables; ``GAS_TRACE_MIN`` (default 500) is the
smallest call-tree entry shown, ``GAS_TRACE_FOLDED=path`` also writes the folded stacks (flame graph input).
"""
from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from pathlib import Path

from brownie import chain, web3
from brownie.project import get_loaded_projects

from scripts.bench import gas as bench

log = logging.getLogger(__name__)
RESULTS = Path(__file__).resolve().parents[2] / "reports"
CALLS = ("CALL", "STATICCALL", "DELEGATECALL", "CALLCODE")
PRECOMPILES = {1: "ecrecover", 2: "sha256", 3: "ripemd160", 4: "identity", 5: "modexp"}


def _pc_maps() -> dict[str, dict]:
    """Deployed bytecode (lowercase hex, no 0x) -> (contract name, pcMap, source paths), for every build artifact."""
    out = {}
    project = get_loaded_projects()[0]
    build = Path(project._path) / "build" / "contracts"
    for f in build.glob("*.json"):
        d = json.loads(f.read_text())
        code = d.get("deployedBytecode") or ""
        if len(code) < 4 or not d.get("pcMap"):
            continue
        out[code.lower()] = (d["contractName"], {int(k): v for k, v in d["pcMap"].items()}, d["allSourcePaths"])
    return out


class Code:
    def __init__(self, name: str, pc_map: dict | None, paths: dict | None):
        self.name, self.pc_map, self.paths = name, pc_map or {}, paths or {}


def _code_of(address: str, maps: dict, cache: dict) -> Code:
    address = address.lower()
    if address in cache:
        return cache[address]
    n = int(address, 16)
    if n in PRECOMPILES:
        cache[address] = Code(PRECOMPILES[n], None, None)
        return cache[address]
    code = web3.eth.get_code(web3.to_checksum_address(address)).hex().lower().removeprefix("0x")
    hit = maps.get(code)
    if hit is None:
        # immutables differ from the artifact: match on the length and the longest common run
        best = None
        for art, (name, pm, paths) in maps.items():
            if len(art) == len(code):
                same = sum(1 for a, b in zip(art[::64], code[::64]) if a == b)
                if best is None or same > best[0]:
                    best = (same, name, pm, paths)
        hit = best[1:] if best and best[0] > len(code) // 64 * 0.9 else (f"?{address[:10]}", None, None)
    cache[address] = Code(*hit)
    return cache[address]


OP_CLASS = {
    "SLOAD": "storage read", "SSTORE": "storage write", "LOG0": "events", "LOG1": "events", "LOG2": "events",
    "LOG3": "events", "LOG4": "events", "KECCAK256": "keccak", "SHA3": "keccak", "EXTCODECOPY": "extcodecopy",
    "CALL": "call", "STATICCALL": "call", "DELEGATECALL": "call", "CALLDATACOPY": "calldata/returndata copy",
    "RETURNDATACOPY": "calldata/returndata copy", "CODECOPY": "calldata/returndata copy",
}


class Node:
    """One call of a contract or of an internal function; `gas` is its own steps' gas (children excluded)."""

    __slots__ = ("name", "gas", "children", "parent")

    def __init__(self, name: str, parent: "Node | None"):
        self.name, self.gas, self.children, self.parent = name, 0, [], parent
        if parent is not None:
            parent.children.append(self)

    def total(self) -> int:
        return self.gas + sum(c.total() for c in self.children)


def attribute(txid: str, receiver: str):
    """Per-step costs with their contract path and internal call path, and the call tree (the trace without memory
    and storage: the stack gives the call targets)."""
    res = web3.provider.make_request(
        "debug_traceTransaction", [txid, {"disableStorage": True, "disableMemory": True}]
    )
    if "error" in res:
        raise RuntimeError(res["error"])
    steps = res["result"]["structLogs"]
    for s in steps:  # Ganache answers numbers as hex strings
        for k in ("gas", "gasCost", "pc", "depth"):
            if isinstance(s[k], str):
                s[k] = int(s[k], 16)
        s["stack"] = [x.removeprefix("0x") for x in s.get("stack") or []]
    maps = _pc_maps()
    cache: dict = {}
    depth0 = steps[0]["depth"]
    root = Node("tx", None)
    entry = _code_of(receiver, maps, cache)
    # frames: (code, internal call stack of fn names, tree node stack)
    frames = [(entry, ["<entry>"], [Node(entry.name, root)])]
    rows = []  # (contract path tuple, fn path tuple, op, class, cost, callee)
    n = len(steps)
    # the index of the next step at the same depth (where a call returns)
    next_same = [None] * n
    last_at_depth: dict = {}
    for i in range(n - 1, -1, -1):
        d = steps[i]["depth"]
        next_same[i] = last_at_depth.get(d)
        last_at_depth[d] = i
        for dd in [k for k in last_at_depth if k > d]:
            del last_at_depth[dd]
    for i, s in enumerate(steps):
        d = s["depth"] - depth0
        while len(frames) > d + 1:
            frames.pop()
        code, fns, nodes = frames[-1]
        op = s["op"]
        nxt = steps[i + 1] if i + 1 < n else None
        if nxt is not None and nxt["depth"] > s["depth"]:
            # entered a callee: its own cost is charged to its steps
            j = next_same[i]
            child_end = j - 1 if j is not None else n - 1
            left = steps[child_end]["gas"] - max(steps[child_end]["gasCost"], 0)  # Ganache: RETURN's is negative
            used = nxt["gas"] - left
            cost = s["gas"] - (steps[j]["gas"] if j is not None else left) - used
        elif nxt is not None and nxt["depth"] == s["depth"]:
            cost = s["gas"] - nxt["gas"]
        else:
            cost = max(s["gasCost"], 0)
        pm = code.pc_map.get(s["pc"], {})
        fn = pm.get("fn") or fns[-1]
        path_fns = tuple(fns) + ((fn,) if fn != fns[-1] else ())
        cls = OP_CLASS.get(op, "compute")
        extra = ""
        if op in CALLS:
            target = s["stack"][-2][-40:].lower().rjust(40, "0")
            extra = _code_of(target, maps, cache).name
        rows.append((tuple(f[0].name for f in frames), path_fns, op, cls, cost, extra))
        if DETAIL and fn == DETAIL:
            _detail[(code.name, s["pc"], op)] += cost
        nodes[-1].gas += cost
        # internal calls
        jump = pm.get("jump")
        if op == "JUMP" and jump == "i" and nxt is not None:
            target_fn = code.pc_map.get(nxt["pc"], {}).get("fn") or "?"
            fns.append(target_fn)
            nodes.append(Node(target_fn, nodes[-1]))
        elif op == "JUMP" and jump == "o" and len(fns) > 1:
            fns.pop()
            nodes.pop()
        if nxt is not None and nxt["depth"] > s["depth"] and op in CALLS + ("CREATE", "CREATE2"):
            target = s["stack"][-2][-40:].lower().rjust(40, "0")
            callee = _code_of(target, maps, cache)
            frames.append((callee, ["<entry>"], [Node(f"{callee.name} ({op.lower()})", nodes[-1])]))
    return rows, steps[0]["gas"], root


DETAIL = os.environ.get("GAS_TRACE_FN")  # an internal function whose steps are listed by pc
_detail: dict = defaultdict(int)


def tree_lines(nodes: list, indent: int, min_gas: int, out: list, scale: int) -> None:
    """Same-named siblings merged (their count shown), children listed by first appearance."""
    total = sum(x.total() for x in nodes)
    own = sum(x.gas for x in nodes)
    name = nodes[0].name + (f" x{len(nodes)}" if len(nodes) > 1 else "")
    out.append(f"{total:>9,} {100 * total / scale:5.1f}%  {'  ' * indent}{name}  (own {own:,})")
    groups: dict = {}
    for x in nodes:
        for c in x.children:
            groups.setdefault(c.name, []).append(c)
    for g in groups.values():
        if sum(c.total() for c in g) >= min_gas:
            tree_lines(g, indent + 1, min_gas, out, scale)


PRICE_CODE = ("OracleRouter", "ChainlinkFeed")
TOKEN_CODE = ("TestToken",)
COLUMNS = ("intrinsic", "prices", "token", "reads", "writes", "events", "signatures", "arithmetic", "refund")


def columns(trace: dict) -> dict[str, int]:
    """The parts of docs/gas.md's floor table ("Where the gas goes against the peers' targets") from a trace: the
    oracle path (the router's and the feeds' code and the calls into them) in "prices", the ERC20's in "token",
    ecrecover in "signatures", the storage reads, writes and events of every other contract, and the rest (compute,
    memory, hashing, copies, other call steps) in "arithmetic". The parts sum to the gas used."""
    out = dict.fromkeys(COLUMNS, 0)
    out["intrinsic"], out["refund"] = trace["intrinsic_and_calldata"], -trace["refund"]
    kinds = {"storage read": "reads", "storage write": "writes", "events": "events"}
    for key, gas in trace["by_class"].items():
        contract, cls = key.split("::", 1)
        if cls == "call":  # a call step is attributed by its target, below
            continue
        if contract in PRICE_CODE:
            out["prices"] += gas
        elif contract in TOKEN_CODE:
            out["token"] += gas
        else:
            out[kinds.get(cls, "arithmetic")] += gas
    for key, gas in trace["call_steps"].items():
        target = key.split(" -> ", 1)[1]
        part = ("prices" if target in PRICE_CODE else "token" if target in TOKEN_CODE
                else "signatures" if target == "ecrecover" else "arithmetic")
        out[part] += gas
    if sum(out.values()) != trace["gas_used"]:
        raise RuntimeError(f"the parts sum to {sum(out.values())}, the trace used {trace['gas_used']}")
    return out


def report(key: str, tx, rows, gas0: int, root: Node | None = None) -> dict:
    total = sum(r[4] for r in rows)
    by_contract = defaultdict(int)
    by_fn = defaultdict(int)
    by_class = defaultdict(int)
    by_call = defaultdict(int)
    inclusive = defaultdict(int)
    folded = defaultdict(int)
    for cpath, fpath, op, cls, cost, extra in rows:
        by_contract[cpath[-1]] += cost
        by_fn[(cpath[-1], fpath[-1])] += cost
        by_class[(cpath[-1], cls)] += cost
        if extra:
            by_call[(cpath[-1], extra)] += cost
        seen = set()
        for k in range(1, len(cpath) + 1):
            inclusive[" > ".join(cpath[:k])] += cost
        for f in fpath:
            if (cpath[-1], f) not in seen:
                inclusive[f"{cpath[-1]}::{f}"] += cost
                seen.add((cpath[-1], f))
        folded[";".join(list(cpath) + list(fpath))] += cost
    intrinsic = tx.gas_limit - gas0
    refund = intrinsic + total - tx.gas_used
    out = {
        "gas_used": tx.gas_used, "intrinsic_and_calldata": intrinsic, "execution": total, "refund": refund,
        "by_contract": dict(sorted(by_contract.items(), key=lambda x: -x[1])),
        "by_function": {f"{c}::{f}": g for (c, f), g in sorted(by_fn.items(), key=lambda x: -x[1])},
        "by_class": {f"{c}::{k}": g for (c, k), g in sorted(by_class.items(), key=lambda x: -x[1])},
        "call_steps": {f"{c} -> {k}": g for (c, k), g in sorted(by_call.items(), key=lambda x: -x[1])},
        "inclusive": dict(sorted(inclusive.items(), key=lambda x: -x[1])),
    }
    out["columns"] = columns(out)
    if root is not None:
        lines: list = []
        tree_lines(root.children, 0, int(os.environ.get("GAS_TRACE_MIN", "500")), lines, tx.gas_used)
        out["tree"] = lines
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"trace_{key}.json").write_text(json.dumps(out, indent=1) + "\n")
    if os.environ.get("GAS_TRACE_FOLDED"):
        Path(os.environ["GAS_TRACE_FOLDED"]).write_text("".join(f"{k} {v}\n" for k, v in folded.items()))
    log.info("%s: gas used %s = intrinsic+calldata %s + execution %s - refund %s", key, f"{tx.gas_used:,}",
             f"{intrinsic:,}", f"{total:,}", f"{refund:,}")
    log.info("%s: floor-table parts %s", key, ", ".join(f"{k} {v:,}" for k, v in out["columns"].items()))
    for title, table, limit in (("by contract (code running)", out["by_contract"], 20),
                                ("by contract and function region (exclusive)", out["by_function"], 60),
                                ("by contract and opcode class", out["by_class"], 30),
                                ("call steps (access + memory, callee excluded)", out["call_steps"], 20),
                                ("inclusive (call paths and internal functions)", out["inclusive"], 90)):
        log.info("")
        log.info("-- %s", title)
        for k, v in list(table.items())[:limit]:
            log.info("%9s %5.1f%%  %s", f"{v:,}", 100 * v / tx.gas_used, k)
    if DETAIL:
        log.info("")
        log.info("-- %s by pc", DETAIL)
        for (c, pc, op), g in sorted(_detail.items(), key=lambda x: x[0][1]):
            log.info("%9s  %s %5d %s", f"{g:,}", c, pc, op)
        _detail.clear()
    log.info("")
    log.info("-- call tree (contracts and internal functions, inclusive; same-named calls merged)")
    for line in out.get("tree", []):
        log.info("%s", line)
    return out


class TracingBench(bench.Bench):
    """The benchmark, tracing the transaction of each key in `keys` as soon as it is recorded (some scenarios revert
    their snapshot right after)."""

    def __init__(self, keys: set[str]) -> None:
        super().__init__()
        self.keys = keys
        self.traces: dict = {}

    def view_gas(self, contract, fn: str, *args) -> int:
        self._view = (contract, fn, args)
        return super().view_gas(contract, fn, *args)

    def record(self, key: str, gas: int, what: str) -> None:
        super().record(key, gas, what)
        if key not in self.keys:
            return
        if "view" in key or "lens" in key or "detail" in key:
            # a view: sent as a transaction (same code, one block later) to be traced
            contract, fn, args = self._view
            chain.snapshot()
            tx = contract.get_method_object(getattr(contract, fn).encode_input(*args)).transact(
                *args, {"from": self.deployer})
            log.info("%s: the view as a transaction used %s (estimate %s)", key, f"{tx.gas_used:,}", f"{gas:,}")
        else:
            tx = chain.get_transaction(web3.eth.get_block("latest")["transactions"][-1])
            if tx.gas_used != gas:
                raise RuntimeError(f"{key}: the latest transaction used {tx.gas_used}, the key records {gas}")
        rows, gas0, root = attribute(tx.txid, tx.receiver)
        self.traces[key] = report(key, tx, rows, gas0, root)
        if "view" in key or "lens" in key or "detail" in key:
            chain.revert()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    keys = set(os.environ.get("GAS_TRACE_KEYS", "settle_option_trade").split(","))
    b = TracingBench(keys)
    # GAS_TRACE_QUICK=1: the option keys alone (the fund's state differs a little)
    bench.run_benchmarks(b, options_only=os.environ.get("GAS_TRACE_QUICK") == "1")
    for k, v in b.gas.items():
        if "opt" in k or "expiry" in k:
            log.info("%-34s %9s", k, f"{v:,}")
