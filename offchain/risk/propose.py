"""Parameter proposals: compare a RiskSpec with what ``RiskParameters`` holds, show the effect on every account, and
submit the changes with the contract's rules (hard bounds; tightening applies at once, loosening is queued).

The classification of each change mirrors the setters of ``contracts/RiskParameters.sol``: a change applies at once
only if it cannot lower any account's requirement. Risk weight up for an asset with no correlation to any other,
haircut up, price band narrower, loosening delay longer, margin scalars none lower, market rate not lower and caps not
higher, a new stress vector appended: tightening. Correlations, a risk weight of a correlated asset, an edit of an
existing stress vector, removing one, liquidation discounts and liquidation parameters: queued. With a zero delay on
the contract everything applies at once.

Fields a proposal does not name (e.g. assets it has no risk weight for) are left as they are. The stress vectors
of the proposal replace the published list (by position).
"""
from __future__ import annotations

import json
import logging
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from eth_utils import keccak
from pydantic import ValidationError

from ..errors import ConfigError, XMarginError
from ..margin.exact import MAX_ASSETS, AccountState, Layout, MarginConfig, account_margin, i16, pair_index, u16
from ..margin.funding import FundingWord
from ..margin.params import FundingParams, LiquidationParams, MarketRisk, OptionParams, RiskSpec, StressVector

log = logging.getLogger(__name__)

RISK_ADMIN_ROLE = keccak(text="RISK_ADMIN_ROLE")
DEFAULT_ADMIN_ROLE = b"\x00" * 32
CHANGE_QUEUED_TOPIC = keccak(text="ChangeQueued(bytes32,bytes,uint256)")
MAX_STRESS = 16


class ProposalError(ConfigError):
    """A proposal that cannot be submitted as it stands (a role missing, a change the contract would refuse)."""


