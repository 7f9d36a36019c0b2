// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {FixedPointMathLib} from "solady/src/utils/FixedPointMathLib.sol";

/// @title OptionMath — Black-Scholes (zero rate, forward = spot) for European cash-settled options, in integers.
/// @notice Units: every value is 1e18 fixed point (WAD). Prices are USD per unit of the underlying; `lnMoneyness` is
///         ln(spot / strike); `stdDev` is sigma * sqrt(T), T in years of 365 days.
///
///         N(x) (Hart 1968, as in West 2005): for a = |x|, the tail N(-a) = exp(-a^2/2) * P(a) / Q(a), P of degree 6
///         and Q of degree 7 with positive coefficients; N(x) = 1 - N(-x) for x >= 0, so N(x) + N(-x) = 1e18 exactly.
///         |error| <= 1e-16 (measured 4.2e-17, `scripts/bench/option_math_accuracy.py`). The tail computes to 0 from
///         a = 8.7534e18 on: beyond NORM_CDF_CUT = 8.8e18 it is not evaluated (N saturates at 0 or 1e18).
///
///         Monotonicity: exp is solady's expWad (monotone); P/Q is strictly decreasing in a (every coefficient of
///         P'Q - PQ' is negative), by at least 0.11 a relative per unit of a on [0, 8.8], i.e. 1.1e-19 per wei of a,
///         while the rounding of the Horner steps (coefficients at 1e36 scale) moves P/Q by under 1e-32 relative.
///         So the computed tail is non-increasing in a and N is non-decreasing in x.
///
///         price: the call is floor((S N(d1) - K N(d2)) / 1e18) clamped to [max(S - K, 0), S]; the put is
///         call + K - S, so put-call parity `call - put == S - K` holds exactly and the put lies in [max(K - S, 0), K].
///         One exp serves both tails: at the d nearer zero exp(-d^2/2) is computed, and the other one follows from
///         exp(-d1^2/2) S = exp(-d2^2/2) K. |error| <= 1e-16 * (S + K) + 1 wei (measured 3.9e-17 * (S + K) beyond
///         the last wei's rounding).
library OptionMath {
    uint256 internal constant WAD = 1e18;
    uint256 internal constant SECONDS_PER_YEAR = 31_536_000; // 365 days
    /// @notice |x| from which N(x) saturates at 0 or 1e18 (the tail computes to 0 from 8.7534e18 on).
    uint256 internal constant NORM_CDF_CUT = 8.8e18;

    // Hart's coefficients at 1e36 scale: P(a) = sum P_i a^i, Q(a) = sum Q_i a^i (a as a fraction).
    uint256 private constant P6 = 0.0352624965998911e36;
    uint256 private constant P5 = 0.700383064443688e36;
    uint256 private constant P4 = 6.37396220353165e36;
    uint256 private constant P3 = 33.912866078383e36;
    uint256 private constant P2 = 112.079291497871e36;
    uint256 private constant P1 = 221.213596169931e36;
    uint256 private constant P0 = 220.206867912376e36;
    uint256 private constant Q7 = 0.0883883476483184e36;
    uint256 private constant Q6 = 1.75566716318264e36;
    uint256 private constant Q5 = 16.064177579207e36;
    uint256 private constant Q4 = 86.7807322029461e36;
    uint256 private constant Q3 = 296.564248779674e36;
    uint256 private constant Q2 = 637.333633378831e36;
    uint256 private constant Q1 = 793.826512519948e36;
    uint256 private constant Q0 = 440.413735824752e36;

    /// @notice `price` outside its domain: 0 < spot, strike <= 2^128, |lnMoneyness| < 2^128, stdDev < 2^128.
    error OptionOutOfDomain(uint256 spot, uint256 strike, int256 lnMoneyness, uint256 stdDev);
    /// @notice `lnWad` outside its domain 0 < x < 2^255.
    error LnOutOfDomain(uint256 x);
    /// @notice `stdDev` outside its domain sigmaWad < 2^96, secondsToExpiry < 2^48.
    error StdDevOutOfDomain(uint256 sigmaWad, uint256 secondsToExpiry);

    /// @notice Standard normal CDF N(x): x WAD (any int256), result WAD in [0, 1e18]; non-decreasing in x;
    ///         N(x) + N(-x) == 1e18 exactly. |error| <= 1e-16; |x| >= 8.8e18 gives exactly 0 or 1e18.
    function normCdf(int256 x) internal pure returns (uint256) {
        uint256 a = _abs(x);
        uint256 t;
        if (a < NORM_CDF_CUT) t = _tail(a, _expHalfSquare(a));
        unchecked {
            return x < 0 ? t : WAD - t; // t <= 0.5e18
        }
    }

    /// @notice Black-Scholes value of one unit (zero rate, forward = spot), WAD USD:
    ///         call = S N(d1) - K N(d2), put = call - S + K (parity), d1 = lnMoneyness / stdDev + stdDev / 2,
    ///         d2 = d1 - stdDev; the quotient truncated toward zero, the half rounded down; the call rounded down.
    ///         stdDev == 0 gives the intrinsic value. The result is clamped to the no-arbitrage bounds: call in
    ///         [max(S - K, 0), S], put in [max(K - S, 0), K]. |error| <= 1e-16 * (S + K) + 1 wei.
    /// @param lnMoneyness ln(spot / strike), WAD, e.g. `lnWad(spot) - lnWad(strike)`: it must agree with spot and
    ///        strike (within rounding), since the second Gaussian density is derived from S / K.
    /// @param stdDev sigma * sqrt(T), WAD (`stdDev(sigmaWad, seconds)`).
    /// @dev Domain: 0 < spot, strike <= 2^128 and |lnMoneyness|, stdDev < 2^128 (else OptionOutOfDomain). The
    ///      realistic range (spot, strike in [1e12, 1e30], |lnMoneyness| <= 20e18, stdDev <= 10e18) is far inside;
    ///      deep in or out of the money N saturates at 0 or 1 and the value tends to the intrinsic one.
    function price(bool isCall, uint256 spot, uint256 strike, int256 lnMoneyness, uint256 stdDev)
        internal
        pure
        returns (uint256)
    {
        unchecked {
            // One test for the whole domain: spot - 1 and strike - 1 wrap to 2^256 - 1 at zero.
            if (((spot - 1) | (strike - 1) | stdDev | _abs(lnMoneyness)) >> 128 != 0) {
                revert OptionOutOfDomain(spot, strike, lnMoneyness, stdDev);
            }
            uint256 call = spot > strike ? spot - strike : 0; // the intrinsic value, the lower bound
            if (stdDev != 0) {
                int256 c = _callRaw(spot, strike, lnMoneyness, int256(stdDev));
                if (c > int256(call)) call = c > int256(spot) ? spot : uint256(c);
            }
            // call >= S - K and call + K <= S + K < 2^129: no wrap.
            return isCall ? call : call + strike - spot;
        }
    }

    /// @notice ln(x) of a WAD 0 < x < 2^255, WAD (solady lnWad: the one ln callers share for lnMoneyness).
    function lnWad(uint256 x) internal pure returns (int256) {
        unchecked {
            if (x - 1 >= uint256(type(int256).max)) revert LnOutOfDomain(x);
        }
        return FixedPointMathLib.lnWad(int256(x));
    }

    /// @notice sigma * sqrt(T) in WAD, T = secondsToExpiry / 365 days, rounded down (the exact floor: one integer
    ///         square root of floor(sigma^2 * seconds / year)); 0 when secondsToExpiry == 0.
    /// @dev Domain: sigmaWad < 2^96 (7.9e10 = 7.9e12 %), secondsToExpiry < 2^48 (8.9 million years).
    function stdDev(uint256 sigmaWad, uint256 secondsToExpiry) internal pure returns (uint256) {
        if ((sigmaWad >> 96) | (secondsToExpiry >> 48) != 0) revert StdDevOutOfDomain(sigmaWad, secondsToExpiry);
        unchecked {
            return FixedPointMathLib.sqrt(sigmaWad * sigmaWad * secondsToExpiry / SECONDS_PER_YEAR); // < 2^240
        }
    }

    // ---------------------------------------------------------------- internals
    /// @dev S N(d1) - K N(d2), divided by 1e18 truncating toward zero (before the clamp), for 0 < v < 2^128.
    function _callRaw(uint256 spot, uint256 strike, int256 lnMoneyness, int256 v) private pure returns (int256) {
        unchecked {
            // |lnMoneyness * 1e18| < 2^188; v > 0, so neither division can fail.
            int256 d1 = lnMoneyness * int256(WAD) / v + v / 2;
            int256 d2 = d1 - v;
            uint256 n1;
            uint256 n2;
            // |d2| <= |d1| iff d1 + d2 >= 0 (as d1 - d2 = v > 0): the exp at the d nearer zero, and
            // exp(-d1^2/2) S = exp(-d2^2/2) K for the other one.
            if (d1 + d2 >= 0) (n2, n1) = _cdfPair(d2, d1, strike, spot);
            else (n1, n2) = _cdfPair(d1, d2, spot, strike);
            // S, K <= 2^128 and N <= 1e18: each product < 2^188.
            return (int256(spot * n1) - int256(strike * n2)) / int256(WAD);
        }
    }

    /// @dev N(near) and N(far) with one exp: exp(-far^2/2) = exp(-near^2/2) * num / den, |near| <= |far|,
    ///      num, den in (0, 2^128]. The derived exp is at most 1e18 when lnMoneyness agrees with S / K; capped there
    ///      otherwise.
    function _cdfPair(int256 near, int256 far, uint256 num, uint256 den)
        private
        pure
        returns (uint256 nNear, uint256 nFar)
    {
        unchecked {
            uint256 tNear;
            uint256 tFar;
            uint256 a = _abs(near);
            if (a < NORM_CDF_CUT) {
                uint256 e = _expHalfSquare(a);
                tNear = _tail(a, e);
                a = _abs(far);
                if (a < NORM_CDF_CUT) {
                    e = e * num / den; // < 2^188, den > 0
                    tFar = _tail(a, e > WAD ? WAD : e);
                }
            }
            nNear = near < 0 ? tNear : WAD - tNear;
            nFar = far < 0 ? tFar : WAD - tFar;
        }
    }

    /// @dev exp(-floor(a^2 / 2)) in WAD for a WAD a < NORM_CDF_CUT (the argument >= -38.72e18: no revert, >= 15 wei).
    function _expHalfSquare(uint256 a) private pure returns (uint256) {
        unchecked {
            return uint256(FixedPointMathLib.expWad(-int256(a * a / (2 * WAD))));
        }
    }

    /// @dev floor(e * P(a) / Q(a)): the tail N(-a) in WAD for a WAD a < NORM_CDF_CUT, e = exp(-a^2/2) <= 1e18.
    ///      Horner with each step rounded down; bounds at a < 8.8e18: P < 2^137, Q < 2^142, P a < 2^200,
    ///      Q a < 2^204, e P < 2^197, Q >= 440e36 > 0. P / Q <= 1/2, so the result is at most 0.5e18.
    function _tail(uint256 a, uint256 e) private pure returns (uint256 t) {
        unchecked {
            uint256 p = (P6 * a) / WAD + P5;
            p = (p * a) / WAD + P4;
            p = (p * a) / WAD + P3;
            p = (p * a) / WAD + P2;
            p = (p * a) / WAD + P1;
            p = (p * a) / WAD + P0;
            uint256 q = (Q7 * a) / WAD + Q6;
            q = (q * a) / WAD + Q5;
            q = (q * a) / WAD + Q4;
            q = (q * a) / WAD + Q3;
            q = (q * a) / WAD + Q2;
            q = (q * a) / WAD + Q1;
            q = (q * a) / WAD + Q0;
            /// @solidity memory-safe-assembly
            assembly {
                t := div(mul(e, p), q)
            }
        }
    }

    /// @dev |x| as uint256 (2^255 for type(int256).min).
    function _abs(int256 x) private pure returns (uint256) {
        unchecked {
            return x < 0 ? uint256(-x) : uint256(x);
        }
    }
}
