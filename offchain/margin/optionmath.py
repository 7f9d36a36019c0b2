"""Exact integer mirror of ``contracts/libraries/OptionMath.sol`` (Black-Scholes, zero rate) and its float twin.

Units follow the contract: every value is 1e18 fixed point (WAD). Prices are USD per unit of the underlying,
``ln_moneyness = ln(spot / strike)`` and ``std_dev = sigma * sqrt(T)`` (T in years of 365 days).

The integer functions (:func:`ln_wad`, :func:`exp_wad`, :func:`sqrt`, :func:`norm_cdf`, :func:`price`,
:func:`std_dev`) reproduce the Solidity bit for bit: same order of operations, same roundings (signed ``/`` and
``sdiv`` truncate toward zero, ``>>``/``sar`` on signed values floor). ``exp_wad``, ``ln_wad`` and ``sqrt`` are
ports of solady's ``FixedPointMathLib`` (0.1.26).

Domain (outside it the contract reverts with the named error and these functions raise
:class:`OptionMathDomainError` carrying the same values):

- ``price``: 0 < spot, strike <= 2**128 and |ln_moneyness|, std_dev < 2**128 (``OptionOutOfDomain``). The realistic
  range (spot, strike in [1e12, 1e30], |ln_moneyness| <= 20e18, std_dev <= 10e18) is far inside.
- ``norm_cdf``: every int256; |x| >= 8.8e18 saturates to 0 or 1e18 (the value computed there is 0 anyway).
- ``ln_wad``: 0 < x < 2**255 (``LnOutOfDomain``).
- ``std_dev``: sigma < 2**96, seconds < 2**48 (``StdDevOutOfDomain``).

Error bounds, measured against a 50-digit reference (``decimal``) and scipy's ``ndtr`` (float64) over a dense grid
and random points by ``.venv/bin/python scripts/bench/option_math_accuracy.py`` (see ``docs/option-math.md``):

- ``norm_cdf``: absolute error <= 1e-16 (NORM_CDF_ERROR_BOUND; measured 4.2e-17).
- ``price``: absolute error <= 1e-16 * (spot + strike) + 1 wei (PRICE_ERROR_BOUND_REL; measured 3.9e-17 beyond the
  last wei).

Properties that hold exactly: ``norm_cdf(x) + norm_cdf(-x) == 1e18``, ``norm_cdf`` is non-decreasing, put-call
parity ``call - put == spot - strike``, and the price lies within the no-arbitrage bounds.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

WAD = 10**18
SECONDS_PER_YEAR = 31_536_000  # 365 days
MASK256 = 2**256 - 1
INT256_MAX = 2**255 - 1

# Beyond |x| >= NORM_CDF_CUT the tail e^{-x^2/2} P(x)/Q(x) computes to 0: N saturates at 0 or 1e18.
NORM_CDF_CUT = 8_800_000_000_000_000_000
DOMAIN_BITS = 128  # price: spot - 1, strike - 1, |ln_moneyness|, std_dev below 2**128
SIGMA_BITS = 96
SECONDS_BITS = 48

NORM_CDF_ERROR_BOUND = 1e-16  # absolute, on N in [0, 1]
PRICE_ERROR_BOUND_REL = 1e-16  # times (spot + strike), plus 1 wei

# Hart (1968) rational approximation, as in G. West, "Better approximations to cumulative normal functions"
# (2005): N(-x) = exp(-x^2/2) P(x) / Q(x) for x >= 0. Coefficients at 1e36 scale, highest degree first.
_P = (
    35_262_496_599_891_100_000_000_000_000_000_000,
    700_383_064_443_688_000_000_000_000_000_000_000,
    6_373_962_203_531_650_000_000_000_000_000_000_000,
    33_912_866_078_383_000_000_000_000_000_000_000_000,
    112_079_291_497_871_000_000_000_000_000_000_000_000,
    221_213_596_169_931_000_000_000_000_000_000_000_000,
    220_206_867_912_376_000_000_000_000_000_000_000_000,
)
_Q = (
    88_388_347_648_318_400_000_000_000_000_000_000,
    1_755_667_163_182_640_000_000_000_000_000_000_000,
    16_064_177_579_207_000_000_000_000_000_000_000_000,
    86_780_732_202_946_100_000_000_000_000_000_000_000,
    296_564_248_779_674_000_000_000_000_000_000_000_000,
    637_333_633_378_831_000_000_000_000_000_000_000_000,
    793_826_512_519_948_000_000_000_000_000_000_000_000,
    440_413_735_824_752_000_000_000_000_000_000_000_000,
)


class OptionMathDomainError(ValueError):
    """An input outside the domain the contract accepts: the contract reverts with ``error`` on the same input."""

    def __init__(self, error: str, *values: int) -> None:
        super().__init__(f"{error}({', '.join(str(v) for v in values)})")
        self.error = error
        self.values = values


class ExpOverflow(ArithmeticError):
    """solady ``ExpOverflow()``: exp_wad of x >= 135.3e18."""


# ---------------------------------------------------------------------------------------------- EVM integer helpers
def _sdiv(a: int, b: int) -> int:
    """Signed division truncated toward zero (Solidity ``/`` on ints, EVM ``sdiv``); b != 0."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _div(a: int, b: int) -> int:
    """EVM ``div`` on uint256: floor(a / b), and 0 when b == 0."""
    return a // b if b else 0


