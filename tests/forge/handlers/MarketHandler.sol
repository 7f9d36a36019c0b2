// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IVaultTypes} from "../../../contracts/interfaces/ICrossMarginVault.sol";
import {Protocol} from "../Deploy.sol";
import {Env} from "../Env.sol";
import {Ledger} from "../Ledger.sol";
import {HandlerBase} from "./HandlerBase.sol";

/// @title MarketHandler — the outside world: prices, feeds and time.
/// @notice Moves true prices (one asset or all at once, at most +-15% per step, or all a little in a heartbeat, or
///         a gap of 25-60% in one asset), breaks feeds (stale, zero, negative answer) and repairs them, and lets time
///         pass (minutes: feeds go stale after their 3,600 s maximum age; or hours of funding, feeds refreshed).
///         After every step the ledger tries a liquidation of every account below MM (E5); a price move also moves
///         the E1 checkpoint.
contract MarketHandler is HandlerBase {
    /// @notice Largest price move per step, bps.
    uint256 public constant MAX_MOVE_BPS = 1500;

    /// @notice Feeds broken on purpose (stale, zero or negative) and not repaired since.
    bool[5] public broken;

    constructor(Protocol memory p_, Ledger ledger_, uint256 salt_) HandlerBase(p_, ledger_, salt_) {}

    /// @notice Moves the true price of asset `assetSeed % 5` by a signed amount within +-15%; every feed that is not
    ///         broken publishes its price (a broken feed keeps failing: the market moves during the outage and the
    ///         price gaps when the feed is repaired).
    function movePrice(uint256 assetSeed, uint256 bpsSeed) external {
        (assetSeed, bpsSeed) = (_mix(assetSeed), _mix(bpsSeed));
        ledger.beginWorld(msg.sig);
        _move(assetSeed % Env.ASSETS, int256(Env.bound(bpsSeed, 0, 2 * MAX_MOVE_BPS)) - int256(MAX_MOVE_BPS));
        _publishWorking();
        ledger.end(true);
        ledger.probeAll();
    }

    /// @notice A market-wide move: every asset moves the same way (down when `seed` is even), each by 0 to 15%;
    ///         every feed that is not broken publishes.
    function shock(uint256 seed) external {
        seed = _mix(seed);
        ledger.beginWorld(msg.sig);
        int256 sign = seed % 2 == 0 ? -1 : int256(1);
        for (uint256 k; k < Env.ASSETS; ++k) {
            _move(k, sign * int256((seed >> (1 + 16 * k)) % (MAX_MOVE_BPS + 1)));
        }
        _publishWorking();
        ledger.end(true);
        ledger.probeAll();
    }

    /// @dev New true price of `asset`, `bps` away (kept within 1/50 and 50 times its start).
    function _move(uint256 asset, int256 bps) internal {
        uint256 start = Env.startPrice(asset);
        uint256 price = uint256(int256(ledger.truePrice(asset)) * (int256(Env.BPS) + bps) / int256(Env.BPS));
        if (price < start / 50) price = start / 50;
        if (price > start * 50) price = start * 50;
        ledger.setTruePrice(asset, price / 1e10 * 1e10); // the feed has 8 decimals
    }

    function _publishWorking() internal {
        for (uint256 k; k < Env.ASSETS; ++k) {
            if (!broken[k]) _publish(k);
        }
    }

    /// @dev The feed answers the true price, updated now. (Rewrites its latest round: the router reads only the
    ///      answer and its time, and rewriting costs a fraction of `updateAnswer`'s new storage slots.)
    function _publish(uint256 asset) internal {
        uint80 round = uint80(p.feeds[asset].latestRound());
        p.feeds[asset].updateRoundData(round, int256(ledger.truePrice(asset) / 1e10), block.timestamp, block.timestamp);
        broken[asset] = false;
    }

    /// @notice Breaks the feed of asset `assetSeed % 5`: mode 0 stale (last update older than the maximum age),
    ///         1 a zero answer, 2 a negative answer. The true price does not change.
    function breakFeed(uint256 assetSeed, uint256 modeSeed) external worldStep {
        (assetSeed, modeSeed) = (_mix(assetSeed), _mix(modeSeed));
        uint256 asset = assetSeed % Env.ASSETS;
        int256 answer = int256(ledger.truePrice(asset) / 1e10);
        uint256 mode = modeSeed % 3;
        uint80 round = uint80(p.feeds[asset].latestRound());
        if (mode == 0) {
            uint256 old = block.timestamp - Env.MAX_AGE - 1;
            p.feeds[asset].updateRoundData(round, answer, old, old);
        } else {
            p.feeds[asset].updateRoundData(round, mode == 1 ? int256(0) : -answer, block.timestamp, block.timestamp);
        }
        broken[asset] = true;
    }

    /// @notice Publishes the true price of asset `assetSeed % 5` again (recovery of a broken or stale feed).
    function repairFeed(uint256 assetSeed) external worldStep {
        assetSeed = _mix(assetSeed);
        _publish(assetSeed % Env.ASSETS);
    }

    /// @notice Heartbeat: every asset moves by -3% to +3% (independently) and every feed publishes (broken ones are
    ///         repaired).
    function tick(uint256 seed) external {
        seed = _mix(seed);
        ledger.beginWorld(msg.sig);
        for (uint256 k; k < Env.ASSETS; ++k) {
            _move(k, int256((seed >> (16 * k)) % 601) - 300);
            _publish(k);
        }
        ledger.end(true);
        ledger.probeAll();
    }

    /// @notice Lets 1 s to 30 min pass: feeds not refreshed for their maximum age (1 h) go stale.
    function timePasses(uint256 secondsSeed) external worldStep {
        secondsSeed = _mix(secondsSeed);
        _warp(Env.bound(secondsSeed, 1, Env.MAX_AGE / 2));
    }

    /// @notice Funding time: 1 to 8 hours pass, then every feed that is not broken publishes (at the same prices):
    ///         positions accrue the funding their markets' premiums (set by fee-paying fills) call for.
    function fundingHours(uint256 hoursSeed) external worldStep {
        hoursSeed = _mix(hoursSeed);
        _warp(Env.bound(hoursSeed, 1, 8) * 1 hours);
        _publishWorking();
    }

    /// @notice A gap: asset `assetSeed % 4` jumps 25% to 60% (down when `bpsSeed` is even, else up) with no keeper in
    ///         between, so accounts go bankrupt beyond the insurance fund and write-offs deleverage the other side.
    function gap(uint256 assetSeed, uint256 bpsSeed) external {
        (assetSeed, bpsSeed) = (_mix(assetSeed), _mix(bpsSeed));
        ledger.beginWorld(msg.sig);
        int256 bps = int256(Env.bound(bpsSeed >> 1, 2500, 6000));
        _move(assetSeed % 4, bpsSeed % 2 == 0 ? -bps : bps);
        _publishWorking();
        ledger.end(true);
        ledger.probeAll();
    }

    /// @dev Time passes (accrued funding changes values: the ledger moves its E1/E2 baselines after every world
    ///      step); counts the steps in which a market's funding indices moved.
    function _warp(uint256 dt) internal {
        int256[5] memory before;
        for (uint256 m; m < Env.MARKETS; ++m) {
            before[m] = _longIndex(m);
        }
        Env.VM.warp(block.timestamp + dt);
        for (uint256 m; m < Env.MARKETS; ++m) {
            if (_longIndex(m) != before[m]) {
                ledger.fundingMoved();
                break;
            }
        }
    }

    /// @dev The long index of `market` now (0 while its asset has no valid price).
    function _longIndex(uint256 market) internal view returns (int256) {
        try vault.marketFunding(market) returns (IVaultTypes.MarketFunding memory f) {
            return f.longIndex;
        } catch {
            return 0;
        }
    }
}
