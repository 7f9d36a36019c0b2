"""A local TCP proxy between a keeper and its node that injects transport faults.

It relays HTTP/1.1 JSON-RPC exchanges one at a time per client connection (keep-alive included): it reads a whole
request (headers + Content-Length body), forwards it to the upstream node on a fresh connection, reads the whole
answer, and writes it back, unless a fault says otherwise:

- ``drop``: read the request, then close the connection without answering (a node that dies mid-exchange);
- ``delay``: seconds to wait before answering (a slow node; longer than the client's timeout = timeouts);
- ``truncate``: answer with the full ``Content-Length`` header but only half the body, then close (a connection cut
  mid-body);
- ``stop()`` / ``start()``: close the listening socket and every open connection (connection refused: the node is
  down), then listen again on the same port (the node is back);
- ``min_gas_price``: behave like a node whose fee market spiked: ``eth_feeHistory`` and blocks report a base fee of
  at least this many wei, and ``eth_sendRawTransaction`` of a transaction paying less is refused with
  "transaction underpriced" (what a node with a high minimum gas price answers).

``counts`` records what was done (requests relayed, dropped, truncated, delayed, refused).
"""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import Counter
from urllib.parse import urlparse

from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes


class TcpProxy:
    def __init__(self, upstream: str) -> None:
        u = urlparse(upstream)
        self.upstream = (u.hostname, u.port)
        self.drop = False
        self.delay = 0.0
        self.truncate = False
        self.min_gas_price: int | None = None
        self.counts: Counter = Counter()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.url = f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "TcpProxy":
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(50):  # the port may linger for a moment after stop()
            try:
                s.bind(("127.0.0.1", self.port))
                break
            except OSError:
                time.sleep(0.05)
        s.listen(64)
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()
        return self

    def stop(self) -> None:
        """The node goes away: no more connections, and every open one is cut."""
        s, self._listener = self._listener, None
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            _close(c)

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ relaying
    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while True:
                request, buf = _read_request(conn, buf)
                if request is None:
                    return
                head, body = request
                if self.drop:
                    self.counts["dropped"] += 1
                    return
                answer = self._local(body)
                if answer is None:
                    status, answer = self._forward(head, body)
                else:
                    status = 200
                if self.min_gas_price is not None:
                    answer = self._spiked(body, answer)
                if self.delay:
                    self.counts["delayed"] += 1
                    time.sleep(self.delay)
                out = (f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(answer)}\r\n"
                       "Connection: keep-alive\r\n\r\n").encode()
                if self.truncate:
                    self.counts["truncated"] += 1
                    conn.sendall(out + answer[: len(answer) // 2])
                    return
                conn.sendall(out + answer)
                self.counts["relayed"] += 1
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            _close(conn)

    def _forward(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        c = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            c.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    # ------------------------------------------------------------------ fee spike
    def _local(self, body: bytes) -> bytes | None:
        """A refusal for an underpriced transaction while the fee market is spiked."""
        if self.min_gas_price is None:
            return None
        req = json.loads(body)
        if isinstance(req, dict) and req.get("method") == "eth_sendRawTransaction":
            tx = TypedTransaction.from_bytes(HexBytes(req["params"][0])).as_dict()
            if tx["maxFeePerGas"] < self.min_gas_price:
                self.counts["refused_underpriced"] += 1
                return json.dumps({"jsonrpc": "2.0", "id": req["id"], "error": {
                    "code": -32000, "message": f"transaction underpriced: maxFeePerGas {tx['maxFeePerGas']} < "
                    f"minimum {self.min_gas_price}"}}).encode()
        return None

    def _spiked(self, body: bytes, answer: bytes) -> bytes:
        req = json.loads(body)
        if not isinstance(req, dict) or req.get("method") not in ("eth_feeHistory", "eth_getBlockByNumber"):
            return answer
        resp = json.loads(answer)
        res = resp.get("result")
        floor = self.min_gas_price
        if req["method"] == "eth_feeHistory" and res:
            res["baseFeePerGas"] = [hex(max(int(b, 16), floor)) for b in res["baseFeePerGas"]]
        elif res and res.get("baseFeePerGas"):
            res["baseFeePerGas"] = hex(max(int(res["baseFeePerGas"], 16), floor))
        return json.dumps(resp).encode()


def _read_request(conn: socket.socket, buf: bytes) -> tuple[tuple[bytes, bytes] | None, bytes]:
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    return (head, rest[:length]), rest[length:]


def _close(c: socket.socket) -> None:
    try:
        c.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    c.close()
