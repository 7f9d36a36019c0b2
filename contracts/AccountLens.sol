// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IAccountLens} from "./interfaces/IAccountLens.sol";
import {ICrossMarginVault} from "./interfaces/ICrossMarginVault.sol";

/// @title AccountLens
/// @notice See IAccountLens. Reads through the vault's own views, so the numbers are the vault's.
contract AccountLens is IAccountLens {
    ICrossMarginVault public immutable vault;

    /// @dev The ABI size of ICrossMarginVault.MarginDetail (61 words) and where margin.maintenance starts in it (word
    ///      19 + 7: after equity, funding, standard, delta and gross, the breakdown's kRegime[3], kStress,
    ///      worstScenario, basis and floorCharge); margin.initial follows it.
    uint256 private constant DETAIL_BYTES = 61 * 32;
    uint256 private constant MAINTENANCE_AT = 26 * 32;

    constructor(ICrossMarginVault vault_) {
        vault = vault_;
    }

    /// @inheritdoc IAccountLens
    function healthOf(uint256[] calldata accounts) external view returns (AccountHealth[] memory out) {
        out = new AccountHealth[](accounts.length);
        address target = address(vault);
        bytes4 selector = ICrossMarginVault.marginDetail.selector;
        for (uint256 i; i < accounts.length; ++i) {
            AccountHealth memory h = out[i];
            uint256 account = accounts[i];
            h.account = account;
            int256[8] memory delta = h.delta;
            // The detail is 61 static words (MarginDetail: equity, funding, standard, delta[8], gross[8], the 13
            // words of the breakdown, the 29 of the option part): only the 12 used here are copied, no decoding of
            // the rest (an account with options would otherwise pay for its option part twice).
            assembly ("memory-safe") {
                let m := mload(0x40) // scratch at the free memory pointer, not kept
                mstore(m, selector)
                mstore(add(m, 4), account)
                if iszero(staticcall(gas(), target, m, 0x24, 0, 0)) {
                    returndatacopy(m, 0, returndatasize())
                    revert(m, returndatasize())
                }
                if lt(returndatasize(), DETAIL_BYTES) { revert(0, 0) }
                returndatacopy(add(h, 0x20), 0, 0x40) // equity, funding
                returndatacopy(add(h, 0x60), MAINTENANCE_AT, 0x40) // maintenance, initial
                returndatacopy(add(h, 0xa0), 0x40, 0x20) // standard
                returndatacopy(delta, 0x60, 0x100) // delta[8]
            }
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
