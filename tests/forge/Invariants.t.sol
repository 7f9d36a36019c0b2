// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Deploy, Protocol} from "./Deploy.sol";
import {Env} from "./Env.sol";
import {IOptionMarkets} from "../../contracts/interfaces/IOptionMarkets.sol";
import {Ledger} from "./Ledger.sol";
import {Violations} from "./Violations.sol";
import {AdminHandler} from "./handlers/AdminHandler.sol";
import {AttackerHandler} from "./handlers/AttackerHandler.sol";
import {HonestHandler} from "./handlers/HonestHandler.sol";
import {KeeperHandler} from "./handlers/KeeperHandler.sol";
import {MarketHandler} from "./handlers/MarketHandler.sol";

/// @title Invariant campaigns of xmargin (forge, in-process): the real protocol, five actor handlers, the ledger's
///        ghost accounting. `make forge` runs the short campaigns, `make fuzz` the long ones
///        (scripts/bench/forge_fuzz.py).
/// @notice forge runs one campaign per `invariant_*` function, calling random actions of `targetContracts()` and
///         asserting that function after every call. Each invariant has its own contract below, with its own salt:
///         forge feeds every campaign of a run the same random inputs, and the handlers hash them with the salt, so
///         the eight campaigns explore eight different sequences. E1-E5 are checked by the ledger inside every step
///         of every campaign (they compare the state before and after it); `afterInvariant` asserts, at the end of
///         each run, that no check failed anywhere and that conservation and zero-sum hold.
abstract contract XMarginCampaign {
    Protocol internal p;
    Ledger public ledger;
    address[] internal handlers;

    /// @dev This campaign's salt (distinct per concrete contract).
    function salt() internal pure virtual returns (uint256);

    function setUp() public {
        Env.VM.warp(Env.START_TIME);
        p = Deploy.protocol();
        ledger = new Ledger(p);
        uint256 s = salt();
        MarketHandler market = new MarketHandler(p, ledger, s);
        handlers.push(address(market));
        p.params.grantRole(0x00, address(market)); // lists option series (an admin action)
        handlers.push(address(new HonestHandler(p, ledger, s)));
        handlers.push(address(new KeeperHandler(p, ledger, s)));
        handlers.push(address(new AttackerHandler(p, ledger, s)));
        AdminHandler admin = new AdminHandler(p, ledger, s);
        handlers.push(address(admin));
        p.params.grantRole(p.params.RISK_ADMIN_ROLE(), address(admin));
        p.params.grantRole(p.params.GUARDIAN_ROLE(), address(admin));
        ledger.checkpoint();
    }

    /// @notice The fuzzer's actors (forge reads this selector, as forge-std's StdInvariant declares it).
    function targetContracts() public view returns (address[] memory) {
        return handlers;
    }

    /// @notice After each run: every step check held in the whole run, and conservation and zero-sum hold. (forge
    ///         asserts only the campaign's own `invariant_*` function after each call; this catches, e.g., an E5
    ///         failure met in the E1 campaign.) With XMARGIN_FORGE_TALLY=true (the long campaign) step-check
    ///         violations are counted, not asserted (here and in the `invariant_E*` functions), so every campaign runs
    ///         to its end; conservation and zero-sum are always asserted. When
    ///         XMARGIN_FORGE_COVERAGE names a file (under .cache/forge/coverage), the run's counters and violations
    ///         are appended to it as one JSON line (scripts/bench/forge_fuzz.py sums them).
    function afterInvariant() public {
        _conservation();
        _zeroSum();
        _optionSeries();
        _fundingConserved();
        for (uint256 c; c <= uint256(Violations.Check.Options); ++c) {
            _assertNone(Violations.Check(c));
        }
        string memory path = Env.VM.envOr("XMARGIN_FORGE_COVERAGE", string(""));
        if (bytes(path).length != 0) Env.VM.writeLine(path, ledger.reportJson());
    }

    // ================================================================ state invariants (read at any time)
    /// @dev Every collateral token held by the vault covers the balances credited; the settlement token covers every
    ///      settlement balance plus unrealised P&L (at true prices) plus the value of every option position (each
    ///      series' positions are worth at most 0 together: floor(size * unit) per position), less the recorded bad
    ///      debt.
    function _conservation() internal view {
        uint256 n = ledger.numAccounts();
        for (uint256 j; j < Env.COLLATERALS; ++j) {
            uint256 credited = p.vault.collateralOf(p.vault.fundAccount(), j);
            for (uint256 i; i < n; ++i) {
                credited += p.vault.collateralOf(ledger.accounts(i), j);
            }
            require(p.tokens[j].balanceOf(address(p.vault)) >= credited, "collateral token conservation");
        }
        int256 claims = _claimsAndPnl(p.vault.fundAccount());
        for (uint256 i; i < n; ++i) {
            claims += _claimsAndPnl(ledger.accounts(i));
        }
        int256 held = int256(p.usdc.balanceOf(address(p.vault)) * 1e12 + p.vault.badDebt());
        for (uint256 m; m < Env.MARKETS; ++m) {
            claims += p.vault.fundingBalance(m); // covers the accrued funding owed to positions (_fundingConserved)
        }
        require(held >= claims, "settlement token conservation");
    }

    /// @dev Per market: sizes sum to zero and open interest is the sum of the longs.
    function _zeroSum() internal view {
        uint256 n = ledger.numAccounts();
        for (uint256 m; m < Env.MARKETS; ++m) {
            (int256 sum,) = p.vault.positionOf(p.vault.fundAccount(), m);
            uint256 longs = sum > 0 ? uint256(sum) : 0;
            for (uint256 i; i < n; ++i) {
                (int256 size,) = p.vault.positionOf(ledger.accounts(i), m);
                sum += size;
                if (size > 0) longs += uint256(size);
            }
            require(sum == 0, "market sizes do not sum to zero");
            require(p.vault.openInterest(m) == longs, "open interest is not the sum of longs");
        }
    }

    /// @dev Per market: the funding balance (what positions paid in, less what was paid out) covers the accrued
    ///      funding of the open positions, and what is left is rounding dust: at most one wei per settlement of a
    ///      position in the run and per open position, plus open interest / 1e9 per deleveraging charge (its index
    ///      shift rounds up). A market whose asset has no valid price is skipped (its funding cannot be valued).
    /// @dev Per option series (slots 0 .. SLOTS - 1): sizes sum to zero until the series is fixed (then positions are
    ///         settled into cash one account at a time), the long interest is the sum of the longs and
    ///         the short interest the sum of |shorts|; each account's option mask is exactly the slots it holds a
    ///         position in, at most 8 of them (the fund: any number); a slot listed again holds no old position.
    function _optionSeries() internal view {
        uint256 n = ledger.numAccounts();
        for (uint256 slot; slot < Env.SLOTS; ++slot) {
            IOptionMarkets.Series memory s = p.options.series(slot);
            int256 sum;
            uint256 longs;
            uint256 shorts;
            for (uint256 i; i <= n; ++i) {
                uint256 a = i == n ? p.vault.fundAccount() : ledger.accounts(i);
                int256 q = p.options.sizeOf(a, slot);
                bool held = (p.vault.optionsOf(a) >> slot) & 1 != 0;
                require((q != 0) == held, "option mask differs from the positions");
                sum += q;
                if (q > 0) longs += uint256(q);
                else shorts += uint256(-q);
            }
            // once fixed, each position is settled into cash on its own: the sizes left need not sum to zero
            require(sum == 0 || s.fixedPrice != 0, "option series sizes do not sum to zero");
            require(s.longInterest == longs, "option long interest is not the sum of longs");
            require(s.shortInterest == shorts, "option short interest is not the sum of |shorts|");
        }
        for (uint256 i; i < n; ++i) {
            uint256 mask = p.vault.optionsOf(ledger.accounts(i));
            uint256 c;
            for (; mask != 0; mask &= mask - 1) {
                ++c;
            }
            require(c <= 8, "an account holds more than 8 series");
        }
    }

    function _fundingConserved() internal view {
        uint256 n = ledger.numAccounts();
        for (uint256 m; m < Env.MARKETS; ++m) {
            (bool ok, int256 due, uint256 open) = _accrued(p.vault.fundAccount(), m);
            for (uint256 i; i < n && ok; ++i) {
                (bool ok_, int256 d, uint256 o) = _accrued(ledger.accounts(i), m);
                (ok, due, open) = (ok_, due + d, open + o);
            }
            if (!ok) continue;
            int256 dust = p.vault.fundingBalance(m) - due;
            require(dust >= 0, "funding balance below the accrued funding of the positions");
            require(uint256(dust) <= ledger.settlements(m) + ledger.adlDust(m) + open, "funding dust above its bound");
        }
    }

    function _accrued(uint256 account, uint256 m) internal view returns (bool, int256, uint256) {
        (int256 size,) = p.vault.positionOf(account, m);
        if (size == 0) return (true, 0, 0);
        try p.vault.fundingOf(account, m) returns (int256 accrued, int256) {
            return (true, accrued, 1);
        } catch {
            return (false, 0, 0);
        }
    }

    /// @dev Reverts with the first violation of `check`, unless XMARGIN_FORGE_TALLY (the long campaign counts them).
    function _assertNone(Violations.Check check) internal view {
        if (ledger.violations(uint256(check)) != 0 && !Env.VM.envOr("XMARGIN_FORGE_TALLY", false)) {
            revert(ledger.describe(check));
        }
    }

    /// @dev Settlement balance plus unrealised P&L at true prices (USD 1e18).
    function _claimsAndPnl(uint256 account) internal view returns (int256 v) {
        v = p.vault.settlementOf(account) + ledger.optionValueOf(account);
        for (uint256 m; m < Env.MARKETS; ++m) {
            (int256 size, int256 openNotional) = p.vault.positionOf(account, m);
            if (size == 0) continue;
            int256 value = size * int256(ledger.truePrice(Env.marketAsset(m)));
            v += (value < 0 && value % 1e18 != 0 ? value / 1e18 - 1 : value / 1e18) - openNotional;
        }
    }
}

