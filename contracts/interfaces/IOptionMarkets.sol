// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {OptionMargin} from "../libraries/OptionMargin.sol";

/// @title IOptionMarkets — European cash-settled options in the vault's accounts (docs/options.md).
/// @notice The registry of option series and positions, and their pricing and margin. It holds no money: premiums,
///         fees, expiry payoffs and liquidations move through the vault's settlement balances, and every change of a
///         position comes from the vault (`onlyVault`), which checks the margin of the accounts involved.
///
///         Series. At most 32 live series, one per slot: (asset, call or put, strike, expiry). A slot may be listed
///         again once its series is fixed and every position in it is settled. An account holds at most 8 series
///         (the insurance fund: all 32); its holdings are a 32-bit mask of slots kept in its vault account word.
///
///         Mark. Black-Scholes at zero rate with forward = spot (OptionMath), on the asset's volatility feed bent by
///         the OPTION word's skew: sigma(K) = sigma (1 + skew |ln(S/K)|). A position is worth floor(size * mark).
///         After expiry and before fixing: the intrinsic value at the current spot; once fixed: the payoff at the
///         expiry price.
///
///         Expiry. `fixExpiry` (anyone) fixes a series at the price of the first round of its asset's price feed at
///         or after the expiry, proven by the round id: round `roundId` has updatedAt >= expiry and round
///         `roundId - 1` (same phase) has updatedAt < expiry. The vault's `settleExpired` then pays the positions.
interface IOptionMarkets {
    /// @notice A series as listed, with its state.
    struct Series {
        uint256 asset;
        bool isCall;
        uint256 strike; // USD 1e18
        uint256 expiry; // unix seconds
        uint256 fixedPrice; // USD 1e18, 0 until fixed
        uint256 longInterest; // sum of long sizes
        uint256 shortInterest; // sum of |short sizes|
        bool listed;
    }

    /// @notice A trade to apply (from the vault's `settleOptionTrade`).
    struct Fill {
        uint256 buyer;
        uint256 seller;
        uint256 buyerMask; // the accounts' option masks before the fill
        uint256 sellerMask;
        uint256 slot;
        uint256 size; // base units 1e18
        uint256 price; // premium per unit, USD 1e18
        uint256 options; // the OPTION word as published to the vault (RiskParameters.marginConfigPointer); 0: read it
    }

    /// @notice What a fill did, and the market data it read (the vault passes them on to `accountRisk` for the
    ///         margin checks of the same transaction instead of having them read again).
    struct FillResult {
        uint256 buyerMask;
        uint256 sellerMask;
        uint256 mark; // the model mark per unit the band was checked against
        bool buyerIncreased; // the buyer's position grew or flipped
        bool sellerIncreased;
        uint256 asset; // the series' asset
        uint256 spot; // its oracle price (OracleRouter.price)
        uint256 vol; // its volatility, fresh (OracleRouter.vols, strict)
    }

    error NotVault(address caller);
    error NotAdmin(address caller);
    error BadSlot(uint256 slot);
    /// @notice The slot holds a series that is not yet fixed or still has positions.
    error SlotInUse(uint256 slot);
    /// @notice A listing outside the limits: expiry in (now, now + 400 days], strike within [spot / 16, 16 spot] and
    ///         below 2^96 (7.9e10 USD).
    error BadSeries(uint256 asset, uint256 strike, uint256 expiry, uint256 spot);
    error SeriesNotLive(uint256 slot, uint256 expiry, uint256 nowTimestamp);
    error NotExpired(uint256 slot, uint256 expiry, uint256 nowTimestamp);
    error AlreadyFixed(uint256 slot, uint256 price);
    error NotFixed(uint256 slot);
    /// @notice `roundId` is not the first round at or after the expiry of the series in `slot` (or its price is 0 or
    ///         not below 2^104, 2.0e13 USD).
    error BadExpiryRound(uint256 slot, uint256 roundId, uint256 updatedAt, uint256 previousUpdatedAt);
    /// @notice The OPTION word is not configured (no grid): options cannot trade.
    error OptionsNotConfigured();
    error OptionPriceOutsideBand(uint256 slot, uint256 price, uint256 mark, uint256 bandBps);
    error TooManySeries(uint256 account, uint256 count);
    error OptionOpenInterestTooLarge(uint256 slot, uint256 notional, uint256 maxNotional);
    error BadOptionItem(uint256 account, uint256 slot, uint256 amount);

