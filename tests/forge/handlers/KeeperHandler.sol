// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Protocol} from "../Deploy.sol";
import {Env} from "../Env.sol";
import {Ledger} from "../Ledger.sol";
import {HandlerBase} from "./HandlerBase.sol";

/// @title KeeperHandler — an honest keeper with no capital.
/// @notice Liquidates accounts below MM with proportional takes of every position and priced collateral (1 bps to
///         100% of maxTake) and withdraws the rewards credited to its subaccount 0.
contract KeeperHandler is HandlerBase {
    constructor(Protocol memory p_, Ledger ledger_, uint256 salt_) HandlerBase(p_, ledger_, salt_) {
        ledger_.register(_account(0), false);
    }

    /// @notice Liquidates the first account below MM from position `targetSeed` of the ledger's list, taking
    ///         `fractionSeed` (1 bps to 100%) of maxTake. Nothing happens when every account is healthy.
    function liquidate(uint256 targetSeed, uint256 fractionSeed) external step {
        (targetSeed, fractionSeed) = (_mix(targetSeed), _mix(fractionSeed));
        (bool found, uint256 target) = _liquidatable(_allAccounts(), targetSeed);
        if (!found) return;
        _liquidate(target, fractionSeed % 4 == 0 ? Env.BPS : Env.bound(fractionSeed, 1, Env.BPS), 0);
    }

    /// @notice Settles the expired, fixed option positions of the first account holding some from `targetSeed` (the
    ///         fund included: anyone may settle anyone's).
    function settleExpired(uint256 targetSeed) external step {
        targetSeed = _mix(targetSeed);
        uint256[] memory all = _allAccounts();
        for (uint256 i; i <= all.length; ++i) {
            uint256 a = i == all.length ? vault.fundAccount() : all[(targetSeed + i) % all.length];
            if (ledger.fixedSlots(a).length == 0) continue;
            ledger.touch(a);
            _settleFixed(a);
            return;
        }
    }

    /// @notice Withdraws 1 bps to 100% of the rewards (USDC claim) of subaccount 0.
    function withdrawRewards(uint256 fractionSeed) external step {
        fractionSeed = _mix(fractionSeed);
        _withdraw(_account(0), USDC, Env.bound(fractionSeed, 1, Env.BPS));
    }
}
