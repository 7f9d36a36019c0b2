// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IRiskParameters} from "../interfaces/IRiskParameters.sol";
import {PortfolioMargin} from "../libraries/PortfolioMargin.sol";
import {OptionMargin} from "../libraries/OptionMargin.sol";

/// @notice Test-only: exposes the pure margin library so its arithmetic can be compared with the Python mirror.
contract MarginHarness {
    function breakdown(
        int256[8] memory delta,
        uint256[8] memory gross,
        uint256 concentration,
        IRiskParameters.MarginConfig memory cfg
    ) external pure returns (PortfolioMargin.Breakdown memory) {
        OptionMargin.Risk memory none;
        return PortfolioMargin.breakdown(delta, gross, concentration, none, cfg);
    }

    function breakdownWithOptions(
        int256[8] memory delta,
        uint256[8] memory gross,
        uint256 concentration,
        OptionMargin.Risk memory opt,
        IRiskParameters.MarginConfig memory cfg
    ) external pure returns (PortfolioMargin.Breakdown memory) {
        return PortfolioMargin.breakdown(delta, gross, concentration, opt, cfg);
    }

    function optionRisk(OptionMargin.Position[] memory ps, OptionMargin.Inputs memory in_)
        external
        pure
        returns (OptionMargin.Risk memory)
    {
        return OptionMargin.risk(ps, in_);
    }

    /// @return used The gas `OptionMargin.risk` used (the harness call overhead excluded), and the memory size
    ///         (the free memory pointer) before and after.
    function optionRiskGas(OptionMargin.Position[] memory ps, OptionMargin.Inputs memory in_)
        external
        view
        returns (uint256 used, uint256 memoryBefore, uint256 memoryAfter)
    {
        assembly {
            memoryBefore := mload(0x40)
        }
        used = gasleft();
        OptionMargin.risk(ps, in_);
        used -= gasleft();
        assembly {
            memoryAfter := mload(0x40)
        }
    }

    function concentrationCharge(uint256 notional, uint256 depth) external pure returns (uint256) {
        return PortfolioMargin.concentrationCharge(notional, depth);
    }

    function positionValueDown(int256 size, uint256 price) external pure returns (int256) {
        return PortfolioMargin.positionValueDown(size, price);
    }

    function tokenValueDown(uint256 amount, uint256 price, uint256 decimals) external pure returns (uint256) {
        return PortfolioMargin.tokenValueDown(amount, price, decimals);
    }
}
