"""Risk parameter sets: a readable, validated form of everything ``RiskParameters`` stores, and how to submit it.

Units: ratios in basis points (10_000 = 100%), USD amounts 1e18, sizes base units 1e18.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from .exact import MarginConfig

log = logging.getLogger(__name__)


class StressVector(BaseModel):
    """A named joint price move: shock per asset in bps of price (-10_000 .. 10_000)."""

    model_config = ConfigDict(frozen=True)
    name: str
    shocks: dict[int, int] = Field(description="asset index -> shock in bps, e.g. {0: -3000} = BTC -30%")

    @field_validator("shocks")
    @classmethod
    def _bounds(cls, v: dict[int, int]) -> dict[int, int]:
        for asset, bps in v.items():
            if not 0 <= asset < 8:
                raise ValueError(f"asset index {asset} out of range 0..7")
            if not -10_000 <= bps <= 10_000:
                raise ValueError(f"shock {bps} bps for asset {asset} outside -10000..10000")
        return v

    def as_array(self) -> list[int]:
        return [self.shocks.get(k, 0) for k in range(8)]


class MarketRisk(BaseModel):
    model_config = ConfigDict(frozen=True)
    standard_mmr_bps: int = Field(ge=10, le=10_000, description="per-position rate of the standard requirement")
    max_open_interest: int = Field(ge=0, lt=2**95, description="sum of long sizes, base units 1e18")
    max_position_size: int = Field(ge=0, lt=2**95, description="largest |size| of one account, base units 1e18")
    depth_usd: int = Field(default=0, ge=0, le=65_535 * 10**7,
                           description="liquidation depth L, whole USD, a multiple of 10,000,000: a position of "
                                       "notional N is charged N * sqrt(N / L) (0: no concentration charge)")

    @field_validator("depth_usd")
    @classmethod
    def _depth_unit(cls, v: int) -> int:
        if v % 10**7:
            raise ValueError(f"depth_usd = {v} is not a multiple of 10,000,000 (the unit RiskParameters stores): "
                             f"round it to {round(v / 10**7) * 10**7}")
        return v


class LiquidationParams(BaseModel):
    model_config = ConfigDict(frozen=True)
    close_factor_bps: int = Field(ge=1000, le=10_000, description="share of gross one call may take")
    penalty_bps: int = Field(ge=0, le=2000, description="charged on the USD amount taken, paid to the fund")
    keeper_share_bps: int = Field(ge=0, le=10_000, description="share of the penalty paid to the keeper")
    deep_bps: int = Field(ge=0, le=10_000, description="E < deep * MM allows closing 100%")
    min_keeper_reward: int = Field(ge=0, le=1000 * 10**18, description="USD 1e18, covers the keeper's gas")
    dust: int = Field(ge=0, le=10**24, description="USD 1e18: a smaller remainder may be closed entirely")


class FundingParams(BaseModel):
    """The FUNDING word (IRiskParameters): funding of every market, and deleveraging."""

    model_config = ConfigDict(frozen=True)
    window: int = Field(ge=60, le=7 * 86400, description="seconds over which a fill's premium weight decays")
    period: int = Field(ge=3600, le=30 * 86400, description="seconds over which a premium is paid")
    premium_cap_bps: int = Field(ge=0, le=500, description="a fill's premium counts at most this far from the oracle")
    depth_bps: int = Field(ge=0, le=10_000, description="premium depth, bps of the open-interest notional in fees")
    max_rate_per_hour: int = Field(ge=0, le=10_000, description="|rate| cap, millionths of notional per hour")
    clamp_bps: int = Field(ge=0, le=10_000, description="|rate| cap, bps of the asset's risk weight per hour")
    interest_per_hour: int = Field(ge=-100, le=100, description="millionths per hour, longs pay when positive")
    adl_share_bps: int = Field(ge=0, le=10_000, description="share of the opposite side's MM one write-off may take")

    @model_validator(mode="after")
    def _unprofitable(self) -> "FundingParams":
        least = -(-64 * self.premium_cap_bps * self.window // (10 * self.period))
        if self.depth_bps < least:
            raise ValueError(f"depth_bps = {self.depth_bps} is below {least}, the least depth at which moving the "
                             f"premium costs more in fees than it earns (depth * period * 10 >= 64 * premium_cap_bps "
                             f"* window): raise depth_bps or lower premium_cap_bps")
        return self

    def word(self) -> int:
        """The FUNDING word RiskParameters stores for these values."""
        return (self.window | self.period << 32 | self.premium_cap_bps << 64 | self.depth_bps << 80
                | self.max_rate_per_hour << 96 | self.clamp_bps << 112 | (self.interest_per_hour & 0xFFFF) << 128
                | self.adl_share_bps << 144)

    def as_args(self) -> tuple[int, ...]:
        return (self.window, self.period, self.premium_cap_bps, self.depth_bps, self.max_rate_per_hour,
                self.clamp_bps, self.interest_per_hour, self.adl_share_bps)


class OptionParams(BaseModel):
    """The OPTION word (IRiskParameters): how option books are margined and traded (docs/options.md)."""

    model_config = ConfigDict(frozen=True)
    skew_bps: dict[int, int] = Field(default_factory=dict,
                                     description="asset -> smile in bps per unit of |ln(S/K)| (0 .. 20000; absent: 0): "
                                                 "sigma(K) = sigma * (1 + skew * |ln(S/K)|)")
    vol_up_bps: int = Field(ge=0, le=20_000, description="the grid's upward volatility shock (sigma * (1 + up))")
    vol_down_bps: int = Field(ge=0, le=9_000, description="the grid's downward volatility shock (sigma * (1 - down))")
    steps: int = Field(ge=1, le=4, description="spot points per side of the grid: 2n + 1 points over +-RW")
    short_min_bps: int = Field(ge=0, le=5_000, description="minimum charge per short option, bps of |size| * spot")
    band_bps: int = Field(ge=1, le=2_000, description="a fill must be within band * spot of the model mark")
    max_open_interest_usd: int = Field(ge=0, lt=2**56, description="per series: sum of long sizes * spot, whole USD")

    @field_validator("skew_bps")
    @classmethod
    def _skews(cls, v: dict[int, int]) -> dict[int, int]:
        for asset, bps in v.items():
            if not (0 <= asset < 8 and 0 <= bps <= 20_000):
                raise ValueError(f"skew_bps[{asset}] = {bps} is invalid (asset 0..7, 0..20000 bps)")
        return v

    def word(self) -> int:
        """The OPTION word RiskParameters stores for these values."""
        w = 0
        for asset, bps in self.skew_bps.items():
            w |= bps << (16 * asset)
        return (w | self.vol_up_bps << 128 | self.vol_down_bps << 144 | self.steps << 160 | self.short_min_bps << 168
                | self.band_bps << 184 | self.max_open_interest_usd << 200)

    @classmethod
    def from_word(cls, w: int) -> "OptionParams":
        return cls(skew_bps={a: (w >> (16 * a)) & 0xFFFF for a in range(8) if (w >> (16 * a)) & 0xFFFF},
                   vol_up_bps=(w >> 128) & 0xFFFF, vol_down_bps=(w >> 144) & 0xFFFF, steps=(w >> 160) & 0xFF,
                   short_min_bps=(w >> 168) & 0xFFFF, band_bps=(w >> 184) & 0xFFFF,
                   max_open_interest_usd=w >> 200)


class RiskSpec(BaseModel):
    """A complete parameter set for ``RiskParameters``."""

    model_config = ConfigDict(frozen=True)
    risk_weights: dict[int, int] = Field(description="asset -> RW in bps (100 .. 10000)")
    correlations: dict[tuple[int, int], int] = Field(description="(a, b) -> medium-regime correlation, bps")
    stress: list[StressVector] = Field(max_length=16)
    alpha_bps: int = Field(ge=10_000, le=30_000, description="IM = alpha * MM")
    basis_bps: int = Field(ge=0, le=2000, description="add-on on hedged-within-asset notional")
    floor_bps: int = Field(ge=0, le=5000, description="minimum charge on the sum of |net delta|")
    haircuts: dict[int, int] = Field(description="collateral id -> haircut in bps")
    discounts: dict[int, int] = Field(description="collateral id -> liquidation discount in bps (<= 5000 and <= haircut)")
    markets: dict[int, MarketRisk]
    liquidation: LiquidationParams
    price_band_bps: int = Field(ge=10, le=2000)
    loosen_delay: int = Field(ge=0, le=30 * 86400, description="seconds before a loosening change applies")
    vol_scalers: dict[int, int] = Field(default_factory=dict,
                                        description="asset -> volatility scaler in bps (10000 .. 40000; absent: 10000)"
                                                    ", multiplies the correlated charge in proportion to the asset's "
                                                    "share of the weighted sensitivities")
    correlation_break_bps: int = Field(default=0, ge=0, le=10_000,
                                       description="share of every hedging credit the low regime withdraws")
    funding: FundingParams | None = Field(default=None, description="funding and deleveraging; None: both off at deployment "
                                                   "(a proposal without it leaves the chain's unchanged)")
    options: OptionParams | None = Field(default=None, description="option margin and trading (the OPTION word); None: "
                                                                  "options not configured (a proposal without it "
                                                                  "leaves the chain's unchanged)")

    @model_validator(mode="after")
    def _consistent(self) -> "RiskSpec":
        for j, d in self.discounts.items():
            if not 0 <= d <= 5000:
                raise ValueError(f"discounts[{j}] = {d} bps is outside 0..5000 (a discount is at most 50%)")
            if d > self.haircuts.get(j, 10_000):
                raise ValueError(f"discounts[{j}] = {d} bps exceeds haircuts[{j}]; lower the discount")
        for (a, b), rho in self.correlations.items():
            if a == b or not (0 <= a < 8 and 0 <= b < 8) or not -10_000 <= rho <= 10_000:
                raise ValueError(f"correlations[{a},{b}] = {rho} is invalid (distinct assets 0..7, -10000..10000)")
        for k, rw in self.risk_weights.items():
            if not (0 <= k < 8 and 100 <= rw <= 10_000):
                raise ValueError(f"risk_weights[{k}] = {rw} is invalid (asset 0..7, 100..10000 bps)")
        for k, v in self.vol_scalers.items():
            if not (0 <= k < 8 and 10_000 <= v <= 40_000):
                raise ValueError(f"vol_scalers[{k}] = {v} is invalid (asset 0..7, 10000..40000 bps)")
        return self

    def stress_index(self, name: str) -> int:
        return [s.name for s in self.stress].index(name)

    def margin_config(self) -> "MarginConfig":
        """The margin words ``RiskParameters`` publishes for this set, packed off-chain (no chain needed)."""
        from .exact import MarginConfig, pair_index

        def put(word: int, bit: int, value: int) -> int:
            return word | ((value & 0xFFFF) << bit)

        g = 0
        for k, rw in self.risk_weights.items():
            g = put(g, 16 * k, rw)
        for slot, v in ((8, self.alpha_bps), (9, self.basis_bps), (10, self.floor_bps)):
            g = put(g, 16 * slot, v)
        g |= len(self.stress) << 176
        corr = [0, 0]
        for (a, b), rho in self.correlations.items():
            p = pair_index(a, b)
            corr[p // 16] = put(corr[p // 16], 16 * (p % 16), rho)
        haircuts = 0
        for j, h in self.haircuts.items():
            haircuts = put(haircuts, 16 * j, h)
        stress = [0] * 8
        for s, vector in enumerate(self.stress):
            for k, bps in enumerate(vector.as_array()):
                stress[s // 2] = put(stress[s // 2], 128 * (s % 2) + 16 * k, bps)
        addons = self.correlation_break_bps << 128
        for k, v in self.vol_scalers.items():
            addons = put(addons, 16 * k, v - 10_000)
        depths = 0
        for m, mk in self.markets.items():
            depths = put(depths, 16 * m, mk.depth_usd // 10**7)
        return MarginConfig(g, corr[0], corr[1], haircuts, tuple(stress), addons, depths)


def apply_spec(params: Any, spec: RiskSpec, sender: Any) -> None:
    """Submit every parameter of ``spec`` to a ``RiskParameters`` contract (Brownie handle) from ``sender``.

    With a non-zero loosening delay on the contract, loosening calls are queued rather than applied; call again
    after the delay. The delay itself is set last, so a fresh deployment applies the whole set at once.
    """
    tx = {"from": sender}
    for asset, rw in sorted(spec.risk_weights.items()):
        params.setRiskWeight(asset, rw, tx)
    for (a, b), rho in sorted(spec.correlations.items()):
        params.setCorrelation(a, b, rho, tx)
    current = (int(params.marginConfig()[0]) >> 176) & 0xFF
    for s, vector in enumerate(spec.stress):
        params.setStressVector(s, vector.as_array(), tx)
    for _ in range(len(spec.stress), current):
        params.popStressVector(tx)
    params.setMarginScalars(spec.alpha_bps, spec.basis_bps, spec.floor_bps, tx)
    for j, h in sorted(spec.haircuts.items()):
        params.setHaircut(j, h, tx)
    for j, d in sorted(spec.discounts.items()):
        params.setLiquidationDiscount(j, d, tx)
    for m, mk in sorted(spec.markets.items()):
        params.setMarket(m, mk.standard_mmr_bps, mk.max_open_interest, mk.max_position_size, tx)
    for m, mk in sorted(spec.markets.items()):
        params.setMarketDepth(m, mk.depth_usd // 10**7, tx)
    for k in range(len(spec.risk_weights)):
        params.setVolScaler(k, spec.vol_scalers.get(k, 10_000), tx)
    params.setCorrelationBreak(spec.correlation_break_bps, tx)
    lq = spec.liquidation
    params.setLiquidation(
        lq.close_factor_bps, lq.penalty_bps, lq.keeper_share_bps, lq.deep_bps, lq.min_keeper_reward, lq.dust, tx
    )
    if spec.funding is not None:
        params.setFunding(*spec.funding.as_args(), tx)
    if spec.options is not None:
        op = spec.options
        params.setOptionGrid(op.vol_up_bps, op.vol_down_bps, op.steps, op.short_min_bps, tx)
        params.setOptionTrading(op.band_bps, op.max_open_interest_usd, tx)
        for k in range(len(spec.risk_weights)):
            params.setOptionSkew(k, op.skew_bps.get(k, 0), tx)
    params.setPriceBand(spec.price_band_bps, tx)
    params.setLoosenDelay(spec.loosen_delay, tx)
    log.info("risk parameters applied: %d assets, %d stress vectors, %d markets",
             len(spec.risk_weights), len(spec.stress), len(spec.markets))
