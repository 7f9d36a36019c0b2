// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {RiskParameters} from "../../../contracts/RiskParameters.sol";
import {Protocol} from "../Deploy.sol";
import {Env} from "../Env.sol";
import {Ledger} from "../Ledger.sol";
import {HandlerBase} from "./HandlerBase.sol";

/// @title AdminHandler — the risk admin (and guardian) editing parameters in both directions.
/// @notice `propose` calls one of ten setters of RiskParameters with bounded arguments around the default set. A change
///         that cannot lower any requirement applies at once; any other is queued for the 600 s delay: the handler
///         remembers queued calls, and later applies one (warping to its time) or cancels it as the guardian. After a
///         change applies, the ledger probes the accounts below MM (E5): a tightening may have put some there.
contract AdminHandler is HandlerBase {
    RiskParameters internal immutable params;
    /// @notice Calls queued and not yet applied or cancelled (calldata, replayed as is to apply).
    bytes[] public queued;
    uint256 public appliedAtOnce;
    uint256 public appliedAfterDelay;
    uint256 public queuedCount;

    constructor(Protocol memory p_, Ledger ledger_, uint256 salt_) HandlerBase(p_, ledger_, salt_) {
        params = p_.params;
    }

    /// @notice Proposes a change of kind `kindSeed % 13` with arguments from `a` and `b`: risk weight (1-40%),
    ///         correlation (-100% to 100%), stress vector (append, or edit one: shocks of -40% to 40%), pop the last
    ///         stress vector, margin scalars (alpha 1.1-2.5, basis 0-2%, floor 0-3%), haircut (discount to 60%),
    ///         liquidation discount (0 to the haircut), liquidation word (every field over its whole range, minimum
    ///         reward and dust up to 1,000 USD), market (rate 5-30%, caps 1,000 units to the defaults), price band
    ///         (0.5-5%), and the dynamic add-ons: a volatility scaler (100-400%), the correlation break (0-100%), a
    ///         market's liquidation depth (0: off, or 10 million to 650 billion USD).
    function propose(uint256 kindSeed, uint256 a, uint256 b) external {
        (kindSeed, a, b) = (_mix(kindSeed), _mix(a), _mix(b));
        ledger.beginWorld(msg.sig);
        bytes memory call = _change(kindSeed % 13, a, b);
        bool applied;
        if (params.readyAt(keccak256(call)) == 0) {
            _call(call);
            applied = params.readyAt(keccak256(call)) == 0;
            if (applied) ++appliedAtOnce;
            else queued.push(call);
            if (!applied) ++queuedCount;
        }
        ledger.end(false);
        if (applied) ledger.probeAll();
    }

    /// @notice Applies queued call `indexSeed`: waits (warps) until it is ready, then repeats it.
    function applyQueued(uint256 indexSeed) external worldStep {
        indexSeed = _mix(indexSeed);
        if (queued.length == 0) return;
        uint256 i = indexSeed % queued.length;
        bytes memory call = queued[i];
        uint256 ready = params.readyAt(keccak256(call));
        if (ready > block.timestamp) Env.VM.warp(ready);
        _remove(i);
        _call(call);
        require(params.readyAt(keccak256(call)) == 0, "applying left the change queued");
        ++appliedAfterDelay;
    }

    /// @notice The guardian cancels queued call `indexSeed`.
    function cancelQueued(uint256 indexSeed) external {
        indexSeed = _mix(indexSeed);
        if (queued.length == 0) return;
        uint256 i = indexSeed % queued.length;
        params.cancel(keccak256(queued[i]));
        _remove(i);
    }

    /// @dev The calldata of a change of `kind`.
    function _change(uint256 kind, uint256 a, uint256 b) internal view returns (bytes memory) {
        uint256 asset = a % Env.ASSETS;
        if (kind == 0) return abi.encodeCall(RiskParameters.setRiskWeight, (asset, Env.bound(b, 100, 4000)));
        if (kind == 1) {
            uint256 other = (asset + 1 + (a >> 8) % (Env.ASSETS - 1)) % Env.ASSETS;
            return abi.encodeCall(RiskParameters.setCorrelation, (asset, other, int256(Env.bound(b, 0, 2e4)) - 1e4));
        }
        if (kind == 2) {
            int16[8] memory shocks;
            for (uint256 k; k < Env.ASSETS; ++k) {
                shocks[k] = int16(int256((b >> (16 * k)) % 8001) - 4000);
            }
            uint256 n = (params.marginConfig().global >> 176) & 0xff;
            return abi.encodeCall(RiskParameters.setStressVector, (a % (n + 1), shocks));
        }
        if (kind == 3) return abi.encodeCall(RiskParameters.popStressVector, ());
        if (kind == 4) {
            return abi.encodeCall(
                RiskParameters.setMarginScalars,
                (Env.bound(a, 11_000, 25_000), Env.bound(b, 0, 200), Env.bound(b >> 16, 0, 300))
            );
        }
        if (kind == 5) {
            (, uint256 discounts) = params.liquidationConfig();
            uint256 discount = (discounts >> (16 * asset)) & 0xffff; // collateral j is on asset j
            return abi.encodeCall(RiskParameters.setHaircut, (asset, Env.bound(b, discount, 6000)));
        }
        if (kind == 6) {
            uint256 haircut = (params.marginConfig().haircuts >> (16 * asset)) & 0xffff;
            return abi.encodeCall(RiskParameters.setLiquidationDiscount, (asset, Env.bound(b, 0, haircut)));
        }
        if (kind == 7) {
            return abi.encodeCall(
                RiskParameters.setLiquidation,
                (
                    Env.bound(a, 1000, Env.BPS),
                    Env.bound(a >> 32, 0, 2000),
                    Env.bound(a >> 64, 0, Env.BPS),
                    Env.bound(b, 0, Env.BPS),
                    Env.bound(b >> 32, 0, 1000) * Env.WAD,
                    Env.bound(b >> 64, 0, 1000) * Env.WAD
                )
            );
        }
        if (kind == 8) {
            uint256 cap = Env.bound(b, 1e3, 1e9) * Env.WAD;
            uint256 rate = Env.bound(a >> 8, 500, 3000);
            return abi.encodeCall(RiskParameters.setMarket, (a % Env.MARKETS, rate, cap * 10, cap)); // < 2^95
        }
        if (kind == 9) return abi.encodeCall(RiskParameters.setPriceBand, (Env.bound(b, 50, 500)));
        if (kind == 10) return abi.encodeCall(RiskParameters.setVolScaler, (asset, Env.bound(b, 1e4, 4e4)));
        if (kind == 11) return abi.encodeCall(RiskParameters.setCorrelationBreak, (Env.bound(b, 0, Env.BPS)));
        uint256 units = b % 4 == 0 ? 0 : Env.bound(b >> 2, 1, type(uint16).max);
        return abi.encodeCall(RiskParameters.setMarketDepth, (a % Env.MARKETS, units));
    }

    function _call(bytes memory call) internal {
        (bool ok, bytes memory ret) = address(params).call(call);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
    }

    function _remove(uint256 i) internal {
        queued[i] = queued[queued.length - 1];
        queued.pop();
    }
}
