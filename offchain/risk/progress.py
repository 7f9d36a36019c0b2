"""Progress of long risk runs on stderr: a bar redrawn in place on a terminal; elsewhere (a log file, CI) one log line
at each tenth, so a long run is never silent and a log is never flooded."""
from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, Iterator, TextIO, TypeVar

log = logging.getLogger("xmargin.risk")
T = TypeVar("T")


class Progress:
    def __init__(self, total: int, what: str, stream: TextIO | None = None) -> None:
        self.total, self.what, self.done = max(total, 1), what, 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.monotonic()
        self._tenth = 0

    @classmethod
    def over(cls, items: Iterable[T], what: str, total: int | None = None) -> Iterator[T]:
        """``items``, reporting progress as they are consumed."""
        items = list(items) if total is None else items
        bar = cls(len(items) if total is None else total, what)
        for item in items:
            yield item
            bar.advance()
        bar.close()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.tty:
            filled = 30 * self.done // self.total
            self.stream.write(f"\r{self.what} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
                              f"{time.monotonic() - self.t0:.0f}s")
            self.stream.flush()
        elif 10 * self.done // self.total > self._tenth:
            self._tenth = 10 * self.done // self.total
            log.info("%s: %d/%d (%d%%), %.1f s", self.what, self.done, self.total, 100 * self.done // self.total,
                     time.monotonic() - self.t0)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
