// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IOrderSettlement — settles EIP-712 signed orders matched off-chain.
/// @notice Maker and taker each sign an `Order` (EIP-712, domain "xmargin OrderSettlement" version "1", this chain
///         id and this contract), by the account's owner or one of its operators. Anyone may submit a matched pair.
///         The fill price is the maker's limit price; it must satisfy the taker's limit, and the vault checks it lies
///         within the price band around the oracle price. Orders fill partially. Fees are charged on the fill notional
///         (maker and taker rates, rounded up) and paid to the insurance fund.
///         Nonces: a nonce names one order of an account (each subaccount has its own; its owner and operators share
///         it). The order's first fill (whole or in part) or its cancellation uses the nonce (`nonceBitmap`), and any
///         other order of the account signed with the same nonce can then never fill (`NonceUsed`): a second order
///         under a nonce does not replace the first (whichever fills first wins); to replace an order, `cancel` it and
///         sign the new one under a new nonce. An order filled whole at its first settlement is recorded by its bit
///         alone, one filled in parts also in `filled` (base units per order hash); `filledOf` reads both, and fill
///         volumes are in the `OrderFilled` events. `cancel` voids one order (even half-filled) and every unfilled
///         order under its nonce; `cancelAllBefore` voids every order of an account with a lower nonce. Nonces that
///         follow each other share a word (256 to a word): the first of a word creates it (20,000 gas), the others set
///         a bit in it (2,900).
///         Signatures: ECDSA with the low-s rule (malleable signatures are rejected); replay on another chain or venue
///         fails because the domain binds both.
interface IOrderSettlement {
    struct Order {
        uint256 account; //    vault account id
        uint256 market; //     vault market id, or 256 + option series slot
        bool isBuy;
        uint256 size; //       base units 1e18 (> 0)
        uint256 limitPrice; // USD 1e18: the most a buyer pays, the least a seller takes
        uint256 expiry; //     unix seconds, inclusive
        uint256 nonce;
    }

    error OrderExpired(bytes32 orderHash, uint256 expiry, uint256 nowTimestamp);
    error OrderOverfilled(bytes32 orderHash, uint256 filled, uint256 fill, uint256 size);
    error OrderCancelled(bytes32 orderHash);
    /// @notice This order was filled whole at its first settlement, or another order of the account signed with the
    ///         same nonce was filled or cancelled (a cancelled order itself reverts `OrderCancelled`).
    error NonceUsed(uint256 account, uint256 nonce);
    error BadSigner(uint256 account, address signer);
    error OrdersDoNotMatch(bytes32 makerHash, bytes32 takerHash);
    error LimitPriceNotMet(bytes32 takerHash, uint256 price, uint256 limitPrice);
    error FeeTooHigh(uint256 bps, uint256 maxBps);
    error NotAdmin(address caller);
    error ZeroFill();

    event OrderFilled(bytes32 indexed orderHash, uint256 indexed account, uint256 fill, uint256 filledTotal);
    event OrderCancel(bytes32 indexed orderHash, uint256 indexed account);
    event NonceFloorSet(uint256 indexed account, uint256 minNonce);
    event FeesSet(uint256 makerBps, uint256 takerBps);

    /// @notice Settle `fill` base units between a signed maker and a signed taker order at the maker's price.
    function settle(Order calldata maker, bytes calldata makerSig, Order calldata taker, bytes calldata takerSig, uint256 fill)
        external;
    /// @notice Owner or operator of `order.account`: cancel one order.
    function cancel(Order calldata order) external;
    /// @notice Owner or operator: invalidate every order of `account` with a nonce below `minNonce` (only raises).
    function cancelAllBefore(uint256 account, uint256 minNonce) external;
    /// @notice EIP-712 hash of an order (what is signed).
    function hashOrder(Order calldata order) external view returns (bytes32);
    /// @notice Base units filled of an order filled in parts (type(uint256).max once cancelled); 0 for an order filled
    ///         whole at its first settlement (only its nonce's bit records it) and for an unfilled one.
    function filled(bytes32 orderHash) external view returns (uint256);
    /// @notice How much of `order` can no longer fill: type(uint256).max once cancelled (`cancel`, or a nonce below
    ///         the account's floor), its size when filled whole at its first settlement or when another order of the
    ///         account used its nonce, else the base units filled in parts (0: unfilled). Expiry is not considered.
    function filledOf(Order calldata order) external view returns (uint256);
    /// @notice Bit `nonce % 256` of word `nonce / 256` is set once the account's order with that nonce was first
    ///         filled (whole or in part) or cancelled.
    function nonceBitmap(uint256 account, uint256 word) external view returns (uint256);
    /// @notice Admin of the vault's RiskParameters: set fee rates (each at most 1%).
    function setFees(uint256 makerBps, uint256 takerBps) external;
}
