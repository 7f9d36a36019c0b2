// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {PortfolioMargin} from "../libraries/PortfolioMargin.sol";

/// @title ICrossMarginVault — shared multi-token collateral, positions in several markets, portfolio margin,
///        liquidation against the insurance fund and a bad-debt waterfall.
/// @notice Accounts. An account id is `uint256(owner) << 96 | subaccount` (owner in the top 160 bits, a 96-bit
///         subaccount number below). Every subaccount is margined on its own: isolate a position by giving it a
///         subaccount. An owner may authorise operators, who may withdraw, trade (sign orders) and cancel for it.
///
///         Units. Prices and USD values are 1e18 fixed point; token amounts are in each token's own decimals; position
///         sizes are signed base units 1e18 (positive = long); `openNotional` is the signed USD cost basis (1e18).
///         The settlement balance is USD 1e18 (the settlement token is valued at par: 1 token = 1 USD), may be negative
///         (owed P&L) and counts fully in equity. A positive balance is a claim on the vault's settlement tokens, held
///         as shares of one pool: USD = shares * index / 1e18 (`settlementIndex`; views return USD).
///
///         Equity   E = sum_j floor(floor(c_j p_j) (1 - h_j)) + settlement + sum_i (floor(q_i P_i) - openNotional_i)
///         Delta    D_k = sum over positions on asset k of floor(q_i P_i) + sum over collateral of asset k of c_j p_j
///         Margin   MM and IM from `PortfolioMargin.breakdown`; liquidatable iff E < MM.
///         Prices   positions need a valid oracle price (otherwise the evaluation reverts with the oracle's error);
///                  collateral whose asset has no valid price counts at 0 (no equity, no delta) unless the account
///                  also holds a position on that asset. Listing a collateral requires a valid price for its asset.
///         Rule     an action that adds risk or removes collateral must leave E >= IM. A trade side may end below IM
///                  only if its position only shrank (no increase, no flip), its fill was no worse for it than the
///                  oracle price (a buyer at or below it, a seller at or above it), its E - MM rose and its E >= 0:
///                  nobody can move value out of an account that needs it, e.g. to a sibling subaccount at the band edge.
///
///         Liquidation. While E < MM anyone may call `liquidate` naming positions to close (at the oracle price, taken
///         over by the insurance fund) and collateral to sell to the fund (at the collateral's liquidation discount;
///         collateral without a valid price cannot be sold). The USD amount taken (closed |notional| plus seized
///         collateral value) may not exceed `maxTake`:
///           - everything, when E < deep * MM or when what would remain is below the dust threshold;
///           - otherwise min(closeFactor * gross, needed) with needed = ceil(gross * (IM - E) / (IM - penalty * gross)),
///             the amount that restores IM if the requirement fell in proportion to what is taken
///             (everything if the denominator is not positive);
///         and, when anything is taken, E - MM must rise. With E' and MM' the account's equity and maintenance margin
///         after the take, the penalty moved from the account to the fund is `liquidationPenalty`:
///         min(ceil(rate * taken), max(E', 0), (MM - MM') / 2): it never makes equity negative and never eats more than
///         half of the margin the take frees, so a take that lowers MM always raises E - MM. Rounding never makes a
///         solvent account insolvent either: when E >= 0 before, the fund adds the few wei by which the take's rounding
///         and the share rounding of the stored balance would leave E below 0. The caller's subaccount 0
///         is credited the keeper reward, paid out of that penalty (`keeperReward`): keeperShare * penalty, raised to
///         min(minKeeperReward, penalty) when the call takes at least 99% of `maxTake`. Rewards never exceed the
///         penalties collected, so slicing a liquidation into many small calls earns nothing the single call would not.
///
///         Bad debt. When an account is left with no positions, no collateral with a valid price and a negative
///         settlement balance, and its collateral without a valid price is dust (worth nothing, or less than the
///         LIQUIDATION word's dust threshold, at its feeds' last answers, `IOracleRouter.lastPrice`: a stale feed's last value, 0
///         for a non-positive answer), the debt is written off in the same call (a call naming no items may do it):
///         that collateral passes to the fund, whose positive settlement balance covers the debt first; the rest
///         is socialised at once over every positive settlement balance by lowering the index, so every holder of a
///         claim at that moment bears the same fraction whatever the order of later withdrawals, and claims created
///         later (deposits, P&L) are not haircut. A bankrupt account (E < 0) is liquidatable by anyone and `maxTake`
///         is then everything, so the loss can be marked in one call before anyone withdraws ahead of it. A loss that
///         would take the index below 1e-6 (of its start) takes every claim: they are all worth 0, the pool restarts
///         empty at index 1e18 (SettlementIndexUpdated with totalShares 0), and what those claims held beyond the loss
///         goes to the fund. What exceeds every claim is recorded in `badDebt`; `resolveBadDebt` lets anyone retire it.
///         Collateral worth at least the dust threshold at a stale feed's last answer is never given to the fund: the
///         write-off waits for the feed, and the account is liquidated as usual once it has a price again.
///
///         Assumptions on tokens: standard ERC20 behaviour or a subset (missing return values and fees on transfer
///         are handled: deposits are credited by balance difference). Rebasing tokens are not supported as collateral.
///         Tokens with hooks cannot re-enter (every entry point that moves tokens, balances or positions is
///         non-reentrant).
interface ICrossMarginVault {
    /// @notice A position to close (kind 0; `amount` = size to close, base units) or collateral to seize (kind 1;
    ///         `amount` in token units) in a liquidation; `id` is the market id or collateral id.
    struct LiquidationItem {
        uint8 kind;
        uint8 id;
        uint256 amount;
    }

