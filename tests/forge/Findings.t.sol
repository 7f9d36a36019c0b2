// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ICrossMarginVault, IVaultTypes} from "../../contracts/interfaces/ICrossMarginVault.sol";
import {Deploy, Protocol} from "./Deploy.sol";
import {Env} from "./Env.sol";

/// @title Findings of the invariant campaigns, as deterministic tests of the rule they break (they fail while the
///        contract does). Same deployment as the campaigns (tests/forge/Deploy.sol: fund seeded with 50,000 USDC).
contract Findings {
    Protocol internal p;

    function setUp() public {
        Env.VM.warp(Env.START_TIME);
        p = Deploy.protocol();
        p.usdc.approve(address(p.vault), type(uint256).max);
        p.tokens[4].approve(address(p.vault), type(uint256).max);
        p.usdc.mint(address(this), 1_000_000e6);
        p.vault.setVenue(address(this), true); // this test settles trades itself
    }

    /// @notice E5 / R3 + R4 (found by E5, shrunk sequence: dustDeposit of 1,988 wei DUST into an honest account,
    ///         two BTC shocks, breakFeed(DUST), the keeper's full liquidation, then the probe). A bankrupt account
    ///         holding dust of a collateral without a valid price cannot be written off: after everything priced is
    ///         taken, `liquidate` reverted LiquidationEmpty until that feed recovered. Anyone can deposit the dust;
    ///         meanwhile holders could withdraw in full ahead of the socialised loss, and those left bore it.
    function test_staleDustDoesNotBlockWriteOff() public {
        (uint256 a,) = _bankruptLong(200_000e6);
        _breakFeed(4); // the DUST feed goes stale
        p.tokens[4].mint(address(this), 1);
        p.vault.deposit(a, address(p.tokens[4]), 1); // 1 wei of DUST, from anyone
        IVaultTypes.LiquidationItem[] memory all = _wholePosition(a, 0);
        uint256 fund = p.vault.fundAccount();
        uint256 dustBefore = p.vault.collateralOf(fund, 4);
        p.vault.liquidate(a, all); // everything priced is taken
        // the rule: the bankrupt account is written off in the same call, before anyone withdraws ahead of the loss;
        // the collateral without a price passes to the fund with the debt
        require(p.vault.settlementOf(a) == 0, "debt left");
        require(p.vault.collateralOf(a, 4) == 0, "unpriced dust left with the account");
        require(p.vault.collateralOf(fund, 4) == dustBefore + 1, "the fund did not receive the dust");
        (uint256 markets, uint256 collaterals) = p.vault.masksOf(a);
        require(markets == 0 && collaterals == 0, "account not empty");
    }

    /// @notice E3 / R1 (found by E3: AttackerHandler.liquidate took an honest account from +1,139 USD to -1 wei). The
    ///         penalty is capped by the equity left after the take, E', computed in USD; storing the positive
    ///         settlement balance as shares (rounded down) afterwards loses 1 wei, so a penalty equal to E' leaves
    ///         E = -1 wei once the settlement index is below 1e18: "never makes equity negative" fails by 1 wei, and
    ///         the account becomes bankrupt (maxTake = everything).
    function test_penaltyNeverMakesEquityNegative() public {
        _setLiquidationAfterDelay(2000, 0, 100e18); // penalty 20%, deep 0
        uint256 x = p.vault.accountId(address(this), 3);
        // a socialised write-off: the index falls to 0.833e18
        (uint256 a, uint256 b) = _bankruptLong(300_000e6);
        p.vault.liquidate(a, _wholePosition(a, 0));
        // x: a 30,000 USDC claim (shares) and long 150k ETH; ETH -18.7% leaves it 2,000 USD of equity, below MM
        p.vault.deposit(x, address(p.usdc), 30_000e6);
        uint256 eth = p.oracle.price(1);
        p.vault.settleTrade(x, b, 1, 150_000e18 * 1e18 / eth, eth, 0, 0);
        p.feeds[1].updateAnswer(2440e8);
        (int256 e, uint256 mm, uint256 im) = p.vault.margin(x);
        IVaultTypes.MarginDetail memory d = p.vault.marginDetail(x);
        (uint256 liq,) = p.params.liquidationConfig();
        uint256 take = p.vault.maxTake(e, mm, im, d.gross[1], liq);
        (int256 size,) = p.vault.positionOf(x, 1);
        IVaultTypes.LiquidationItem[] memory part = new IVaultTypes.LiquidationItem[](1);
        part[0] = IVaultTypes.LiquidationItem(0, 1, uint256(size) * (take - 2) / d.gross[1]);
        p.vault.liquidate(x, part); // penalty = min(20% x taken, E', freed / 2) = E'
        (e,,) = p.vault.margin(x);
        require(e >= 0, "the penalty made equity negative");
    }

    /// @notice E4 + E5 / R4 (found by the long campaign on the dust rule: AdminHandler had set the dust threshold
    ///         to 0). "Unpriced collateral worth less than the dust threshold" was `value < dust`: with a threshold
    ///         of 0 even an account holding nothing at all was not written off (LiquidationEmpty, debt left).
    function test_emptyAccountWrittenOffWithDustThresholdZero() public {
        _setLiquidationAfterDelay(100, 5000, 0); // dust threshold 0
        (uint256 a,) = _bankruptLong(200_000e6);
        p.vault.liquidate(a, _wholePosition(a, 0));
        require(p.vault.settlementOf(a) == 0, "debt left after everything was taken");
    }

    /// @dev Subaccount 1 long 400,000 USD of BTC on 60,000 USDC against subaccount 2 (`usdcB`), then BTC -40%:
    ///      subaccount 1 owes about 100,000 USD.
    function _bankruptLong(uint256 usdcB) internal returns (uint256 a, uint256 b) {
        a = p.vault.accountId(address(this), 1);
        b = p.vault.accountId(address(this), 2);
        p.vault.deposit(a, address(p.usdc), 60_000e6);
        p.vault.deposit(b, address(p.usdc), usdcB);
        uint256 btc = p.oracle.price(0);
        p.vault.settleTrade(a, b, 0, 400_000e18 * 1e18 / btc, btc, 0, 0);
        p.feeds[0].updateAnswer(36_000e8);
    }

    function _wholePosition(uint256 account, uint8 market)
        internal
        view
        returns (IVaultTypes.LiquidationItem[] memory items)
    {
        (int256 size,) = p.vault.positionOf(account, market);
        items = new IVaultTypes.LiquidationItem[](1);
        items[0] = IVaultTypes.LiquidationItem(0, market, uint256(size));
    }

    /// @dev LIQUIDATION word with close factor 50%, keeper share 30%, min reward 5 USD and the given penalty, deep
    ///      threshold and dust, applied after the loosening delay; then every feed republishes its start price.
    function _setLiquidationAfterDelay(uint256 penaltyBps, uint256 deepBps, uint256 dust) internal {
        p.params.setLiquidation(5000, penaltyBps, 3000, deepBps, 5e18, dust); // queued (a loosening) ...
        Env.VM.warp(block.timestamp + Env.LOOSEN_DELAY + 1);
        p.params.setLiquidation(5000, penaltyBps, 3000, deepBps, 5e18, dust); // ... and applied
        for (uint256 k; k < Env.ASSETS; ++k) {
            p.feeds[k].updateAnswer(int256(Env.startPrice(k) / 1e10));
        }
    }

    function _breakFeed(uint256 asset) internal {
        uint80 round = uint80(p.feeds[asset].latestRound());
        uint256 old = block.timestamp - Env.MAX_AGE - 1;
        p.feeds[asset].updateRoundData(round, int256(Env.startPrice(asset) / 1e10), old, old);
    }
}
