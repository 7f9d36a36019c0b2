"""Fixtures for the off-chain engine, run against the same local Ganache chain as the contracts.

The keeper, indexer and CLI talk to the node over HTTP with their own web3 (as in production); Brownie only
deploys and drives the scenario. Books of many accounts are seeded with ``BookSeeder`` (deposits into many
accounts per transaction) and ``TestVenue.tradeMany`` (one maker against many takers).
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from brownie import BookSeeder, accounts, web3

from offchain.runtime import build_keeper, open_runtime
from offchain.config import load_settings
from offchain.margin.exact import WAD, AccountState, account_margin
from offchain.margin.snapshot import read_layout, read_margin_config, read_option_market, read_prices

ROOT = Path(__file__).resolve().parents[2]
USD_PER_TOKEN = (60_000, 3_000, 150, 15)  # start prices of WBTC, WETH, WSOL, LINK (scripts/deploy.py)
DAY = 86_400
# option series listed by BookBuilder.list_series: (slot, asset, call, strike USD, days to expiry)
LISTING = ((0, 0, True, 64_000, 30), (1, 0, False, 56_000, 30), (2, 0, True, 60_000, 10), (3, 0, False, 60_000, 45),
           (4, 1, True, 3_200, 30), (5, 1, False, 2_800, 30))


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 0.1 s; fail the test if it is not true within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def rpc_url() -> str:
    return web3.provider.endpoint_uri


@pytest.fixture(scope="module")
def seeder(protocol, deployer):
    return BookSeeder.deploy(protocol.vault, {"from": deployer})


@pytest.fixture
def deployment_file(protocol, tmp_path):
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(protocol.addresses()))
    return path


@pytest.fixture
def new_wallet(deployer):
    """new_wallet() -> a fresh local key with gas money (its private key signs a keeper's transactions)."""

    def _new():
        wallet = accounts.add()
        deployer.transfer(wallet, 100 * WAD)
        return wallet

    return _new


@pytest.fixture
def keeper_wallet(new_wallet):
    return new_wallet()


@pytest.fixture
def settings_for(deployment_file, tmp_path, monkeypatch):
    """settings_for(name, wallet=None, **sections) -> Settings for a keeper with its own database."""

    def _settings(name: str = "k", wallet=None, **sections):
        env_name = f"XMARGIN_TEST_KEY_{name.upper()}"
        keeper = {"poll_interval": 0.05, "replace_after_seconds": 3600.0, **sections.pop("keeper", {})}
        if wallet is not None:
            monkeypatch.setenv(env_name, wallet.private_key)
            keeper["private_key_env"] = env_name
        else:
            keeper.setdefault("dry_run", True)
        chain = {"rpc_urls": [rpc_url()], "deployment": str(deployment_file), "build_dir": str(ROOT / "build" /
                 "contracts"), "stall_seconds": 0, "retries": 1, "retry_backoff": 0.01, "request_timeout": 120,
                 **sections.pop("chain", {})}
        indexer = {"database": str(tmp_path / f"{name}.sqlite"), "reconcile_every": 0, **sections.pop("indexer", {})}
        return load_settings(None, environ={}, chain=chain, indexer=indexer, keeper=keeper,
                             ops=sections.pop("ops", {}))

    return _settings


@pytest.fixture
def make_keeper(settings_for):
    """make_keeper(name, wallet=None, **sections) -> a Keeper with its own database (dry run without a wallet)."""

    def _make(name: str = "k", wallet=None, **sections):
        return build_keeper(open_runtime(settings_for(name, wallet, **sections)))

    return _make


class BookBuilder:
    """Seeds many accounts with collateral and positions in a few transactions."""

    def __init__(self, protocol, seeder, venue, deployer):
        self.p, self.seeder, self.venue, self.deployer = protocol, seeder, venue, deployer
        self.maker = (int(deployer.address, 16) << 96) | 7
        self._funded_maker = False

    def tokens(self):
        return [self.p.usdc] + list(self.p.tokens)

    def deposit(self, token, ids, amounts, chunk=150):
        tx = {"from": self.deployer}
        total = sum(amounts)
        token.mint(self.deployer, total, tx)
        token.approve(self.seeder, total, tx)
        for i in range(0, len(ids), chunk):
            self.seeder.depositMany(token, ids[i:i + chunk], amounts[i:i + chunk], tx)

    def fund_maker(self, usd=10**9):
        if not self._funded_maker:
            self.deposit(self.p.usdc, [self.maker], [usd * 10**6])
            self._funded_maker = True

    def trade(self, market, ids, sizes, chunk=60):
        """Each account in ``ids`` trades ``sizes[i]`` (base 1e18, signed) of ``market`` with the maker at the
        oracle price."""
        self.fund_maker()
        price = self.p.oracle.price(self.p.vault.marketAsset(market))
        pairs = [(a, q) for a, q in zip(ids, sizes) if q]
        for i in range(0, len(pairs), chunk):
            part = pairs[i:i + chunk]
            self.venue.tradeMany(self.maker, [a for a, _ in part], market, [q for _, q in part], price,
                                 {"from": self.deployer})

    def market(self):
        layout = read_layout(self.p.vault)
        return layout, read_prices(self.p.oracle, layout), read_margin_config(self.p.params)

    def list_series(self, listing=LISTING):
        """List ``listing``'s series, expiries counted from the latest block."""
        t = web3.eth.get_block("latest").timestamp
        for slot, asset, is_call, strike, days in listing:
            self.p.options.listSeries(slot, asset, is_call, strike * WAD, t + days * DAY, {"from": self.deployer})
        return listing

    def option_market(self):
        """The option market at the latest block, as a view values it."""
        return read_option_market(self.p.options, self.p.oracle, self.p.params, web3.eth.get_block("latest").timestamp)

    def trade_option(self, buyer, seller, slot, size):
        self.venue.tradeOption(buyer, seller, slot, size, self.p.options.mark(slot), 0, {"from": self.deployer})

    def option_book(self, n, rng: random.Random, listing=LISTING, perp_share=0.5, leverage=(4.0, 16.0),
                    owner_seed=None):
        """``n`` accounts funded with USDC, each writing 1-3 of the listed options (long one sometimes) with the maker
        on the other side at the mark, ``leverage`` x its USDC in underlying notional before sizing, and
        ``perp_share`` of them holding a perpetual on BTC or ETH too (a hedge or a bet); each sized so that every
        state its trades pass through (longs first) is above IM with 10% to spare (the venue refuses below IM).
        Returns the account ids."""
        owner_rng = random.Random(owner_seed if owner_seed is not None else rng.random())
        ids = [(owner_rng.getrandbits(160) << 96) | owner_rng.getrandbits(8) for _ in range(n)]
        usdc = [int(rng.uniform(20_000, 80_000)) for _ in range(n)]
        self.deposit(self.p.usdc, ids, [u * 10**6 for u in usdc])
        self.fund_maker()
        layout, prices, cfg = self.market()
        market = self.option_market()
        marks = {slot: int(self.p.options.mark(slot)) for slot, *_ in listing}
        perps = {m: [0] * n for m in range(2)}
        for i, a in enumerate(ids):
            legs = rng.sample(listing, rng.randint(1, min(3, len(listing))))
            budget = usdc[i] * rng.uniform(*leverage)
            wanted = {slot: budget / len(legs) / USD_PER_TOKEN[asset] * (1 if rng.random() < 0.15 else -1)
                      for slot, asset, *_ in legs}
            market_id = rng.choice((0, 1))
            perp = budget / USD_PER_TOKEN[market_id] * rng.choice((1, -1)) if rng.random() < perp_share else 0.0
            for shrink in (1.0, 0.8, 0.6, 0.45, 0.35, 0.25, 0.18, 0.12, 0.08, 0.05):
                qs = {slot: int(q * shrink * 1e4) * 10**14 for slot, q in wanted.items()}
                order = sorted((slot for slot in qs if qs[slot]), key=lambda slot: (qs[slot] < 0, slot))  # longs first
                qp = int(perp * shrink * 1e4) * 10**14
                ok = True
                for k in range(1, len(order) + 2):  # every state the trades pass through, the perpetual last
                    held = {slot: qs[slot] for slot in order[:k]}
                    premium = sum(-q * marks[slot] // WAD for slot, q in held.items())
                    perp_held = {market_id: (qp, -(-qp * prices[market_id] // WAD))} if qp and k > len(order) else {}
                    st = AccountState(settlement=usdc[i] * WAD + premium, options=held, positions=perp_held)
                    m = account_margin(st, layout, prices, cfg, None, market)
                    ok &= m.equity * 10 >= m.initial * 11
                if ok:
                    break
            else:
                qs, order, qp = {}, [], 0
            for slot in order:
                q = qs[slot]
                self.trade_option(*((a, self.maker) if q > 0 else (self.maker, a)), slot, abs(q))
            perps[market_id][i] = qp
        for m, sizes in perps.items():
            self.trade(m, ids, sizes)
        return ids

    def random_book(self, n, rng: random.Random, leverage=(0.2, 1.8), owner_seed=None, direction=None):
        """``n`` random accounts: 1-3 collaterals (USDC, WBTC, WETH, WSOL, LINK), 1-3 positions with gross notional
        ``leverage`` x the collateral value, hedged or directional (all long: ``direction=1``, all short: -1).
        Returns the account ids."""
        owner_rng = random.Random(owner_seed if owner_seed is not None else rng.random())
        ids = [(owner_rng.getrandbits(160) << 96) | owner_rng.getrandbits(8) for _ in range(n)]
        tokens = self.tokens()
        decimals = [6, 8, 18, 9, 18]
        usd = [1] + list(USD_PER_TOKEN)
        deposits = {j: [0] * n for j in range(5)}
        value = [0.0] * n
        for i in range(n):
            for j in rng.sample(range(5), rng.randint(1, 3)):
                v = rng.uniform(1_000, 50_000)
                deposits[j][i] = int(v / usd[j] * 10 ** decimals[j])
                value[i] += v
        for j in range(5):
            self.deposit(tokens[j], ids, deposits[j])
        sizes = {m: [0] * n for m in range(4)}
        layout, prices, cfg = self.market()
        for i in range(n):
            gross = value[i] * rng.uniform(*leverage)
            markets = rng.sample(range(4), rng.randint(1, 3))
            wanted = {m: gross / len(markets) / USD_PER_TOKEN[m] * (direction or rng.choice((1, -1))) for m in markets}
            state = AccountState(collateral={j - 1: deposits[j][i] for j in range(1, 5) if deposits[j][i]},
                                 settlement=deposits[0][i] * 10**12)
            for shrink in (1.0, 0.6, 0.3, 0.1, 0.0):  # the venue would revert below IM: keep it above, exactly
                qs = {m: int(q * shrink * 1e6) * 10**12 for m, q in wanted.items()}
                state.positions = {m: (q, -(-q * prices[m] // WAD)) for m, q in qs.items() if q}
                mm = account_margin(state, layout, prices, cfg)
                if mm.equity >= mm.initial:
                    break
            for m, q in qs.items():
                sizes[m][i] = q
        for m in range(4):
            self.trade(m, ids, sizes[m])
        return ids


@pytest.fixture
def book(protocol, seeder, test_venue, deployer):
    return BookBuilder(protocol, seeder, test_venue, deployer)
