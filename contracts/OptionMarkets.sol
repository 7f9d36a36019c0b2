// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AggregatorV3Interface} from "@chainlink/contracts/src/v0.8/shared/interfaces/AggregatorV3Interface.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IOptionMarkets} from "./interfaces/IOptionMarkets.sol";
import {IOracleRouter} from "./interfaces/IOracleRouter.sol";
import {IRiskParameters} from "./interfaces/IRiskParameters.sol";
import {OptionMargin} from "./libraries/OptionMargin.sol";
import {OptionMath} from "./libraries/OptionMath.sol";
import {PortfolioMargin} from "./libraries/PortfolioMargin.sol";
import {RiskConfig} from "./libraries/RiskConfig.sol";

/// @title OptionMarkets
/// @notice See IOptionMarkets and docs/options.md.
contract OptionMarkets is IOptionMarkets {
    using RiskConfig for uint256;
    using SafeCast for uint256;
    using SafeCast for int256;

    uint256 public constant MAX_SERIES = 32;
    uint256 public constant MAX_SERIES_PER_ACCOUNT = 8;
    uint256 public constant MAX_EXPIRY = 400 days;
    uint256 internal constant WAD = 1e18;
    uint256 internal constant BPS = 1e4;
    /// @dev Where the expiry price starts in a series word.
    uint256 internal constant FIXING_SHIFT = 152;

    address public immutable vault;
    IOracleRouter public immutable oracle;
    IRiskParameters public immutable riskParams;

    /// @dev Per slot, one word: asset [0,8), isCall [8], listed [9], expiry [16,56), strike [56,152) (USD 1e18,
    ///      below 2^96 = 7.9e10 USD), the expiry price [152,256) (USD 1e18, below 2^104 = 2.0e13 USD; 0 until fixed).
    ///      A margin check reads one word per series (and the size), a settlement two (and the interest).
    uint256[32] internal _series;
    /// @dev Per slot: sum of long sizes [0,128), sum of |short sizes| [128,256).
    uint256[32] internal _interest;
    mapping(uint256 account => mapping(uint256 slot => int256)) internal _sizes;

    constructor(address vault_, IOracleRouter oracle_, IRiskParameters riskParams_) {
        vault = vault_;
        oracle = oracle_;
        riskParams = riskParams_;
    }

    modifier onlyVault() {
        if (msg.sender != vault) revert NotVault(msg.sender);
        _;
    }

    // ================================================================ listing and expiry
    /// @inheritdoc IOptionMarkets
    function listSeries(uint256 slot, uint256 asset, bool isCall, uint256 strike, uint256 expiry) external {
        if (!riskParams.hasRole(0x00, msg.sender)) revert NotAdmin(msg.sender);
        if (slot >= MAX_SERIES) revert BadSlot(slot);
        uint256 w = _series[slot];
        // slither-disable-next-line incorrect-equality (empty slot, or a fixed series with no position left)
        if (w & (1 << 9) != 0 && (w >> FIXING_SHIFT == 0 || _interest[slot] != 0)) revert SlotInUse(slot);
        uint256 spot = asset < 8 ? oracle.price(asset) : 0;
        if (
            asset >= 8 || expiry <= block.timestamp || expiry > block.timestamp + MAX_EXPIRY || strike < spot / 16
                || strike > spot * 16 || strike >> 96 != 0
        ) revert BadSeries(asset, strike, expiry, spot);
        // slither-disable-next-line unused-return (called for its revert: a volatility feed must answer within bounds)
        oracle.vols(1 << asset, true);
        _series[slot] = asset | (isCall ? 1 << 8 : 0) | (1 << 9) | (expiry << 16) | (strike << 56);
        emit SeriesListed(slot, asset, isCall, strike, expiry);
    }

    /// @inheritdoc IOptionMarkets
    function fixExpiry(uint256 slot, uint80 roundId) external {
        Series memory s = series(slot);
        if (!s.listed) revert BadSlot(slot);
        if (block.timestamp < s.expiry) revert NotExpired(slot, s.expiry, block.timestamp);
        if (s.fixedPrice != 0) revert AlreadyFixed(slot, s.fixedPrice);
        // slither-disable-next-line unused-return (the max age does not apply to a past round)
        (address feed, uint8 decimals,) = oracle.feedOf(s.asset);
        // slither-disable-next-line unused-return (a round is identified by its id; answer and time are what count)
        (, int256 answer,, uint256 updatedAt,) = AggregatorV3Interface(feed).getRoundData(roundId);
        uint256 previous;
        // the previous round of the same phase (the low 64 bits of a Chainlink round id count within a phase)
        // slither-disable-next-line unused-return (only the previous round's time proves which round is the first)
        if (uint64(roundId) > 1) (,,, previous,) = AggregatorV3Interface(feed).getRoundData(roundId - 1);
        if (uint64(roundId) <= 1 || updatedAt < s.expiry || previous >= s.expiry || answer <= 0) {
            revert BadExpiryRound(slot, roundId, updatedAt, previous);
        }
        uint256 price = decimals <= 18 ? uint256(answer) * 10 ** (18 - decimals) : uint256(answer) / 10 ** (decimals - 18);
        // slither-disable-next-line incorrect-equality (a positive answer that normalises to nothing is no price)
        if (price == 0 || price >> 104 != 0) revert BadExpiryRound(slot, roundId, updatedAt, previous);
        _series[slot] |= price << FIXING_SHIFT;
        emit ExpiryFixed(slot, price, roundId);
    }

    // ================================================================ views
    /// @inheritdoc IOptionMarkets
    function series(uint256 slot) public view returns (Series memory s) {
        if (slot >= MAX_SERIES) revert BadSlot(slot);
        uint256 w = _series[slot];
        uint256 i = _interest[slot];
        s = Series(
            w & 0xff, (w >> 8) & 1 != 0, uint96(w >> 56), uint40(w >> 16), w >> FIXING_SHIFT, uint128(i), i >> 128,
            (w >> 9) & 1 != 0
        );
    }

    /// @inheritdoc IOptionMarkets
    function sizeOf(uint256 account, uint256 slot) external view returns (int256) {
        return _sizes[account][slot];
    }

    /// @inheritdoc IOptionMarkets
    function mark(uint256 slot) external view returns (uint256) {
        Series memory s = series(slot);
        if (!s.listed) revert BadSlot(slot);
        if (s.fixedPrice != 0) return OptionMargin.payoff(s.isCall, s.strike, s.fixedPrice);
        uint256 spot = oracle.price(s.asset);
        return _mark(s, spot, oracle.vols(1 << s.asset, false)[s.asset], riskParams.optionWord());
    }

    /// @inheritdoc IOptionMarkets
    function shortLiability(uint256 account, uint256 mask, uint256[8] calldata prices, uint256 options)
        external
        view
        returns (uint256 owed)
    {
        // slither-disable-next-line incorrect-equality (0: the vault did not pass the OPTION word on)
        if (options == 0) options = riskParams.optionWord();
        for (; mask != 0; mask &= mask - 1) {
            uint256 slot = _lowestBit(mask);
            int256 size = _sizes[account][slot];
            if (size >= 0) continue;
            Series memory s = series(slot);
            uint256 spot = s.fixedPrice;
            // slither-disable-next-line incorrect-equality (0: not fixed yet; then 0: the vault did not price it)
            if (spot == 0) spot = prices[s.asset] != 0 ? prices[s.asset] : oracle.lastPrice(s.asset);
            // slither-disable-next-line incorrect-equality (0: not fixed; a price of 0 (no answer))
            uint256 unit = s.fixedPrice != 0 || spot == 0
                ? OptionMargin.payoff(s.isCall, s.strike, spot)
                : _mark(s, spot, oracle.vols(1 << s.asset, false)[s.asset], options);
            owed += uint256(-PortfolioMargin.positionValueDown(size, unit));
        }
    }

    /// @inheritdoc IOptionMarkets
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
    ) external view returns (OptionMargin.Risk memory) {
        OptionMargin.Inputs memory in_;
        in_.prices = prices;
        in_.delta = delta;
        in_.global = global;
        in_.stress = stress;
        in_.time = block.timestamp;
        (OptionMargin.Position[] memory ps, uint256 live) = _positionsOf(account, mask);
        if (live != 0) {
            uint256 missing;
            for (uint256 a; a < 8; ++a) {
                // slither-disable-next-line incorrect-equality (0: the vault did not price this asset)
                if ((live >> a) & 1 != 0 && prices[a] == 0) missing |= 1 << a;
            }
            if (missing != 0) {
                uint256[8] memory more = oracle.prices(missing);
                for (uint256 a; a < 8; ++a) {
                    if ((missing >> a) & 1 != 0) in_.prices[a] = more[a];
                }
            }
            // slither-disable-next-line incorrect-equality (0: no volatility passed on)
            if (fillVol == 0) {
                in_.vols = oracle.vols(live, strict);
            } else {
                uint256 a = fillVol & 0xff;
                uint256 unread = live & ~(uint256(1) << a);
                if (unread != 0) in_.vols = oracle.vols(unread, strict);
                in_.vols[a] = fillVol >> 8;
            }
            // slither-disable-next-line incorrect-equality (0: the OPTION word not passed on)
            in_.options = options == 0 ? riskParams.optionWord() : options;
        }
        _returnRisk(OptionMargin.risk(ps, in_));
    }

    /// @dev Ends the call returning `r`, ABI-encoded (a static struct: its 29 words in order) without the encoder's
    ///      per-element passes; its two arrays are copied by the identity precompile (cheaper than a loop).
    function _returnRisk(OptionMargin.Risk memory r) private view {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, mload(r)) // value
            mstore(add(m, 0x20), mload(add(r, 0x20))) // notional
            let copied := staticcall(gas(), 4, mload(add(r, 0x40)), 0x100, add(m, 0x40), 0x100) // ws
            mstore(add(m, 0x140), mload(add(r, 0x60))) // curvature
            mstore(add(m, 0x160), mload(add(r, 0x80))) // shortMinimum
            copied := and(copied, staticcall(gas(), 4, mload(add(r, 0xa0)), 0x200, add(m, 0x180), 0x200)) // stress
            if iszero(copied) { revert(0, 0) }
            mstore(add(m, 0x380), mload(add(r, 0xc0))) // assets
            return(m, 0x3a0)
        }
    }

    /// @dev The positions of `account` in the slots of `mask`, and the mask of assets with live ones.
    function _positionsOf(uint256 account, uint256 mask)
        internal
        view
        returns (OptionMargin.Position[] memory ps, uint256 live)
    {
        ps = new OptionMargin.Position[](_popcount(mask));
        uint256 i;
        for (uint256 m = mask; m != 0; m &= m - 1) {
            uint256 slot = _lowestBit(m);
            uint256 w = _series[slot]; // the series word alone: no interest needed here
            uint256 asset = w & 0xff;
            uint256 fixedPrice = w >> FIXING_SHIFT;
            ps[i++] = OptionMargin.Position(
                asset, (w >> 8) & 1 != 0, uint96(w >> 56), uint40(w >> 16), fixedPrice, _sizes[account][slot]
            );
            if (fixedPrice == 0) live |= 1 << asset;
        }
    }

    // ================================================================ the vault only
    /// @inheritdoc IOptionMarkets
    function applyFill(Fill calldata f, uint256 fund) external onlyVault returns (FillResult memory r) {
        Series memory s = series(f.slot);
        if (!s.listed || s.fixedPrice != 0 || block.timestamp >= s.expiry) {
            revert SeriesNotLive(f.slot, s.expiry, block.timestamp);
        }
        // slither-disable-next-line incorrect-equality (0: the vault did not pass the OPTION word on)
        uint256 o = f.options == 0 ? riskParams.optionWord() : f.options;
        if (o.gridSteps() == 0) revert OptionsNotConfigured();
        r.asset = s.asset;
        r.spot = oracle.price(s.asset);
        r.vol = oracle.vols(1 << s.asset, true)[s.asset];
        r.mark = _mark(s, r.spot, r.vol, o);
        uint256 dist = f.price > r.mark ? f.price - r.mark : r.mark - f.price;
        if (dist * BPS > r.spot * o.optionBand()) {
            revert OptionPriceOutsideBand(f.slot, f.price, r.mark, o.optionBand());
        }
        (int256 longChange, int256 shortChange) = _applySides(f, fund, r);
        uint256 longs = _updateInterest(f.slot, longChange, shortChange);
        uint256 cap = o.optionMaxOpenInterest() * WAD;
        if (longChange > 0 && longs * r.spot / WAD > cap) {
            revert OptionOpenInterestTooLarge(f.slot, longs * r.spot / WAD, cap);
        }
        emit OptionTrade(f.buyer, f.seller, f.slot, f.size, f.price, r.mark);
    }

    /// @dev Both sides' positions of a fill; returns the change of long and short interest.
    function _applySides(Fill calldata f, uint256 fund, FillResult memory r)
        internal
        returns (int256 longChange, int256 shortChange)
    {
        int256 size = f.size.toInt256();
        (int256 lb, int256 sb) = _sideChange(_sizes[f.buyer][f.slot], size);
        (int256 ls, int256 ss) = _sideChange(_sizes[f.seller][f.slot], -size);
        (r.buyerMask, r.buyerIncreased) = _move(f.buyer, f.buyerMask, f.slot, size, fund);
        (r.sellerMask, r.sellerIncreased) = _move(f.seller, f.sellerMask, f.slot, -size, fund);
        return (lb + ls, sb + ss);
    }

    /// @inheritdoc IOptionMarkets
    function takeOver(
        uint256 account,
        uint256 fund,
        uint256 mask,
        uint256 fundMask,
        uint256 slot,
        uint256 amount,
        uint256[8] calldata prices,
        uint256 options
    ) external onlyVault returns (int256 value, uint256 notional, uint256 newMask, uint256 newFundMask, uint256 asset) {
        int256 moved;
        (value, notional, moved, asset) = _priceTake(account, mask, slot, amount, prices, options);
        (newMask, newFundMask) = _handOver(account, fund, mask, fundMask, slot, moved);
    }

    /// @dev Moves `moved` of `slot` from `account` to `fund`: the interest change (before the positions change),
    ///      then both positions; returns both new masks.
    function _handOver(uint256 account, uint256 fund, uint256 mask, uint256 fundMask, uint256 slot, int256 moved)
        internal
        returns (uint256 newMask, uint256 newFundMask)
    {
        (int256 la, int256 sa) = _sideChange(_sizes[account][slot], -moved);
        (int256 lf, int256 sf) = _sideChange(_sizes[fund][slot], moved);
        _updateInterest(slot, la + lf, sa + sf);
        (newMask,) = _move(account, mask, slot, -moved, fund);
        (newFundMask,) = _move(fund, fundMask, slot, moved, fund);
    }

    /// @dev Checks a liquidation item and prices it: the signed size moved, its value at the mark (the volatility
    ///      feed's last answer), the notional taken and the series' asset.
    function _priceTake(
        uint256 account,
        uint256 mask,
        uint256 slot,
        uint256 amount,
        uint256[8] calldata prices,
        uint256 options
    ) internal view returns (int256 value, uint256 notional, int256 moved, uint256 asset) {
        Series memory s = series(slot);
        int256 size = _sizes[account][slot];
        if ((mask >> slot) & 1 == 0 || s.fixedPrice != 0 || amount == 0 || amount > PortfolioMargin.abs(size)) {
            revert BadOptionItem(account, slot, amount);
        }
        uint256 price = prices[s.asset];
        // slither-disable-next-line incorrect-equality (0: the vault did not price this asset)
        if (price == 0) price = oracle.price(s.asset);
        moved = size > 0 ? amount.toInt256() : -amount.toInt256();
        // slither-disable-next-line incorrect-equality (0: the vault did not pass the OPTION word on)
        if (options == 0) options = riskParams.optionWord();
        uint256 unit = _mark(s, price, oracle.vols(1 << s.asset, false)[s.asset], options);
        value = PortfolioMargin.positionValueDown(moved, unit);
        notional = amount * price / WAD;
        asset = s.asset;
    }

    /// @inheritdoc IOptionMarkets
    function settleExpired(uint256 account, uint256 mask, uint256[] calldata slots)
        external
        onlyVault
        returns (int256 cash, uint256 newMask)
    {
        newMask = mask;
        for (uint256 k; k < slots.length; ++k) {
            uint256 slot = slots[k];
            if (slot >= MAX_SERIES || (newMask >> slot) & 1 == 0) revert BadSlot(slot);
            uint256 w = _series[slot]; // the series word alone: the interest is read once, by `_updateInterest`
            uint256 fixedPrice = w >> FIXING_SHIFT;
            if (fixedPrice == 0) revert NotFixed(slot);
            int256 size = _sizes[account][slot];
            uint256 unit = OptionMargin.payoff((w >> 8) & 1 != 0, uint96(w >> 56), fixedPrice);
            cash += PortfolioMargin.positionValueDown(size, unit);
            (int256 l, int256 sh) = _sideChange(size, -size);
            _updateInterest(slot, l, sh);
            delete _sizes[account][slot];
            newMask &= ~(uint256(1) << slot);
            emit OptionPositionUpdated(account, slot, 0);
        }
    }

    // ================================================================ internals
    /// @dev The model mark per unit at `spot` and volatility `vol` (OracleRouter.vols: fresh for a fill, the feed's
    ///      last answer otherwise), with the skew of the OPTION word `o`.
    function _mark(Series memory s, uint256 spot, uint256 vol, uint256 o) internal view returns (uint256) {
        return OptionMargin.unitPrice(
            s.isCall,
            spot,
            s.strike,
            OptionMath.lnWad(spot),
            OptionMath.lnWad(s.strike),
            vol,
            o.skew(s.asset),
            OptionMargin.sqrtYears(s.expiry, block.timestamp)
        );
    }

    /// @dev Adds `delta` to `account`'s position in `slot`; returns its new mask and whether the position grew or
    ///      flipped. Enforces the series limit (not for the fund).
    function _move(uint256 account, uint256 mask, uint256 slot, int256 delta, uint256 fund)
        internal
        returns (uint256 newMask, bool increased)
    {
        int256 size = _sizes[account][slot];
        int256 next = size + delta;
        increased = (size >= 0 && delta > 0) || (size <= 0 && delta < 0);
        _sizes[account][slot] = next.toInt128();
        // slither-disable-next-line incorrect-equality (a closed position: exactly zero size, not a balance threshold)
        newMask = next == 0 ? mask & ~(uint256(1) << slot) : mask | (uint256(1) << slot);
        if (account != fund && next != 0 && size == 0 && _popcount(newMask) > MAX_SERIES_PER_ACCOUNT) {
            revert TooManySeries(account, _popcount(newMask));
        }
        emit OptionPositionUpdated(account, slot, next);
    }

    /// @dev The change of long and short interest when a position of size `before` changes by `delta`.
    function _sideChange(int256 before, int256 delta) internal pure returns (int256 longChange, int256 shortChange) {
        int256 next = before + delta;
        longChange = (next > 0 ? next : int256(0)) - (before > 0 ? before : int256(0));
        shortChange = (next < 0 ? -next : int256(0)) - (before < 0 ? -before : int256(0));
    }

    /// @dev Applies interest changes; returns the new long interest.
    function _updateInterest(uint256 slot, int256 longChange, int256 shortChange) internal returns (uint256 longs) {
        uint256 i = _interest[slot];
        longs = uint256(int256(uint256(uint128(i))) + longChange);
        uint256 shorts = uint256(int256(i >> 128) + shortChange);
        _interest[slot] = longs.toUint128() | (uint256(shorts.toUint128()) << 128);
    }

    function _popcount(uint256 x) internal pure returns (uint256 c) {
        for (; x != 0; x &= x - 1) {
            ++c;
        }
    }

    function _lowestBit(uint256 x) internal pure returns (uint256 i) {
        while ((x >> i) & 1 == 0) {
            ++i;
        }
    }
}
