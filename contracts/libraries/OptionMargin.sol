// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {OptionMath} from "./OptionMath.sol";
import {PortfolioMargin} from "./PortfolioMargin.sol";
import {RiskConfig} from "./RiskConfig.sol";

/// @title OptionMargin — the option part of the portfolio margin, pure (docs/options.md is the specification).
/// @notice For the live options of an account, per asset a (N = n * 1e4, D_a the linear delta of the asset's
///         perpetuals and collateral): the options' value at the mark, and over the grid of spot points
///         S_x = floor(S (N + x RW_a) / N), x = -n..n, and volatility points down and up (as SPAN's scenarios) and
///         the base at x = 0 (the mark: loss 0) and at the ends x = +-n, the options' loss
///         L_a(x, j) = V(S, sigma) - V(S_x, sigma_j), every option revalued in full; the whole book's loss, scaled
///         by N:
///           T_a(x, j) = N L_a(x, j) - x RW_a D_a
///           scan_a    = max(0, ceil(max_{x,j} T_a(x, j) / N))          (the worst loss of the asset's book)
///           X_a       = T_a(-n, base) - T_a(+n, base)                   (its directional part, times 2N)
///           WS_a      = sign(X_a) min(ceil(|X_a| / 2N), scan_a)         (netted across assets like a delta)
///           B_a       = scan_a - |WS_a|                                 (what the scan adds beyond it)
///         and for each stress vector s the options' loss at the spot floor(S (1e4 + shock_sa) / 1e4) under the
///         volatility shock (down or up) that is worse at the grid point next to the shock, summed over assets. PortfolioMargin uses WS_a for these assets
///         and adds sum_a B_a and the short-option minimum to the maintenance margin: for one asset
///         |WS_a| + B_a = scan_a, for a linear book WS_a = ceil(RW_a |D_a| / 1e4) signed and B_a = 0 (as without
///         options).
library OptionMargin {
    using RiskConfig for uint256;

    uint256 internal constant WAD = 1e18;
    uint256 internal constant BPS = 1e4;
    /// @dev skew (bps) * |ln moneyness| (WAD) is scaled by 1e22 = 1e4 * 1e18.
    uint256 internal constant SKEW_ONE = 1e22;

    /// @notice One option position: its series and signed size (base units 1e18). `fixedPrice` != 0: the series is
    ///         fixed at that expiry price (worth its payoff, no risk left).
    struct Position {
        uint256 asset;
        bool isCall;
        uint256 strike; // USD 1e18
        uint256 expiry; // unix seconds
        uint256 fixedPrice; // USD 1e18, 0 until fixed
        int256 size;
    }

    /// @notice What the option part adds to an account's margin.
    struct Risk {
        int256 value; // sum of position values at the mark (part of equity)
        uint256 notional; // sum over live positions of |size| * spot (part of the gross a liquidation may take)
        int256[8] ws; // WS_a of the assets in `assets`
        uint256 curvature; // sum_a B_a
        uint256 shortMinimum; // M
        int256[16] stress; // the options' loss in each stress vector
        uint256 assets; // bit a: the account holds live options on asset a
    }

    /// @notice The market data the option part reads.
    struct Inputs {
        uint256[8] prices; // USD 1e18; assets with live options must be priced
        uint256[8] vols; // annualised volatility, WAD
        int256[8] delta; // D_a: the linear delta of perpetuals and collateral per asset (USD 1e18)
        uint256 global; // MARGIN word (risk weights, number of stress vectors)
        uint256[8] stress; // STRESS words
        uint256 options; // OPTION word
        uint256 time; // unix seconds
    }

    /// @notice Value of one unit at spot `spot`, volatility `vol` (before skew) and `sqrtT` = sqrt(years to expiry)
    ///         (WAD), with `lnSpot` = ln(spot) and `lnStrike` = ln(strike).
    function unitPrice(
        bool isCall,
        uint256 spot,
        uint256 strike,
        int256 lnSpot,
        int256 lnStrike,
        uint256 vol,
        uint256 skewBps,
        uint256 sqrtT
    ) internal pure returns (uint256) {
        int256 m = lnSpot - lnStrike;
        // slither-disable-next-line divide-before-multiply (the specified rounding: sigma, then stdDev, each floored)
        uint256 sigma = vol * (SKEW_ONE + skewBps * PortfolioMargin.abs(m)) / SKEW_ONE;
        return OptionMath.price(isCall, spot, strike, m, sigma * sqrtT / WAD);
    }

    /// @notice The payoff of one unit at expiry price `price`.
    function payoff(bool isCall, uint256 strike, uint256 price) internal pure returns (uint256) {
        if (isCall) return price > strike ? price - strike : 0;
        return strike > price ? strike - price : 0;
    }

    /// @notice sqrt(years to expiry) in WAD (0 at or after expiry).
    function sqrtYears(uint256 expiry, uint256 time) internal pure returns (uint256) {
        return expiry > time ? OptionMath.stdDev(WAD, expiry - time) : 0;
    }

    /// @notice The value of `size` units at the mark of `in_` (floor: a long rounded down, a short's liability up).
    function positionValue(Position memory p, Inputs memory in_) internal pure returns (int256) {
        uint256 unit;
        if (p.fixedPrice != 0) {
            unit = payoff(p.isCall, p.strike, p.fixedPrice);
        } else {
            uint256 spot = in_.prices[p.asset];
            unit = unitPrice(
                p.isCall,
                spot,
                p.strike,
                OptionMath.lnWad(spot),
                OptionMath.lnWad(p.strike),
                in_.vols[p.asset],
                in_.options.skew(p.asset),
                sqrtYears(p.expiry, in_.time)
            );
        }
        return PortfolioMargin.positionValueDown(p.size, unit);
    }

    /// @notice The option part of the margin of positions `ps` (docs/options.md).
    /// @dev Domain: sizes |size| < 2^127 (OptionMarkets stores int128), strikes <= 2^128 (OptionMarkets lists them
    ///      below 2^96), the prices of assets with live options in (0, 2^128] (else OptionMath.price reverts, at the
    ///      mark, before any grid point), their linear deltas |D_a| < 2^200 (else ExposureOutOfRange; the vault's are
    ///      below 2^170). Within it no intermediate value below overflows (bounds at each unchecked block), so the
    ///      scan runs unchecked.
    function risk(Position[] memory ps, Inputs memory in_) internal pure returns (Risk memory r) {
        uint256 n = in_.options.gridSteps();
        if (n == 0) n = 1; // options not configured: no series can trade, a one-step grid values what exists
        for (uint256 i; i < ps.length; ++i) {
            Position memory p = ps[i];
            if (p.fixedPrice != 0) {
                r.value += positionValue(p, in_);
            } else {
                r.assets |= 1 << p.asset;
            }
        }
        for (uint256 a; a < 8; ++a) {
            if ((r.assets >> a) & 1 != 0) _assetRisk(ps, in_, a, n, r);
        }
    }

    /// @notice |D_a| of an asset with options must stay below this (2^200): see `risk`.
    uint256 internal constant MAX_DELTA = 2 ** 200;

    /// @dev One asset's scan: its spot, risk weight, grid steps, skew, volatility points and its live positions, each
    ///      a record of 5 words in `book`: isCall, strike, size, ln(strike), sqrt(years to expiry).
    struct Scan {
        uint256 spot;
        uint256 rw;
        uint256 n;
        uint256 skew;
        uint256 vol0; // down
        uint256 vol1; // base
        uint256 vol2; // up
        int256 base; // the positions' value at the mark
        uint256[] book;
        uint256 cols; // the volatility points `_values` prices: bit 0 down, 1 base, 2 up (the others are 0)
    }

    /// @dev Words per position record in `Scan.book`.
    uint256 private constant RECORD = 5;

    /// @dev Adds asset `a`'s value, notional, WS, B, minimum and stress losses to `r`.
    /// @dev The stress loop runs unchecked: a shock is an int16 read from the STRESS words (index s / 2 < 8 for
    ///      s < 16, else the array's out-of-bounds panic, as an indexed read gives), and each asset's loss is below
    ///      2^202 in magnitude (see `_grid`), so the sums over at most 8 assets cannot overflow.
    function _assetRisk(Position[] memory ps, Inputs memory in_, uint256 a, uint256 n, Risk memory r) private pure {
        Scan memory sc = _scan(ps, in_, a, n, r);
        sc.cols = 7;
        (int256 b0, int256 b1, int256 b2) = _values(sc, sc.spot, OptionMath.lnWad(sc.spot));
        sc.base = b1;
        r.value += b1;
        int256[] memory loss = _grid(sc, b0, b2);
        (int256 ws, uint256 b) = _combine(loss, sc, in_.delta[a]);
        r.ws[a] = ws;
        r.curvature += b;
        // stress vectors: a shock on the grid reuses its row, any other is revalued
        uint256 numStress = in_.global.numStress();
        uint256[8] memory words = in_.stress;
        int256[16] memory out = r.stress;
        for (uint256 s; s < numStress;) {
            int256 shock;
            /// @solidity memory-safe-assembly
            assembly {
                if gt(s, 15) {
                    mstore(0, shl(224, 0x4e487b71)) // Panic(0x32): index out of bounds
                    mstore(4, 0x32)
                    revert(0, 0x24)
                }
                // RiskConfig.i16(words[s / 2], 128 * (s % 2) + 16 * a)
                shock := signextend(1, shr(add(shl(7, and(s, 1)), shl(4, a)), mload(add(words, shl(5, shr(1, s))))))
            }
            int256 l = _stressLoss(sc, loss, shock);
            /// @solidity memory-safe-assembly
            assembly {
                let at := add(out, shl(5, s))
                mstore(at, add(mload(at), l))
                s := add(s, 1)
            }
        }
    }

    /// @dev The scan of asset `a`; adds its notional and short minimum to `r`.
    function _scan(Position[] memory ps, Inputs memory in_, uint256 a, uint256 n, Risk memory r)
        private
        pure
        returns (Scan memory sc)
    {
        sc.spot = in_.prices[a];
        sc.rw = in_.global.riskWeight(a);
        sc.n = n;
        sc.skew = in_.options.skew(a);
        uint256 v = in_.vols[a];
        (sc.vol0, sc.vol1, sc.vol2) =
            (v * (BPS - in_.options.volDown()) / BPS, v, v * (BPS + in_.options.volUp()) / BPS);
        uint256 count;
        for (uint256 i; i < ps.length; ++i) {
            if (ps[i].asset == a && ps[i].fixedPrice == 0) ++count;
        }
        uint256[] memory book = new uint256[](RECORD * count);
        sc.book = book;
        uint256 shortMin = in_.options.shortMin();
        uint256 at;
        /// @solidity memory-safe-assembly
        assembly {
            at := add(book, 0x20)
        }
        for (uint256 i; i < ps.length; ++i) {
            Position memory p = ps[i];
            if (p.asset != a || p.fixedPrice != 0) continue;
            int256 lnStrike = OptionMath.lnWad(p.strike);
            uint256 sqrtT = sqrtYears(p.expiry, in_.time);
            /// @solidity memory-safe-assembly
            assembly {
                mstore(at, mload(add(p, 0x20))) // isCall
                mstore(add(at, 0x20), mload(add(p, 0x40))) // strike
                mstore(add(at, 0x40), mload(add(p, 0xa0))) // size
                mstore(add(at, 0x60), lnStrike)
                mstore(add(at, 0x80), sqrtT)
                at := add(at, 0xa0)
            }
            uint256 q = PortfolioMargin.abs(p.size);
            r.notional += q * sc.spot / WAD;
            if (p.size < 0) r.shortMinimum += PortfolioMargin.mulDivUp(q, sc.spot * shortMin, WAD * BPS);
        }
    }

    /// @dev loss[3 (x + n) + j] = base - value at spot point x and volatility point j; `b0`, `b2`: the values at the
    ///      spot under the down and up volatility points (the row x = 0). Inside the grid (0 < |x| < n) the base
    ///      volatility is not a scenario: its column repeats the down column's loss (the maximum ignores it).
    /// @dev Unchecked: values are sums of at most 32 terms below 2^196 (see `_values`), so |base - value| < 2^202.
    function _grid(Scan memory sc, int256 b0, int256 b2) private pure returns (int256[] memory loss) {
        uint256 n = sc.n;
        uint256 rows = 2 * n + 1;
        loss = new int256[](3 * rows);
        int256 base = sc.base;
        for (uint256 xi; xi < rows;) {
            int256 v0 = b0;
            int256 v1 = base;
            int256 v2 = b2;
            if (xi != n) {
                (uint256 s, uint256 cols) = _gridPoint(sc, xi, rows);
                sc.cols = cols;
                (v0, v1, v2) = _values(sc, s, OptionMath.lnWad(s));
                if (cols == 5) v1 = v0;
            }
            /// @solidity memory-safe-assembly
            assembly {
                let at := add(add(loss, 0x20), mul(xi, 0x60))
                mstore(at, sub(base, v0))
                mstore(add(at, 0x20), sub(base, v1))
                mstore(add(at, 0x40), sub(base, v2))
                xi := add(xi, 1)
            }
        }
    }

    /// @dev Spot point x = xi - n: floor(S (n 1e4 + x RW) / (n 1e4)), at least 1, and the volatility points priced
    ///      there: all three at the grid's ends, down and up inside. S <= 2^128 (the mark priced it) and
    ///      n 1e4 + x RW < 2^25, so nothing wraps.
    function _gridPoint(Scan memory sc, uint256 xi, uint256 rows) private pure returns (uint256 s, uint256 cols) {
        /// @solidity memory-safe-assembly
        assembly {
            let n := mload(add(sc, 0x40))
            let scale := mul(n, 10000)
            let num := add(scale, mul(sub(xi, n), mload(add(sc, 0x20))))
            s := 1
            if sgt(num, 0) {
                s := div(mul(mload(sc), num), scale)
                if iszero(s) { s := 1 }
            }
            cols := 5
            if or(iszero(xi), eq(xi, sub(rows, 1))) { cols := 7 }
        }
    }

    /// @dev WS_a and B_a from the options' loss table and the asset's linear delta `d` (see the title).
    /// @dev Unchecked: |loss| < 2^202, N <= 4e4 < 2^16, |x| <= 4, RW < 2^16 and |d| < 2^200 (checked here):
    ///      |N L| < 2^218, |x RW d| < 2^218, so |T| < 2^219 and |X_a| < 2^221.
    function _combine(int256[] memory loss, Scan memory sc, int256 d) private pure returns (int256 ws, uint256 b) {
        if (PortfolioMargin.abs(d) >= MAX_DELTA) revert PortfolioMargin.ExposureOutOfRange(0, d, 0);
        /// @solidity memory-safe-assembly
        assembly {
            let n := mload(add(sc, 0x40))
            let scale := mul(n, 10000) // N
            let linear := mul(mload(add(sc, 0x20)), d) // RW D: T = N L - x RW D
            let worst := shl(255, 1) // type(int256).min
            let at := add(loss, 0x20)
            let shift := mul(sub(0, n), linear) // x RW D at x = -n, then one RW D more per row
            for { let end := add(at, mul(mload(loss), 0x20)) } lt(at, end) { at := add(at, 0x60) } {
                let t := sub(mul(scale, mload(at)), shift)
                if sgt(t, worst) { worst := t }
                t := sub(mul(scale, mload(add(at, 0x20))), shift)
                if sgt(t, worst) { worst := t }
                t := sub(mul(scale, mload(add(at, 0x40))), shift)
                if sgt(t, worst) { worst := t }
                shift := add(shift, linear)
            }
            // scan = max(0, ceil(worst / N))
            let scan := 0
            if sgt(worst, 0) { scan := add(sdiv(worst, scale), iszero(iszero(smod(worst, scale)))) }
            // X_a = (N L(-n, base) + n RW D) - (N L(+n, base) - n RW D)
            let first := mload(add(loss, 0x40))
            let last := mload(add(add(loss, 0x40), mul(mul(n, 2), 0x60)))
            let dir := sub(add(mul(scale, first), mul(n, linear)), sub(mul(scale, last), mul(n, linear)))
            // w = min(ceil(|X_a| / 2N), scan), signed as X_a
            let ad := dir
            if slt(dir, 0) { ad := sub(0, dir) }
            let w := add(div(ad, add(scale, scale)), iszero(iszero(mod(ad, add(scale, scale)))))
            if sgt(w, scan) { w := scan }
            ws := w
            if slt(dir, 0) { ws := sub(0, w) }
            b := sub(scan, w)
        }
    }

    /// @dev The options' loss at the stress shock `shock` (bps) under the volatility shock (down or up) that is worse
    ///      at the grid point next to the shock on the spot's side, x = trunc(shock n / RW) clamped to [-n, n] (x = 0
    ///      if RW = 0): that point's row when the shock is the point itself, else one revaluation.
    function _stressLoss(Scan memory sc, int256[] memory loss, int256 shock) private pure returns (int256 l) {
        uint256 spot;
        bool up;
        bool onGrid;
        /// @solidity memory-safe-assembly
        assembly {
            // |shock| <= 2^15, n <= 255 and RW < 2^16: no product wraps
            let n := mload(add(sc, 0x40))
            let rw := mload(add(sc, 0x20))
            let sn := mul(shock, n)
            let x := 0
            if rw {
                x := sdiv(sn, rw) // toward zero
                if sgt(x, n) { x := n }
                if slt(x, sub(0, n)) { x := sub(0, n) }
            }
            let at := add(add(loss, 0x20), mul(add(x, n), 0x60))
            let l0 := mload(at)
            l := mload(add(at, 0x40))
            up := sgt(l, l0)
            if iszero(up) { l := l0 }
            onGrid := eq(mul(x, rw), sn) // the shock is a grid point
            if iszero(onGrid) {
                // floor(S (1e4 + shock) / 1e4), at least 1 (S <= 2^128: the mark priced it)
                spot := 1
                if sgt(shock, sub(0, 10000)) {
                    spot := div(mul(mload(sc), add(10000, shock)), 10000)
                    if iszero(spot) { spot := 1 }
                }
            }
        }
        if (onGrid) return l;
        sc.cols = up ? 4 : 1;
        (int256 l0,, int256 l2) = _values(sc, spot, OptionMath.lnWad(spot));
        unchecked {
            return sc.base - (up ? l2 : l0); // |.| < 2^202 (see `_grid`)
        }
    }

    /// @dev The values of the scan's positions at `spot` (ln(spot) `lnSpot`) under the volatility points down, base
    ///      and up, those in `sc.cols` (the others 0): per position floor(size * price(sigma_j(K))),
    ///      sigma_j(K) = floor(vol_j * (1e22 + skew |ln(S/K)|) / 1e22).
    /// @dev Unchecked: vol_j < 2^80 (feeds' bounds are uint32 bps, times 1e14, times at most 3), |ln(S/K)| < 2^130
    ///      (lnWad of values < 2^128), skew < 2^16: the skew product < 2^230; sigma < 2^150 and sqrtT < 2^90 (expiries
    ///      within 2^48 s): sigma * sqrtT < 2^240; |size| < 2^127 and a unit price <= max(S, K) <= 2^128, so each
    ///      product is below 2^255 and each term below 2^196 in magnitude.
    function _values(Scan memory sc, uint256 spot, int256 lnSpot)
        private
        pure
        returns (int256 v0, int256 v1, int256 v2)
    {
        uint256 at;
        uint256 end;
        {
            uint256[] memory book = sc.book;
            /// @solidity memory-safe-assembly
            assembly {
                at := add(book, 0x20)
                end := add(at, mul(mload(book), 0x20))
            }
        }
        while (at < end) {
            (int256 q0, int256 q1, int256 q2) = _position(sc, at, spot, lnSpot);
            unchecked {
                (v0, v1, v2) = (v0 + q0, v1 + q1, v2 + q2);
                at += 0xa0;
            }
        }
    }

    /// @dev The values of the position record at `at` under the volatility points in `sc.cols` (bounds: see
    ///      `_values`).
    // slither-disable-start divide-before-multiply (the specified rounding of unitPrice: sigma, then stdDev, floored)
    function _position(Scan memory sc, uint256 at, uint256 spot, int256 lnSpot)
        private
        pure
        returns (int256 q0, int256 q1, int256 q2)
    {
        bool isCall;
        uint256 strike;
        int256 m;
        /// @solidity memory-safe-assembly
        assembly {
            isCall := mload(at)
            strike := mload(add(at, 0x20))
            m := sub(lnSpot, mload(add(at, 0x60)))
        }
        /// @solidity memory-safe-assembly
        assembly {
            // the three standard deviations floor(floor(vol_j * bend / 1e22) * sqrtT / 1e18), held in q0..q2
            let bend := m
            if slt(m, 0) { bend := sub(0, m) }
            bend := add(SKEW_ONE, mul(mload(add(sc, 0x60)), bend)) // 1e22 + skew |m|
            q0 := div(mul(div(mul(mload(add(sc, 0x80)), bend), SKEW_ONE), mload(add(at, 0x80))), WAD)
            q1 := div(mul(div(mul(mload(add(sc, 0xa0)), bend), SKEW_ONE), mload(add(at, 0x80))), WAD)
            q2 := div(mul(div(mul(mload(add(sc, 0xc0)), bend), SKEW_ONE), mload(add(at, 0x80))), WAD)
        }
        uint256 cols = sc.cols;
        q0 = cols & 1 != 0 ? int256(OptionMath.price(isCall, spot, strike, m, uint256(q0))) : int256(0);
        q1 = cols & 2 != 0 ? int256(OptionMath.price(isCall, spot, strike, m, uint256(q1))) : int256(0);
        q2 = cols & 4 != 0 ? int256(OptionMath.price(isCall, spot, strike, m, uint256(q2))) : int256(0);
        /// @solidity memory-safe-assembly
        assembly {
            // floor(size * unit / 1e18): (q + 1) / 1e18 - 1 below zero
            let size := mload(add(at, 0x40))
            let q := mul(size, q0)
            let neg := slt(q, 0)
            q0 := sub(sdiv(add(q, neg), WAD), neg)
            q := mul(size, q1)
            neg := slt(q, 0)
            q1 := sub(sdiv(add(q, neg), WAD), neg)
            q := mul(size, q2)
            neg := slt(q, 0)
            q2 := sub(sdiv(add(q, neg), WAD), neg)
        }
    }
    // slither-disable-end divide-before-multiply
}
