// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ICrossMarginVault, IVaultTypes} from "../../../contracts/interfaces/ICrossMarginVault.sol";
import {IOptionMarkets} from "../../../contracts/interfaces/IOptionMarkets.sol";
import {TestToken} from "../../../contracts/test/TestTokens.sol";
import {Protocol} from "../Deploy.sol";
import {Env} from "../Env.sol";
import {Ledger} from "../Ledger.sol";

/// @notice What every handler shares: the protocol, the ledger, the step bracket and token helpers. A handler's
///         external non-view functions are the fuzzer's actions; every one runs as one ledger step. A vault refusal
///         reverts the whole action (the fuzzer counts it; nothing is recorded).
abstract contract HandlerBase {
    Ledger public immutable ledger;
    ICrossMarginVault internal immutable vault;
    Protocol internal p;

    /// @dev Token ids: collateral ids 0..4, and 5 for the settlement token (USDC).
    uint256 internal constant USDC = 5;
    /// @dev The campaign's salt: forge gives every campaign of a `forge test` run the same random inputs, so each
    ///      handler hashes its inputs with the salt of its campaign (`_mix`): campaigns explore different sequences.
    uint256 internal immutable salt;

    constructor(Protocol memory p_, Ledger ledger_, uint256 salt_) {
        p = p_;
        vault = p_.vault;
        ledger = ledger_;
        salt = salt_;
        for (uint256 id; id <= USDC; ++id) {
            _token(id).approve(address(p_.vault), type(uint256).max);
        }
    }

    /// @dev One ledger step without a price move.
    modifier step() {
        ledger.begin(msg.sig);
        _;
        ledger.end(false);
    }

    /// @dev One ledger step that changes feeds, time or parameters (no account), then the E5 probe of every account
    ///      below MM (such a step may change who is below MM).
    modifier worldStep() {
        ledger.beginWorld(msg.sig);
        _;
        ledger.end(false);
        ledger.probeAll();
    }

    /// @dev `target.call(data)` inside a step that may already have changed accounts: the ledger reads the step's
    ///      events so far first, and drops the call's events if it reverted (forge records a reverted call's events
    ///      too; a refused trade must not look like one that happened).
    function _attempt(address target, bytes memory data) internal returns (bool ok, bytes memory ret) {
        ledger.absorbLogs();
        (ok, ret) = target.call(data);
        if (!ok) ledger.resetLogs();
    }

    /// @dev A fuzzed input made specific to this campaign.
    function _mix(uint256 x) internal view returns (uint256) {
        return uint256(keccak256(abi.encode(x, salt)));
    }

    function _token(uint256 id) internal view returns (TestToken) {
        return id == USDC ? p.usdc : p.tokens[id];
    }

    function _account(uint256 sub) internal view returns (uint256) {
        return vault.accountId(address(this), uint96(sub));
    }

    /// @dev Token units worth about `usd` (whole USD) at the true price.
    function _units(uint256 id, uint256 usd) internal view returns (uint256) {
        if (id == USDC) return usd * 1e6;
        return usd * Env.WAD * 10 ** Env.decimals(id) / ledger.truePrice(id);
    }

    /// @dev Mints and deposits `amount` of token `id` into `account`, recording it as this owner's deposit.
    function _deposit(uint256 account, uint256 id, uint256 amount) internal {
        if (amount == 0) return;
        _token(id).mint(address(this), amount);
        ledger.touch(account);
        vault.deposit(account, address(_token(id)), amount);
        ledger.deposited(address(this), id, amount);
    }

    /// @dev Withdraws `fractionBps` of what `account` holds of token `id` (its claim for USDC) to this contract.
    function _withdraw(uint256 account, uint256 id, uint256 fractionBps) internal {
        uint256 held = id == USDC ? _usdcClaim(account) : vault.collateralOf(account, id);
        uint256 amount = held * fractionBps / Env.BPS;
        if (amount == 0) return;
        ledger.touch(account);
        uint256 before = _token(id).balanceOf(address(this));
        uint256 paid = vault.withdraw(account, address(_token(id)), amount, address(this));
        ledger.withdrew(address(this), account, id, amount, paid, _token(id).balanceOf(address(this)) - before);
    }

    function _usdcClaim(uint256 account) internal view returns (uint256) {
        int256 s = vault.settlementOf(account);
        return s > 0 ? uint256(s) / 1e12 : 0;
    }

    /// @dev The oracle price of `market`'s asset and a fill price `offsetBps` (signed, within +-band) away from it.
    function _fillPrice(uint256 market, int256 offsetBps) internal view returns (uint256 oracle, uint256 price) {
        oracle = p.oracle.price(Env.marketAsset(market));
        price = uint256(int256(oracle) + int256(oracle) * offsetBps / int256(Env.BPS));
    }

    /// @dev `buyer` buys about `usd` (whole USD) of `market` from `seller` at a price `_offset(priceSeed)` from the
    ///      oracle's, each side paying a fee of `feeBps`.
    function _trade(uint256 buyer, uint256 seller, uint256 market, uint256 usd, uint256 priceSeed, uint256 feeBps)
        internal
    {
        (uint256 oracle, uint256 price) = _fillPrice(market, _offset(priceSeed));
        p.venue.trade(buyer, seller, market, usd * Env.WAD * Env.WAD / oracle, price, usd * Env.WAD * feeBps / Env.BPS);
    }

    /// @dev A USD amount from 100 to about `max`, log-uniform (small trades as often as ones that reach the margin).
    function _logUsd(uint256 seed, uint256 max) internal pure returns (uint256) {
        uint256 usd = max >> (seed % 14); // max / 1 .. max / 8192
        return usd < 100 ? 100 : Env.bound(seed >> 8, usd / 2, usd);
    }

    /// @dev The price band in bps.
    function _band() internal view returns (uint256) {
        return (p.params.control() >> 8) & 0xffff;
    }

    /// @dev A signed offset in [-band, +band]: the two edges a third of the time each, else anywhere between.
    function _offset(uint256 seed) internal view returns (int256) {
        int256 band = int256(_band());
        uint256 pick = seed % 3;
        if (pick == 0) return band;
        if (pick == 1) return -band;
        return int256((seed / 3) % uint256(2 * band + 1)) - band;
    }

    /// @dev The first account at or after position `seed` of the ledger's list (or of `candidates`) that is below MM.
    function _liquidatable(uint256[] memory candidates, uint256 seed) internal view returns (bool found, uint256 acct) {
        for (uint256 i; i < candidates.length; ++i) {
            acct = candidates[(seed + i) % candidates.length];
            (bool ok, int256 e, uint256 mm,) = ledger.margin(acct);
            if (ok && e < int256(mm)) return (true, acct);
        }
    }

    function _allAccounts() internal view returns (uint256[] memory list) {
        list = new uint256[](ledger.numAccounts());
        for (uint256 i; i < list.length; ++i) {
            list[i] = ledger.accounts(i);
        }
    }

    // ================================================================ options
    /// @dev The OPTION word's fill band, bps of spot around the model mark.
    function _optionBand() internal view returns (uint256) {
        return (p.params.optionWord() >> 184) & 0xffff;
    }

    /// @dev `buyer` buys about `usd` (whole USD of notional at the spot) of the series in `slot` from `seller` at a
    ///      premium within the band around the mark (the two edges a third of the time each, else anywhere
    ///      between; at least 0), each paying a fee of `feeBps` of the premium.
    function _optionTrade(uint256 buyer, uint256 seller, uint256 slot, uint256 usd, uint256 priceSeed, uint256 feeBps)
        internal
    {
        (uint256 spot, uint256 price) = _optionPrice(slot, priceSeed);
        uint256 size = usd * Env.WAD * Env.WAD / spot;
        if (size == 0) return;
        p.venue.tradeOption(buyer, seller, slot, size, price, size * price / Env.WAD * feeBps / Env.BPS);
    }

    /// @dev The spot of the series' asset and a premium `_offsetOf(seed, option band)` of spot away from the mark.
    function _optionPrice(uint256 slot, uint256 seed) internal view returns (uint256 spot, uint256 price) {
        spot = p.oracle.price(p.options.series(slot).asset);
        int256 band = int256(_optionBand());
        uint256 pick = seed % 3;
        int256 bps = pick == 0 ? band : pick == 1 ? -band : int256((seed / 3) % uint256(2 * band + 1)) - band;
        int256 q = int256(p.options.mark(slot)) + int256(spot) * bps / int256(Env.BPS);
        price = q > 0 ? uint256(q) : 0;
    }

    /// @dev The first slot from `seed` holding a live series (listed, not expired); `seed % SLOTS` when none is.
    function _liveSlot(uint256 seed) internal view returns (uint256) {
        for (uint256 i; i < Env.SLOTS; ++i) {
            uint256 slot = (seed + i) % Env.SLOTS;
            IOptionMarkets.Series memory s = p.options.series(slot);
            if (s.listed && s.expiry > block.timestamp) return slot;
        }
        return seed % Env.SLOTS;
    }

    /// @dev Turns `account`'s positions in fixed series into cash (anyone may; nothing when it holds none).
    function _settleFixed(uint256 account) internal {
        uint256[] memory slots = ledger.fixedSlots(account);
        if (slots.length != 0) vault.settleExpired(account, slots);
    }

    /// @dev The first slot `account` holds an option position in from `seed` (false when none).
    function _heldSlot(uint256 account, uint256 seed) internal view returns (bool found, uint256 slot, int256 size) {
        uint256 mask = vault.optionsOf(account);
        for (uint256 i; i < 32; ++i) {
            slot = (seed + i) % 32;
            if ((mask >> slot) & 1 != 0) return (true, slot, p.options.sizeOf(account, slot));
        }
    }

    /// @dev Liquidates `target` directly, taking `fractionBps` of maxTake in proportion, each amount divided by
    ///      2^`shift` (at least 1 unit); returns the reward.
    function _liquidate(uint256 target, uint256 fractionBps, uint256 shift) internal returns (uint256 reward) {
        (IVaultTypes.LiquidationItem[] memory items,) = ledger.proportionalTake(target, fractionBps);
        for (uint256 i; i < items.length && shift != 0; ++i) {
            items[i].amount = items[i].amount >> shift == 0 ? 1 : items[i].amount >> shift;
        }
        ledger.touchTarget(target);
        ledger.touch(_account(0));
        _settleFixed(target);
        reward = vault.liquidate(target, items);
        ledger.liquidated(address(this), 1, reward);
        ledger.afterLiquidation(target);
    }
}
