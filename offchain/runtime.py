"""The runtime every command shares: the RPC client, the contracts of a deployment, the indexer's database and the
metrics, opened from settings; and the keeper built on them. The CLI (:mod:`offchain.cli`) and the risk commands
(:mod:`offchain.risk.commands`) both open it, and neither imports the other."""
from __future__ import annotations

from dataclasses import dataclass

from .chain import Chain, Rpc
from .config import Settings
from .db import connect
from .indexer import Indexer
from .ops import Metrics


@dataclass
class Runtime:
    settings: Settings
    rpc: Rpc
    chain: Chain
    indexer: Indexer
    metrics: Metrics


def open_chain(settings: Settings, metrics: Metrics | None = None) -> Chain:
    """Connect to the chain and load the contracts of the deployment, as the settings say."""
    c = settings.chain
    on_error = (lambda url: metrics.rpc_errors.labels(url.split("//")[-1]).inc()) if metrics else None
    rpc = Rpc(c.rpc_urls, timeout=c.request_timeout, retries=c.retries, backoff=c.retry_backoff,
              stall_seconds=c.stall_seconds, on_error=on_error)
    return Chain.connect(rpc, c.deployment, c.build_dir)


def open_runtime(settings: Settings, metrics: Metrics | None = None) -> Runtime:
    """Connect to the chain, load the contracts and open the database, as the settings say."""
    metrics = metrics or Metrics()
    chain = open_chain(settings, metrics)
    rpc = chain.rpc
    i = settings.indexer
    indexer = Indexer(chain, connect(i.database), log_chunk=i.log_chunk, reorg_window=i.reorg_window,
                      reconcile_every=i.reconcile_every, reconcile_sample=i.reconcile_sample)
    return Runtime(settings, rpc, chain, indexer, metrics)


def build_keeper(rt: Runtime):
    """The keeper of these settings (signer, transaction manager, options)."""
    from .keeper.keeper import Keeper, KeeperOptions
    from .keeper.txmanager import GWEI, FeePolicy, TxManager
    from .keys import load_signer

    k = rt.settings.keeper
    signer = load_signer(rt.settings, rt.chain.chain_id)
    txm = None
    if signer is not None and not k.dry_run:
        policy = FeePolicy(int(k.max_fee_gwei * GWEI), int(k.min_priority_fee_gwei * GWEI), k.fee_history_blocks,
                           k.priority_percentile, k.fee_bump_percent, k.replace_after_seconds)
        txm = TxManager(rt.rpc, rt.indexer.conn, signer, rt.chain.chain_id, policy)
    opts = KeeperOptions(k.shard_pair, k.dry_run, k.min_profit_usd, k.cleanup_bad_debt, k.gas_token_asset,
                         k.gas_token_usd, k.gas_limit_multiplier, k.max_liquidations_per_block, k.poll_interval,
                         rt.settings.chain.lens_batch, int(k.low_balance_eth * 10**18), k.settle_expired,
                         k.inclusion_seconds, k.fix_expiry)
    keeper = Keeper(rt.chain, rt.indexer, txm, opts, rt.metrics, reconcile_every=rt.settings.indexer.reconcile_every)
    if signer is not None and txm is None:
        keeper.address = signer.address  # dry run: simulate as the configured keeper
    return keeper
