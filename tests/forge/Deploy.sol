// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {CrossMarginVault} from "../../contracts/CrossMarginVault.sol";
import {ICrossMarginVault} from "../../contracts/interfaces/ICrossMarginVault.sol";
import {OptionMarkets} from "../../contracts/OptionMarkets.sol";
import {IOptionMarkets} from "../../contracts/interfaces/IOptionMarkets.sol";
import {OracleRouter} from "../../contracts/OracleRouter.sol";
import {RiskParameters} from "../../contracts/RiskParameters.sol";
import {TestToken, ChainlinkFeed} from "../../contracts/test/TestTokens.sol";
import {TestVenue} from "../../contracts/test/TestVenue.sol";
import {LiquidationLooper} from "../../contracts/test/LiquidationLooper.sol";
import {Env} from "./Env.sol";

/// @notice Handles to the deployed protocol.
struct Protocol {
    TestToken usdc;
    TestToken[5] tokens; // by collateral id (= asset)
    ChainlinkFeed[5] feeds; // by asset
    OracleRouter oracle;
    RiskParameters params;
    ICrossMarginVault vault;
    TestVenue venue;
    LiquidationLooper looper;
    IOptionMarkets options;
    ChainlinkFeed[4] volFeeds; // by asset (0..3)
}

/// @notice The local deployment of scripts/deploy.py (`deploy_local`) with the default risk set
///         (offchain/margin/defaults.py), plus what the campaign needs: a fifth asset DUST (collateral 4, no market,
///         its own feed, for dust deposits of a stale or unpriced token), a second market on ETH (market 4), a
///         loosening delay of 600 s, the unsigned TestVenue, a LiquidationLooper, a smaller insurance fund and
///         open-interest caps of 100 million USD (funding and deleveraging on, as by default), and options: volatility
///         feeds on assets 0..3 (60%, 75%, 100%, 100%; a day's maximum age, bounds 5% .. 500%, as scripts/deploy.py),
///         OptionMarkets with the OPTION word of OPTIONS_DEFAULT (offchain/margin/defaults.py: skew 50% per unit of
///         log-moneyness, vol shocks +40% / -20%, 2 grid steps, short minimum 0.5%, band 1% of spot, 500 million USD
///         per series) and six series (`SERIES`). The caller holds every role.
library Deploy {
    uint256 internal constant FUND_SEED = 50_000e6;

    function protocol() internal returns (Protocol memory p) {
        p.usdc = new TestToken("USD Coin", "USDC", 6);
        string[5] memory symbols = ["WBTC", "WETH", "WSOL", "LINK", "DUST"];
        p.oracle = new OracleRouter(address(this), address(0), 0);
        for (uint256 k; k < Env.ASSETS; ++k) {
            p.tokens[k] = new TestToken(symbols[k], symbols[k], uint8(Env.decimals(k)));
            p.feeds[k] = new ChainlinkFeed(uint8(Env.FEED_DECIMALS), int256(Env.startPrice(k) / 1e10));
            p.oracle.setFeed(k, address(p.feeds[k]), uint32(Env.MAX_AGE));
        }
        p.params = new RiskParameters(address(this));
        p.params.grantRole(p.params.RISK_ADMIN_ROLE(), address(this));
        p.params.grantRole(p.params.GUARDIAN_ROLE(), address(this));
        p.vault = ICrossMarginVault(address(new CrossMarginVault(p.params, p.oracle, p.usdc)));
        p.params.setVault(address(p.vault));
        for (uint256 k; k < Env.COLLATERALS; ++k) {
            p.vault.listCollateral(address(p.tokens[k]), k);
        }
        for (uint256 m; m < Env.MARKETS; ++m) {
            p.vault.listMarket(Env.marketAsset(m));
        }
        p.venue = new TestVenue(p.vault);
        p.vault.setVenue(address(p.venue), true);
        p.looper = new LiquidationLooper(p.vault);
        for (uint256 k; k < Env.VOL_ASSETS; ++k) {
            p.volFeeds[k] = new ChainlinkFeed(uint8(Env.FEED_DECIMALS), int256(Env.startVol(k)));
            p.oracle.setVolFeed(
                k, address(p.volFeeds[k]), uint32(Env.VOL_MAX_AGE), uint32(Env.MIN_VOL_BPS), uint32(Env.MAX_VOL_BPS)
            );
        }
        p.options = new OptionMarkets(address(p.vault), p.oracle, p.params);
        p.vault.setOptionMarkets(p.options);
        _applyDefaultSpec(p.params);
        listSeries(p);
        // the insurance fund's seed: 50,000 USDC (1,000,000 on a local chain), so that write-offs outgrow it and
        // socialised losses (the settlement index) are exercised
        p.usdc.mint(address(this), FUND_SEED);
        p.usdc.approve(address(p.vault), FUND_SEED);
        p.vault.deposit(p.vault.fundAccount(), address(p.usdc), FUND_SEED);
    }

    /// @notice The campaign's series at the start (slot: asset, call/put, strike, days to expiry): 0 BTC call 60k 30 d,
    ///         1 BTC put 55k 30 d, 2 BTC call 63k 2 d, 3 ETH call 3,000 7 d, 4 ETH put 2,800 1 d, 5 SOL call 160
    ///         3 d. The short ones expire within a run (MarketHandler.expire warps to them); slots 6..9 start empty
    ///         (MarketHandler.listSeries fills free slots).
    function listSeries(Protocol memory p) internal {
        uint8[6] memory asset = [uint8(0), 0, 0, 1, 1, 2];
        bool[6] memory isCall = [true, false, true, true, false, true];
        uint32[6] memory strike = [uint32(60_000), 55_000, 63_000, 3_000, 2_800, 160];
        uint16[6] memory days_ = [uint16(30), 30, 2, 7, 1, 3];
        for (uint256 s; s < 6; ++s) {
            uint256 expiry = block.timestamp + days_[s] * 1 days;
            p.options.listSeries(s, asset[s], isCall[s], uint256(strike[s]) * Env.WAD, expiry);
        }
    }

    /// @dev The campaign's own parameter set: the default set before its through-the-cycle calibration (risk weights
    ///      10-18%, offchain/margin/defaults.py history), with DUST (asset 4) at a 30% weight and haircut. The
    ///      invariants hold for any bounded set; the handlers' sizes and the unit tests' fixtures are written for this
    ///      one, whose lower weights let more leverage (and so more liquidations and write-offs) into the campaign.
    function _applyDefaultSpec(RiskParameters params) private {
        uint16[5] memory rw = [uint16(1000), 1200, 1800, 1800, 3000];
        for (uint256 k; k < Env.ASSETS; ++k) {
            params.setRiskWeight(k, rw[k]);
        }
        params.setCorrelation(0, 1, 8000);
        params.setCorrelation(0, 2, 7000);
        params.setCorrelation(0, 3, 6500);
        params.setCorrelation(1, 2, 7500);
        params.setCorrelation(1, 3, 7000);
        params.setCorrelation(2, 3, 6500);
        int16[8][7] memory stress = [
            [int16(-1000), -1200, -1800, -1800, 0, 0, 0, 0], // crash
            [int16(1000), 1200, 1800, 1800, 0, 0, 0, 0], // rally
            [int16(400), -600, -900, -900, 0, 0, 0, 0], // btc_up_alts_down
            [int16(-400), 600, 900, 900, 0, 0, 0, 0], // btc_down_alts_up
            [int16(0), -800, 0, 0, 0, 0, 0, 0], // eth_decouple
            [int16(0), 0, -3000, 0, 0, 0, 0, 0], // sol_collapse
            [int16(0), 0, 0, -3000, 0, 0, 0, 0] // link_collapse
        ];
        for (uint256 s; s < stress.length; ++s) {
            params.setStressVector(s, stress[s]);
        }
        params.setMarginScalars(15_000, 50, 100);
        uint16[5] memory haircut = [uint16(800), 1000, 1500, 1500, 3000];
        uint16[5] memory discount = [uint16(400), 500, 750, 750, 1500];
        for (uint256 j; j < Env.COLLATERALS; ++j) {
            params.setHaircut(j, haircut[j]);
            params.setLiquidationDiscount(j, discount[j]);
        }
        for (uint256 m; m < Env.MARKETS; ++m) {
            // open interest up to 100 million USD at the start price (a premium depth of 200,000 USD of fees: fills
            // that pay fees move the rate), positions up to 1e9 units (int96 positions: caps < 4e28)
            uint256 oiCap = 1e8 * Env.WAD * Env.WAD / Env.startPrice(Env.marketAsset(m));
            params.setMarket(m, rw[Env.marketAsset(m)], oiCap, 1e9 * Env.WAD);
        }
        params.setLiquidation(5000, 100, 3000, 5000, 5 * Env.WAD, 100 * Env.WAD);
        params.setPriceBand(200);
        // FUNDING_DEFAULT: window 1 h, period 8 h, premium cap and depth 20 bps, 0.1% per hour at most, clamp 10% of
        // the risk weight, no interest term, deleveraging up to 50% of the opposite side's maintenance margin
        params.setFunding(3600, 8 hours, 20, 20, 1000, 1000, 0, 5000);
        require(params.fundingWord() != 0, "the campaign runs with funding off");
        // OPTIONS_DEFAULT (offchain/margin/defaults.py), set before the loosening delay starts
        params.setOptionGrid(4000, 2000, 2, 50);
        params.setOptionTrading(100, 500_000_000);
        for (uint256 k; k < Env.VOL_ASSETS; ++k) {
            params.setOptionSkew(k, 5000);
        }
        params.setLoosenDelay(Env.LOOSEN_DELAY);
    }
}
