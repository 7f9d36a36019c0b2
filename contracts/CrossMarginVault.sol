// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {ICrossMarginVault} from "./interfaces/ICrossMarginVault.sol";
import {IRiskParameters} from "./interfaces/IRiskParameters.sol";
import {IOracleRouter} from "./interfaces/IOracleRouter.sol";
import {PortfolioMargin} from "./libraries/PortfolioMargin.sol";
import {RiskConfig} from "./libraries/RiskConfig.sol";

/// @title CrossMarginVault
/// @notice See ICrossMarginVault for the specification.
contract CrossMarginVault is ICrossMarginVault, ReentrancyGuard {
    using SafeERC20 for IERC20;
    using SafeCast for int256;
    using SafeCast for uint256;
    using RiskConfig for uint256;

    uint256 private constant BPS = 1e4;

    /// @dev One slot per account: settlement balance (USD 1e18) and the masks of what it holds.
    struct Account {
        int128 settlement; // slot 0, bytes 0-15
        uint16 markets; //    slot 0, bytes 16-17: bit m = holds a position in market m
        uint16 collaterals; // slot 0, bytes 18-19: bit j = holds collateral j
    }

    /// @dev One slot per (account, market).
    struct Position {
        int128 size; //         base units 1e18, + long
        int128 openNotional; // USD 1e18 cost basis
    }

    /// @dev What a margin evaluation needs, loaded once per transaction.
    struct Ctx {
        uint256 layout; // the listing word (`_layout`), as published in `_snapshot`
        uint256[8] prices;
        IRiskParameters.MarginConfig cfg;
    }

    IRiskParameters public immutable riskParams;
    IOracleRouter public immutable oracle;
    IERC20 public immutable settlementToken;
    /// @dev 10^(18 - settlement token decimals): token units -> USD 1e18.
    uint256 public immutable settlementScale;

    /// @dev The listing, one word: bits [0,8) number of markets, [8,16) number of collaterals, [16+4m, 20+4m) asset
    ///      of market m, [80+4j, 84+4j) asset of collateral j, [144+5j, 149+5j) decimals of collateral j.
    uint256 internal _layout;
    address[16] internal _collateralTokens;
    mapping(address token => uint256) internal _collateralIdPlusOne;
    mapping(uint256 account => Account) internal _accounts;
    mapping(uint256 account => mapping(uint256 market => Position)) internal _positions;
    /// @dev Collateral balances in token units, two uint128 per slot (ids 2i and 2i+1 share slot i).
    mapping(uint256 account => uint128[16]) internal _collateral;
    mapping(uint256 market => uint256) public openInterest;
    mapping(address owner => mapping(address operator => bool)) public operators;
    mapping(address operator => bool) public fundOperators;
    mapping(address venue => bool) public venues;
    uint256 public badDebt;
    /// @inheritdoc ICrossMarginVault
    address public marginConfigPointer;
    /// @dev What every margin evaluation reads, in one cold EXTCODECOPY and no SLOAD but this one: a data contract
    ///      whose code is the code of `marginConfigPointer` (a STOP byte, then the 12 margin words) followed by the
    ///      listing word `_layout`. Re-created whenever either changes (`_publishSnapshot`).
    address internal _snapshot;

    constructor(IRiskParameters riskParams_, IOracleRouter oracle_, IERC20 settlementToken_) {
        riskParams = riskParams_;
        marginConfigPointer = riskParams_.marginConfigPointer();
        _publishSnapshot(0);
        oracle = oracle_;
        settlementToken = settlementToken_;
        uint8 dec = IERC20Metadata(address(settlementToken_)).decimals();
        if (dec > 18) revert UnknownToken(address(settlementToken_));
        settlementScale = 10 ** (18 - dec);
    }

    // ================================================================ guards
    function _requireAdmin() internal view {
        if (!riskParams.hasRole(0x00, msg.sender)) revert NotAdmin(msg.sender);
    }

    function _requireAuthorized(uint256 account) internal view {
        if (!isAuthorized(account, msg.sender)) revert Unauthorized(msg.sender, account);
    }

    function _requireInitial(uint256 account, Account memory acc, Ctx memory ctx) internal view {
        (int256 equity,, uint256 initial,) = _evaluate(account, acc, ctx);
        if (equity < int256(initial)) revert InsufficientMargin(account, equity, initial);
    }

    // ================================================================ accounts
    /// @inheritdoc ICrossMarginVault
    function accountId(address owner, uint96 sub) public pure returns (uint256) {
        return (uint256(uint160(owner)) << 96) | sub;
    }

    /// @inheritdoc ICrossMarginVault
    function fundAccount() public view returns (uint256) {
        return accountId(address(this), 0);
    }

    /// @inheritdoc ICrossMarginVault
    function setOperator(address operator, bool approved) external {
        operators[msg.sender][operator] = approved;
        emit OperatorSet(msg.sender, operator, approved);
    }

    /// @inheritdoc ICrossMarginVault
    function isAuthorized(uint256 account, address caller) public view returns (bool) {
        address owner = address(uint160(account >> 96));
        if (owner == address(this)) return fundOperators[caller];
        return caller == owner || operators[owner][caller];
    }

    // ================================================================ collateral
    /// @inheritdoc ICrossMarginVault
    function deposit(uint256 account, address token, uint256 amount) external nonReentrant returns (uint256 credited) {
        if (amount == 0) revert ZeroAmount();
        if (riskParams.control().paused(RiskConfig.PAUSE_DEPOSITS)) revert Paused(RiskConfig.PAUSE_DEPOSITS);
        bool isSettlement = token == address(settlementToken);
        uint256 id = isSettlement ? 0 : _collateralId(token);
        uint256 before = IERC20(token).balanceOf(address(this));
        // slither-disable-next-line reentrancy-balance (nonReentrant: a token hook can only add tokens; docs/SECURITY.md)
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        credited = IERC20(token).balanceOf(address(this)) - before;
        // slither-disable-next-line incorrect-equality (nothing arrived: not an attacker-steerable equality)
        if (credited == 0) revert ZeroAmount();
        Account memory acc = _accounts[account];
        if (isSettlement) {
            acc.settlement = (int256(acc.settlement) + (credited * settlementScale).toInt256()).toInt128();
            emit SettlementUpdated(account, acc.settlement);
        } else {
            uint256 balance = _collateral[account][id] + credited;
            _collateral[account][id] = balance.toUint128();
            acc.collaterals |= uint16(1 << id);
            emit CollateralUpdated(account, token, balance);
        }
        _accounts[account] = acc;
    }

    /// @inheritdoc ICrossMarginVault
    function withdraw(uint256 account, address token, uint256 amount, address to)
        external
        nonReentrant
        returns (uint256 paid)
    {
        _requireAuthorized(account);
        if (amount == 0) revert ZeroAmount();
        Account memory acc = _accounts[account];
        paid = amount;
        if (token == address(settlementToken)) {
            int256 value = (amount * settlementScale).toInt256();
            if (acc.settlement < value) {
                uint256 held = acc.settlement < 0 ? 0 : uint256(int256(acc.settlement)) / settlementScale;
                revert InsufficientBalance(account, token, held, amount);
            }
            acc.settlement = (int256(acc.settlement) - value).toInt128();
            emit SettlementUpdated(account, acc.settlement);
            uint256 debt = badDebt;
            if (debt != 0) {
                // Socialisation rule: pay in proportion to the cover, retire the shortfall from bad debt.
                uint256 held = settlementToken.balanceOf(address(this)) * settlementScale;
                paid = Math.mulDiv(amount, held, held + debt);
                uint256 shortfall = (amount - paid) * settlementScale;
                badDebt = debt - Math.min(debt, shortfall);
                emit BadDebtReduced(Math.min(debt, shortfall), badDebt);
            }
        } else {
            uint256 id = _collateralId(token);
            uint256 balance = _collateral[account][id];
            if (balance < amount) revert InsufficientBalance(account, token, balance, amount);
            balance -= amount;
            _collateral[account][id] = uint128(balance);
            if (balance == 0) acc.collaterals &= ~uint16(1 << id);
            emit CollateralUpdated(account, token, balance);
        }
        _accounts[account] = acc;
        _requireInitial(account, acc, _ctxFor(acc));
        IERC20(token).safeTransfer(to, paid);
    }

    // ================================================================ trading
    /// @dev The arguments of a trade, grouped to stay within the stack.
    struct Fill {
        uint256 buyer;
        uint256 seller;
        uint256 market;
        uint256 size;
        uint256 price;
        uint256 buyerFee;
        uint256 sellerFee;
    }

    /// @inheritdoc ICrossMarginVault
    function settleTrade(
        uint256 buyer,
        uint256 seller,
        uint256 market,
        uint256 size,
        uint256 price,
        uint256 buyerFee,
        uint256 sellerFee
    ) external nonReentrant {
        if (!venues[msg.sender]) revert NotVenue(msg.sender);
        if (buyer == seller) revert SelfTrade(buyer);
        if (size == 0) revert ZeroAmount();
        _settle(Fill(buyer, seller, market, size, price, buyerFee, sellerFee));
    }

    function _settle(Fill memory t) internal {
        (uint256 control, uint256 mword) = riskParams.tradeConfig(t.market);
        Ctx memory ctx = _tradeCtx(t.buyer, t.seller, t.market, t.price, control);
        (bool bUp, int256 oiB) = _tradeSide(t.buyer, t.market, t.size.toInt256(), t.price, t.buyerFee, mword);
        (bool sUp, int256 oiS) = _tradeSide(t.seller, t.market, -t.size.toInt256(), t.price, t.sellerFee, mword);
        if ((bUp || sUp) && control.paused(RiskConfig.PAUSE_TRADES)) revert Paused(RiskConfig.PAUSE_TRADES);
        _addOpenInterest(t.market, oiB + oiS, mword);
        uint256 fees = t.buyerFee + t.sellerFee;
        if (fees != 0) _creditFund(int256(fees));
        emit Trade(t.buyer, t.seller, t.market, t.size, t.price, fees);
        if (bUp) _requireInitial(t.buyer, _accounts[t.buyer], ctx);
        if (sUp) _requireInitial(t.seller, _accounts[t.seller], ctx);
    }

    /// @dev Loads prices for both accounts and the market, and checks the price band.
    function _tradeCtx(uint256 buyer, uint256 seller, uint256 market, uint256 price, uint256 control)
        internal
        view
        returns (Ctx memory ctx)
    {
        ctx = _loadCtx();
        uint256 layout = ctx.layout;
        if (market >= _numMarkets(layout)) revert UnknownMarket(market);
        uint256 asset = _marketAssetOf(layout, market);
        _readPrices(_assetMask(_accounts[buyer], layout) | _assetMask(_accounts[seller], layout) | (1 << asset), ctx);
        uint256 p = ctx.prices[asset];
        uint256 dist = price > p ? price - p : p - price;
        if (dist * BPS > p * control.priceBand()) revert PriceOutsideBand(market, price, p, control.priceBand());
    }

    /// @dev One side of a trade: position, realised P&L and fee into the account's settlement balance.
    function _tradeSide(uint256 account, uint256 market, int256 delta, uint256 price, uint256 fee, uint256 mword)
        internal
        returns (bool increased, int256 longChange)
    {
        Account memory acc = _accounts[account];
        (increased, longChange) = _fill(account, acc, market, delta, price, mword);
        acc.settlement = (int256(acc.settlement) - fee.toInt256()).toInt128();
        _accounts[account] = acc;
        emit SettlementUpdated(account, acc.settlement);
    }

    /// @dev Applies a fill of `delta` at `price` to a position; realised P&L goes to `acc.settlement` (in memory).
    ///      Returns whether the position grew (in size or by flipping) and the change in long open interest.
    function _fill(uint256 account, Account memory acc, uint256 market, int256 delta, uint256 price, uint256 mword)
        internal
        returns (bool increased, int256 longChange)
    {
        Position memory pos = _positions[account][market];
        int256 size = pos.size;
        int256 on = pos.openNotional;
        int256 newSize = size + delta;
        if (size == 0 || (size > 0) == (delta > 0)) {
            increased = true;
            on += PortfolioMargin.ceilDiv(delta * int256(price), 1e18); // cost basis rounds up (against the account)
        } else {
            int256 closed = PortfolioMargin.abs(delta) < PortfolioMargin.abs(size) ? delta : -size;
            int256 basisClosed = (on * closed) / -size; // share of the cost basis released
            int256 realised = PortfolioMargin.floorDiv(-closed * int256(price), 1e18) - basisClosed;
            acc.settlement = (int256(acc.settlement) + realised).toInt128();
            on -= basisClosed;
            if (closed != delta) {
                increased = true; // flipped: the remainder opens a new position
                on = PortfolioMargin.ceilDiv((delta - closed) * int256(price), 1e18);
            }
        }
        if (newSize == 0) {
            on = 0;
            acc.markets &= ~uint16(1 << market);
        } else {
            acc.markets |= uint16(1 << market);
            if (increased && PortfolioMargin.abs(newSize) > mword.maxPositionSize()) {
                revert PositionTooLarge(account, market, newSize, mword.maxPositionSize());
            }
        }
        _positions[account][market] = Position(newSize.toInt128(), on.toInt128());
        emit PositionUpdated(account, market, newSize, on);
        longChange = (newSize > 0 ? newSize : int256(0)) - (size > 0 ? size : int256(0));
    }

    function _addOpenInterest(uint256 market, int256 change, uint256 mword) internal {
        if (change == 0) return;
        uint256 oi = uint256(int256(openInterest[market]) + change);
        if (change > 0 && oi > mword.maxOpenInterest()) {
            revert OpenInterestTooLarge(market, oi, mword.maxOpenInterest());
        }
        openInterest[market] = oi;
    }

    function _creditFund(int256 amount) internal {
        uint256 fund = fundAccount();
        int128 balance = (int256(_accounts[fund].settlement) + amount).toInt128();
        _accounts[fund].settlement = balance;
        emit SettlementUpdated(fund, balance);
    }

    // ================================================================ liquidation
    /// @dev Working values of one liquidation (kept in memory to stay within the stack).
    struct Liq {
        int256 equity;
        uint256 maintenance;
        uint256 initial;
        uint256 gross;
        uint256 params; // LIQUIDATION word
        uint256 discounts; // DISCOUNT word
        uint256 taken;
        uint256 penalty;
        int256 surplusBefore;
        int256 surplusAfter;
    }

    /// @inheritdoc ICrossMarginVault
    function liquidate(uint256 account, LiquidationItem[] calldata items)
        external
        nonReentrant
        returns (uint256 reward)
    {
        if (account == fundAccount()) revert FundNotLiquidatable();
        Account memory acc = _accounts[account];
        Ctx memory ctx = _ctxFor(acc);
        Liq memory l;
        (l.equity, l.maintenance, l.initial, l.gross) = _evaluate(account, acc, ctx);
        if (l.equity >= int256(l.maintenance)) revert AccountHealthy(account, l.equity, l.maintenance);
        Account memory f = _accounts[fundAccount()];
        (l.params, l.discounts) = riskParams.liquidationConfig();

        l.taken = _takeAll(account, acc, f, items, ctx, l.discounts);
        // slither-disable-next-line incorrect-equality (emptiness checks on amounts and bit masks)
        if (l.taken == 0 && (acc.markets != 0 || acc.collaterals != 0)) revert LiquidationEmpty(account);
        uint256 allowed = maxTake(l.equity, l.maintenance, l.initial, l.gross, l.params);
        if (l.taken > allowed) revert LiquidationTooLarge(account, l.taken, allowed);
        l.penalty = Math.mulDiv(l.taken, l.params.penalty(), BPS, Math.Rounding.Ceil);
        acc.settlement = (int256(acc.settlement) - l.penalty.toInt256()).toInt128();
        f.settlement = (int256(f.settlement) + l.penalty.toInt256()).toInt128();

        l.surplusBefore = l.equity - int256(l.maintenance);
        l.surplusAfter = l.surplusBefore;
        if (l.taken != 0) {
            (int256 e1, uint256 m1,,) = _evaluate(account, acc, ctx);
            l.surplusAfter = e1 - int256(m1);
            if (l.surplusAfter <= l.surplusBefore) {
                revert LiquidationNotImproving(account, l.surplusBefore, l.surplusAfter);
            }
        }
        reward = _keeperReward(f, l.penalty, l.params);
        // slither-disable-next-line incorrect-equality (emptiness checks on bit masks)
        if (acc.markets == 0 && acc.collaterals == 0 && acc.settlement < 0) _writeOff(account, acc, f);
        uint256 keeperAccount = accountId(msg.sender, 0);
        if (keeperAccount == account) acc.settlement += int128(int256(reward));
        _accounts[account] = acc;
        _accounts[fundAccount()] = f;
        emit SettlementUpdated(account, acc.settlement);
        emit SettlementUpdated(fundAccount(), f.settlement);
        if (reward != 0 && keeperAccount != account) {
            int128 kb = (int256(_accounts[keeperAccount].settlement) + int256(reward)).toInt128();
            _accounts[keeperAccount].settlement = kb;
            emit SettlementUpdated(keeperAccount, kb);
        }
        emit Liquidated(account, msg.sender, l.taken, l.penalty, reward, l.surplusBefore, l.surplusAfter);
    }

    function _takeAll(
        uint256 account,
        Account memory acc,
        Account memory f,
        LiquidationItem[] calldata items,
        Ctx memory ctx,
        uint256 discounts
    ) internal returns (uint256 taken) {
        for (uint256 i; i < items.length; ++i) {
            taken += _take(account, acc, f, items[i], ctx, discounts);
        }
    }

    /// @dev max(keeperShare * penalty, minKeeperReward), at most the fund's settlement balance (USD 1e18).
    function _keeperReward(Account memory f, uint256 penalty, uint256 liq) internal pure returns (uint256 reward) {
        uint256 usd = Math.max(Math.mulDiv(penalty, liq.keeperShare(), BPS), liq.minKeeperReward());
        uint256 available = f.settlement > 0 ? uint256(int256(f.settlement)) : 0;
        reward = Math.min(usd, available);
        f.settlement = (int256(f.settlement) - reward.toInt256()).toInt128();
    }

    /// @dev Moves one item from the account to the fund; returns the USD amount taken.
    function _take(
        uint256 account,
        Account memory acc,
        Account memory f,
        LiquidationItem calldata item,
        Ctx memory ctx,
        uint256 discounts
    ) internal returns (uint256 taken) {
        uint256 fund = fundAccount();
        uint256 id = item.id;
        uint256 amount = item.amount;
        if (item.kind == 0 && acc.markets & (1 << id) != 0) {
            int256 size = _positions[account][id].size;
            if (amount == 0 || amount > PortfolioMargin.abs(size)) {
                revert BadLiquidationItem(account, 0, id, amount);
            }
            uint256 price = ctx.prices[_marketAssetOf(ctx.layout, id)];
            int256 delta = size > 0 ? -amount.toInt256() : amount.toInt256();
            (, int256 oiA) = _fill(account, acc, id, delta, price, type(uint256).max);
            (, int256 oiF) = _fill(fund, f, id, -delta, price, type(uint256).max);
            _addOpenInterest(id, oiA + oiF, type(uint256).max);
            return Math.mulDiv(amount, price, 1e18);
        }
        if (item.kind == 1 && acc.collaterals & (1 << id) != 0) {
            uint256 balance = _collateral[account][id];
            if (amount == 0 || amount > balance) revert BadLiquidationItem(account, 1, id, amount);
            balance -= amount;
            _collateral[account][id] = uint128(balance);
            if (balance == 0) acc.collaterals &= ~uint16(1 << id);
            uint256 fundBalance = _collateral[fund][id] + amount;
            _collateral[fund][id] = fundBalance.toUint128();
            f.collaterals |= uint16(1 << id);
            taken = PortfolioMargin.tokenValueDown(
                amount, ctx.prices[_collateralAssetOf(ctx.layout, id)], _collateralDecimalsOf(ctx.layout, id)
            );
            int256 credit = int256(PortfolioMargin.haircutDown(taken, discounts.u16(id)));
            acc.settlement = (int256(acc.settlement) + credit).toInt128();
            f.settlement = (int256(f.settlement) - credit).toInt128();
            address token = _collateralTokens[id];
            emit CollateralUpdated(account, token, balance);
            emit CollateralUpdated(fund, token, fundBalance);
            return taken;
        }
        revert BadLiquidationItem(account, item.kind, id, amount);
    }

    /// @notice The most a liquidation may take, USD 1e18 (see the rule in ICrossMarginVault).
    function maxTake(int256 equity, uint256 maintenance, uint256 initial, uint256 gross, uint256 liq)
        public
        pure
        returns (uint256)
    {
        if (equity * int256(BPS) < int256(maintenance * liq.deepThreshold())) return gross;
        uint256 allowed = Math.mulDiv(gross, liq.closeFactor(), BPS);
        int256 den = int256(initial * BPS) - int256(liq.penalty() * gross);
        if (den > 0) {
            uint256 needed = Math.mulDiv(gross * BPS, uint256(int256(initial) - equity), uint256(den), Math.Rounding.Ceil);
            allowed = Math.min(allowed, needed);
        }
        return gross - allowed < liq.dust() ? gross : allowed;
    }

    /// @dev Bad-debt waterfall: the fund's positive settlement balance first, the rest recorded and socialised.
    function _writeOff(uint256 account, Account memory acc, Account memory f) internal {
        uint256 debt = uint256(-int256(acc.settlement));
        uint256 cover = f.settlement > 0 ? Math.min(debt, uint256(int256(f.settlement))) : 0;
        f.settlement -= int128(int256(cover));
        acc.settlement = 0;
        badDebt += debt - cover;
        emit BadDebtWrittenOff(account, debt, cover, debt - cover);
    }

    /// @inheritdoc ICrossMarginVault
    function resolveBadDebt(uint256 amount) external nonReentrant {
        uint256 before = settlementToken.balanceOf(address(this));
        settlementToken.safeTransferFrom(msg.sender, address(this), amount);
        uint256 value = (settlementToken.balanceOf(address(this)) - before) * settlementScale;
        uint256 debt = badDebt;
        uint256 retired = Math.min(debt, value);
        badDebt = debt - retired;
        if (value > retired) _creditFund(int256(value - retired)); // any excess tops up the fund
        emit BadDebtReduced(retired, badDebt);
    }

    // ================================================================ margin
    /// @dev The context of a margin evaluation of `acc`: the listing, the margin words, the prices of its assets.
    function _ctxFor(Account memory acc) internal view returns (Ctx memory ctx) {
        ctx = _loadCtx();
        _readPrices(_assetMask(acc, ctx.layout), ctx);
    }

    /// @dev The listing and the margin words from `_snapshot`; prices are left zero.
    function _loadCtx() internal view returns (Ctx memory ctx) {
        address snapshot = _snapshot;
        RiskConfig.readMarginConfig(snapshot, ctx.cfg);
        assembly ("memory-safe") {
            extcodecopy(snapshot, ctx, 385, 32) // the listing word, after the STOP byte and the 12 margin words
        }
    }

    /// @dev `ctx.prices = oracle.prices(assetMask)` (nothing when the mask is empty), the returned data copied straight
    ///      into `ctx.prices` (a uint256[8] is ABI-encoded as its eight words): no decoding pass, no second array.
    function _readPrices(uint256 assetMask, Ctx memory ctx) internal view {
        // slither-disable-next-line incorrect-equality (an empty bit mask: nothing to price)
        if (assetMask == 0) return;
        uint256[8] memory out = ctx.prices;
        address router = address(oracle);
        bytes4 selector = IOracleRouter.prices.selector;
        assembly ("memory-safe") {
            mstore(0, selector)
            mstore(4, assetMask)
            if iszero(staticcall(gas(), router, 0, 0x24, out, 0x100)) {
                returndatacopy(0, 0, returndatasize())
                revert(0, returndatasize())
            }
            if iszero(eq(returndatasize(), 0x100)) { revert(0, 0) }
        }
    }

    /// @dev Re-creates `_snapshot` from the code of `marginConfigPointer` and the listing word `layout`.
    function _publishSnapshot(uint256 layout) internal {
        address source = marginConfigPointer;
        address snapshot;
        assembly ("memory-safe") {
            let m := mload(0x40) // scratch at the free memory pointer, not kept
            // init code, 12 bytes: PUSH2 417 (runtime size), DUP1, PUSH1 12, PUSH1 0, CODECOPY, PUSH1 0, RETURN;
            // then the runtime: the source's STOP byte and 384 bytes of margin words, and the listing word
            mstore(m, shl(160, 0x6101a180600c6000396000f3))
            extcodecopy(source, add(m, 12), 0, 385)
            mstore(add(m, 397), layout)
            snapshot := create(0, m, 429)
        }
        if (snapshot == address(0)) revert(); // creation ran out of gas (it cannot fail otherwise)
        _snapshot = snapshot;
    }

    /// @inheritdoc ICrossMarginVault
    function setMarginConfigPointer(address pointer) external {
        if (msg.sender != address(riskParams)) revert NotAdmin(msg.sender);
        marginConfigPointer = pointer;
        _publishSnapshot(_layout);
    }

    /// @dev Equity, maintenance and initial margin, and total gross (USD 1e18) of an account held in memory.
    function _evaluate(uint256 account, Account memory acc, Ctx memory ctx)
        internal
        view
        returns (int256 equity, uint256 maintenance, uint256 initial, uint256 grossTotal)
    {
        int256[8] memory delta;
        uint256[8] memory gross;
        (equity, grossTotal) = _exposure(account, acc, ctx, delta, gross);
        (maintenance, initial) = PortfolioMargin.requirements(delta, gross, ctx.cfg);
    }

    /// @dev Fills `delta` and `gross` per asset; returns equity and the sum of `gross`.
    function _exposure(
        uint256 account,
        Account memory acc,
        Ctx memory ctx,
        int256[8] memory delta,
        uint256[8] memory gross
    ) internal view returns (int256 equity, uint256 grossTotal) {
        equity = acc.settlement;
        for (uint256 m = acc.markets; m != 0; m &= m - 1) {
            uint256 market = _lowestBit(m);
            Position memory pos = _positions[account][market];
            uint256 asset = _marketAssetOf(ctx.layout, market);
            int256 value = PortfolioMargin.positionValueDown(pos.size, ctx.prices[asset]);
            uint256 absValue = PortfolioMargin.abs(value);
            equity += value - pos.openNotional;
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
    }

    /// @inheritdoc ICrossMarginVault
    function margin(uint256 account) external view returns (int256 equity, uint256 maintenance, uint256 initial) {
        Account memory acc = _accounts[account];
        (equity, maintenance, initial,) = _evaluate(account, acc, _ctxFor(acc));
    }

    /// @inheritdoc ICrossMarginVault
    function marginDetail(uint256 account) external view returns (MarginDetail memory d) {
        Account memory acc = _accounts[account];
        Ctx memory ctx = _ctxFor(acc);
        (d.equity,) = _exposure(account, acc, ctx, d.delta, d.gross);
        d.margin = PortfolioMargin.breakdown(d.delta, d.gross, ctx.cfg);
        for (uint256 m = acc.markets; m != 0; m &= m - 1) {
            uint256 market = _lowestBit(m);
            int256 value = PortfolioMargin.positionValueDown(
                _positions[account][market].size, ctx.prices[_marketAssetOf(ctx.layout, market)]
            );
            d.standard += Math.mulDiv(
                PortfolioMargin.abs(value), riskParams.marketWord(market).standardRate(), BPS, Math.Rounding.Ceil
            );
        }
    }

    // ================================================================ listing and layout helpers
    function _assetMask(Account memory acc, uint256 layout) internal pure returns (uint256 mask) {
        for (uint256 m = acc.markets; m != 0; m &= m - 1) {
            mask |= 1 << _marketAssetOf(layout, _lowestBit(m));
        }
        for (uint256 c = acc.collaterals; c != 0; c &= c - 1) {
            mask |= 1 << _collateralAssetOf(layout, _lowestBit(c));
        }
    }

    /// @dev Index of the lowest set bit of a non-zero x < 2^16. x & -x isolates that bit, 2^i; as 2 is a primitive
    ///      root modulo 19, 2^i mod 19 differs for every i < 16 and indexes a table of i (byte 2^i mod 19 holds i).
    function _lowestBit(uint256 x) internal pure returns (uint256 i) {
        assembly ("memory-safe") {
            i := byte(mod(and(x, sub(0, x)), 19), 0x0000010d02000e060308000c0f05070b040a0900000000000000000000000000)
        }
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

    /// @inheritdoc ICrossMarginVault
    function listCollateral(address token, uint256 asset) external returns (uint256 id) {
        _requireAdmin();
        if (token == address(settlementToken) || _collateralIdPlusOne[token] != 0) revert AlreadyListed(token);
        if (asset >= RiskConfig.MAX_ASSETS) revert UnknownAsset(asset);
        uint256 layout = _layout;
        id = _numCollaterals(layout);
        if (id >= RiskConfig.MAX_COLLATERALS) revert ListingFull(id);
        uint256 dec = IERC20Metadata(token).decimals();
        if (dec > 31) revert UnknownToken(token);
        layout = (layout + (1 << 8)) | (asset << (80 + 4 * id)) | (dec << (144 + 5 * id));
        _layout = layout;
        _publishSnapshot(layout);
        _collateralTokens[id] = token;
        _collateralIdPlusOne[token] = id + 1;
        emit CollateralListed(id, token, asset, dec);
    }

    /// @inheritdoc ICrossMarginVault
    function listMarket(uint256 asset) external returns (uint256 id) {
        _requireAdmin();
        if (asset >= RiskConfig.MAX_ASSETS) revert UnknownAsset(asset);
        uint256 layout = _layout;
        id = _numMarkets(layout);
        if (id >= RiskConfig.MAX_MARKETS) revert ListingFull(id);
        layout = (layout + 1) | (asset << (16 + 4 * id));
        _layout = layout;
        _publishSnapshot(layout);
        emit MarketListed(id, asset);
    }

    /// @inheritdoc ICrossMarginVault
    function setVenue(address venue, bool enabled) external {
        _requireAdmin();
        venues[venue] = enabled;
        emit VenueSet(venue, enabled);
    }

    /// @inheritdoc ICrossMarginVault
    function setFundOperator(address operator, bool approved) external {
        _requireAdmin();
        fundOperators[operator] = approved;
        emit OperatorSet(address(this), operator, approved);
    }

    // ================================================================ views
    /// @inheritdoc ICrossMarginVault
    function positionOf(uint256 account, uint256 market) external view returns (int256 size, int256 openNotional) {
        Position memory pos = _positions[account][market];
        return (pos.size, pos.openNotional);
    }

    /// @inheritdoc ICrossMarginVault
    function collateralOf(uint256 account, uint256 collateralId) external view returns (uint256) {
        return _collateral[account][collateralId];
    }

    /// @inheritdoc ICrossMarginVault
    function settlementOf(uint256 account) external view returns (int256) {
        return _accounts[account].settlement;
    }

    /// @inheritdoc ICrossMarginVault
    function masksOf(uint256 account) external view returns (uint256 markets, uint256 collaterals) {
        Account memory acc = _accounts[account];
        return (acc.markets, acc.collaterals);
    }

    /// @inheritdoc ICrossMarginVault
    function marketAsset(uint256 market) external view returns (uint256) {
        uint256 layout = _layout;
        if (market >= _numMarkets(layout)) revert UnknownMarket(market);
        return _marketAssetOf(layout, market);
    }

    /// @inheritdoc ICrossMarginVault
    function collateralInfo(uint256 id) external view returns (address token, uint256 asset, uint256 decimals) {
        uint256 layout = _layout;
        if (id >= _numCollaterals(layout)) revert UnknownToken(address(0));
        return (_collateralTokens[id], _collateralAssetOf(layout, id), _collateralDecimalsOf(layout, id));
    }

    /// @inheritdoc ICrossMarginVault
    function numMarkets() external view returns (uint256) {
        return _numMarkets(_layout);
    }

    /// @inheritdoc ICrossMarginVault
    function numCollaterals() external view returns (uint256) {
        return _numCollaterals(_layout);
    }
}
