// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IOracleRouter — asset prices from Chainlink feeds, normalised to USD 1e18.
/// @notice Assets are numbered 0..7. Each has one `AggregatorV3Interface` feed, its decimals (read once when the feed
///         is set) and a maximum age (the feed's heartbeat plus a margin). A price is returned only when the answer is
///         positive and not older than its maximum age, and, when an L2 sequencer-uptime feed is configured, the
///         sequencer is up and has been for the grace period (a sequencer round that has not started, `startedAt` 0,
///         counts as down). Otherwise the call reverts with a custom error: every action that needs the price
///         (trades, withdrawals, liquidations) waits for a valid one. A stale feed can be replaced by the owner at once.
///         `pricesFor` lets the vault value collateral at zero while its price is unavailable instead of reverting,
///         so a stale collateral feed (or a dust deposit of such a token) never blocks a liquidation.
///         Assumptions on feeds: `latestRoundData` does not revert and reports the time of its answer in `updatedAt`.
interface IOracleRouter {
    /// @notice No feed is configured for `asset`.
    error FeedNotSet(uint256 asset);
    /// @notice The feed answered zero or a negative price, or a positive answer that normalises to 0 (more than 18
    ///         decimals).
    error PriceNotPositive(uint256 asset, int256 answer);
    /// @notice The answer is older than the feed's maximum age.
    error PriceStale(uint256 asset, uint256 updatedAt, uint256 maxAge, uint256 nowTimestamp);
    /// @notice The L2 sequencer is down, or came back less than `gracePeriod` ago.
    error SequencerDown(uint256 startedAt, uint256 gracePeriod);
    /// @notice A feed with more than 36 decimals, an asset index above 7 or a zero max age.
    error BadFeedConfig(uint256 asset, uint256 decimals, uint256 maxAge);
    /// @notice The caller is not the owner.
    error NotOwner(address caller);
    /// @notice The volatility of `asset` is unavailable for a risk-adding action: no feed, a non-positive answer, an
    ///         answer outside the feed's bounds (`volatility`, WAD) or older than its maximum age.
    error VolatilityUnavailable(uint256 asset, uint256 volatility, uint256 updatedAt);
    /// @notice A volatility feed with more than 36 decimals, an asset index above 7, a zero max age or bounds with
    ///         min = 0 or min > max.
    error BadVolFeedConfig(uint256 asset, uint256 maxAge, uint256 minVolBps, uint256 maxVolBps);

    /// @notice A feed was set for `asset`.
    event FeedSet(uint256 indexed asset, address feed, uint8 decimals, uint32 maxAge);
    /// @notice A volatility feed was set for `asset`, with its bounds (bps of annualised volatility).
    event VolFeedSet(uint256 indexed asset, address feed, uint8 decimals, uint32 maxAge, uint32 minVolBps,
        uint32 maxVolBps);
    /// @notice The sequencer-uptime feed fixed at deployment (zero address: none, for L1 chains).
    event SequencerFeedSet(address feed, uint32 gracePeriod);

    /// @return The price of `asset` in USD per whole unit, 1e18 fixed point (reverts on an invalid price).
    function price(uint256 asset) external view returns (uint256);
    /// @return The feed's latest answer for `asset`, normalised like `price`, whatever its age and the sequencer's
    ///         state: the last known value of a stale feed. 0 when no feed is set or the answer is not positive.
    ///         Never a trading or margin price: the vault uses it only to recognise dust (`ICrossMarginVault`).
    function lastPrice(uint256 asset) external view returns (uint256);
    /// @notice Prices of every asset whose bit is set in `assetMask` (bit k = asset k); other entries are zero and
    ///         bits above 7 are ignored.
    function prices(uint256 assetMask) external view returns (uint256[8] memory);
    /// @notice Prices of the assets in `required | optional`: an invalid price of a `required` asset reverts as
    ///         `prices` does; an `optional` asset (not also required) whose price is invalid (feed not set, answer not
    ///         positive, stale) gets 0. A sequencer outage reverts for every asset.
    function pricesFor(uint256 required, uint256 optional) external view returns (uint256[8] memory);
    /// @notice Annualised volatilities (WAD: 1e18 = 100%) of the assets in `assetMask`, from their volatility feeds
    ///         (the `AggregatorV3Interface` shape of Chainlink's realised-volatility feeds: answer with its decimals,
    ///         1.0 = 100%). `strict`: every volatility must be fresh (max age) and within its feed's bounds, else
    ///         `VolatilityUnavailable` (and a sequencer outage reverts) — for actions that add risk. Not `strict`: the
    ///         last answer, clamped to the bounds (the upper bound for a non-positive answer), whatever its age — so a
    ///         stale volatility feed never blocks a liquidation. An asset without a volatility feed always reverts.
    function vols(uint256 assetMask, bool strict) external view returns (uint256[8] memory);
    /// @notice Owner: set the volatility feed of `asset`, its maximum age and its bounds (bps: 1e4 = 100%).
    function setVolFeed(uint256 asset, address feed, uint32 maxAge, uint32 minVolBps, uint32 maxVolBps) external;
    /// @return feed, decimals, maxAge, minVolBps, maxVolBps of the volatility feed of `asset`.
    function volFeedOf(uint256 asset) external view returns (address, uint8, uint32, uint32, uint32);
    /// @notice Owner: set the feed of `asset`, with its maximum age in seconds.
    function setFeed(uint256 asset, address feed, uint32 maxAge) external;
    /// @return feed The aggregator of `asset`. @return decimals Its decimals. @return maxAge Its maximum age.
    function feedOf(uint256 asset) external view returns (address feed, uint8 decimals, uint32 maxAge);
}
