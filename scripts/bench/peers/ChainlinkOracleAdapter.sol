// SPDX-License-Identifier: MIT
pragma solidity 0.8.19;

import {IOracle} from "@morpho-org/morpho-blue/src/interfaces/IOracle.sol";

interface IAggregatorV3 {
    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80);
}

/// @title ChainlinkOracleAdapter
/// @notice Morpho Blue oracle over one Chainlink feed, read the way Morpho's ChainlinkOracle reads its base feed:
///         `latestRoundData`, a negative answer reverts, no staleness check, and the answer times a scale factor
///         fixed at deployment (the quote asset is taken as worth 1 USD, as with a single USD feed).
/// @dev `price()` is the price of 1 collateral token in loan tokens scaled by 1e36, so
///      SCALE_FACTOR = 10 ** (36 + loan decimals - collateral decimals - feed decimals).
contract ChainlinkOracleAdapter is IOracle {
    IAggregatorV3 public immutable FEED;
    uint256 public immutable SCALE_FACTOR;

    constructor(IAggregatorV3 feed, uint256 scaleFactor) {
        FEED = feed;
        SCALE_FACTOR = scaleFactor;
    }

    /// @inheritdoc IOracle
    function price() external view returns (uint256) {
        (, int256 answer,,,) = FEED.latestRoundData();
        require(answer >= 0, "negative answer");
        return SCALE_FACTOR * uint256(answer);
    }
}
