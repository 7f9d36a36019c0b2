// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ICrossMarginVault, IVaultTypes} from "../../contracts/interfaces/ICrossMarginVault.sol";
import {Env} from "./Env.sol";
import {LivenessProbe} from "./Probe.sol";
import {Valuation} from "./Valuation.sol";
import {Violations} from "./Violations.sol";

/// @notice E5, liveness of liquidations: after every change of prices, feeds, time or parameters (and every socialised
///         loss) each account below MM must accept a proportional take of all its positions and priced collateral at
///         maxTake. Tried through the LivenessProbe, which reverts whatever happens, so nothing is kept.
abstract contract Liveness is Valuation, Violations {
    /// @dev Collateral worth less than this (true price) is dust for E5.
    uint256 internal constant DUST_USD = 1e18;
    LivenessProbe public immutable probe;

    /// @notice E5 probes run and accepted; accounts skipped (their evaluation reverts: a position on an asset without
    ///         a valid price) or waiting (only collateral without a valid price left, worth at least 1 USD).
    uint256 public e5Probes;
    uint256 public e5Accepted;
    uint256 public e5Skipped;
    uint256 public e5Waiting;

    constructor(LivenessProbe probe_) {
        probe = probe_;
    }

    /// @notice Tries, without keeping it, a proportional liquidation at maxTake of every account below MM.
    function probeAll() public {
        for (uint256 i; i < accounts.length; ++i) {
            _probe(accounts[i]);
        }
        Env.VM.recordLogs(); // the probes' reverted events are recorded: drop them
    }

    function _probe(uint256 account) internal {
        (bool ok, int256 e, uint256 mm,) = margin(account);
        if (!ok) {
            ++e5Skipped; // a position on an asset without a valid price: nothing can be evaluated until it has one
            return;
        }
        if (e >= int256(mm)) return;
        (IVaultTypes.LiquidationItem[] memory items,) = proportionalTake(account, 1e4);
        ++e5Probes;
        try probe.liquidate(account, items) {}
        catch (bytes memory data) {
            (bool accepted,) = probe.outcome(data);
            if (accepted) {
                ++e5Accepted;
            } else if (
                bytes4(data) == IVaultTypes.LiquidationEmpty.selector && unpricedValue(account) >= DUST_USD
            ) {
                // nothing priced can be taken and the account holds collateral without a valid price worth at least
                // 1 USD at its true price: it cannot be seized (R3), waiting for its price is the rule. (Dust of a
                // stale token, worth less, must never block a liquidation: R3.)
                ++e5Waiting;
            } else {
                _fail(Check.E5, account, e, int256(mm), _describeRevert(data));
            }
        }
    }

    /// @notice True value (USD 1e18) of `account`'s collateral without a valid price.
    function unpricedValue(uint256 account) public view returns (uint256 value) {
        (, uint256 collaterals) = vault.masksOf(account);
        for (uint256 j; collaterals >> j != 0; ++j) {
            if ((collaterals >> j) & 1 != 0 && !_priced(j)) value += tokenUsd(j, vault.collateralOf(account, j));
        }
    }

    /// @notice Items taking `fractionBps` of maxTake from every position and every priced collateral, in proportion
    ///         (everything when maxTake is everything and the fraction is 100%). `holdsSomething`: the account has
    ///         positions or collateral at all.
    function proportionalTake(uint256 account, uint256 fractionBps)
        public
        view
        returns (IVaultTypes.LiquidationItem[] memory items, bool holdsSomething)
    {
        (uint256 markets, uint256 collaterals) = vault.masksOf(account);
        holdsSomething = markets | collaterals != 0;
        (uint256 take, uint256 gross) = maxTakeOf(account);
        bool all = take >= gross && fractionBps == 1e4;
        uint256 n = _count(markets) + _count(collaterals);
        // each item's value may round up by < 1 wei against the proportional share: keep n + 1 wei below maxTake
        uint256 target = take * fractionBps / 1e4;
        target = target > n + 1 ? target - n - 1 : 0;
        items = new IVaultTypes.LiquidationItem[](n);
        uint256 count;
        for (uint256 m; markets >> m != 0; ++m) {
            if ((markets >> m) & 1 == 0) continue;
            (int256 size,) = vault.positionOf(account, m);
            uint256 amount = size < 0 ? uint256(-size) : uint256(size);
            if (!all) amount = Math.mulDiv(amount, target, gross);
            if (amount != 0) items[count++] = IVaultTypes.LiquidationItem(0, uint8(m), amount);
        }
        for (uint256 j; collaterals >> j != 0; ++j) {
            if ((collaterals >> j) & 1 == 0 || !_priced(j)) continue; // collateral j is on asset j
            uint256 amount = vault.collateralOf(account, j);
            if (!all) amount = Math.mulDiv(amount, target, gross);
            if (amount != 0) items[count++] = IVaultTypes.LiquidationItem(1, uint8(j), amount);
        }
        assembly ("memory-safe") {
            mstore(items, count)
        }
    }

    /// @notice The vault's maxTake for `account` now, and its gross (positions and priced collateral, USD 1e18).
    function maxTakeOf(uint256 account) public view returns (uint256 take, uint256 gross) {
        IVaultTypes.MarginDetail memory d = vault.marginDetail(account);
        for (uint256 k; k < 8; ++k) {
            gross += d.gross[k];
        }
        (uint256 liq,) = p.params.liquidationConfig();
        take = vault.maxTake(d.equity, d.margin.maintenance, d.margin.initial, gross, liq);
    }

    function _priced(uint256 asset) internal view returns (bool) {
        try p.oracle.price(asset) returns (uint256) {
            return true;
        } catch {
            return false;
        }
    }

    function _count(uint256 mask) internal pure returns (uint256 n) {
        for (; mask != 0; mask &= mask - 1) {
            ++n;
        }
    }
}
