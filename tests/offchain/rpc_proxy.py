"""A JSON-RPC proxy in front of the local node that injects faults: dropped connections, delays, a frozen head,
rejection of wide ``eth_getLogs`` ranges (as hosted nodes do), a gas cap on ``eth_call`` (geth's RPCGasCap), and
methods the node does not have."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from brownie import web3


class RpcProxy:
    def __init__(self, upstream: str | None = None, max_log_range: int | None = None,
                 call_gas_cap: int | None = None) -> None:
        self.upstream = upstream or web3.provider.endpoint_uri
        self.max_log_range = max_log_range
        self.call_gas_cap = call_gas_cap
        self.drop = False  # close every connection without an answer (a dead node)
        self.delay = 0.0  # seconds added to every answer
        self.frozen_head: int | None = None  # answer eth_blockNumber with this (a stalled node)
        self.unknown_methods: set[str] = set()  # answered "Method not found" (a node without them)
        self.rejected = 0
        self.calls = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.calls += 1
                if proxy.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if proxy.delay:
                    time.sleep(proxy.delay)
                req = json.loads(body)
                if req.get("method") == "eth_call" and proxy.call_gas_cap is not None:
                    req["params"][0]["gas"] = hex(proxy.call_gas_cap)  # what geth does: the cap is the call's gas
                    body = json.dumps(req).encode()
                out = proxy._local(req)
                if out is None:
                    out = requests.post(proxy.upstream, data=body, headers={"Content-Type": "application/json"},
                                        timeout=30).content
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _local(self, req: dict) -> bytes | None:
        method = req.get("method")
        if method in self.unknown_methods:
            return json.dumps({"jsonrpc": "2.0", "id": req["id"], "error": {
                "code": -32601, "message": f"Method not found: {method}"}}).encode()
        if method == "eth_blockNumber" and self.frozen_head is not None:
            return json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": hex(self.frozen_head)}).encode()
        if method == "eth_getLogs" and self.max_log_range is not None:
            f = req["params"][0]
            lo, hi = f.get("fromBlock"), f.get("toBlock")
            if isinstance(lo, str) and isinstance(hi, str) and lo.startswith("0x") and hi.startswith("0x") \
                    and int(hi, 16) - int(lo, 16) + 1 > self.max_log_range:
                self.rejected += 1
                return json.dumps({"jsonrpc": "2.0", "id": req["id"], "error": {
                    "code": -32005, "message": f"query exceeds max block range {self.max_log_range}"}}).encode()
        return None

    def __enter__(self) -> "RpcProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
