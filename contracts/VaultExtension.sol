// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

import {IRiskParameters} from "./interfaces/IRiskParameters.sol";
import {IOracleRouter} from "./interfaces/IOracleRouter.sol";
import {RiskConfig} from "./libraries/RiskConfig.sol";
import {Funding} from "./libraries/Funding.sol";
import {VaultBase} from "./VaultBase.sol";
import {PortfolioMargin} from "./libraries/PortfolioMargin.sol";
import {IOptionMarkets} from "./interfaces/IOptionMarkets.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title VaultExtension
/// @notice The functions of ICrossMarginVault that are not in CrossMarginVault's own code: listing, admin, accounts'
///         operators, bad-debt repayment and most views. Runs only by DELEGATECALL from the vault (on the vault's
///         storage); called directly it reads and writes its own empty storage, which nothing uses.
contract VaultExtension is VaultBase {
    using SafeERC20 for IERC20;
    using RiskConfig for uint256;
    using SafeCast for int256;
    using SafeCast for uint256;

    constructor(IRiskParameters riskParams_, IOracleRouter oracle_, IERC20 settlementToken_)
        VaultBase(riskParams_, oracle_, settlementToken_)
    {}

    // ================================================================ options
    /// @dev See ICrossMarginVault.
    function setOptionMarkets(IOptionMarkets markets) external {
        _requireAdmin();
        if (address(optionMarkets) != address(0)) revert OptionsNotEnabled();
        optionMarkets = markets;
        _publishSnapshot(_layout); // margin checks and option fills read the registry there
        emit OptionMarketsSet(address(markets));
    }

    /// @dev A side of an option fill before it: whether it can only reduce its position, and then its E - MM; the
    ///      series' slot and the side's size in it after the fill.
    struct OptionSide {
        bool reducing;
        int256 surplus;
        uint256 slot;
        int256 next;
    }

    /// @dev See ICrossMarginVault.
    function settleOptionTrade(
        uint256 buyer,
        uint256 seller,
        uint256 slot,
        uint256 size,
        uint256 price,
        uint256 buyerFee,
        uint256 sellerFee
    ) external nonReentrant {
        if (!venues[msg.sender]) revert NotVenue(msg.sender);
        if (buyer == seller) revert SelfTrade(buyer);
        if (size == 0) revert ZeroAmount();
        // one context for the fill and both checks: the margin words, the registry and the OPTION word
        Ctx memory ctx = _loadCtx();
        (IOptionMarkets om, uint256 options) = _optionConfig();
        if (address(om) == address(0)) revert OptionsNotEnabled();
        IOptionMarkets.Fill memory fill = IOptionMarkets.Fill(buyer, seller, 0, 0, slot, size, price, options);
        OptionSide memory bs = _optionSideBefore(om, buyer, slot, size.toInt256());
        OptionSide memory ss = _optionSideBefore(om, seller, slot, -size.toInt256());
        IOptionMarkets.FillResult memory r = _applyOptionFill(om, fill, buyerFee, sellerFee);
        _requireOptionSide(buyer, bs, r.buyerIncreased, price <= r.mark, ctx, r);
        _requireOptionSide(seller, ss, r.sellerIncreased, price >= r.mark, ctx, r);
    }

    /// @dev The fill in the registry, then the premium (ceil from the buyer, floor to the seller, the wei between
    ///      to the fund) and the fees in the settlement balances.
    // slither-disable-next-line reentrancy-no-eth (the caller is nonReentrant; the option registry is the admin's)
    function _applyOptionFill(IOptionMarkets om, IOptionMarkets.Fill memory fill, uint256 buyerFee, uint256 sellerFee)
        internal
        returns (IOptionMarkets.FillResult memory r)
    {
        Account memory b = _load(fill.buyer);
        Account memory s = _load(fill.seller);
        (fill.buyerMask, fill.sellerMask) = (b.options, s.options);
        r = om.applyFill(fill, _fundAccount());
        if ((r.buyerIncreased || r.sellerIncreased) && _pool.paused(RiskConfig.PAUSE_TRADES)) {
            revert Paused(RiskConfig.PAUSE_TRADES);
        }
        uint256 paid = Math.mulDiv(fill.size, fill.price, 1e18, Math.Rounding.Ceil);
        uint256 received = Math.mulDiv(fill.size, fill.price, 1e18);
        b.options = uint32(r.buyerMask);
        b.settlement = (int256(b.settlement) - (paid + buyerFee).toInt256()).toInt128();
        s.options = uint32(r.sellerMask);
        s.settlement = (int256(s.settlement) + received.toInt256() - sellerFee.toInt256()).toInt128();
        (b.adlLong, b.adlShort, s.adlLong, s.adlShort) = (0, 0, 0, 0); // trading again (CrossMarginVault._tradeSide)
        _store(fill.buyer, b);
        _store(fill.seller, s);
        uint256 toFund = buyerFee + sellerFee + paid - received;
        if (toFund != 0) _creditFund(int256(toFund));
    }

    /// @dev Whether a fill of `delta` in `slot` can only reduce the account's position there, and then its E - MM
    ///      now. A slot outside the account's series mask holds no position (OptionMarkets keeps a slot's bit exactly
    ///      while the size is not 0), so its size is read only when the bit is set.
    function _optionSideBefore(IOptionMarkets om, uint256 account, uint256 slot, int256 delta)
        internal
        view
        returns (OptionSide memory x)
    {
        // slither-disable-next-line incorrect-equality (a bit of a mask)
        int256 size = (_accountOf(account).options >> slot) & 1 == 0 ? int256(0) : om.sizeOf(account, slot);
        x.slot = slot;
        unchecked {
            x.next = size + delta; // read only after the fill, whose own checked sum is this one
        }
        x.reducing = (size > 0 && delta < 0 && -delta <= size) || (size < 0 && delta > 0 && delta <= -size);
        if (x.reducing) {
            Account memory acc = _load(account);
            (int256 equity, uint256 maintenance,,) = _evaluate(account, acc, _ctxFor(acc), 0);
            x.surplus = equity - int256(maintenance);
        }
    }

    /// @dev The trade rule for one side of an option fill (ICrossMarginVault.settleOptionTrade), in `ctx` (the
    ///      margin words) with the prices of the side's own assets read as `_ctxFor` does, and what the fill `r` read
    ///      in this transaction instead of reading it again: the spot of the series' asset when the side holds
    ///      nothing else on it (an asset it holds is priced by the vault: the same oracle price) and the asset's
    ///      fresh volatility (what a strict read gives, and a lenient read of a fresh answer too).
    function _requireOptionSide(
        uint256 account,
        OptionSide memory before,
        bool increased,
        bool fillNoWorseThanMark,
        Ctx memory ctx,
        IOptionMarkets.FillResult memory r
    ) internal view {
        Account memory acc = _load(account);
        // No debt possible: a side left with no perpetual, no collateral token, no short option and a non-negative
        // settlement balance can never have negative equity (its cash plus long options, each worth >= 0), so, as a
        // long option needs only its premium at Deribit, it needs no margin check (docs/options.md, "Trading").
        // slither-disable-next-line incorrect-equality (empty bit masks: no perpetual, no collateral token)
        if (acc.markets == 0 && acc.collaterals == 0 && acc.settlement >= 0 && _longOnly(account, acc.options, before)) {
            return;
        }
        uint256[8] memory prices;
        ctx.prices = prices;
        (uint256 positionAssets, uint256 collateralAssets) = _assetMasks(acc, ctx.layout);
        _readPrices(positionAssets, collateralAssets, ctx);
        // slither-disable-next-line incorrect-equality (0: the side holds nothing on the series' asset)
        if (prices[r.asset] == 0) prices[r.asset] = r.spot;
        ctx.strict = increased;
        (int256 equity, uint256 maintenance, uint256 initial,) = _evaluate(account, acc, ctx, r.asset | (r.vol << 8));
        if (equity >= int256(initial)) return;
        if (
            before.reducing && fillNoWorseThanMark && (equity >= 0 || account == _fundAccount())
                && equity - int256(maintenance) > before.surplus
        ) {
            return;
        }
        revert InsufficientMargin(account, equity, initial);
    }

    /// @dev Whether every option position of `account` (series mask `mask`) is long; the size in the fill's slot is
    ///      `side.next` (what the fill stored there), the others are read.
    function _longOnly(uint256 account, uint256 mask, OptionSide memory side) internal view returns (bool) {
        for (; mask != 0; mask &= mask - 1) {
            uint256 slot = _lowestBit(mask);
            // slither-disable-next-line incorrect-equality (an identity check: the fill's slot)
            if ((slot == side.slot ? side.next : optionMarkets.sizeOf(account, slot)) < 0) return false;
        }
        return true;
    }

    /// @dev See ICrossMarginVault.
    // slither-disable-next-line reentrancy-no-eth (nonReentrant; the option registry is the admin's)
    function settleExpired(uint256 account, uint256[] calldata slots) external nonReentrant {
        IOptionMarkets om = optionMarkets;
        if (address(om) == address(0)) revert OptionsNotEnabled();
        Account memory acc = _load(account);
        (int256 cash, uint256 mask) = om.settleExpired(account, acc.options, slots);
        acc.options = uint32(mask);
        acc.settlement = (int256(acc.settlement) + cash).toInt128();
        _store(account, acc);
    }

    /// @dev See ICrossMarginVault.
    function optionsOf(uint256 account) external view returns (uint256) {
        return _accountOf(account).options;
    }

    /// @dev See ICrossMarginVault.
    function marginDetail(uint256 account) external view returns (MarginDetail memory d) {
        Account memory acc = _load(account);
        Ctx memory ctx = _ctxFor(acc);
        (d.equity,, d.funding) = _exposure(account, acc, ctx, d.delta, d.gross);
        if (acc.options != 0) {
            _optionExposure(account, acc, ctx, d.delta, d.options, 0);
            d.equity += d.options.value;
        }
        d.margin = PortfolioMargin.breakdown(d.delta, d.gross, _concentration(account, acc, ctx), d.options, ctx.cfg);
        for (uint256 m = acc.markets; m != 0; m &= m - 1) {
            uint256 market = _lowestBit(m);
            int256 value = PortfolioMargin.positionValueDown(
                _positionOf(account, market).size, ctx.prices[_marketAssetOf(ctx.layout, market)]
            );
            d.standard += Math.mulDiv(
                PortfolioMargin.abs(value), _marketWord(market).standardRate(), BPS, Math.Rounding.Ceil
            );
        }
    }

    /// @dev See ICrossMarginVault.
    function accountId(address owner, uint96 sub) external pure returns (uint256) {
        return _accountId(owner, sub);
    }

    /// @dev See ICrossMarginVault.
    function fundAccount() external view returns (uint256) {
        return _fundAccount();
    }

    /// @dev See ICrossMarginVault.
    function setOperator(address operator, bool approved) external {
        operators[msg.sender][operator] = approved;
        emit OperatorSet(msg.sender, operator, approved);
    }

    /// @dev See ICrossMarginVault.
    function isAuthorized(uint256 account, address caller) external view returns (bool) {
        return _isAuthorized(account, caller);
    }

    /// @dev See ICrossMarginVault.
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

    /// @dev See ICrossMarginVault.
    function setControl(uint256 word) external {
        if (msg.sender != address(riskParams)) revert NotAdmin(msg.sender);
        _pool = (_pool & ~uint256(type(uint56).max)) | (word & type(uint56).max);
    }

    /// @dev See ICrossMarginVault.
    function setMarginConfigPointer(address pointer) external {
        if (msg.sender != address(riskParams)) revert NotAdmin(msg.sender);
        marginConfigPointer = pointer;
        _publishSnapshot(_layout);
    }

    /// @dev See ICrossMarginVault.
    function listCollateral(address token, uint256 asset) external returns (uint256 id) {
        _requireAdmin();
        if (token == address(settlementToken) || _collateralIdPlusOne[token] != 0) revert AlreadyListed(token);
        if (asset >= RiskConfig.MAX_ASSETS) revert UnknownAsset(asset);
        uint256 layout = _layout;
        id = _numCollaterals(layout);
        if (id >= RiskConfig.MAX_COLLATERALS) revert ListingFull(id);
        uint256 dec = IERC20Metadata(token).decimals();
        if (dec > 31) revert UnknownToken(token);
        // slither-disable-next-line unused-return (called for its revert: the asset must have a valid price)
        oracle.price(asset);
        layout = (layout + (1 << 8)) | (asset << (80 + 4 * id)) | (dec << (144 + 5 * id));
        _layout = layout;
        _publishSnapshot(layout);
        _collateralTokens[id] = token;
        _collateralIdPlusOne[token] = id + 1;
        emit CollateralListed(id, token, asset, dec);
    }

    /// @dev See ICrossMarginVault.
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

    /// @dev See ICrossMarginVault.
    function setVenue(address venue, bool enabled) external {
        _requireAdmin();
        venues[venue] = enabled;
        emit VenueSet(venue, enabled);
    }

    /// @dev See ICrossMarginVault.
    function setFundOperator(address operator, bool approved) external {
        _requireAdmin();
        fundOperators[operator] = approved;
        emit OperatorSet(address(this), operator, approved);
    }

    /// @dev See ICrossMarginVault.
    function positionOf(uint256 account, uint256 market) external view returns (int256 size, int256 openNotional) {
        Position memory pos = _positionOf(account, market);
        return (pos.size, pos.openNotional);
    }

    /// @dev See ICrossMarginVault.
    function openInterest(uint256 market) external view returns (uint256) {
        return _books[market].openInterest;
    }

    /// @dev See ICrossMarginVault.
    function fundingBalance(uint256 market) external view returns (int256) {
        return _books[market].fundingBalance;
    }

    /// @dev See ICrossMarginVault.
    function marketFunding(uint256 market) public view returns (MarketFunding memory out) {
        Ctx memory ctx = _loadCtx();
        if (market >= _numMarkets(ctx.layout)) revert UnknownMarket(market);
        uint256 asset = _marketAssetOf(ctx.layout, market);
        uint256 price = oracle.price(asset);
        (Funding.Market memory fm, int256 rate) = _marketNow(market, price, asset, ctx);
        // the rate that applies from now on: the current state's, not the one of the interval just accrued
        rate = ctx.funding.fundingWindow() == 0
            ? int256(0)
            : Funding.rate(
                fm.premium, fm.weight, Funding.depthOf(_marketWord(market).maxOpenInterest(), price, ctx.funding), ctx.funding,
                ctx.cfg.global.riskWeight(asset)
            );
        out = MarketFunding(fm.longIndex, fm.shortIndex, fm.premium, fm.weight, rate, fm.updatedAt, fm.carry);
    }

    /// @dev See ICrossMarginVault.
    function fundingOf(uint256 account, uint256 market) external view returns (int256 accrued, int256 snapshot) {
        Position memory pos = _positionOf(account, market);
        snapshot = pos.funding;
        // slither-disable-next-line incorrect-equality (no position: nothing accrues)
        if (pos.size == 0) return (0, snapshot);
        MarketFunding memory m = marketFunding(market);
        accrued = Funding.accrued(
            pos.size, pos.funding, Funding.Market(m.longIndex, m.shortIndex, m.updatedAt, m.premium, m.weight, 0)
        );
    }

    /// @dev See ICrossMarginVault.
    function collateralOf(uint256 account, uint256 collateralId) external view returns (uint256) {
        return _collateral[account][collateralId];
    }

    /// @dev See ICrossMarginVault.
    function settlementOf(uint256 account) external view returns (int256) {
        return _load(account).settlement;
    }

    /// @dev See ICrossMarginVault.
    function storedSettlementOf(uint256 account) external view returns (int256) {
        Account memory acc = _accountOf(account);
        return acc.settlement > 0 && acc.epoch != _pool >> EPOCH_SHIFT ? int256(0) : int256(acc.settlement);
    }

    /// @dev See ICrossMarginVault.
    function settlementIndex() external view returns (uint256 index, uint256 totalShares) {
        uint256 pool = _pool;
        return (_index(pool), _totalShares(pool));
    }

    /// @dev See ICrossMarginVault.
    function controlWord() external view returns (uint256) {
        return _pool & type(uint56).max;
    }

    /// @dev See ICrossMarginVault.
    function masksOf(uint256 account) external view returns (uint256 markets, uint256 collaterals) {
        Account memory acc = _accountOf(account);
        return (acc.markets, acc.collaterals);
    }

    /// @dev See ICrossMarginVault.
    function marketAsset(uint256 market) external view returns (uint256) {
        uint256 layout = _layout;
        if (market >= _numMarkets(layout)) revert UnknownMarket(market);
        return _marketAssetOf(layout, market);
    }

    /// @dev See ICrossMarginVault.
    function collateralInfo(uint256 id) external view returns (address token, uint256 asset, uint256 decimals) {
        uint256 layout = _layout;
        if (id >= _numCollaterals(layout)) revert UnknownToken(address(0));
        return (_collateralTokens[id], _collateralAssetOf(layout, id), _collateralDecimalsOf(layout, id));
    }

    /// @dev See ICrossMarginVault.
    function numMarkets() external view returns (uint256) {
        return _numMarkets(_layout);
    }

    /// @dev See ICrossMarginVault.
    function numCollaterals() external view returns (uint256) {
        return _numCollaterals(_layout);
    }
}
