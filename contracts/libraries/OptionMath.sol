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
        returns (uint256 result)
    {
        bool outside;
        /// @solidity memory-safe-assembly
        assembly {
            // One test for the whole domain: spot - 1 and strike - 1 wrap to 2^256 - 1 at zero; |type(int256).min|
            // is 2^255.
            let am := lnMoneyness
            if slt(am, 0) { am := sub(0, am) }
            outside := iszero(iszero(shr(128, or(or(sub(spot, 1), sub(strike, 1)), or(stdDev, am)))))
        }
        if (outside) revert OptionOutOfDomain(spot, strike, lnMoneyness, stdDev);
        // One block of assembly for the whole valuation (it runs about a hundred times per margin check): the same
        // operations, in the same order, as `_callRaw`, `_cdfPair`, `_tail` and solady's expWad, without the calls.
        /// @solidity memory-safe-assembly
        assembly {
            // solady FixedPointMathLib.expWad (0.1.26) for x in (-41.4e18, 0]: the caller's -floor(a^2 / 2) with
            // a < 8.8e18 is >= -38.72e18, so neither of expWad's range checks can apply.
            function expNeg(x) -> r {
                x := sdiv(shl(78, x), 3814697265625) // (x << 78) / 5^18
                let k := sar(96, add(sdiv(shl(96, x), 54916777467707473351141471128), shl(95, 1)))
                x := sub(x, mul(k, 54916777467707473351141471128))
                let y := add(x, 1346386616545796478920950773328)
                y := add(sar(96, mul(y, x)), 57155421227552351082224309758442)
                let p := sub(add(y, x), 94201549194550492254356042504812)
                p := add(sar(96, mul(p, y)), 28719021644029726153956944680412240)
                p := add(mul(p, x), shl(96, 4385272521454847904659076985693276))
                let q := sub(x, 2855989394907223263936484059900)
                q := add(sar(96, mul(q, x)), 50020603652535783019961831881945)
                q := sub(sar(96, mul(q, x)), 533845033583426703283633433725380)
                q := add(sar(96, mul(q, x)), 3604857256930695427073651918091429)
                q := sub(sar(96, mul(q, x)), 14423608567350463180887372962807573)
                q := add(sar(96, mul(q, x)), 26449188498355588339934803723976023)
                r := shr(sub(195, k), mul(sdiv(p, q), 3822833074963236453042738258902158003155416615667))
            }
            // `_tail`: floor(e P(a) / Q(a))
            function tail(a, e) -> t {
                let w := 1000000000000000000
                let p := add(div(mul(P6, a), w), P5)
                p := add(div(mul(p, a), w), P4)
                p := add(div(mul(p, a), w), P3)
                p := add(div(mul(p, a), w), P2)
                p := add(div(mul(p, a), w), P1)
                p := add(div(mul(p, a), w), P0)
                let q := add(div(mul(Q7, a), w), Q6)
                q := add(div(mul(q, a), w), Q5)
                q := add(div(mul(q, a), w), Q4)
                q := add(div(mul(q, a), w), Q3)
                q := add(div(mul(q, a), w), Q2)
                q := add(div(mul(q, a), w), Q1)
                q := add(div(mul(q, a), w), Q0)
                t := div(mul(e, p), q)
            }
            let callValue := 0 // the intrinsic value, the lower bound
            if gt(spot, strike) { callValue := sub(spot, strike) }
            if stdDev {
                // `_callRaw` and `_cdfPair`: d1 = lnMoneyness * 1e18 / v (toward zero) + v / 2 (down), d2 = d1 - v;
                // the exp at the d nearer zero (near: d2 iff d1 + d2 >= 0), the other's from S exp(-d1^2/2) =
                // K exp(-d2^2/2), capped at 1e18
                let near := add(sdiv(mul(lnMoneyness, WAD), stdDev), shr(1, stdDev)) // d1
                let far := sub(near, stdDev) // d2
                let d2Near := iszero(slt(add(near, far), 0))
                if d2Near {
                    far := near
                    near := sub(near, stdDev)
                }
                let nNear := 0 // the tails first, turned into N below
                let nFar := 0
                {
                    let a := near
                    if slt(near, 0) { a := sub(0, near) }
                    if lt(a, NORM_CDF_CUT) {
                        let e := expNeg(sub(0, div(mul(a, a), 2000000000000000000)))
                        nNear := tail(a, e)
                        a := far
                        if slt(far, 0) { a := sub(0, far) }
                        if lt(a, NORM_CDF_CUT) {
                            switch d2Near
                            case 0 { e := div(mul(e, spot), strike) }
                            default { e := div(mul(e, strike), spot) }
                            if gt(e, WAD) { e := WAD }
                            nFar := tail(a, e)
                        }
                    }
                }
                if iszero(slt(near, 0)) { nNear := sub(WAD, nNear) } // a tail is at most 0.5e18
                if iszero(slt(far, 0)) { nFar := sub(WAD, nFar) }
                // (S N(d1) - K N(d2)) / 1e18 truncated toward zero, then clamped to [intrinsic, S]
                switch d2Near
                case 0 { near := sdiv(sub(mul(spot, nNear), mul(strike, nFar)), WAD) }
                default { near := sdiv(sub(mul(spot, nFar), mul(strike, nNear)), WAD) }
                if sgt(near, callValue) {
                    callValue := near
                    if sgt(near, spot) { callValue := spot }
                }
            }
            // call >= S - K and call + K <= S + K < 2^129: no wrap.
            result := callValue
            if iszero(isCall) { result := sub(add(callValue, strike), spot) }
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
    /// @dev S N(d1) - K N(d2), divided by 1e18 truncating toward zero (before the clamp), for 0 < v < 2^128 and
    ///      |lnMoneyness| < 2^128: |lnMoneyness * 1e18| < 2^188, so neither division can fail; S, K <= 2^128 and
    ///      N <= 1e18, so each product < 2^188.
    function _callRaw(uint256 spot, uint256 strike, int256 lnMoneyness, uint256 v) private pure returns (int256 c) {
        int256 d1;
        int256 d2;
        /// @solidity memory-safe-assembly
        assembly {
            d1 := add(sdiv(mul(lnMoneyness, WAD), v), shr(1, v)) // the quotient toward zero, v / 2 rounded down
            d2 := sub(d1, v)
        }
        uint256 n1;
        uint256 n2;
        // |d2| <= |d1| iff d1 + d2 >= 0 (as d1 - d2 = v > 0): the exp at the d nearer zero, and
        // exp(-d1^2/2) S = exp(-d2^2/2) K for the other one.
        unchecked {
            if (d1 + d2 >= 0) (n2, n1) = _cdfPair(d2, d1, strike, spot);
            else (n1, n2) = _cdfPair(d1, d2, spot, strike);
        }
        /// @solidity memory-safe-assembly
        assembly {
            c := sdiv(sub(mul(spot, n1), mul(strike, n2)), WAD)
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
        uint256 a;
        /// @solidity memory-safe-assembly
        assembly {
            a := near
            if slt(near, 0) { a := sub(0, near) }
        }
        if (a < NORM_CDF_CUT) {
            uint256 e = _expHalfSquare(a);
            nNear = _tail(a, e); // the tails first, turned into N below
            /// @solidity memory-safe-assembly
            assembly {
                a := far
                if slt(far, 0) { a := sub(0, far) }
                e := div(mul(e, num), den) // < 2^188, den > 0
                if gt(e, WAD) { e := WAD }
            }
            if (a < NORM_CDF_CUT) nFar = _tail(a, e);
        }
        /// @solidity memory-safe-assembly
        assembly {
            if iszero(slt(near, 0)) { nNear := sub(WAD, nNear) } // the tail is at most 0.5e18
            if iszero(slt(far, 0)) { nFar := sub(WAD, nFar) }
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
        /// @solidity memory-safe-assembly
        assembly {
            let w := 1000000000000000000 // WAD
            let p := add(div(mul(P6, a), w), P5)
            p := add(div(mul(p, a), w), P4)
            p := add(div(mul(p, a), w), P3)
            p := add(div(mul(p, a), w), P2)
            p := add(div(mul(p, a), w), P1)
            p := add(div(mul(p, a), w), P0)
            let q := add(div(mul(Q7, a), w), Q6)
            q := add(div(mul(q, a), w), Q5)
            q := add(div(mul(q, a), w), Q4)
            q := add(div(mul(q, a), w), Q3)
            q := add(div(mul(q, a), w), Q2)
            q := add(div(mul(q, a), w), Q1)
            q := add(div(mul(q, a), w), Q0)
            t := div(mul(e, p), q)
        }
    }

    /// @dev |x| as uint256 (2^255 for type(int256).min).
    function _abs(int256 x) private pure returns (uint256) {
        unchecked {
            return x < 0 ? uint256(-x) : uint256(x);
        }
    }
}
