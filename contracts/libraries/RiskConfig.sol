// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IRiskParameters} from "../interfaces/IRiskParameters.sol";

/// @title RiskConfig — decoders for the packed parameter words (layouts in IRiskParameters).
library RiskConfig {
    uint256 internal constant MAX_ASSETS = 8;
    uint256 internal constant MAX_COLLATERALS = 16;
    uint256 internal constant MAX_MARKETS = 16;
    uint256 internal constant MAX_STRESS = 16;

    /// @notice A DEPTH slot counts 10 million USD (1e18 USD units).
    uint256 internal constant DEPTH_UNIT = 1e25;
    /// @notice Largest volatility add-on (bps above 100%): a scaler of at most 400%.
    uint256 internal constant MAX_VOL_ADDON = 3e4;

    uint256 internal constant PAUSE_TRADES = 1;
    uint256 internal constant PAUSE_DEPOSITS = 2;

    /// @notice Reads the 12 margin words from the data contract at `pointer` into `cfg` (two EXTCODECOPYs).
    function readMarginConfig(address pointer, IRiskParameters.MarginConfig memory cfg) internal view {
        uint256[8] memory stress = cfg.stress;
        assembly ("memory-safe") {
            extcodecopy(pointer, cfg, 1, 128) // global, corr0, corr1, haircuts: the struct's first four words
            extcodecopy(pointer, stress, 129, 256) // the eight stress words
            extcodecopy(pointer, add(cfg, 0xa0), 993, 64) // ADDON and DEPTH: the struct's words after `stress`
        }
    }

    function u16(uint256 word, uint256 slot) internal pure returns (uint256) {
        unchecked {
            return (word >> (16 * slot)) & 0xffff; // slot < 16
        }
    }

    function i16(uint256 word, uint256 bitOffset) internal pure returns (int256) {
        return int256(int16(uint16(word >> bitOffset)));
    }

    function setU16(uint256 word, uint256 slot, uint256 value) internal pure returns (uint256) {
        return (word & ~(uint256(0xffff) << (16 * slot))) | (value << (16 * slot));
    }

    function setI16(uint256 word, uint256 bitOffset, int256 value) internal pure returns (uint256) {
        return (word & ~(uint256(0xffff) << bitOffset)) | (uint256(uint16(int16(value))) << bitOffset);
    }

    // ---- MARGIN word ----
    function riskWeight(uint256 g, uint256 asset) internal pure returns (uint256) {
        return u16(g, asset);
    }

    function alpha(uint256 g) internal pure returns (uint256) {
        return u16(g, 8);
    }

    function basisAddon(uint256 g) internal pure returns (uint256) {
        return u16(g, 9);
    }

    function floorRate(uint256 g) internal pure returns (uint256) {
        return u16(g, 10);
    }

    function numStress(uint256 g) internal pure returns (uint256) {
        return (g >> 176) & 0xff;
    }

    // ---- ADDON and DEPTH words ----
    /// @notice The volatility scaler of `asset`, bps (1e4: none).
    function volScaler(uint256 addons, uint256 asset) internal pure returns (uint256) {
        return 1e4 + u16(addons, asset);
    }

    function correlationBreak(uint256 addons) internal pure returns (uint256) {
        return u16(addons, 8);
    }

    /// @notice The liquidation depth of `market`, USD 1e18 (0: none).
    function depth(uint256 depths, uint256 market) internal pure returns (uint256) {
        return u16(depths, market) * DEPTH_UNIT;
    }

    // ---- OPTION word ----
    /// @notice The skew of `asset`, bps of volatility per unit of |ln(S/K)|.
    function skew(uint256 o, uint256 asset) internal pure returns (uint256) {
        return u16(o, asset);
    }

    function volUp(uint256 o) internal pure returns (uint256) {
        return u16(o, 8);
    }

    function volDown(uint256 o) internal pure returns (uint256) {
        return u16(o, 9);
    }

    /// @notice Spot points per side of the option grid (0: options not configured).
    function gridSteps(uint256 o) internal pure returns (uint256) {
        return (o >> 160) & 0xff;
    }

    function shortMin(uint256 o) internal pure returns (uint256) {
        return (o >> 168) & 0xffff;
    }

    function optionBand(uint256 o) internal pure returns (uint256) {
        return (o >> 184) & 0xffff;
    }

    /// @notice Max open interest per series, whole USD.
    function optionMaxOpenInterest(uint256 o) internal pure returns (uint256) {
        return o >> 200;
    }

    // ---- correlation pairs ----
    /// @notice Index of the pair (a, b), a != b, in the order (0,1), (0,2) .. (6,7).
    function pairIndex(uint256 a, uint256 b) internal pure returns (uint256) {
        (uint256 k, uint256 l) = a < b ? (a, b) : (b, a);
        return (k * (15 - k)) / 2 + (l - k - 1);
    }

    function correlation(uint256 corr0, uint256 corr1, uint256 p) internal pure returns (int256) {
        return i16(p < 16 ? corr0 : corr1, 16 * (p % 16));
    }

    // ---- CONTROL word ----
    function paused(uint256 c, uint256 flag) internal pure returns (bool) {
        return c & flag != 0;
    }

    function priceBand(uint256 c) internal pure returns (uint256) {
        return (c >> 8) & 0xffff;
    }

    function loosenDelay(uint256 c) internal pure returns (uint256) {
        return (c >> 24) & 0xffffffff;
    }

    // ---- LIQUIDATION word ----
    function closeFactor(uint256 l) internal pure returns (uint256) {
        return u16(l, 0);
    }

    function penalty(uint256 l) internal pure returns (uint256) {
        return u16(l, 1);
    }

    function keeperShare(uint256 l) internal pure returns (uint256) {
        return u16(l, 2);
    }

    function deepThreshold(uint256 l) internal pure returns (uint256) {
        return u16(l, 3);
    }

    function minKeeperReward(uint256 l) internal pure returns (uint256) {
        return (l >> 64) & type(uint96).max;
    }

    function dust(uint256 l) internal pure returns (uint256) {
        return l >> 160;
    }

    // ---- MARKET word ----
    function standardRate(uint256 m) internal pure returns (uint256) {
        return u16(m, 0);
    }

    function maxOpenInterest(uint256 m) internal pure returns (uint256) {
        return (m >> 16) & type(uint112).max;
    }

    function maxPositionSize(uint256 m) internal pure returns (uint256) {
        return (m >> 128) & type(uint112).max;
    }

    // ---- FUNDING word ----
    function fundingWindow(uint256 f) internal pure returns (uint256) {
        return f & 0xffffffff;
    }

    function fundingPeriod(uint256 f) internal pure returns (uint256) {
        return (f >> 32) & 0xffffffff;
    }

    function premiumCap(uint256 f) internal pure returns (uint256) {
        return u16(f, 4);
    }

    function premiumDepth(uint256 f) internal pure returns (uint256) {
        return u16(f, 5);
    }

    function maxFundingRate(uint256 f) internal pure returns (uint256) {
        return u16(f, 6);
    }

    function fundingClamp(uint256 f) internal pure returns (uint256) {
        return u16(f, 7);
    }

    function interestRate(uint256 f) internal pure returns (int256) {
        return i16(f, 128);
    }

    function adlShare(uint256 f) internal pure returns (uint256) {
        return u16(f, 9);
    }
}