# ---------------------------------------------------------------------------------------------- files
def load_spec(path: Path | str) -> RiskSpec:
    """A RiskSpec from a JSON or TOML file (as ``xmargin risk calibrate`` writes). Errors name the field."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"spec file {p} does not exist: write one with `xmargin risk calibrate --out {p}`")
    try:
        raw = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"spec file {p} is not valid {p.suffix.lstrip('.').upper() or 'JSON'}: {e}") from None
    try:
        return spec_from_dict(raw)
    except ValidationError as e:
        lines = [f"invalid risk spec ({p}):"]
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
            lines.append(f"  {loc}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("\n".join(lines)) from None


def spec_to_dict(spec: RiskSpec) -> dict:
    """A JSON/TOML-friendly form (string keys; correlations as "a,b")."""
    d = spec.model_dump(mode="python")
    out: dict[str, Any] = {
        "risk_weights": {str(k): v for k, v in d["risk_weights"].items()},
        "correlations": {f"{a},{b}": v for (a, b), v in d["correlations"].items()},
        "stress": [{"name": s["name"], "shocks": {str(k): v for k, v in s["shocks"].items()}} for s in d["stress"]],
        "haircuts": {str(k): v for k, v in d["haircuts"].items()},
        "discounts": {str(k): v for k, v in d["discounts"].items()},
        "markets": {str(k): {f: str(x) if f != "standard_mmr_bps" else x for f, x in m.items()}
                    for k, m in d["markets"].items()},
        "liquidation": {f: (str(x) if f in ("min_keeper_reward", "dust") else x) for f, x in d["liquidation"].items()},
    }
    for f in ("alpha_bps", "basis_bps", "floor_bps", "price_band_bps", "loosen_delay", "correlation_break_bps"):
        out[f] = d[f]
    out["vol_scalers"] = {str(k): v for k, v in d["vol_scalers"].items()}
    if d["funding"] is not None:  # TOML has no null: no table means no funding
        out["funding"] = dict(d["funding"])
    if d["options"] is not None:  # no table: options not configured (a proposal leaves the chain's unchanged)
        o = dict(d["options"])
        o["skew_bps"] = {str(k): v for k, v in o["skew_bps"].items()}
        out["options"] = o
    return out


def spec_from_dict(raw: dict) -> RiskSpec:
    def ints(m: dict) -> dict:
        return {int(k): v for k, v in m.items()}

    try:
        data = dict(raw)
        for key in ("risk_weights", "haircuts", "discounts", "vol_scalers"):
            if key in data:
                data[key] = ints(data[key])
        if "correlations" in data:
            data["correlations"] = {tuple(int(x) for x in k.split(",")): v for k, v in data["correlations"].items()}
        if "stress" in data:
            data["stress"] = [{"name": s["name"], "shocks": ints(s.get("shocks", {}))} for s in data["stress"]]
        if "markets" in data:
            data["markets"] = {int(k): {f: int(x) for f, x in m.items()} for k, m in data["markets"].items()}
        if "liquidation" in data:
            data["liquidation"] = {f: int(x) for f, x in data["liquidation"].items()}
        if "options" in data:
            data["options"] = dict(data["options"], skew_bps=ints(data["options"].get("skew_bps", {})))
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"risk spec is malformed ({e!r}): compare with a file `xmargin risk calibrate` writes") from None
    return RiskSpec.model_validate(data)


def write_spec(spec: RiskSpec, path: Path | str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    d = spec_to_dict(spec)
    if p.suffix == ".toml":
        p.write_text(_toml(d))
    else:
        p.write_text(json.dumps(d, indent=2) + "\n")
    return p


def _toml(d: dict) -> str:
    flat = [f"{k} = {json.dumps(v)}" for k, v in d.items() if not isinstance(v, (dict, list))]
    out = flat + [""]
    for k, v in d.items():
        if isinstance(v, dict) and all(not isinstance(x, dict) for x in v.values()):
            out += [f"[{k}]"] + [f"{json.dumps(str(a))} = {json.dumps(b)}" for a, b in v.items()] + [""]
    for k, v in d.items():
        if isinstance(v, dict) and any(isinstance(x, dict) for x in v.values()):
            for a, b in v.items():
                out += [f"[{k}.{json.dumps(str(a))}]"] + [f"{f} = {json.dumps(x)}" for f, x in b.items()] + [""]
    for s in d.get("stress", []):
        out += ["[[stress]]", f"name = {json.dumps(s['name'])}",
                "shocks = { " + ", ".join(f"{json.dumps(a)} = {b}" for a, b in s["shocks"].items()) + " }", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- bounds
def bound_errors(spec: RiskSpec) -> list[str]:
    """Every value the contract's setters would refuse (``OutOfBounds``, ``BadIndex``, ``DiscountAboveHaircut``),
    as messages naming the field and the allowed range. Checked before anything is sent."""
    errs = []

    def check(name: str, v: int, lo: int, hi: int) -> None:
        if not lo <= v <= hi:
            errs.append(f"{name} = {v} is outside {lo} .. {hi}")

    for k, v in spec.risk_weights.items():
        check(f"risk_weights[{k}]", v, 100, 10_000)
        check("risk_weights asset index", k, 0, MAX_ASSETS - 1)
    for (a, b), v in spec.correlations.items():
        check(f"correlations[{a},{b}]", v, -10_000, 10_000)
        if a == b or not (0 <= a < MAX_ASSETS and 0 <= b < MAX_ASSETS):
            errs.append(f"correlations[{a},{b}] names an invalid pair (distinct assets 0..7)")
    if len(spec.stress) > MAX_STRESS:
        errs.append(f"stress has {len(spec.stress)} vectors; at most {MAX_STRESS}")
    for s in spec.stress:
        for k, v in s.shocks.items():
            check(f"stress[{s.name}].shocks[{k}]", v, -10_000, 10_000)
    check("alpha_bps", spec.alpha_bps, 10_000, 30_000)
    check("basis_bps", spec.basis_bps, 0, 2000)
    check("floor_bps", spec.floor_bps, 0, 5000)
    for j, h in spec.haircuts.items():
        check(f"haircuts[{j}]", h, 0, 10_000)
    for j, d in spec.discounts.items():
        check(f"discounts[{j}]", d, 0, 5000)
        if d > spec.haircuts.get(j, 10_000):
            errs.append(f"discounts[{j}] = {d} exceeds haircuts[{j}] = {spec.haircuts.get(j)}")
    for m, mk in spec.markets.items():
        check(f"markets[{m}].standard_mmr_bps", mk.standard_mmr_bps, 10, 10_000)
        check(f"markets[{m}].max_open_interest", mk.max_open_interest, 0, 2**95 - 1)
        check(f"markets[{m}].max_position_size", mk.max_position_size, 0, 2**95 - 1)
    lq = spec.liquidation
    check("liquidation.close_factor_bps", lq.close_factor_bps, 1000, 10_000)
    check("liquidation.penalty_bps", lq.penalty_bps, 0, 2000)
    check("liquidation.keeper_share_bps", lq.keeper_share_bps, 0, 10_000)
    check("liquidation.deep_bps", lq.deep_bps, 0, 10_000)
    check("liquidation.min_keeper_reward", lq.min_keeper_reward, 0, 1000 * 10**18)
    check("liquidation.dust", lq.dust, 0, 10**24)
    check("price_band_bps", spec.price_band_bps, 10, 2000)
    check("loosen_delay", spec.loosen_delay, 0, 30 * 86400)
    return errs


# ---------------------------------------------------------------------------------------------- on-chain state
def decode_spec(cfg: MarginConfig, liquidation: int, discounts: int, control: int, markets: Sequence[int],
                names: Sequence[str] = (), funding: int = 0, options: int = 0) -> RiskSpec:
    """The complete RiskSpec the contract holds (all 8 assets, 28 pairs, 16 collaterals), from its words (a FUNDING
    word with a zero window: funding off, ``funding`` None; an OPTION word without a grid: ``options`` None)."""
    fw = FundingWord.decode(funding)
    stress = []
    for s in range(cfg.num_stress):
        shocks = {k: cfg.shock(s, k) for k in range(MAX_ASSETS) if cfg.shock(s, k)}
        stress.append(StressVector(name=names[s] if s < len(names) else f"s{s}", shocks=shocks))
    corr = {}
    for a in range(MAX_ASSETS):
        for b in range(a + 1, MAX_ASSETS):
            corr[(a, b)] = cfg.correlation(a, b)
    mk = {m: MarketRisk(standard_mmr_bps=max(10, w & 0xFFFF), max_open_interest=(w >> 16) & (2**112 - 1),
                        max_position_size=(w >> 128) & (2**112 - 1), depth_usd=cfg.depth(m) // 10**18)
          for m, w in enumerate(markets)}
    return RiskSpec.model_construct(
        risk_weights={k: cfg.risk_weight(k) for k in range(MAX_ASSETS)}, correlations=corr, stress=stress,
        alpha_bps=cfg.alpha, basis_bps=cfg.basis_addon, floor_bps=cfg.floor_rate,
        haircuts={j: cfg.haircut(j) for j in range(16)}, discounts={j: u16(discounts, j) for j in range(16)},
        markets=mk,
        liquidation=LiquidationParams.model_construct(
            close_factor_bps=u16(liquidation, 0), penalty_bps=u16(liquidation, 1),
            keeper_share_bps=u16(liquidation, 2), deep_bps=u16(liquidation, 3),
            min_keeper_reward=(liquidation >> 64) & (2**96 - 1), dust=liquidation >> 160),
        price_band_bps=(control >> 8) & 0xFFFF, loosen_delay=(control >> 24) & 0xFFFFFFFF,
        funding=FundingParams.model_construct(**asdict(fw)) if fw.on else None,
        vol_scalers={k: cfg.vol_scaler(k) for k in range(MAX_ASSETS) if cfg.vol_scaler(k) != 10_000},
        correlation_break_bps=cfg.correlation_break,
        options=OptionParams.from_word(options) if (options >> 160) & 0xFF else None)


def read_current(chain: Any, block: int | str, n_markets: int, names: Sequence[str] = ()) -> RiskSpec:
    at = chain.at(block)
    cfg = MarginConfig.from_chain(at.params.marginConfig())
    liquidation, discounts = at.params.liquidationConfig()
    control = at.params.control()
    markets = [int(at.params.marketWord(m)) for m in range(n_markets)]
    return decode_spec(cfg, int(liquidation), int(discounts), int(control), markets, names,
                       int(at.params.fundingWord()), int(at.params.optionWord()))


# ---------------------------------------------------------------------------------------------- diff
@dataclass(frozen=True)
class Change:
    """One setter call: what it changes, whether the contract treats it as tightening, and the call."""

    what: str
    old: Any
    new: Any
    tightening: bool
    fn: str
    args: tuple
    admin: bool = False  # needs DEFAULT_ADMIN_ROLE (the loosening delay)


def diff(current: RiskSpec, proposed: RiskSpec, assets: Sequence[str] = (), market_asset: Sequence[int] = (),
         collateral_asset: Sequence[int] = ()) -> list[Change]:
    """The setter calls that turn ``current`` into ``proposed``, in a safe order (discounts before a haircut that
    falls below them; the loosening delay last). ``assets`` (names by index) and the listing (``market_asset``,
    ``collateral_asset``) only label the changes: ``risk weight BTC`` rather than ``risk weight asset 0``."""
    def asset(k: int) -> str:
        return assets[k] if k < len(assets) else f"asset {k}"

    def of(index: int, listing: Sequence[int]) -> str:
        return f" ({asset(listing[index])})" if index < len(listing) else ""

    out: list[Change] = []
    for k, v in sorted(proposed.risk_weights.items()):
        old = current.risk_weights.get(k, 10_000)
        if v != old:
            # the contract reads the correlations in force when the call runs: the current ones (correlation
            # changes are sent after the risk weights)
            uncorrelated = all(c == 0 for (a, b), c in current.correlations.items() if k in (a, b))
            out.append(Change(f"risk weight {asset(k)}", old, v, v >= old and uncorrelated, "setRiskWeight", (k, v)))
    for (a, b), v in sorted(proposed.correlations.items()):
        key = (min(a, b), max(a, b))
        old = current.correlations.get(key, 0)
        if v != old:
            out.append(Change(f"correlation {asset(key[0])}-{asset(key[1])}", old, v, False, "setCorrelation",
                              (key[0], key[1], v)))
    cur_s = [s.as_array() for s in current.stress]
    for s, vec in enumerate(proposed.stress):
        new = vec.as_array()
        old = cur_s[s] if s < len(cur_s) else None
        if old != new:
            out.append(Change(f"stress vector {s} ({vec.name})", old, new, old is None, "setStressVector", (s, new)))
    for s in range(len(proposed.stress), len(cur_s)):
        out.append(Change(f"stress vector {len(cur_s) - 1 - (s - len(proposed.stress))} removed", cur_s[s], None,
                          False, "popStressVector", ()))
    old3 = (current.alpha_bps, current.basis_bps, current.floor_bps)
    new3 = (proposed.alpha_bps, proposed.basis_bps, proposed.floor_bps)
    if old3 != new3:
        out.append(Change("alpha / basis / floor", old3, new3, all(n >= o for n, o in zip(new3, old3)),
                          "setMarginScalars", new3))
    # discounts that fall go before the haircuts they must stay under; discounts that rise go after
    for j, d in sorted(proposed.discounts.items()):
        old = current.discounts.get(j, 0)
        if d < old:
            out.append(Change(f"liquidation discount {j}{of(j, collateral_asset)}", old, d, False,
                              "setLiquidationDiscount", (j, d)))
    for j, h in sorted(proposed.haircuts.items()):
        old = current.haircuts.get(j, 10_000)
        if h != old:
            out.append(Change(f"haircut {j}{of(j, collateral_asset)}", old, h, h >= old, "setHaircut", (j, h)))
    for j, d in sorted(proposed.discounts.items()):
        old = current.discounts.get(j, 0)
        if d > old:
            out.append(Change(f"liquidation discount {j}{of(j, collateral_asset)}", old, d, False,
                              "setLiquidationDiscount", (j, d)))
    for m, mk in sorted(proposed.markets.items()):
        o = current.markets.get(m)
        new_t = (mk.standard_mmr_bps, mk.max_open_interest, mk.max_position_size)
        old_t = (o.standard_mmr_bps, o.max_open_interest, o.max_position_size) if o else (0, 0, 0)
        if new_t != old_t:
            tight = new_t[0] >= old_t[0] and new_t[1] <= old_t[1] and new_t[2] <= old_t[2]
            out.append(Change(f"market {m}{of(m, market_asset)}", old_t, new_t, tight, "setMarket", (m, *new_t)))
        old_d = o.depth_usd if o else 0
        if mk.depth_usd != old_d:  # a depth where there was none, or a lower one, raises every charge
            out.append(Change(f"liquidation depth {m}{of(m, market_asset)}", old_d, mk.depth_usd,
                              mk.depth_usd != 0 and (old_d == 0 or mk.depth_usd <= old_d), "setMarketDepth",
                              (m, mk.depth_usd // 10**7)))
    for k in sorted(set(proposed.vol_scalers) | set(current.vol_scalers)):
        new_v, old_v = proposed.vol_scalers.get(k, 10_000), current.vol_scalers.get(k, 10_000)
        if new_v != old_v:
            out.append(Change(f"volatility scaler {asset(k)}", old_v, new_v, new_v >= old_v, "setVolScaler",
                              (k, new_v)))
    if proposed.correlation_break_bps != current.correlation_break_bps:
        out.append(Change("correlation break", current.correlation_break_bps, proposed.correlation_break_bps,
                          proposed.correlation_break_bps >= current.correlation_break_bps, "setCorrelationBreak",
                          (proposed.correlation_break_bps,)))
    lq_new = tuple(proposed.liquidation.model_dump().values())
    lq_old = tuple(current.liquidation.model_dump().values())
    if lq_new != lq_old:
        out.append(Change("liquidation parameters", lq_old, lq_new, False, "setLiquidation", lq_new))
    # funding moves value between traders: the contract queues every change (a proposal without funding keeps it)
    if proposed.funding is not None and proposed.funding != current.funding:
        old_f = current.funding.as_args() if current.funding else None
        out.append(Change("funding and deleveraging", old_f, proposed.funding.as_args(), False, "setFunding",
                          proposed.funding.as_args()))
    if proposed.options is not None and proposed.options != current.options:
        new_o, old_o = proposed.options, current.options
        grid = (new_o.vol_up_bps, new_o.vol_down_bps, new_o.steps, new_o.short_min_bps)
        old_grid = (old_o.vol_up_bps, old_o.vol_down_bps, old_o.steps, old_o.short_min_bps) if old_o else None
        if grid != old_grid:
            tight = old_grid is not None and all(a >= b for a, b in zip((grid[0], grid[1], grid[3]),
                                                                         (old_grid[0], old_grid[1], old_grid[3]))) \
                and grid[2] % old_grid[2] == 0
            out.append(Change("option grid", old_grid, grid, tight or old_grid is None, "setOptionGrid", grid))
        trading = (new_o.band_bps, new_o.max_open_interest_usd)
        old_trading = (old_o.band_bps, old_o.max_open_interest_usd) if old_o else None
        if trading != old_trading:
            tight = old_trading is not None and trading[0] <= old_trading[0] and trading[1] <= old_trading[1]
            out.append(Change("option band and open interest", old_trading, trading, tight, "setOptionTrading",
                              trading))
        for k in sorted(set(new_o.skew_bps) | set(old_o.skew_bps if old_o else {})):
            new_s, old_s = new_o.skew_bps.get(k, 0), (old_o.skew_bps.get(k, 0) if old_o else 0)
            if new_s != old_s:
                out.append(Change(f"option skew {asset(k)}", old_s, new_s, new_s >= old_s, "setOptionSkew",
                                  (k, new_s)))
    if proposed.price_band_bps != current.price_band_bps:
        out.append(Change("price band", current.price_band_bps, proposed.price_band_bps,
                          proposed.price_band_bps <= current.price_band_bps, "setPriceBand",
                          (proposed.price_band_bps,)))
    if proposed.loosen_delay != current.loosen_delay:
        out.append(Change("loosening delay", current.loosen_delay, proposed.loosen_delay,
                          proposed.loosen_delay >= current.loosen_delay, "setLoosenDelay",
                          (proposed.loosen_delay,), admin=True))
    return out


def merged(current: RiskSpec, changes: Sequence[Change], only_tightening: bool) -> RiskSpec:
    """``current`` with ``changes`` applied (all, or only those that take effect at once)."""
    rw, corr = dict(current.risk_weights), dict(current.correlations)
    stress = [s.as_array() for s in current.stress]
    scalars = (current.alpha_bps, current.basis_bps, current.floor_bps)
    haircuts, discounts = dict(current.haircuts), dict(current.discounts)
    markets, vol, brk = dict(current.markets), dict(current.vol_scalers), current.correlation_break_bps
    for c in changes:
        if only_tightening and not c.tightening:
            continue
        if c.fn == "setRiskWeight":
            rw[c.args[0]] = c.args[1]
        elif c.fn == "setCorrelation":
            corr[(c.args[0], c.args[1])] = c.args[2]
        elif c.fn == "setStressVector":
            s, vec = c.args
            if s < len(stress):
                stress[s] = vec
            else:
                stress.append(vec)
        elif c.fn == "popStressVector":
            stress.pop()
        elif c.fn == "setMarginScalars":
            scalars = c.args
        elif c.fn == "setHaircut":
            haircuts[c.args[0]] = c.args[1]
        elif c.fn == "setLiquidationDiscount":
            discounts[c.args[0]] = c.args[1]
        elif c.fn == "setMarketDepth":
            markets[c.args[0]] = markets[c.args[0]].model_copy(update={"depth_usd": c.args[1] * 10**7})
        elif c.fn == "setVolScaler":
            vol[c.args[0]] = c.args[1]
        elif c.fn == "setCorrelationBreak":
            brk = c.args[0]
    vectors = [StressVector.model_construct(name=f"s{i}", shocks={k: v for k, v in enumerate(a) if v})
               for i, a in enumerate(stress)]
    return current.model_copy(update={"risk_weights": rw, "correlations": corr, "stress": vectors,
                                      "alpha_bps": scalars[0], "basis_bps": scalars[1], "floor_bps": scalars[2],
                                      "haircuts": haircuts, "discounts": discounts, "markets": markets,
                                      "vol_scalers": vol, "correlation_break_bps": brk})


@dataclass
class Effect:
    accounts: int
    liquidatable_now: list[int]
    liquidatable_immediate: list[int]  # with the tightening part applied (what happens right after submission)
    liquidatable_all: list[int]  # with every change applied (after the delay)

    @property
    def newly_immediate(self) -> list[int]:
        return sorted(set(self.liquidatable_immediate) - set(self.liquidatable_now))

    @property
    def newly_all(self) -> list[int]:
        return sorted(set(self.liquidatable_all) - set(self.liquidatable_now))


def effect(states: dict[int, AccountState], layout: Layout, prices: Sequence[int], current: RiskSpec,
           changes: Sequence[Change], skip: Sequence[int] = ()) -> Effect:
    """Which accounts are liquidatable now, right after the submission, and once everything has applied (exact
    mirror on the indexed states)."""
    cfgs = [current.margin_config(), merged(current, changes, True).margin_config(),
            merged(current, changes, False).margin_config()]
    lists: list[list[int]] = [[], [], []]
    n = 0
    for a, s in sorted(states.items()):
        if a in skip or (not s.positions and not s.collateral):
            continue
        n += 1
        for i, cfg in enumerate(cfgs):
            if account_margin(s, layout, prices, cfg).liquidatable:
                lists[i].append(a)
    return Effect(n, *lists)


# ---------------------------------------------------------------------------------------------- submission
@dataclass
class Outcome:
    change: Change
    status: str  # applied | queued | already queued | skipped
    tx_hash: str | None = None
    ready_at: int | None = None


@dataclass
class Proposal:
    current: RiskSpec
    proposed: RiskSpec
    changes: list[Change]
    delay: int
    effect: Effect | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def expected_status(self, c: Change) -> str:
        return "applies now" if c.tightening or self.delay == 0 else f"queued for {self.delay} s"


class Submitter:
    """Signs and sends RiskParameters calls one at a time and waits for each receipt (a governance action, not a
    race: simple, sequential, every call simulated first)."""

    def __init__(self, chain: Any, signer: Any, max_fee_gwei: float = 500.0, min_tip_gwei: float = 0.1,
                 timeout: float = 120.0) -> None:
        self.chain, self.signer = chain, signer
        self.max_fee, self.min_tip = int(max_fee_gwei * 1e9), int(min_tip_gwei * 1e9)
        self.timeout = timeout

    def _w3(self) -> Any:
        return self.chain.rpc.w3

    def has_role(self, role: bytes, block: int | str = "latest") -> bool:
        return bool(self.chain.call("RiskParameters", "hasRole", role, self.signer.address, block=block))

    def simulate(self, data: str) -> str | None:
        """None when the call would succeed, else the decoded revert."""
        to = self.chain.address("RiskParameters")
        try:
            self.chain.rpc.read(lambda w3: w3.eth.call({"from": self.signer.address, "to": to, "data": data}))
        except Exception as e:  # a revert: decode the custom error
            return self.chain.errors.from_exception(e)
        return None

    def send(self, data: str) -> dict:
        to = self.chain.address("RiskParameters")
        rpc = self.chain.rpc
        gas = rpc.read(lambda w3: w3.eth.estimate_gas({"from": self.signer.address, "to": to, "data": data}))
        base = rpc.read(lambda w3: w3.eth.get_block("latest")).get("baseFeePerGas", 0) or 0
        tip = self.min_tip
        nonce = rpc.read(lambda w3: w3.eth.get_transaction_count(self.signer.address, "pending"))
        tx = {"chainId": self.chain.chain_id, "nonce": nonce, "to": to, "data": data, "gas": int(gas * 1.25),
              "value": 0, "maxFeePerGas": min(self.max_fee, 2 * int(base) + tip), "maxPriorityFeePerGas": tip,
              "type": 2}
        signed = self.signer.sign_transaction(tx)
        h = rpc.send(lambda w3: w3.eth.send_raw_transaction(signed.raw_transaction))
        end = time.monotonic() + self.timeout
        while True:
            try:
                receipt = rpc.read(lambda w3: w3.eth.get_transaction_receipt(h))
                if receipt is not None:
                    break
            except Exception:  # not mined yet
                pass
            if time.monotonic() > end:
                raise XMarginError(f"transaction {h.hex()} not mined within {self.timeout:.0f} s")
            time.sleep(0.2)
        if receipt["status"] != 1:
            raise XMarginError(f"transaction {h.hex()} reverted")
        return dict(receipt)


def prepare(chain: Any, proposed: RiskSpec, block: int | str, layout: Layout, assets: Sequence[str] = ()) -> Proposal:
    """Check bounds (refusing before anything is sent), read the contract's parameters and diff (changes labelled
    with the names of ``assets``)."""
    errs = bound_errors(proposed)
    if errs:
        raise ConfigError("the proposal is outside the contract's bounds; fix these fields:\n  " + "\n  ".join(errs))
    current = read_current(chain, block, len(layout.market_asset), [v.name for v in proposed.stress])
    return Proposal(current, proposed, diff(current, proposed, assets, layout.market_asset, layout.collateral_asset),
                    current.loosen_delay)


def submit(proposal: Proposal, submitter: Submitter) -> list[Outcome]:
    """Send every change. Roles are checked first; each call is simulated before it is sent (a refusal stops the
    run with the decoded error); a loosening already queued and not yet ready is reported, not resent."""
    needs_admin = any(c.admin for c in proposal.changes)
    if proposal.changes and not submitter.has_role(RISK_ADMIN_ROLE):
        raise ProposalError(f"{submitter.signer.address} lacks RISK_ADMIN_ROLE on RiskParameters: grant it or sign "
                            "with a risk admin key")
    if needs_admin and not submitter.has_role(DEFAULT_ADMIN_ROLE):
        raise ProposalError(f"the loosening delay changes but {submitter.signer.address} lacks DEFAULT_ADMIN_ROLE: "
                            "propose the delay from the admin (timelock) or leave loosen_delay as it is")
    chain = submitter.chain
    outcomes = []
    for c in proposal.changes:
        data = chain.encode("RiskParameters", c.fn, *c.args)
        queued_at = 0
        if not c.tightening and proposal.delay > 0:
            queued_at = int(chain.call("RiskParameters", "readyAt", keccak(hexstr=data)))
            now = int(chain.rpc.read(lambda w3: w3.eth.get_block("latest"))["timestamp"])
            if queued_at and now < queued_at:
                outcomes.append(Outcome(c, "already queued", None, queued_at))
                continue
        refusal = submitter.simulate(data)
        if refusal is not None:
            raise ProposalError(f"{c.fn}{c.args} would revert with {refusal}; nothing further was sent "
                                f"({len(outcomes)} earlier changes were)")
        receipt = submitter.send(data)
        queued = [lg for lg in receipt["logs"] if lg["topics"] and bytes(lg["topics"][0]) == CHANGE_QUEUED_TOPIC]
        h = receipt["transactionHash"].hex()
        if queued:
            ready = int.from_bytes(bytes(queued[0]["data"])[32:64], "big")
            outcomes.append(Outcome(c, "queued", h, ready))
        else:
            outcomes.append(Outcome(c, "applied", h))
        log.info("%s: %s (%s)", c.what, outcomes[-1].status, h)
    proposal.outcomes = outcomes
    return outcomes


def describe(p: Proposal, names: Sequence[str] = ()) -> list[str]:
    lines = [f"{len(p.changes)} change(s); loosening delay on the contract: {p.delay} s"]
    for c in p.changes:
        kind = "tighten" if c.tightening else "delayed"  # delayed: it may lower some account's requirement
        lines.append(f"  [{kind}] {c.what}: {c.old} -> {c.new}  ({p.expected_status(c)})")
    if p.effect is not None:
        e = p.effect
        lines.append(f"effect on {e.accounts} accounts: liquidatable now {len(e.liquidatable_now)}, right after "
                     f"submission {len(e.liquidatable_immediate)} (+{len(e.newly_immediate)}), once every change "
                     f"applies {len(e.liquidatable_all)} (+{len(e.newly_all)})")
        for a in e.newly_all[:20]:
            lines.append(f"  would become liquidatable: {a:#066x}")
    for o in p.outcomes:
        extra = f" ready at {o.ready_at}" if o.ready_at else ""
        lines.append(f"  {o.change.what}: {o.status}{extra}" + (f" tx {o.tx_hash}" if o.tx_hash else ""))
    return lines


__all__ = ["load_spec", "write_spec", "bound_errors", "read_current", "diff", "effect", "prepare", "submit",
           "Submitter", "Proposal", "Change", "Effect", "ProposalError", "pair_index", "i16"]