def _byte(n: int, v: int) -> int:
    """EVM ``byte(n, v)``: the n-th byte of the 256-bit word v, counted from the most significant."""
    return (v >> (8 * (31 - n))) & 0xFF if n < 32 else 0


# ---------------------------------------------------------------------------------------------- solady ports
def exp_wad(x: int) -> int:
    """solady ``expWad``: exp(x) in WAD for a WAD x (0 for x <= -41.45e18; monotonically increasing)."""
    if x <= -41446531673892822313:
        return 0
    if x >= 135305999368893231589:
        raise ExpOverflow(x)
    x = _sdiv(x << 78, 5**18)
    k = (_sdiv(x << 96, 54916777467707473351141471128) + 2**95) >> 96
    x = x - k * 54916777467707473351141471128
    y = x + 1346386616545796478920950773328
    y = ((y * x) >> 96) + 57155421227552351082224309758442
    p = y + x - 94201549194550492254356042504812
    p = ((p * y) >> 96) + 28719021644029726153956944680412240
    p = p * x + (4385272521454847904659076985693276 << 96)
    q = x - 2855989394907223263936484059900
    q = ((q * x) >> 96) + 50020603652535783019961831881945
    q = ((q * x) >> 96) - 533845033583426703283633433725380
    q = ((q * x) >> 96) + 3604857256930695427073651918091429
    q = ((q * x) >> 96) - 14423608567350463180887372962807573
    q = ((q * x) >> 96) + 26449188498355588339934803723976023
    r = _sdiv(p, q)
    return ((r * 3822833074963236453042738258902158003155416615667) & MASK256) >> (195 - k)


def _ln_wad_solady(x: int) -> int:
    """solady ``lnWad`` for 0 < x < 2**255: ln(x) in WAD (monotonically increasing)."""
    r = int(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF < x) << 7
    r |= int(0xFFFFFFFFFFFFFFFF < (x >> r)) << 6
    r |= int(0xFFFFFFFF < (x >> r)) << 5
    r |= int(0xFFFF < (x >> r)) << 4
    r |= int(0xFF < (x >> r)) << 3
    r ^= _byte(
        0x1F & (0x8421084210842108CC6318C6DB6D54BE >> (x >> r)),
        0xF8F9F9FAF9FDFAFBF9FDFCFDFAFBFCFEF9FAFDFAFCFCFBFEFAFAFCFBFFFFFFFF,
    )
    x = ((x << r) & MASK256) >> 159  # r = 255 - log2(x): the top bit lands on bit 255, no bit is lost
    p = (((((3273285459638523848632254066296 + x) * x) >> 96) + 24828157081833163892658089445524) * x) >> 96
    p = (((p + 43456485725739037958740375743393) * x) >> 96) - 11111509109440967052023855526967
    p = ((p * x) >> 96) - 45023709667254063763336534515857
    p = ((p * x) >> 96) - 14706773417378608786704636184526
    p = p * x - (795164235651350426258249787498 << 96)
    q = 5573035233440673466300451813936 + x
    q = 71694874799317883764090561454958 + ((x * q) >> 96)
    q = 283447036172924575727196451306956 + ((x * q) >> 96)
    q = 401686690394027663651624208769553 + ((x * q) >> 96)
    q = 204048457590392012362485061816622 + ((x * q) >> 96)
    q = 31853899698501571402653359427138 + ((x * q) >> 96)
    q = 909429971244387300277376558375 + ((x * q) >> 96)
    p = _sdiv(p, q)
    p = 1677202110996718588342820967067443963516166 * p
    p = 16597577552685614221487285958193947469193820559219878177908093499208371 * (159 - r) + p
    p = 600920179829731861736702779321621459595472258049074101567377883020018308 + p
    return p >> 174


