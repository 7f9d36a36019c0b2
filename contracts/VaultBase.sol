// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IVaultTypes} from "./interfaces/ICrossMarginVault.sol";
import {IRiskParameters} from "./interfaces/IRiskParameters.sol";
import {IOracleRouter} from "./interfaces/IOracleRouter.sol";
import {PortfolioMargin} from "./libraries/PortfolioMargin.sol";
import {RiskConfig} from "./libraries/RiskConfig.sol";
import {Funding} from "./libraries/Funding.sol";
import {OptionMargin} from "./libraries/OptionMargin.sol";
import {IOptionMarkets} from "./interfaces/IOptionMarkets.sol";

/// @title VaultBase — the storage of the vault and the internal functions its two halves share.
/// @notice ICrossMarginVault is served by two contracts on one storage: `CrossMarginVault` (deposits, withdrawals,
///         trades, liquidation, margin views) and `VaultExtension` (listing, admin, the other views), which the
///         vault runs by DELEGATECALL from its fallback (the vault alone would exceed the 24,576-byte code limit).
///         Both inherit this contract and declare no storage of their own, so their layouts are the same.
abstract contract VaultBase is IVaultTypes, ReentrancyGuard {
    using SafeERC20 for IERC20;
    using SafeCast for int256;
    using SafeCast for uint256;
    using RiskConfig for uint256;

    uint256 internal constant BPS = 1e4;
    /// @dev The settlement index at deployment (USD 1e18 per 1e18 shares) and the lowest it may fall to: a loss that
    ///      would take it lower takes every claim, and the pool restarts (a new epoch).
    uint256 internal constant INDEX_ONE = 1e18;
    uint256 internal constant MIN_INDEX = 1e12;
    /// @dev `_pool` fields: index bits [56,116), total shares [116,236), epoch [236,256).
    uint256 internal constant SHARES_SHIFT = 116;
    uint256 internal constant EPOCH_SHIFT = 236;
    uint256 internal constant MAX_EPOCH = (1 << 20) - 1;
    /// @dev A liquidation taking at least this share of what the rule allows earns the minimum keeper reward.
    uint256 internal constant FULL_TAKE_BPS = 9900;

    /// @dev One slot per account: settlement balance and the masks of what it holds. In storage a positive settlement
    ///      balance is a number of shares of the claims pool (USD = shares * index / 1e18) and a negative one is USD
    ///      owed; in memory (`_load` / `_store`) it is always USD 1e18. Shares stored in an earlier epoch of the pool
    ///      are worth 0 (a loss took every claim of that epoch).
    struct Account {
        int128 settlement; // slot 0, bytes 0-15
        uint16 markets; //    slot 0, bytes 16-17: bit m = holds a position in market m
        uint16 collaterals; // slot 0, bytes 18-19: bit j = holds collateral j
        uint32 epoch; //      slot 0, bytes 20-23: the pool's epoch when the balance was stored
        uint16 adlLong; //    slot 0, bytes 24-25: bit m = a long of market m was liquidated (deleveraging source)
        uint16 adlShort; //   slot 0, bytes 26-27: bit m = a short of market m was liquidated
        uint32 options; //    slot 0, bytes 28-31: bit i = holds a position in option series slot i (OptionMarkets)
    }

    /// @dev One slot per (account, market).
    struct Position {
        int96 size; //         base units 1e18, + long
        int96 openNotional; // USD 1e18 cost basis
        int64 funding; //      the index of its side at its last settlement (Funding: nano-USD per unit)
    }

    /// @dev One slot per market: open interest (sum of long sizes) and the funding balance (funding and deleveraging
    ///      charges collected from positions minus what was paid to positions and to bankrupt accounts).
    struct Book {
        uint128 openInterest;
        int128 fundingBalance;
    }

    /// @dev What a margin evaluation needs, loaded once per transaction.
    struct Ctx {
        uint256 layout; // the listing word (`_layout`), as published in `_snapshot`
        uint256 funding; // the FUNDING word, as published in `_snapshot`
        uint256[8] prices;
        IRiskParameters.MarginConfig cfg;
        bool strict; // a risk-adding action: option volatilities must be fresh
        uint256 directions; // the last evaluation's net direction on assets with options: bit a WS_a > 0, 8 + a < 0
    }

    IRiskParameters public immutable riskParams;
    IOracleRouter public immutable oracle;
    IERC20 public immutable settlementToken;
    /// @dev 10^(18 - settlement token decimals): token units -> USD 1e18.
    uint256 public immutable settlementScale;

    /// @dev The listing, one word: bits [0,8) number of markets, [8,16) number of collaterals, [16+4m, 20+4m) asset
    ///      of market m, [80+4j, 84+4j) asset of collateral j, [144+5j, 149+5j) decimals of collateral j.
    // slither-disable-start uninitialized-state (one storage run by two codes: what the vault writes the extension
    // reads, and the reverse, through the vault's DELEGATECALL; Slither looks at each contract alone)
    uint256 internal _layout;
    address[16] internal _collateralTokens;
    mapping(address token => uint256) internal _collateralIdPlusOne;
    /// @dev One word per account (`_accountOf` / `_store`): the fields of `Account` from the low bits up.
    mapping(uint256 account => uint256) internal _accounts;
    /// @dev One word per (account, market) (`_positionOf` / `_setPosition`): size [0,96), openNotional [96,192),
    ///      funding [192,256), as signed fields.
    mapping(uint256 account => mapping(uint256 market => uint256)) internal _positions;
    /// @dev Collateral balances in token units, two uint128 per slot (ids 2i and 2i+1 share slot i).
    mapping(uint256 account => uint128[16]) internal _collateral;
    mapping(uint256 market => Book) internal _books;
    /// @dev One slot per market: its funding state (`Funding.pack`).
    mapping(uint256 market => uint256) internal _marketStates;
    mapping(address owner => mapping(address operator => bool)) public operators;
    mapping(address operator => bool) public fundOperators;
    mapping(address venue => bool) public venues;
    // slither-disable-end uninitialized-state
    uint256 public badDebt;
    /// @dev One slot: bits [0,56) the CONTROL word of RiskParameters (pause flags, price band, loosening delay;
    ///      pushed on every change), [56,116) the settlement index (USD 1e18 per 1e18 shares: starts at 1e18, falls
    ///      only when a write-off is socialised), [116,236) the total shares of all positive settlement balances of
    ///      the current epoch, [236,256) the epoch (starts at 0; a loss that takes every claim starts the next one).
    uint256 internal _pool;
    /// @dev See ICrossMarginVault.
    address public marginConfigPointer;
    /// @dev What every margin evaluation reads, in one cold EXTCODECOPY and no SLOAD but this one: a data contract
    ///      whose code is the code of `marginConfigPointer` (a STOP byte, the 12 margin words, the LIQUIDATION,
    ///      DISCOUNT and FUNDING words, the 16 MARKET words, the ADDON and DEPTH words, the OPTION word: 1,089 bytes)
    ///      followed by the address of `optionMarkets` and the listing word `_layout`. Re-created whenever any of
    ///      them changes.
    address internal _snapshot;
    /// @notice The option registry (zero: options not enabled); see IOptionMarkets. Margin checks and option fills
    ///         read it from `_snapshot`.
    // slither-disable-next-line uninitialized-state (set once by setOptionMarkets, run by the vault's DELEGATECALL)
    IOptionMarkets public optionMarkets;

    // ================================================================ guards
    function _requireAdmin() internal view {
        if (!riskParams.hasRole(0x00, msg.sender)) revert NotAdmin(msg.sender);
    }

    function _requireAuthorized(uint256 account) internal view {
        if (!_isAuthorized(account, msg.sender)) revert Unauthorized(msg.sender, account);
    }

    function _requireInitial(uint256 account, Account memory acc, Ctx memory ctx) internal view {
        ctx.strict = true;
        (int256 equity,, uint256 initial,) = _evaluate(account, acc, ctx, 0);
        if (equity < int256(initial)) revert InsufficientMargin(account, equity, initial);
    }

    // ================================================================ funding
    /// @dev The funding state of `market` advanced to now (not stored) and the rate applied; `price` is the oracle
    ///      price of its asset `asset`.
    function _marketNow(uint256 market, uint256 price, uint256 asset, Ctx memory ctx)
        internal
        view
        returns (Funding.Market memory fm, int256 rate)
    {
        fm = Funding.unpack(_marketStates[market]);
        // slither-disable-next-line incorrect-equality (advanced this second already: nothing to add)
        if (fm.updatedAt == block.timestamp) return (fm, 0);
        // the depth (from the open-interest cap) matters only with a premium
        uint256 cap = fm.weight != 0 && fm.premium != 0 ? _marketWord(market).maxOpenInterest() : 0;
        rate = Funding.advance(fm, block.timestamp, ctx.funding, cap, price, ctx.cfg.global.riskWeight(asset));
    }

    /// @dev The funding the position with word `w` (`_positionOf`) in `market` has accrued by now (a view: nothing
    ///      stored). One storage read when the market's indices have not moved since it was stored
    ///      (`Funding.still`), the whole advance otherwise; nothing more when the index is the one stored.
    function _accruedNow(uint256 market, uint256 w, uint256 price, uint256 asset, Ctx memory ctx)
        internal
        view
        returns (int256)
    {
        (int256 size, int256 snapshot) = (int96(uint96(w)), int64(uint64(w >> 192)));
        uint256 packed = _marketStates[market];
        int256 index = Funding.storedIndex(packed, size);
        if (!Funding.still(packed, ctx.funding, block.timestamp)) {
            (Funding.Market memory fm,) = _marketNow(market, price, asset, ctx);
            index = size > 0 ? fm.longIndex : fm.shortIndex;
        }
        return Funding.accruedAt(size, snapshot, index);
    }

    function _storeMarket(uint256 market, Funding.Market memory fm, int256 rate) internal {
        _marketStates[market] = Funding.pack(fm);
        emit FundingUpdated(market, fm.longIndex, fm.shortIndex, fm.premium, fm.weight, fm.carry, fm.updatedAt, rate);
    }

    function _creditFund(int256 amount) internal {
        uint256 fund = _fundAccount();
        Account memory f = _load(fund);
        f.settlement = (int256(f.settlement) + amount).toInt128();
        _store(fund, f);
    }

    // ================================================================ settlement balances and the claims pool
    /// @dev The account with its settlement balance in USD 1e18.
    function _load(uint256 account) internal view returns (Account memory acc) {
        acc = _accountOf(account);
        if (acc.settlement > 0) {
            uint256 pool = _pool;
            // slither-disable-next-line incorrect-equality (shares of another epoch are void: an identity check)
            acc.settlement = acc.epoch == pool >> EPOCH_SHIFT
                ? _usdOf(uint256(int256(acc.settlement)), _index(pool)).toInt256().toInt128()
                : int128(0);
        }
    }

    /// @dev Stores an account whose settlement balance is in USD: a positive balance becomes shares (rounded down,
    ///      against the account; an unchanged balance keeps its shares), and the pool's total follows.
    function _store(uint256 account, Account memory acc) internal {
        Account memory old = _accountOf(account);
        uint256 pool = _pool;
        uint256 epoch = pool >> EPOCH_SHIFT;
        // slither-disable-next-line incorrect-equality (shares of another epoch are void: an identity check)
        int256 stored = old.epoch == epoch ? int256(old.settlement) : int256(0);
        int256 next = acc.settlement;
        if (next > 0) {
            uint256 index = _index(pool);
            if (stored <= 0 || _usdOf(uint256(stored), index) != uint256(next)) {
                next = _sharesOf(uint256(next), index).toInt256();
            } else {
                next = stored;
            }
        }
        uint256 oldShares = stored > 0 ? uint256(stored) : 0;
        uint256 newShares = next > 0 ? uint256(next) : 0;
        if (newShares != oldShares) {
            uint256 total = _totalShares(pool) + newShares - oldShares;
            if (total >> 120 != 0) revert ValueOverflow(int256(total));
            _pool = (pool & ~(uint256(type(uint120).max) << SHARES_SHIFT)) | (total << SHARES_SHIFT);
        }
        _accounts[account] = uint256(uint128(next.toInt128())) | (uint256(acc.markets) << 128)
            | (uint256(acc.collaterals) << 144) | (epoch << 160) | (uint256(acc.adlLong) << 192)
            | (uint256(acc.adlShort) << 208) | (uint256(acc.options) << 224);
        if (next != stored) emit SettlementUpdated(account, next);
    }

    function _positionOf(uint256 account, uint256 market) internal view returns (Position memory) {
        uint256 w = _positions[account][market];
        return Position(int96(uint96(w)), int96(uint96(w >> 96)), int64(uint64(w >> 192)));
    }

    function _setPosition(uint256 account, uint256 market, Position memory pos) internal {
        _positions[account][market] = _positionWord(pos.size, pos.openNotional, pos.funding);
    }

    /// @dev The word of a position (`_positionOf`); reverts if a field leaves its type.
    function _positionWord(int256 size, int256 openNotional, int256 funding) internal pure returns (uint256) {
        return uint256(uint96(size.toInt96())) | (uint256(uint96(openNotional.toInt96())) << 96)
            | (uint256(uint64(funding.toInt64())) << 192);
    }

    /// @dev The account as stored (settlement in shares when positive), from its word in one read.
    function _accountOf(uint256 account) internal view returns (Account memory) {
        uint256 w = _accounts[account];
        return Account(
            int128(uint128(w)),
            uint16(w >> 128),
            uint16(w >> 144),
            uint32(w >> 160),
            uint16(w >> 192),
            uint16(w >> 208),
            uint32(w >> 224)
        );
    }

    function _index(uint256 pool) internal pure returns (uint256) {
        return (pool >> 56) & ((1 << 60) - 1);
    }

    function _totalShares(uint256 pool) internal pure returns (uint256) {
        return (pool >> SHARES_SHIFT) & type(uint120).max;
    }

    /// @dev floor(shares * index / 1e18).
    function _usdOf(uint256 shares, uint256 index) internal pure returns (uint256) {
        // slither-disable-next-line incorrect-equality (a shortcut: both branches give the same result at 1e18)
        return index == INDEX_ONE ? shares : Math.mulDiv(shares, index, INDEX_ONE);
    }

    /// @dev floor(usd * 1e18 / index).
    function _sharesOf(uint256 usd, uint256 index) internal pure returns (uint256) {
        // slither-disable-next-line incorrect-equality (a shortcut: both branches give the same result at 1e18)
        return index == INDEX_ONE ? usd : Math.mulDiv(usd, INDEX_ONE, index);
    }

    // ================================================================ margin
    /// @dev The context of a margin evaluation of `acc`: the listing, the margin words, the prices of its assets.
    function _ctxFor(Account memory acc) internal view returns (Ctx memory ctx) {
        ctx = _loadCtx();
        (uint256 positionAssets, uint256 collateralAssets) = _assetMasks(acc, ctx.layout);
        _readPrices(positionAssets, collateralAssets, ctx);
    }

    /// @dev The listing and the margin words from `_snapshot`; prices are left zero.
    function _loadCtx() internal view returns (Ctx memory ctx) {
        address snapshot = _snapshot;
        RiskConfig.readMarginConfig(snapshot, ctx.cfg);
        assembly ("memory-safe") {
            extcodecopy(snapshot, ctx, 1121, 32) // the listing word: after the STOP byte, 34 words and the registry
            extcodecopy(snapshot, add(ctx, 0x20), 449, 32) // the FUNDING word
        }
    }

    /// @dev `ctx.prices = oracle.pricesFor(required, optional)` (nothing when both masks are empty): positions need a
    ///      valid price, collateral of an asset with none counts at 0. The returned data is copied straight into
    ///      `ctx.prices` (a uint256[8] is ABI-encoded as its eight words): no decoding pass, no second array.
    function _readPrices(uint256 required, uint256 optional, Ctx memory ctx) internal view {
        // slither-disable-next-line incorrect-equality (empty bit masks: nothing to price)
        if (required | optional == 0) return;
        uint256[8] memory out = ctx.prices;
        address router = address(oracle);
        bytes4 selector = IOracleRouter.pricesFor.selector;
        assembly ("memory-safe") {
            let m := mload(0x40) // scratch at the free memory pointer, not kept
            mstore(m, selector)
            mstore(add(m, 4), required)
            mstore(add(m, 0x24), optional)
            if iszero(staticcall(gas(), router, m, 0x44, out, 0x100)) {
                returndatacopy(0, 0, returndatasize())
                revert(0, returndatasize())
            }
            if iszero(eq(returndatasize(), 0x100)) { revert(0, 0) }
        }
    }

    /// @dev The MARKET word of `market` (< 16), from `_snapshot` (no call to RiskParameters).
    function _marketWord(uint256 market) internal view returns (uint256 word) {
        address snapshot = _snapshot;
        assembly ("memory-safe") {
            extcodecopy(snapshot, 0, add(481, mul(32, market)), 32) // scratch space
            word := mload(0)
        }
    }

    /// @dev The option registry and the OPTION word, from `_snapshot` (one EXTCODECOPY, warm once the context is
    ///      loaded).
    function _optionConfig() internal view returns (IOptionMarkets om, uint256 options) {
        address snapshot = _snapshot;
        assembly ("memory-safe") {
            extcodecopy(snapshot, 0, 1057, 64) // scratch space: the OPTION word, then the registry
            options := mload(0)
            om := mload(0x20)
        }
    }

    /// @dev Re-creates `_snapshot` from the code of `marginConfigPointer`, `optionMarkets` and the listing word
    ///      `layout`.
    function _publishSnapshot(uint256 layout) internal {
        address source = marginConfigPointer;
        address om = address(optionMarkets);
        address snapshot;
        assembly ("memory-safe") {
            let m := mload(0x40) // scratch at the free memory pointer, not kept
            // init code, 12 bytes: PUSH2 1153 (runtime size), DUP1, PUSH1 12, PUSH1 0, CODECOPY, PUSH1 0, RETURN;
            // then the runtime: the source's STOP byte, 12 margin words, the LIQUIDATION, DISCOUNT and FUNDING words,
            // 16 MARKET words, the ADDON and DEPTH words, the OPTION word (1,088 bytes), the registry and the listing
            mstore(m, shl(160, 0x61048180600c6000396000f3))
            extcodecopy(source, add(m, 12), 0, 1089)
            mstore(add(m, 1101), om)
            mstore(add(m, 1133), layout)
            snapshot := create(0, m, 1165)
        }
        if (snapshot == address(0)) revert(); // creation ran out of gas (it cannot fail otherwise)
        _snapshot = snapshot;
    }

    /// @dev Equity, maintenance and initial margin, and total gross (USD 1e18) of an account held in memory.
    ///      `fillVol`: what an option fill read in this transaction (IOptionMarkets.FillResult: its series' asset
    ///      and fresh volatility, asset | vol << 8), passed on to the option part instead of read again
    ///      (IOptionMarkets.accountRisk); 0 everywhere else.
    function _evaluate(uint256 account, Account memory acc, Ctx memory ctx, uint256 fillVol)
        internal
        view
        returns (int256 equity, uint256 maintenance, uint256 initial, uint256 grossTotal)
    {
        int256[8] memory delta;
        uint256[8] memory gross;
        OptionMargin.Risk memory opt;
        (equity, grossTotal,) = _exposure(account, acc, ctx, delta, gross);
        if (acc.options != 0) {
            _optionExposure(account, acc, ctx, delta, opt, fillVol);
            equity += opt.value;
            grossTotal += opt.notional;
            uint256 directions;
            for (uint256 left = opt.assets; left != 0; left &= left - 1) {
                uint256 a = _lowestBit(left);
                if (opt.ws[a] > 0) directions |= 1 << a;
                else if (opt.ws[a] < 0) directions |= 1 << (8 + a);
            }
            ctx.directions = directions;
        }
        (maintenance, initial) =
            PortfolioMargin.requirements(delta, gross, _concentration(account, acc, ctx), opt, ctx.cfg);
    }

    /// @dev Fills `delta` and `gross` per asset; returns equity (accrued funding included, options not), the sum of
    ///      `gross` and the accrued funding of its positions.
    function _exposure(
        uint256 account,
        Account memory acc,
        Ctx memory ctx,
        int256[8] memory delta,
        uint256[8] memory gross
    ) internal view returns (int256 equity, uint256 grossTotal, int256 funding) {
        for (uint256 m = acc.markets; m != 0; m &= m - 1) {
            uint256 market = _lowestBit(m);
            uint256 w = _positions[account][market]; // `_positionOf`, decoded in place
            uint256 asset = _marketAssetOf(ctx.layout, market);
            uint256 price = ctx.prices[asset];
            funding += _accruedNow(market, w, price, asset, ctx);
            int256 value = PortfolioMargin.positionValueDown(int96(uint96(w)), price);
            uint256 absValue = PortfolioMargin.abs(value);
            equity += value - int96(uint96(w >> 96));
            delta[asset] += value;
            gross[asset] += absValue;
            grossTotal += absValue;
        }
        uint256 haircuts = ctx.cfg.haircuts;
        for (uint256 c = acc.collaterals; c != 0; c &= c - 1) {
            uint256 id = _lowestBit(c);
            uint256 asset = _collateralAssetOf(ctx.layout, id);
            uint256 value = PortfolioMargin.tokenValueDown(
                _collateral[account][id], ctx.prices[asset], _collateralDecimalsOf(ctx.layout, id)
            );
            equity += int256(PortfolioMargin.haircutDown(value, haircuts.u16(id)));
            delta[asset] += int256(value);
            gross[asset] += value;
            grossTotal += value;
        }
        equity += acc.settlement + funding;
    }

    /// @dev The option part of an account holding options (IOptionMarkets.accountRisk), into `opt`: the registry and
    ///      the OPTION word from `_snapshot` (passed on, OptionMarkets does not read it again), the volatility of
    ///      `fillVol` (0: none). The call is encoded and its answer (a static struct: 29 words) copied into `opt`'s
    ///      words and arrays in assembly, with no ABI encoder or decoder pass (30 words in, 29 out).
    function _optionExposure(
        uint256 account,
        Account memory acc,
        Ctx memory ctx,
        int256[8] memory delta,
        OptionMargin.Risk memory opt,
        uint256 fillVol
    ) internal view {
        (IOptionMarkets target, uint256 options) = _optionConfig();
        uint256[8] memory prices = ctx.prices;
        IRiskParameters.MarginConfig memory cfg = ctx.cfg;
        uint256[8] memory stress = cfg.stress;
        {
            (uint256 mask, uint256 global, bool strict) = (acc.options, cfg.global, ctx.strict);
            bytes4 selector = IOptionMarkets.accountRisk.selector;
            assembly ("memory-safe") {
                // accountRisk(account, mask, prices, delta, global, stress, strict, fillVol, options) at the free
                // memory pointer (scratch, not kept)
                let m := mload(0x40)
                mstore(m, selector)
                mstore(add(m, 0x04), account)
                mstore(add(m, 0x24), mask)
                mstore(add(m, 0x244), global)
                mstore(add(m, 0x364), strict)
            }
        }
        assembly ("memory-safe") {
            let m := mload(0x40)
            // the three arrays through the identity precompile (cheaper than a loop)
            let copied := staticcall(gas(), 4, prices, 0x100, add(m, 0x44), 0x100)
            copied := and(copied, staticcall(gas(), 4, delta, 0x100, add(m, 0x144), 0x100))
            copied := and(copied, staticcall(gas(), 4, stress, 0x100, add(m, 0x264), 0x100))
            if iszero(copied) { revert(0, 0) }
            mstore(add(m, 0x384), fillVol)
            mstore(add(m, 0x3a4), options)
            if iszero(staticcall(gas(), target, m, 0x3c4, 0, 0)) {
                returndatacopy(0, 0, returndatasize())
                revert(0, returndatasize())
            }
            if iszero(eq(returndatasize(), 0x3a0)) { revert(0, 0) }
            // value, notional | ws[8] | curvature, shortMinimum | stress[16] | assets
            returndatacopy(opt, 0, 0x40)
            returndatacopy(mload(add(opt, 0x40)), 0x40, 0x100)
            returndatacopy(add(opt, 0x60), 0x140, 0x40)
            returndatacopy(mload(add(opt, 0xa0)), 0x180, 0x200)
            returndatacopy(add(opt, 0xc0), 0x380, 0x20)
        }
    }

    /// @dev The concentration charge of the account's positions: sum over them of N * sqrt(N / L) with N = |value|
    ///      and L its market's liquidation depth (PortfolioMargin.concentrationCharge); 0 without any depth set.
    ///      A loop of its own (warm slots, prices in memory) so that accounts in markets without a depth pay nothing.
    function _concentration(uint256 account, Account memory acc, Ctx memory ctx)
        internal
        view
        returns (uint256 charge)
    {
        uint256 depths = ctx.cfg.depths;
        // slither-disable-next-line incorrect-equality (an all-zero DEPTH word: no market has a depth set)
        if (depths == 0) return 0;
        for (uint256 m = acc.markets; m != 0; m &= m - 1) {
            uint256 market = _lowestBit(m);
            int256 value = PortfolioMargin.positionValueDown(
                int96(uint96(_positions[account][market])), ctx.prices[_marketAssetOf(ctx.layout, market)]
            );
            charge += PortfolioMargin.concentrationCharge(PortfolioMargin.abs(value), depths.depth(market));
        }
    }

    // ================================================================ listing and layout helpers
    /// @dev Bit masks of the assets of the account's positions and of its collateral (other than those assets).
    function _assetMasks(Account memory acc, uint256 layout)
        internal
        pure
        returns (uint256 positionAssets, uint256 collateralAssets)
    {
        for (uint256 m = acc.markets; m != 0; m &= m - 1) {
            positionAssets |= 1 << _marketAssetOf(layout, _lowestBit(m));
        }
        for (uint256 c = acc.collaterals; c != 0; c &= c - 1) {
            collateralAssets |= 1 << _collateralAssetOf(layout, _lowestBit(c));
        }
        collateralAssets &= ~positionAssets;
    }

    /// @dev Index of the lowest set bit of a non-zero x < 2^16. x & -x isolates that bit, 2^i; as 2 is a primitive
    ///      root modulo 19, 2^i mod 19 differs for every i < 16 and indexes a table of i (byte 2^i mod 19 holds i).
    function _lowestBit(uint256 x) internal pure returns (uint256 i) {
        assembly ("memory-safe") {
            // slither-disable-next-line weak-prng (a table lookup by 2^i mod 19, not randomness)
            i := byte(mod(and(x, sub(0, x)), 19), 0x0000010d02000e060308000c0f05070b040a0900000000000000000000000000)
        }
    }

    /// @dev Index of the lowest set bit of a non-zero x < 2^32 (two 16-bit halves).
    function _lowestBit32(uint256 x) internal pure returns (uint256) {
        return x & 0xffff != 0 ? _lowestBit(x & 0xffff) : 16 + _lowestBit(x >> 16);
    }

    function _numMarkets(uint256 layout) internal pure returns (uint256) {
        return layout & 0xff;
    }

    function _numCollaterals(uint256 layout) internal pure returns (uint256) {
        return (layout >> 8) & 0xff;
    }

    function _marketAssetOf(uint256 layout, uint256 market) internal pure returns (uint256) {
        unchecked {
            return (layout >> (16 + 4 * market)) & 0xf; // index < 16
        }
    }

    function _collateralAssetOf(uint256 layout, uint256 id) internal pure returns (uint256) {
        unchecked {
            return (layout >> (80 + 4 * id)) & 0xf; // index < 16
        }
    }

    function _collateralDecimalsOf(uint256 layout, uint256 id) internal pure returns (uint256) {
        unchecked {
            return (layout >> (144 + 5 * id)) & 0x1f; // index < 16
        }
    }

    function _collateralId(address token) internal view returns (uint256) {
        uint256 idPlusOne = _collateralIdPlusOne[token];
        if (idPlusOne == 0) revert UnknownToken(token);
        return idPlusOne - 1;
    }

    constructor(IRiskParameters riskParams_, IOracleRouter oracle_, IERC20 settlementToken_) {
        riskParams = riskParams_;
        oracle = oracle_;
        settlementToken = settlementToken_;
        uint8 dec = IERC20Metadata(address(settlementToken_)).decimals();
        if (dec > 18) revert UnknownToken(address(settlementToken_));
        settlementScale = 10 ** (18 - dec);
    }

    // ================================================================ identities and limits
    function _accountId(address owner, uint96 sub) internal pure returns (uint256) {
        return (uint256(uint160(owner)) << 96) | sub;
    }

    /// @dev The insurance fund: subaccount 0 of the vault (`address(this)` is the vault in the extension too).
    function _fundAccount() internal view returns (uint256) {
        return _accountId(address(this), 0);
    }

    function _isAuthorized(uint256 account, address caller) internal view returns (bool) {
        address owner = address(uint160(account >> 96));
        if (owner == address(this)) return fundOperators[caller];
        return caller == owner || operators[owner][caller];
    }
}
