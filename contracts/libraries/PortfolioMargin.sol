// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IRiskParameters} from "../interfaces/IRiskParameters.sol";
import {RiskConfig} from "./RiskConfig.sol";

/// @title PortfolioMargin — the xmargin maintenance margin, pure (no storage), in integers.
/// @notice Units: prices and values USD 1e18; sizes base units 1e18; ratios bps (1e4 = 100%).
///         Every requirement is rounded up and every credit down (against the account, for the protocol):
///         `*Down` / `*Up` in a name says which way.
///
///         Per asset k the account has a net delta D_k (signed USD) and a gross G_k = sum of |contributions|.
///           WS_k   = RW_k * D_k, magnitude rounded up
///           K_r    = sqrt(sum_kl rho_r(k,l) * WS_k * WS_l), rounded up, for r in {low, medium, high}:
///                    high = min(1.25 rho, 1), low = max(2 rho - 1, 0.75 rho)   (FRTB sensitivities method)
///           K_S    = max(0, max_s -sum_k S_sk * D_k)                 over the published stress vectors
///           basis  = b * sum_k (G_k - |D_k|)
///           floor  = f * sum_k |D_k|
///           MM     = max(max(max_r K_r, K_S) + basis, floor);  IM = alpha * MM
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
    }

    // ---------------------------------------------------------------- valuation
    /// @notice floor(size * price / 1e18): value of a position (signed), rounded toward minus infinity.
    function positionValueDown(int256 size, uint256 price) internal pure returns (int256) {
        return floorDiv(size * int256(price), int256(WAD));
    }

    /// @notice floor(amount * price / 10^decimals): USD value of a token amount.
    function tokenValueDown(uint256 amount, uint256 price, uint256 decimals) internal pure returns (uint256) {
        return amount * price / 10 ** decimals;
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

    /// @notice Maintenance and initial margin with their parts.
    /// @param delta Net delta D_k per asset (USD 1e18). @param gross Gross notional G_k per asset (>= |D_k|).
    function breakdown(int256[8] memory delta, uint256[8] memory gross, IRiskParameters.MarginConfig memory cfg)
        internal
        pure
        returns (Breakdown memory b)
    {
        uint256 g = cfg.global;
        int256[8] memory ws;
        uint256[8] memory active; // indices of assets with exposure, `n` of them
        uint256 n;
        uint256 hedged;
        uint256 absSum;
        for (uint256 k; k < 8; ++k) {
            int256 d = delta[k];
            uint256 gk = gross[k];
            if (d == 0 && gk == 0) continue;
            uint256 a = abs(d);
            if (gk >= MAX_EXPOSURE || a > gk) revert ExposureOutOfRange(k, d, gk);
            unchecked {
                active[n++] = k;
                absSum += a;
                hedged += gk - a;
                int256 w = int256((a * g.riskWeight(k) + BPS - 1) / BPS); // |WS_k| rounded up
                ws[k] = d < 0 ? -w : w;
            }
        }
        b.kRegime = correlatedCharges(ws, active, n, cfg.corr0, cfg.corr1);
        (b.kStress, b.worstScenario) = stressCharge(delta, active, n, cfg.stress, g.numStress());
        unchecked {
            b.basis = (hedged * g.basisAddon() + BPS - 1) / BPS;
            b.floorCharge = (absSum * g.floorRate() + BPS - 1) / BPS;
            uint256 k_ = Math.max(Math.max(b.kRegime[0], b.kRegime[1]), Math.max(b.kRegime[2], b.kStress));
            b.maintenance = Math.max(k_ + b.basis, b.floorCharge);
            b.initial = (b.maintenance * g.alpha() + BPS - 1) / BPS;
        }
    }

    /// @notice sqrt(WS' rho WS) under the low, medium and high regimes, each rounded up (0 if not positive).
    /// @dev Only called from `breakdown` (|WS_k| <= 2^110): sums stay below 2^243, hence unchecked.
    /// @param active The first `n` entries are the assets with a non-zero WS (others contribute nothing).
    function correlatedCharges(int256[8] memory ws, uint256[8] memory active, uint256 n, uint256 corr0, uint256 corr1)
        internal
        pure
        returns (uint256[3] memory charges)
    {
        unchecked {
            int256 diag; // sum WS_k^2
            int256 c0; // sum_{k<l} rho4_r * WS_k * WS_l for r = low, medium, high
            int256 c1;
            int256 c2;
            for (uint256 i; i < n; ++i) {
                uint256 k = active[i];
                int256 wk = ws[k];
                diag += wk * wk;
                for (uint256 j = i + 1; j < n; ++j) {
                    uint256 l = active[j];
                    int256 prod = wk * ws[l];
                    if (prod == 0) continue;
                    int256 rho = RiskConfig.correlation(corr0, corr1, RiskConfig.pairIndex(k, l));
                    c0 += prod * _max(8 * rho - RHO4_ONE, 3 * rho);
                    c1 += prod * (4 * rho);
                    c2 += prod * _min(5 * rho, RHO4_ONE);
                }
            }
            diag *= RHO4_ONE;
            charges[0] = _rootUp(diag + 2 * c0);
            charges[1] = _rootUp(diag + 2 * c1);
            charges[2] = _rootUp(diag + 2 * c2);
        }
    }

    /// @dev ceil(sqrt(ceil(q / RHO4_ONE))) for q > 0, else 0.
    function _rootUp(int256 q) private pure returns (uint256) {
        return q > 0 ? Math.sqrt(uint256(ceilDiv(q, RHO4_ONE)), Math.Rounding.Ceil) : 0;
    }

    /// @notice Worst loss over the stress vectors, rounded up, and its index; zero when no vector loses.
    /// @dev Only called from `breakdown` (|D_k| <= 2^110, |shock| <= 2^15): unchecked.
    function stressCharge(
        int256[8] memory delta,
        uint256[8] memory active,
        uint256 n,
        uint256[8] memory stress,
        uint256 count
    ) internal pure returns (uint256 worst, uint256 index) {
        unchecked {
            for (uint256 s; s < count; ++s) {
                uint256 vector = stress[s >> 1] >> ((s & 1) << 7); // this vector's 8 shocks in the low 128 bits
                int256 pnl; // bps-scaled P&L of the account under vector s
                assembly ("memory-safe") {
                    for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                        let k := mload(add(active, shl(5, i))) // active[i] < 8 (written by breakdown)
                        let shock := signextend(1, and(shr(shl(4, k), vector), 0xffff))
                        pnl := add(pnl, mul(shock, mload(add(delta, shl(5, k)))))
                    }
                }
                if (pnl < 0) {
                    uint256 loss = (uint256(-pnl) + BPS - 1) / BPS;
                    if (loss > worst) (worst, index) = (loss, s);
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
