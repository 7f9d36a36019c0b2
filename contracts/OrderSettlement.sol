// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IOrderSettlement} from "./interfaces/IOrderSettlement.sol";
import {ICrossMarginVault} from "./interfaces/ICrossMarginVault.sol";
import {IRiskParameters} from "./interfaces/IRiskParameters.sol";

/// @title OrderSettlement
/// @notice See IOrderSettlement.
contract OrderSettlement is IOrderSettlement, EIP712 {
    bytes32 public constant ORDER_TYPEHASH = keccak256(
        "Order(uint256 account,uint256 market,bool isBuy,uint256 size,uint256 limitPrice,uint256 expiry,uint256 nonce)"
    );
    uint256 public constant MAX_FEE_BPS = 100;

    ICrossMarginVault public immutable vault;
    IRiskParameters public immutable riskParams;
    /// @dev The fee rates, both in one slot (one storage read per settlement): maker [0,128), taker [128,256).
    uint256 internal _fees;
    /// @dev Base units filled of an order filled in parts (type(uint256).max once cancelled); 0 for an order filled
    ///      whole in one settlement, which only sets its nonce's bit (see `filledOf`).
    mapping(bytes32 orderHash => uint256) public filled;
    mapping(uint256 account => uint256) public minNonce;
    /// @dev Bit `nonce % 256` of word `nonce / 256`: the account's order with that nonce was filled (whole or in part)
    ///      or cancelled. An order filled whole at its first settlement writes only this bit: a set bit in a word that
    ///      already holds one costs 2,900 gas where a fill record of its own costs 20,000.
    mapping(uint256 account => mapping(uint256 word => uint256 bits)) public nonceBitmap;

    constructor(ICrossMarginVault vault_, IRiskParameters riskParams_, uint256 makerFeeBps_, uint256 takerFeeBps_)
        EIP712("xmargin OrderSettlement", "1")
    {
        vault = vault_;
        riskParams = riskParams_;
        _setFees(makerFeeBps_, takerFeeBps_);
    }

    /// @notice The maker fee rate, bps.
    function makerFeeBps() external view returns (uint256) {
        return uint128(_fees);
    }

    /// @notice The taker fee rate, bps.
    function takerFeeBps() external view returns (uint256) {
        return _fees >> 128;
    }

    /// @inheritdoc IOrderSettlement
    function hashOrder(Order calldata o) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(ORDER_TYPEHASH, o.account, o.market, o.isBuy, o.size, o.limitPrice, o.expiry, o.nonce))
        );
    }

    /// @inheritdoc IOrderSettlement
    function settle(Order calldata maker, bytes calldata makerSig, Order calldata taker, bytes calldata takerSig, uint256 fill)
        external
    {
        if (fill == 0) revert ZeroFill();
        bytes32 mh = _consume(maker, makerSig, fill);
        bytes32 th = _consume(taker, takerSig, fill);
        if (maker.market != taker.market || maker.isBuy == taker.isBuy) revert OrdersDoNotMatch(mh, th);
        if (taker.isBuy ? maker.limitPrice > taker.limitPrice : maker.limitPrice < taker.limitPrice) {
            revert LimitPriceNotMet(th, maker.limitPrice, taker.limitPrice);
        }
        _execute(maker, taker, fill);
    }

    /// @notice Instruments from this id up are option series: `market = OPTION_BASE + slot` (the price is the premium).
    uint256 public constant OPTION_BASE = 256;

    /// @dev Fees (rounded up, on size * price: the premium for options) and the vault call, at the maker's price.
    function _execute(Order calldata maker, Order calldata taker, uint256 fill) internal {
        uint256 price = maker.limitPrice;
        uint256 notional = Math.mulDiv(fill, price, 1e18, Math.Rounding.Ceil);
        uint256 makerFee = Math.mulDiv(notional, uint128(_fees), 1e4, Math.Rounding.Ceil);
        uint256 takerFee = Math.mulDiv(notional, _fees >> 128, 1e4, Math.Rounding.Ceil); // the slot is warm
        (uint256 buyer, uint256 seller, uint256 buyerFee, uint256 sellerFee) = maker.isBuy
            ? (maker.account, taker.account, makerFee, takerFee)
            : (taker.account, maker.account, takerFee, makerFee);
        if (maker.market < OPTION_BASE) vault.settleTrade(buyer, seller, maker.market, fill, price, buyerFee, sellerFee);
        else vault.settleOptionTrade(buyer, seller, maker.market - OPTION_BASE, fill, price, buyerFee, sellerFee);
    }

    /// @dev Checks expiry, nonce floor, nonce use, cancellation, signer and remaining size; records the fill: the
    ///      nonce's bit at the order's first fill, and the filled amount in `filled` unless that first fill is whole.
    function _consume(Order calldata o, bytes calldata sig, uint256 fill) internal returns (bytes32 h) {
        h = hashOrder(o);
        if (block.timestamp > o.expiry) revert OrderExpired(h, o.expiry, block.timestamp);
        if (o.nonce < minNonce[o.account]) revert OrderCancelled(h);
        mapping(uint256 => uint256) storage bitmap = nonceBitmap[o.account];
        uint256 bits = bitmap[o.nonce >> 8];
        uint256 bit = 1 << (o.nonce & 0xff);
        uint256 done;
        if (bits & bit == 0) {
            bitmap[o.nonce >> 8] = bits | bit; // the nonce's first use: no fill record can exist yet
        } else {
            done = filled[h];
            if (done == type(uint256).max) revert OrderCancelled(h);
            if (done == 0) revert NonceUsed(o.account, o.nonce); // filled whole at once, or by another order
        }
        address signer = ECDSA.recover(h, sig);
        if (!_signedByAuthorized(o.account, signer)) revert BadSigner(o.account, signer);
        if (done + fill > o.size) revert OrderOverfilled(h, done, fill, o.size);
        if (done + fill != o.size || done != 0) filled[h] = done + fill; // a whole first fill needs only the bit
        emit OrderFilled(h, o.account, fill, done + fill);
    }

    /// @inheritdoc IOrderSettlement
    function filledOf(Order calldata o) external view returns (uint256) {
        bytes32 h = hashOrder(o);
        if (o.nonce < minNonce[o.account]) return type(uint256).max;
        uint256 done = filled[h];
        if (done != 0) return done;
        bool used = nonceBitmap[o.account][o.nonce >> 8] & (1 << (o.nonce & 0xff)) != 0;
        return used ? o.size : 0;
    }

    /// @dev `vault.isAuthorized(account, signer)`, without the call when `signer` owns the account: an account id is
    ///      its owner's address shifted up 96 bits (ICrossMarginVault.accountId), and the owner of any account but the
    ///      fund (the vault's own) is authorized.
    function _signedByAuthorized(uint256 account, address signer) internal view returns (bool) {
        address owner = address(uint160(account >> 96));
        return (signer == owner && owner != address(vault)) || vault.isAuthorized(account, signer);
    }

    /// @inheritdoc IOrderSettlement
    function cancel(Order calldata o) external {
        if (!vault.isAuthorized(o.account, msg.sender)) revert BadSigner(o.account, msg.sender);
        bytes32 h = hashOrder(o);
        nonceBitmap[o.account][o.nonce >> 8] |= 1 << (o.nonce & 0xff);
        filled[h] = type(uint256).max;
        emit OrderCancel(h, o.account);
    }

    /// @inheritdoc IOrderSettlement
    function cancelAllBefore(uint256 account, uint256 minNonce_) external {
        if (!vault.isAuthorized(account, msg.sender)) revert BadSigner(account, msg.sender);
        if (minNonce_ > minNonce[account]) {
            minNonce[account] = minNonce_;
            emit NonceFloorSet(account, minNonce_);
        }
    }

    /// @inheritdoc IOrderSettlement
    function setFees(uint256 makerBps, uint256 takerBps) external {
        if (!riskParams.hasRole(0x00, msg.sender)) revert NotAdmin(msg.sender);
        _setFees(makerBps, takerBps);
    }

    function _setFees(uint256 makerBps, uint256 takerBps) internal {
        if (makerBps > MAX_FEE_BPS) revert FeeTooHigh(makerBps, MAX_FEE_BPS);
        if (takerBps > MAX_FEE_BPS) revert FeeTooHigh(takerBps, MAX_FEE_BPS);
        _fees = makerBps | (takerBps << 128); // each at most MAX_FEE_BPS
        emit FeesSet(makerBps, takerBps);
    }
}
