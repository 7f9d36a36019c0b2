// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IAccountLens} from "./interfaces/IAccountLens.sol";
import {ICrossMarginVault} from "./interfaces/ICrossMarginVault.sol";

/// @title AccountLens
/// @notice See IAccountLens. Reads through the vault's own views, so the numbers are the vault's.
contract AccountLens is IAccountLens {
    ICrossMarginVault public immutable vault;

    constructor(ICrossMarginVault vault_) {
        vault = vault_;
    }

    /// @inheritdoc IAccountLens
    function healthOf(uint256[] calldata accounts) external view returns (AccountHealth[] memory out) {
        out = new AccountHealth[](accounts.length);
        for (uint256 i; i < accounts.length; ++i) {
            ICrossMarginVault.MarginDetail memory d = vault.marginDetail(accounts[i]);
            out[i] = AccountHealth(accounts[i], d.equity, d.funding, d.margin.maintenance, d.margin.initial, d.standard, d.delta);
        }
    }

    /// @inheritdoc IAccountLens
    function equityAndMaintenance(uint256[] calldata accounts)
        external
        view
        returns (int256[] memory equity, uint256[] memory maintenance)
    {
        equity = new int256[](accounts.length);
        maintenance = new uint256[](accounts.length);
        for (uint256 i; i < accounts.length; ++i) {
            // slither-disable-next-line unused-return (the screen needs E and MM only; IM is dropped on purpose)
            (equity[i], maintenance[i],) = vault.margin(accounts[i]);
        }
    }
}
