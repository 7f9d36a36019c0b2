// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title IRiskParameters — every risk parameter of xmargin, bounded, with delayed loosening.
/// @notice Parameters are stored packed so a margin check reads a handful of slots. The packed layouts are
///         part of the spec (the off-chain mirror decodes the same words); `RiskConfig` decodes them.
///
///         MARGIN word (`marginConfig().global`), all ratios in basis points (1e4 = 100%):
///           bits [16k, 16k+16)  riskWeight of asset k (k = 0..7), uint16
///           bits [128, 144)     alpha  (IM = alpha * MM), >= 1e4
///           bits [144, 160)     basis add-on b on hedged-within-asset notional
///           bits [160, 176)     floor f on the sum of |net delta|
///           bits [176, 184)     number of published stress vectors (<= 16)
///         CORRELATION words (2): medium-regime correlation of the asset pair p, int16 bps at 16*(p % 16) of word
///           p / 16, pairs (k < l) ordered (0,1), (0,2) .. (0,7), (1,2) .. (6,7).
///         HAIRCUT word: haircut of collateral j (j = 0..15), uint16 bps at bits [16j, 16j+16).
///         STRESS words: vector s in word s / 2 at bit offset 128 * (s % 2); its shock for asset k is an int16 (bps of
///           price) at offset + 16k.
///         CONTROL word: bit 0 trades paused, bit 1 deposits paused, bits [8,24) price band (bps), bits [24,56)
///           loosening delay (seconds).
///         LIQUIDATION word: [0,16) close factor, [16,32) penalty, [32,48) keeper share of the penalty,
///           [48,64) deep-underwater threshold (E < threshold * MM closes 100%), all bps; [64,160) minimum keeper reward
///           and [160,256) dust threshold, both uint96 USD 1e18.
///         DISCOUNT word: liquidation discount of collateral j, uint16 bps at [16j, 16j+16), at most 50% and never above
///           its haircut.
///         MARKET word (per market): [0,16) standard per-position maintenance rate (bps), [16,128) max open interest
///           and [128,240) max position size, both uint112 base units 1e18.
///         FUNDING word (every market; all zero: no funding and no deleveraging): [0,32) premium window W (seconds),
///           [32,64) funding period P (seconds: a premium p is paid over P, i.e. p / P per second), [64,80) premium cap
///           c (bps of price: a fill's premium counts at most +-c), [80,96) premium depth (bps of the notional of
///           the market's open-interest cap, in fee USD), [96,112) max rate (millionths of notional per hour), [112,128) clamp
///           (bps of the asset's risk weight, per hour), [128,144) interest (int16, millionths per hour, longs pay
///           when positive), [144,160) deleveraging share (bps of the opposite side's maintenance margin one write-off
///           may charge it). The rule is in ICrossMarginVault ("Funding", "Deleveraging").
///         ADDON word (the dynamic add-ons, all zero: none): [16k, 16k+16) volatility add-on of asset k (bps above
///           100%: the asset's volatility scaler is v_k = 1e4 + this, at most 4e4), [128,144) correlation break (bps:
///           the share of every hedging credit the low regime withdraws). The margin multiplies its correlated charge by
///           sum_k v_k |WS_k| / (1e4 sum_k |WS_k|) and, in the low regime, scales each pair term whose sign is
///           opposite to the diagonal's by (1 - break) (PortfolioMargin).
///         DEPTH word: liquidation depth L_m of market m, uint16 at [16m, 16m+16) in units of 10 million USD (0: no
///           concentration charge): a position of notional N in market m adds N * sqrt(N / L_m) to its maintenance
///           margin (the square-root impact of unwinding it).
///
///         OPTION word (options, docs/options.md; all zero: no option can trade): [16k, 16k+16) skew of asset k (bps of
///           volatility per unit of |ln(S/K)|, <= 20,000), [128,144) the grid's volatility shock up (bps, <= 20,000),
///           [144,160) its shock down (bps, <= 9,000), [160,168) spot steps per side n (1 .. 4: 2n + 1 points over
///           +-RW), [168,184) short-option minimum (bps of |size| * spot, <= 5,000), [184,200) fill band (bps of
///           spot around the model mark, 1 .. 2,000), [200,256) max open interest per series (sum of long sizes
///           times spot, whole USD).
///         Roles: DEFAULT_ADMIN_ROLE (meant to be a timelock; sets the loosening delay and the vault), RISK_ADMIN_ROLE
///         (sets every other parameter), GUARDIAN_ROLE
///         (pauses trades and deposits, cancels queued changes), RISK_UPDATER_ROLE (a keeper-like updater of the
///         volatility scalers and the correlation break: raises apply at once but by at most MAX_UPDATER_STEP bps per
///         call and once per UPDATER_INTERVAL per parameter; lowering is queued like any loosening). A change takes effect at once only if it cannot lower
///         any account's requirement (it "tightens"); any other change is queued: the first call records it, the same
///         call repeated after the delay applies it. With a delay of zero every change applies at once (deployment
///         set-up). The queue id is keccak256 of the canonical call (selector and ABI-encoded decoded arguments, as
///         emitted in `ChangeQueued`); applying a change, at once or after its delay, deletes its entry.
interface IRiskParameters {
    /// @notice The words a margin check needs, in one call.
    struct MarginConfig {
        uint256 global;
        uint256 corr0;
        uint256 corr1;
        uint256 haircuts;
        uint256[8] stress; // words beyond ceil(numStress / 2) are zero
        uint256 addons; // the ADDON word
        uint256 depths; // the DEPTH word
    }