    event SeriesListed(uint256 indexed slot, uint256 asset, bool isCall, uint256 strike, uint256 expiry);
    event ExpiryFixed(uint256 indexed slot, uint256 price, uint256 roundId);
    /// @notice The size of `account`'s position in `slot` is now `size` (every change: fills, liquidations, expiry).
    event OptionPositionUpdated(uint256 indexed account, uint256 indexed slot, int256 size);
    event OptionTrade(uint256 indexed buyer, uint256 indexed seller, uint256 indexed slot, uint256 size,
        uint256 price, uint256 mark);

    function vault() external view returns (address);
    /// @notice Admin (RiskParameters' DEFAULT_ADMIN_ROLE): list a series in a free slot.
    function listSeries(uint256 slot, uint256 asset, bool isCall, uint256 strike, uint256 expiry) external;
    /// @notice Anyone, at or after expiry: fix the series at the first price round at or after its expiry.
    function fixExpiry(uint256 slot, uint80 roundId) external;
    function series(uint256 slot) external view returns (Series memory);
    function sizeOf(uint256 account, uint256 slot) external view returns (int256);
    /// @notice The model mark per unit of the series in `slot` now (the volatility feed's last answer).
    function mark(uint256 slot) external view returns (uint256);
    /// @notice What `account`'s short positions in the series of `mask` owe at the mark (WAD USD, each ceil(|size|
    ///         * mark)): a fixed series at its payoff; otherwise at the asset's price in `prices`, or the feed's latest
    ///         answer when 0 there, stale or not (the vault's write-off, which never waits for a feed, reads it; a
    ///         price of 0 values a call at 0 and a put at its strike), and the volatility feed's last answer, with the
    ///         OPTION word `options` (read when 0).
    function shortLiability(uint256 account, uint256 mask, uint256[8] calldata prices, uint256 options)
        external
        view
        returns (uint256);
    /// @notice The option part of the margin of `account` holding the slots in `mask`, at `prices` (assets priced 0
    ///         are read from the oracle), with `delta` the linear delta per asset of its perpetuals and collateral,
    ///         the MARGIN word `global` and the STRESS words. `strict`: the volatility must be fresh (risk-adding
    ///         actions); otherwise the feed's last answer (liquidations, views). `fillVol` and `options` pass on
    ///         what the caller read in the same transaction instead of reading it again: `fillVol = asset | vol << 8`
    ///         (`applyFill`'s FillResult) values that asset at `vol`, a fresh answer (the same in both modes; the
    ///         caller vouches for it), and `options` is the OPTION word as published to the vault; 0 for either:
    ///         read it.
    function accountRisk(
        uint256 account,
        uint256 mask,
        uint256[8] calldata prices,
        int256[8] calldata delta,
        uint256 global,
        uint256[8] calldata stress,
        bool strict,
        uint256 fillVol,
        uint256 options
    ) external view returns (OptionMargin.Risk memory);

    // ------------------------------------------------------------------ the vault only
    /// @notice Applies a fill: checks the series is live, the band, the caps and the 8-series limit.
    function applyFill(Fill calldata f, uint256 fund) external returns (FillResult memory);
    /// @notice Moves `amount` of `account`'s position in `slot` to `fund` at the mark (the volatility feed's last
    ///         answer; the asset's price from `prices`, or from the oracle when 0 there; the OPTION word `options` as
    ///         published to the vault, or read when 0). Returns the value moved (floor(size moved * mark), + for a
    ///         long), the notional taken (amount * price), both new masks and the series' asset (the vault marks
    ///         that asset's perpetual markets as deleveraging sources: ICrossMarginVault, "Deleveraging").
    function takeOver(
        uint256 account,
        uint256 fund,
        uint256 mask,
        uint256 fundMask,
        uint256 slot,
        uint256 amount,
        uint256[8] calldata prices,
        uint256 options
    ) external returns (int256 value, uint256 notional, uint256 newMask, uint256 newFundMask, uint256 asset);
    /// @notice Settles `account`'s positions in the fixed series `slots`: returns the cash (sum of floor(size *
    ///         payoff)) and the new mask.
    function settleExpired(uint256 account, uint256 mask, uint256[] calldata slots)
        external
        returns (int256 cash, uint256 newMask);
}
