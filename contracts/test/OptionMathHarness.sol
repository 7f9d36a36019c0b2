// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {FixedPointMathLib} from "solady/src/utils/FixedPointMathLib.sol";
import {OptionMath} from "../libraries/OptionMath.sol";

/// @notice Test-only: exposes the pure option library so it can be compared with the Python mirror
///         (`offchain.margin.optionmath`), in batches, and measures the gas of one call (`gasleft()` before and after,
///         so the figure includes reading the arguments from memory and the two GAS opcodes).
contract OptionMathHarness {
    function normCdf(int256 x) external pure returns (uint256) {
        return OptionMath.normCdf(x);
    }

    function price(bool isCall, uint256 spot, uint256 strike, int256 lnMoneyness, uint256 stdDev)
        external
        pure
        returns (uint256)
    {
        return OptionMath.price(isCall, spot, strike, lnMoneyness, stdDev);
    }

    function lnWad(uint256 x) external pure returns (int256) {
        return OptionMath.lnWad(x);
    }

    function stdDev(uint256 sigmaWad, uint256 secondsToExpiry) external pure returns (uint256) {
        return OptionMath.stdDev(sigmaWad, secondsToExpiry);
    }

    /// @notice N(x) of each x and the gas of each call.
    function normCdfBatch(int256[] memory xs) external view returns (uint256[] memory values, uint256[] memory gas) {
        values = new uint256[](xs.length);
        gas = new uint256[](xs.length);
        for (uint256 i; i < xs.length; ++i) {
            int256 x = xs[i];
            uint256 g = gasleft();
            uint256 v = OptionMath.normCdf(x);
            gas[i] = g - gasleft();
            values[i] = v;
        }
    }

    /// @notice The price of each option (arrays of one length) and the gas of each call.
    function priceBatch(
        bool[] memory isCall,
        uint256[] memory spot,
        uint256[] memory strike,
        int256[] memory lnMoneyness,
        uint256[] memory stdDevs
    ) external view returns (uint256[] memory values, uint256[] memory gas) {
        values = new uint256[](spot.length);
        gas = new uint256[](spot.length);
        for (uint256 i; i < spot.length; ++i) {
            (bool c, uint256 s, uint256 k) = (isCall[i], spot[i], strike[i]);
            (int256 m, uint256 v) = (lnMoneyness[i], stdDevs[i]);
            uint256 g = gasleft();
            uint256 p = OptionMath.price(c, s, k, m, v);
            gas[i] = g - gasleft();
            values[i] = p;
        }
    }

    function lnWadBatch(uint256[] memory xs) external pure returns (int256[] memory values) {
        values = new int256[](xs.length);
        for (uint256 i; i < xs.length; ++i) {
            values[i] = OptionMath.lnWad(xs[i]);
        }
    }

    function expWadBatch(int256[] memory xs) external pure returns (int256[] memory values) {
        values = new int256[](xs.length);
        for (uint256 i; i < xs.length; ++i) {
            values[i] = FixedPointMathLib.expWad(xs[i]);
        }
    }

    function sqrtBatch(uint256[] memory xs) external pure returns (uint256[] memory values) {
        values = new uint256[](xs.length);
        for (uint256 i; i < xs.length; ++i) {
            values[i] = FixedPointMathLib.sqrt(xs[i]);
        }
    }

    function stdDevBatch(uint256[] memory sigmas, uint256[] memory seconds_)
        external
        pure
        returns (uint256[] memory values)
    {
        values = new uint256[](sigmas.length);
        for (uint256 i; i < sigmas.length; ++i) {
            values[i] = OptionMath.stdDev(sigmas[i], seconds_[i]);
        }
    }
}
