// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ICrossMarginVault, IVaultTypes} from "../../contracts/interfaces/ICrossMarginVault.sol";
import {LiquidationLooper} from "../../contracts/test/LiquidationLooper.sol";

/// @notice Tries a liquidation without keeping it: every function ends by reverting, with `Accepted` when the vault
///         accepted the call (so a caller's try/catch learns the outcome and the state is untouched) and with the
///         vault's own error otherwise. Not a fuzzing target.
contract LivenessProbe {
    /// @notice The vault accepted the call(s); `value` is the reward, or the number of successful loop iterations.
    error Accepted(uint256 value);

    ICrossMarginVault public immutable vault;
    LiquidationLooper public immutable looper;

    constructor(ICrossMarginVault vault_, LiquidationLooper looper_) {
        vault = vault_;
        looper = looper_;
    }

    /// @notice `vault.liquidate(account, items)`, then revert.
    function liquidate(uint256 account, IVaultTypes.LiquidationItem[] calldata items) external {
        revert Accepted(vault.liquidate(account, items));
    }

    /// @notice Settles `account`'s fixed option positions in `slots` (anyone may), then `vault.liquidate(account,
    ///         items)`, then revert: an account below MM holding expired, fixed positions is liquidated after they are
    ///         turned into cash (a fixed position is not a liquidation item: it has no risk left).
    function settleAndLiquidate(uint256 account, uint256[] calldata slots, IVaultTypes.LiquidationItem[] calldata items)
        external
    {
        if (slots.length != 0) vault.settleExpired(account, slots);
        revert Accepted(vault.liquidate(account, items));
    }

    /// @notice The looper in its non-strict mode (stops at the first refusal), then revert with how many calls passed.
    function loop(uint256 account, IVaultTypes.LiquidationItem[] calldata items, uint256 times) external {
        (uint256 calls,) = looper.loop(account, items, times, false);
        revert Accepted(calls);
    }

    /// @notice Decodes a probe's revert data: (true, value) for `Accepted(value)`, (false, 0) for a refusal.
    function outcome(bytes memory data) external pure returns (bool accepted, uint256 value) {
        if (data.length != 36 || bytes4(data) != Accepted.selector) return (false, 0);
        assembly ("memory-safe") {
            value := mload(add(data, 36))
        }
        return (true, value);
    }
}