// ==================================================================== one campaign per invariant

/// @notice Token conservation (collateral tokens and the settlement token), after every call.
contract TokenConservation is XMarginCampaign {
    function salt() internal pure override returns (uint256) {
        return 1;
    }

    function invariant_tokenConservation() public view {
        _conservation();
    }
}

/// @notice Zero-sum per market: sizes sum to zero, open interest is the sum of the longs, after every call.
contract ZeroSumPerMarket is XMarginCampaign {
    function salt() internal pure override returns (uint256) {
        return 2;
    }

    function invariant_zeroSumPerMarket() public view {
        _zeroSum();
    }
}

/// @notice E1: with no price move since the checkpoint, the attacker's total value (its accounts at true prices, plus
///         withdrawn, less deposited) rose by no more than the rewards it earned on others' accounts.
contract E1AttackerCannotExtract is XMarginCampaign {
    function salt() internal pure override returns (uint256) {
        return 3;
    }

    function invariant_E1_attackerCannotExtract() public view {
        _assertNone(Violations.Check.E1);
    }
}

/// @notice E2: without a price move, the fund loses only debt that price moves created (the negative value of accounts
///         written off); each reward is at most its penalty, so total rewards <= total penalties.
contract E2FundLosesOnlyBadDebt is XMarginCampaign {
    function salt() internal pure override returns (uint256) {
        return 4;
    }

    function invariant_E2_fundLosesOnlyBadDebt() public view {
        _assertNone(Violations.Check.E2);
        if (!Env.VM.envOr("XMARGIN_FORGE_TALLY", false)) {
            require(ledger.totalReward() <= ledger.totalPenalty(), "keeper rewards above penalties");
        }
    }
}