    /// @notice A value outside the hard bounds of its setter.
    error OutOfBounds(bytes32 parameter, int256 value, int256 min, int256 max);
    /// @notice An index (asset, collateral, market, stress vector, correlation pair) out of range.
    error BadIndex(bytes32 parameter, uint256 index);
    /// @notice A loosening change re-submitted before its delay has passed.
    error ChangeNotReady(bytes32 id, uint256 readyAt, uint256 nowTimestamp);
    /// @notice The caller lacks the role the action needs.
    error Unauthorized(address caller, bytes32 role);
    /// @notice `setVault` called when a vault is already set.
    error VaultAlreadySet(address vault);
    /// @notice A liquidation discount above the haircut of its collateral.
    error DiscountAboveHaircut(uint256 collateral, uint256 discount, uint256 haircut);

    /// @notice A loosening change was queued; it can be applied from `readyAt` by repeating the same call.
    event ChangeQueued(bytes32 indexed id, bytes call, uint256 readyAt);
    /// @notice A queued change was cancelled by the guardian or admin.
    event ChangeCancelled(bytes32 indexed id);
    /// @notice A parameter word changed (the new packed value; `index` names the word in its family).
    event ParameterUpdated(bytes32 indexed parameter, uint256 indexed index, uint256 word);
    /// @notice Pause flags changed (bit 0 trades, bit 1 deposits).
    event PauseSet(uint256 flags);

    /// @return The words a margin check reads. They are published as the code of a data contract (one STOP byte, then
    ///         the 12 words global, corr0, corr1, haircuts, stress[8], then the LIQUIDATION, DISCOUNT and FUNDING words,
    ///         the 16 MARKET words, the ADDON and DEPTH words, and the OPTION word: 1,089 bytes) re-created on every
    ///         change and pushed to the vault, which reads them with one cold account access instead of a cold SLOAD
    ///         per word (the OPTION word: instead of a call here from each option fill and margin check).
    function marginConfig() external view returns (MarginConfig memory);
    /// @return The current data contract holding the margin words.
    function marginConfigPointer() external view returns (address);
    /// @notice Admin, once: the vault that receives each new margin-config pointer.
    function setVault(address vault) external;
    /// @return controlWord The CONTROL word. @return marketConfigWord The MARKET word of `marketId`.
    function tradeConfig(uint256 marketId) external view returns (uint256 controlWord, uint256 marketConfigWord);
    /// @return liquidation The LIQUIDATION word. @return discounts The DISCOUNT word.
    function liquidationConfig() external view returns (uint256 liquidation, uint256 discounts);
    /// @return The CONTROL word.
    function control() external view returns (uint256);
    /// @return The MARKET word of `marketId`.
    function marketWord(uint256 marketId) external view returns (uint256);
    /// @notice True when `account` holds `role` (shared by every xmargin contract for access control).
    function hasRole(bytes32 role, address account) external view returns (bool);

