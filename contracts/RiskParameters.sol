// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IRiskParameters} from "./interfaces/IRiskParameters.sol";
import {RiskConfig} from "./libraries/RiskConfig.sol";

/// @notice What RiskParameters calls on its vault when the margin words or the CONTROL word change.
interface IMarginConfigSink {
    function setMarginConfigPointer(address pointer) external;
    function setControl(uint256 word) external;
}

/// @title RiskParameters
/// @notice See IRiskParameters. Every setter checks hard bounds; tightening applies at once, loosening is queued.
///         Fresh deployments fail closed: risk weights and haircuts start at 100%, market caps at zero.
contract RiskParameters is IRiskParameters, AccessControl {
    using RiskConfig for uint256;

    bytes32 public constant RISK_ADMIN_ROLE = keccak256("RISK_ADMIN_ROLE");
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    bytes32 public constant RISK_UPDATER_ROLE = keccak256("RISK_UPDATER_ROLE");
    /// @notice Largest raise (bps) an updater may make to a volatility scaler or the correlation break in one call.
    uint256 public constant MAX_UPDATER_STEP = 5000;
    /// @notice Largest raise of an asset's option skew in one call (bps per unit of log-moneyness).
    uint256 public constant MAX_SKEW_STEP = 5000;
    /// @notice Least time between two raises of the same parameter by an updater.
    uint256 public constant UPDATER_INTERVAL = 1 hours;

    uint256 private constant BPS = 1e4;

    uint256 internal _global; //      MARGIN word
    uint256[2] internal _corr; //     CORRELATION words
    uint256 internal _haircuts; //    HAIRCUT word
    uint256[8] internal _stress; //   STRESS words, two vectors each
    uint256 internal _control; //     CONTROL word
    uint256 internal _liquidation; // LIQUIDATION word
    uint256 internal _discounts; //   DISCOUNT word
    uint256 internal _funding; //     FUNDING word
    mapping(uint256 market => uint256) internal _markets; // MARKET words
    uint256 internal _addons; //      ADDON word
    uint256 internal _depths; //      DEPTH word
    uint256 internal _options; //     OPTION word
    /// @notice When an updater last raised parameter `p` (0..7: the volatility scaler of asset p; 8: the correlation
    ///         break).
    mapping(uint256 p => uint256) public updaterRaisedAt;

    /// @notice Time from which a queued change may be applied (0: none queued).
    mapping(bytes32 id => uint256) public readyAt;
    /// @notice A contract whose code (after one STOP byte) is `abi.encode(MarginConfig)` followed by the LIQUIDATION,
    ///         DISCOUNT and FUNDING words, the 16 MARKET words, the ADDON and DEPTH words and the OPTION word: the words
    ///         a margin check, a liquidation or an option fill needs, read with EXTCODECOPY instead of one cold SLOAD
    ///         each. Re-published after every change to those words.
    address public marginConfigPointer;
    /// @notice The vault told about each new pointer (set once by the admin).
    address public vault;

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        uint256 g;
        for (uint256 k; k < RiskConfig.MAX_ASSETS; ++k) {
            g = g.setU16(k, BPS); // risk weight 100% until set
        }
        g = g.setU16(8, BPS); // alpha = 1
        _global = g;
        uint256 h;
        for (uint256 j; j < RiskConfig.MAX_COLLATERALS; ++j) {
            h = h.setU16(j, BPS); // haircut 100% until set
        }
        _haircuts = h;
        _control = (uint256(100) << 8); // band 1%, no delay until set
        _liquidation = uint256(5000) | (uint256(100) << 16) | (uint256(2000) << 32); // cf 50%, penalty 1%, share 20%
        _publish();
    }

    /// @dev Writes the current margin words to a new data contract (SSTORE2 pattern), points at it and tells the vault.
    function _publish() internal {
        uint256[16] memory markets;
        for (uint256 m; m < RiskConfig.MAX_MARKETS; ++m) {
            markets[m] = _markets[m];
        }
        bytes memory runtime = abi.encodePacked(
            hex"00", _global, _corr, _haircuts, _stress, _liquidation, _discounts, _funding, markets, _addons, _depths,
            _options
        );
        // init code: PUSH4 len, DUP1, PUSH1 14, PUSH1 0, CODECOPY, PUSH1 0, RETURN, then the runtime bytes
        bytes memory init = abi.encodePacked(hex"63", uint32(runtime.length), hex"80600e6000396000f3", runtime);
        address pointer;
        assembly ("memory-safe") {
            pointer := create(0, add(init, 0x20), mload(init))
        }
        if (pointer == address(0)) revert BadIndex("publish", 0);
        marginConfigPointer = pointer;
        address v = vault;
        if (v != address(0)) IMarginConfigSink(v).setMarginConfigPointer(pointer);
    }

    /// @inheritdoc IRiskParameters
    function setVault(address vault_) external onlyRole_(DEFAULT_ADMIN_ROLE) {
        if (vault != address(0)) revert VaultAlreadySet(vault);
        vault = vault_;
        IMarginConfigSink(vault_).setMarginConfigPointer(marginConfigPointer);
        IMarginConfigSink(vault_).setControl(_control);
    }

    /// @dev Writes the CONTROL word and pushes it to the vault (which reads pause flags and band from its copy).
    function _setControl(uint256 word) internal {
        _control = word;
        address v = vault;
        if (v != address(0)) IMarginConfigSink(v).setControl(word);
        emit ParameterUpdated("control", 0, word);
    }

    // ================================================================ guards
    modifier onlyRole_(bytes32 role) {
        if (!hasRole(role, msg.sender)) revert Unauthorized(msg.sender, role);
        _;
    }

    function _bound(bytes32 name, int256 value, int256 min, int256 max) internal pure {
        if (value < min || value > max) revert OutOfBounds(name, value, min, max);
    }

    function _index(bytes32 name, uint256 index, uint256 count) internal pure {
        if (index >= count) revert BadIndex(name, index);
    }

    /// @dev True when the change may be applied now: it tightens, there is no delay, or it was queued and is ready;
    ///      applying deletes its queue entry. Otherwise queues it (first call) or reverts (repeated too early). The
    ///      id is the hash of the canonical call (`abi.encodeCall` of the decoded arguments), so extra calldata bytes
    ///      cannot make a twin that escapes `cancel`.
    function _mayApply(bool tightening, bytes memory call) internal returns (bool) {
        bytes32 id = keccak256(call);
        uint256 ready = readyAt[id];
        if (tightening || _control.loosenDelay() == 0) {
            if (ready != 0) delete readyAt[id];
            return true;
        }
        // slither-disable-next-line incorrect-equality (0 is the "not queued" sentinel, never a reachable time)
        if (ready == 0) {
            ready = block.timestamp + _control.loosenDelay();
            readyAt[id] = ready;
            emit ChangeQueued(id, call, ready);
            return false;
        }
        if (block.timestamp < ready) revert ChangeNotReady(id, ready, block.timestamp);
        delete readyAt[id];
        return true;
    }

    /// @dev True when asset `k` has a zero medium correlation (hence zero in every regime) with every other asset:
    ///      only then can a higher risk weight of `k` not lower any account's correlated charge.
    function _uncorrelated(uint256 k) internal view returns (bool) {
        for (uint256 l; l < RiskConfig.MAX_ASSETS; ++l) {
            if (l != k && RiskConfig.correlation(_corr[0], _corr[1], RiskConfig.pairIndex(k, l)) != 0) return false;
        }
        return true;
    }

    // ================================================================ views
    /// @inheritdoc IRiskParameters
    function marginConfig() external view returns (MarginConfig memory cfg) {
        RiskConfig.readMarginConfig(marginConfigPointer, cfg);
    }

    /// @inheritdoc IRiskParameters
    function tradeConfig(uint256 marketId) external view returns (uint256, uint256) {
        return (_control, _markets[marketId]);
    }

    /// @inheritdoc IRiskParameters
    function liquidationConfig() external view returns (uint256, uint256) {
        return (_liquidation, _discounts);
    }

    /// @inheritdoc IRiskParameters
    function control() external view returns (uint256) {
        return _control;
    }

    /// @inheritdoc IRiskParameters
    function marketWord(uint256 marketId) external view returns (uint256) {
        return _markets[marketId];
    }

    /// @inheritdoc IRiskParameters
    function hasRole(bytes32 role, address account)
        public
        view
        override(AccessControl, IRiskParameters)
        returns (bool)
    {
        return super.hasRole(role, account);
    }

    // ================================================================ setters
    /// @inheritdoc IRiskParameters
    function setRiskWeight(uint256 asset, uint256 bps) external onlyRole_(RISK_ADMIN_ROLE) {
        _index("asset", asset, RiskConfig.MAX_ASSETS);
        _bound("riskWeight", int256(bps), 100, int256(BPS));
        bool tightening = bps >= _global.riskWeight(asset) && _uncorrelated(asset);
        if (!_mayApply(tightening, abi.encodeCall(this.setRiskWeight, (asset, bps)))) return;
        _global = _global.setU16(asset, bps);
        emit ParameterUpdated("margin", 0, _global);
        _publish();
    }

    /// @inheritdoc IRiskParameters
    function setCorrelation(uint256 a, uint256 b, int256 bps) external onlyRole_(RISK_ADMIN_ROLE) {
        _index("asset", a, RiskConfig.MAX_ASSETS);
        _index("asset", b, RiskConfig.MAX_ASSETS);
        if (a == b) revert BadIndex("pair", a);
        _bound("correlation", bps, -int256(BPS), int256(BPS));
        if (!_mayApply(false, abi.encodeCall(this.setCorrelation, (a, b, bps)))) return;
        uint256 p = RiskConfig.pairIndex(a, b);
        _corr[p / 16] = _corr[p / 16].setI16(16 * (p % 16), bps);
        emit ParameterUpdated("correlation", p / 16, _corr[p / 16]);
        _publish();
    }

    /// @inheritdoc IRiskParameters
    function setStressVector(uint256 s, int16[8] calldata shocks) external onlyRole_(RISK_ADMIN_ROLE) {
        uint256 n = _global.numStress();
        if (s > n || s >= RiskConfig.MAX_STRESS) revert BadIndex("stress", s);
        uint256 offset = 128 * (s % 2);
        uint256 word = _stress[s / 2];
        for (uint256 k; k < 8; ++k) {
            int256 v = shocks[k];
            _bound("shock", v, -int256(BPS), int256(BPS));
            word = word.setI16(offset + 16 * k, v);
        }
        // Appending a vector can only raise max_s; editing one lowers the loss of some book (a long/short pair gains
        // from a deeper shock on its short leg), so an edit is queued.
        if (!_mayApply(s == n, abi.encodeCall(this.setStressVector, (s, shocks)))) return;
        _stress[s / 2] = word;
        if (s == n) _global = (_global & ~(uint256(0xff) << 176)) | ((n + 1) << 176);
        emit ParameterUpdated("stress", s / 2, word);
        _publish();
    }

    /// @inheritdoc IRiskParameters
    function popStressVector() external onlyRole_(RISK_ADMIN_ROLE) {
        uint256 n = _global.numStress();
        if (n == 0) revert BadIndex("stress", 0);
        if (!_mayApply(false, abi.encodeCall(this.popStressVector, ()))) return;
        uint256 s = n - 1;
        _stress[s / 2] &= ~(uint256(type(uint128).max) << (128 * (s % 2)));
        _global = (_global & ~(uint256(0xff) << 176)) | (s << 176);
        emit ParameterUpdated("stress", s / 2, _stress[s / 2]);
        _publish();
    }

    /// @inheritdoc IRiskParameters
    function setMarginScalars(uint256 alphaBps, uint256 basisBps, uint256 floorBps)
        external
        onlyRole_(RISK_ADMIN_ROLE)
    {
        _bound("alpha", int256(alphaBps), int256(BPS), 3e4);
        _bound("basisAddon", int256(basisBps), 0, 2000);
        _bound("floor", int256(floorBps), 0, 5000);
        uint256 g = _global;
        bool tightening = alphaBps >= g.alpha() && basisBps >= g.basisAddon() && floorBps >= g.floorRate();
        if (!_mayApply(tightening, abi.encodeCall(this.setMarginScalars, (alphaBps, basisBps, floorBps)))) return;
        _global = g.setU16(8, alphaBps).setU16(9, basisBps).setU16(10, floorBps);
        emit ParameterUpdated("margin", 0, _global);
        _publish();
    }

    /// @inheritdoc IRiskParameters
    function setHaircut(uint256 j, uint256 bps) external onlyRole_(RISK_ADMIN_ROLE) {
        _index("collateral", j, RiskConfig.MAX_COLLATERALS);
        _bound("haircut", int256(bps), 0, int256(BPS));
        if (bps < _discounts.u16(j)) revert DiscountAboveHaircut(j, _discounts.u16(j), bps);
        if (!_mayApply(bps >= _haircuts.u16(j), abi.encodeCall(this.setHaircut, (j, bps)))) return;
        _haircuts = _haircuts.setU16(j, bps);
        emit ParameterUpdated("haircut", 0, _haircuts);
        _publish();
    }

    /// @inheritdoc IRiskParameters
    function setLiquidationDiscount(uint256 j, uint256 bps) external onlyRole_(RISK_ADMIN_ROLE) {
        _index("collateral", j, RiskConfig.MAX_COLLATERALS);
        _bound("discount", int256(bps), 0, 5000);
        if (bps > _haircuts.u16(j)) revert DiscountAboveHaircut(j, bps, _haircuts.u16(j));
        if (!_mayApply(false, abi.encodeCall(this.setLiquidationDiscount, (j, bps)))) return;
        _discounts = _discounts.setU16(j, bps);
        emit ParameterUpdated("discount", 0, _discounts);
        _publish();
    }

    /// @inheritdoc IRiskParameters
    function setMarket(uint256 marketId, uint256 standardMmrBps, uint256 maxOpenInterest, uint256 maxPositionSize)
        external
        onlyRole_(RISK_ADMIN_ROLE)
    {
        _index("market", marketId, RiskConfig.MAX_MARKETS);
        _bound("standardMmr", int256(standardMmrBps), 10, int256(BPS));
        // positions are stored as int96 (the fund's can reach the open interest)
        _bound("maxOpenInterest", int256(maxOpenInterest), 0, int256(type(int96).max));
        _bound("maxPositionSize", int256(maxPositionSize), 0, int256(type(int96).max));
        uint256 m = _markets[marketId];
        bool tightening = standardMmrBps >= m.standardRate() && maxOpenInterest <= m.maxOpenInterest()
            && maxPositionSize <= m.maxPositionSize();
        bytes memory call = abi.encodeCall(this.setMarket, (marketId, standardMmrBps, maxOpenInterest, maxPositionSize));
        if (!_mayApply(tightening, call)) return;
        m = standardMmrBps | (maxOpenInterest << 16) | (maxPositionSize << 128);
        _markets[marketId] = m;
        emit ParameterUpdated("market", marketId, m);
        _publish();
    }

    /// @inheritdoc IRiskParameters
    function setLiquidation(
        uint256 closeFactorBps,
        uint256 penaltyBps,
        uint256 keeperShareBps,
        uint256 deepBps,
        uint256 minKeeperReward,
        uint256 dust
    ) external onlyRole_(RISK_ADMIN_ROLE) {
        _bound("closeFactor", int256(closeFactorBps), 1000, int256(BPS));
        _bound("penalty", int256(penaltyBps), 0, 2000);
        _bound("keeperShare", int256(keeperShareBps), 0, int256(BPS));
        _bound("deep", int256(deepBps), 0, int256(BPS));
        _bound("minKeeperReward", int256(minKeeperReward), 0, 1000e18);
        _bound("dust", int256(dust), 0, 1e24);
        bytes memory call = abi.encodeCall(
            this.setLiquidation, (closeFactorBps, penaltyBps, keeperShareBps, deepBps, minKeeperReward, dust)
        );
        if (!_mayApply(false, call)) return;
        _liquidation = closeFactorBps | (penaltyBps << 16) | (keeperShareBps << 32) | (deepBps << 48)
            | (minKeeperReward << 64) | (dust << 160);
        emit ParameterUpdated("liquidation", 0, _liquidation);
        _publish();
    }

    /// @inheritdoc IRiskParameters
    function setFunding(
        uint256 window,
        uint256 period,
        uint256 premiumCapBps,
        uint256 depthBps,
        uint256 maxRatePerHour,
        uint256 clampBps,
        int256 interestPerHour,
        uint256 adlShareBps
    ) external onlyRole_(RISK_ADMIN_ROLE) {
        uint256 word =
            _fundingWord(window, period, premiumCapBps, depthBps, maxRatePerHour, clampBps, interestPerHour, adlShareBps);
        bytes memory call = abi.encodeCall(
            this.setFunding,
            (window, period, premiumCapBps, depthBps, maxRatePerHour, clampBps, interestPerHour, adlShareBps)
        );
        if (!_mayApply(false, call)) return;
        _funding = word;
        emit ParameterUpdated("funding", 0, word);
        _publish();
    }

    /// @dev The FUNDING word of `setFunding`'s arguments, after checking their bounds.
    function _fundingWord(
        uint256 window,
        uint256 period,
        uint256 premiumCapBps,
        uint256 depthBps,
        uint256 maxRatePerHour,
        uint256 clampBps,
        int256 interestPerHour,
        uint256 adlShareBps
    ) internal pure returns (uint256) {
        _bound("fundingWindow", int256(window), 60, 7 days);
        _bound("fundingPeriod", int256(period), 1 hours, 30 days);
        _bound("premiumCap", int256(premiumCapBps), 0, 500);
        // the least depth at which moving the premium costs more in fees than it can earn (ICrossMarginVault)
        _bound("premiumDepth", int256(depthBps), int256((64 * premiumCapBps * window + 10 * period - 1) / (10 * period)),
            int256(BPS));
        _bound("maxFundingRate", int256(maxRatePerHour), 0, 10_000);
        _bound("fundingClamp", int256(clampBps), 0, int256(BPS));
        _bound("interest", interestPerHour, -100, 100);
        _bound("adlShare", int256(adlShareBps), 0, int256(BPS));
        return window | (period << 32) | (premiumCapBps << 64) | (depthBps << 80) | (maxRatePerHour << 96)
            | (clampBps << 112) | (uint256(uint16(int16(interestPerHour))) << 128) | (adlShareBps << 144);
    }

    /// @inheritdoc IRiskParameters
    function fundingWord() external view returns (uint256) {
        return _funding;
    }

    /// @inheritdoc IRiskParameters
    function setVolScaler(uint256 asset, uint256 bps) external {
        _index("asset", asset, RiskConfig.MAX_ASSETS);
        _bound("volScaler", int256(bps), int256(BPS), int256(BPS + RiskConfig.MAX_VOL_ADDON));
        uint256 current = _addons.volScaler(asset);
        if (!_mayRaise("volScaler", asset, current, bps, abi.encodeCall(this.setVolScaler, (asset, bps)))) return;
        _setAddons(_addons.setU16(asset, bps - BPS));
    }

    /// @inheritdoc IRiskParameters
    function setCorrelationBreak(uint256 bps) external {
        _bound("correlationBreak", int256(bps), 0, int256(BPS));
        uint256 current = _addons.correlationBreak();
        if (!_mayRaise("correlationBreak", 8, current, bps, abi.encodeCall(this.setCorrelationBreak, (bps)))) return;
        _setAddons(_addons.setU16(8, bps));
    }

    /// @dev The rule of the dynamic add-ons: the risk admin as for any parameter (raise at once, lower queued); an
    ///      updater raises by at most MAX_UPDATER_STEP, once per UPDATER_INTERVAL for parameter `p`, and queues a
    ///      lowering like the admin.
    function _mayRaise(bytes32 name, uint256 p, uint256 current, uint256 requested, bytes memory call)
        internal
        returns (bool)
    {
        bool raise = requested >= current;
        if (!hasRole(RISK_ADMIN_ROLE, msg.sender)) {
            if (!hasRole(RISK_UPDATER_ROLE, msg.sender)) revert Unauthorized(msg.sender, RISK_UPDATER_ROLE);
            if (raise) {
                uint256 next = updaterRaisedAt[p] + UPDATER_INTERVAL;
                if (requested - current > MAX_UPDATER_STEP || block.timestamp < next) {
                    revert UpdaterLimit(name, current, requested, next);
                }
                updaterRaisedAt[p] = block.timestamp;
            }
        }
        return _mayApply(raise, call);
    }

    function _setAddons(uint256 word) internal {
        _addons = word;
        emit ParameterUpdated("addons", 0, word);
        _publish();
    }

    /// @inheritdoc IRiskParameters
    function setMarketDepth(uint256 marketId, uint256 depthUnits) external onlyRole_(RISK_ADMIN_ROLE) {
        _index("market", marketId, RiskConfig.MAX_MARKETS);
        _bound("marketDepth", int256(depthUnits), 0, int256(uint256(type(uint16).max)));
        uint256 current = _depths.u16(marketId);
        bool tightening = depthUnits != 0 && (current == 0 || depthUnits <= current);
        if (!_mayApply(tightening, abi.encodeCall(this.setMarketDepth, (marketId, depthUnits)))) return;
        _depths = _depths.setU16(marketId, depthUnits);
        emit ParameterUpdated("depths", 0, _depths);
        _publish();
    }

    /// @inheritdoc IRiskParameters
    function addonWords() external view returns (uint256, uint256) {
        return (_addons, _depths);
    }

    /// @inheritdoc IRiskParameters
    function optionWord() external view returns (uint256) {
        return _options;
    }

    /// @inheritdoc IRiskParameters
    function setOptionSkew(uint256 asset, uint256 bps) external onlyRole_(RISK_ADMIN_ROLE) {
        _index("asset", asset, RiskConfig.MAX_ASSETS);
        uint256 current = _options.skew(asset);
        _bound("optionSkew", int256(bps), 0, int256(Math.min(20_000, current + MAX_SKEW_STEP)));
        if (!_mayApply(bps >= current, abi.encodeCall(this.setOptionSkew, (asset, bps)))) return;
        _setOptions(_options.setU16(asset, bps));
    }

    /// @inheritdoc IRiskParameters
    function setOptionGrid(uint256 volUpBps, uint256 volDownBps, uint256 steps, uint256 shortMinBps)
        external
        onlyRole_(RISK_ADMIN_ROLE)
    {
        _bound("volUp", int256(volUpBps), 0, 20_000);
        _bound("volDown", int256(volDownBps), 0, 9_000);
        _bound("gridSteps", int256(steps), 1, 4);
        _bound("shortMin", int256(shortMinBps), 0, 5_000);
        uint256 o = _options;
        uint256 oldSteps = o.gridSteps();
        bool tightening = volUpBps >= o.volUp() && volDownBps >= o.volDown() && shortMinBps >= o.shortMin()
            && (oldSteps == 0 || steps % oldSteps == 0);
        bytes memory call = abi.encodeCall(this.setOptionGrid, (volUpBps, volDownBps, steps, shortMinBps));
        if (!_mayApply(tightening, call)) return;
        o = (o & ~(uint256(type(uint56).max) << 128)) | (volUpBps << 128) | (volDownBps << 144) | (steps << 160)
            | (shortMinBps << 168);
        _setOptions(o);
    }

    /// @inheritdoc IRiskParameters
    function setOptionTrading(uint256 bandBps, uint256 maxOpenInterestUsd) external onlyRole_(RISK_ADMIN_ROLE) {
        _bound("optionBand", int256(bandBps), 1, 2_000);
        _bound("optionOpenInterest", int256(maxOpenInterestUsd), 0, int256(uint256(type(uint56).max)));
        uint256 o = _options;
        bool tightening = bandBps <= o.optionBand() && maxOpenInterestUsd <= o.optionMaxOpenInterest();
        if (!_mayApply(tightening, abi.encodeCall(this.setOptionTrading, (bandBps, maxOpenInterestUsd)))) return;
        _setOptions((o & ((uint256(1) << 184) - 1)) | (bandBps << 184) | (maxOpenInterestUsd << 200));
    }

    function _setOptions(uint256 word) internal {
        _options = word;
        emit ParameterUpdated("options", 0, word);
        _publish();
    }

    /// @inheritdoc IRiskParameters
    function setPriceBand(uint256 bps) external onlyRole_(RISK_ADMIN_ROLE) {
        _bound("priceBand", int256(bps), 10, 2000);
        if (!_mayApply(bps <= _control.priceBand(), abi.encodeCall(this.setPriceBand, (bps)))) return;
        _setControl((_control & ~(uint256(0xffff) << 8)) | (bps << 8));
    }

    /// @inheritdoc IRiskParameters
    function setLoosenDelay(uint256 seconds_) external onlyRole_(DEFAULT_ADMIN_ROLE) {
        _bound("loosenDelay", int256(seconds_), 0, 30 days);
        if (!_mayApply(seconds_ >= _control.loosenDelay(), abi.encodeCall(this.setLoosenDelay, (seconds_)))) return;
        _setControl((_control & ~(uint256(0xffffffff) << 24)) | (seconds_ << 24));
    }

    /// @inheritdoc IRiskParameters
    function setPause(uint256 flags) external {
        _bound("pauseFlags", int256(flags), 0, 3);
        uint256 current = _control & 3;
        bool clears = current & ~flags != 0;
        bytes32 role = clears ? DEFAULT_ADMIN_ROLE : GUARDIAN_ROLE;
        if (!hasRole(role, msg.sender) && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) revert Unauthorized(msg.sender, role);
        _setControl((_control & ~uint256(3)) | flags);
        emit PauseSet(flags);
    }

    /// @inheritdoc IRiskParameters
    function cancel(bytes32 id) external {
        if (!hasRole(GUARDIAN_ROLE, msg.sender) && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) {
            revert Unauthorized(msg.sender, GUARDIAN_ROLE);
        }
        if (readyAt[id] == 0) revert BadIndex("queued", uint256(id));
        delete readyAt[id];
        emit ChangeCancelled(id);
    }
}