    /// @notice Everything about an account's margin, for keepers and interfaces.
    struct MarginDetail {
        int256 equity;
        uint256 standard; // per-position requirement sum |notional| * rate, for comparison
        int256[8] delta;
        uint256[8] gross;
        PortfolioMargin.Breakdown margin;
    }

    // ------------------------------------------------------------------ errors
    error Unauthorized(address caller, uint256 account);
    error NotAdmin(address caller);
    error NotVenue(address caller);
    error UnknownToken(address token);
    error UnknownMarket(uint256 market);
    error UnknownAsset(uint256 asset);
    error ListingFull(uint256 count);
    error AlreadyListed(address token);
    error ZeroAmount();
    error Paused(uint256 flag);
    /// @notice After the action the account's equity is below its initial margin.
    error InsufficientMargin(uint256 account, int256 equity, uint256 initialMargin);
    error InsufficientBalance(uint256 account, address token, uint256 balance, uint256 amount);
    error PriceOutsideBand(uint256 market, uint256 price, uint256 oraclePrice, uint256 bandBps);
    error SelfTrade(uint256 account);
    error PositionTooLarge(uint256 account, uint256 market, int256 size, uint256 maxSize);
    error OpenInterestTooLarge(uint256 market, uint256 openInterest, uint256 maxOpenInterest);
    /// @notice `liquidate` on an account whose equity is at or above maintenance margin.
    error AccountHealthy(uint256 account, int256 equity, uint256 maintenanceMargin);
    error LiquidationTooLarge(uint256 account, uint256 taken, uint256 allowed);
    error LiquidationNotImproving(uint256 account, int256 surplusBefore, int256 surplusAfter);
    error LiquidationEmpty(uint256 account);
    error BadLiquidationItem(uint256 account, uint256 kind, uint256 id, uint256 amount);
    error FundNotLiquidatable();
    error ValueOverflow(int256 value);

    // ------------------------------------------------------------------ events (post-state snapshots)
    event PositionUpdated(uint256 indexed account, uint256 indexed market, int256 size, int256 openNotional);
    event CollateralUpdated(uint256 indexed account, address indexed token, uint256 balance);
    /// @notice The stored settlement balance: shares of the claims pool when positive, USD owed when negative.
    event SettlementUpdated(uint256 indexed account, int256 balance);
    event Trade(
        uint256 indexed buyer, uint256 indexed seller, uint256 indexed market, uint256 size, uint256 price, uint256 fees
    );
    event Liquidated(
        uint256 indexed account,
        address indexed keeper,
        uint256 taken,
        uint256 penalty,
        uint256 keeperReward,
        int256 surplusBefore,
        int256 surplusAfter
    );
    event BadDebtWrittenOff(uint256 indexed account, uint256 debt, uint256 coveredByFund, uint256 socialised);
    event BadDebtReduced(uint256 amount, uint256 remaining);
    /// @notice A write-off was socialised: the settlement index is now `index` (USD 1e18 per 1e18 shares) over
    ///         `totalShares` shares; holders lost `socialised` USD in all. `totalShares` 0: every claim is worth 0 (the
    ///         pool restarted; stored shares from before are void).
    event SettlementIndexUpdated(uint256 index, uint256 totalShares, uint256 socialised);
    event OperatorSet(address indexed owner, address indexed operator, bool approved);
    event CollateralListed(uint256 indexed id, address indexed token, uint256 asset, uint256 decimals);
    event MarketListed(uint256 indexed id, uint256 asset);
    event VenueSet(address indexed venue, bool enabled);

    // ------------------------------------------------------------------ accounts
    /// @notice The id of subaccount `sub` of `owner`.
    function accountId(address owner, uint96 sub) external pure returns (uint256);
    /// @notice The insurance fund's account id: subaccount 0 of the vault itself.
    function fundAccount() external view returns (uint256);
    /// @notice Authorise or revoke `operator` for all of the caller's subaccounts.
    function setOperator(address operator, bool approved) external;
    /// @notice True if `caller` is the account's owner or an operator of it (the admin's fund operators for the fund).
    function isAuthorized(uint256 account, address caller) external view returns (bool);

    // ------------------------------------------------------------------ collateral
    /// @notice Deposit `amount` of a listed token (or the settlement token) into any account; credits what arrived.
    /// @return credited The amount credited (token units), measured by balance difference.
    function deposit(uint256 account, address token, uint256 amount) external returns (uint256 credited);
    /// @notice Owner or operator: withdraw to `to`; the account must stay at or above IM afterwards.
    /// @return paid The amount sent (always `amount`: losses are socialised through the index when they occur).
    function withdraw(uint256 account, address token, uint256 amount, address to) external returns (uint256 paid);

