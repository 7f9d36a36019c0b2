// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice The campaign's violation counters: each step check counts its violations and keeps the first one (step,
///         handler function, account and two numbers) for the failure message.
abstract contract Violations {
    enum Check {
        E1, //         the attacker gains, with no price move, no more than the rewards it earned on others' accounts
        E2, //         the fund loses, with no price move, only debt price moves had created; reward <= penalty
        E3, //         no account's equity becomes negative in a step without a price move or a socialised loss
        E4, //         a write-off lowers every other claim by the same fraction, at once; withdrawals pay in full
        E5, //         every account below MM accepts a proportional liquidation at maxTake
        Accounting, // the events of a step match what the handlers did
        AdlSide, //    deleveraging charges exactly the opposite side of a liquidated position, nobody else
        AdlLast, //    claims pay a write-off only after every source side paid its cap
        Options //     expiry: only the first round at or after it fixes a series; settling moves no value
    }

    uint256 internal constant CHECKS = 9;
    string[9] internal NAMES = ["E1", "E2", "E3", "E4", "E5", "Accounting", "AdlSide", "AdlLast", "Options"];

    struct Failure {
        uint256 step;
        address actor; // the handler of the step
        bytes4 action; //  its function selector
        uint256 account;
        int256 a;
        int256 b;
        string what;
    }

    uint256[9] public violations;
    mapping(uint256 check => Failure) internal _first;

    /// @notice Steps opened so far in this run; the handler and function of the current one.
    uint256 public steps;
    address internal _actor;
    bytes4 internal _action;

    function _fail(Check c, uint256 account, int256 a, int256 b, string memory what) internal {
        if (violations[uint256(c)]++ == 0) _first[uint256(c)] = Failure(steps, _actor, _action, account, a, b, what);
    }

    /// @notice "<what> (step s, account 0x.., a, b)" for the first violation of `check`, or "" if none.
    function describe(Check check) external view returns (string memory) {
        Failure memory f = _first[uint256(check)];
        if (violations[uint256(check)] == 0) return "";
        return string.concat(
            NAMES[uint256(check)],
            ": ",
            f.what,
            " (step ",
            _uint(f.step),
            ", ",
            _hex(uint160(f.actor), 40),
            ".0x",
            _hex(uint32(f.action), 8),
            ", account ",
            _hex(f.account, 64),
            ", ",
            _int(f.a),
            ", ",
            _int(f.b),
            ")"
        );
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
