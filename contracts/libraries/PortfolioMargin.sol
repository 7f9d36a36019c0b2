// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {FixedPointMathLib} from "solady/src/utils/FixedPointMathLib.sol";
import {IRiskParameters} from "../interfaces/IRiskParameters.sol";
import {RiskConfig} from "./RiskConfig.sol";
import {OptionMargin} from "./OptionMargin.sol";

/// @title PortfolioMargin — the xmargin maintenance margin, pure (no storage), in integers.
/// @notice Units: prices and values USD 1e18; sizes base units 1e18; ratios bps (1e4 = 100%).
///         Every requirement is rounded up and every credit down (against the account, for the protocol):
///         `*Down` / `*Up` in a name says which way.
///
///         Per asset k the account has a net delta D_k (signed USD) and a gross G_k = sum of |contributions|, and,
///         with options (OptionMargin, docs/options.md), the weighted sensitivity of their assets, their curvature B
///         and minimum M.
///           WS_k   = RW_k * D_k, magnitude rounded up; for an asset with options, OptionMargin's WS_k (the asset's
///                    whole book scanned: its directional part, at most its worst loss)
///           K_r    = sqrt(sum_kl rho_r(k,l) * WS_k * WS_l), rounded up, for r in {low, medium, high}:
///                    high = min(1.25 rho, 1), low = max(2 rho - 1, 0.75 rho)   (FRTB sensitivities method);
///                    in the low regime a pair term of sign opposite to the diagonal (a hedging credit) is scaled by
///                    (1 - break), the correlation break of the ADDON word (its rho rounded toward zero)
///           K_V    = max_r K_r * sum_k v_k |WS_k| / (1e4 * sum_k |WS_k|), rounded up: the volatility scalers v_k of
///                    the ADDON word averaged over the account's weighted sensitivities (K_V = max_r K_r without them)
///           K_S    = max(0, max_s ceil(-sum_k S_sk * D_k) + O_s)     over the published stress vectors, O_s the
///                    options' loss in vector s (revalued in full)
///           basis  = b * sum_k (G_k - |D_k|)
///           C      = sum over positions of N * sqrt(N / L_m), rounded up (concentration: N the position's |value|,
///                    L_m its market's liquidation depth, DEPTH word; computed by the vault, `concentrationCharge`)
///           floor  = f * sum_k |D_k|
///           MM     = max(max(K_V + B, K_S) + basis + C + M, floor);  IM = alpha * MM
///                    (the stress vectors revalue options in full, so their curvature is already in K_S)
///         Each add-on is monotone in its parameter (a higher scaler or break, or a lower depth, never lowers MM), so
///         RiskParameters applies raises at once and queues the reverse.
library PortfolioMargin {
    using RiskConfig for uint256;

    uint256 internal constant BPS = 1e4;
    uint256 internal constant WAD = 1e18;
    /// @dev Correlations are scaled by 4 so 1.25 rho and 0.75 rho stay integers: 4 * 1e4 = 100%.
    int256 internal constant RHO4_ONE = 4e4;

    /// @notice The parts of the maintenance margin, for reporting and checks.
    struct Breakdown {
        uint256[3] kRegime; // low, medium, high correlation
        uint256 kStress;
        uint256 worstScenario; // index of the binding stress vector (meaningful when kStress > 0)
        uint256 basis;
        uint256 floorCharge;
        uint256 maintenance;
        uint256 initial;
        uint256 kCorrelated; // max of kRegime times the volatility scalers (K_V)
        uint256 concentration; // C
        uint256 curvature; // B: what the options' scan adds beyond their directional part
        uint256 shortMinimum; // M
    }

    // ---------------------------------------------------------------- valuation
    /// @notice floor(size * price / 1e18): value of a position (signed), rounded toward minus infinity.
    function positionValueDown(int256 size, uint256 price) internal pure returns (int256) {
        return floorDiv(size * int256(price), int256(WAD));
    }

    /// @notice floor(amount * price / 10^decimals): USD value of a token amount (decimals <= 77: 10^decimals fits).
    function tokenValueDown(uint256 amount, uint256 price, uint256 decimals) internal pure returns (uint256) {
        assert(decimals <= 77);
        uint256 unit;
        unchecked {
            unit = 10 ** decimals; // one EXP, no overflow check needed
        }
        return amount * price / unit;
    }

    /// @notice ceil(a * b / d) for a product that fits 256 bits (reverts otherwise, like every checked product here).
    function mulDivUp(uint256 a, uint256 b, uint256 d) internal pure returns (uint256) {
        uint256 p = a * b;
        return p == 0 ? 0 : (p - 1) / d + 1;
    }

    /// @notice floor(value * (1 - haircut)): the equity credit of collateral worth `value`.
    function haircutDown(uint256 value, uint256 haircutBps) internal pure returns (uint256) {
        return (value * (BPS - haircutBps)) / BPS;
    }

    /// @notice Signed division rounded toward minus infinity (`b` > 0).
    function floorDiv(int256 a, int256 b) internal pure returns (int256 q) {
        q = a / b;
        if (a % b != 0 && a < 0) q -= 1;
    }

    /// @notice Signed division rounded toward plus infinity (`b` > 0).
    function ceilDiv(int256 a, int256 b) internal pure returns (int256 q) {
        q = a / b;
        if (a % b != 0 && a > 0) q += 1;
    }

    function abs(int256 x) internal pure returns (uint256) {
        return uint256(x >= 0 ? x : -x);
    }

    // ---------------------------------------------------------------- margin
    /// @notice Largest |D_k| and G_k accepted (2^110 USD-wei, about 1.3e15 USD): within it no intermediate value of
    ///         the margin can overflow, so the arithmetic below runs unchecked after one range check per asset.
    uint256 internal constant MAX_EXPOSURE = 2 ** 110;

    /// @notice An asset's exposure is outside the range the margin arithmetic is proven for.
    error ExposureOutOfRange(uint256 asset, int256 delta, uint256 gross);

    /// @notice ceil(N * sqrt(N / L)) for a position of |value| `notional` in a market of liquidation depth `depth`
    ///         (both USD 1e18; 0 when depth is 0), as ceil(N * ceilSqrt(ceil(N * 1e36 / L)) / 1e18).
    /// @dev notional < 2^110 (a position's value) and depth >= 1e25 keep every product far below 2^256.
    function concentrationCharge(uint256 notional, uint256 depth) internal pure returns (uint256) {
        if (depth == 0 || notional == 0) return 0;
        uint256 root = sqrtUp(mulDivUp(notional, WAD * WAD, depth));
        return mulDivUp(notional, root, WAD);
    }

    /// @notice Maintenance and initial margin with their parts.
    /// @param delta Net delta D_k per asset (USD 1e18). @param gross Gross notional G_k per asset (>= |D_k|).
    /// @param concentration The account's concentration charge C (USD 1e18). @param opt The option part (zero: none).
    function breakdown(
        int256[8] memory delta,
        uint256[8] memory gross,
        uint256 concentration,
        OptionMargin.Risk memory opt,
        IRiskParameters.MarginConfig memory cfg
    ) internal pure returns (Breakdown memory b) {
        return _breakdown(delta, gross, concentration, opt, cfg, true);
    }

    /// @notice Maintenance and initial margin only, equal to those of `breakdown`, with one square root instead of
    ///         three: the rounded-up root is non-decreasing, so max_r K_r is the root of the largest quadratic form.
    function requirements(
        int256[8] memory delta,
        uint256[8] memory gross,
        uint256 concentration,
        OptionMargin.Risk memory opt,
        IRiskParameters.MarginConfig memory cfg
    ) internal pure returns (uint256 maintenance, uint256 initial) {
        Breakdown memory b = _breakdown(delta, gross, concentration, opt, cfg, false);
        return (b.maintenance, b.initial);
    }

    /// @dev `breakdown`; with `allRegimes` false, `kRegime` is left zero and only max_r K_r is computed.
    function _breakdown(
        int256[8] memory delta,
        uint256[8] memory gross,
        uint256 concentration,
        OptionMargin.Risk memory opt,
        IRiskParameters.MarginConfig memory cfg,
        bool allRegimes
    ) private pure returns (Breakdown memory b) {
        uint256 g = cfg.global;
        (int256[8] memory ws, uint256[8] memory active, uint256 n, uint256 hedged, uint256 absSum) =
            _sensitivities(delta, gross, opt, g);
        b.kCorrelated = _volScaled(_correlatedCharge(b, ws, active, n, cfg, allRegimes), ws, active, n, cfg.addons);
        (b.kStress, b.worstScenario) = stressCharge(delta, active, n, cfg.stress, g.numStress(), opt.stress);
        b.concentration = concentration;
        (b.curvature, b.shortMinimum) = (opt.curvature, opt.shortMinimum);
        unchecked {
            b.basis = (hedged * g.basisAddon() + BPS - 1) / BPS;
            b.floorCharge = (absSum * g.floorRate() + BPS - 1) / BPS;
        }
        b.maintenance = Math.max(
            Math.max(b.kCorrelated + b.curvature, b.kStress) + b.basis + concentration + b.shortMinimum, b.floorCharge
        );
        unchecked {
            b.initial = (b.maintenance * g.alpha() + BPS - 1) / BPS;
        }
    }

    /// @dev WS per asset, the assets with exposure (`active`, `n` of them), the hedged notional sum_k (G_k - |D_k|)
    ///      and sum_k |D_k|.
    function _sensitivities(int256[8] memory delta, uint256[8] memory gross, OptionMargin.Risk memory opt, uint256 g)
        private
        pure
        returns (int256[8] memory ws, uint256[8] memory active, uint256 n, uint256 hedged, uint256 absSum)
    {
        for (uint256 k; k < 8; ++k) {
            int256 d;
            uint256 gk;
            bool none;
            assembly ("memory-safe") {
                // an asset without exposure (no delta, no gross, no options: bit k of `opt.assets`, the struct's
                // seventh word) is skipped in a few opcodes; k < 8, no bounds check needed
                d := mload(add(delta, shl(5, k)))
                gk := mload(add(gross, shl(5, k)))
                none := iszero(or(or(d, gk), and(shr(k, mload(add(opt, 0xc0))), 1)))
            }
            if (none) continue;
            uint256 a = abs(d);
            if (gk >= MAX_EXPOSURE || a > gk) revert ExposureOutOfRange(k, d, gk);
            ws[k] = _weighted(k, d, g.riskWeight(k), opt);
            unchecked {
                active[n++] = k;
                absSum += a;
                hedged += gk - a;
            }
        }
    }

    /// @dev WS_k: OptionMargin's for an asset with options, else sign(D) ceil(|D| RW / 1e4) (|D| < 2^110).
    function _weighted(uint256 k, int256 d, uint256 rw, OptionMargin.Risk memory opt) private pure returns (int256) {
        if ((opt.assets >> k) & 1 != 0) {
            int256 w = opt.ws[k];
            if (abs(w) >= MAX_EXPOSURE) revert ExposureOutOfRange(k, w, 0);
            return w;
        }
        unchecked {
            int256 v = int256((abs(d) * rw + BPS - 1) / BPS); // |WS_k| rounded up
            return d < 0 ? -v : v;
        }
    }

    /// @dev K_V: `k` times the volatility scalers averaged over |WS| (`k` itself when no scaler is set).
    /// @dev k < 2^114 and sum_k v_k |WS_k| < 2^130 (|WS_k| <= 2^110, v_k <= 4e4): the product fits.
    function _volScaled(uint256 k, int256[8] memory ws, uint256[8] memory active, uint256 n, uint256 addons)
        private
        pure
        returns (uint256)
    {
        if (addons & type(uint128).max == 0 || k == 0) return k;
        uint256 num;
        uint256 den;
        unchecked {
            for (uint256 i; i < n; ++i) {
                uint256 a = abs(ws[active[i]]);
                num += addons.volScaler(active[i]) * a;
                den += a;
            }
        }
        return mulDivUp(k, num, BPS * den);
    }

    /// @dev max_r K_r; with `allRegimes`, also each K_r into `b.kRegime`.
    function _correlatedCharge(
        Breakdown memory b,
        int256[8] memory ws,
        uint256[8] memory active,
        uint256 n,
        IRiskParameters.MarginConfig memory cfg,
        bool allRegimes
    ) private pure returns (uint256) {
        (int256 q0, int256 q1, int256 q2) =
            correlatedForms(ws, active, n, cfg.corr0, cfg.corr1, BPS - cfg.addons.correlationBreak());
        if (!allRegimes) return _rootUp(_max(_max(q0, q1), q2));
        b.kRegime = [_rootUp(q0), _rootUp(q1), _rootUp(q2)];
        return Math.max(Math.max(b.kRegime[0], b.kRegime[1]), b.kRegime[2]);
    }

    /// @notice RHO4_ONE * WS' rho_r WS under the low, medium and high regimes (K_r = _rootUp of it).
    /// @dev Only called from `breakdown` (|WS_k| <= 2^110): sums stay below 2^243, hence unchecked.
    /// @param active The first `n` entries are the assets with a non-zero WS (others contribute nothing).
    /// @param cut 1e4 minus the correlation break: the low regime's hedging terms keep cut / 1e4 of their rho.
    function correlatedForms(
        int256[8] memory ws,
        uint256[8] memory active,
        uint256 n,
        uint256 corr0,
        uint256 corr1,
        uint256 cut
    ) internal pure returns (int256 q0, int256 q1, int256 q2) {
        unchecked {
            int256 diag; // sum WS_k^2
            // q_r accumulates sum_{k<l} rho4_r * WS_k * WS_l first, for r = low, medium, high
            for (uint256 i; i < n; ++i) {
                uint256 k = active[i];
                int256 wk = ws[k];
                diag += wk * wk;
                for (uint256 j = i + 1; j < n; ++j) {
                    uint256 l = active[j];
                    int256 prod = wk * ws[l];
                    if (prod == 0) continue;
                    int256 rho = RiskConfig.correlation(corr0, corr1, RiskConfig.pairIndex(k, l));
                    int256 low = _max(8 * rho - RHO4_ONE, 3 * rho);
                    // a hedging credit (prod and low of opposite signs) under a correlation break: toward zero
                    if (cut != BPS && (prod ^ low) < 0) low = low * int256(cut) / int256(BPS);
                    q0 += prod * low;
                    q1 += prod * (4 * rho);
                    q2 += prod * _min(5 * rho, RHO4_ONE);
                }
            }
            diag *= RHO4_ONE;
            (q0, q1, q2) = (diag + 2 * q0, diag + 2 * q1, diag + 2 * q2);
        }
    }

    /// @dev ceil(sqrt(ceil(q / RHO4_ONE))) for q > 0, else 0 (non-decreasing in q).
    function _rootUp(int256 q) private pure returns (uint256) {
        return q > 0 ? sqrtUp(uint256(ceilDiv(q, RHO4_ONE))) : 0;
    }

    /// @notice ceil(sqrt(x)): solady's floor square root (exact, and cheaper than OpenZeppelin's), plus one when
    ///         its square is short of x (the floor is below 2^128: its square cannot overflow).
    function sqrtUp(uint256 x) internal pure returns (uint256 r) {
        r = FixedPointMathLib.sqrt(x);
        unchecked {
            if (r * r < x) ++r;
        }
    }

    /// @notice Worst loss over the stress vectors, rounded up, and its index; zero when no vector loses. The loss in
    ///         vector s is ceil(-sum_k S_sk D_k / 1e4) + optionLoss[s] (a linear gain offsets the options' loss).
    /// @dev Only called from `breakdown` (|D_k| <= 2^110, |shock| <= 2^15, |optionLoss| < 2^200): sums stay far
    ///      below 2^255.
    function stressCharge(
        int256[8] memory delta,
        uint256[8] memory active,
        uint256 n,
        uint256[8] memory stress,
        uint256 count,
        int256[16] memory optionLoss
    ) internal pure returns (uint256 worst, uint256 index) {
        assert(count <= RiskConfig.MAX_STRESS); // two vectors per stress word
        assembly ("memory-safe") {
            let activeEnd := add(active, shl(5, n)) // active[0..n) < 8, written by breakdown
            for { let s := 0 } lt(s, count) { s := add(s, 1) } {
                // vector s: word s / 2 shifted right by 128 * (s % 2); its shock for asset k is the int16 at 16k
                let vector := shr(shl(7, and(s, 1)), mload(add(stress, shl(5, shr(1, s)))))
                let pnl := 0 // bps-scaled P&L of the account under vector s: sum_k shock_k * D_k
                for { let p := active } lt(p, activeEnd) { p := add(p, 0x20) } {
                    let k := mload(p)
                    pnl := add(pnl, mul(signextend(1, shr(shl(4, k), vector)), mload(add(delta, shl(5, k)))))
                }
                // ceil(-pnl / BPS), signed, plus the options' loss in vector s
                let y := sub(0, pnl)
                let loss := sdiv(y, 10000)
                if and(sgt(y, 0), iszero(iszero(smod(y, 10000)))) { loss := add(loss, 1) }
                loss := add(loss, mload(add(optionLoss, shl(5, s))))
                if sgt(loss, worst) {
                    worst := loss
                    index := s
                }
            }
        }
    }

    function _max(int256 a, int256 b) private pure returns (int256) {
        return a > b ? a : b;
    }

    function _min(int256 a, int256 b) private pure returns (int256) {
        return a < b ? a : b;
    }
}
