// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {RiskConfig} from "../../contracts/libraries/RiskConfig.sol";
import {ICrossMarginVault, IVaultTypes} from "../../contracts/interfaces/ICrossMarginVault.sol";
import {IOptionMarkets} from "../../contracts/interfaces/IOptionMarkets.sol";
import {LivenessProbe} from "./Probe.sol";
import {Protocol} from "./Deploy.sol";
import {Env, Vm} from "./Env.sol";
import {Liveness} from "./Liveness.sol";

/// @notice Ghost state and the step checks of the campaign. Every handler step runs between `begin` and `end`; `end`
///         reads the vault's events of the step (penalties, rewards, write-offs) and checks E1-E4 against the state
///         before the step; `probeAll` (Liveness) checks E5. A violation is counted and the first one of each kind
///         kept; the `invariant_*` functions of the test assert the counters are zero. Not a fuzzing target.
contract Ledger is Liveness {
    /// @dev Tolerance per vault event, in wei of USD, for rounding (shares, floors of position values).
    int256 internal constant WEI_PER_EVENT = 4;

    // ---------------------------------------------------------------- ghost totals
    mapping(address owner => int256) public depositedUsd;
    mapping(address owner => int256) public withdrawnUsd;
    uint256 public totalPenalty;
    uint256 public totalReward;
    uint256 public totalCover;
    uint256 public totalSocialised;
    uint256 public attackerRewardsFromOthers;
    uint256 public priceMoves;
    uint256 public liquidations;
    /// @notice Liquidations made through the LiquidationLooper (slices), and rewards those paid out.
    uint256 public slices;
    uint256 public sliceRewards;
    uint256 public writeOffs;
    uint256 public vaultEvents;
    /// @notice Coverage: write-offs whose E4 check compared at least two other holders.
    uint256 public e4Checks;
    // ---------------------------------------------------------------- E1 checkpoint (reset at every price move)
    address public attacker;
    int256 public cpValue;
    uint256 public cpRewards;
    uint256 public cpEvents;

    // ---------------------------------------------------------------- the current step
    uint256 internal constant NONE = 0;
    uint256 internal constant ACTION = 1; // a step that may change accounts
    uint256 internal constant WORLD = 2; //  prices, feeds, time, parameters: no account changes
    uint256 internal _kind;
    uint256 internal _indexBefore;
    uint256 internal _sharesBefore;
    /// @dev The fund's and the attacker's values, kept current: recomputed after a price move and after a step whose
    ///      events name one of their accounts or move the index (nothing else changes them).
    int256 internal _fundValue;
    int256 internal _attackerValue;
    /// @dev Settlement claims of `accounts` before the step, when a handler liquidates (`touchTarget`).
    int256[32] internal _claimsBefore;
    uint256 internal _claimsAt; // step number + 1
    uint256[] internal _touched;
    mapping(uint256 account => uint256) internal _touchedIn; // step number + 1
    mapping(uint256 account => bool) internal _eqKnown;
    mapping(uint256 account => int256) internal _eqBefore;
    mapping(uint256 account => int256) internal _valueBefore;
    mapping(uint256 account => uint256) internal _targetIn; // step number + 1
    uint256 internal _unsocialised; // debt beyond the fund's cover written off in this step
    /// @dev What `absorbLogs` read of the step's events so far (`_readEvents`' results, summed at `end`).
    int256 internal _absorbedAllowance;
    uint256 internal _absorbedEvents;
    bool internal _absorbedFund;
    bool internal _absorbedAttacker;
    address[] internal _keepers;
    mapping(address keeper => uint256) internal _expectedCalls;
    mapping(address keeper => uint256) internal _expectedRewards;
    mapping(address keeper => uint256) internal _seenCalls;
    mapping(address keeper => uint256) internal _seenRewards;

    // ---------------------------------------------------------------- options (OptionMarkets' events)
    /// @notice Option fills, positions taken over by the fund (liquidation items of kind 2), series fixed, positions
    ///         settled into cash (by their owner or anyone), volatility feed changes.
    uint256 public optionTrades;
    uint256 public optionTakeovers;
    uint256 public expiriesFixed;
    uint256 public optionSettlements;
    uint256 public volMoves;

    // ---------------------------------------------------------------- funding and deleveraging
    /// @notice Per market, in this run: settlements of a position (PositionUpdated events), and the most the index
    ///         shifts of its deleveraging charges rounded up (open interest / 1e9 wei each): the funding dust allowed.
    uint256[5] public settlements;
    uint256[5] public adlDust;
    /// @notice Deleveraged events; positions whose charge was checked to the wei; time steps that moved an index.
    uint256 public deleveragings;
    uint256 public positionsCharged;
    uint256 public fundingMoves;
    /// @dev Per account: bit m = a long of market m was liquidated since it last traded, bit 16 + m = a short.
    mapping(uint256 account => uint256) internal _adlSources;
    /// @dev Every account's positions and accrued funding before the step's first liquidation (`touchTarget`).
    uint256 internal _snapAt; // step number + 1
    int256 internal constant UNKNOWN = type(int256).min; // fundingOf reverted (no valid price)
    mapping(uint256 account => int256[5]) internal _preSize;
    mapping(uint256 account => int256[5]) internal _preAccrued;
    mapping(uint256 account => int256[5]) internal _preIndex;
    /// @dev The account held options at a step's snapshot since it last traded: its sources may be on either side
    ///      of any market (its net direction per asset at each liquidation), so AdlSide and AdlLast are not applied
    ///      to its write-offs' sides (their sums and the charged positions still are).
    mapping(uint256 account => bool) internal _heldOptions;
    uint256[] internal _targets;

    struct Charge {
        uint256 account;
        uint256 market;
        bool longsPay;
        uint256 amount;
        uint256 shift;
    }

    Charge[] internal _charges; // the step's Deleveraged events
    uint256[] internal _writtenOff; // the step's write-offs: account,
    uint256[] internal _lossAfterFund; //                     the debt the fund did not cover,
    uint256[] internal _socialised; //                        and what reached the claims

    constructor(Protocol memory p_) Liveness(new LivenessProbe(p_.vault, p_.looper)) {
        p = p_;
        vault = p_.vault;
        fund = p_.vault.fundAccount();
        isAttackerKeeper[address(p_.looper)] = true;
        for (uint256 k; k < Env.ASSETS; ++k) {
            truePrice[k] = Env.startPrice(k);
        }
    }

    // ================================================================ registry and ghost updates (from handlers)
    /// @notice The attacker: its deposits and withdrawals count in E1, its liquidation rewards are the attacker's.
    function setAttacker(address attacker_) external {
        attacker = attacker_;
        isAttackerKeeper[attacker_] = true;
    }

    function register(uint256 account, bool isAttacker) external {
        accounts.push(account);
        if (isAttacker) {
            attackerAccounts.push(account);
            isAttackerAccount[account] = true;
        }
    }

    /// @notice The E1 checkpoint: the attacker's value now (after a price move, or at set-up).
    function checkpoint() public {
        _fundValue = valueOf(fund);
        _attackerValue = attackerValue();
        cpValue = _attackerValue + withdrawnUsd[attacker] - depositedUsd[attacker];
        cpRewards = attackerRewardsFromOthers;
        cpEvents = vaultEvents;
    }

    function setTruePrice(uint256 asset, uint256 price) external {
        truePrice[asset] = price;
        ++priceMoves;
    }

    /// @notice `owner` moved `amount` of token `id` (collateral id, or 5 for the settlement token) into the vault.
    function deposited(address owner, uint256 id, uint256 amount) external {
        depositedUsd[owner] += int256(_usd(id, amount));
    }

    /// @notice `owner` asked for `amount` and got `paid` (`received` arrived at the recipient): both must be `amount`.
    function withdrew(address owner, uint256 account, uint256 id, uint256 amount, uint256 paid, uint256 received)
        external
    {
        withdrawnUsd[owner] += int256(_usd(id, received));
        if (paid != amount || received != amount) {
            _fail(Check.E4, account, int256(amount), int256(received), "withdrawal not paid in full");
        }
    }

    function _usd(uint256 id, uint256 amount) internal view returns (uint256) {
        return id == 5 ? amount * 1e12 : tokenUsd(id, amount);
    }

    // ================================================================ steps
    /// @notice Opens a step that may change accounts (`action`: the handler function's selector, for reports): notes
    ///         the index and records the vault's events.
    function begin(bytes4 action) external {
        _open(ACTION, action);
    }

    /// @notice Opens a step that changes prices, feeds, time or parameters only (the vault must emit nothing).
    function beginWorld(bytes4 action) external {
        _open(WORLD, action);
    }

    function _open(uint256 kind, bytes4 action) internal {
        require(_kind == NONE, "nested step");
        _kind = kind;
        (_actor, _action) = (msg.sender, action);
        ++steps;
        delete _touched;
        delete _targets;
        delete _charges;
        delete _writtenOff;
        delete _lossAfterFund;
        delete _socialised;
        for (uint256 i; i < _keepers.length; ++i) {
            address k = _keepers[i];
            (_expectedCalls[k], _expectedRewards[k], _seenCalls[k], _seenRewards[k]) = (0, 0, 0, 0);
        }
        delete _keepers;
        _unsocialised = 0;
        (_absorbedAllowance, _absorbedEvents, _absorbedFund, _absorbedAttacker) = (0, 0, false, false);
        (_indexBefore, _sharesBefore) = vault.settlementIndex();
        Env.VM.recordLogs();
    }

    /// @notice Discards the events recorded since the step opened or since the last `absorbLogs`: after a probe, or a
    ///         call that reverted inside the step (forge records a reverted call's events too). Call `absorbLogs` first
    ///         when the step already made real changes, so that their events are kept.
    function resetLogs() external {
        Env.VM.recordLogs();
    }

    /// @notice Reads the events recorded so far in this step (as `end` does) and keeps what they say for `end`. A
    ///         handler calls it before a call that may revert inside the step, then `resetLogs` if it did: forge records
    ///         the events of reverted calls too, and a trade that never happened must not end deleveraging sources.
    function absorbLogs() external {
        require(_kind != NONE, "no step");
        (int256 allowance, uint256 events, bool fundChanged, bool attackerChanged) = _readEvents();
        _absorbedAllowance += allowance;
        _absorbedEvents += events;
        _absorbedFund = _absorbedFund || fundChanged;
        _absorbedAttacker = _absorbedAttacker || attackerChanged;
    }

    /// @notice The step is about to change `account`: remember its equity before (E3).
    function touch(uint256 account) public {
        if (_touchedIn[account] == steps + 1) return;
        _touchedIn[account] = steps + 1;
        _touched.push(account);
        (bool ok, int256 e,,) = margin(account);
        _eqKnown[account] = ok;
        _eqBefore[account] = e;
    }

    /// @notice The step is about to liquidate `account`: also its value before (E2 allowance if written off) and
    ///         every account's claim (E4).
    function touchTarget(uint256 account) external {
        touch(account);
        _valueBefore[account] = valueOf(account);
        if (_targetIn[account] != steps + 1) _targets.push(account);
        _targetIn[account] = steps + 1;
        if (_snapAt != steps + 1) {
            _snapAt = steps + 1;
            _snapshot(fund);
            for (uint256 i; i < accounts.length; ++i) {
                _snapshot(accounts[i]);
            }
        }
        if (_claimsAt == steps + 1) return;
        _claimsAt = steps + 1;
        for (uint256 i; i < accounts.length; ++i) {
            _claimsBefore[i] = vault.settlementOf(accounts[i]);
        }
    }

    function _snapshot(uint256 account) internal {
        if (vault.optionsOf(account) != 0) _heldOptions[account] = true;
        for (uint256 m; m < Env.MARKETS; ++m) {
            (int256 size,) = vault.positionOf(account, m);
            _preSize[account][m] = size;
            if (size == 0) continue;
            try vault.fundingOf(account, m) returns (int256 accrued, int256 index) {
                (_preAccrued[account][m], _preIndex[account][m]) = (accrued, index);
            } catch {
                _preIndex[account][m] = UNKNOWN;
            }
        }
    }

    /// @notice A time step moved some market's funding indices.
    function fundingMoved() external {
        ++fundingMoves;
    }

    /// @notice `keeper` made `calls` successful liquidate calls in this step, returning `rewards` in all.
    function liquidated(address keeper, uint256 calls, uint256 rewards) external {
        if (_expectedCalls[keeper] == 0 && _expectedRewards[keeper] == 0) _keepers.push(keeper);
        _expectedCalls[keeper] += calls;
        _expectedRewards[keeper] += rewards;
    }

    /// @notice After a liquidation of `account`: if it was left holding nothing (no position, option or collateral),
    ///         its debt must have been written off in that call (R4: taking everything writes the debt off).
    function afterLiquidation(uint256 account) external {
        (uint256 markets, uint256 collaterals) = vault.masksOf(account);
        int256 s = vault.settlementOf(account);
        if (markets | collaterals | vault.optionsOf(account) == 0 && s < 0) {
            _fail(Check.E4, account, s, 0, "debt left after everything was taken");
        }
    }

    /// @notice Closes a step and checks it. `priceMoved`: a true price changed in this step (E1 checkpoint moves, as
    ///         after every world step).
    function end(bool priceMoved) external {
        require(_kind != NONE, "no step");
        (int256 allowance, uint256 events, bool fundChanged, bool attackerChanged) = _readEvents();
        (allowance, events) = (allowance + _absorbedAllowance, events + _absorbedEvents);
        (fundChanged, attackerChanged) = (fundChanged || _absorbedFund, attackerChanged || _absorbedAttacker);
        _checkKeepers();
        uint256 indexAfter = settlementIndex();
        _checkDeleveraging();
        if (_kind == WORLD && events != 0) {
            _fail(Check.Accounting, 0, int256(events), 0, "vault events in a world step");
        }
        if (_kind == ACTION && !priceMoved) {
            if (fundChanged) _checkFund(allowance, events);
            if (indexAfter == _indexBefore) _checkEquities();
            if (attackerChanged) _attackerValue = attackerValue();
            _checkAttacker();
        }
        _checkClaims(indexAfter);
        // a world step moves the E1/E2 baselines like a price move: time accrues funding, and a feed's state or a
        // parameter (open-interest cap, risk weight) changes what the accrual since a market's last touch comes to
        if (priceMoved || _kind == WORLD) checkpoint();
        _kind = NONE;
        if (indexAfter < _indexBefore) probeAll(); // a socialised loss may push holders below MM
    }

    /// @dev Reads the step's vault events. Returns the E2 allowance (the sum over accounts written off in this step of
    ///      their negative value before it: debt that price moves had already created), the number of vault events,
    ///      and whether an event changed the fund's or an attacker's account (or the index: every claim).
    function _readEvents() internal returns (int256 allowance, uint256 events, bool fundChanged, bool attackerChanged) {
        Vm.Log[] memory logs = Env.VM.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory log = logs[i];
            if (log.emitter == address(p.options)) {
                _onOptionEvent(log);
                bytes32 t = log.topics[0];
                if (t == IOptionMarkets.OptionPositionUpdated.selector) {
                    uint256 a = uint256(log.topics[1]);
                    fundChanged = fundChanged || a == fund;
                    attackerChanged = attackerChanged || isAttackerAccount[a];
                }
                continue;
            }
            if (log.emitter != address(vault)) continue;
            ++events;
            ++vaultEvents;
            bytes32 topic = log.topics[0];
            if (
                topic == IVaultTypes.SettlementUpdated.selector
                    || topic == IVaultTypes.PositionUpdated.selector
                    || topic == IVaultTypes.CollateralUpdated.selector
            ) {
                uint256 account = uint256(log.topics[1]);
                fundChanged = fundChanged || account == fund;
                attackerChanged = attackerChanged || isAttackerAccount[account];
                if (topic == IVaultTypes.PositionUpdated.selector) ++settlements[uint256(log.topics[2])];
            } else if (topic == IVaultTypes.Trade.selector) {
                // trading again: earlier liquidations are no longer a source of deleveraging
                _clearSources(uint256(log.topics[1]), uint256(log.topics[2]));
            } else if (topic == IVaultTypes.Deleveraged.selector) {
                allowance += _onDeleveraged(log);
                (fundChanged, attackerChanged) = (true, true); // their positions may be on the charged side
            } else if (topic == IVaultTypes.SettlementIndexUpdated.selector) {
                (fundChanged, attackerChanged) = (true, true);
            } else if (topic == IVaultTypes.Liquidated.selector) {
                _onLiquidated(log);
            } else if (topic == IVaultTypes.BadDebtWrittenOff.selector) {
                uint256 account = uint256(log.topics[1]);
                (uint256 debt, uint256 cover,, uint256 socialised) =
                    abi.decode(log.data, (uint256, uint256, uint256, uint256));
                _writtenOff.push(account);
                _lossAfterFund.push(debt - cover);
                _socialised.push(socialised);
                ++writeOffs;
                totalCover += cover;
                totalSocialised += socialised;
                _unsocialised += socialised;
                int256 before = _targetIn[account] == steps + 1 ? _valueBefore[account] : int256(0);
                if (before < 0) allowance -= before;
            }
        }
    }

    /// @dev Counts OptionMarkets' events: fills, the fund's takeovers, fixings and settlements (a position set to 0
    ///         in a fixed series).
    function _onOptionEvent(Vm.Log memory log) internal {
        bytes32 t = log.topics[0];
        if (t == IOptionMarkets.OptionTrade.selector) {
            ++optionTrades;
            // trading again: earlier liquidations are no longer a source of deleveraging (the vault, as for Trade)
            _clearSources(uint256(log.topics[1]), uint256(log.topics[2]));
        } else if (t == IOptionMarkets.ExpiryFixed.selector) {
            ++expiriesFixed;
        } else if (t == IOptionMarkets.OptionPositionUpdated.selector) {
            uint256 slot = uint256(log.topics[2]);
            uint256 account = uint256(log.topics[1]);
            IOptionMarkets.Series memory series = p.options.series(slot);
            if (account == fund && _kindLiquidating()) {
                ++optionTakeovers;
            } else if (abi.decode(log.data, (int256)) == 0 && series.fixedPrice != 0) {
                ++optionSettlements;
            }
        }
    }

    /// @dev True in a step that liquidates (a handler called `touchTarget`).
    function _kindLiquidating() internal view returns (bool) {
        return _snapAt == steps + 1;
    }

    /// @notice A volatility feed changed (MarketHandler).
    function volMoved() external {
        ++volMoves;
    }

    /// @notice A step check on options failed (handlers: a fixing with a round that is not the first after expiry
    ///         was accepted; settling someone's expired positions changed its value).
    function optionViolation(uint256 account, int256 a, int256 b, string calldata what) external {
        _fail(Check.Options, account, a, b, what);
    }

    /// @dev Records a Deleveraged event; returns what it may take from the fund's position (E2 allowance).
    function _onDeleveraged(Vm.Log memory log) internal returns (int256 fundCharge) {
        uint256 market = uint256(log.topics[2]);
        (bool longsPay, uint256 amount, uint256 shift) = abi.decode(log.data, (bool, uint256, uint256));
        _charges.push(Charge(uint256(log.topics[1]), market, longsPay, amount, shift));
        ++deleveragings;
        adlDust[market] += vault.openInterest(market) / 1e9 + 1;
        (int256 size,) = vault.positionOf(fund, market);
        if (size != 0 && (size > 0) == longsPay) fundCharge = int256(_abs(size) * shift / 1e9 + 1);
    }

    function _onLiquidated(Vm.Log memory log) internal {
        uint256 account = uint256(log.topics[1]);
        address keeper = address(uint160(uint256(log.topics[2])));
        (, uint256 penalty, uint256 reward,,) = abi.decode(log.data, (uint256, uint256, uint256, int256, int256));
        ++liquidations;
        if (keeper == address(p.looper)) (slices, sliceRewards) = (slices + 1, sliceRewards + reward);
        totalPenalty += penalty;
        totalReward += reward;
        ++_seenCalls[keeper];
        _seenRewards[keeper] += reward;
        if (_expectedCalls[keeper] == 0) _fail(Check.Accounting, account, 0, 1, "liquidation nobody made");
        if (reward > penalty) _fail(Check.E2, account, int256(reward), int256(penalty), "reward above penalty");
        if (isAttackerKeeper[keeper] && !isAttackerAccount[account]) attackerRewardsFromOthers += reward;
    }

    function _checkKeepers() internal {
        for (uint256 i; i < _keepers.length; ++i) {
            address k = _keepers[i];
            if (_seenCalls[k] != _expectedCalls[k] || _seenRewards[k] != _expectedRewards[k]) {
                _fail(
                    Check.Accounting,
                    uint160(k),
                    int256(_seenRewards[k]),
                    int256(_expectedRewards[k]),
                    "Liquidated events differ from the calls and rewards returned"
                );
            }
        }
    }

    /// @dev The step's deleveraging (ICrossMarginVault, "Deleveraging"). First the sources: every position of a
    ///      liquidated account that shrank in the step, on its own side (an account that held options: not
    ///      checked, `_heldOptions`). AdlSide: each Deleveraged event charges a side opposite a
    ///      source of its account, and every position not settled in the step lost exactly its side's index shifts
    ///      times its size (to the wei, one per charge), so no other position and no position-less account paid.
    ///      AdlLast: a write-off whose loss reached the claims (socialised) charged every source side with open
    ///      interest and a price its cap adlShare * riskWeight * its notional: depositors pay only what the
    ///      opposite sides, all exhausted, cannot.
    function _checkDeleveraging() internal {
        for (uint256 i; i < _targets.length; ++i) {
            uint256 a = _targets[i];
            for (uint256 m; m < Env.MARKETS; ++m) {
                int256 before = _preSize[a][m];
                (int256 size,) = vault.positionOf(a, m);
                if (_abs(size) < _abs(before)) _adlSources[a] |= 1 << (before > 0 ? m : 16 + m);
            }
        }
        if (_charges.length == 0 && _writtenOff.length == 0) return;
        if (_snapAt != steps + 1) {
            _fail(Check.AdlSide, 0, int256(_charges.length), 0, "deleveraging in a step liquidating nothing");
            return;
        }
        uint256[2][5] memory shift; // [market][longs pay]
        uint256[2][5] memory count;
        for (uint256 i; i < _charges.length; ++i) {
            Charge memory c = _charges[i];
            uint256 side = c.longsPay ? 1 : 0;
            if (!_heldOptions[c.account] && _adlSources[c.account] >> (c.longsPay ? 16 + c.market : c.market) & 1 == 0) {
                _fail(Check.AdlSide, c.account, int256(c.market), int256(side), "deleveraged a side that is no source");
            }
            shift[c.market][side] += c.shift;
            ++count[c.market][side];
        }
        _checkCharged(fund, shift, count);
        for (uint256 i; i < accounts.length; ++i) {
            _checkCharged(accounts[i], shift, count);
        }
        for (uint256 i; i < _writtenOff.length; ++i) {
            uint256 a = _writtenOff[i];
            uint256 charged;
            for (uint256 j; j < _charges.length; ++j) {
                if (_charges[j].account == a) charged += _charges[j].amount;
            }
            if (charged + _socialised[i] != _lossAfterFund[i]) {
                _fail(Check.AdlLast, a, int256(charged + _socialised[i]), int256(_lossAfterFund[i]),
                    "the sides and the claims did not pay the loss after the fund");
            }
            if (_socialised[i] != 0 && !_heldOptions[a]) _checkCaps(a);
            _clearSources(a, a); // a write-off ends the account's sources
        }
    }

    function _checkCharged(uint256 a, uint256[2][5] memory shift, uint256[2][5] memory count) internal {
        for (uint256 m; m < Env.MARKETS; ++m) {
            int256 q = _preSize[a][m];
            if (q == 0 || _preIndex[a][m] == UNKNOWN) continue;
            (int256 size,) = vault.positionOf(a, m);
            (bool ok, int256 accrued, int256 index) = _funding(a, m);
            if (!ok || size != q || index != _preIndex[a][m]) continue; // settled in the step
            uint256 side = q > 0 ? 1 : 0;
            uint256 expected = _abs(q) * shift[m][side] / 1e9;
            int256 lost = _preAccrued[a][m] - accrued;
            if (lost < int256(expected) || lost > int256(expected + count[m][side])) {
                _fail(Check.AdlSide, a, lost, int256(expected), "a position paid other than its side's charges");
            } else if (expected != 0) {
                ++positionsCharged;
            }
        }
    }

    function _funding(uint256 a, uint256 m) internal view returns (bool, int256, int256) {
        try vault.fundingOf(a, m) returns (int256 accrued, int256 index) {
            return (true, accrued, index);
        } catch {
            return (false, 0, 0);
        }
    }

    /// @dev AdlLast for a write-off of `a` whose loss (after the fund) reached the claims: every source side with
    ///      open interest and a valid price paid its cap.
    function _clearSources(uint256 a, uint256 b) internal {
        (_adlSources[a], _adlSources[b]) = (0, 0);
        (_heldOptions[a], _heldOptions[b]) = (false, false);
    }

    function _checkCaps(uint256 a) internal {
        uint256 sources = _adlSources[a];
        uint256 share = RiskConfig.adlShare(p.params.fundingWord());
        uint256 global = p.params.marginConfig().global;
        for (uint256 bit; bit < 32; ++bit) {
            if (sources >> bit & 1 == 0) continue;
            uint256 m = bit % 16;
            uint256 notional;
            try p.oracle.price(Env.marketAsset(m)) returns (uint256 price) {
                notional = Math.mulDiv(vault.openInterest(m), price, 1e18);
            } catch {} // no valid price: the side cannot be charged
            uint256 cap = Math.mulDiv(notional, RiskConfig.riskWeight(global, Env.marketAsset(m)) * share, 1e8);
            uint256 paid;
            for (uint256 i; i < _charges.length; ++i) {
                if (_charges[i].account == a && _charges[i].market == m && _charges[i].longsPay == (bit >= 16)) {
                    paid += _charges[i].amount;
                }
            }
            if (paid != cap) _fail(Check.AdlLast, a, int256(paid), int256(cap), "claims paid while a side had room");
        }
    }

    /// @dev True when `a` holds a position on a side the step's deleveraging charged.
    function _charged(uint256 a) internal view returns (bool) {
        for (uint256 i; i < _charges.length; ++i) {
            (int256 size,) = vault.positionOf(a, _charges[i].market);
            if (size != 0 && (size > 0) == _charges[i].longsPay) return true;
        }
        return false;
    }

    function _abs(int256 x) internal pure returns (uint256) {
        return uint256(x >= 0 ? x : -x);
    }

    /// @dev E2: without a price move the fund loses at most the written-off accounts' negative value.
    function _checkFund(int256 allowance, uint256 events) internal {
        int256 fundAfter = valueOf(fund);
        if (fundAfter + allowance + WEI_PER_EVENT * int256(events + 1) < _fundValue) {
            _fail(Check.E2, fund, _fundValue, fundAfter, "fund value fell without a price move");
        }
        _fundValue = fundAfter;
    }

    /// @dev E3: a touched account with E >= 0 before the step still has E >= 0 (when both are computable).
    function _checkEquities() internal {
        for (uint256 i; i < _touched.length; ++i) {
            uint256 a = _touched[i];
            if (!_eqKnown[a] || _eqBefore[a] < 0 || _charged(a)) continue;
            (bool ok, int256 e,,) = margin(a);
            if (ok && e < 0) _fail(Check.E3, a, _eqBefore[a], e, "equity became negative without a price move");
        }
    }

    /// @dev E1: since the last price move the attacker's value rose by at most its rewards from others' accounts.
    function _checkAttacker() internal {
        int256 v = _attackerValue + withdrawnUsd[attacker] - depositedUsd[attacker];
        int256 bound = cpValue + int256(attackerRewardsFromOthers - cpRewards) + WEI_PER_EVENT
            * int256(vaultEvents - cpEvents + 1);
        if (v > bound) {
            _fail(Check.E1, 0, v - cpValue, int256(attackerRewardsFromOthers - cpRewards), "attacker gained");
        }
    }

    /// @dev E4: the index never rises while there are claims, except when a loss took every claim and the pool
    ///      restarted (total shares 0, index 1e18); debt beyond the fund's cover lowers it at once while there are
    ///      claims; when it falls, every untouched holder's claim fell by the same fraction (to 0 on a restart).
    function _checkClaims(uint256 indexAfter) internal {
        (, uint256 shares) = vault.settlementIndex();
        bool restarted = indexAfter > _indexBefore && shares == 0;
        if (indexAfter > _indexBefore && _sharesBefore != 0 && !restarted) {
            _fail(Check.E4, 0, int256(_indexBefore), int256(indexAfter), "index rose while claims were held");
        }
        if (_unsocialised > 0 && indexAfter == _indexBefore && shares > 0) {
            _fail(Check.E4, 0, int256(_unsocialised), 0, "debt beyond the fund's cover not socialised at once");
        }
        if (indexAfter >= _indexBefore && !restarted) return;
        if (_claimsAt != steps + 1) {
            _fail(Check.E4, 0, int256(_indexBefore), int256(indexAfter), "index moved in a step liquidating nothing");
            return;
        }
        uint256 holders;
        for (uint256 i; i < accounts.length; ++i) {
            uint256 a = accounts[i];
            int256 before = _claimsBefore[i];
            if (before <= 0 || _touchedIn[a] == steps + 1) continue;
            int256 expected = restarted ? int256(0) : int256(Math.mulDiv(uint256(before), indexAfter, _indexBefore));
            int256 got = vault.settlementOf(a);
            if (got > expected + 2 || got < expected - 2) {
                _fail(Check.E4, a, expected, got, "claim not cut by the index fraction");
            }
            ++holders;
        }
        if (holders >= 2) ++e4Checks;
    }

    /// @notice This run's counters and violations as one JSON object (USD amounts in whole USD).
    function reportJson() external view returns (string memory j) {
        j = string.concat(
            '{"steps":',
            _uint(steps),
            ',"price_moves":',
            _uint(priceMoves),
            ',"liquidations":',
            _uint(liquidations),
            ',"slices":',
            _uint(slices),
            ',"slice_rewards_usd":',
            _uint(sliceRewards / 1e18),
            ',"write_offs":',
            _uint(writeOffs),
            ',"write_offs_checked_pro_rata":',
            _uint(e4Checks)
        );
        j = string.concat(
            j,
            ',"deleveragings":',
            _uint(deleveragings),
            ',"positions_charged_checked":',
            _uint(positionsCharged),
            ',"funding_moves":',
            _uint(fundingMoves)
        );
        j = string.concat(
            j,
            ',"option_trades":',
            _uint(optionTrades),
            ',"option_takeovers":',
            _uint(optionTakeovers),
            ',"expiries_fixed":',
            _uint(expiriesFixed),
            ',"option_settlements":',
            _uint(optionSettlements),
            ',"vol_moves":',
            _uint(volMoves)
        );
        j = string.concat(
            j,
            ',"e5_probes":',
            _uint(e5Probes),
            ',"e5_accepted":',
            _uint(e5Accepted),
            ',"e5_skipped_unpriced_position":',
            _uint(e5Skipped),
            ',"e5_waiting_unpriced_collateral":',
            _uint(e5Waiting),
            ',"e5_with_options":',
            _uint(e5WithOptions),
            ',"e5_settled_fixed_first":',
            _uint(e5SettledFirst)
        );
        j = string.concat(
            j,
            ',"penalties_usd":',
            _uint(totalPenalty / 1e18),
            ',"rewards_usd":',
            _uint(totalReward / 1e18),
            ',"attacker_rewards_on_others_usd":',
            _uint(attackerRewardsFromOthers / 1e18),
            ',"covered_by_fund_usd":',
            _uint(totalCover / 1e18),
            ',"socialised_usd":',
            _uint(totalSocialised / 1e18),
            ',"violations":{'
        );
        for (uint256 c; c < CHECKS; ++c) {
            j = string.concat(j, c == 0 ? '"' : ',"', NAMES[c], '":', _uint(violations[c]));
        }
        j = string.concat(j, '},"first":{');
        bool any;
        for (uint256 c; c < CHECKS; ++c) {
            if (violations[c] == 0) continue;
            j = string.concat(j, any ? ',"' : '"', NAMES[c], '":"', this.describe(Check(c)), '"');
            any = true;
        }
        j = string.concat(j, "}}");
    }
}
