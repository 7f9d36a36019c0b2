"""Charts (PNG, matplotlib's Agg backend, no display needed): the backtest, the stress table, the cascade
distribution."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import optional


def _plt():
    optional("matplotlib", "charts (--plot)").use("Agg")
    return optional("matplotlib.pyplot", "charts (--plot)")


def backtest_chart(results: Sequence, path: Path | str, title: str = "Margin requirement backtest") -> Path:
    """One panel per :class:`~offchain.risk.backtest.BacktestResult`: daily loss, requirement, exceptions."""
    plt = _plt()
    fig, axes = plt.subplots(len(results), 1, figsize=(11, 3.2 * len(results)), squeeze=False)
    for ax, r in zip(axes[:, 0], results):
        x = np.arange(r.days)
        scale = np.abs(r.requirement).max() or 1.0
        ax.plot(x, r.losses / scale, lw=0.5, color="0.5", label="loss over the horizon")
        ax.plot(x, r.requirement / scale, lw=0.9, color="tab:blue", label="requirement (MM)")
        hit = r.hits.astype(bool)
        ax.scatter(x[hit], r.losses[hit] / scale, s=10, color="tab:red", zorder=3,
                   label=f"exceptions: {r.exceptions} (expected {r.expected:.1f})")
        ax.set_title(f"{r.name}: Kupiec p = {r.kupiec_p:.3f}, Christoffersen p = {r.christoffersen_p:.3f}, "
                     f"{r.traffic_light}", fontsize=9)
        ax.set_ylabel("x max requirement")
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def stress_chart(rows: Sequence[dict], path: Path | str, fund: float | None = None,
                 title: str = "Hypothetical stress: shortfall if nothing were liquidated first") -> Path:
    plt = _plt()
    names = [r["name"] for r in rows]
    short = np.array([r["shortfall"] for r in rows]) / 1e6
    liq = [r["liquidatable"] for r in rows]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    bars = ax.bar(names, short, color="tab:red")
    for b, n in zip(bars, liq):
        ax.annotate(f"{n} liq.", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom",
                    fontsize=7)
    if fund is not None:
        ax.axhline(fund / 1e6, color="k", ls="--", lw=0.8, label=f"insurance fund {fund / 1e6:.1f}M")
        ax.legend(fontsize=8)
    ax.set_ylabel("shortfall, million USD")
    ax.set_title(title, fontsize=10)
    plt.setp(ax.get_xticklabels(), rotation=40, ha="right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def cascade_chart(results: dict[str, np.ndarray], fund: float, path: Path | str,
                  title: str = "Cascade simulation: bad debt across runs",
                  ylabel: str = "bad debt, million USD (whiskers 5-95%)") -> Path:
    """Box plot of bad debt (or another USD figure, ``ylabel``) per scenario with the insurance fund as a line."""
    plt = _plt()
    names = list(results)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.boxplot([np.asarray(results[n]) / 1e6 for n in names], whis=(5, 95), showfliers=True)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.axhline(fund / 1e6, color="k", ls="--", lw=0.8, label=f"insurance fund {fund / 1e6:.1f}M")
    ax.set_ylabel(ylabel)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    plt.setp(ax.get_xticklabels(), rotation=35, ha="right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path | str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    _plt().close(fig)
    return p


def coverage_heatmap(rows: Sequence[dict], specs: Sequence[str], path: Path | str,
                     title: str = "One-day exception rate of MM on real daily prices (worst exchange per cell)") -> Path:
    """One panel per spec: groups x periods (whole history, then calendar years), coloured by the highest exception
    rate over the datasets, annotated in % with a cross where a row fails its test."""
    plt = _plt()
    groups = list(dict.fromkeys(r["group"] for r in rows))
    periods = ["whole"] + sorted({r["period"] for r in rows if r["period"] != "whole"})
    fig, axes = plt.subplots(1, len(specs), figsize=(4.2 * len(specs), 0.42 * len(groups) + 1.8), squeeze=False,
                             sharey=True)
    for ax, spec in zip(axes[0], specs):
        rate = np.full((len(groups), len(periods)), np.nan)
        fail = np.zeros_like(rate, dtype=bool)
        for r in rows:
            if r["spec"] != spec:
                continue
            i, j = groups.index(r["group"]), periods.index(r["period"])
            rate[i, j] = np.nanmax([rate[i, j], r["exception_rate"]])
            fail[i, j] |= not r["passes"]
        im = ax.imshow(np.minimum(rate * 100, 5.0), cmap="RdYlGn_r", vmin=0, vmax=5, aspect="auto")
        for i in range(len(groups)):
            for j in range(len(periods)):
                if np.isfinite(rate[i, j]):
                    ax.text(j, i, f"{rate[i, j] * 100:.1f}" + ("x" if fail[i, j] else ""), ha="center",
                            va="center", fontsize=6)
        ax.set_xticks(range(len(periods)), periods, rotation=45, fontsize=7)
        ax.set_yticks(range(len(groups)), groups, fontsize=7)
        ax.set_title(spec, fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="exception rate, % (capped at 5); x = row fails")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def requirement_paths(series: dict[str, tuple[Sequence[str], np.ndarray, dict[str, np.ndarray]]], path: Path | str,
                      title: str = "Daily loss against MM (1M USD per leg)") -> Path:
    """One panel per book: its daily loss (grey) and the MM of each spec (lines), dates on the x axis."""
    plt = _plt()
    fig, axes = plt.subplots(len(series), 1, figsize=(11, 2.8 * len(series)), squeeze=False)
    for ax, (name, (dates, loss, mms)) in zip(axes[:, 0], series.items()):
        x = np.array(dates, dtype="datetime64[D]")
        ax.plot(x, np.asarray(loss) / 1e4, lw=0.4, color="0.55", label="loss, % of a leg")
        for label, mm in mms.items():
            ax.plot(x, np.broadcast_to(mm, x.shape) / 1e4, lw=0.9, label=f"MM {label}")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("% of 1M")
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def option_efficiency_chart(kinds: Sequence[dict], path: Path | str,
                            title: str = "Option books: portfolio MM vs standard (Deribit) MM, % of the underlying "
                                         "notional") -> Path:
    """Grouped bars per (book kind, underlying): the average portfolio MM and the standard MM; hatched where the
    book's coverage fails (more than 1% exceptions on some exchange)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(13, 4.8))
    x = np.arange(len(kinds))
    pm = [k["mm_pct_avg"] for k in kinds]
    std = [k["standard_mm_pct_avg"] for k in kinds]
    bars = ax.bar(x - 0.2, pm, 0.4, color="tab:blue", label="portfolio MM (average over days, variants, exchanges)")
    ax.bar(x + 0.2, std, 0.4, color="0.6", label="standard MM (per position, no offsets)")
    for b, k in zip(bars, kinds):
        if not k["passes"]:
            b.set_hatch("//")
        label = "fails" if not k["passes"] else ("n/a" if k["saving_mm"] is None else f"{k['saving_mm']:+.0%}")
        ax.annotate(label, (b.get_x() + b.get_width(), max(b.get_height(), 0)), ha="center", va="bottom", fontsize=7,
                    xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{k['kind'].replace('_', ' ')}\n{k['underlying']}" for k in kinds], fontsize=6.5,
                       rotation=60, ha="right")
    ax.set_ylabel("% of notional")
    ax.set_title(title + " (label: saving)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
