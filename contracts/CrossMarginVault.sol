// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IRiskParameters} from "./interfaces/IRiskParameters.sol";
import {IOracleRouter} from "./interfaces/IOracleRouter.sol";
import {PortfolioMargin} from "./libraries/PortfolioMargin.sol";
import {RiskConfig} from "./libraries/RiskConfig.sol";
import {Funding} from "./libraries/Funding.sol";
import {VaultBase} from "./VaultBase.sol";
import {VaultExtension} from "./VaultExtension.sol";
import {IOptionMarkets} from "./interfaces/IOptionMarkets.sol";

/// @title CrossMarginVault
/// @notice See ICrossMarginVault for the specification: this contract runs deposits, withdrawals, trades,
///         liquidations and the margin views; every other function of ICrossMarginVault runs in `extension` by
///         DELEGATECALL (VaultBase). Call it through ICrossMarginVault's ABI.
contract CrossMarginVault is VaultBase {
    using SafeERC20 for IERC20;
    using SafeCast for int256;
    using SafeCast for uint256;
    using RiskConfig for uint256;

    /// @notice The contract the fallback delegates to, created here so it has this vault's immutables.
    address public immutable extension;

    constructor(IRiskParameters riskParams_, IOracleRouter oracle_, IERC20 settlementToken_)
        VaultBase(riskParams_, oracle_, settlementToken_)
    {
        extension = address(new VaultExtension(riskParams_, oracle_, settlementToken_));
        _pool = (INDEX_ONE << 56) | riskParams_.control();
        marginConfigPointer = riskParams_.marginConfigPointer();
        _publishSnapshot(0);
    }

    /// @dev Every other function of ICrossMarginVault: run `extension`'s code on this storage.
    fallback() external {
        address target = extension;
        assembly ("memory-safe") {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), target, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    // ================================================================ collateral
    /// @dev See ICrossMarginVault.
    // slither-disable-next-line reentrancy-no-eth (nonReentrant; the pool total is written after the transfer)
    function deposit(uint256 account, address token, uint256 amount) external nonReentrant returns (uint256 credited) {
        if (amount == 0) revert ZeroAmount();
        if (_pool.paused(RiskConfig.PAUSE_DEPOSITS)) revert Paused(RiskConfig.PAUSE_DEPOSITS);
        bool isSettlement = token == address(settlementToken);
        uint256 id = isSettlement ? 0 : _collateralId(token);
        uint256 before = IERC20(token).balanceOf(address(this));
        // slither-disable-next-line reentrancy-balance (nonReentrant: a token hook can only add tokens; docs/SECURITY.md)
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        credited = IERC20(token).balanceOf(address(this)) - before;
        // slither-disable-next-line incorrect-equality (nothing arrived: not an attacker-steerable equality)
        if (credited == 0) revert ZeroAmount();
        Account memory acc = _load(account);
        if (isSettlement) {
            acc.settlement = (int256(acc.settlement) + (credited * settlementScale).toInt256()).toInt128();
        } else {
            uint256 balance = _collateral[account][id] + credited;
            _collateral[account][id] = balance.toUint128();
            acc.collaterals |= uint16(1 << id);
            emit CollateralUpdated(account, token, balance);
        }
        _store(account, acc);
    }

    /// @dev See ICrossMarginVault.
    function withdraw(uint256 account, address token, uint256 amount, address to)
        external
        nonReentrant
        returns (uint256 paid)
    {
        _requireAuthorized(account);
        if (amount == 0) revert ZeroAmount();
        Account memory acc = _load(account);
        paid = amount;
        if (token == address(settlementToken)) {
            int256 value = (amount * settlementScale).toInt256();
            if (acc.settlement < value) {
                uint256 held = acc.settlement < 0 ? 0 : uint256(int256(acc.settlement)) / settlementScale;
                revert InsufficientBalance(account, token, held, amount);
            }
            acc.settlement = (int256(acc.settlement) - value).toInt128();
        } else {
            uint256 id = _collateralId(token);
            uint256 balance = _collateral[account][id];
            if (balance < amount) revert InsufficientBalance(account, token, balance, amount);
            balance -= amount;
            _collateral[account][id] = uint128(balance);
            if (balance == 0) acc.collaterals &= ~uint16(1 << id);
            emit CollateralUpdated(account, token, balance);
        }
        _store(account, acc);
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

    /// @dev See ICrossMarginVault.
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

    /// @dev One side of a trade: the account, its state before the fill, and what the fill did.
    struct Side {
        uint256 account;
        Account before; // settlement in USD
        Position positionBefore;
        bool increased;
        int256 longChange;
        int256 fundingPaid; // funding realised by the fill, + paid by the account
    }

    function _settle(Fill memory t) internal {
        uint256 control = _pool;
        uint256 mword = _marketWord(t.market);
        Ctx memory ctx = _tradeCtx(t.buyer, t.seller, t.market, t.price, control);
        uint256 asset = _marketAssetOf(ctx.layout, t.market);
        uint256 oraclePrice = ctx.prices[asset];
        (Funding.Market memory fm, int256 rate) = _marketNow(t.market, oraclePrice, asset, ctx);
        Side memory b = _tradeSide(t.buyer, t.market, t.size.toInt256(), t.price, t.buyerFee, mword, fm);
        Side memory s = _tradeSide(t.seller, t.market, -t.size.toInt256(), t.price, t.sellerFee, mword, fm);
        if ((b.increased || s.increased) && control.paused(RiskConfig.PAUSE_TRADES)) {
            revert Paused(RiskConfig.PAUSE_TRADES);
        }
        _updateBook(t.market, b.longChange + s.longChange, b.fundingPaid + s.fundingPaid, mword);
        uint256 fees = t.buyerFee + t.sellerFee;
        if (fees != 0) _creditFund(int256(fees));
        _afterFill(t.market, fm, rate, t.price, oraclePrice, fees, ctx.funding);
        emit Trade(t.buyer, t.seller, t.market, t.size, t.price, fees);
        _requireSide(b, t.market, t.price <= oraclePrice, ctx);
        _requireSide(s, t.market, t.price >= oraclePrice, ctx);
    }

    /// @dev The trade rule for one side (ICrossMarginVault): E >= IM afterwards, or a pure reduction filled no worse
    ///      than the oracle price that raised E - MM and left E >= 0 (any E for the fund).
    function _requireSide(Side memory x, uint256 market, bool fillNoWorseThanOracle, Ctx memory ctx) internal {
        Account memory acc = _load(x.account);
        (int256 equity, uint256 maintenance, uint256 initial,) = _evaluate(x.account, acc, ctx, 0);
        if (equity >= int256(initial)) return;
        // slither-disable-next-line incorrect-equality (an identity check: the fund account)
        if (!x.increased && fillNoWorseThanOracle && (equity >= 0 || x.account == _fundAccount())) {
            // the state before the fill: its position back in storage for one evaluation
            Position memory current = _positionOf(x.account, market);
            _setPosition(x.account, market, x.positionBefore);
            (int256 equity0, uint256 maintenance0,,) = _evaluate(x.account, x.before, ctx, 0);
            _setPosition(x.account, market, current);
            if (equity - int256(maintenance) > equity0 - int256(maintenance0)) return;
        }
        revert InsufficientMargin(x.account, equity, initial);
    }

    /// @dev Loads prices for both accounts and the market, and checks the price band.
    function _tradeCtx(uint256 buyer, uint256 seller, uint256 market, uint256 price, uint256 control)
        internal
        view
        returns (Ctx memory ctx)
    {
        ctx = _loadCtx();
        ctx.strict = true;
        uint256 layout = ctx.layout;
        if (market >= _numMarkets(layout)) revert UnknownMarket(market);
        uint256 asset = _marketAssetOf(layout, market);
        (uint256 pb, uint256 cb) = _assetMasks(_accountOf(buyer), layout);
        (uint256 ps, uint256 cs) = _assetMasks(_accountOf(seller), layout);
        _readPrices(pb | ps | (1 << asset), cb | cs, ctx);
        uint256 p = ctx.prices[asset];
        uint256 dist = price > p ? price - p : p - price;
        if (dist * BPS > p * control.priceBand()) revert PriceOutsideBand(market, price, p, control.priceBand());
    }

    /// @dev One side of a trade: position, realised P&L and fee into the account's settlement balance.
    function _tradeSide(
        uint256 account,
        uint256 market,
        int256 delta,
        uint256 price,
        uint256 fee,
        uint256 mword,
        Funding.Market memory fm
    ) internal returns (Side memory x) {
        x.account = account;
        Account memory acc = _load(account);
        x.before = Account(acc.settlement, acc.markets, acc.collaterals, acc.epoch, acc.adlLong, acc.adlShort, acc.options);
        x.positionBefore = _positionOf(account, market);
        (x.increased, x.longChange, x.fundingPaid) = _fill(account, acc, market, delta, price, mword, fm);
        (acc.adlLong, acc.adlShort) = (0, 0); // trading again: earlier liquidations are no longer a loss's source
        acc.settlement = (int256(acc.settlement) - fee.toInt256()).toInt128();
        _store(account, acc);
    }

    /// @dev Applies a fill of `delta` at `price` to a position; its accrued funding (at the indices of `fm`) and
    ///      realised P&L go to `acc.settlement` (in memory). Returns whether the position grew (in size or by
    ///      flipping), the change in long open interest and the funding the account paid (+) or received (-).
    function _fill(
        uint256 account,
        Account memory acc,
        uint256 market,
        int256 delta,
        uint256 price,
        uint256 mword,
        Funding.Market memory fm
    ) internal returns (bool increased, int256 longChange, int256 fundingPaid) {
        int256 size;
        int256 on;
        {
            uint256 w = _positions[account][market]; // `_positionOf`, decoded in place
            size = int96(uint96(w));
            fundingPaid = -Funding.accrued(size, int64(uint64(w >> 192)), fm);
            (on, increased) = _applyFill(acc, size, int96(uint96(w >> 96)), delta, price);
        }
        acc.settlement = (int256(acc.settlement) - fundingPaid).toInt128();
        int256 newSize = size + delta;
        if (newSize == 0) {
            on = 0;
            acc.markets &= ~uint16(1 << market);
        } else {
            acc.markets |= uint16(1 << market);
            if (increased && PortfolioMargin.abs(newSize) > mword.maxPositionSize()) {
                revert PositionTooLarge(account, market, newSize, mword.maxPositionSize());
            }
        }
        longChange = (newSize > 0 ? newSize : int256(0)) - (size > 0 ? size : int256(0));
        _writePosition(account, market, newSize, on, fm);
    }

    /// @dev Stores a position of `size` and basis `on` with the index of its side in `fm` (0 for no position).
    function _writePosition(uint256 account, uint256 market, int256 size, int256 on, Funding.Market memory fm)
        internal
    {
        int256 index = size > 0 ? fm.longIndex : (size < 0 ? fm.shortIndex : int256(0));
        _positions[account][market] = _positionWord(size, on, index);
        emit PositionUpdated(account, market, size, on, index);
    }

    /// @dev The cost basis of a position of `size` and basis `on` after a fill of `delta` at `price`, and whether it
    ///      grew (in size or by flipping); the P&L it realises goes to `acc.settlement` (in memory).
    function _applyFill(Account memory acc, int256 size, int256 on, int256 delta, uint256 price)
        internal
        pure
        returns (int256, bool increased)
    {
        if (size == 0 || (size > 0) == (delta > 0)) {
            return (on + PortfolioMargin.ceilDiv(delta * int256(price), 1e18), true); // basis rounds up (against it)
        }
        int256 closed = PortfolioMargin.abs(delta) < PortfolioMargin.abs(size) ? delta : -size;
        int256 basisClosed = (on * closed) / -size; // share of the cost basis released
        int256 realised = PortfolioMargin.floorDiv(-closed * int256(price), 1e18) - basisClosed;
        acc.settlement = (int256(acc.settlement) + realised).toInt128();
        on -= basisClosed;
        if (closed != delta) {
            increased = true; // flipped: the remainder opens a new position
            on = PortfolioMargin.ceilDiv((delta - closed) * int256(price), 1e18);
        }
        return (on, increased);
    }

    /// @dev Open interest and funding balance of `market` after a change of `oiChange` and `fundingPaid` collected.
    function _updateBook(uint256 market, int256 oiChange, int256 fundingPaid, uint256 mword) internal {
        // slither-disable-next-line incorrect-equality (nothing changed: nothing to write)
        if (oiChange == 0 && fundingPaid == 0) return;
        Book memory book = _books[market];
        uint256 oi = uint256(int256(uint256(book.openInterest)) + oiChange);
        if (oiChange > 0 && oi > mword.maxOpenInterest()) {
            revert OpenInterestTooLarge(market, oi, mword.maxOpenInterest());
        }
        _books[market] = Book(oi.toUint128(), (int256(book.fundingBalance) + fundingPaid).toInt128());
    }

    /// @dev Advances `market` to now; stores it when its indices (or carry) moved or on its first touch. Not storing
    ///      is not touching: the next advance covers the whole interval from the stored state.
    function _touchMarket(uint256 market, uint256 price, uint256 asset, Ctx memory ctx)
        internal
        returns (Funding.Market memory fm)
    {
        uint256 packed = _marketStates[market];
        if (Funding.still(packed, ctx.funding, block.timestamp) && uint32(packed >> 128) != 0) {
            return Funding.unpack(packed); // nothing moves: nothing to compute or store
        }
        int256 rate;
        (fm, rate) = _marketNow(market, price, asset, ctx);
        if (_moved(packed, fm)) _storeMarket(market, fm, rate);
    }

    /// @dev Adds a fill to the market's premium (`fm` advanced to now, not yet stored) and stores the market when
    ///      the fill added weight or the advance moved it.
    function _afterFill(
        uint256 market,
        Funding.Market memory fm,
        int256 rate,
        uint256 price,
        uint256 oraclePrice,
        uint256 fees,
        uint256 word
    ) internal {
        uint256 weight = fm.weight;
        Funding.addFill(fm, price, oraclePrice, fees, word);
        if (fm.weight != weight || _moved(_marketStates[market], fm)) _storeMarket(market, fm, rate);
    }

    /// @dev True when `fm` (advanced from the packed state `before`) must be stored: an index or the carry changed,
    ///      or it is the market's first touch (its clock starts).
    function _moved(uint256 before, Funding.Market memory fm) internal pure returns (bool) {
        Funding.Market memory old = Funding.unpack(before);
        // slither-disable-next-line incorrect-equality (a change of state, not a value an attacker aims at)
        return fm.longIndex != old.longIndex || fm.shortIndex != old.shortIndex || fm.carry != old.carry
            || (old.updatedAt == 0 && fm.updatedAt != 0);
    }

    /// @dev Spreads `loss` (USD 1e18) over every positive settlement balance by lowering the index (rounded down,
    ///      against the holders). A loss that would take the index below MIN_INDEX takes every claim: they are all
    ///      worth 0 from now on, the pool restarts empty at index 1e18 in the next epoch, and what the claims held
    ///      beyond the loss (at most ~1e-6 of them) goes to the fund. What exceeds all claims stays in `badDebt`.
    function _socialise(uint256 loss) internal {
        uint256 pool = _pool;
        uint256 index = _index(pool);
        uint256 shares = _totalShares(pool);
        uint256 epoch = pool >> EPOCH_SHIFT;
        uint256 claims = _usdOf(shares, index);
        uint256 next = claims > loss ? Math.mulDiv(index, claims - loss, claims) : 0;
        uint256 socialised;
        uint256 excess;
        if (next >= MIN_INDEX || epoch >= MAX_EPOCH) {
            if (next < MIN_INDEX) next = MIN_INDEX; // every epoch used: the rest of the loss stays bad debt
            socialised = claims - _usdOf(shares, next);
        } else {
            if (shares != 0) ++epoch; // an empty pool has no claims to end: it only restarts at 1e18
            excess = claims > loss ? claims - loss : 0;
            (next, shares, socialised) = (INDEX_ONE, 0, claims);
        }
        if (loss > socialised) badDebt += loss - socialised;
        _pool = (pool & type(uint56).max) | (next << 56) | (shares << SHARES_SHIFT) | (epoch << EPOCH_SHIFT);
        emit SettlementIndexUpdated(next, shares, socialised);
        if (excess != 0) _creditFund(int256(excess));
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
        uint256 allowed;
        uint256 penalty;
        int256 surplusBefore;
        int256 surplusAfter;
    }

    /// @dev See ICrossMarginVault.
    // slither-disable-next-line reentrancy-no-eth (nonReentrant; the option registry is trusted, set by the admin)
    function liquidate(uint256 account, LiquidationItem[] calldata items)
        external
        nonReentrant
        returns (uint256 reward)
    {
        uint256 fund = _fundAccount();
        if (account == fund) revert FundNotLiquidatable();
        Account memory acc = _load(account);
        Ctx memory ctx = _ctxFor(acc);
        Liq memory l;
        (l.equity, l.maintenance, l.initial, l.gross) = _evaluate(account, acc, ctx, 0);
        if (l.equity >= int256(l.maintenance)) revert AccountHealthy(account, l.equity, l.maintenance);
        Account memory f = _load(fund);
        (l.params, l.discounts) = _liquidationWords();

        l.taken = _takeAll(account, acc, f, items, ctx, l.discounts);
        // a write-off: nothing left to take (no position, no collateral with a valid price, what has none is dust)
        // and a debt (a penalty or a make-up never turns a debt into a credit here: E' = the balance)
        // slither-disable-next-line incorrect-equality (emptiness checks on bit masks)
        bool writeOff = acc.markets == 0 && acc.options == 0 && _pricedCollaterals(acc, ctx) == 0 && acc.settlement < 0
            && _unpricedIsDust(account, acc, ctx.layout, l.params.dust());
        // slither-disable-next-line incorrect-equality (emptiness checks on amounts)
        if (l.taken == 0 && !writeOff) revert LiquidationEmpty(account);
        l.allowed = maxTake(l.equity, l.maintenance, l.initial, l.gross, l.params);
        if (l.taken > l.allowed) revert LiquidationTooLarge(account, l.taken, l.allowed);
        l.surplusBefore = l.equity - int256(l.maintenance);
        l.surplusAfter = l.surplusBefore;
        if (l.taken != 0) {
            (int256 e1, uint256 m1,,) = _evaluate(account, acc, ctx, 0);
            l.penalty = liquidationPenalty(l.taken, e1, l.maintenance, m1, l.params);
            l.surplusAfter = e1 - int256(l.penalty) - int256(m1);
            if (l.surplusAfter <= l.surplusBefore) {
                revert LiquidationNotImproving(account, l.surplusBefore, l.surplusAfter);
            }
            reward = keeperReward(l.penalty, l.taken, l.allowed, l.params);
            int256 settlement = int256(acc.settlement) - int256(l.penalty);
            // rounding never makes a solvent account insolvent: the fund makes up the few wei
            uint256 shortfall = l.equity >= 0 ? _roundingShortfall(e1 - int256(l.penalty), settlement) : 0;
            acc.settlement = (settlement + int256(shortfall)).toInt128();
            f.settlement = (int256(f.settlement) + int256(l.penalty - reward) - int256(shortfall)).toInt128();
        }
        uint256 keeperAccount = _accountId(msg.sender, 0);
        if (keeperAccount == account) acc.settlement += int128(int256(reward));
        uint256 loss;
        if (writeOff && acc.settlement < 0) loss = _writeOff(account, acc, f, ctx);
        _store(account, acc);
        _store(fund, f);
        if (loss != 0) _socialise(loss);
        if (reward != 0 && keeperAccount != account) {
            Account memory k = _load(keeperAccount);
            k.settlement = (int256(k.settlement) + int256(reward)).toInt128();
            _store(keeperAccount, k);
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

    /// @dev See ICrossMarginVault.
    function liquidationPenalty(
        uint256 taken,
        int256 equityAfter,
        uint256 maintenanceBefore,
        uint256 maintenanceAfter,
        uint256 liq
    ) public pure returns (uint256) {
        uint256 penalty = Math.mulDiv(taken, liq.penalty(), BPS, Math.Rounding.Ceil);
        uint256 freed = maintenanceAfter < maintenanceBefore ? (maintenanceBefore - maintenanceAfter) / 2 : 0;
        uint256 left = equityAfter > 0 ? uint256(equityAfter) : 0;
        return Math.min(penalty, Math.min(freed, left));
    }

    /// @dev See ICrossMarginVault.
    function keeperReward(uint256 penalty, uint256 taken, uint256 allowed, uint256 liq)
        public
        pure
        returns (uint256 reward)
    {
        reward = Math.mulDiv(penalty, liq.keeperShare(), BPS);
        if (taken * BPS >= allowed * FULL_TAKE_BPS) reward = Math.max(reward, Math.min(liq.minKeeperReward(), penalty));
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
        uint256 fund = _fundAccount();
        uint256 id = item.id;
        uint256 amount = item.amount;
        if (item.kind == 0 && acc.markets & (1 << id) != 0) return _takePosition(account, acc, f, id, amount, ctx);
        if (item.kind == 1 && acc.collaterals & (1 << id) != 0) {
            uint256 balance = _collateral[account][id];
            uint256 price = ctx.prices[_collateralAssetOf(ctx.layout, id)];
            // slither-disable-next-line incorrect-equality (0: the collateral's price is unavailable, it counts as 0)
            if (amount == 0 || amount > balance || price == 0) revert BadLiquidationItem(account, 1, id, amount);
            balance -= amount;
            _collateral[account][id] = uint128(balance);
            if (balance == 0) acc.collaterals &= ~uint16(1 << id);
            uint256 fundBalance = _collateral[fund][id] + amount;
            _collateral[fund][id] = fundBalance.toUint128();
            f.collaterals |= uint16(1 << id);
            taken = PortfolioMargin.tokenValueDown(amount, price, _collateralDecimalsOf(ctx.layout, id));
            int256 credit = int256(PortfolioMargin.haircutDown(taken, discounts.u16(id)));
            acc.settlement = (int256(acc.settlement) + credit).toInt128();
            f.settlement = (int256(f.settlement) - credit).toInt128();
            address token = _collateralTokens[id];
            emit CollateralUpdated(account, token, balance);
            emit CollateralUpdated(fund, token, fundBalance);
            return taken;
        }
        if (item.kind == 2) return _takeOption(account, acc, f, id, amount, ctx);
        revert BadLiquidationItem(account, item.kind, id, amount);
    }

    /// @dev Moves `amount` of the account's position in option series `slot` to the fund at its mark (IOptionMarkets
    ///      .takeOver): the fund pays a long's value, a short pays its liability. Returns the notional taken. Every
    ///      perpetual market of the series' asset becomes a deleveraging source on the side of the account's net
    ///      direction on the asset before the liquidation (the sign of WS_a: options, perpetuals and collateral
    ///      together; none when it is 0).
    function _takeOption(
        uint256 account,
        Account memory acc,
        Account memory f,
        uint256 slot,
        uint256 amount,
        Ctx memory ctx
    ) internal returns (uint256 notional) {
        int256 value;
        uint256 mask;
        uint256 fundMask;
        uint256 asset;
        (IOptionMarkets om, uint256 options) = _optionConfig();
        (value, notional, mask, fundMask, asset) =
            om.takeOver(account, _fundAccount(), acc.options, f.options, slot, amount, ctx.prices, options);
        (acc.options, f.options) = (uint32(mask), uint32(fundMask));
        acc.settlement = (int256(acc.settlement) + value).toInt128();
        f.settlement = (int256(f.settlement) - value).toInt128();
        uint256 markets;
        for (uint256 m = _numMarkets(ctx.layout); m != 0;) {
            // slither-disable-next-line incorrect-equality (an identity check: the market's asset)
            if (_marketAssetOf(ctx.layout, --m) == asset) markets |= 1 << m;
        }
        uint256 d = (ctx.directions >> asset) & 0x101; // 1: net long, 0x100: net short
        // slither-disable-next-line incorrect-equality (bits of a mask)
        if (d == 1) acc.adlLong |= uint16(markets);
        else if (d != 0) acc.adlShort |= uint16(markets);
    }

    /// @dev Closes `amount` of the account's position in `market` against the fund at the oracle price (the market's
    ///      funding advanced first); returns the USD amount taken.
    function _takePosition(
        uint256 account,
        Account memory acc,
        Account memory f,
        uint256 market,
        uint256 amount,
        Ctx memory ctx
    ) internal returns (uint256) {
        int256 size = int96(uint96(_positions[account][market]));
        if (amount == 0 || amount > PortfolioMargin.abs(size)) revert BadLiquidationItem(account, 0, market, amount);
        uint256 asset = _marketAssetOf(ctx.layout, market);
        uint256 price = ctx.prices[asset];
        Funding.Market memory fm = _touchMarket(market, price, asset, ctx);
        // the source side: the account's net direction on an asset where it holds options, else the position's own
        {
            uint256 d = (ctx.directions >> asset) & 0x101; // 1: net long, 0x100: net short, 0: no options there
            // slither-disable-next-line incorrect-equality (bits of a mask)
            if (d == 1 || (d == 0 && size > 0)) acc.adlLong |= uint16(1 << market);
            else acc.adlShort |= uint16(1 << market);
        }
        int256 delta = size > 0 ? -amount.toInt256() : amount.toInt256();
        (, int256 oiA, int256 paidA) = _fill(account, acc, market, delta, price, type(uint256).max, fm);
        (, int256 oiF, int256 paidF) = _fill(_fundAccount(), f, market, -delta, price, type(uint256).max, fm);
        _updateBook(market, oiA + oiF, paidA + paidF, type(uint256).max);
        return Math.mulDiv(amount, price, 1e18);
    }

    /// @dev See ICrossMarginVault.
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

    /// @dev The amount the fund adds to a liquidated account's settlement balance (in memory, USD) so that its equity,
    ///      `equity` in memory, stays >= 0 once the balance is stored: the take's rounding may leave it a few wei below
    ///      0, and storing a positive balance as shares may lose 1 wei more (never at index 1e18).
    function _roundingShortfall(int256 equity, int256 settlement) internal view returns (uint256 shortfall) {
        uint256 index = _index(_pool);
        int256 kept = settlement;
        if (settlement > 0) kept = int256(_usdOf(_sharesOf(uint256(settlement), index), index));
        int256 stored = equity - (settlement - kept);
        if (stored >= 0) return 0;
        shortfall = uint256(-stored);
        if (index != INDEX_ONE) ++shortfall; // the larger balance may lose 1 wei in its turn
    }

    /// @dev Bit mask of the account's collateral ids whose asset has a valid price in `ctx`.
    function _pricedCollaterals(Account memory acc, Ctx memory ctx) internal pure returns (uint256 priced) {
        for (uint256 left = acc.collaterals; left != 0; left &= left - 1) {
            uint256 id = _lowestBit(left);
            if (ctx.prices[_collateralAssetOf(ctx.layout, id)] != 0) priced |= 1 << id;
        }
    }

    /// @dev True if the account's collateral (none of it has a valid price) is worth less than `dust` (at least 1 wei:
    ///      nothing is always dust) in all at its feeds' last answers (`IOracleRouter.lastPrice`: a stale feed's last
    ///      value; 0 for a non-positive answer).
    function _unpricedIsDust(uint256 account, Account memory acc, uint256 layout, uint256 dust)
        internal
        view
        returns (bool)
    {
        uint256 value;
        for (uint256 left = acc.collaterals; left != 0; left &= left - 1) {
            uint256 id = _lowestBit(left);
            uint256 p = oracle.lastPrice(_collateralAssetOf(layout, id));
            value += PortfolioMargin.tokenValueDown(_collateral[account][id], p, _collateralDecimalsOf(layout, id));
        }
        return value < Math.max(dust, 1);
    }

    /// @dev Bad-debt waterfall: collateral without a valid price (dust: all the account has left) passes to the fund,
    ///      the fund's settlement balance less its short options' liability at the mark (IOptionMarkets
    ///      .shortLiability) covers what it can when positive, deleveraging charges the opposite sides what
    ///      they can bear; returns the rest, which the caller socialises (`_socialise`) once both accounts are stored.
    function _writeOff(uint256 account, Account memory acc, Account memory f, Ctx memory ctx)
        internal
        returns (uint256 rest)
    {
        uint256 fund = _fundAccount();
        for (uint256 left = acc.collaterals; left != 0; left &= left - 1) {
            uint256 id = _lowestBit(left);
            uint256 amount = _collateral[account][id];
            uint256 fundBalance = _collateral[fund][id] + amount;
            _collateral[account][id] = 0;
            _collateral[fund][id] = fundBalance.toUint128();
            address token = _collateralTokens[id];
            emit CollateralUpdated(account, token, 0);
            emit CollateralUpdated(fund, token, fundBalance);
        }
        f.collaterals |= acc.collaterals;
        acc.collaterals = 0;
        uint256 debt = uint256(-int256(acc.settlement));
        // the fund's cash less what its short options owe at the mark (cash that a taken-over short paid in)
        int256 free = f.settlement;
        if (f.options != 0) {
            (IOptionMarkets om, uint256 options) = _optionConfig();
            free -= om.shortLiability(_fundAccount(), f.options, ctx.prices, options).toInt256();
        }
        uint256 cover = free > 0 ? Math.min(debt, uint256(free)) : 0;
        f.settlement -= int128(int256(cover));
        acc.settlement = 0;
        uint256 loss = debt - cover;
        // slither-disable-next-line incorrect-equality (nothing left after the fund: nothing to deleverage)
        rest = loss == 0 ? 0 : _deleverage(account, acc, loss, ctx);
        (acc.adlLong, acc.adlShort) = (0, 0);
        emit BadDebtWrittenOff(account, debt, cover, loss - rest, rest);
    }

    /// @dev Deleveraging (ICrossMarginVault): `loss` goes to the side opposite each position of `account` that was
    ///      liquidated, in proportion to those sides' notional, each charged at most `adlShare` of its maintenance
    ///      margin through its funding index (`_adlShares`). Returns the part of `loss` left for the write-off rule.
    function _deleverage(uint256 account, Account memory acc, uint256 loss, Ctx memory ctx)
        internal
        returns (uint256 rest)
    {
        rest = loss;
        // sources 0..15: longs of market m were liquidated (shorts pay); 16..31: shorts of market m (longs pay)
        uint256 sources = uint256(acc.adlLong) | (uint256(acc.adlShort) << 16);
        (acc.adlLong, acc.adlShort) = (0, 0);
        // slither-disable-next-line incorrect-equality (no source, or deleveraging off)
        if (sources == 0 || ctx.funding.adlShare() == 0) return rest;
        uint256[8] memory prices; // 0 for an asset without a valid price
        {
            uint256 assets;
            for (uint256 left = sources; left != 0; left &= left - 1) {
                assets |= 1 << _marketAssetOf(ctx.layout, _lowestBit32(left) & 15);
            }
            prices = oracle.pricesFor(0, assets);
        }
        uint256[32] memory notional;
        uint256[32] memory room; // the most each side may be charged: adlShare * riskWeight * its notional
        for (uint256 left = sources; left != 0; left &= left - 1) {
            uint256 src = _lowestBit32(left);
            uint256 asset = _marketAssetOf(ctx.layout, src & 15);
            notional[src] = Math.mulDiv(_books[src & 15].openInterest, prices[asset], 1e18);
            room[src] = Math.mulDiv(notional[src], ctx.cfg.global.riskWeight(asset) * ctx.funding.adlShare(), 1e8);
        }
        uint256[32] memory due = _adlShares(sources, notional, room, loss);
        for (uint256 left = sources; left != 0; left &= left - 1) {
            uint256 src = _lowestBit32(left);
            if (due[src] != 0) rest -= _charge(account, src, due[src], prices, ctx);
        }
    }

    /// @dev What each source side pays of `loss`: shares in proportion to notional among the sides with room left
    ///      (in source order, each side's part is its share of what earlier sides were not assigned, so the parts
    ///      add up to what is split), each at most its `room`; what a full side cannot take is split again over the
    ///      others, until nothing is left or every side is full. Each pass fills a side or assigns everything: at
    ///      most 32 passes.
    function _adlShares(uint256 sources, uint256[32] memory notional, uint256[32] memory room, uint256 loss)
        internal
        pure
        returns (uint256[32] memory due)
    {
        uint256 open;
        for (uint256 left = sources; left != 0; left &= left - 1) {
            uint256 src = _lowestBit32(left);
            if (room[src] != 0) open |= 1 << src; // an empty side, or no price: nothing to charge
        }
        while (loss != 0 && open != 0) {
            uint256 total;
            for (uint256 left = open; left != 0; left &= left - 1) {
                total += notional[_lowestBit32(left)];
            }
            uint256 unassigned = loss;
            for (uint256 left = open; left != 0; left &= left - 1) {
                uint256 src = _lowestBit32(left);
                uint256 part = Math.mulDiv(unassigned, notional[src], total);
                (unassigned, total) = (unassigned - part, total - notional[src]);
                uint256 take = Math.min(part, room[src]);
                (due[src], room[src], loss) = (due[src] + take, room[src] - take, loss - take);
                // slither-disable-next-line incorrect-equality (the side is full)
                if (room[src] == 0) open &= ~(1 << src);
            }
        }
    }

    /// @dev Charges source `src` (market src & 15; the longs pay when src >= 16) `amount` by moving its side's index;
    ///      returns what it charged (0 when the index would leave its range).
    function _charge(uint256 account, uint256 src, uint256 amount, uint256[8] memory prices, Ctx memory ctx)
        internal
        returns (uint256)
    {
        uint256 market = src & 15;
        bool longsPay = src >= 16;
        uint256 asset = _marketAssetOf(ctx.layout, market);
        (Funding.Market memory fm, int256 rate) = _marketNow(market, prices[asset], asset, ctx);
        // the side's sizes sum to the open interest: it pays at least `amount` (each position's share rounds up)
        uint256 shift = Math.mulDiv(amount, uint256(Funding.INDEX_UNIT), _books[market].openInterest, Math.Rounding.Ceil);
        if (longsPay) fm.longIndex += int256(shift);
        else fm.shortIndex -= int256(shift);
        int256 moved = longsPay ? fm.longIndex : fm.shortIndex;
        if (moved > type(int64).max || moved < type(int64).min) return 0;
        _storeMarket(market, fm, rate);
        _updateBook(market, 0, -int256(amount), type(uint256).max);
        emit Deleveraged(account, market, longsPay, amount, shift);
        return amount;
    }

    /// @dev The LIQUIDATION and DISCOUNT words, published with the margin words (words 12 and 13 of the snapshot).
    function _liquidationWords() internal view returns (uint256 liq, uint256 discounts) {
        address snapshot = _snapshot;
        assembly ("memory-safe") {
            extcodecopy(snapshot, 0, 385, 64) // scratch space
            liq := mload(0)
            discounts := mload(0x20)
        }
    }

    /// @dev See ICrossMarginVault.
    function margin(uint256 account) external view returns (int256 equity, uint256 maintenance, uint256 initial) {
        Account memory acc = _load(account);
        (equity, maintenance, initial,) = _evaluate(account, acc, _ctxFor(acc), 0);
    }
}
