// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Deploy, Protocol} from "./Deploy.sol";
import {Env} from "./Env.sol";
import {Ledger} from "./Ledger.sol";
import {AdminHandler} from "./handlers/AdminHandler.sol";
import {AttackerHandler} from "./handlers/AttackerHandler.sol";
import {HonestHandler} from "./handlers/HonestHandler.sol";
import {KeeperHandler} from "./handlers/KeeperHandler.sol";
import {MarketHandler} from "./handlers/MarketHandler.sol";

/// @title Invariant campaign of xmargin (forge, in-process): the real protocol, five actor handlers, the ledger's
///        ghost accounting. `make forge` runs the short campaign, `make fuzz` the long one (scripts/bench/forge_fuzz.py).
/// @notice forge runs one campaign per `invariant_*` function, calling random actions of the `targetContracts()`
///         and asserting that function after each call. E1-E5 are checked by the ledger inside every step (they
///         compare the state before and after it); their `invariant_*` functions assert the violation counters.
contract XMarginInvariants {
    Protocol internal p;
    Ledger public ledger;
    address[] internal handlers;

    function setUp() public {
        Env.VM.warp(Env.START_TIME);
        p = Deploy.protocol();
        ledger = new Ledger(p);
        handlers.push(address(new MarketHandler(p, ledger)));
        handlers.push(address(new HonestHandler(p, ledger)));
        handlers.push(address(new KeeperHandler(p, ledger)));
        handlers.push(address(new AttackerHandler(p, ledger)));
        AdminHandler admin = new AdminHandler(p, ledger);
        handlers.push(address(admin));
        p.params.grantRole(p.params.RISK_ADMIN_ROLE(), address(admin));
        p.params.grantRole(p.params.GUARDIAN_ROLE(), address(admin));
        ledger.checkpoint();
    }

    /// @notice The fuzzer's actors (forge reads this selector, as forge-std's StdInvariant declares it).
    function targetContracts() public view returns (address[] memory) {
        return handlers;
    }

    // ================================================================ state invariants (read at any time)
    /// @notice Every collateral token held by the vault covers the balances credited; the settlement token covers
    ///         every settlement balance plus unrealised P&L (at true prices), less the recorded bad debt.
    function invariant_tokenConservation() public view {
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
        require(held >= claims, "settlement token conservation");
    }

    /// @notice Per market: sizes sum to zero and open interest is the sum of the longs.
    function invariant_zeroSumPerMarket() public view {
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

    // ================================================================ step invariants (checked by the ledger)
    /// @notice E1: with no price move since the checkpoint, the attacker's total value (its accounts at true prices,
    ///         plus withdrawn, less deposited) rose by no more than the rewards it earned on others' accounts.
    function invariant_E1_attackerCannotExtract() public view {
        _assertNone(Ledger.Check.E1);
    }

    /// @notice E2: without a price move, the fund loses only debt that price moves created (the negative value of
    ///         accounts written off); each reward is at most its penalty, so total rewards <= total penalties.
    function invariant_E2_fundLosesOnlyBadDebt() public view {
        _assertNone(Ledger.Check.E2);
        require(ledger.totalReward() <= ledger.totalPenalty(), "keeper rewards above penalties");
    }

    /// @notice E3: no account's equity turned negative in a step without a price move (or a socialised loss).
    function invariant_E3_noBankruptcyWithoutPriceMove() public view {
        _assertNone(Ledger.Check.E3);
    }

    /// @notice E4: a write-off cuts every other holder's claim by the same fraction at once (1-2 wei rounding); the
    ///         debt of an account left with nothing is written off in the same call; withdrawals pay in full.
    function invariant_E4_writeOffsProRata() public view {
        _assertNone(Ledger.Check.E4);
    }

    /// @notice E5: every account below MM accepts a proportional liquidation at maxTake (probed after every price,
    ///         feed, time and parameter change and every socialised loss).
    function invariant_E5_liquidationAlwaysPossible() public view {
        _assertNone(Ledger.Check.E5);
    }

    /// @notice The vault's Liquidated events of each step match the calls the handlers made and their returned rewards.
    function invariant_eventsMatchCalls() public view {
        _assertNone(Ledger.Check.Accounting);
    }

    /// @notice After each run: when XMARGIN_FORGE_COVERAGE names a file, appends the run's coverage counters to it as
    ///         one JSON line (scripts/bench/forge_fuzz.py sums them; the file must be under .cache/forge/).
    function afterInvariant() public {
        string memory path = Env.VM.envOr("XMARGIN_FORGE_COVERAGE", string(""));
        if (bytes(path).length == 0) return;
        Ledger l = ledger;
        string memory line = string.concat(
            '{"steps":', _u(l.steps()), ',"price_moves":', _u(l.priceMoves()), ',"liquidations":', _u(l.liquidations()),
            ',"write_offs":', _u(l.writeOffs()), ',"write_offs_checked_pro_rata":', _u(l.e4Checks())
        );
        line = string.concat(
            line, ',"e5_probes":', _u(l.e5Probes()), ',"e5_accepted":', _u(l.e5Accepted()), ',"e5_skipped":',
            _u(l.e5Skipped()), ',"penalties_usd":', _u(l.totalPenalty() / 1e18), ',"rewards_usd":',
            _u(l.totalReward() / 1e18)
        );
        line = string.concat(
            line, ',"attacker_rewards_on_others_usd":', _u(l.attackerRewardsFromOthers() / 1e18),
            ',"covered_by_fund_usd":', _u(l.totalCover() / 1e18), ',"socialised_usd":', _u(l.totalSocialised() / 1e18), "}"
        );
        Env.VM.writeLine(path, line);
    }

    function _u(uint256 x) internal pure returns (string memory s) {
        if (x == 0) return "0";
        for (; x != 0; x /= 10) {
            s = string.concat(string(abi.encodePacked(bytes1(uint8(48 + x % 10)))), s);
        }
    }

    function _assertNone(Ledger.Check check) internal view {
        if (ledger.violations(uint256(check)) != 0) revert(ledger.describe(check));
    }

    /// @dev Settlement balance plus unrealised P&L at true prices (USD 1e18).
    function _claimsAndPnl(uint256 account) internal view returns (int256 v) {
        v = p.vault.settlementOf(account);
        for (uint256 m; m < Env.MARKETS; ++m) {
            (int256 size, int256 openNotional) = p.vault.positionOf(account, m);
            if (size == 0) continue;
            int256 value = size * int256(ledger.truePrice(Env.marketAsset(m)));
            v += (value < 0 && value % 1e18 != 0 ? value / 1e18 - 1 : value / 1e18) - openNotional;
        }
    }
}