    // ------------------------------------------------------------------ trading (venues only)
    /// @notice Venue: `buyer` buys `size` (base 1e18) of `market` from `seller` at `price` (USD 1e18), each paying a
    ///         fee (USD 1e18) to the fund. Reverts unless the price is within the band around the oracle price, caps
    ///         hold, and each side satisfies the trade rule above (`InsufficientMargin` otherwise).
    function settleTrade(
        uint256 buyer,
        uint256 seller,
        uint256 market,
        uint256 size,
        uint256 price,
        uint256 buyerFee,
        uint256 sellerFee
    ) external;

    // ------------------------------------------------------------------ liquidation
    /// @notice Liquidate an account below maintenance margin (see the rule above). Permissionless.
    /// @return reward The keeper reward credited to the caller's subaccount 0, USD 1e18.
    function liquidate(uint256 account, LiquidationItem[] calldata items) external returns (uint256 reward);
    /// @notice The most a liquidation may take, USD 1e18 (the rule above).
    function maxTake(int256 equity, uint256 maintenance, uint256 initial, uint256 gross, uint256 liq)
        external
        pure
        returns (uint256);
    /// @notice The penalty of a liquidation that took `taken` (the rule above; `liq` is the LIQUIDATION word).
    function liquidationPenalty(
        uint256 taken,
        int256 equityAfter,
        uint256 maintenanceBefore,
        uint256 maintenanceAfter,
        uint256 liq
    ) external pure returns (uint256);
    /// @notice The keeper reward out of `penalty` for a call that took `taken` of `allowed` (the rule above).
    function keeperReward(uint256 penalty, uint256 taken, uint256 allowed, uint256 liq) external pure returns (uint256);
    /// @notice Pay `amount` settlement tokens (token units) to retire recorded bad debt.
    /// @dev   Any value above the recorded bad debt is credited to the insurance fund.
    function resolveBadDebt(uint256 amount) external;

    // ------------------------------------------------------------------ views
    /// @notice Equity, maintenance and initial margin at current oracle prices (reverts on an invalid price).
    function margin(uint256 account) external view returns (int256 equity, uint256 maintenance, uint256 initial);
    /// @notice The full breakdown: equity, standard requirement, deltas, K per regime, stress, basis, floor, MM, IM.
    function marginDetail(uint256 account) external view returns (MarginDetail memory);
    function positionOf(uint256 account, uint256 market) external view returns (int256 size, int256 openNotional);
    function collateralOf(uint256 account, uint256 collateralId) external view returns (uint256);
    /// @return The settlement balance in USD 1e18 (positive: shares * index / 1e18, rounded down).
    function settlementOf(uint256 account) external view returns (int256);
    /// @return The settlement balance as stored (and emitted in `SettlementUpdated`): shares when positive (0 when
    ///         they are from before the pool last restarted).
    function storedSettlementOf(uint256 account) external view returns (int256);
    /// @notice Bit masks of the markets and collateral ids the account holds.
    function masksOf(uint256 account) external view returns (uint256 markets, uint256 collaterals);
    /// @notice Sum of long sizes in `market` (base 1e18).
    function openInterest(uint256 market) external view returns (uint256);
    /// @notice Bad debt beyond the insurance fund and every settlement claim (not socialised), USD 1e18.
    function badDebt() external view returns (uint256);
    /// @return index USD 1e18 per 1e18 shares of the claims pool. @return totalShares Shares of all positive balances.
    function settlementIndex() external view returns (uint256 index, uint256 totalShares);
    /// @return The vault's copy of RiskParameters' CONTROL word (pause flags, price band, loosening delay).
    function controlWord() external view returns (uint256);
    /// @notice Listing: number of markets and collaterals, each one's asset, and collateral decimals.
    function marketAsset(uint256 market) external view returns (uint256);
    function collateralInfo(uint256 id) external view returns (address token, uint256 asset, uint256 decimals);
    function numMarkets() external view returns (uint256);
    function numCollaterals() external view returns (uint256);

    // ------------------------------------------------------------------ admin (DEFAULT_ADMIN_ROLE of RiskParameters)
    /// @dev Reverts `UnknownToken` for a token with more than 31 decimals (the settlement token: more than 18).
    function listCollateral(address token, uint256 asset) external returns (uint256 id);
    function listMarket(uint256 asset) external returns (uint256 id);
    function setVenue(address venue, bool enabled) external;
    function setFundOperator(address operator, bool approved) external;
    /// @notice RiskParameters only: its CONTROL word changed (pause flags and price band are read from this copy).
    function setControl(uint256 word) external;
    /// @notice RiskParameters only: the margin words now live in the data contract at `pointer`.
    function setMarginConfigPointer(address pointer) external;
    /// @return The data contract holding the margin words the vault reads.
    function marginConfigPointer() external view returns (address);
}
