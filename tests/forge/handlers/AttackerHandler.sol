// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ICrossMarginVault} from "../../../contracts/interfaces/ICrossMarginVault.sol";
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
    /// @notice Subaccount `buyerSeed % 4` buys 100 to 200,000 USD of market `marketSeed % 5` from subaccount
    ///         `sellerSeed % 4` at the band's edge or anywhere within it; a fee of 0 to 5 bps each.
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
        _trade(buyer, seller, marketSeed % Env.MARKETS, Env.bound(usdSeed, 100, 200_000), priceSeed, usdSeed % 6);
    }

    /// @notice Subaccount `subSeed % 4` reduces (never flips) 1 bps to 100% of its position in market `marketSeed % 5`
    ///         against another of its subaccounts, at the band's edge or anywhere within it: a dump of value between
    ///         siblings when the fill is worse than the oracle price for the reducer.
    function reduceTrade(uint256 subSeed, uint256 toSeed, uint256 marketSeed, uint256 fractionSeed, uint256 priceSeed)
        external
        step
    {
        (subSeed, toSeed, marketSeed) = (_mix(subSeed), _mix(toSeed), _mix(marketSeed));
        (fractionSeed, priceSeed) = (_mix(fractionSeed), _mix(priceSeed));
        uint256 sub = _account(subSeed % SUBS);
        uint256 to = _account((subSeed + 1 + toSeed % (SUBS - 1)) % SUBS);
        uint256 market = marketSeed % Env.MARKETS;
        (int256 size,) = vault.positionOf(sub, market);
        if (size == 0) return;
        uint256 amount = (size > 0 ? uint256(size) : uint256(-size)) * Env.bound(fractionSeed, 1, Env.BPS) / Env.BPS;
        if (amount == 0) return;
        (, uint256 price) = _fillPrice(market, _offset(priceSeed));
        ledger.touch(sub);
        ledger.touch(to);
        if (size > 0) p.venue.trade(to, sub, market, amount, price, 0);
        else p.venue.trade(sub, to, market, amount, price, 0);
    }

    /// @notice Subaccount `subSeed % 4` goes long 100 to 200,000 USD of ETH in market 1 and short the same size in
    ///         market 4 (both on ETH) against another of its subaccounts, each leg at the band's edge or within it.
    function hedgeSharedAsset(uint256 subSeed, uint256 toSeed, uint256 usdSeed, uint256 priceSeed) external step {
        (subSeed, toSeed, usdSeed, priceSeed) = (_mix(subSeed), _mix(toSeed), _mix(usdSeed), _mix(priceSeed));
        uint256 sub = _account(subSeed % SUBS);
        uint256 to = _account((subSeed + 1 + toSeed % (SUBS - 1)) % SUBS);
        (uint256 oracle, uint256 longPrice) = _fillPrice(1, _offset(priceSeed));
        (, uint256 shortPrice) = _fillPrice(4, _offset(priceSeed / 7));
        uint256 size = Env.bound(usdSeed, 100, 200_000) * Env.WAD * Env.WAD / oracle;
        ledger.touch(sub);
        ledger.touch(to);
        p.venue.trade(sub, to, 1, size, longPrice, 0);
        p.venue.trade(to, sub, 4, size, shortPrice, 0);
    }

    // ================================================================ liquidations
    /// @notice Liquidates the first account below MM from position `targetSeed` (anyone's, its own included),
    ///         taking 1 bps to 100% of maxTake in proportion; the reward goes to its subaccount 0.
    function liquidate(uint256 targetSeed, uint256 fractionSeed) external step {
        (targetSeed, fractionSeed) = (_mix(targetSeed), _mix(fractionSeed));
        (bool found, uint256 target) = _liquidatable(_allAccounts(), targetSeed);
        if (found) _liquidate(target, fractionSeed % 4 == 0 ? Env.BPS : Env.bound(fractionSeed, 1, Env.BPS));
    }

    /// @notice Liquidates one of its own subaccounts below MM (self-liquidation), 1 bps to 100% of maxTake.
    function selfLiquidate(uint256 subSeed, uint256 fractionSeed) external step {
        (subSeed, fractionSeed) = (_mix(subSeed), _mix(fractionSeed));
        uint256[] memory own = new uint256[](SUBS);
        for (uint256 s; s < SUBS; ++s) {
            own[s] = _account(s);
        }
        (bool found, uint256 target) = _liquidatable(own, subSeed);
        if (found) _liquidate(target, fractionSeed % 4 == 0 ? Env.BPS : Env.bound(fractionSeed, 1, Env.BPS));
    }

    /// @notice Slices: through the LiquidationLooper, liquidates the first account below MM from `targetSeed` up to
    ///         40 times in one transaction, each call taking one item (a position or a priced collateral) of 1 wei
    ///         (half the time) up to that item's share of maxTake. The looper's non-strict run (in a probe that is
    ///         reverted) says how many calls pass; exactly those are then made in strict mode, so every event the
    ///         ledger reads is from a call that succeeded.
    function slice(uint256 targetSeed, uint256 itemSeed, uint256 amountSeed, uint256 timesSeed) external step {
        (targetSeed, itemSeed, amountSeed, timesSeed) = (_mix(targetSeed), _mix(itemSeed), _mix(amountSeed), _mix(timesSeed));
        (bool found, uint256 target) = _liquidatable(_allAccounts(), targetSeed);
        if (!found) return;
        (ICrossMarginVault.LiquidationItem[] memory all,) = ledger.proportionalTake(target, Env.BPS);
        if (all.length == 0) return;
        ICrossMarginVault.LiquidationItem[] memory items = new ICrossMarginVault.LiquidationItem[](1);
        items[0] = all[itemSeed % all.length];
        items[0].amount = amountSeed % 2 == 0 ? 1 : Env.bound(amountSeed, 1, items[0].amount);
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
        _liquidate(target, Env.BPS);
        _tryWithdrawClaim(sub, Env.BPS);
    }

    /// @dev Withdraws `fractionBps` of `account`'s USDC claim if the vault allows it (it may not: margin).
    function _tryWithdrawClaim(uint256 account, uint256 fractionBps) internal {
        uint256 amount = _usdcClaim(account) * fractionBps / Env.BPS;
        if (amount == 0) return;
        ledger.touch(account);
        uint256 before = p.usdc.balanceOf(address(this));
        try vault.withdraw(account, address(p.usdc), amount, address(this)) returns (uint256 paid) {
            ledger.withdrew(address(this), account, USDC, amount, paid, p.usdc.balanceOf(address(this)) - before);
        } catch {}
    }
}
