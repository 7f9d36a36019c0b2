// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {RiskConfig} from "./RiskConfig.sol";
import {PortfolioMargin} from "./PortfolioMargin.sol";

/// @title Funding — the funding rule of ICrossMarginVault ("Funding"), as pure functions on a market's state.
/// @notice Units. Indices are in nano-USD per unit of size (1e-9 USD per 1e18 base units); a market keeps the part of
///         its accrual below one nano-USD in `carry` (USD 1e18 per unit, 0 <= carry < 1e9), so slow rates on cheap
///         assets accrue exactly over time. `premium` is in millionths of the oracle price; `weight` is the decayed
///         fee mass of the fills behind it, in units of 1e-4 USD. Rates are 1e18 fixed point per second.
library Funding {
    using RiskConfig for uint256;

    /// @dev USD 1e18 per index unit (one nano-USD per unit of size).
    int256 internal constant INDEX_UNIT = 1e9;
    /// @dev USD 1e18 per weight unit (1e-4 USD).
    uint256 internal constant WEIGHT_UNIT = 1e14;
    uint256 internal constant MAX_WEIGHT = (1 << 40) - 1;

    /// @notice A market's funding state (memory form of the vault's packed slot).
    /// @notice An index would leave the int64 it is stored in (nano-USD per unit: +-9.2e9 USD per unit).
    error IndexOutOfRange();

    struct Market {
        int256 longIndex; // index of long positions (funding, and deleveraging charges on longs)
        int256 shortIndex; // index of short positions (funding, and deleveraging charges on shorts)
        uint256 updatedAt; // timestamp of the last advance (0: never touched)
        int256 premium; // fee-weighted premium of the fills in the window, millionths of price
        uint256 weight; // decayed fee mass behind `premium`, 1e-4 USD
        uint256 carry; // accrual below one index unit, USD 1e18 per unit, [0, 1e9)
    }

    /// @notice The packed form of `m` (one storage word): longIndex [0,64), shortIndex [64,128), updatedAt
    ///         [128,160), premium [160,184), weight [184,224), carry [224,256). Reverts if an index leaves int64.
    function pack(Market memory m) internal pure returns (uint256) {
        if (m.longIndex != int64(m.longIndex) || m.shortIndex != int64(m.shortIndex)) revert IndexOutOfRange();
        return uint256(uint64(int64(m.longIndex))) | (uint256(uint64(int64(m.shortIndex))) << 64)
            | (m.updatedAt << 128) | (uint256(uint24(int24(m.premium))) << 160) | (m.weight << 184) | (m.carry << 224);
    }

    function unpack(uint256 w) internal pure returns (Market memory) {
        return Market(
            int64(uint64(w)),
            int64(uint64(w >> 64)),
            uint32(w >> 128),
            int24(uint24(w >> 160)),
            uint40(w >> 184),
            uint32(w >> 224)
        );
    }

    /// @notice The stored index a position of `size` uses (its side's), from the packed word.
    function storedIndex(uint256 w, int256 size) internal pure returns (int256) {
        return size > 0 ? int64(uint64(w)) : int64(uint64(w >> 64));
    }

    /// @notice True when the packed state's indices are the same at `nowTs` as stored: advanced this second, never
    ///         touched, funding off, or a rate of zero whatever the elapsed time (no premium and no interest term).
    function still(uint256 w, uint256 word, uint256 nowTs) internal pure returns (bool) {
        uint256 updatedAt = uint32(w >> 128);
        return updatedAt == nowTs || updatedAt == 0 || word.fundingWindow() == 0
            || (uint24(w >> 160) == 0 && word.interestRate() == 0);
    }

    /// @notice `weight` after `dt` seconds: weight / (1 + x + x^2 / 2), x = dt / window, rounded down. Two short
    ///         decays take more than one long one (the denominators multiply to more than 1 + x + x^2/2), so touching a
    ///         market often never keeps a premium alive longer, and the weight left after a fill integrates over
    ///         all later time to at most pi/2 * window * weight.
    function decay(uint256 weight, uint256 dt, uint256 window) internal pure returns (uint256) {
        uint256 x = dt * 1e18 / window; // dt < 2^32, window >= 60: x < 2^88, x * x < 2^176
        // slither-disable-next-line divide-before-multiply (x is dt / window in 1e18 fixed point: 1e-18 of rounding)
        return weight * 1e18 / (1e18 + x + x * x / 2e18); // weight < 2^40
    }

    /// @notice The funding rate per second (1e18), longs paying when positive: premium * weight / (weight + depth)
    ///         spread over the funding period, plus the interest term, clamped to +-min(max rate, clamp * risk weight)
    ///         per hour. `depth` is the premium depth in weight units.
    function rate(int256 premium, uint256 weight, uint256 depth, uint256 word, uint256 riskWeightBps)
        internal
        pure
        returns (int256 r)
    {
        if (weight != 0) {
            int256 p = premium * 1e12 * int256(weight) / int256(weight + depth);
            r = p / int256(word.fundingPeriod());
        }
        r += word.interestRate() * 1e12 / 3600;
        uint256 capHour = Math.min(word.maxFundingRate() * 1e12, word.fundingClamp() * riskWeightBps * 1e10);
        int256 cap = int256(capHour / 3600);
        if (r > cap) r = cap;
        else if (r < -cap) r = -cap;
    }

    /// @notice The premium depth, in weight units, of a market with open-interest cap `maxOpenInterest` (base 1e18)
    ///         at `price`: the cap, not the open interest of the moment, so a view needs no storage read for it and
    ///         the bound holds for any position (a side never exceeds the cap).
    function depthOf(uint256 maxOpenInterest, uint256 price, uint256 word) internal pure returns (uint256) {
        return maxOpenInterest * price * word.premiumDepth() / 1e36; // < 2^96 * 2^128 * 2^16
    }

    /// @notice Advances `m` to `nowTs`: the weight decays over the interval and the rate at its end (the lowest over
    ///         the interval) applies to all of it; both indices move by rate * dt * price. Returns the rate applied.
    ///         The first touch of a market only starts its clock; with funding off (a zero window) nothing accrues.
    function advance(Market memory m, uint256 nowTs, uint256 word, uint256 maxOpenInterest, uint256 price, uint256 rw)
        internal
        pure
        returns (int256 r)
    {
        uint256 dt = nowTs - m.updatedAt;
        // slither-disable-next-line incorrect-equality (the same second: nothing to advance)
        if (dt == 0) return 0;
        bool fresh = m.updatedAt == 0;
        m.updatedAt = nowTs;
        uint256 window = word.fundingWindow();
        // slither-disable-next-line incorrect-equality (funding off, or the first touch)
        if (window == 0 || fresh) {
            if (window == 0) (m.premium, m.weight) = (0, 0);
            return 0;
        }
        m.weight = decay(m.weight, dt, window);
        r = rate(m.premium, m.weight, depthOf(maxOpenInterest, price, word), word, rw);
        // slither-disable-next-line incorrect-equality (a zero rate moves nothing)
        if (r == 0) return 0;
        uint256 magnitude = uint256(r > 0 ? r : -r) * dt * price / 1e18; // |r| < 2^60, dt < 2^32, price < 2^128
        int256 total = (r > 0 ? int256(magnitude) : -int256(magnitude)) + int256(m.carry);
        int256 q = PortfolioMargin.floorDiv(total, INDEX_UNIT);
        m.carry = uint256(total - q * INDEX_UNIT);
        m.longIndex += q;
        m.shortIndex += q;
    }

    /// @notice Adds a fill at `fillPrice` against `oraclePrice` that paid `fees` (USD 1e18) to the premium: its
    ///         premium, capped at +-premiumCap, weighs by the fees paid (a fill paying no fee moves nothing).
    function addFill(Market memory m, uint256 fillPrice, uint256 oraclePrice, uint256 fees, uint256 word)
        internal
        pure
    {
        uint256 feeWeight = fees / WEIGHT_UNIT;
        // slither-disable-next-line incorrect-equality (funding off, or a fill too small to count)
        if (word.fundingWindow() == 0 || feeWeight == 0) return;
        int256 p = (int256(fillPrice) - int256(oraclePrice)) * 1e6 / int256(oraclePrice);
        int256 cap = int256(word.premiumCap()) * 100;
        if (p > cap) p = cap;
        else if (p < -cap) p = -cap;
        uint256 total = m.weight + feeWeight;
        // slither-disable-next-line divide-before-multiply (p is a premium in millionths, as stored; the mean weighs it)
        m.premium = (m.premium * int256(m.weight) + p * int256(feeWeight)) / int256(total);
        m.weight = Math.min(total, MAX_WEIGHT);
    }

    /// @notice Funding a position of `size` with index snapshot `snapshot` has accrued (USD 1e18, + received),
    ///         rounded down: a payer pays the wei a receiver does not get.
    function accrued(int256 size, int256 snapshot, Market memory m) internal pure returns (int256) {
        return accruedAt(size, snapshot, size > 0 ? m.longIndex : m.shortIndex);
    }

    /// @notice Funding a position of `size` with index snapshot `snapshot` has accrued at its side's `index`.
    function accruedAt(int256 size, int256 snapshot, int256 index) internal pure returns (int256) {
        // slither-disable-next-line incorrect-equality (settled at this index: nothing accrued)
        if (index == snapshot) return 0;
        return PortfolioMargin.floorDiv(-size * (index - snapshot), INDEX_UNIT);
    }
}
