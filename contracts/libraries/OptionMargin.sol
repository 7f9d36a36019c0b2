// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {OptionMath} from "./OptionMath.sol";
import {PortfolioMargin} from "./PortfolioMargin.sol";
import {RiskConfig} from "./RiskConfig.sol";

/// @title OptionMargin — the option part of the portfolio margin, pure (docs/options.md is the specification).
/// @notice For the live options of an account, per asset a (N = n * 1e4, D_a the linear delta of the asset's
///         perpetuals and collateral): the options' value at the mark, and over the grid of spot points
///         S_x = floor(S (N + x RW_a) / N), x = -n..n, and volatility points (down, base, up) the options' loss
///         L_a(x, j) = V(S, sigma) - V(S_x, sigma_j), every option revalued in full; the whole book's loss, scaled by N,
///           T_a(x, j) = N L_a(x, j) - x RW_a D_a
///           scan_a    = max(0, ceil(max_{x,j} T_a(x, j) / N))          (the worst loss of the asset's book)
///           X_a       = T_a(-n, base) - T_a(+n, base)                   (its directional part, times 2N)
///           WS_a      = sign(X_a) min(ceil(|X_a| / 2N), scan_a)         (netted across assets like a delta)
///           B_a       = scan_a - |WS_a|                                 (what the scan adds beyond it)
///         and for each stress vector s the worst, over the volatility points, of the options' loss at the spot
///         floor(S (1e4 + shock_sa) / 1e4), summed over assets. PortfolioMargin uses WS_a for these assets and adds
///         sum_a B_a and the short-option minimum to the maintenance margin: for one asset |WS_a| + B_a = scan_a,
///         for a linear book WS_a = ceil(RW_a |D_a| / 1e4) signed and B_a = 0 (as without options).
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

    /// @dev One asset's scan: its spot, risk weight, volatility points, skew, grid steps, and its live positions with
    ///      ln(strike) and sqrt(years to expiry) each.
    struct Scan {
        uint256 spot;
        uint256 rw;
        uint256[3] vol; // down, base, up
        uint256 skew;
        uint256 n;
        int256 base; // the positions' value at the mark
        int256[3] baseRow; // their values at the spot under each volatility point
        int256[3] scratch; // a row for the stress shocks off the grid
        uint256 curvature; // B_a
        Position[] mine;
        int256[] lnStrike;
        uint256[] sqrtT;
    }

    /// @dev Adds asset `a`'s value, notional, A2, B, minimum and stress losses to `r`.
    function _assetRisk(Position[] memory ps, Inputs memory in_, uint256 a, uint256 n, Risk memory r) private pure {
        Scan memory sc = _scan(ps, in_, a, n, r);
        r.value += sc.base;
        int256[3][] memory loss = _grid(sc);
        (r.ws[a], sc.curvature) = _combine(loss, sc, in_.delta[a]);
        r.curvature += sc.curvature;
        // stress vectors: a shock on the grid reuses its row, any other is revalued
        uint256 numStress = in_.global.numStress();
        for (uint256 s; s < numStress; ++s) {
            r.stress[s] += _stressLoss(sc, loss, RiskConfig.i16(in_.stress[s / 2], 128 * (s % 2) + 16 * a));
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
        sc.vol = [v * (BPS - in_.options.volDown()) / BPS, v, v * (BPS + in_.options.volUp()) / BPS];
        uint256 count;
        for (uint256 i; i < ps.length; ++i) {
            if (ps[i].asset == a && ps[i].fixedPrice == 0) ++count;
        }
        sc.mine = new Position[](count);
        sc.lnStrike = new int256[](count);
        sc.sqrtT = new uint256[](count);
        uint256 shortMin = in_.options.shortMin();
        count = 0;
        for (uint256 i; i < ps.length; ++i) {
            Position memory p = ps[i];
            if (p.asset != a || p.fixedPrice != 0) continue;
            sc.mine[count] = p;
            sc.lnStrike[count] = OptionMath.lnWad(p.strike);
            sc.sqrtT[count] = sqrtYears(p.expiry, in_.time);
            ++count;
            uint256 size = PortfolioMargin.abs(p.size);
            r.notional += size * sc.spot / WAD;
            if (p.size < 0) r.shortMinimum += PortfolioMargin.mulDivUp(size, sc.spot * shortMin, WAD * BPS);
        }
        _values(sc, sc.spot, OptionMath.lnWad(sc.spot), sc.baseRow);
        sc.base = sc.baseRow[1];
    }

    /// @dev loss[x + n][j] = base - value at spot point x and volatility point j.
    function _grid(Scan memory sc) private pure returns (int256[3][] memory loss) {
        uint256 n = sc.n;
        loss = new int256[3][](2 * n + 1);
        int256 base = sc.base;
        for (uint256 xi; xi <= 2 * n; ++xi) {
            int256[3] memory v = loss[xi];
            if (xi == n) {
                (v[0], v[1], v[2]) = (sc.baseRow[0], sc.baseRow[1], sc.baseRow[2]);
            } else {
                uint256 s = _gridSpot(sc, xi);
                _values(sc, s, OptionMath.lnWad(s), v);
            }
            (v[0], v[1], v[2]) = (base - v[0], base - v[1], base - v[2]);
        }
    }

    /// @dev WS_a and B_a from the options' loss table and the asset's linear delta `d` (see the title).
    function _combine(int256[3][] memory loss, Scan memory sc, int256 d) private pure returns (int256 ws, uint256 b) {
        int256 n = int256(sc.n);
        int256 scale = n * int256(BPS); // N
        int256 linear = int256(sc.rw) * d; // RW D: T = N L - x RW D
        int256 worst = type(int256).min;
        for (int256 x = -n; x <= n; ++x) {
            for (uint256 j; j < 3; ++j) {
                int256 t = scale * loss[uint256(x + n)][j] - x * linear;
                if (t > worst) worst = t;
            }
        }
        int256 scan = worst > 0 ? PortfolioMargin.ceilDiv(worst, scale) : int256(0);
        int256 dir = (scale * loss[0][1] + n * linear) - (scale * loss[uint256(2 * n)][1] - n * linear); // X_a
        int256 w = PortfolioMargin.ceilDiv(int256(PortfolioMargin.abs(dir)), 2 * scale);
        if (w > scan) w = scan;
        ws = dir < 0 ? -w : w;
        b = uint256(scan - w);
    }

    /// @dev The worst loss over the volatility points at the stress shock `shock` (bps).
    function _stressLoss(Scan memory sc, int256[3][] memory loss, int256 shock) private pure returns (int256 worst) {
        (bool onGrid, uint256 xi) = _gridIndex(sc, shock);
        int256[3] memory l;
        if (onGrid) {
            l = loss[xi];
        } else {
            l = sc.scratch;
            (l[0], l[1], l[2]) = (0, 0, 0);
            uint256 spot = _shockedSpot(sc.spot, shock);
            _values(sc, spot, OptionMath.lnWad(spot), l);
            (l[0], l[1], l[2]) = (sc.base - l[0], sc.base - l[1], sc.base - l[2]);
        }
        worst = l[0] > l[1] ? l[0] : l[1];
        if (l[2] > worst) worst = l[2];
    }

    /// @dev Adds to `v` (zero) the values of the scan's positions at `spot` (ln(spot) `lnSpot`) under the three
    ///      volatility points: per
    ///      position floor(size * price(sigma_j(K))), sigma_j(K) = floor(vol_j * (1e22 + skew |ln(S/K)|) / 1e22).
    /// @dev Unchecked: vol_j < 2^80 (feeds' bounds are uint32 bps, times 1e14, times at most 3), |ln(S/K)| < 2^130
    ///      (lnWad of values < 2^128), skew < 2^15: the skew product < 2^230; sigma < 2^150 and sqrtT < 2^90 (expiries
    ///      within 2^48 s): sigma * sqrtT < 2^240; |size| < 2^127 and a unit price <= max(S, K) < 2^128.
    function _values(Scan memory sc, uint256 spot, int256 lnSpot, int256[3] memory v) private pure {
        uint256 count = sc.mine.length;
        for (uint256 i; i < count; ++i) {
            Position memory p = sc.mine[i];
            int256 m = lnSpot - sc.lnStrike[i];
            uint256 sqrtT = sc.sqrtT[i];
            unchecked {
                uint256 bend = SKEW_ONE + sc.skew * PortfolioMargin.abs(m);
                for (uint256 j; j < 3; ++j) {
                    uint256 sd = sc.vol[j] * bend / SKEW_ONE * sqrtT / WAD;
                    int256 q = p.size * int256(OptionMath.price(p.isCall, spot, p.strike, m, sd));
                    v[j] += q >= 0 ? q / int256(WAD) : (q + 1) / int256(WAD) - 1; // floor(q / 1e18)
                }
            }
        }
    }

    /// @dev Spot point x = xi - n: floor(S (n 1e4 + x RW) / (n 1e4)), at least 1.
    function _gridSpot(Scan memory sc, uint256 xi) private pure returns (uint256) {
        int256 num = int256(sc.n * BPS) + (int256(xi) - int256(sc.n)) * int256(sc.rw);
        if (num <= 0) return 1;
        uint256 s = sc.spot * uint256(num) / (sc.n * BPS);
        return s == 0 ? 1 : s;
    }

    /// @dev floor(S (1e4 + shock) / 1e4), at least 1.
    function _shockedSpot(uint256 spot, int256 shock) private pure returns (uint256) {
        if (shock <= -int256(BPS)) return 1;
        uint256 s = spot * uint256(int256(BPS) + shock) / BPS;
        return s == 0 ? 1 : s;
    }

    /// @dev Whether a stress shock (bps) is a grid point (shock * n = x * RW, |x| <= n) and its row.
    function _gridIndex(Scan memory sc, int256 shock) private pure returns (bool, uint256) {
        int256 rw = int256(sc.rw);
        int256 n = int256(sc.n);
        int256 num = shock * n;
        if (rw == 0 || num % rw != 0) return (false, 0);
        int256 x = num / rw;
        if (x < -n || x > n) return (false, 0);
        return (true, uint256(x + n));
    }
}
