"""Measured error of the option pricing library (``OptionMath.sol``, mirrored bit for bit by
``offchain.margin.optionmath``) against a 50-digit reference and against scipy (float64).

    .venv/bin/python scripts/bench/option_math_accuracy.py                 # the full grid (about a minute)
    OPTION_MATH_POINTS=2000 .venv/bin/python scripts/bench/option_math_accuracy.py   # fewer random points

The reference N(x) is the series 1/2 + phi(x) sum x^(2n+1) / (2n+1)!! in ``decimal`` at 80 digits (exact to far
below 1e-40 for |x| <= 10). Points:

- ``normCdf``: x on a grid of step 1e-3 over [-10, 10] and random x (uniform on [-10, 10] and near 0).
- ``price``: calls and puts on a grid of ln(S/K) in [-3, 3] (step 0.05) times std_dev in {0.001 .. 10} at S = 1, and
  random spot and strike in [1e-6, 1e12] USD (log-uniform, |ln(S/K)| <= 20) with std_dev log-uniform in
  [1e-6, 10]. ln(S/K) is given to the library as ``lnWad(S) - lnWad(K)``, as a caller computes it.

Prints the maximum absolute error of normCdf (in units of 1, i.e. 1e18 WAD) and of price relative to (S + K), the
latter also beyond the last wei (the final rounding, which dominates at the smallest prices). Exits 1 if a bound of
``offchain.margin.optionmath`` is exceeded.
"""
from __future__ import annotations

import json
import logging
import os
import random
import sys
from decimal import Decimal, getcontext
from pathlib import Path

import numpy as np
from scipy.special import ndtr

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from offchain.margin import optionmath as om  # noqa: E402

log = logging.getLogger("option_math_accuracy")
WAD = 10**18
getcontext().prec = 80
_D_WAD = Decimal(WAD)


def _pi() -> Decimal:
    """pi to the context precision (Machin's formula)."""

    def arctan_inv(n: int) -> Decimal:
        x, n2, total, k, term = Decimal(1) / n, n * n, Decimal(0), 0, Decimal(1) / n
        while term != 0:
            total += term / (2 * k + 1) * (1 if k % 2 == 0 else -1)
            term /= n2
            k += 1
        return total

    return 16 * arctan_inv(5) - 4 * arctan_inv(239)


_INV_SQRT_2PI = 1 / (2 * _pi()).sqrt()


def norm_cdf_reference(x: Decimal) -> Decimal:
    """N(x) to ~70 digits for |x| <= 10."""
    term, total, n = x, x, 0
    x2 = x * x
    while abs(term) > Decimal("1e-75"):
        n += 1
        term = term * x2 / (2 * n + 1)
        total += term
    return Decimal("0.5") + _INV_SQRT_2PI * (-x2 / 2).exp() * total


def price_reference(is_call: bool, spot: int, strike: int, std_dev: int) -> Decimal:
    """Black-Scholes value in WAD (Decimal) of the exact inputs: ln(S/K) exact, std_dev as given."""
    s, k, v = Decimal(spot), Decimal(strike), Decimal(std_dev) / _D_WAD
    if v == 0:
        call = max(s - k, Decimal(0))
    else:
        d1 = (s / k).ln() / v + v / 2
        d2 = d1 - v
        n1 = norm_cdf_reference(d1) if abs(d1) < 12 else Decimal(int(d1 > 0))
        n2 = norm_cdf_reference(d2) if abs(d2) < 12 else Decimal(int(d2 > 0))
        call = s * n1 - k * n2
    return call if is_call else call - s + k


