// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ICrossMarginVault} from "../interfaces/ICrossMarginVault.sol";

/// @notice Test and benchmark helper: deposits into many accounts in one transaction (anyone may deposit into any
///         account), so suites and benchmarks can build books of thousands of accounts quickly.
contract BookSeeder {
    ICrossMarginVault public immutable vault;

    constructor(ICrossMarginVault vault_) {
        vault = vault_;
    }

    /// @notice Pulls the sum of `amounts` of `token` from the caller, then deposits `amounts[i]` into `accounts[i]`.
    function depositMany(IERC20 token, uint256[] calldata accounts, uint256[] calldata amounts) external {
        uint256 total;
        for (uint256 i; i < amounts.length; ++i) {
            total += amounts[i];
        }
        token.transferFrom(msg.sender, address(this), total);
        token.approve(address(vault), total);
        for (uint256 i; i < accounts.length; ++i) {
            if (amounts[i] != 0) vault.deposit(accounts[i], address(token), amounts[i]);
        }
    }
}
