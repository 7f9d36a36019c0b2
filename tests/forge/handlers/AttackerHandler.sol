// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ICrossMarginVault, IVaultTypes} from "../../../contracts/interfaces/ICrossMarginVault.sol";
import {IOptionMarkets} from "../../../contracts/interfaces/IOptionMarkets.sol";
import {Protocol} from "../Deploy.sol";
import {Env} from "../Env.sol";
import {Ledger} from "../Ledger.sol";
import {HandlerBase} from "./HandlerBase.sol";

/// @title AttackerHandler — one owner with capital and four subaccounts trying to extract value.
/// @notice Subaccounts 0-2 start with 100,000 USDC and 20 WETH each; subaccount 3 starts empty (a fresh account).
///         It trades only between its own subaccounts (wash and reduce-only trades at any point of the price band,
///         both legs of a hedge across the two ETH markets), liquidates anyone (itself included) directly or in
///         slices through the LiquidationLooper, deposits dust of any token (stale or unpriced ones too) into other
///         accounts, and withdraws around write-offs. E1 bounds what all of this may earn.
contract AttackerHandler is HandlerBase {
    uint256 public constant SUBS = 4;
    uint256 public constant MAX_SLICES = 40;

    constructor(Protocol memory p_, Ledger ledger_, uint256 salt_) HandlerBase(p_, ledger_, salt_) {
        ledger_.setAttacker(address(this));
        for (uint256 s; s < SUBS; ++s) {
            ledger_.register(_account(s), true);
        }
        ledger_.register(vault.accountId(address(p_.looper), 0), true);
        for (uint256 s; s < SUBS - 1; ++s) {
            _deposit(_account(s), USDC, 100_000e6);
            _deposit(_account(s), 1, 20 * Env.WAD);
        }
    }

    // ================================================================ capital
    /// @notice Deposits about 10 to 100,000 USD of any token (USDC or a collateral) into subaccount `subSeed % 4`.
    function deposit(uint256 subSeed, uint256 tokenSeed, uint256 usdSeed) external step {
        (subSeed, tokenSeed, usdSeed) = (_mix(subSeed), _mix(tokenSeed), _mix(usdSeed));
        uint256 id = tokenSeed % 6;
        _deposit(_account(subSeed % SUBS), id, _units(id, Env.bound(usdSeed, 10, 100_000)));
    }

    /// @notice Withdraws 1 bps to 100% of what subaccount `subSeed % 4` holds of a token (its claim, for USDC).
    function withdraw(uint256 subSeed, uint256 tokenSeed, uint256 fractionSeed) external step {
        (subSeed, tokenSeed, fractionSeed) = (_mix(subSeed), _mix(tokenSeed), _mix(fractionSeed));
        _withdraw(_account(subSeed % SUBS), tokenSeed % 6, Env.bound(fractionSeed, 1, Env.BPS));
    }

    /// @notice Deposits dust (1 unit up to about 1 USD) of a collateral into another owner's account or the fund: DUST
    ///         (whose feed the market may have broken) half the time, else any collateral, priced or not.
    function dustDeposit(uint256 targetSeed, uint256 tokenSeed, uint256 amountSeed) external step {
        (targetSeed, tokenSeed, amountSeed) = (_mix(targetSeed), _mix(tokenSeed), _mix(amountSeed));
        uint256[] memory all = _allAccounts();
        uint256[] memory others = new uint256[](all.length + 1);
        uint256 n;
        for (uint256 i; i < all.length; ++i) {
            if (!ledger.isAttackerAccount(all[i])) others[n++] = all[i];
        }
        others[n++] = vault.fundAccount();
        uint256 id = tokenSeed % 2 == 0 ? 4 : (tokenSeed / 2) % 5;
        uint256 oneUsd = _units(id, 1);
        _deposit(others[targetSeed % n], id, Env.bound(amountSeed, 1, oneUsd > 1 ? oneUsd - 1 : 1));
    }

    // ================================================================ trades between its own subaccounts
    /// @notice Subaccount `buyerSeed % 4` buys 100 to 2,000,000 USD (log-uniform: up to the margin) of market
    ///         `marketSeed % 5` from subaccount `sellerSeed % 4` at the band's edge or anywhere within it; a fee of
    ///         0 to 5 bps each.
    function washTrade(uint256 buyerSeed, uint256 sellerSeed, uint256 marketSeed, uint256 usdSeed, uint256 priceSeed)
        external
        step
    {
        (buyerSeed, sellerSeed, marketSeed) = (_mix(buyerSeed), _mix(sellerSeed), _mix(marketSeed));
        (usdSeed, priceSeed) = (_mix(usdSeed), _mix(priceSeed));
        uint256 buyer = _account(buyerSeed % SUBS);
        uint256 seller = _account((buyerSeed + 1 + sellerSeed % (SUBS - 1)) % SUBS);
        ledger.touch(buyer);
        ledger.touch(seller);
        _trade(buyer, seller, marketSeed % Env.MARKETS, _logUsd(usdSeed, 2_000_000), priceSeed, (usdSeed >> 64) % 6);
    }

    /// @notice Subaccount `subSeed % 4` levers up: opens (long or short, against another of its subaccounts, at the
    ///         oracle price) about as much of market `marketSeed % 5` as its equity carries at initial margin
    ///         (E / (alpha * risk weight), 50-100% of it), so that the next price move can put it below MM.
    function leverUp(uint256 subSeed, uint256 toSeed, uint256 marketSeed, uint256 sizeSeed) external step {
        (subSeed, toSeed, marketSeed, sizeSeed) = (_mix(subSeed), _mix(toSeed), _mix(marketSeed), _mix(sizeSeed));
        uint256 s = subSeed % SUBS;
        uint256 sub = _account(s);
        uint256 to = _account((s + 1 + toSeed % (SUBS - 1)) % SUBS);
        uint256 market = marketSeed % Env.MARKETS;
        (bool ok, int256 e,, uint256 im) = ledger.margin(sub);
        if (!ok || e <= int256(im)) return;
        uint256 g = p.params.marginConfig().global;
        uint256 rw = (g >> (16 * Env.marketAsset(market))) & 0xffff;
        uint256 alpha = (g >> 128) & 0xffff;
        uint256 usd = uint256(e - int256(im)) * 1e8 / (alpha * rw) * Env.bound(sizeSeed, 5000, 10_000) / Env.BPS;
        (uint256 oracle,) = _fillPrice(market, 0);
        uint256 size = usd * Env.WAD / oracle;
        if (size == 0) return;
        ledger.touch(sub);
        ledger.touch(to);
        if ((sizeSeed >> 128) % 2 == 0) p.venue.trade(sub, to, market, size, oracle, 0);
        else p.venue.trade(to, sub, market, size, oracle, 0);
    }

    /// @notice A subaccount reduces (never flips) 1 bps to 100% of a position against another of its subaccounts: a
    ///         dump of value between siblings when the fill is worse than the oracle price for the reducer. Half of
    ///         the time the reducer is the most distressed subaccount (lowest E - MM), the position its first one and
    ///         the fill at the band's edge worst for it; else subaccount `subSeed % 4`, market `marketSeed % 5` and a
    ///         fill at either edge or anywhere within the band.
    function reduceTrade(uint256 subSeed, uint256 toSeed, uint256 marketSeed, uint256 fractionSeed, uint256 priceSeed)
        external
        step
    {
        (subSeed, toSeed, marketSeed) = (_mix(subSeed), _mix(toSeed), _mix(marketSeed));
        (fractionSeed, priceSeed) = (_mix(fractionSeed), _mix(priceSeed));
        bool distressed = subSeed % 2 == 0;
        uint256 s = distressed ? _mostDistressed() : (subSeed >> 1) % SUBS;
        uint256 sub = _account(s);
        uint256 to = _account((s + 1 + toSeed % (SUBS - 1)) % SUBS);
        uint256 market = marketSeed % Env.MARKETS;
        (uint256 markets,) = vault.masksOf(sub);
        if (distressed && markets != 0) {
            for (market = 0; (markets >> market) & 1 == 0; ++market) {}
        }
        (int256 size,) = vault.positionOf(sub, market);
        if (size == 0) return;
        uint256 amount = (size > 0 ? uint256(size) : uint256(-size)) * Env.bound(fractionSeed, 1, Env.BPS) / Env.BPS;
        if (amount == 0) return;
        int256 worst = size > 0 ? -int256(_band()) : int256(_band()); // a long sells low, a short buys high
        (, uint256 price) = _fillPrice(market, distressed ? worst : _offset(priceSeed));
        ledger.touch(sub);
        ledger.touch(to);
        if (size > 0) p.venue.trade(to, sub, market, amount, price, 0);
        else p.venue.trade(sub, to, market, amount, price, 0);
    }

    /// @dev The subaccount with the lowest E - MM among those the vault can evaluate (0 if none).
    function _mostDistressed() internal view returns (uint256 best) {
        int256 lowest = type(int256).max;
        for (uint256 s; s < SUBS; ++s) {
            (bool ok, int256 e, uint256 mm,) = ledger.margin(_account(s));
            if (ok && e - int256(mm) < lowest) (best, lowest) = (s, e - int256(mm));
        }
    }

    /// @notice Subaccount `subSeed % 4` goes long 100 to 2,000,000 USD (log-uniform) of ETH in market 1 and short
    ///         the same size in market 4 (both on ETH) against another of its subaccounts, each leg at the band's
    ///         edge or within it.
    function hedgeSharedAsset(uint256 subSeed, uint256 toSeed, uint256 usdSeed, uint256 priceSeed) external step {
        (subSeed, toSeed, usdSeed, priceSeed) = (_mix(subSeed), _mix(toSeed), _mix(usdSeed), _mix(priceSeed));
        uint256 sub = _account(subSeed % SUBS);
        uint256 to = _account((subSeed + 1 + toSeed % (SUBS - 1)) % SUBS);
        (uint256 oracle, uint256 longPrice) = _fillPrice(1, _offset(priceSeed));
        (, uint256 shortPrice) = _fillPrice(4, _offset(priceSeed / 7));
        uint256 size = _logUsd(usdSeed, 2_000_000) * Env.WAD * Env.WAD / oracle;
        ledger.touch(sub);
        ledger.touch(to);
        p.venue.trade(sub, to, 1, size, longPrice, 0);
        p.venue.trade(to, sub, 4, size, shortPrice, 0);
    }

    // ================================================================ options
    /// @notice Subaccount `buyerSeed % 4` buys 100 to 2,000,000 USD of notional (log-uniform: up to the margin) of the
    ///         live series from slot `slotSeed % 10` from another of its subaccounts at the option band's edge or
    ///         within it (a wash trade moving premium between siblings, then one of them may be left to its fate);
    ///         fees 0-5 bps.
    function optionWash(uint256 buyerSeed, uint256 sellerSeed, uint256 slotSeed, uint256 usdSeed, uint256 priceSeed)
        external
        step
    {
        (buyerSeed, sellerSeed, slotSeed) = (_mix(buyerSeed), _mix(sellerSeed), _mix(slotSeed));
        (usdSeed, priceSeed) = (_mix(usdSeed), _mix(priceSeed));
        uint256 buyer = _account(buyerSeed % SUBS);
        uint256 seller = _account((buyerSeed + 1 + sellerSeed % (SUBS - 1)) % SUBS);
        ledger.touch(buyer);
        ledger.touch(seller);
        _optionTrade(buyer, seller, _liveSlot(slotSeed), _logUsd(usdSeed, 2_000_000), priceSeed, (usdSeed >> 64) % 6);
    }

    /// @notice The most distressed subaccount (half of the time; else `subSeed % 4`) reduces 1 bps to 100% of one of
    ///         its option positions against a sibling at the band edge worst for it (a long sells low, a short buys
    ///         back high): the vault must refuse it whenever it would leave the reducer below IM.
    function optionReduce(uint256 subSeed, uint256 toSeed, uint256 slotSeed, uint256 fractionSeed) external step {
        (subSeed, toSeed, slotSeed, fractionSeed) = (_mix(subSeed), _mix(toSeed), _mix(slotSeed), _mix(fractionSeed));
        uint256 s = subSeed % 2 == 0 ? _mostDistressed() : (subSeed >> 1) % SUBS;
        uint256 sub = _account(s);
        uint256 to = _account((s + 1 + toSeed % (SUBS - 1)) % SUBS);
        (bool found, uint256 slot, int256 size) = _heldSlot(sub, slotSeed);
        if (!found) return;
        uint256 amount = (size > 0 ? uint256(size) : uint256(-size)) * Env.bound(fractionSeed, 1, Env.BPS) / Env.BPS;
        if (amount == 0) return;
        uint256 spot = p.oracle.price(p.options.series(slot).asset);
        uint256 mark = p.options.mark(slot);
        uint256 edge = spot * _optionBand() / Env.BPS;
        ledger.touch(sub);
        ledger.touch(to);
        if (size > 0) p.venue.tradeOption(to, sub, slot, amount, mark > edge ? mark - edge : 0, 0);
        else p.venue.tradeOption(sub, to, slot, amount, mark + edge, 0);
    }

    /// @notice Subaccount `subSeed % 3` writes (sells) options of the live series from slot `slotSeed % 10` to a
    ///         sibling at the mark, as many as 50-100% of its surplus over IM carries (IM of a short option is about
    ///         alpha times its grid loss: sized as notional = (E - IM) / 20%), so the next price or volatility move may
    ///         put it below MM.
    function optionLever(uint256 subSeed, uint256 toSeed, uint256 slotSeed, uint256 sizeSeed) external step {
        (subSeed, toSeed, slotSeed, sizeSeed) = (_mix(subSeed), _mix(toSeed), _mix(slotSeed), _mix(sizeSeed));
        uint256 s = subSeed % (SUBS - 1);
        uint256 sub = _account(s);
        uint256 to = _account((s + 1 + toSeed % (SUBS - 1)) % SUBS);
        (bool ok, int256 e,, uint256 im) = ledger.margin(sub);
        if (!ok || e <= int256(im)) return;
        uint256 slot = _liveSlot(slotSeed);
        uint256 usd = uint256(e - int256(im)) * 5 / 1e18 * Env.bound(sizeSeed, 5000, 10_000) / Env.BPS;
        (uint256 spot,) = _optionPrice(slot, 0);
        uint256 size = usd * Env.WAD * Env.WAD / spot;
        if (size == 0) return;
        ledger.touch(sub);
        ledger.touch(to);
        p.venue.tradeOption(to, sub, slot, size, p.options.mark(slot), 0);
    }

    /// @notice The series limit: subaccount `subSeed % 3` buys a little (1,000 USD of notional) of every live series
    ///         it does not hold from a sibling, up to 8 series; at 8, one more fill must be refused (TooManySeries). An
    ///         account at the limit must stay liquidatable (E5; the fund, which takes its positions over, has none).
    function optionFillSlots(uint256 subSeed, uint256 toSeed) external step {
        (subSeed, toSeed) = (_mix(subSeed), _mix(toSeed));
        uint256 s = subSeed % (SUBS - 1);
        uint256 sub = _account(s);
        uint256 to = _account((s + 1 + toSeed % (SUBS - 1)) % SUBS);
        ledger.touch(sub);
        ledger.touch(to);
        for (uint256 slot; slot < Env.SLOTS; ++slot) {
            IOptionMarkets.Series memory se = p.options.series(slot);
            uint256 mask = vault.optionsOf(sub);
            if ((mask >> slot) & 1 != 0 || !se.listed || se.expiry <= block.timestamp) continue;
            uint256 held;
            for (; mask != 0; mask &= mask - 1) {
                ++held;
            }
            (uint256 spot,) = _optionPrice(slot, 0);
            bytes memory call = abi.encodeCall(
                p.venue.tradeOption, (sub, to, slot, 1000 * Env.WAD * Env.WAD / spot, p.options.mark(slot), 0)
            );
            (bool ok,) = _attempt(address(p.venue), call); // a refusal (margin, stale volatility) skips the slot
            if (ok && held >= 8) ledger.optionViolation(sub, int256(held + 1), 8, "a 9th series was accepted");
        }
    }

    /// @notice Fixing an expired series with a round that is NOT the first at or after its expiry (the one after it,
    ///         or the one before it): the registry must refuse; accepted only when the round does meet the rule.
    function fixWrongRound(uint256 slotSeed, uint256 pickSeed) external {
        (slotSeed, pickSeed) = (_mix(slotSeed), _mix(pickSeed));
        ledger.beginWorld(msg.sig);
        uint256 slot = slotSeed % Env.SLOTS;
        IOptionMarkets.Series memory se = p.options.series(slot);
        if (se.listed && se.fixedPrice == 0 && block.timestamp >= se.expiry) {
            uint256 latest = p.feeds[se.asset].latestRound();
            uint256 r = Env.bound(pickSeed, 0, latest + 1);
            bool meets = r > 1 && r <= latest && p.feeds[se.asset].getTimestamp(r) >= se.expiry
                && p.feeds[se.asset].getTimestamp(r - 1) < se.expiry && p.feeds[se.asset].getAnswer(r) > 0;
            try p.options.fixExpiry(slot, uint80(r)) {
                if (!meets) {
                    ledger.optionViolation(slot, int256(r), int256(latest), "fixed by a round not first after expiry");
                }
            } catch {}
        }
        ledger.end(false);
        ledger.probeAll();
    }

    /// @notice Settles ANOTHER owner's expired positions (anyone may): the account's value must not change (beyond
    ///         the rounding of its stored claim), and nothing may reach the attacker (E1).
    function settleOthers(uint256 targetSeed) external step {
        targetSeed = _mix(targetSeed);
        uint256[] memory all = _allAccounts();
        for (uint256 i; i < all.length; ++i) {
            uint256 a = all[(targetSeed + i) % all.length];
            uint256[] memory slots = ledger.fixedSlots(a);
            if (ledger.isAttackerAccount(a) || slots.length == 0) continue;
            ledger.touch(a);
            int256 before = ledger.valueOf(a);
            vault.settleExpired(a, slots);
            int256 moved = ledger.valueOf(a) - before;
            if (moved > 4 || moved < -4) ledger.optionViolation(a, before, before + moved, "settling moved value");
            return;
        }
    }

    // ================================================================ liquidations
    /// @notice Liquidates the first account below MM from position `targetSeed` (anyone's, its own included),
    ///         taking 1 bps to 100% of maxTake in proportion, half of the time divided by up to 2^63 (tiny takes);
    ///         the reward goes to its subaccount 0.
    function liquidate(uint256 targetSeed, uint256 fractionSeed) external step {
        (targetSeed, fractionSeed) = (_mix(targetSeed), _mix(fractionSeed));
        (bool found, uint256 target) = _liquidatable(_allAccounts(), targetSeed);
        if (found) _liquidate(target, _fraction(fractionSeed), _shift(fractionSeed));
    }

    /// @notice Liquidates one of its own subaccounts below MM (self-liquidation), as `liquidate` sizes its takes.
    function selfLiquidate(uint256 subSeed, uint256 fractionSeed) external step {
        (subSeed, fractionSeed) = (_mix(subSeed), _mix(fractionSeed));
        uint256[] memory own = new uint256[](SUBS);
        for (uint256 s; s < SUBS; ++s) {
            own[s] = _account(s);
        }
        (bool found, uint256 target) = _liquidatable(own, subSeed);
        if (found) _liquidate(target, _fraction(fractionSeed), _shift(fractionSeed));
    }

    /// @dev 100% of maxTake a quarter of the time, else 1 bps to 100%.
    function _fraction(uint256 seed) internal pure returns (uint256) {
        return seed % 4 == 0 ? Env.BPS : Env.bound(seed >> 2, 1, Env.BPS);
    }

    /// @dev Half of the time, every item divided by 2^1 .. 2^63 (tiny takes); else not.
    function _shift(uint256 seed) internal pure returns (uint256) {
        return (seed >> 20) % 2 == 0 ? 0 : 1 + (seed >> 21) % 63;
    }

    /// @notice Slices: through the LiquidationLooper, liquidates the first account below MM from `targetSeed` up to
    ///         40 times in one transaction, each call taking one item (a position or a priced collateral) of 1 wei up
    ///         to that item's share of maxTake (log-uniform). The looper's non-strict run (in a probe that is
    ///         reverted) says how many calls pass; exactly those are then made in strict mode, so every event the
    ///         ledger reads is from a call that succeeded.
    function slice(uint256 targetSeed, uint256 itemSeed, uint256 amountSeed, uint256 timesSeed) external step {
        (targetSeed, itemSeed) = (_mix(targetSeed), _mix(itemSeed));
        (amountSeed, timesSeed) = (_mix(amountSeed), _mix(timesSeed));
        (bool found, uint256 target) = _liquidatable(_allAccounts(), targetSeed);
        if (!found) return;
        (IVaultTypes.LiquidationItem[] memory all,) = ledger.proportionalTake(target, Env.BPS);
        if (all.length == 0) return;
        IVaultTypes.LiquidationItem[] memory items = new IVaultTypes.LiquidationItem[](1);
        items[0] = all[itemSeed % all.length];
        items[0].amount = _logScale(items[0].amount, amountSeed);
        uint256 calls;
        try ledger.probe().loop(target, items, Env.bound(timesSeed, 1, MAX_SLICES)) {}
        catch (bytes memory data) {
            (, calls) = ledger.probe().outcome(data);
        }
        ledger.resetLogs();
        if (calls == 0) return;
        uint256 looperAccount = vault.accountId(address(p.looper), 0);
        ledger.touchTarget(target);
        ledger.touch(looperAccount);
        (uint256 done, uint256 rewards) = p.looper.loop(target, items, calls, true);
        ledger.liquidated(address(p.looper), done, rewards);
        ledger.afterLiquidation(target);
    }

    /// @notice Withdrawals racing a write-off: finds a bankrupt account (E < 0, `targetSeed`), withdraws half of the
    ///         claim of subaccount `subSeed % 4`, liquidates the bankrupt account entirely in one call (the debt must
    ///         be written off in that call), then withdraws the rest of the claim. Every withdrawal must pay in full;
    ///         the other holders' claims must fall by the index fraction (E4, checked by the ledger).
    function raceWriteOff(uint256 subSeed, uint256 targetSeed) external step {
        (subSeed, targetSeed) = (_mix(subSeed), _mix(targetSeed));
        uint256[] memory all = _allAccounts();
        uint256 target;
        bool found;
        for (uint256 i; i < all.length && !found; ++i) {
            target = all[(targetSeed + i) % all.length];
            (bool ok, int256 e,,) = ledger.margin(target);
            found = ok && e < 0;
        }
        if (!found) return;
        uint256 sub = _account(subSeed % SUBS);
        _tryWithdrawClaim(sub, 5000);
        _liquidate(target, Env.BPS, 0);
        _tryWithdrawClaim(sub, Env.BPS);
    }

    /// @dev 1 wei a quarter of the time, else `amount` scaled down by 2^0 .. 2^63 (log-uniform: slices of every size,
    ///      from the whole item to fractions of a cent).
    function _logScale(uint256 amount, uint256 seed) internal pure returns (uint256) {
        if (seed % 4 == 0) return 1;
        amount >>= (seed >> 2) % 64;
        return amount == 0 ? 1 : amount;
    }

    /// @dev Withdraws `fractionBps` of `account`'s USDC claim if the vault allows it (it may not: margin).
    function _tryWithdrawClaim(uint256 account, uint256 fractionBps) internal {
        uint256 amount = _usdcClaim(account) * fractionBps / Env.BPS;
        if (amount == 0) return;
        ledger.touch(account);
        uint256 before = p.usdc.balanceOf(address(this));
        (bool ok, bytes memory ret) =
            _attempt(address(vault), abi.encodeCall(vault.withdraw, (account, address(p.usdc), amount, address(this))));
        if (ok) {
            uint256 paid = abi.decode(ret, (uint256));
            ledger.withdrew(address(this), account, USDC, amount, paid, p.usdc.balanceOf(address(this)) - before);
        }
    }
}
