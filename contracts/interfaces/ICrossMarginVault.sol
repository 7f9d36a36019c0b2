// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {PortfolioMargin} from "../libraries/PortfolioMargin.sol";
import {OptionMargin} from "../libraries/OptionMargin.sol";
import {IOptionMarkets} from "./IOptionMarkets.sol";

import {IRiskParameters} from "./IRiskParameters.sol";
import {IOracleRouter} from "./IOracleRouter.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @title IVaultTypes — the structs, errors and events of ICrossMarginVault (shared by the vault and its extension).
interface IVaultTypes {
    /// @notice A position to close (kind 0; `amount` = size to close, base units), collateral to seize (kind 1;
    ///         `amount` in token units) or an option position to close (kind 2; `amount` = size, base units) in a
    ///         liquidation; `id` is the market id, collateral id or option series slot.
    struct LiquidationItem {
        uint8 kind;
        uint8 id;
        uint256 amount;
    }

    /// @notice Everything about an account's margin, for keepers and interfaces.
    struct MarginDetail {
        int256 equity;
        int256 funding; // accrued funding of all positions (part of equity)
        uint256 standard; // per-position requirement sum |notional| * rate, for comparison
        int256[8] delta;
        uint256[8] gross;
        PortfolioMargin.Breakdown margin;
        OptionMargin.Risk options; // the option part (zero without options); `standard` covers perpetuals only
    }

    /// @notice A market's funding state, advanced to now.
    struct MarketFunding {
        int256 longIndex; // nano-USD per unit of size
        int256 shortIndex;
        int256 premium; // millionths of price
        uint256 weight; // fee mass behind the premium, 1e-4 USD
        int256 ratePerSecond; // 1e18 fixed point, longs pay when positive; the rate that applies from now on
        uint256 updatedAt;
        uint256 carry; // accrual below one index unit (USD 1e18 per unit)
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
    /// @notice No option registry is set (`setOptionMarkets`), or it is already set.
    error OptionsNotEnabled();

