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
        return Math.mulDiv(amount, price, 10 ** decimals);
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
    /// @notice Maintenance and initial margin with their parts.
    /// @param delta Net delta D_k per asset (USD 1e18). @param gross Gross notional G_k per asset.
    function breakdown(int256[8] memory delta, uint256[8] memory gross, IRiskParameters.MarginConfig memory cfg)
        internal
        pure
        returns (Breakdown memory b)
    {
        uint256 g = cfg.global;
        int256[8] memory ws;
        uint256 hedged;
        uint256 absSum;
        for (uint256 k; k < 8; ++k) {
            int256 d = delta[k];
            if (d == 0 && gross[k] == 0) continue;
            uint256 a = abs(d);
            absSum += a;
            hedged += gross[k] - a;
            int256 w = int256(Math.mulDiv(a, g.riskWeight(k), BPS, Math.Rounding.Ceil));
            ws[k] = d < 0 ? -w : w;
        }
        b.kRegime = correlatedCharges(ws, cfg.corr0, cfg.corr1);
        (b.kStress, b.worstScenario) = stressCharge(delta, cfg.stress, g.numStress());
        b.basis = Math.mulDiv(hedged, g.basisAddon(), BPS, Math.Rounding.Ceil);
        b.floorCharge = Math.mulDiv(absSum, g.floorRate(), BPS, Math.Rounding.Ceil);
        uint256 k = Math.max(Math.max(b.kRegime[0], b.kRegime[1]), Math.max(b.kRegime[2], b.kStress));
        b.maintenance = Math.max(k + b.basis, b.floorCharge);
        b.initial = Math.mulDiv(b.maintenance, g.alpha(), BPS, Math.Rounding.Ceil);
    }

    /// @notice sqrt(WS' rho WS) under the low, medium and high regimes, each rounded up (0 if not positive).
    function correlatedCharges(int256[8] memory ws, uint256 corr0, uint256 corr1)
        internal
        pure
        returns (uint256[3] memory charges)
    {
        int256 diag; // sum WS_k^2
        int256[3] memory cross; // sum_{k<l} rho4_r * WS_k * WS_l
        for (uint256 k; k < 8; ++k) {
            int256 wk = ws[k];
            if (wk == 0) continue;
            diag += wk * wk;
            for (uint256 l = k + 1; l < 8; ++l) {
                int256 wl = ws[l];
                if (wl == 0) continue;
                int256 rho = RiskConfig.correlation(corr0, corr1, RiskConfig.pairIndex(k, l));
                int256 prod = wk * wl;
                cross[0] += prod * _max(8 * rho - RHO4_ONE, 3 * rho);
                cross[1] += prod * (4 * rho);
                cross[2] += prod * _min(5 * rho, RHO4_ONE);
            }
        }
        for (uint256 r; r < 3; ++r) {
            int256 q = diag * RHO4_ONE + 2 * cross[r];
            if (q > 0) charges[r] = Math.sqrt(uint256(ceilDiv(q, RHO4_ONE)), Math.Rounding.Ceil);
        }
    }

    /// @notice Worst loss over the stress vectors, rounded up, and its index; zero when no vector loses.
    function stressCharge(int256[8] memory delta, uint256[] memory stress, uint256 n)
        internal
        pure
        returns (uint256 worst, uint256 index)
    {
        for (uint256 s; s < n; ++s) {
            int256 pnl; // bps-scaled P&L of the account under vector s
            for (uint256 k; k < 8; ++k) {
                if (delta[k] != 0) pnl += RiskConfig.shock(stress, s, k) * delta[k];
            }
            if (pnl < 0) {
                uint256 loss = uint256(ceilDiv(-pnl, int256(BPS)));
                if (loss > worst) (worst, index) = (loss, s);
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
