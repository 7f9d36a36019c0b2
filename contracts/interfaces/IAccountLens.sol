// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IAccountLens — batch views of account health for keepers and interfaces.
/// @notice One call returns, for every account asked, what a keeper needs to rank and act: equity, maintenance and
///         initial margin, the standard per-position requirement, the accrued funding of its positions, and the net delta per asset (USD 1e18). Call it
///         pinned to one block (`eth_call` at a block number) so every row is from the same state and prices.
interface IAccountLens {
    struct AccountHealth {
        uint256 account;
        int256 equity;
        int256 funding; // accrued funding of its positions (part of equity)
        uint256 maintenance;
        uint256 initial;
        uint256 standard;
        int256[8] delta;
    }

    /// @notice Health of each account in `accounts` (reverts if any price it needs is invalid).
    function healthOf(uint256[] calldata accounts) external view returns (AccountHealth[] memory);
    /// @notice (equity, MM) only: the cheapest screen of many accounts.
    function equityAndMaintenance(uint256[] calldata accounts)
        external
        view
        returns (int256[] memory equity, uint256[] memory maintenance);
}
