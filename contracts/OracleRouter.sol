// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";
import {IOracleRouter} from "./interfaces/IOracleRouter.sol";

/// @title OracleRouter
/// @notice See IOracleRouter.
contract OracleRouter is IOracleRouter {
    /// @dev One slot per asset.
    struct Feed {
        AggregatorV3Interface aggregator; // bytes 0-19
        uint8 decimals; //                   byte 20
        uint32 maxAge; //                    bytes 21-24, seconds
    }

    /// @dev A volatility feed and its bounds (bps of annualised volatility): 33 bytes, two slots per asset.
    struct VolFeed {
        AggregatorV3Interface aggregator; // bytes 0-19
        uint8 decimals; //                   byte 20
        uint32 maxAge; //                    bytes 21-24, seconds
        uint32 minVolBps; //                 bytes 25-28
        uint32 maxVolBps; //                 second slot
    }

    uint256 public constant MAX_ASSETS = 8;

    /// @notice L2 sequencer-uptime feed (zero: not on an L2, no check) and its grace period, fixed at deployment.
    AggregatorV3Interface public immutable sequencerFeed;
    uint256 public immutable sequencerGracePeriod;
    address public owner;
    Feed[8] internal _feeds;
    VolFeed[8] internal _volFeeds;

    event OwnerSet(address owner);

    constructor(address owner_, address sequencerFeed_, uint32 gracePeriod) {
        owner = owner_;
        sequencerFeed = AggregatorV3Interface(sequencerFeed_);
        sequencerGracePeriod = gracePeriod;
        emit OwnerSet(owner_);
        emit SequencerFeedSet(sequencerFeed_, gracePeriod);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// @notice Owner: hand ownership to `owner_` (meant to be a timelock).
    function setOwner(address owner_) external onlyOwner {
        owner = owner_;
        emit OwnerSet(owner_);
    }

    /// @inheritdoc IOracleRouter
    function setFeed(uint256 asset, address feed, uint32 maxAge) external onlyOwner {
        uint8 dec = AggregatorV3Interface(feed).decimals();
        if (asset >= MAX_ASSETS || dec > 36 || maxAge == 0) revert BadFeedConfig(asset, dec, maxAge);
        _feeds[asset] = Feed(AggregatorV3Interface(feed), dec, maxAge);
        emit FeedSet(asset, feed, dec, maxAge);
    }

    /// @inheritdoc IOracleRouter
    function setVolFeed(uint256 asset, address feed, uint32 maxAge, uint32 minVolBps, uint32 maxVolBps)
        external
        onlyOwner
    {
        uint8 dec = AggregatorV3Interface(feed).decimals();
        if (asset >= MAX_ASSETS || dec > 36 || maxAge == 0 || minVolBps == 0 || minVolBps > maxVolBps) {
            revert BadVolFeedConfig(asset, maxAge, minVolBps, maxVolBps);
        }
        _volFeeds[asset] = VolFeed(AggregatorV3Interface(feed), dec, maxAge, minVolBps, maxVolBps);
        emit VolFeedSet(asset, feed, dec, maxAge, minVolBps, maxVolBps);
    }

    /// @inheritdoc IOracleRouter
    function volFeedOf(uint256 asset) external view returns (address, uint8, uint32, uint32, uint32) {
        VolFeed memory f = _volFeeds[asset];
        return (address(f.aggregator), f.decimals, f.maxAge, f.minVolBps, f.maxVolBps);
    }

    /// @inheritdoc IOracleRouter
    function vols(uint256 assetMask, bool strict) external view returns (uint256[8] memory out) {
        if (strict && assetMask != 0) _checkSequencer();
        for (uint256 k; k < MAX_ASSETS; ++k) {
            if ((assetMask >> k) & 1 == 0) continue;
            VolFeed memory f = _volFeeds[k];
            if (address(f.aggregator) == address(0)) revert VolatilityUnavailable(k, 0, 0);
            (uint256 v,, uint256 updatedAt) = _normalised(Feed(f.aggregator, f.decimals, f.maxAge));
            uint256 lo = uint256(f.minVolBps) * 1e14;
            uint256 hi = uint256(f.maxVolBps) * 1e14;
            if (strict && (v < lo || v > hi || updatedAt + f.maxAge < block.timestamp)) {
                revert VolatilityUnavailable(k, v, updatedAt);
            }
            // slither-disable-next-line incorrect-equality (0: a non-positive answer)
            out[k] = v == 0 ? hi : v < lo ? lo : v > hi ? hi : v;
        }
    }

    /// @inheritdoc IOracleRouter
    function feedOf(uint256 asset) external view returns (address, uint8, uint32) {
        Feed memory f = _feeds[asset];
        return (address(f.aggregator), f.decimals, f.maxAge);
    }

    /// @inheritdoc IOracleRouter
    function price(uint256 asset) external view returns (uint256) {
        _checkSequencer();
        return _price(asset, true);
    }

    /// @inheritdoc IOracleRouter
    function prices(uint256 assetMask) external view returns (uint256[8] memory) {
        _pricesFor(assetMask, 0);
    }

    /// @inheritdoc IOracleRouter
    function pricesFor(uint256 required, uint256 optional) external view returns (uint256[8] memory) {
        _pricesFor(required, optional);
    }

    /// @dev Returns (ends the call with) the eight prices: a uint256[8] is ABI-encoded as its eight words.
    function _pricesFor(uint256 required, uint256 optional) internal view {
        uint256[8] memory out;
        uint256 mask = required | optional;
        if (mask != 0) {
            _checkSequencer();
            unchecked {
                for (uint256 k; k < MAX_ASSETS && mask >> k != 0; ++k) {
                    if ((mask >> k) & 1 != 0) out[k] = _price(k, (required >> k) & 1 != 0);
                }
            }
        }
        assembly ("memory-safe") {
            return(out, 0x100)
        }
    }

    /// @inheritdoc IOracleRouter
    function lastPrice(uint256 asset) external view returns (uint256 p) {
        if (asset >= MAX_ASSETS) return 0;
        Feed memory f = _feeds[asset];
        if (address(f.aggregator) != address(0)) (p,,) = _normalised(f);
    }

    /// @dev The normalised price of `asset`; when it is invalid: reverts if `strict`, else 0.
    function _price(uint256 asset, bool strict) internal view returns (uint256 p) {
        if (asset >= MAX_ASSETS) revert FeedNotSet(asset);
        Feed memory f = _feeds[asset];
        if (address(f.aggregator) == address(0)) {
            if (strict) revert FeedNotSet(asset);
            return 0;
        }
        int256 answer;
        uint256 updatedAt;
        (p, answer, updatedAt) = _normalised(f);
        if (!strict) return updatedAt + f.maxAge < block.timestamp ? 0 : p;
        // slither-disable-next-line incorrect-equality (a positive answer that normalises to nothing is no price)
        if (p == 0) revert PriceNotPositive(asset, answer);
        if (updatedAt + f.maxAge < block.timestamp) revert PriceStale(asset, updatedAt, f.maxAge, block.timestamp);
    }

    /// @dev The feed's latest answer normalised to 1e18 (0 when not positive or normalising to nothing), the raw
    ///      answer and its `updatedAt`.
    function _normalised(Feed memory f) internal view returns (uint256 p, int256 answer, uint256 updatedAt) {
        (answer, updatedAt) = _latestAnswer(f.aggregator);
        if (answer > 0) {
            uint256 scale;
            unchecked {
                scale = 10 ** (f.decimals <= 18 ? 18 - f.decimals : f.decimals - 18); // at most 10^18 (decimals <= 36)
            }
            p = f.decimals <= 18 ? uint256(answer) * scale : uint256(answer) / scale;
        }
    }

    /// @dev `answer` and `updatedAt` of `feed.latestRoundData()`, read from the returned words without decoding the
    ///      three others.
    function _latestAnswer(AggregatorV3Interface feed) internal view returns (int256 answer, uint256 updatedAt) {
        bytes4 selector = AggregatorV3Interface.latestRoundData.selector;
        assembly ("memory-safe") {
            let m := mload(0x40) // scratch at the free memory pointer, not kept
            mstore(m, selector)
            if iszero(staticcall(gas(), feed, m, 4, m, 0xa0)) {
                returndatacopy(m, 0, returndatasize())
                revert(m, returndatasize())
            }
            if lt(returndatasize(), 0xa0) { revert(0, 0) }
            answer := mload(add(m, 0x20))
            updatedAt := mload(add(m, 0x60))
        }
    }

    function _checkSequencer() internal view {
        AggregatorV3Interface seq = sequencerFeed;
        if (address(seq) == address(0)) return;
        // slither-disable-next-line unused-return (an uptime feed is read through answer and startedAt only)
        (, int256 answer, uint256 startedAt,,) = seq.latestRoundData();
        // Chainlink's uptime feeds answer 0 when the sequencer is up, 1 when it is down; a round that has not started
        // (startedAt 0) says nothing about how long it has been up.
        // slither-disable-next-line incorrect-equality (0 is the feed's "no round" value)
        if (answer != 0 || startedAt == 0 || block.timestamp < startedAt + sequencerGracePeriod) {
            revert SequencerDown(startedAt, sequencerGracePeriod);
        }
    }
}
