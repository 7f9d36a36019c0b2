// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Protocol} from "../Deploy.sol";
import {Env} from "../Env.sol";
import {Ledger} from "../Ledger.sol";
import {HandlerBase} from "./HandlerBase.sol";

/// @title HonestHandler — ordinary traders.
/// @notice Owns six subaccounts, each starting with 30,000 USDC and 10 WETH; pairs (0,1), (2,3), (4,5) hold opposite
///         positions of 300k, 220k and 100k USD in BTC, ETH and SOL (near initial margin), so price moves create
///         liquidations, bankruptcies and write-offs. Actions: deposits, withdrawals and trades between its own
///         subaccounts (both sides agree, so any price within the band is fair).
contract HonestHandler is HandlerBase {
    uint256 public constant SUBS = 6;

    constructor(Protocol memory p_, Ledger ledger_, uint256 salt_) HandlerBase(p_, ledger_, salt_) {
        for (uint256 s; s < SUBS; ++s) {
            ledger_.register(_account(s), false);
            _deposit(_account(s), USDC, 30_000e6);
            _deposit(_account(s), 1, 10 * Env.WAD);
        }
        uint32[3] memory usd = [uint32(300_000), 220_000, 100_000]; // each side near its initial margin
        for (uint256 pair; pair < 3; ++pair) {
            uint256 price = p_.oracle.price(pair);
            uint256 size = usd[pair] * Env.WAD * Env.WAD / price;
            p_.venue.trade(_account(2 * pair), _account(2 * pair + 1), pair, size, price, 0);
        }
    }

    /// @notice Deposits about 10 to 50,000 USD of a token (USDC, WBTC, WETH, WSOL or LINK) into subaccount
    ///         `subSeed % 6`.
    function deposit(uint256 subSeed, uint256 tokenSeed, uint256 usdSeed) external step {
        (subSeed, tokenSeed, usdSeed) = (_mix(subSeed), _mix(tokenSeed), _mix(usdSeed));
        uint256 id = tokenSeed % 5;
        if (id == 4) id = USDC;
        _deposit(_account(subSeed % SUBS), id, _units(id, Env.bound(usdSeed, 10, 50_000)));
    }

    /// @notice Withdraws 1 bps to 100% of what subaccount `subSeed % 6` holds of a token (its claim, for USDC).
    function withdraw(uint256 subSeed, uint256 tokenSeed, uint256 fractionSeed) external step {
        (subSeed, tokenSeed, fractionSeed) = (_mix(subSeed), _mix(tokenSeed), _mix(fractionSeed));
        uint256 id = tokenSeed % 6;
        _withdraw(_account(subSeed % SUBS), id, Env.bound(fractionSeed, 1, Env.BPS));
    }

    /// @notice Subaccount `buyerSeed % 6` buys 100 to 1,000,000 USD (log-uniform) of market `marketSeed % 5` from
    ///         subaccount `sellerSeed % 6` at a price within the band, paying a fee of 0 to 5 bps each.
    function trade(uint256 buyerSeed, uint256 sellerSeed, uint256 marketSeed, uint256 usdSeed, uint256 priceSeed)
        external
        step
    {
        (buyerSeed, sellerSeed, marketSeed) = (_mix(buyerSeed), _mix(sellerSeed), _mix(marketSeed));
        (usdSeed, priceSeed) = (_mix(usdSeed), _mix(priceSeed));
        uint256 buyer = _account(buyerSeed % SUBS);
        uint256 seller = _account(sellerSeed % SUBS);
        if (buyer == seller) seller = _account((sellerSeed + 1) % SUBS);
        ledger.touch(buyer);
        ledger.touch(seller);
        _trade(buyer, seller, marketSeed % Env.MARKETS, _logUsd(usdSeed, 1_000_000), priceSeed, (usdSeed >> 64) % 6);
    }

    /// @notice Options: subaccount `buyerSeed % 6` buys 100 to 300,000 USD of notional (log-uniform) of the live
    ///         series from slot `slotSeed % 10` from another subaccount, at a premium within the option band around
    ///         the mark (its edges a third of the time each), each paying 0 to 5 bps of the premium in fees.
    function optionTrade(uint256 buyerSeed, uint256 sellerSeed, uint256 slotSeed, uint256 usdSeed, uint256 priceSeed)
        external
        step
    {
        (buyerSeed, sellerSeed, slotSeed) = (_mix(buyerSeed), _mix(sellerSeed), _mix(slotSeed));
        (usdSeed, priceSeed) = (_mix(usdSeed), _mix(priceSeed));
        uint256 buyer = _account(buyerSeed % SUBS);
        uint256 seller = _account((buyerSeed + 1 + sellerSeed % (SUBS - 1)) % SUBS);
        ledger.touch(buyer);
        ledger.touch(seller);
        _optionTrade(buyer, seller, _liveSlot(slotSeed), _logUsd(usdSeed, 300_000), priceSeed, (usdSeed >> 64) % 6);
    }

    /// @notice Subaccount `subSeed % 6` closes 1 bps to 100% of one of its option positions against another
    ///         subaccount, at the mark.
    function closeOption(uint256 subSeed, uint256 toSeed, uint256 slotSeed, uint256 fractionSeed) external step {
        (subSeed, toSeed, slotSeed, fractionSeed) = (_mix(subSeed), _mix(toSeed), _mix(slotSeed), _mix(fractionSeed));
        uint256 sub = _account(subSeed % SUBS);
        uint256 to = _account((subSeed + 1 + toSeed % (SUBS - 1)) % SUBS);
        (bool found, uint256 slot, int256 size) = _heldSlot(sub, slotSeed);
        if (!found) return;
        uint256 amount = (size > 0 ? uint256(size) : uint256(-size)) * Env.bound(fractionSeed, 1, Env.BPS) / Env.BPS;
        if (amount == 0) return;
        uint256 mark = p.options.mark(slot);
        ledger.touch(sub);
        ledger.touch(to);
        if (size > 0) p.venue.tradeOption(to, sub, slot, amount, mark, 0);
        else p.venue.tradeOption(sub, to, slot, amount, mark, 0);
    }

    /// @notice A premium fill: subaccount `buyerSeed % 6` buys 100,000 USD of market `marketSeed % 5` from the next
    ///         subaccount at the band's edge (above the index when `up`, else below), each side paying a fee of 50 bps:
    ///         the fee-weighted premium moves the market's funding rate (the fees go to the insurance fund).
    function premiumFill(uint256 buyerSeed, uint256 marketSeed, bool up) external step {
        (buyerSeed, marketSeed) = (_mix(buyerSeed), _mix(marketSeed));
        uint256 buyer = _account(buyerSeed % SUBS);
        uint256 seller = _account((buyerSeed + 1) % SUBS);
        (uint256 a, uint256 b) = up ? (buyer, seller) : (seller, buyer);
        ledger.touch(a);
        ledger.touch(b);
        uint256 market = marketSeed % Env.MARKETS;
        (uint256 oracle, uint256 price) = _fillPrice(market, up ? int256(_band()) : -int256(_band()));
        p.venue.trade(a, b, market, 100_000 * Env.WAD * Env.WAD / oracle, price, 500 * Env.WAD);
    }
}
