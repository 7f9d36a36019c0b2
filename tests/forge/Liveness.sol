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
    /// @notice E5 probes of accounts holding options, and of accounts whose fixed positions were settled first.
    uint256 public e5WithOptions;
    uint256 public e5SettledFirst;

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
        uint256[] memory fixedOnes = fixedSlots(account);
        if (fixedOnes.length != 0) ++e5SettledFirst;
        if (vault.optionsOf(account) != 0) ++e5WithOptions;
        try probe.settleAndLiquidate(account, fixedOnes, items) {}
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

    /// @notice Items taking `fractionBps` of maxTake from every position (perpetuals, and options in series not yet
    ///         fixed: kind 2) and every priced collateral, in proportion (everything when maxTake is everything and the
    ///         fraction is 100%). `holdsSomething`: the account has positions or collateral at all.
    function proportionalTake(uint256 account, uint256 fractionBps)
        public
        view
        returns (IVaultTypes.LiquidationItem[] memory items, bool holdsSomething)
    {
        (uint256 markets, uint256 collaterals) = vault.masksOf(account);
        holdsSomething = markets | collaterals | vault.optionsOf(account) != 0;
        (uint256 take, uint256 gross) = maxTakeOf(account);
        uint256 options = _liveOptions(account);
        uint256 n = _count(markets) + _count(collaterals) + _count(options);
        // each item's value may round up by < 1 wei against the proportional share: keep n + 1 wei below maxTake
        uint256 target = take * fractionBps / 1e4;
        target = target > n + 1 ? target - n - 1 : 0;
        if (take >= gross && fractionBps == 1e4) (target, gross) = (0, 0); // everything: whole items
        items = new IVaultTypes.LiquidationItem[](n);
        uint256 count = _linearItems(account, markets, collaterals, items, target, gross);
        count = _optionItems(account, options, items, count, target, gross);
        assembly ("memory-safe") {
            mstore(items, count)
        }
    }

    /// @dev Fills `items` with a kind-0 item per market of `markets` and a kind-1 item per priced collateral of
    ///      `collaterals`: the whole holding when `gross` is 0, else its share `target / gross`; returns the count.
    function _linearItems(
        uint256 account,
        uint256 markets,
        uint256 collaterals,
        IVaultTypes.LiquidationItem[] memory items,
        uint256 target,
        uint256 gross
    ) internal view returns (uint256 count) {
        for (uint256 m; markets >> m != 0; ++m) {
            if ((markets >> m) & 1 == 0) continue;
            (int256 size,) = vault.positionOf(account, m);
            uint256 amount = size < 0 ? uint256(-size) : uint256(size);
            if (gross != 0) amount = Math.mulDiv(amount, target, gross);
            if (amount != 0) items[count++] = IVaultTypes.LiquidationItem(0, uint8(m), amount);
        }
        for (uint256 j; collaterals >> j != 0; ++j) {
            if ((collaterals >> j) & 1 == 0 || !_priced(j)) continue; // collateral j is on asset j
            uint256 amount = vault.collateralOf(account, j);
            if (gross != 0) amount = Math.mulDiv(amount, target, gross);
            if (amount != 0) items[count++] = IVaultTypes.LiquidationItem(1, uint8(j), amount);
        }
    }

    /// @notice The vault's maxTake for `account` now, and its gross (positions, priced collateral and the notional
    ///         of live options, USD 1e18).
    function maxTakeOf(uint256 account) public view returns (uint256 take, uint256 gross) {
        IVaultTypes.MarginDetail memory d = vault.marginDetail(account);
        for (uint256 k; k < 8; ++k) {
            gross += d.gross[k];
        }
        gross += d.options.notional;
        (uint256 liq,) = p.params.liquidationConfig();
        take = vault.maxTake(d.equity, d.margin.maintenance, d.margin.initial, gross, liq);
    }

    /// @dev Appends to `items` (holding `count`) a kind-2 item per slot of `options`: the whole position when
    ///      `gross` is 0, else its share `target / gross`; returns the new count.
    function _optionItems(
        uint256 account,
        uint256 options,
        IVaultTypes.LiquidationItem[] memory items,
        uint256 count,
        uint256 target,
        uint256 gross
    ) internal view returns (uint256) {
        for (uint256 s; options >> s != 0; ++s) {
            if ((options >> s) & 1 == 0) continue;
            int256 size = p.options.sizeOf(account, s);
            uint256 amount = size < 0 ? uint256(-size) : uint256(size);
            if (gross != 0) amount = Math.mulDiv(amount, target, gross);
            if (amount != 0) items[count++] = IVaultTypes.LiquidationItem(2, uint8(s), amount);
        }
        return count;
    }

    /// @dev The slots of `account`'s positions in series not yet fixed (liquidation items of kind 2).
    function _liveOptions(uint256 account) internal view returns (uint256 live) {
        for (uint256 m = vault.optionsOf(account); m != 0; m &= m - 1) {
            uint256 slot = _lowest(m);
            if (p.options.series(slot).fixedPrice == 0) live |= 1 << slot;
        }
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
