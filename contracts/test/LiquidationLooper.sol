// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ICrossMarginVault} from "../interfaces/ICrossMarginVault.sol";

/// @notice An attacker's helper (tests only): calls `liquidate` on the same account `times` times in one transaction,
///         each time with the same items, and stops at the first refusal unless `strict`. It keeps the rewards
///         (credited to its own subaccount 0), so a test can measure what slicing earns.
contract LiquidationLooper {
    ICrossMarginVault public immutable vault;

    constructor(ICrossMarginVault vault_) {
        vault = vault_;
    }

    /// @return calls How many liquidations succeeded. @return rewards The sum of their rewards (USD 1e18).
    function loop(uint256 account, ICrossMarginVault.LiquidationItem[] calldata items, uint256 times, bool strict)
        external
        returns (uint256 calls, uint256 rewards)
    {
        for (uint256 i; i < times; ++i) {
            if (strict) {
                rewards += vault.liquidate(account, items);
            } else {
                try vault.liquidate(account, items) returns (uint256 r) {
                    rewards += r;
                } catch {
                    break;
                }
            }
            ++calls;
        }
    }
}
