// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ICrossMarginVault} from "../../contracts/interfaces/ICrossMarginVault.sol";
import {IOptionMarkets} from "../../contracts/interfaces/IOptionMarkets.sol";
import {OptionMargin} from "../../contracts/libraries/OptionMargin.sol";
import {OptionMath} from "../../contracts/libraries/OptionMath.sol";
import {PortfolioMargin} from "../../contracts/libraries/PortfolioMargin.sol";
import {RiskConfig} from "../../contracts/libraries/RiskConfig.sol";
import {Protocol} from "./Deploy.sol";
import {Env} from "./Env.sol";

/// @notice What the campaign knows about the world: the protocol, the tracked accounts and the TRUE price of each
///         asset (the last price the market handler set, whatever the feed currently answers: stale, zero or
///         negative). Values here are marked at true prices without haircuts, so an account's value does not depend
///         on the oracle's state or the risk parameters, only on what it holds.
abstract contract Valuation {
    using RiskConfig for uint256;

    Protocol internal p;
    ICrossMarginVault internal vault;
    uint256 internal fund;

    /// @notice Every tracked account but the fund (honest, attacker, looper and keeper accounts).
    uint256[] public accounts;
    /// @notice The attacker's accounts: its subaccounts and the LiquidationLooper's subaccount 0 (where the looper's
    ///         rewards are credited).
    uint256[] public attackerAccounts;
    mapping(uint256 account => bool) public isAttackerAccount;
    /// @notice Callers of `liquidate` whose rewards are the attacker's (the attacker handler and the looper).
    mapping(address keeper => bool) public isAttackerKeeper;
    /// @notice True price of each asset (USD 1e18).
    uint256[5] public truePrice;

    function numAccounts() external view returns (uint256) {
        return accounts.length;
    }

    /// @notice Value of `account` at true prices: settlement claim + collateral (no haircut) + unrealised P&L +
    ///         accrued funding (the vault's view; none while the market's feed is broken: the ledger moves its
    ///         baselines after every world step, which is where feeds break and mend, time passes, parameters move)
    ///         + its option positions (`optionValueOf`).
    function valueOf(uint256 account) public view returns (int256 v) {
        (uint256 markets, uint256 collaterals) = vault.masksOf(account);
        v = vault.settlementOf(account);
        for (uint256 m; markets >> m != 0; ++m) {
            if ((markets >> m) & 1 == 0) continue;
            (int256 size, int256 openNotional) = vault.positionOf(account, m);
            v += _floorDiv(size * int256(truePrice[Env.marketAsset(m)]), 1e18) - openNotional + accruedOf(account, m);
        }
        for (uint256 j; collaterals >> j != 0; ++j) {
            if ((collaterals >> j) & 1 == 0) continue;
            v += int256(tokenUsd(j, vault.collateralOf(account, j)));
        }
        v += optionValueOf(account);
    }

    /// @notice Value of `account`'s option positions: floor(size * unit), the unit at the model mark for the TRUE price
    ///         and the volatility the vault uses outside risk-adding actions (the feed's last answer clamped to its
    ///         bounds: the volatility feed is the only volatility there is), or the payoff at the fixing once fixed.
    function optionValueOf(uint256 account) public view returns (int256 v) {
        for (uint256 m = vault.optionsOf(account); m != 0; m &= m - 1) {
            uint256 slot = _lowest(m);
            v += PortfolioMargin.positionValueDown(p.options.sizeOf(account, slot), unitValue(slot));
        }
    }

    /// @notice The value of one unit of the series in `slot` (see `optionValueOf`).
    function unitValue(uint256 slot) public view returns (uint256) {
        IOptionMarkets.Series memory s = p.options.series(slot);
        if (s.fixedPrice != 0) return OptionMargin.payoff(s.isCall, s.strike, s.fixedPrice);
        uint256 spot = truePrice[s.asset];
        return OptionMargin.unitPrice(
            s.isCall,
            spot,
            s.strike,
            OptionMath.lnWad(spot),
            OptionMath.lnWad(s.strike),
            p.oracle.vols(1 << s.asset, false)[s.asset],
            p.params.optionWord().skew(s.asset),
            OptionMargin.sqrtYears(s.expiry, block.timestamp)
        );
    }

    /// @notice The slots of `account`'s positions in fixed series (settleable into cash).
    function fixedSlots(uint256 account) public view returns (uint256[] memory slots) {
        uint256 mask = vault.optionsOf(account);
        slots = new uint256[](32);
        uint256 n;
        for (uint256 m = mask; m != 0; m &= m - 1) {
            uint256 slot = _lowest(m);
            if (p.options.series(slot).fixedPrice != 0) slots[n++] = slot;
        }
        assembly ("memory-safe") {
            mstore(slots, n)
        }
    }

    function _lowest(uint256 x) internal pure returns (uint256 i) {
        while ((x >> i) & 1 == 0) {
            ++i;
        }
    }

    /// @notice Funding accrued by the position of `account` in `market` (0 while its asset has no valid price).
    function accruedOf(uint256 account, uint256 market) public view returns (int256) {
        try vault.fundingOf(account, market) returns (int256 accrued, int256) {
            return accrued;
        } catch {
            return 0;
        }
    }

    /// @notice The attacker's value: the sum over its accounts of max(value, 0) (each subaccount is margined and
    ///         written off on its own: a debt left in one is limited liability, not a gain of another).
    function attackerValue() public view returns (int256 v) {
        for (uint256 i; i < attackerAccounts.length; ++i) {
            int256 a = valueOf(attackerAccounts[i]);
            if (a > 0) v += a;
        }
    }

    /// @notice USD value (1e18) of `amount` of collateral `id` at its true price, rounded down.
    function tokenUsd(uint256 id, uint256 amount) public view returns (uint256) {
        return amount * truePrice[id] / 10 ** Env.decimals(id);
    }

    /// @notice Equity, MM and IM from the vault, or ok = false when its evaluation reverts (a position on an asset
    ///         without a valid price).
    function margin(uint256 account) public view returns (bool ok, int256 e, uint256 mm, uint256 im) {
        try vault.margin(account) returns (int256 e_, uint256 mm_, uint256 im_) {
            return (true, e_, mm_, im_);
        } catch {
            return (false, 0, 0, 0);
        }
    }

    function settlementIndex() public view returns (uint256 index) {
        (index,) = vault.settlementIndex();
    }

    function _floorDiv(int256 a, int256 b) internal pure returns (int256 q) {
        q = a / b;
        if (a % b != 0 && a < 0) q -= 1;
    }
}