    /// @notice Risk weight of asset `asset` (bps, 1% .. 100%). Raising it tightens only when the asset's correlation
    ///         with every other asset is zero: otherwise a higher weight on the smaller leg of a hedge of positively
    ///         correlated assets lowers that book's charge, so the change is queued.
    function setRiskWeight(uint256 asset, uint256 bps) external;
    /// @notice Medium-regime correlation of assets `a` != `b` (bps, -100% .. 100%). Always treated as loosening.
    function setCorrelation(uint256 a, uint256 b, int256 bps) external;
    /// @notice Sets stress vector `s` (s <= count; s == count appends). Appending tightens; editing an existing vector
    ///         is queued (a deeper shock on one leg of a long/short book lowers that book's loss).
    function setStressVector(uint256 s, int16[8] calldata shocks) external;
    /// @notice Removes the last stress vector (loosening).
    function popStressVector() external;
    /// @notice alpha (IM/MM, 1e4 .. 3e4), basis add-on b (0 .. 20%), floor f (0 .. 50%). Tightens when none falls.
    function setMarginScalars(uint256 alphaBps, uint256 basisBps, uint256 floorBps) external;
    /// @notice Haircut of collateral `j` (0 .. 100%). Raising it tightens.
    function setHaircut(uint256 j, uint256 bps) external;
    /// @notice Liquidation discount of collateral `j` (0 .. min(50%, its haircut)). Always queued.
    function setLiquidationDiscount(uint256 j, uint256 bps) external;
    /// @notice Standard rate (0.1% .. 100%), max open interest and max position size (each at most 2^95 - 1 base
    ///         units: positions are stored as int96) of a market. Tightens when the
    ///         rate does not fall and neither cap rises.
    function setMarket(uint256 marketId, uint256 standardMmrBps, uint256 maxOpenInterest, uint256 maxPositionSize)
        external;
    /// @notice Funding and deleveraging parameters (the FUNDING word); always queued. window 60 s .. 7 days, period
    ///         1 hour .. 30 days, premiumCap 0 .. 5%, depth 0 .. 100%, maxRate 0 .. 1% per hour (10,000 millionths),
    ///         clamp 0 .. 100% of the risk weight per hour, interest -100 .. 100 millionths per hour, adlShare 0 .. 100%.
    ///         The depth must make moving the premium cost more than it can earn (ICrossMarginVault, "Funding"):
    ///         depth * period * 10 >= 64 * premiumCap * window, or `OutOfBounds("premiumDepth", ...)` with the least
    ///         depth allowed as its minimum.
    function setFunding(
        uint256 window,
        uint256 period,
        uint256 premiumCapBps,
        uint256 depthBps,
        uint256 maxRatePerHour,
        uint256 clampBps,
        int256 interestPerHour,
        uint256 adlShareBps
    ) external;
    /// @return The FUNDING word.
    function fundingWord() external view returns (uint256);
    /// @notice Volatility scaler of asset `asset` (bps, 1e4 .. 4e4: 100% .. 400%). Raising tightens (it can only raise
    ///         the weighted average that multiplies the correlated charge). The risk admin raises it by any amount; an
    ///         updater (RISK_UPDATER_ROLE) by at most MAX_UPDATER_STEP per call and once per UPDATER_INTERVAL, or
    ///         `UpdaterLimit`. Lowering is queued.
    function setVolScaler(uint256 asset, uint256 bps) external;
    /// @notice Correlation break (bps, 0 .. 1e4): the share of each hedging credit the low regime withdraws. Raising
    ///         tightens (each hedging term of the low regime shrinks toward zero); same updater rule as `setVolScaler`.
    function setCorrelationBreak(uint256 bps) external;
    /// @notice Liquidation depth of a market (units of 10 million USD, 0 .. 65,535; 0 turns its concentration charge
    ///         off). Lowering a non-zero depth, or setting one where there was none, tightens; anything else is queued.
    function setMarketDepth(uint256 marketId, uint256 depthUnits) external;
    /// @return The ADDON word. @return The DEPTH word.
    function addonWords() external view returns (uint256, uint256);
    /// @return The OPTION word.
    function optionWord() external view returns (uint256);
    /// @notice Skew of asset `asset` (bps per unit of log-moneyness, 0 .. 20,000). Raising applies at once (it raises
    ///         the value of every wing, which is what a short owes), lowering is queued. A raise also raises the value
    ///         of long wings: it is bounded per call by MAX_SKEW_STEP.
    function setOptionSkew(uint256 asset, uint256 bps) external;
    /// @notice The option grid: volatility shocks up (0 .. 20,000 bps) and down (0 .. 9,000), spot steps per side
    ///         (1 .. 4) and the short-option minimum (0 .. 5,000 bps). Tightens when no shock or minimum falls and the
    ///         new number of steps is a multiple of the old (its points include the old ones); otherwise queued.
    function setOptionGrid(uint256 volUpBps, uint256 volDownBps, uint256 steps, uint256 shortMinBps) external;
    /// @notice Option fill band (1 .. 2,000 bps of spot) and max open interest per series (whole USD, < 2^56).
    ///         Tightens when neither rises.
    function setOptionTrading(uint256 bandBps, uint256 maxOpenInterestUsd) external;
    /// @notice An updater's raise beyond its per-call step or before its interval has passed.
    error UpdaterLimit(bytes32 parameter, uint256 current, uint256 requested, uint256 nextAllowedAt);
    /// @notice Liquidation parameters; always queued. closeFactor 10% .. 100%, penalty 0 .. 20%, keeperShare 0 .. 100%,
    ///         deep 0 .. 100%, minKeeperReward <= 1,000 USD, dust <= 1,000,000 USD.
    function setLiquidation(
        uint256 closeFactorBps,
        uint256 penaltyBps,
        uint256 keeperShareBps,
        uint256 deepBps,
        uint256 minKeeperReward,
        uint256 dust
    ) external;
    /// @notice Max distance of a fill price from the oracle price (0.1% .. 20%). Narrowing tightens.
    function setPriceBand(uint256 bps) external;
    /// @notice Delay before a loosening change may be applied (0 .. 30 days). Lengthening tightens.
    /// @dev   DEFAULT_ADMIN_ROLE only.
    function setLoosenDelay(uint256 seconds_) external;
    /// @notice Guardian: set pause flags (bit 0 trades, bit 1 deposits). Only the admin may clear a flag.
    function setPause(uint256 flags) external;
    /// @notice Guardian or admin: drop a queued change.
    function cancel(bytes32 id) external;
}
