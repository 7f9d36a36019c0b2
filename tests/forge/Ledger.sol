// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ICrossMarginVault} from "../../contracts/interfaces/ICrossMarginVault.sol";
import {LivenessProbe} from "./Probe.sol";
import {Protocol} from "./Deploy.sol";
import {Env, Vm} from "./Env.sol";
import {Valuation} from "./Valuation.sol";

/// @notice Ghost state and the step checks of the campaign. Every handler step runs between `begin` and `end`; `end`
///         reads the vault's events of the step (penalties, rewards, write-offs) and checks E1-E4 against the state
///         before the step; `probeAll` checks E5. A violation is counted and the first one of each kind kept; the
///         `invariant_*` functions of the test assert the counters are zero. Not a fuzzing target.
contract Ledger is Valuation {
    enum Check {
        E1, //         the attacker gains, with no price move, no more than the rewards it earned on others' accounts
        E2, //         the fund loses, with no price move, no more than the debt price moves had created; reward <= penalty
        E3, //         no account's equity becomes negative in a step without a price move or a socialised loss
        E4, //         a write-off lowers every other claim by the same fraction, at once; withdrawals pay in full
        E5, //         every account below MM accepts a proportional liquidation at maxTake
        Accounting // the events of a step match what the handlers did
    }

    struct Failure {
        uint256 step;
        address actor; // the handler of the step
        bytes4 action; //  its function selector
        uint256 account;
        int256 a;
        int256 b;
        string what;
    }

    /// @dev Tolerance per vault event, in wei of USD, for rounding (shares, floors of position values).
    int256 internal constant WEI_PER_EVENT = 4;
    /// @dev Collateral worth less than this (true price) is dust for E5.
    uint256 internal constant DUST_USD = 1e18;
    /// @dev The settlement index never falls below this (CrossMarginVault.MIN_INDEX).
    uint256 internal constant MIN_INDEX = 1e9;

    LivenessProbe public immutable probe;

    uint256[6] public violations;
    mapping(uint256 check => Failure) internal _first;

    // ---------------------------------------------------------------- ghost totals
    mapping(address owner => int256) public depositedUsd;
    mapping(address owner => int256) public withdrawnUsd;
    uint256 public totalPenalty;
    uint256 public totalReward;
    uint256 public totalCover;
    uint256 public totalSocialised;
    uint256 public attackerRewardsFromOthers;
    uint256 public steps;
    uint256 public priceMoves;
    uint256 public liquidations;
    /// @notice Liquidations made through the LiquidationLooper (slices), and rewards those paid out.
    uint256 public slices;
    uint256 public sliceRewards;
    uint256 public writeOffs;
    uint256 public vaultEvents;
    /// @notice Coverage: write-offs whose E4 check compared at least two other holders; E5 probes run and accepted;
    ///         E5 candidates skipped (evaluation reverts: a position on an asset without a valid price) or waiting (only
    ///         unpriced collateral left to take, worth at least the deficit at its true price).
    uint256 public e4Checks;
    uint256 public e5Probes;
    uint256 public e5Accepted;
    uint256 public e5Skipped;
    uint256 public e5Waiting;

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
    address internal _actor;
    bytes4 internal _action;
    uint256 internal _indexBefore;
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
    address[] internal _keepers;
    mapping(address keeper => uint256) internal _expectedCalls;
    mapping(address keeper => uint256) internal _expectedRewards;
    mapping(address keeper => uint256) internal _seenCalls;
    mapping(address keeper => uint256) internal _seenRewards;

    constructor(Protocol memory p_) {
        p = p_;
        vault = p_.vault;
        fund = p_.vault.fundAccount();
        probe = new LivenessProbe(p_.vault, p_.looper);
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
        for (uint256 i; i < _keepers.length; ++i) {
            address k = _keepers[i];
            (_expectedCalls[k], _expectedRewards[k], _seenCalls[k], _seenRewards[k]) = (0, 0, 0, 0);
        }
        delete _keepers;
        _unsocialised = 0;
        _indexBefore = settlementIndex();
        Env.VM.recordLogs();
    }

    /// @notice Discards the events recorded so far in this step: after a probe (its reverted calls' events are
    ///         recorded too). Call it before any real action of the step.
    function resetLogs() external {
        Env.VM.recordLogs();
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
        _targetIn[account] = steps + 1;
        if (_claimsAt == steps + 1) return;
        _claimsAt = steps + 1;
        for (uint256 i; i < accounts.length; ++i) {
            _claimsBefore[i] = vault.settlementOf(accounts[i]);
        }
    }

    /// @notice `keeper` made `calls` successful liquidate calls in this step, returning `rewards` in all.
    function liquidated(address keeper, uint256 calls, uint256 rewards) external {
        if (_expectedCalls[keeper] == 0 && _expectedRewards[keeper] == 0) _keepers.push(keeper);
        _expectedCalls[keeper] += calls;
        _expectedRewards[keeper] += rewards;
    }

    /// @notice After a liquidation of `account`: if it was left holding nothing, its debt must have been written off
    ///         in that call (R4: taking everything writes the debt off).
    function afterLiquidation(uint256 account) external {
        (uint256 markets, uint256 collaterals) = vault.masksOf(account);
        int256 s = vault.settlementOf(account);
        if (markets | collaterals == 0 && s < 0) _fail(Check.E4, account, s, 0, "debt left after everything was taken");
    }

    /// @notice Closes a step and checks it. `priceMoved`: a true price changed in this step (E1 checkpoint moves).
    function end(bool priceMoved) external {
        require(_kind != NONE, "no step");
        (int256 allowance, uint256 events, bool fundChanged, bool attackerChanged) = _readEvents();
        _checkKeepers();
        uint256 indexAfter = settlementIndex();
        if (_kind == WORLD && events != 0) _fail(Check.Accounting, 0, int256(events), 0, "vault events in a world step");
        if (_kind == ACTION && !priceMoved) {
            if (fundChanged) _checkFund(allowance, events);
            if (indexAfter == _indexBefore) _checkEquities();
            if (attackerChanged) _attackerValue = attackerValue();
            _checkAttacker();
        }
        _checkClaims(indexAfter);
        _kind = NONE;
        if (priceMoved) checkpoint();
        if (indexAfter < _indexBefore) probeAll(); // a socialised loss may push holders below MM
    }

    /// @dev Reads the step's vault events. Returns the E2 allowance (the sum over accounts written off in this step of
    ///      their negative value before it: debt that price moves had already created), the number of vault events,
    ///      and whether an event changed the fund's or an attacker's account (or the index: every claim).
    function _readEvents()
        internal
        returns (int256 allowance, uint256 events, bool fundChanged, bool attackerChanged)
    {
        Vm.Log[] memory logs = Env.VM.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            Vm.Log memory log = logs[i];
            if (log.emitter != address(vault)) continue;
            ++events;
            ++vaultEvents;
            bytes32 topic = log.topics[0];
            if (
                topic == ICrossMarginVault.SettlementUpdated.selector || topic == ICrossMarginVault.PositionUpdated.selector
                    || topic == ICrossMarginVault.CollateralUpdated.selector
            ) {
                uint256 account = uint256(log.topics[1]);
                fundChanged = fundChanged || account == fund;
                attackerChanged = attackerChanged || isAttackerAccount[account];
            } else if (topic == ICrossMarginVault.SettlementIndexUpdated.selector) {
                (fundChanged, attackerChanged) = (true, true);
            } else if (topic == ICrossMarginVault.Liquidated.selector) {
                _onLiquidated(log);
            } else if (topic == ICrossMarginVault.BadDebtWrittenOff.selector) {
                uint256 account = uint256(log.topics[1]);
                (, uint256 cover, uint256 socialised) = abi.decode(log.data, (uint256, uint256, uint256));
                ++writeOffs;
                totalCover += cover;
                totalSocialised += socialised;
                _unsocialised += socialised;
                int256 before = _targetIn[account] == steps + 1 ? _valueBefore[account] : int256(0);
                if (before < 0) allowance -= before;
            }
        }
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
            if (!_eqKnown[a] || _eqBefore[a] < 0) continue;
            (bool ok, int256 e,,) = margin(a);
            if (ok && e < 0) _fail(Check.E3, a, _eqBefore[a], e, "equity became negative without a price move");
        }
    }

    /// @dev E1: since the last price move the attacker's value rose by at most its rewards from others' accounts.
    function _checkAttacker() internal {
        int256 v = _attackerValue + withdrawnUsd[attacker] - depositedUsd[attacker];
        int256 bound = cpValue + int256(attackerRewardsFromOthers - cpRewards)
            + WEI_PER_EVENT * int256(vaultEvents - cpEvents + 1);
        if (v > bound) _fail(Check.E1, 0, v - cpValue, int256(attackerRewardsFromOthers - cpRewards), "attacker gained");
    }

    /// @dev E4: the index never rises; debt beyond the fund's cover lowers it at once while there are claims (and it
    ///      is above its floor); when it falls, every untouched holder's claim fell by the same fraction.
    function _checkClaims(uint256 indexAfter) internal {
        if (indexAfter > _indexBefore) _fail(Check.E4, 0, int256(_indexBefore), int256(indexAfter), "index rose");
        (, uint256 shares) = vault.settlementIndex();
        if (_unsocialised > 0 && indexAfter == _indexBefore && shares > 0 && _indexBefore > MIN_INDEX) {
            _fail(Check.E4, 0, int256(_unsocialised), 0, "debt beyond the fund's cover not socialised at once");
        }
        if (indexAfter >= _indexBefore) return;
        if (_claimsAt != steps + 1) {
            _fail(Check.E4, 0, int256(_indexBefore), int256(indexAfter), "index fell in a step that liquidated nothing");
            return;
        }
        uint256 holders;
        for (uint256 i; i < accounts.length; ++i) {
            uint256 a = accounts[i];
            int256 before = _claimsBefore[i];
            if (before <= 0 || _touchedIn[a] == steps + 1) continue;
            int256 expected = int256(Math.mulDiv(uint256(before), indexAfter, _indexBefore));
            int256 got = vault.settlementOf(a);
            if (got > expected + 2 || got < expected - 2) {
                _fail(Check.E4, a, expected, got, "claim not cut by the index fraction");
            }
            ++holders;
        }
        if (holders >= 2) ++e4Checks;
    }

    // ================================================================ E5: liveness of liquidations
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
        (ICrossMarginVault.LiquidationItem[] memory items,) = proportionalTake(account, 1e4);
        ++e5Probes;
        try probe.liquidate(account, items) {}
        catch (bytes memory data) {
            (bool accepted,) = probe.outcome(data);
            if (accepted) {
                ++e5Accepted;
            } else if (bytes4(data) == ICrossMarginVault.LiquidationEmpty.selector && unpricedValue(account) >= DUST_USD) {
                // nothing priced can be taken and the account holds collateral without a valid price worth at least
                // 1 USD at its true price: it cannot be seized (R3), waiting for its price is the rule. (Dust of a stale
                // token, worth less, must never block a liquidation: R3.)
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
        returns (ICrossMarginVault.LiquidationItem[] memory items, bool holdsSomething)
    {
        (uint256 markets, uint256 collaterals) = vault.masksOf(account);
        holdsSomething = markets | collaterals != 0;
        (uint256 take, uint256 gross) = maxTakeOf(account);
        bool all = take >= gross && fractionBps == 1e4;
        uint256 n = _count(markets) + _count(collaterals);
        // each item's value may round up by < 1 wei against the proportional share: keep n + 1 wei below maxTake
        uint256 target = take * fractionBps / 1e4;
        target = target > n + 1 ? target - n - 1 : 0;
        items = new ICrossMarginVault.LiquidationItem[](n);
        uint256 count;
        for (uint256 m; markets >> m != 0; ++m) {
            if ((markets >> m) & 1 == 0) continue;
            (int256 size,) = vault.positionOf(account, m);
            uint256 amount = size < 0 ? uint256(-size) : uint256(size);
            if (!all) amount = Math.mulDiv(amount, target, gross);
            if (amount != 0) items[count++] = ICrossMarginVault.LiquidationItem(0, uint8(m), amount);
        }
        for (uint256 j; collaterals >> j != 0; ++j) {
            if ((collaterals >> j) & 1 == 0 || !_priced(j)) continue; // collateral j is on asset j
            uint256 amount = vault.collateralOf(account, j);
            if (!all) amount = Math.mulDiv(amount, target, gross);
            if (amount != 0) items[count++] = ICrossMarginVault.LiquidationItem(1, uint8(j), amount);
        }
        assembly ("memory-safe") {
            mstore(items, count)
        }
    }

    /// @notice The vault's maxTake for `account` now, and its gross (positions and priced collateral, USD 1e18).
    function maxTakeOf(uint256 account) public view returns (uint256 take, uint256 gross) {
        ICrossMarginVault.MarginDetail memory d = vault.marginDetail(account);
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

    // ================================================================ violations
    function _fail(Check c, uint256 account, int256 a, int256 b, string memory what) internal {
        if (violations[uint256(c)]++ == 0) _first[uint256(c)] = Failure(steps, _actor, _action, account, a, b, what);
    }

    /// @notice "<what> (step s, account 0x.., a, b)" for the first violation of `check`, or "" if none.
    function describe(Check check) external view returns (string memory) {
        Failure memory f = _first[uint256(check)];
        if (violations[uint256(check)] == 0) return "";
        string[6] memory names = ["E1", "E2", "E3", "E4", "E5", "Accounting"];
        return string.concat(
            names[uint256(check)], ": ", f.what, " (step ", _uint(f.step), ", ", _hex(uint160(f.actor), 40), ".0x",
            _hex(uint32(f.action), 8), ", account ", _hex(f.account, 64), ", ", _int(f.a), ", ", _int(f.b), ")"
        );
    }

    /// @notice This run's counters and violations as one JSON object (USD amounts in whole USD).
    function reportJson() external view returns (string memory j) {
        j = string.concat(
            '{"steps":', _uint(steps), ',"price_moves":', _uint(priceMoves), ',"liquidations":', _uint(liquidations),
            ',"slices":', _uint(slices), ',"slice_rewards_usd":', _uint(sliceRewards / 1e18), ',"write_offs":',
            _uint(writeOffs), ',"write_offs_checked_pro_rata":', _uint(e4Checks)
        );
        j = string.concat(
            j, ',"e5_probes":', _uint(e5Probes), ',"e5_accepted":', _uint(e5Accepted), ',"e5_skipped_unpriced_position":',
            _uint(e5Skipped), ',"e5_waiting_unpriced_collateral":', _uint(e5Waiting)
        );
        j = string.concat(
            j, ',"penalties_usd":', _uint(totalPenalty / 1e18), ',"rewards_usd":', _uint(totalReward / 1e18),
            ',"attacker_rewards_on_others_usd":', _uint(attackerRewardsFromOthers / 1e18), ',"covered_by_fund_usd":',
            _uint(totalCover / 1e18), ',"socialised_usd":', _uint(totalSocialised / 1e18), ',"violations":{'
        );
        string[6] memory names = ["E1", "E2", "E3", "E4", "E5", "Accounting"];
        for (uint256 c; c < 6; ++c) {
            j = string.concat(j, c == 0 ? '"' : ',"', names[c], '":', _uint(violations[c]));
        }
        j = string.concat(j, '},"first":{');
        bool any;
        for (uint256 c; c < 6; ++c) {
            if (violations[c] == 0) continue;
            j = string.concat(j, any ? ',"' : '"', names[c], '":"', this.describe(Check(c)), '"');
            any = true;
        }
        j = string.concat(j, "}}");
    }

    function _describeRevert(bytes memory data) internal pure returns (string memory) {
        bytes4 selector = data.length >= 4 ? bytes4(data) : bytes4(0);
        return string.concat("liquidation refused with error 0x", _hex(uint32(selector), 8));
    }

    /// @dev The low `digits` hex digits of `x`.
    function _hex(uint256 x, uint256 digits) internal pure returns (string memory) {
        bytes memory out = new bytes(digits);
        for (uint256 i; i < digits; ++i) {
            out[digits - 1 - i] = bytes16("0123456789abcdef")[(x >> (4 * i)) & 0xf];
        }
        return string(out);
    }

    function _uint(uint256 x) internal pure returns (string memory s) {
        if (x == 0) return "0";
        for (; x != 0; x /= 10) {
            s = string.concat(string(abi.encodePacked(bytes1(uint8(48 + x % 10)))), s);
        }
    }

    function _int(int256 x) internal pure returns (string memory) {
        return x < 0 ? string.concat("-", _uint(uint256(-x))) : _uint(uint256(x));
    }
}
