"""Operations: JSON logging, Prometheus metrics and a health endpoint.

``/metrics`` serves the keeper's own registry (no process globals, so tests can run several keepers in one
process); ``/health`` answers 200 with a JSON body while the keeper is healthy and 503 when it is not (every RPC
endpoint failing, the node stalled, or no successful step for a while).
"""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(fmt: str = "json", level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class Metrics:
    """The keeper's metrics, in a registry of its own."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.accounts = Gauge("xmargin_accounts_tracked", "Accounts in this keeper's shard", registry=r)
        self.candidates = Gauge("xmargin_candidates", "Accounts the screen flagged in the last block", registry=r)
        self.liquidatable = Gauge("xmargin_liquidatable", "Accounts the exact mirror confirmed liquidatable",
                                  registry=r)
        self.sent = Counter("xmargin_liquidations_sent", "Liquidation transactions sent", registry=r)
        self.included = Counter("xmargin_liquidations_included", "Liquidations included on-chain", registry=r)
        self.lost = Counter("xmargin_liquidations_lost", "Opportunities lost (another keeper was first)", registry=r)
        self.failed = Counter("xmargin_liquidations_failed", "Opportunities that failed for another reason",
                              registry=r)
        self.rpc_errors = Counter("xmargin_rpc_errors", "Failed RPC requests", ["endpoint"], registry=r)
        self.lag = Gauge("xmargin_lag_blocks", "Blocks between the node's head and the last processed block",
                         registry=r)
        self.head = Gauge("xmargin_head_block", "Last block processed", registry=r)
        self.step_seconds = Gauge("xmargin_step_seconds", "Duration of the last keeper step", registry=r)
        self.healthy = Gauge("xmargin_healthy", "1 while healthy", registry=r)
        self.balance = Gauge("xmargin_keeper_balance_eth", "Native balance of the keeper's account (pays gas)",
                             registry=r)
        self.balance_low = Gauge("xmargin_keeper_balance_low", "1 while the balance is below keeper.low_balance_eth",
                                 registry=r)
        self.reconcile_mismatches = Counter("xmargin_reconcile_mismatches", "Accounts repaired by reconciliation",
                                            registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class OpsServer:
    """``/metrics`` and ``/health`` on a background thread."""

    def __init__(self, host: str, port: int, metrics: Metrics, health: Callable[[], dict]) -> None:
        metrics_, health_ = metrics, health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                if self.path.startswith("/metrics"):
                    body, code, ctype = metrics_.render(), 200, CONTENT_TYPE_LATEST
                elif self.path.startswith("/health"):
                    h = health_()
                    body, code, ctype = json.dumps(h).encode(), 200 if h["healthy"] else 503, "application/json"
                else:
                    body, code, ctype = b"not found\n", 404, "text/plain"
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # quiet: requests are not worth a log line
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="xmargin-ops", daemon=True)

    def start(self) -> "OpsServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
