// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IVaultTypes} from "../../../contracts/interfaces/ICrossMarginVault.sol";
import {IOptionMarkets} from "../../../contracts/interfaces/IOptionMarkets.sol";
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
    /// @notice Volatility feeds left stale on purpose (not refreshed by the heartbeats until `moveVol` repairs them).
    bool[4] public volStale;

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

    /// @dev The feed answers the true price, updated now, in a new round (an expiry is fixed by the first round at or
    ///      after it, so rounds must be real). The volatility feeds that are not stale on purpose are refreshed too
    ///      (at their answers: a realised-volatility feed's heartbeat).
    function _publish(uint256 asset) internal {
        p.feeds[asset].updateAnswer(int256(ledger.truePrice(asset) / 1e10));
        broken[asset] = false;
        if (asset < Env.VOL_ASSETS && !volStale[asset]) {
            uint80 round = uint80(p.volFeeds[asset].latestRound());
            int256 vol = p.volFeeds[asset].latestAnswer();
            p.volFeeds[asset].updateRoundData(round, vol, block.timestamp, block.timestamp);
        }
    }

    // ================================================================ options: volatility, expiry, listing
    /// @notice Moves the volatility feed of asset `assetSeed % 4`: mode 0-4 a new answer at 1/2 .. 2 times the current
    ///         one (kept within 3% .. 800%: sometimes outside the router's bounds 5% .. 500%, where strict reads refuse
    ///         and the others clamp), 5 a zero answer, 6 a negative one, 7 stale (last update older than a day; the
    ///         heartbeats leave it so until a later move). Liquidations must go on whatever the feed does (E5).
    function moveVol(uint256 assetSeed, uint256 seed) external worldStep {
        (assetSeed, seed) = (_mix(assetSeed), _mix(seed));
        uint256 asset = assetSeed % Env.VOL_ASSETS;
        uint256 mode = seed % 8;
        uint80 round = uint80(p.volFeeds[asset].latestRound());
        int256 current = p.volFeeds[asset].latestAnswer();
        if (current <= 0) current = int256(Env.startVol(asset));
        ledger.volMoved();
        if (mode == 7) {
            uint256 old = block.timestamp > Env.VOL_MAX_AGE + 1 ? block.timestamp - Env.VOL_MAX_AGE - 1 : 0;
            p.volFeeds[asset].updateRoundData(round, current, old, old);
            volStale[asset] = true;
            return;
        }
        int256 answer = current * int256(Env.bound(seed >> 8, 50, 200)) / 100;
        if (mode >= 5) answer = mode == 5 ? int256(0) : -current;
        if (mode < 5) {
            if (answer < 3e6) answer = 3e6;
            if (answer > 800e6) answer = 800e6;
        }
        p.volFeeds[asset].updateRoundData(round, answer, block.timestamp, block.timestamp);
        volStale[asset] = false;
    }

    /// @notice Expiry: takes the listed, unfixed series with the nearest expiry (from slot `slotSeed % 10`, if it is
    ///         within 5 days), lets time run to it, every working feed publishes (new rounds), and every expired series
    ///         whose asset's feed works is fixed with the first round at or after its expiry (found by walking back).
    function expire(uint256 slotSeed) external worldStep {
        slotSeed = _mix(slotSeed);
        uint256 nearest = type(uint256).max;
        for (uint256 i; i < Env.SLOTS; ++i) {
            IOptionMarkets.Series memory s = p.options.series((slotSeed + i) % Env.SLOTS);
            if (s.listed && s.fixedPrice == 0 && s.expiry < nearest) nearest = s.expiry;
        }
        if (nearest == type(uint256).max || nearest > block.timestamp + 5 days) return;
        if (nearest > block.timestamp) _warp(nearest - block.timestamp);
        _publishWorking();
        for (uint256 slot; slot < Env.SLOTS; ++slot) {
            IOptionMarkets.Series memory s = p.options.series(slot);
            if (!s.listed || s.fixedPrice != 0 || s.expiry > block.timestamp || broken[s.asset]) continue;
            uint256 r = _firstRoundAfter(s.asset, s.expiry);
            if (r != 0) p.options.fixExpiry(slot, uint80(r));
        }
    }

    /// @dev The round of `asset`'s feed that is the first at or after `t` (0 if none is found in the last 64 rounds).
    function _firstRoundAfter(uint256 asset, uint256 t) internal view returns (uint256) {
        uint256 latest = p.feeds[asset].latestRound();
        for (uint256 r = latest; r > 1 && r + 64 > latest; --r) {
            if (p.feeds[asset].getTimestamp(r) >= t && p.feeds[asset].getTimestamp(r - 1) < t) return r;
        }
        return 0;
    }

    /// @notice Lists a series in slot `slotSeed % 10` when it is free (never listed, or fixed with no position left):
    ///         asset `assetSeed % 4`, a call or a put, strike 75% .. 125% of spot, expiry 1 to 5 days ahead. Refused
    ///         (and skipped) while the asset has no valid price or volatility.
    function listSeries(uint256 slotSeed, uint256 assetSeed, uint256 strikeSeed, uint256 daysSeed) external worldStep {
        (slotSeed, assetSeed) = (_mix(slotSeed), _mix(assetSeed));
        (strikeSeed, daysSeed) = (_mix(strikeSeed), _mix(daysSeed));
        uint256 slot = slotSeed % Env.SLOTS;
        IOptionMarkets.Series memory s = p.options.series(slot);
        if (s.listed && (s.fixedPrice == 0 || s.longInterest != 0 || s.shortInterest != 0)) return;
        uint256 asset = assetSeed % Env.VOL_ASSETS;
        try p.oracle.price(asset) returns (uint256 spot) {
            uint256 strike = spot / 1e14 * Env.bound(strikeSeed, 7500, 12_500); // 4 significant digits
            uint256 expiry = block.timestamp + Env.bound(daysSeed >> 1, 1, 5) * 1 days;
            try p.options.listSeries(slot, asset, daysSeed % 2 == 0, strike, expiry) {} catch {}
        } catch {}
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
