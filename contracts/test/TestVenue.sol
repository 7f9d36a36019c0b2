// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ICrossMarginVault} from "../interfaces/ICrossMarginVault.sol";

/// @notice Test and benchmark venue: settles trades without signatures, so suites can build many portfolios quickly.
///         Never register it as a venue outside a local chain: anyone can trade any account through it.
contract TestVenue {
    ICrossMarginVault public immutable vault;

    constructor(ICrossMarginVault vault_) {
        vault = vault_;
    }

    function trade(uint256 buyer, uint256 seller, uint256 market, uint256 size, uint256 price, uint256 fee) external {
        vault.settleTrade(buyer, seller, market, size, price, fee, fee);
    }

    function tradeOption(uint256 buyer, uint256 seller, uint256 slot, uint256 size, uint256 price, uint256 fee)
        external
    {
        vault.settleOptionTrade(buyer, seller, slot, size, price, fee, fee);
    }

    /// @notice Opens the same trade between `maker` (seller) and each of `takers` (buyers, size may be negative).
    function tradeMany(uint256 maker, uint256[] calldata takers, uint256 market, int256[] calldata sizes, uint256 price)
        external
    {
        for (uint256 i; i < takers.length; ++i) {
            int256 q = sizes[i];
            if (q > 0) vault.settleTrade(takers[i], maker, market, uint256(q), price, 0, 0);
            else if (q < 0) vault.settleTrade(maker, takers[i], market, uint256(-q), price, 0, 0);
        }
    }
}