    // ------------------------------------------------------------------ events (post-state snapshots)
    /// @notice `funding`: the index of the position's side it now stores (its accrued funding was realised).
    event PositionUpdated(
        uint256 indexed account, uint256 indexed market, int256 size, int256 openNotional, int256 funding
    );
    /// @notice A market's funding state was stored (all of it: an indexer rebuilds it from these events alone);
    ///         `rate` is the rate applied to the interval that ended at `updatedAt`.
    event FundingUpdated(
        uint256 indexed market,
        int256 longIndex,
        int256 shortIndex,
        int256 premium,
        uint256 weight,
        uint256 carry,
        uint256 updatedAt,
        int256 rate
    );
    /// @notice `amount` (USD 1e18) of the loss of `account` was charged to the longs (`longsPay`) or the shorts of
    ///         `market`, whose index moved by `shift` nano-USD per unit.
    event Deleveraged(uint256 indexed account, uint256 indexed market, bool longsPay, uint256 amount, uint256 shift);
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
    /// @notice A bankrupt account's `debt` was written off: `coveredByFund` by the fund's settlement balance,
    ///         `deleveraged` by the opposite sides of its liquidated positions (`Deleveraged`), `socialised` over the
    ///         settlement claims (`SettlementIndexUpdated`) or, beyond them, recorded in `badDebt`.
    event BadDebtWrittenOff(
        uint256 indexed account, uint256 debt, uint256 coveredByFund, uint256 deleveraged, uint256 socialised
    );
    event BadDebtReduced(uint256 amount, uint256 remaining);
    /// @notice A write-off was socialised: the settlement index is now `index` (USD 1e18 per 1e18 shares) over
    ///         `totalShares` shares; holders lost `socialised` USD in all. `totalShares` 0: every claim is worth 0 (the
    ///         pool restarted; stored shares from before are void).
    event SettlementIndexUpdated(uint256 index, uint256 totalShares, uint256 socialised);
    event OperatorSet(address indexed owner, address indexed operator, bool approved);
    event CollateralListed(uint256 indexed id, address indexed token, uint256 asset, uint256 decimals);
    event MarketListed(uint256 indexed id, uint256 asset);
    event VenueSet(address indexed venue, bool enabled);
    event OptionMarketsSet(address markets);

}

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
///                      + sum_i accrued funding_i (see Funding)
///         Delta    D_k = sum over positions on asset k of floor(q_i P_i) + sum over collateral of asset k of c_j p_j
///         Margin   MM and IM from `PortfolioMargin.breakdown`; liquidatable iff E < MM.
///         Prices   positions need a valid oracle price (otherwise the evaluation reverts with the oracle's error);
///                  collateral whose asset has no valid price counts at 0 (no equity, no delta) unless the account
///                  also holds a position on that asset. Listing a collateral requires a valid price for its asset.
///         Rule     an action that adds risk or removes collateral must leave E >= IM. A trade side may end below IM
///                  only if its position only shrank (no increase, no flip), its fill was no worse for it than the
///                  oracle price (a buyer at or below it, a seller at or above it), its E - MM rose and its E >= 0:
///                  nobody can move value out of an account that needs it, e.g. to a sibling subaccount at the band edge.
///                  The insurance fund is held to the same rule except E >= 0: it is never liquidated, so a fund whose
///                  equity is below zero (its inventory moved against it) can still close it, at no worse than the
///                  oracle price (or the mark), each close raising its E - MM.
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
///         Funding. Each market keeps two indices, one per side, in nano-USD per unit of size (int64: a position's
///         funding over its life stays within +-9.2e9 USD per unit). A position stores its side's index when it is
///         settled (every fill or liquidation of it); its accrued funding is floor(-size * (index - stored) / 1e9)
///         USD 1e18 (a payer pays the wei a receiver does not get), part of equity in every evaluation, realised into
///         the settlement balance at the next settlement. The indices advance lazily, at every touch of the market
///         and in every view, by rate * dt * price (the part below one nano-USD is carried, so nothing is lost to
///         rounding); both move by the same amount, so what longs pay equals what shorts receive.
///           The rate (per second, longs pay when positive) is premium * w / (w + depth) / period + interest, clamped
///         to +-min(maxRate, clamp * riskWeight of the asset) per hour (the FUNDING word). The premium is the
///         fee-weighted mean of the fills' premiums (fill price - oracle) / oracle, each capped at +-premiumCap; w is
///         the fee mass behind it, decayed by 1 / (1 + x + x^2/2) with x = elapsed / window; depth = premiumDepth *
///         the market's open-interest cap (its MARKET word) * oracle price. Over an interval the rate at its end applies (the weight only decays in
///         between, so it is the lowest rate of the interval).
///           Why fees and depth. A venue's fills are signed by the two parties, so one owner can fill itself at any
///         price in the band: a premium of notional-weighted fills could be set for the price of gas. Weighing by the
///         fees paid (which go to the insurance fund) makes moving the premium cost money: fees F move the premium by
///         at most 2 * premiumCap * F / depth for a time that integrates to pi/2 * window, which earns a position of
///         notional Q at most Q * 2 * premiumCap * F / depth * pi/2 * window / period. With Q at most the open
///         interest cap's notional, RiskParameters' bound depth * period >= 6.4 * premiumCap * window makes that less
///         than F: moving the rate never pays (docs/SECURITY.md, "Funding manipulation"). Weights follow dYdX v4
///         (premium sampled over a window, paid over a period, clamped by margin rates), Binance (premium index plus
///         interest, clamped) and Drift v2 (a cumulative index per market, with its own index per side so losses can
///         be socialised on one side).
///
///         Deleveraging. When a write-off leaves a loss after the fund's settlement balance, the loss goes first to
///         the opposite side of every market in which the account had a position liquidated since it last traded
///         (its longs liquidated: the shorts pay; its shorts: the longs), split in proportion to those sides'
///         notional (open interest * oracle price; in source order, each side's part is its share of what no earlier
///         side was assigned, rounded down, so the last side's is the remainder and the parts add up to the loss),
///         each side charged at most adlShare * riskWeight * its notional (that much of its maintenance margin);
///         what a side at that cap cannot take is split again over the sides with room, until the loss is assigned
///         or every side is at its cap. A side is charged by moving its index, so every position on it
///         pays in proportion to its size, whoever they are and whenever they next settle; nobody on the bankrupt
///         side and nobody without a position in that market pays. What no side can bear (or when a market has no
///         valid price) goes on to the write-off rule below. `Deleveraged` is emitted per side charged. On an asset
///         where the account holds options, the side is the account's net direction there before the liquidation
///         (the sign of its weighted sensitivity WS_a: options, perpetuals and collateral together; a net long
///         counts as a long liquidated), for every position of the asset liquidated, and an option position
///         liquidated marks every perpetual market of its asset on that side (none when WS_a is 0): the perpetual
///         side that gained with the account's loss pays; the option series' own holders are not charged. The
///         fund's cover is its settlement balance less what its short options owe at the mark
///         (IOptionMarkets.shortLiability).
///
///         Assumptions on tokens: standard ERC20 behaviour or a subset (missing return values and fees on transfer
///         are handled: deposits are credited by balance difference). Rebasing tokens are not supported as collateral.
///         Tokens with hooks cannot re-enter (every entry point that moves tokens, balances or positions is
///         non-reentrant).
interface ICrossMarginVault is IVaultTypes {
    // ------------------------------------------------------------------ deployment
    /// @notice The contract that runs every function not in the vault's own code (listing, admin, most views), by
    ///         DELEGATECALL from the vault's fallback: one storage, one address; created by the vault's constructor.
    function extension() external view returns (address);
    function riskParams() external view returns (IRiskParameters);
    function oracle() external view returns (IOracleRouter);
    function settlementToken() external view returns (IERC20);
    /// @return 10^(18 - settlement token decimals): token units -> USD 1e18.
    function settlementScale() external view returns (uint256);
    function operators(address owner, address operator) external view returns (bool);
    function fundOperators(address operator) external view returns (bool);
    function venues(address venue) external view returns (bool);

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
    /// @notice Venue: `buyer` buys `size` (base 1e18) of the option series in `slot` from `seller` at the premium
    ///         `price` per unit (USD 1e18): the buyer pays ceil(size * price), the seller receives floor(size * price)
    ///         (the wei between goes to the fund), each pays its fee to the fund. Reverts unless the series is live,
    ///         the premium is within the OPTION word's band of the model mark (IOptionMarkets), caps and the series
    ///         limit hold, and each side ends at or above IM — or only reduced its position, at a premium no worse
    ///         for it than the mark, raising E - MM and keeping E >= 0 (the fund: any E), or ends with no perpetual, no collateral
    ///         token, no short option and a settlement balance >= 0 (it can never owe anything: no margin check). A
    ///         side whose position grew and is checked needs a fresh volatility (`VolatilityUnavailable` otherwise).
    function settleOptionTrade(
        uint256 buyer,
        uint256 seller,
        uint256 slot,
        uint256 size,
        uint256 price,
        uint256 buyerFee,
        uint256 sellerFee
    ) external;
    /// @notice Anyone: turn `account`'s positions in the fixed series `slots` into cash in its settlement balance
    ///         (floor(size * payoff) each: a long is paid, a short pays).
    function settleExpired(uint256 account, uint256[] calldata slots) external;
    /// @notice Admin, once: the option registry.
    function setOptionMarkets(IOptionMarkets markets) external;
    function optionMarkets() external view returns (IOptionMarkets);
    /// @return The option series slots `account` holds (bit i: slot i).
    function optionsOf(uint256 account) external view returns (uint256);
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
    /// @notice Funding and deleveraging charges collected from positions of `market` minus what was paid out (USD
    ///         1e18). Minus the accrued funding of its open positions it is the rounding dust, never negative.
    function fundingBalance(uint256 market) external view returns (int256);
    /// @notice The funding state of `market` advanced to now (reverts on an invalid price of its asset).
    function marketFunding(uint256 market) external view returns (MarketFunding memory);
    /// @return accrued Funding accrued by the position since its last settlement (USD 1e18, + received).
    /// @return snapshot The index of its side it stored then.
    function fundingOf(uint256 account, uint256 market) external view returns (int256 accrued, int256 snapshot);
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
