"""Keeper and indexer settings: a TOML file, then environment variables, validated once at load.

Every field is documented here (``xmargin config reference`` prints this list). An environment variable
``XMARGIN_<SECTION>__<FIELD>`` overrides the file (lists are comma-separated), e.g.
``XMARGIN_CHAIN__RPC_URLS=http://a:8545,http://b:8545``. A wrong or missing value raises :class:`ConfigError`
naming the field and the fix. Secrets (the keystore password, a development private key) are read from the
environment variables the file names, held as ``SecretStr`` and never logged.
"""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from .errors import ConfigError

ENV_PREFIX = "XMARGIN_"
DEV_CHAIN_IDS = frozenset({1337, 31337})  # Ganache, Anvil/Hardhat: the only chains a plain environment key may sign on


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainSettings(_Section):
    rpc_urls: list[str] = Field(
        default=["http://127.0.0.1:8545"],
        description="JSON-RPC endpoints, tried in order; the next one takes over when one fails or stalls.",
    )
    request_timeout: float = Field(default=10.0, gt=0, description="Seconds before an RPC request is abandoned.")
    retries: int = Field(default=3, ge=0, le=20, description="Retries of a failed read (reads only) per endpoint.")
    retry_backoff: float = Field(default=0.25, ge=0, description="Seconds before the first retry; doubles each time.")
    stall_seconds: float = Field(
        default=60.0, ge=0,
        description="The node counts as stalled when its head has not moved for this long (0 turns the check off; "
        "use 0 on a local chain that mines only on demand).",
    )
    deployment: Path | None = Field(
        default=None, description="Deployment file with the contract addresses (default: deployments/<chain-id>.json)."
    )
    build_dir: Path | None = Field(
        default=None, description="Brownie build folder to read the contract ABIs from (default: the ABIs shipped with "
        "the package, written by `make build`; set it, e.g. to build/contracts, while editing the contracts)."
    )
    lens_batch: int = Field(default=200, ge=1, le=5000, description="Accounts per AccountLens call.")

    @field_validator("rpc_urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        if not urls:
            raise ValueError("give at least one URL")
        for u in urls:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"{u!r} is not an http(s) URL")
        return urls


class IndexerSettings(_Section):
    database: Path = Field(default=Path("xmargin.sqlite"), description="SQLite file holding the index and the keeper.")
    log_chunk: int = Field(default=2000, ge=1, description="Blocks per eth_getLogs request (shrinks when rejected).")
    reorg_window: int = Field(default=64, ge=1, description="Recent block hashes kept to find a reorg's fork point.")
    reconcile_every: int = Field(
        default=500, ge=0, description="Blocks between reconciliations against AccountLens (0 = never)."
    )
    reconcile_sample: int = Field(default=200, ge=1, description="Accounts compared at each reconciliation.")


