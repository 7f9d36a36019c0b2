// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice The few Foundry cheatcodes tests/forge uses (forge-std is not available here: its npm copy needs ds-test).
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function warp(uint256 timestamp) external;
    /// @dev Starts recording logs, discarding what was recorded so far. Logs of reverted sub-calls ARE recorded, so a
    ///      call that may revert inside a step goes through `HandlerBase._attempt` (`Ledger.absorbLogs()` keeps the
    ///      step's real events, `Ledger.resetLogs()` drops the reverted call's).
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory);
    function envOr(string calldata name, string calldata defaultValue) external view returns (string memory);
    function envOr(string calldata name, bool defaultValue) external view returns (bool);
    function writeLine(string calldata path, string calldata data) external;
    // signing and callers (tests/forge/GasSnapshot.t.sol: signed orders, calls from the accounts' owners)
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function prank(address msgSender) external;
    /// @dev The gas of the last call made by the test, recorded under `name` in snapshots/<test contract>.json
    ///      (forge's gas snapshots: `forge test` writes them; FORGE_SNAPSHOT_CHECK=true compares them first).
    function snapshotGasLastCall(string calldata name) external returns (uint256 gasUsed);
}

/// @notice Shared constants of the deployment (tests/forge/Deploy.sol) and the handlers.
library Env {
    Vm internal constant VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    uint256 internal constant WAD = 1e18;
    uint256 internal constant BPS = 1e4;
    /// @dev Assets 0 BTC, 1 ETH, 2 SOL, 3 LINK (the default risk set) and 4 DUST (collateral only, no market).
    uint256 internal constant ASSETS = 5;
    /// @dev Collateral j is on asset j. Markets 0..3 are on assets 0..3; market 4 is a second market on ETH.
    uint256 internal constant COLLATERALS = 5;
    uint256 internal constant MARKETS = 5;
    uint256 internal constant FEED_DECIMALS = 8;
    uint256 internal constant MAX_AGE = 3600;
    uint256 internal constant LOOSEN_DELAY = 600;
    uint256 internal constant START_TIME = 1_700_000_000;
    /// @dev Options: volatility feeds on assets 0..3 (scripts/deploy.py: a day's maximum age, answers usable within
    ///      5% .. 500%), series listed in slots 0 .. SLOTS - 1 (the campaign's handlers use no other slot).
    uint256 internal constant VOL_ASSETS = 4;
    uint256 internal constant VOL_MAX_AGE = 86_400;
    uint256 internal constant MIN_VOL_BPS = 500;
    uint256 internal constant MAX_VOL_BPS = 50_000;
    uint256 internal constant SLOTS = 10;

    function marketAsset(uint256 market) internal pure returns (uint256) {
        return market == 4 ? 1 : market;
    }

    function startPrice(uint256 asset) internal pure returns (uint256) {
        return [uint256(60_000), 3_000, 150, 15, 1][asset] * WAD;
    }

    /// @dev The start volatility of asset `asset` (scripts/deploy.py START_VOLS), 8 decimals like the feeds.
    function startVol(uint256 asset) internal pure returns (uint256) {
        return [uint256(60), 75, 100, 100][asset] * 1e6;
    }

    function decimals(uint256 collateral) internal pure returns (uint256) {
        return [uint256(8), 18, 9, 18, 18][collateral];
    }

    /// @dev `x` mapped into [lo, hi] (inclusive), for fuzzed inputs.
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }
}
