// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ICrossMarginVault} from "../interfaces/ICrossMarginVault.sol";

/// @notice Test helper (tests/adversarial/test_options.py): in one transaction, liquidates an account's option
///         positions again and again and, after each call, tries to reopen them with a venue call (`reopen`, sent to
///         `venue` as is), to farm keeper rewards. Its rewards are credited to its own subaccount 0.
contract OptionLoopAttacker {
    ICrossMarginVault public immutable vault;

    constructor(ICrossMarginVault vault_) {
        vault = vault_;
    }

    /// @return liquidations Calls the vault accepted.
    /// @return reopened Reopening calls that went through.
    /// @return rewards The sum of the rewards (USD 1e18).
    function run(
        uint256 target,
        ICrossMarginVault.LiquidationItem[] calldata items,
        uint256 times,
        address venue,
        bytes calldata reopen
    ) external returns (uint256 liquidations, uint256 reopened, uint256 rewards) {
        for (uint256 i; i < times; ++i) {
            try vault.liquidate(target, items) returns (uint256 r) {
                rewards += r;
                ++liquidations;
            } catch {
                break;
            }
            // slither-disable-next-line low-level-calls (a test helper replaying a prepared venue call)
            (bool ok,) = venue.call(reopen);
            if (ok) ++reopened;
        }
    }
}