class KeeperSettings(_Section):
    keystore: Path | None = Field(
        default=None, description="Encrypted JSON keystore (eth-account or Brownie's ~/.brownie/accounts/*.json)."
    )
    keystore_password_env: str = Field(
        default="XMARGIN_KEYSTORE_PASSWORD", description="Environment variable holding the keystore password."
    )
    private_key_env: str | None = Field(
        default=None,
        description="Environment variable holding a plain private key: accepted only on local development chains "
        "(chain id 1337 or 31337).",
    )
    dry_run: bool = Field(default=False, description="Find, plan and simulate liquidations but never send them.")
    shard: str = Field(default="0/1", description="'i/n': this keeper handles the accounts of shard i of n.")
    poll_interval: float = Field(default=1.0, gt=0, description="Seconds between polls of the head block.")
    min_profit_usd: float = Field(
        default=0.0, description="Send only when the keeper reward minus the worst-case gas cost is at least this."
    )
    cleanup_bad_debt: bool = Field(
        default=True, description="Liquidate accounts with negative equity even when the profit gate says no."
    )
    gas_token_asset: int | None = Field(
        default=1, ge=0, le=7, description="Oracle asset index priced like the gas token (ETH = 1 by default)."
    )
    gas_token_usd: float | None = Field(
        default=None, gt=0, description="Fixed USD price of the gas token; overrides gas_token_asset."
    )
    max_fee_gwei: float = Field(default=500.0, gt=0, description="Cap on maxFeePerGas, gwei.")
    min_priority_fee_gwei: float = Field(default=0.1, ge=0, description="Floor of maxPriorityFeePerGas, gwei.")
    fee_history_blocks: int = Field(default=10, ge=1, le=1024, description="Blocks of eth_feeHistory to read.")
    priority_percentile: float = Field(default=60.0, ge=0, le=100, description="Tip percentile of recent blocks.")
    replace_after_seconds: float = Field(
        default=30.0, gt=0, description="A transaction still pending after this long is replaced with higher fees."
    )
    fee_bump_percent: float = Field(
        default=12.5, ge=12.5, description="Fee increase of a replacement, percent (nodes require at least 12.5)."
    )
    gas_limit_multiplier: float = Field(default=1.25, ge=1.0,
                                        description="Gas limit = (learned or estimated gas) * this.")
    max_liquidations_per_block: int = Field(default=50, ge=1, description="New liquidations sent per block.")
    settle_expired: bool = Field(
        default=True, description="Send vault.settleExpired for this shard's accounts (and, in shard 0, the insurance "
        "fund) holding fixed option series: turns them into cash so a liquidation or write-off can proceed and the "
        "series' slot can be listed again. Pays no reward; costs gas.")
    fix_expiry: bool = Field(
        default=True, description="Shard 0 only: send OptionMarkets.fixExpiry for every listed option series past its "
        "expiry and not fixed yet, with the first round of the asset's price feed at or after the expiry, once per "
        "series, so that settle_expired can turn its positions into cash. A series whose first round at or after the "
        "expiry is the first of its feed's phase cannot be fixed this way: it is logged and skipped. Pays no reward; "
        "costs gas.")
    inclusion_seconds: int = Field(
        default=30, ge=0, description="Seconds after the head block's time by which a liquidation is assumed "
        "included. Option values move with time (a written option's liability decays), so an account holding options "
        "is liquidated only if it is below MM at both ends of that window, with a plan within the rule at both.")
    low_balance_eth: float = Field(
        default=0.05, ge=0, description="Warn in the log, and set the xmargin_keeper_balance_low "
        "gauge to 1, while the keeper's account holds less than this much of the chain's native token for gas; 0 = never "
        "warn.")

    @field_validator("shard")
    @classmethod
    def _shard(cls, v: str) -> str:
        parse_shard(v)
        return v

    @property
    def shard_pair(self) -> tuple[int, int]:
        return parse_shard(self.shard)


class OpsSettings(_Section):
    metrics_host: str = Field(default="127.0.0.1", description="Address the metrics and health server binds.")
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Port of /metrics (Prometheus) and /health; 0 = no server."
    )
    log_format: Literal["json", "text"] = Field(default="json", description="'json' (one object per line) or 'text'.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Logging level.")


class RiskSettings(_Section):
    scheduler: str | None = Field(default=None, description="Dask scheduler of risk sweeps (e.g. 'tcp://10.0.0.5:8786'); "
                                  "unset: see workers.")
    workers: int = Field(default=0, ge=0, le=256, description="With no scheduler: 0 runs sweeps in this process, N > 0 "
                         "on a local Dask cluster of N processes.")