/// @notice E3: no account's equity turned negative in a step without a price move (or a socialised loss).
contract E3NoBankruptcyWithoutPriceMove is XMarginCampaign {
    function salt() internal pure override returns (uint256) {
        return 5;
    }

    function invariant_E3_noBankruptcyWithoutPriceMove() public view {
        _assertNone(Violations.Check.E3);
    }
}

/// @notice E4: a write-off cuts every other holder's claim by the same fraction at once (1-2 wei rounding); the debt of
///         an account left with nothing is written off in the same call; withdrawals pay in full.
contract E4WriteOffsProRata is XMarginCampaign {
    function salt() internal pure override returns (uint256) {
        return 6;
    }

    function invariant_E4_writeOffsProRata() public view {
        _assertNone(Violations.Check.E4);
    }
}

/// @notice E5: every account below MM accepts a proportional liquidation at maxTake (probed after every price, feed,
///         time and parameter change and every socialised loss).
contract E5LiquidationAlwaysPossible is XMarginCampaign {
    function salt() internal pure override returns (uint256) {
        return 7;
    }

    function invariant_E5_liquidationAlwaysPossible() public view {
        _assertNone(Violations.Check.E5);
    }
}

/// @notice The vault's Liquidated events of each step match the calls the handlers made and the rewards returned.
contract EventsMatchCalls is XMarginCampaign {
    function salt() internal pure override returns (uint256) {
        return 8;
    }

    function invariant_eventsMatchCalls() public view {
        _assertNone(Violations.Check.Accounting);
    }
}

/// @notice Funding is conserved per market: funding balance minus the positions' accrued funding is rounding dust
///         (at least 0, at most one wei per settlement and open position plus the deleveraging shifts' rounding).
contract FundingConserved is XMarginCampaign {
    function salt() internal pure override returns (uint256) {
        return 9;
    }

    function invariant_fundingConserved() public view {
        _fundingConserved();
    }
}

/// @notice Deleveraging charges only the side opposite a liquidated position of the bankrupt account, every position
///         on it in proportion to its size (to the wei), and nobody else.
contract DeleveragingOppositeSideOnly is XMarginCampaign {
    function salt() internal pure override returns (uint256) {
        return 10;
    }

    function invariant_deleveragingOppositeSideOnly() public view {
        _assertNone(Violations.Check.AdlSide);
    }
}

/// @notice Options, after every call: per series the sizes sum to zero (until fixed), long interest = sum of longs,
///         short interest = sum of |shorts|, masks match positions (at most 8 series per account); and the option step
///         checks held (only the first round at or after expiry fixes a series; settling anyone's expired positions
///         moves none of its value).
contract OptionSeriesConsistent is XMarginCampaign {
    function salt() internal pure override returns (uint256) {
        return 12;
    }

    function invariant_optionSeriesConsistent() public view {
        _optionSeries();
        _assertNone(Violations.Check.Options);
    }
}

/// @notice Depositors (the settlement claims) pay a write-off only after every source side paid its cap (adlShare of
///         its maintenance margin).
contract DeleveragingBeforeDepositors is XMarginCampaign {
    function salt() internal pure override returns (uint256) {
        return 11;
    }

    function invariant_deleveragingBeforeDepositors() public view {
        _assertNone(Violations.Check.AdlLast);
    }
}
