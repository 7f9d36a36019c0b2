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
    /// @dev The at-the-money call of `price` with S = K = 1e18 and stdDev 2|x| has d1 = |x|, d2 = -|x|: both tails
    ///      are the one tail t = N(-|x|) (one exp, the same Horner steps), and the call is exactly 1e18 - 2t, so
    ///      N(|x|) = (1e18 + call) / 2 with no rounding: one implementation of the tail serves both.
    function normCdf(int256 x) internal pure returns (uint256) {
        uint256 a = x < 0 ? uint256(-(x + 1)) + 1 : uint256(x);
        uint256 upper = WAD; // N(|x|)
        if (a < NORM_CDF_CUT) upper = (WAD + price(true, WAD, WAD, 0, 2 * a)) / 2;
        return x < 0 ? WAD - upper : upper;
    }

    /// @notice Black-Scholes value of one unit (zero rate, forward = spot), WAD USD:
    ///         call = S N(d1) - K N(d2), put = call - S + K (parity), d1 = lnMoneyness / sigmaRootT + sigmaRootT / 2,
    ///         d2 = d1 - sigmaRootT; the quotient truncated toward zero, the half rounded down; the call rounded down.
    ///         sigmaRootT == 0 gives the intrinsic value. The result is clamped to the no-arbitrage bounds: call in
    ///         [max(S - K, 0), S], put in [max(K - S, 0), K]. |error| <= 1e-16 * (S + K) + 1 wei.
    /// @param lnMoneyness ln(spot / strike), WAD, e.g. `lnWad(spot) - lnWad(strike)`: it must agree with spot and
    ///        strike (within rounding), since the second Gaussian density is derived from S / K.
    /// @param sigmaRootT sigma * sqrt(T), WAD (`stdDev(sigmaWad, seconds)`).
    /// @dev Domain: 0 < spot, strike <= 2^128 and |lnMoneyness|, sigmaRootT < 2^128 (else OptionOutOfDomain). The
    ///      realistic range (spot, strike in [1e12, 1e30], |lnMoneyness| <= 20e18, sigmaRootT <= 10e18) is far inside;
    ///      deep in or out of the money N saturates at 0 or 1 and the value tends to the intrinsic one.
    function price(bool isCall, uint256 spot, uint256 strike, int256 lnMoneyness, uint256 sigmaRootT)
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
            outside := iszero(iszero(shr(128, or(or(sub(spot, 1), sub(strike, 1)), or(sigmaRootT, am)))))
        }
        if (outside) revert OptionOutOfDomain(spot, strike, lnMoneyness, sigmaRootT);
        // One block of assembly for the whole valuation (it runs about a hundred times per margin check).
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
            // The tail N(-a) for a < NORM_CDF_CUT and e = exp(-a^2/2) <= 1e18: floor(e P(a) / Q(a)), Horner with
            // each step rounded down. Bounds at a < 8.8e18: P < 2^137, Q < 2^142, P a < 2^200, Q a < 2^204,
            // e P < 2^197, Q >= 440e36 > 0; P / Q <= 1/2, so t <= 0.5e18.
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
            if sigmaRootT {
                // d1 = lnMoneyness * 1e18 / v (toward zero) + v / 2 (down), d2 = d1 - v; |lnMoneyness * 1e18| <
                // 2^188 and v > 0, so neither division fails. The exp at the d nearer zero (near: d2 iff d1 + d2 >= 0,
                // as d1 - d2 = v > 0), the other's from S exp(-d1^2/2) = K exp(-d2^2/2), capped at 1e18 (the cap
                // applies only when lnMoneyness disagrees with S / K); each product S N, K N < 2^188
                let near := add(sdiv(mul(lnMoneyness, WAD), sigmaRootT), shr(1, sigmaRootT)) // d1
                let far := sub(near, sigmaRootT) // d2
                let d2Near := iszero(slt(add(near, far), 0))
                if d2Near {
                    far := near
                    near := sub(near, sigmaRootT)
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
}