class Settings(_Section):
    chain: ChainSettings = ChainSettings()
    indexer: IndexerSettings = IndexerSettings()
    keeper: KeeperSettings = KeeperSettings()
    ops: OpsSettings = OpsSettings()
    risk: RiskSettings = RiskSettings()
    source: str = Field(default="defaults", exclude=True, description="Where the settings came from (for messages).")

    @model_validator(mode="after")
    def _gas_price(self) -> "Settings":
        if self.keeper.gas_token_asset is None and self.keeper.gas_token_usd is None:
            raise ValueError("keeper: set gas_token_asset or gas_token_usd so gas can be priced in USD")
        return self

    def keystore_password(self, environ: Mapping[str, str] | None = None) -> SecretStr | None:
        value = (environ if environ is not None else os.environ).get(self.keeper.keystore_password_env)
        return SecretStr(value) if value is not None else None

    def dev_private_key(self, environ: Mapping[str, str] | None = None) -> SecretStr | None:
        name = self.keeper.private_key_env
        if name is None:
            return None
        value = (environ if environ is not None else os.environ).get(name)
        if not value:
            raise ConfigError(f"keeper.private_key_env names ${name}, which is not set: export it or remove the field")
        return SecretStr(value)


SECTIONS: dict[str, type[_Section]] = {
    name: f.annotation for name, f in Settings.model_fields.items() if isinstance(f.annotation, type)
    and issubclass(f.annotation, _Section)}


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"must look like 'i/n' (e.g. '0/2'), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"needs 0 <= i < n, got {text!r}")
    return i, n


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    sections = SECTIONS
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        section, _, name = key[len(ENV_PREFIX):].lower().partition("__")
        if section not in sections:
            raise ConfigError(f"{key}: unknown section {section!r} (one of {', '.join(sections)})")
        field = sections[section].model_fields.get(name)
        if field is None:
            raise ConfigError(f"{key}: {section} has no field {name!r} (see `xmargin config reference`)")
        is_list = "list" in str(field.annotation)
        out.setdefault(section, {})[name] = [v.strip() for v in value.split(",") if v.strip()] if is_list else value
    return out


def _format(err: ValidationError, source: str, origin: Mapping[tuple[str, str], str]) -> str:
    """One line per problem, each naming the field and where its value came from (``origin``: (section, field) ->
    the file, the environment variable or the command-line flag)."""
    lines = [f"invalid settings ({source}):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        where = origin.get(tuple(str(p) for p in e["loc"][:2]), source)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field: remove it or check its spelling (see `xmargin config reference`)"
        lines.append(f"  {loc} (from {where}): {msg}")
    return "\n".join(lines)


def load_settings(path: Path | str | None = None, environ: Mapping[str, str] | None = None,
                  **overrides: dict[str, Any]) -> Settings:
    """Settings from ``path`` (TOML; optional), then ``XMARGIN_*`` environment variables, then ``overrides``
    (``section={field: value}``, used by the CLI flags)."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist: pass --config with an existing TOML file")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
        source = str(p)
    origin = {(section, name): source for section, values in data.items() if isinstance(values, dict)
              for name in values}
    for section, values in _env_overrides(environ).items():
        data.setdefault(section, {}).update(values)
        origin.update({(section, name): f"{ENV_PREFIX}{section.upper()}__{name.upper()}" for name in values})
    for section, values in overrides.items():
        given = {k: v for k, v in values.items() if v is not None}
        data.setdefault(section, {}).update(given)
        origin.update({(section, name): f"the --{name.replace('_', '-')} flag" for name in given})
    try:
        return Settings(**data, source=source)
    except ValidationError as e:
        raise ConfigError(_format(e, source, origin)) from None


def _toml(value: Any) -> str:
    """``value`` as a TOML literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's


def reference() -> str:
    """Every setting with its description and default, as TOML comments (``xmargin config reference``): remove the
    ``# `` in front of a ``name = value`` line and the file is valid TOML with that default. Settings without a
    default are listed as ``## name: unset``."""
    out = []
    for name, section in SECTIONS.items():
        out.append(f"[{name}]")
        for field_name, f in section.model_fields.items():
            if f.exclude:
                continue
            out.append(f"# {f.description}")
            out.append(f"## {field_name}: unset" if f.default is None else f"# {field_name} = {_toml(f.default)}")
        out.append("")
    return "\n".join(out)