def _cdf_points(rng: random.Random, n_random: int) -> list[int]:
    grid = [i * 10**15 for i in range(-10_000, 10_001)]
    rand = [rng.randrange(-10 * WAD, 10 * WAD) for _ in range(n_random)]
    near0 = [rng.randrange(-10**16, 10**16) for _ in range(n_random // 4)]
    return grid + rand + near0


def _price_points(rng: random.Random, n_random: int) -> list[tuple[bool, int, int, int]]:
    pts = []
    for i in range(-60, 61):
        strike = int(Decimal(WAD) / (Decimal(i) / 20).exp())  # ln(S/K) = i/20 at S = 1
        for v in (10**15, 10**16, 5 * 10**16, 10**17, 3 * 10**17, 10**18, 2 * 10**18, 5 * 10**18, 10 * 10**18):
            pts += [(True, WAD, strike, v), (False, WAD, strike, v)]
    while len(pts) < 2 * 121 * 9 + n_random:
        spot = int(10 ** rng.uniform(12, 30))
        strike = int(spot * np.exp(rng.uniform(-20, 20)))
        if not 10**12 <= strike <= 10**30:
            continue
        v = int(10 ** rng.uniform(12, 19))
        pts.append((rng.random() < 0.5, spot, strike, v))
    return pts


def measure(n_random: int = 20_000, seed: int = 20240601) -> dict:
    """The maximum errors of normCdf and price over the grid and n_random random points (seeded)."""
    rng = random.Random(seed)
    xs = _cdf_points(rng, n_random)
    got = np.array([om.norm_cdf(x) for x in xs], dtype=object)
    ref = [norm_cdf_reference(Decimal(x) / _D_WAD) for x in xs]
    err = [abs(Decimal(int(g)) / _D_WAD - r) for g, r in zip(got, ref)]
    i = max(range(len(xs)), key=err.__getitem__)
    scipy_err = np.abs(np.array([int(g) for g in got], dtype=float) / 1e18 - ndtr(np.array(xs, dtype=float) / 1e18))
    scipy_vs_ref = max(abs(Decimal(float(ndtr(x / 1e18))) - r) for x, r in zip(xs[::7], ref[::7]))
    cdf = {"points": len(xs), "max_abs_error": float(err[i]), "at_x": xs[i] / 1e18,
           "max_abs_error_vs_scipy_float64": float(scipy_err.max()), "scipy_float64_vs_reference": float(scipy_vs_ref)}
    log.info("normCdf: %d points, max |error| %.3g at x = %.6f (vs scipy float64: %.3g)", len(xs),
             cdf["max_abs_error"], cdf["at_x"], cdf["max_abs_error_vs_scipy_float64"])

    pts = _price_points(rng, n_random)
    worst, worst_at, worst_scipy, worst_wei, worst_beyond = Decimal(0), None, 0.0, Decimal(0), Decimal(0)
    for is_call, spot, strike, v in pts:
        ln_m = om.ln_wad(spot) - om.ln_wad(strike)
        got_p = om.price(is_call, spot, strike, ln_m, v)
        e = abs(Decimal(got_p) - price_reference(is_call, spot, strike, v))
        rel = e / (spot + strike)
        worst_wei = max(worst_wei, e)
        worst_beyond = max(worst_beyond, max(e - 1, Decimal(0)) / (spot + strike))
        if rel > worst:
            worst, worst_at = rel, (is_call, spot, strike, v)
        f = float(om.price_np(is_call, spot / 1e18, strike / 1e18, v / 1e18))
        worst_scipy = max(worst_scipy, abs(got_p / 1e18 - f) / ((spot + strike) / 1e18))
    prc = {"points": len(pts), "max_error_over_s_plus_k": float(worst), "at": list(worst_at),
           "max_error_wei": float(worst_wei), "max_error_beyond_1_wei_over_s_plus_k": float(worst_beyond),
           "max_error_over_s_plus_k_vs_scipy_float64": worst_scipy}
    log.info("price: %d points, max |error| / (S + K) %.3g at %s; max |error| %.3g wei; beyond 1 wei: %.3g (S + K);"
             " vs scipy float64: %.3g", len(pts), prc["max_error_over_s_plus_k"], worst_at, worst_wei,
             worst_beyond, worst_scipy)
    return {"norm_cdf": cdf, "price": prc, "seed": seed, "random_points": n_random}


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(int(os.environ.get("OPTION_MATH_POINTS", "20000")))
    sys.stdout.write(json.dumps(result, indent=1) + "\n")
    ok = (result["norm_cdf"]["max_abs_error"] <= om.NORM_CDF_ERROR_BOUND
          and result["price"]["max_error_beyond_1_wei_over_s_plus_k"] <= om.PRICE_ERROR_BOUND_REL)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