def sqrt(x: int) -> int:
    """solady ``sqrt``: floor(sqrt(x)) for a uint256 x (Babylonian method, seven steps from a table estimate)."""
    z = 181
    r = int(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF < x) << 7
    r |= int(0xFFFFFFFFFFFFFFFFFF < (x >> r)) << 6
    r |= int(0xFFFFFFFFFF < (x >> r)) << 5
    r |= int(0xFFFFFF < (x >> r)) << 4
    z <<= r >> 1
    z = (z * ((x >> r) + 65536)) >> 18
    for _ in range(7):
        z = (z + _div(x, z)) >> 1
    return z - int(_div(x, z) < z)


# ---------------------------------------------------------------------------------------------- OptionMath
def ln_wad(x: int) -> int:
    """``OptionMath.lnWad``: ln(x) in WAD of a WAD 0 < x < 2**255 (solady lnWad)."""
    if not 0 < x <= INT256_MAX:
        raise OptionMathDomainError("LnOutOfDomain", x)
    return _ln_wad_solady(x)


def std_dev(sigma_wad: int, seconds_to_expiry: int) -> int:
    """``OptionMath.stdDev``: floor(sigma * sqrt(seconds / 365 days)) in WAD, the exact floor (one sqrt of
    floor(sigma^2 * seconds / year)); 0 when seconds == 0."""
    if sigma_wad >> SIGMA_BITS or seconds_to_expiry >> SECONDS_BITS:
        raise OptionMathDomainError("StdDevOutOfDomain", sigma_wad, seconds_to_expiry)
    return sqrt(sigma_wad * sigma_wad * seconds_to_expiry // SECONDS_PER_YEAR)


def _rational(a: int) -> Tuple[int, int]:
    """P(a), Q(a) at 1e36 scale for a WAD 0 <= a < NORM_CDF_CUT (Horner, each step rounded down)."""
    p = _P[0]
    for c in _P[1:]:
        p = p * a // WAD + c
    q = _Q[0]
    for c in _Q[1:]:
        q = q * a // WAD + c
    return p, q


def _tail(a: int, e: int) -> int:
    """floor(e * P(a) / Q(a)): N(-a) in WAD for a WAD 0 <= a < NORM_CDF_CUT, with e = exp(-a^2/2) in WAD."""
    p, q = _rational(a)
    return e * p // q


def _half_square(a: int) -> int:
    """floor(a^2 / 2) in WAD."""
    return a * a // (2 * WAD)


def norm_cdf(x: int) -> int:
    """``OptionMath.normCdf``: N(x) in WAD for a WAD x (any int256). N(x) + N(-x) == 1e18 exactly."""
    a = abs(x)
    t = 0 if a >= NORM_CDF_CUT else _tail(a, exp_wad(-_half_square(a)))
    return WAD - t if x >= 0 else t


def price(is_call: bool, spot: int, strike: int, ln_moneyness: int, std_dev: int) -> int:
    """``OptionMath.price``: Black-Scholes value of one unit, zero rate, in WAD, clamped to the no-arbitrage bounds.

    d1 = ln_moneyness / std_dev + std_dev / 2 (the quotient truncated toward zero, the half rounded down),
    d2 = d1 - std_dev. One exp serves both tails: the one at the d nearer zero is exp(-d^2/2) and the other follows
    from phi(d1) S = phi(d2) K. The call is floor((S N(d1) - K N(d2)) / 1e18) clamped to [max(S - K, 0), S]; the put
    is call + K - S (parity holds exactly).
    """
    abs_ln = abs(ln_moneyness)
    if (((spot - 1) & MASK256) | ((strike - 1) & MASK256) | std_dev | abs_ln) >> DOMAIN_BITS:
        raise OptionMathDomainError("OptionOutOfDomain", spot, strike, ln_moneyness, std_dev)
    intrinsic = spot - strike if spot > strike else 0
    if std_dev == 0:
        call = intrinsic
    else:
        d1 = _sdiv(ln_moneyness * WAD, std_dev) + std_dev // 2
        d2 = d1 - std_dev
        if d1 + d2 >= 0:  # |d2| <= |d1|: the exp at d2, phi(d1) = phi(d2) K / S
            near, far, num, den = d2, d1, strike, spot
        else:
            near, far, num, den = d1, d2, spot, strike
        a_near, a_far = abs(near), abs(far)
        t_near = t_far = 0
        if a_near < NORM_CDF_CUT:
            e_near = exp_wad(-_half_square(a_near))
            t_near = _tail(a_near, e_near)
            if a_far < NORM_CDF_CUT:  # capped at 1e18 (reached only if ln_moneyness disagrees with S / K)
                t_far = _tail(a_far, min(e_near * num // den, WAD))
        n_near = WAD - t_near if near >= 0 else t_near
        n_far = WAD - t_far if far >= 0 else t_far
        n1, n2 = (n_far, n_near) if d1 + d2 >= 0 else (n_near, n_far)
        call = _sdiv(spot * n1 - strike * n2, WAD)
        call = min(max(call, intrinsic), spot)
    return call if is_call else call + strike - spot


# ---------------------------------------------------------------------------------------------- float (numpy)
def _d1(spot: np.ndarray, strike: np.ndarray, std_dev: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(spot / strike) / std_dev + std_dev / 2


def price_np(is_call: ArrayLike, spot: ArrayLike, strike: ArrayLike, std_dev: ArrayLike) -> np.ndarray:
    """Black-Scholes value (zero rate) in float64, broadcast over arrays. Prices in any unit (the same for spot
    and strike); ``std_dev`` = sigma sqrt(T) as a fraction. ``std_dev == 0`` gives the intrinsic value."""
    is_call, spot, strike, v = (np.asarray(a) for a in (is_call, spot, strike, std_dev))
    v = v.astype(float)
    d1 = _d1(spot, strike, v)
    call = spot * ndtr(d1) - strike * ndtr(d1 - v)
    call = np.where(v > 0, call, np.maximum(spot - strike, 0.0))
    return np.where(is_call, call, call - spot + strike)


def delta_np(is_call: ArrayLike, spot: ArrayLike, strike: ArrayLike, std_dev: ArrayLike) -> np.ndarray:
    """dV/dS: N(d1) for a call, N(d1) - 1 for a put (the intrinsic delta when std_dev == 0)."""
    is_call, spot, strike, v = (np.asarray(a) for a in (is_call, spot, strike, std_dev))
    d1 = _d1(spot, strike, v.astype(float))
    n1 = np.where(v > 0, ndtr(np.nan_to_num(d1)), (spot > strike).astype(float))
    return np.where(is_call, n1, n1 - 1.0)


def _phi(d: np.ndarray) -> np.ndarray:
    """The standard normal density; d = +-inf or nan (std_dev == 0) gives 0 (phi(40) is 0 in float64)."""
    d = np.clip(np.nan_to_num(d, nan=40.0), -40.0, 40.0)
    return np.exp(-0.5 * d * d) / np.sqrt(2 * np.pi)


def gamma_np(spot: ArrayLike, strike: ArrayLike, std_dev: ArrayLike) -> np.ndarray:
    """d2V/dS2 = phi(d1) / (S std_dev), the same for calls and puts (0 when std_dev == 0)."""
    spot, strike, v = (np.asarray(a, dtype=float) for a in (spot, strike, std_dev))
    with np.errstate(divide="ignore", invalid="ignore"):
        g = _phi(_d1(spot, strike, v)) / (spot * v)
    return np.where(v > 0, g, 0.0)


def vega_np(spot: ArrayLike, strike: ArrayLike, std_dev: ArrayLike, t_years: ArrayLike) -> np.ndarray:
    """dV/dsigma = S phi(d1) sqrt(T), per unit of sigma (1.0 = 100 volatility points); calls and puts alike."""
    spot, strike, v, t = (np.asarray(a, dtype=float) for a in (spot, strike, std_dev, t_years))
    return np.where(v > 0, spot * _phi(_d1(spot, strike, v)) * np.sqrt(t), 0.0)


def theta_np(spot: ArrayLike, strike: ArrayLike, std_dev: ArrayLike, t_years: ArrayLike) -> np.ndarray:
    """dV/dt per year at zero rate: -S phi(d1) sigma / (2 sqrt(T)) = -S phi(d1) std_dev / (2 T); calls and puts
    alike (parity: their difference S - K does not decay)."""
    spot, strike, v, t = (np.asarray(a, dtype=float) for a in (spot, strike, std_dev, t_years))
    with np.errstate(divide="ignore", invalid="ignore"):
        th = -spot * _phi(_d1(spot, strike, v)) * v / (2 * t)
    return np.where((v > 0) & (t > 0), th, 0.0)
