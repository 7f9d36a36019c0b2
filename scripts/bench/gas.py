"""Gas benchmark of the xmargin protocol on a local chain.

    brownie run scripts/bench/gas.py --network ganache-cli      (or: make gas)

The network must be a node Brownie launches itself (a free port): the benchmark takes and reverts chain snapshots,
which on a node shared with others would erase their state. It refuses to run on an attached node unless
GAS_BENCH_ALLOW_ATTACHED=1.

Deploys with ``deploy_local``, builds the portfolios below, measures real transactions (``tx.gas_used``, which
includes the 21,000 intrinsic gas and calldata) and views (``eth_estimateGas`` of an ``eth_call`` to the view, which
also includes the 21,000 intrinsic gas), logs a table and writes ``scripts/bench/results/gas.json`` (a flat object of
integers). Exits non-zero, after writing the JSON, if a figure is above its floor (``FLOORS``).

State assumed by every scenario (the common case on a live deployment; stated in the table):
  * every transaction starts cold (EIP-2929): nothing is warm from an earlier transaction, and its markets' funding
    was last advanced ``LATER`` seconds earlier (the common case; a second touch in the same second costs less);
  * token movers hold a finite (not infinite) allowance and keep a non-zero token balance; the vault already holds
    the token; recipients of withdrawals and keeper rewards already hold the token;
  * collateral and positions of a portfolio are on the same assets (WBTC/WETH collateral with BTC/ETH perps), so the
    oracle is read once per asset; ``margin_view_2x2_4assets`` shows the cost when they are on four different assets;
  * liquidations close 20% of each position (or seize 20% of the collateral) after prices are moved until equity is
    85% of maintenance margin (partial liquidation, not deep); the size is checked against ``max_take`` (the Python
    mirror of the on-chain rule) before sending; the keeper already holds USDC;
  * liquidations: the insurance fund already holds a position in each market it takes over and a balance of each
    collateral it seizes (after its first liquidation it normally does); the ``*_fund_new`` keys measure the same
    liquidations with the fund holding none, where each of its slots is created (20,000 gas more per slot).

Funding is on (the default, ``FUNDING_DEFAULT``): every touch of a market advances its funding state.
``settle_trade_funding`` and ``liquidate_2pos_funding`` measure the same operations after an hour of a non-zero rate
(each position realises its funding); ``adl`` liquidates a bankrupt one-position account whose loss exceeds the fund, so the write-off charges the
opposite side of its market (one ``Deleveraged``; the cost does not depend on how many accounts are on that side).

Portfolios are built quickly through ``TestVenue`` (no signatures; registered as a venue only here); ``settle_trade``
goes through the real ``OrderSettlement`` with EIP-712 signed orders.

Options (after every other key, so none of them sees an option): four live series (BTC 60k call and 55k put, 30 days;
ETH 3,000 call, 30 days, and 2,800 put, 60 days) traded against an option LP of their own.
``margin_view_2perp_4opt_2assets`` is ``margin_view_2x2``'s shape plus a position in each, at the default grid; ``margin_view_2perp_4opt_steps{1..4}`` the
same view at each grid size (``setOptionGrid``, reverted after). ``settle_option_trade`` opens a BTC call between two
USDC-only accounts through signed orders (instrument 256 + slot), both sides checked at IM. ``liquidate_option`` takes
20% of a short BTC call after a rally to ~85% of MM (the fund already holds the series). ``settle_expiry`` settles one
fixed position (in the money), ``settle_expiry_4`` four in one call.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from fractions import Fraction
from pathlib import Path

from brownie import TestVenue, accounts, chain, rpc, web3

from offchain.orders import Order, sign_order
from offchain.margin.exact import AccountState, account_margin, max_take, token_value_down
from offchain.margin.snapshot import (read_account_state, read_layout, read_margin_config, read_option_market,
                                     read_prices)
from offchain.margin.defaults import DEFAULT_SPEC, OPTIONS_DEFAULT
from scripts.deploy import FEED_DECIMALS, LOCAL_COLLATERALS, deploy_local

log = logging.getLogger(__name__)

RESULTS = Path(__file__).resolve().parent / "results" / "gas.json"
WAD = 10**18
USDC = 10**6
BTC, ETH, SOL, LINK = range(4)

# Figures that must hold (gas); checked after the JSON is written. margin_view_2x2 was 90,000 before funding: every
# valuation now reads each position's market funding state (a cold slot, 2,100 gas, per market), which alone leaves
# no room under 90,000 (the figure before was 89,316); the funding budget below bounds it instead (+10%).
FLOORS = {"liquidate_2pos": 250_000, "margin_view_2x2": 98_000, "deposit": 100_000,
          "liquidate_option": 500_000, "settle_expiry": 60_000, "settle_expiry_per_position_of_4": 60_000,
          "margin_view_2perp_4opt_2assets": 400_000}

# The option keys' targets (the options issue): reported beside the figures; those met are also in FLOORS.
OPTION_TARGETS = {"margin_view_2perp_4opt_2assets": 400_000, "settle_option_trade": 350_000,
                  "liquidate_option": 500_000, "settle_expiry": 60_000, "settle_expiry_per_position_of_4": 60_000,
          "margin_view_2perp_4opt_2assets": 400_000}

# The figures of the release before options (gas.json at commit 802c347): options may add at most 10% to any of them
# (perpetual-only accounts pay one flag check; the lens decodes the option part of marginDetail no more).
BEFORE_OPTIONS = {
    "deposit": 65_968, "deposit_first": 102_980, "deposit_settlement": 63_924, "withdraw_2pos": 129_000,
    "settle_trade": 317_540, "settle_trade_existing": 284_477, "margin_view_2x2": 96_458,
    "margin_view_2x2_4assets": 135_719, "margin_view_4x4": 152_271, "margin_detail_2x2": 106_967,
    "lens_10_accounts": 611_729, "lens_screen_10_accounts": 463_283, "liquidate_2pos": 220_783,
    "liquidate_2pos_usdc": 212_247, "liquidate_4pos": 343_125, "seize_collateral": 151_798,
    "liquidate_2pos_fund_new": 254_961, "liquidate_2pos_usdc_fund_new": 246_425, "liquidate_4pos_fund_new": 411_481,
    "seize_collateral_fund_new": 168_898, "settle_trade_funding": 299_694, "liquidate_2pos_funding": 271_985,
    "adl": 149_016, "margin_view_2x2_addons": 104_810,
}
OPTIONS_BUDGET = Fraction(11, 10)

# The figures of the release before funding (make gas at commit d43339b): funding may add at most FUNDING_BUDGET to
# each of them (checked with FLOORS).
BEFORE_FUNDING = {
    "deposit": 65_744,
    "deposit_first": 102_756,
    "deposit_settlement": 63_700,
    "withdraw_2pos": 121_964,
    "settle_trade": 293_287,
    "settle_trade_existing": 259_634,
    "margin_view_2x2": 89_316,
    "margin_view_2x2_4assets": 128_288,
    "margin_view_4x4": 142_706,
    "margin_detail_2x2": 106_677,
    "lens_10_accounts": 584_258,
    "lens_screen_10_accounts": 427_999,
    "liquidate_2pos": 204_738,
    "liquidate_2pos_usdc": 196_176,
    "liquidate_4pos": 313_178,
    "seize_collateral": 149_340,
    "liquidate_2pos_fund_new": 238_906,
    "liquidate_2pos_usdc_fund_new": 230_344,
    "liquidate_4pos_fund_new": 381_514,
    "seize_collateral_fund_new": 166_440,
}
FUNDING_BUDGET = Fraction(11, 10)

# Portfolios: collateral {collateral id: USD value}, positions {market: signed USD notional}.
VIEW_2X2 = ({0: 30_000, 1: 30_000}, {BTC: 60_000, ETH: -40_000})
VIEW_2X2_4ASSETS = ({0: 30_000, 1: 30_000}, {SOL: 60_000, LINK: -40_000})
VIEW_4X4 = ({0: 15_000, 1: 15_000, 2: 15_000, 3: 15_000}, {BTC: 50_000, ETH: -30_000, SOL: 20_000, LINK: -10_000})
LIQ_2X2 = ({0: 30_000, 1: 30_000}, {BTC: 60_000, ETH: 40_000})
LIQ_2POS_USDC = ({"usdc": 25_000}, {BTC: 60_000, ETH: 40_000})
LIQ_4X4 = ({0: 15_000, 1: 15_000, 2: 15_000, 3: 15_000}, {BTC: 25_000, ETH: 25_000, SOL: 25_000, LINK: 25_000})
# Collateral of every shape, times this: the calibrated default set asks IM of up to 45% of a SOL/LINK notional, and
# the shapes above were written for the lighter set before it (gas depends on which slots are touched, not on amounts)
COLLATERAL_X = 2
CLOSE_SHARE = Fraction(1, 5)  # liquidations close 20% of each position (checked against max_take)
TARGET_HEALTH = Fraction(85, 100)  # liquidation scenarios move prices until equity is ~85% of maintenance margin
LATER = 30  # seconds of chain time before each measured operation: its markets were last touched in earlier blocks
EXPIRY = 4_102_444_800  # fixed order expiry (2100-01-01): same signatures, hence same calldata, on every run
DAY = 86_400
OPTION_BASE = 256  # OrderSettlement: instrument 256 + slot is the option series in `slot`
# Option series of the option keys: slot -> (asset, is call, strike USD, days to expiry). Slots 0-3 are live for the
# views, trades and liquidation; 4-7 expire after a day for the settlement keys.
OPTION_SERIES = {
    0: (BTC, True, 60_000, 30), 1: (BTC, False, 55_000, 30), 2: (ETH, True, 3_000, 30), 3: (ETH, False, 2_800, 60),
}
EXPIRING_SERIES = {4: (BTC, True, 60_000, 1), 5: (BTC, False, 66_000, 1), 6: (ETH, True, 3_000, 1),
                   7: (ETH, False, 3_300, 1)}
# The option view: VIEW_2X2 (2 collaterals, a BTC long and an ETH short) and 4 options on BTC and ETH, slot -> size:
# a long BTC call, a short BTC put, a short ETH call, a long ETH put (60 days)
VIEW_OPTIONS = {0: 10**18, 1: -(10**18), 2: -10 * 10**18, 3: 10 * 10**18}
GRID_STEPS = (1, 2, 3, 4)  # the grid-size table: the option view at each number of steps (setOptionGrid)


class Figures:
    """The figures of one benchmark run (gas by key, and what each measures), written as a flat JSON object; the
    helpers every gas benchmark measures with (``scripts/bench/gas_peers.py`` too)."""

    def __init__(self, results: Path) -> None:
        self.results = results
        self.deployer = accounts[0]
        self.gas: dict[str, int] = {}
        self.what: dict[str, str] = {}

    def record(self, key: str, gas: int, what: str) -> None:
        self.gas[key] = int(gas)
        self.what[key] = what

    @staticmethod
    def key(label: str):
        """A local account with a fixed key: the same addresses (and calldata) on every run."""
        return accounts.add(web3.keccak(text=f"xmargin gas bench {label}"))

    def view_gas(self, contract, fn: str, *args) -> int:
        """A view's gas: ``eth_estimateGas`` of an ``eth_call`` to it (the 21,000 intrinsic gas included)."""
        data = getattr(contract, fn).encode_input(*args)
        return int(web3.eth.estimate_gas({"from": str(self.deployer), "to": contract.address, "data": data}))

    def in_order(self, keys: list[str]) -> None:
        """Keep the figures of ``keys``, in that order (a key not measured stops the run: KeyError)."""
        self.gas = {k: self.gas[k] for k in keys}

    def report(self, *title: str) -> None:
        """Logs ``title`` (one line each) and the table of the figures: key, gas, what it measures."""
        nw = max(len(k) for k in self.gas)
        ww = max(len(self.what[k]) for k in self.gas)
        log.info("")
        for line in title:
            log.info("%s", line)
        log.info("%-*s %9s  %s", nw, "key", "gas", "what it measures")
        log.info("%s", "-" * (nw + ww + 12))
        for key, gas in self.gas.items():
            log.info("%-*s %9s  %s", nw, key, f"{gas:,}", self.what[key])

    def write(self) -> None:
        self.results.parent.mkdir(parents=True, exist_ok=True)
        self.results.write_text(json.dumps(self.gas, indent=2) + "\n")
        log.info("written %s", self.results)


class Bench(Figures):
    def __init__(self) -> None:
        super().__init__(RESULTS)
        self.keeper = accounts[1]
        self.relayer = accounts[2]
        self.d = deploy_local(self.deployer, DEFAULT_SPEC)
        self.vault = self.d.vault
        self.tx = {"from": self.deployer}
        self.venue = TestVenue.deploy(self.vault, self.tx)
        self.vault.setVenue(self.venue, True, self.tx)
        self.fund_id = self.vault.fundAccount()
        # The deployer funds every setup deposit: mint plenty once, approve once.
        for token in [self.d.usdc, *self.d.tokens]:
            token.mint(self.deployer, 10**40, self.tx)
            token.approve(self.vault, 2**256 - 1, self.tx)
        # Liquidity provider: the counterparty of every setup trade (a second subaccount fills against it).
        self.lp = self.account_of(accounts[3], 0)
        self.lp2 = self.account_of(accounts[3], 1)
        self.vault.deposit(self.lp, self.d.usdc, 100_000_000 * USDC, self.tx)
        self.vault.deposit(self.lp2, self.d.usdc, 100_000_000 * USDC, self.tx)
        v = self.vault
        self.layout = read_layout(v)
        self.cfg = read_margin_config(self.d.params)
        self.liq_word = int(self.d.params.liquidationConfig()[0])

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def account_of(owner, sub: int) -> int:
        return (int(str(owner), 16) << 96) | sub

    def new_owner(self, label: str):
        owner = self.key(label)
        self.deployer.transfer(owner, "1 ether")
        return owner

    def price(self, asset: int) -> int:
        return int(self.d.oracle.price(asset))

    def set_feed(self, asset: int, answer: int) -> None:
        self.d.feeds[asset].updateAnswer(answer, self.tx)

    def collateral_amount(self, cid: int, usd: int) -> int:
        return usd * 10 ** LOCAL_COLLATERALS[cid][1] * WAD // self.price(LOCAL_COLLATERALS[cid][2])

    def deposit_for(self, account: int, cid, usd: int) -> None:
        if cid == "usdc":
            self.vault.deposit(account, self.d.usdc, usd * USDC, self.tx)
        else:
            self.vault.deposit(account, self.d.tokens[cid], self.collateral_amount(cid, usd), self.tx)

    def open(self, account: int, market: int, usd: int) -> None:
        """Trade `usd` of notional (signed) in `market` against the LP at the oracle price."""
        p = self.price(self.layout.market_asset[market])
        size = abs(usd) * WAD * WAD // p
        buyer, seller = (account, self.lp) if usd > 0 else (self.lp, account)
        self.venue.trade(buyer, seller, market, size, p, 0, self.tx)

    def build(self, account: int, shape) -> int:
        collateral, positions = shape
        for cid, usd in collateral.items():
            self.deposit_for(account, cid, usd * COLLATERAL_X)
        for market, usd in positions.items():
            self.open(account, market, usd)
        return account

    def state(self, account: int) -> AccountState:
        return read_account_state(self.vault, account)

    def prices(self) -> list[int]:
        return read_prices(self.d.oracle, self.layout)

    def crash_to_health(self, account: int, assets: list[int]) -> None:
        """Move the prices of `assets` down by one common factor until E/MM ~ TARGET_HEALTH (liquidatable, not deep)."""
        state = self.state(account)
        base = self.prices()
        answers = {a: base[a] // 10 ** (18 - FEED_DECIMALS) for a in assets}

        def moved(f: Fraction) -> tuple[dict[int, int], list[int]]:
            ans = {a: int(x * f) for a, x in answers.items()}
            p = list(base)
            for a, x in ans.items():
                p[a] = x * 10 ** (18 - FEED_DECIMALS)
            return ans, p

        def health(f: Fraction) -> Fraction:
            m = account_margin(state, self.layout, moved(f)[1], self.cfg)
            return Fraction(m.equity, m.maintenance)

        lo, hi = Fraction(1, 10), Fraction(1)  # health rises with f for these long portfolios
        if health(hi) <= TARGET_HEALTH:
            raise RuntimeError(f"account {account:#x} is already unhealthy before the move")
        for _ in range(40):
            mid = (lo + hi) / 2
            if health(mid) < TARGET_HEALTH:
                lo = mid
            else:
                hi = mid
        for a, x in moved(hi)[0].items():
            self.set_feed(a, x)
        m = account_margin(state, self.layout, self.prices(), self.cfg)
        deep = (self.liq_word >> 48) & 0xFFFF
        if not (m.liquidatable and m.equity * 10_000 >= m.maintenance * deep):
            raise RuntimeError(f"price move left account {account:#x} at E={m.equity} MM={m.maintenance}")

    def liquidate(self, account: int, items: list[tuple[int, int, int]]):
        """Check the items against max_take (the mirror of the on-chain rule), then liquidate from the keeper."""
        state, prices = self.state(account), self.prices()
        m = account_margin(state, self.layout, prices, self.cfg)
        allowed = max_take(m.equity, m.maintenance, m.initial, m.gross_total, self.liq_word)
        taken = 0
        for kind, i, amount in items:
            if kind == 0:
                taken += amount * prices[self.layout.market_asset[i]] // WAD
            else:
                asset, decimals = self.layout.collateral_asset[i], self.layout.collateral_decimals[i]
                taken += token_value_down(amount, prices[asset], decimals)
        if not 0 < taken <= allowed or allowed == m.gross_total:
            raise RuntimeError(f"liquidation of {account:#x} takes {taken}, allowed {allowed} (gross {m.gross_total})")
        chain.sleep(LATER)
        tx = self.vault.liquidate(account, items, {"from": self.keeper})
        if tx.status != 1 or "Liquidated" not in tx.events:
            raise RuntimeError(f"liquidation of {account:#x} failed")
        return tx

    def refresh_feeds(self) -> None:
        """Every price and volatility feed answers again at its current value (benchmarks move time)."""
        for feed in [*self.d.feeds, *[f for f in self.d.vol_feeds if f is not None]]:
            feed.updateAnswer(feed.latestRoundData()[1], self.tx)

    def trade_option(self, account: int, slot: int, size: int) -> None:
        """Trade `size` (signed, base units) of the series in `slot` against the option LP at its mark."""
        mark = int(self.d.options.mark(slot))
        buyer, seller = (account, self.opt_lp) if size > 0 else (self.opt_lp, account)
        self.venue.tradeOption(buyer, seller, slot, abs(size), mark, 0, self.tx)

    def option_margin(self, account: int, prices: list[int], time: int):
        """The mirror's margin of an account holding options, valued at `prices` and `time` (as a view does)."""
        market = read_option_market(self.d.options, self.d.oracle, self.d.params, time)
        state = read_account_state(self.vault, account, self.d.options)
        return account_margin(state, self.layout, prices, self.cfg, None, market)

    def close_items(self, account: int) -> list[tuple[int, int, int]]:
        return [
            (0, market, int(abs(size) * CLOSE_SHARE))
            for market, (size, _) in sorted(self.state(account).positions.items())
        ]

    # ------------------------------------------------------------------ scenarios
    def setup_portfolios(self) -> None:
        self.owner_a = self.new_owner("owner a")
        self.acc_a = self.build(self.account_of(self.owner_a, 0), VIEW_2X2)
        self.acc_a4 = self.build(self.account_of(self.owner_a, 1), VIEW_2X2_4ASSETS)
        self.acc_4x4 = self.build(self.account_of(self.owner_a, 2), VIEW_4X4)
        # Nine more 2x2 accounts (subaccounts of other owners) for the lens.
        self.lens_accounts = [self.acc_a]
        for i in range(9):
            owner = self.key(f"lens {i}")
            collateral, positions = VIEW_2X2
            scale = Fraction(10 + i, 10)
            shape = (
                {c: int(u * scale) for c, u in collateral.items()},
                {m: int(u * scale) for m, u in positions.items()},
            )
            self.lens_accounts.append(self.build(self.account_of(owner, i), shape))
        self.acc_l2 = self.build(self.account_of(self.key("liq 2"), 0), LIQ_2X2)
        self.acc_l2u = self.build(self.account_of(self.key("liq 2 usdc"), 0), LIQ_2POS_USDC)
        self.acc_l4 = self.build(self.account_of(self.key("liq 4"), 0), LIQ_4X4)
        # The keeper already holds the settlement token (its balance slot exists).
        self.d.usdc.mint(self.keeper, USDC, self.tx)

    def bench_views(self) -> None:
        chain.sleep(LATER)
        chain.mine()
        self.record("margin_view_2x2", self.view_gas(self.vault, "margin", self.acc_a),
                    "vault.margin: 2 collaterals (WBTC, WETH) x 2 positions (BTC, ETH); 2 oracle feeds; estimate_gas")
        self.bench_addons()
        self.record("margin_view_2x2_4assets", self.view_gas(self.vault, "margin", self.acc_a4),
                    "vault.margin: collaterals WBTC, WETH x positions SOL, LINK; 4 oracle feeds; estimate_gas")
        self.record("margin_view_4x4", self.view_gas(self.vault, "margin", self.acc_4x4),
                    "vault.margin: 4 collaterals x 4 positions; 4 oracle feeds; estimate_gas")
        self.record("margin_detail_2x2", self.view_gas(self.vault, "marginDetail", self.acc_a),
                    "vault.marginDetail of the 2x2 account (full breakdown + standard requirement); estimate_gas")
        self.record("lens_10_accounts", self.view_gas(self.d.lens, "healthOf", self.lens_accounts),
                    "AccountLens.healthOf for 10 accounts of 2 collaterals x 2 positions; estimate_gas")
        self.record("lens_screen_10_accounts", self.view_gas(self.d.lens, "equityAndMaintenance", self.lens_accounts),
                    "AccountLens.equityAndMaintenance for the same 10 accounts; estimate_gas")

    def bench_addons(self) -> None:
        """The 2x2 view with every dynamic add-on on: volatility scalers on both assets, a correlation break, and a
        liquidation depth in both markets, right after ``margin_view_2x2`` (the parameters are reverted after)."""
        chain.snapshot()
        tx = {"from": self.deployer}
        params = self.d.params
        for asset, bps in ((0, 12_000), (1, 15_000)):
            params.setVolScaler(asset, bps, tx)
        params.setCorrelationBreak(5_000, tx)
        for market in (0, 1):
            params.setMarketDepth(market, 1_000, tx)
        self.record("margin_view_2x2_addons", self.view_gas(self.vault, "margin", self.acc_a),
                    "vault.margin of the 2x2 account with volatility scalers, a correlation break and a depth in "
                    "both markets; estimate_gas")
        chain.revert()

    def bench_collateral(self) -> None:
        weth, owner = self.d.tokens[1], self.owner_a
        tx_owner = {"from": owner}
        weth.mint(owner, 10 * WAD, self.tx)
        weth.approve(self.vault, 5 * WAD, tx_owner)  # finite allowance: it is written on every deposit
        tx = self.vault.deposit(self.acc_a, weth, WAD // 10, tx_owner)
        self.record("deposit", tx.gas_used,
                    "deposit: top-up of an existing WETH balance by the owner (account and vault already hold WETH)")
        tx = self.vault.deposit(self.account_of(owner, 7), weth, WAD // 10, tx_owner)
        self.record("deposit_first", tx.gas_used,
                    "deposit: first deposit into a new account (its account and collateral slots are created)")
        self.d.usdc.mint(owner, 10_000 * USDC, self.tx)
        self.d.usdc.approve(self.vault, 5_000 * USDC, tx_owner)
        tx = self.vault.deposit(self.acc_a, self.d.usdc, 1_000 * USDC, tx_owner)
        self.record("deposit_settlement", tx.gas_used, "deposit: USDC into an existing account's settlement balance")
        chain.sleep(LATER)
        tx = self.vault.withdraw(self.acc_a, weth, WAD // 10, owner, tx_owner)
        self.record("withdraw_2pos", tx.gas_used,
                    "withdraw WETH from 2 collaterals x 2 positions, IM check included (recipient holds WETH)")

    def bench_settle(self) -> None:
        """Maker and taker each hold collateral and a BTC position, then trade ETH through signed orders."""
        maker_owner, taker_owner = self.key("maker"), self.key("taker")
        maker, taker = self.account_of(maker_owner, 0), self.account_of(taker_owner, 0)
        for acct, btc in ((maker, -30_000), (taker, 30_000)):
            self.vault.deposit(acct, self.d.usdc, 20_000 * USDC, self.tx)
            self.deposit_for(acct, 1, 20_000)
            self.open(acct, BTC, btc)
        if chain.time() >= EXPIRY:
            raise RuntimeError("order expiry constant is in the past")
        self.makers = (maker_owner, maker, taker_owner, taker)
        self.nonce = iter(range(1, 100))
        self.record("settle_trade", self.fill(ETH),
                    "OrderSettlement.settle: signed maker/taker pair opening ETH positions, both holding BTC positions")
        self.record("settle_trade_existing", self.fill(ETH),
                    "OrderSettlement.settle: the same pair adding to the ETH positions opened above")

    def fill(self, market: int) -> int:
        """A signed maker/taker pair (the bench_settle accounts) trading 2 units of `market` at the oracle price."""
        maker_owner, maker, taker_owner, taker = self.makers
        venue, cid = self.d.venue, chain.id
        chain.sleep(LATER)
        p = self.price(self.layout.market_asset[market])
        size = 2 * WAD
        sell = Order(maker, market, False, size, p, EXPIRY, next(self.nonce))
        buy = Order(taker, market, True, size, p, EXPIRY, next(self.nonce))
        tx = venue.settle(
            sell, sign_order(sell, maker_owner.private_key, cid, venue.address),
            buy, sign_order(buy, taker_owner.private_key, cid, venue.address),
            size, {"from": self.relayer},
        )
        if tx.status != 1 or "Trade" not in tx.events:
            raise RuntimeError("settle failed")
        return tx.gas_used

    def bench_liquidations(self, suffix: str, note: str) -> None:
        """Each liquidation runs from the same snapshot (prices moved for it alone) and is reverted afterwards."""
        chain.snapshot()
        self.crash_to_health(self.acc_l2, [BTC, ETH])
        tx = self.liquidate(self.acc_l2, self.close_items(self.acc_l2))
        self.record("liquidate_2pos" + suffix, tx.gas_used,
                    f"liquidate 20% of each position, 2 collaterals x 2 positions, after a crash; {note}")
        chain.revert()

        self.crash_to_health(self.acc_l4, [BTC, ETH, SOL, LINK])
        tx = self.liquidate(self.acc_l4, self.close_items(self.acc_l4))
        self.record("liquidate_4pos" + suffix, tx.gas_used,
                    f"liquidate 20% of each position, 4 collaterals x 4 positions, after a crash; {note}")
        chain.revert()

        self.crash_to_health(self.acc_l2u, [BTC, ETH])
        tx = self.liquidate(self.acc_l2u, self.close_items(self.acc_l2u))
        self.record("liquidate_2pos_usdc" + suffix, tx.gas_used,
                    f"liquidate 20% of each position, USDC margin x 2 positions, after a crash; {note}")
        chain.revert()

        tx = self.seize(self.account_of(self.key("seize"), 0))
        self.record("seize_collateral" + suffix, tx.gas_used,
                    f"liquidate seizing 20% of WETH: no positions, negative settlement, ETH crash; {note}")
        chain.revert()

    def accrue_funding(self) -> None:
        """A premium in BTC and ETH (fee-paying fills 10 bps above the index), then an hour: every position there
        has funding to realise at its next touch. Feeds are refreshed at the same prices (they would be stale)."""
        for market in (BTC, ETH):
            p = self.price(self.layout.market_asset[market])
            above = p * 10_010 // 10_000
            self.venue.trade(self.lp2, self.lp, market, 5 * WAD, above, 5 * WAD * above // WAD * 7 // 10_000, self.tx)
        chain.sleep(3600)
        for asset in range(4):
            self.set_feed(asset, self.d.feeds[asset].latestRoundData()[1])
        if self.vault.marketFunding(BTC)["ratePerSecond"] <= 0:
            raise RuntimeError("funding setup: expected longs to pay")

    def bench_funding(self) -> None:
        chain.snapshot()
        self.accrue_funding()
        self.record("settle_trade_funding", self.fill(ETH),
                    "OrderSettlement.settle as settle_trade_existing, an hour of funding after the last touch")
        chain.revert()
        self.accrue_funding()
        self.crash_to_health(self.acc_l2, [BTC, ETH])
        tx = self.liquidate(self.acc_l2, self.close_items(self.acc_l2))
        if "FundingUpdated" not in tx.events:
            raise RuntimeError("funding setup: the liquidation did not advance funding")
        self.record("liquidate_2pos_funding", tx.gas_used,
                    "liquidate_2pos after an hour of funding since the last touch of both markets; fund holds them")
        chain.revert()

    def bench_adl(self) -> None:
        """A 300 BTC long on 3.6 million USDC (its IM) against one short; BTC -30% leaves a debt the fund cannot cover."""
        chain.snapshot()
        short, doomed = self.account_of(self.key("adl short"), 0), self.account_of(self.key("adl long"), 0)
        self.vault.deposit(short, self.d.usdc, 20_000_000 * USDC, self.tx)
        self.vault.deposit(doomed, self.d.usdc, 3_600_000 * USDC, self.tx)
        p = self.price(BTC)
        self.venue.trade(doomed, short, BTC, 300 * WAD, p, 0, self.tx)
        self.set_feed(BTC, p * 7 // 10 // 10 ** (18 - FEED_DECIMALS))
        tx = self.vault.liquidate(doomed, [(0, BTC, 300 * WAD)], {"from": self.keeper})
        if "Deleveraged" not in tx.events:
            raise RuntimeError("adl setup: the write-off did not deleverage")
        self.record("adl", tx.gas_used, "liquidate a bankrupt 300 BTC long, loss beyond the fund: write-off, one "
                                        "deleveraging of the shorts")
        chain.revert()

    def seize(self, account: int):
        """WETH collateral, a BTC long closed at a loss (negative settlement), then an ETH crash; seize WETH."""
        self.deposit_for(account, 1, 30_000)
        self.open(account, BTC, 60_000)
        btc = self.prices()[BTC] // 10 ** (18 - FEED_DECIMALS)
        self.set_feed(BTC, btc * 3 // 4)  # BTC -25%: the long loses 15,000 USD
        size = self.state(account).positions[BTC][0]
        p = self.price(BTC)
        self.venue.trade(self.lp, account, BTC, size, p, 0, self.tx)  # close it (reduce-only: always allowed)
        s = self.state(account)
        if s.positions or s.settlement >= 0:
            raise RuntimeError("seize setup: expected no positions and a negative settlement balance")
        self.crash_to_health(account, [ETH])
        amount = int(s.collateral[1] * CLOSE_SHARE)
        return self.liquidate(account, [(1, 1, amount)])

    def seed_fund(self) -> None:
        """The fund's state after earlier liquidations: a long in each market, a balance of each collateral."""
        for market in range(4):
            self.open(self.fund_id, market, 1_000)
        for cid in range(4):
            self.deposit_for(self.fund_id, cid, 1_000)

    # ------------------------------------------------------------------ options
    def setup_options(self) -> None:
        """Lists the live series and builds the option view's account. Options trade against an LP of their own, so
        the perpetual LP's margin checks in the other keys' setups stay option-free."""
        self.refresh_feeds()
        t = chain.time()
        for slot, (asset, is_call, strike, days) in OPTION_SERIES.items():
            self.d.options.listSeries(slot, asset, is_call, strike * WAD, t + days * DAY, self.tx)
        self.opt_lp = self.account_of(accounts[3], 2)
        self.vault.deposit(self.opt_lp, self.d.usdc, 100_000_000 * USDC, self.tx)
        self.acc_opt = self.build(self.account_of(self.owner_a, 3), VIEW_2X2)
        for slot, size in VIEW_OPTIONS.items():
            self.trade_option(self.acc_opt, slot, size)

    def bench_option_views(self) -> None:
        """The option view at the default grid, then at each grid size (the OPTION word is restored after)."""
        chain.sleep(LATER)
        self.refresh_feeds()
        chain.mine()
        self.record("margin_view_2perp_4opt_2assets", self.view_gas(self.vault, "margin", self.acc_opt),
                    "vault.margin: VIEW_2X2 and 4 options (BTC call long, put short; ETH call short, put long); "
                    "default grid (2 steps); estimate_gas")
        chain.snapshot()
        o = OPTIONS_DEFAULT
        for steps in GRID_STEPS:
            self.d.params.setOptionGrid(o.vol_up_bps, o.vol_down_bps, steps, o.short_min_bps, self.tx)
            if (int(self.d.params.optionWord()) >> 160) & 0xFF != steps:
                raise RuntimeError(f"option grid: {steps} steps were not applied")
            self.record(f"margin_view_2perp_4opt_steps{steps}", self.view_gas(self.vault, "margin", self.acc_opt),
                        f"margin_view_2perp_4opt_2assets with a grid of {steps} steps per side; estimate_gas")
        chain.revert()

    def bench_option_trade(self) -> None:
        """Two fresh accounts (USDC only) open a BTC call through signed orders (instrument 256 + slot): both sides
        add risk, so both are checked at IM with their option part."""
        maker_owner, taker_owner = self.key("option maker"), self.key("option taker")
        maker, taker = self.account_of(maker_owner, 0), self.account_of(taker_owner, 0)
        for acct in (maker, taker):
            self.vault.deposit(acct, self.d.usdc, 100_000 * USDC, self.tx)
        chain.sleep(LATER)
        self.refresh_feeds()
        venue, cid, size = self.d.venue, chain.id, WAD
        mark = int(self.d.options.mark(0))
        sell = Order(maker, OPTION_BASE + 0, False, size, mark, EXPIRY, 1)
        buy = Order(taker, OPTION_BASE + 0, True, size, mark, EXPIRY, 2)
        chain.sleep(LATER)
        tx = venue.settle(
            sell, sign_order(sell, maker_owner.private_key, cid, venue.address),
            buy, sign_order(buy, taker_owner.private_key, cid, venue.address),
            size, {"from": self.relayer},
        )
        if tx.status != 1 or "OptionTrade" not in tx.events:
            raise RuntimeError("option settle failed")
        self.record("settle_option_trade", tx.gas_used,
                    "OrderSettlement.settle: signed maker/taker pair (USDC only, no options yet) opening a BTC call "
                    "(instrument 256 + slot), both sides checked at IM")

    def bench_option_liquidation(self) -> None:
        """A short BTC call on USDC margin, BTC rallies until E/MM ~ TARGET_HEALTH, 20% of the call goes to the fund
        (which already holds the series)."""
        chain.snapshot()
        self.refresh_feeds()
        account = self.account_of(self.key("option liq"), 0)
        self.vault.deposit(account, self.d.usdc, 25_000 * USDC, self.tx)
        size = 2 * WAD
        self.trade_option(account, 0, -size)
        self.trade_option(self.fund_id, 0, WAD // 10)
        base = self.prices()
        answer = base[BTC] // 10 ** (18 - FEED_DECIMALS)
        when = chain.time() + LATER

        def moved(f: Fraction) -> list[int]:
            p = list(base)
            p[BTC] = int(answer * f) * 10 ** (18 - FEED_DECIMALS)
            return p

        def health(f: Fraction) -> Fraction:
            m = self.option_margin(account, moved(f), when)
            return Fraction(m.equity, m.maintenance)

        lo, hi = Fraction(1), Fraction(2)  # health falls as BTC rises
        if health(lo) <= TARGET_HEALTH or health(hi) >= TARGET_HEALTH:
            raise RuntimeError("option liquidation setup: the rally does not bracket the target health")
        for _ in range(30):
            mid = (lo + hi) / 2
            if health(mid) > TARGET_HEALTH:
                lo = mid
            else:
                hi = mid
        self.set_feed(BTC, int(answer * hi))
        m = self.option_margin(account, self.prices(), when)
        deep = (self.liq_word >> 48) & 0xFFFF
        if not (m.liquidatable and m.equity * 10_000 >= m.maintenance * deep):
            raise RuntimeError(f"option liquidation setup: E={m.equity} MM={m.maintenance}")
        amount = int(size * CLOSE_SHARE)
        allowed = max_take(m.equity, m.maintenance, m.initial, m.gross_total, self.liq_word)
        taken = amount * self.prices()[BTC] // WAD
        if not 0 < taken <= allowed:
            raise RuntimeError(f"option liquidation takes {taken}, allowed {allowed}")
        chain.sleep(LATER)
        tx = self.vault.liquidate(account, [(2, 0, amount)], {"from": self.keeper})
        if tx.status != 1 or "Liquidated" not in tx.events:
            raise RuntimeError("option liquidation failed")
        self.record("liquidate_option", tx.gas_used,
                    "liquidate 20% of a short BTC call (USDC margin, its only position) after a BTC rally to ~85% of "
                    "MM: an item of kind 2, the fund takes it at the mark (it already holds the series)")
        chain.revert()

    def bench_expiry(self) -> None:
        """Series expiring in a day, fixed at the first price round after expiry; one account settles one position,
        another four (all in the money: cash into the settlement balance)."""
        chain.snapshot()
        self.refresh_feeds()
        t = chain.time()
        for slot, (asset, is_call, strike, days) in EXPIRING_SERIES.items():
            self.d.options.listSeries(slot, asset, is_call, strike * WAD, t + days * DAY, self.tx)
        one = self.account_of(self.key("expiry one"), 0)
        four = self.account_of(self.key("expiry four"), 0)
        for acct in (one, four):
            self.vault.deposit(acct, self.d.usdc, 200_000 * USDC, self.tx)
        self.trade_option(one, 4, WAD)
        for slot in EXPIRING_SERIES:
            self.trade_option(four, slot, WAD)
        base = {a: self.d.feeds[a].latestRoundData()[1] for a in (BTC, ETH)}
        chain.sleep(DAY + 60)
        for a, x in base.items():
            self.set_feed(a, x * 105 // 100)  # the first round at or after the expiry: BTC 63,000, ETH 3,150
        for slot, (asset, *_) in EXPIRING_SERIES.items():
            self.d.options.fixExpiry(slot, self.d.feeds[asset].latestRound(), {"from": self.keeper})
        chain.sleep(LATER)
        tx = self.vault.settleExpired(one, [4], {"from": self.keeper})
        self.record("settle_expiry", tx.gas_used,
                    "vault.settleExpired of one fixed position (a BTC call in the money: cash into settlement)")
        tx = self.vault.settleExpired(four, list(EXPIRING_SERIES), {"from": self.keeper})
        self.record("settle_expiry_4", tx.gas_used, "vault.settleExpired of four fixed positions in one call")
        self.record("settle_expiry_per_position_of_4", tx.gas_used // len(EXPIRING_SERIES),
                    "settle_expiry_4 divided by its four positions")
        chain.revert()

    # ------------------------------------------------------------------ report
    def check_floors(self) -> None:
        broken = [f"{k} = {self.gas[k]:,} gas > floor {v:,}" for k, v in FLOORS.items() if self.gas[k] > v]
        for k, v in FLOORS.items():
            status = "ok" if self.gas[k] <= v else "BROKEN"
            log.info("floor %-18s %9s <= %9s  %s", k, f"{self.gas[k]:,}", f"{v:,}", status)
        budget = float(FUNDING_BUDGET - 1)
        log.info("%-28s %9s %9s %7s  (funding budget +%.0f%%)", "key", "before", "now", "change", budget * 100)
        for k, before in BEFORE_FUNDING.items():
            ok = self.gas[k] <= before * FUNDING_BUDGET
            log.info("%-28s %9s %9s %+6.1f%%  %s", k, f"{before:,}", f"{self.gas[k]:,}",
                     (self.gas[k] / before - 1) * 100, "ok" if ok else "BROKEN")
            if not ok:
                broken.append(f"{k} = {self.gas[k]:,} gas > {before:,} before funding + {budget:.0%}")
        log.info("%-34s %9s %9s  (options issue targets)", "option key", "target", "now")
        for k, target in OPTION_TARGETS.items():
            log.info("%-34s %9s %9s  %s", k, f"{target:,}", f"{self.gas[k]:,}",
                     "met" if self.gas[k] <= target else f"not met (+{self.gas[k] - target:,})")
        log.info("%-28s %9s %9s %7s  (options budget +%.0f%%)", "key", "before", "now", "change",
                 float(OPTIONS_BUDGET - 1) * 100)
        for k, before in BEFORE_OPTIONS.items():
            ok = self.gas[k] <= before * OPTIONS_BUDGET
            log.info("%-28s %9s %9s %+6.1f%%  %s", k, f"{before:,}", f"{self.gas[k]:,}",
                     (self.gas[k] / before - 1) * 100, "ok" if ok else "BROKEN")
            if not ok:
                broken.append(f"{k} = {self.gas[k]:,} gas > {before:,} before options + 10%")
        if broken:
            raise SystemExit("gas floor broken: " + "; ".join(broken))


def run_benchmarks(b: "Bench", options_only: bool = False) -> None:
    """Every benchmark in order (``options_only``: the portfolios, then the option keys alone)."""
    b.setup_portfolios()
    if not options_only:
        b.bench_views()
        b.bench_collateral()
        b.bench_settle()
        b.bench_liquidations("_fund_new", "fund's slots new")
        b.seed_fund()
        b.bench_liquidations("", "fund holds them")
        b.bench_funding()
        b.bench_adl()
    b.setup_options()
    b.bench_option_views()
    b.bench_option_trade()
    b.bench_option_liquidation()
    b.bench_expiry()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", message=r"rpc\.\w+ should not be called directly")
    if not rpc.is_child() and os.environ.get("GAS_BENCH_ALLOW_ATTACHED") != "1":
        # The benchmark takes and reverts chain snapshots: on a node other people use, that would erase their state.
        raise SystemExit(
            "refusing to run on a node Brownie did not launch (it reverts snapshots); pick a free port / network, "
            "or set GAS_BENCH_ALLOW_ATTACHED=1 if the node is yours alone"
        )
    b = Bench()
    run_benchmarks(b)
    order = [
        "deposit", "deposit_first", "deposit_settlement", "withdraw_2pos", "settle_trade", "settle_trade_existing",
        "margin_view_2x2", "margin_view_2x2_4assets", "margin_view_4x4", "margin_detail_2x2",
        "lens_10_accounts", "lens_screen_10_accounts",
        "liquidate_2pos", "liquidate_2pos_usdc", "liquidate_4pos", "seize_collateral",
        "liquidate_2pos_fund_new", "liquidate_2pos_usdc_fund_new", "liquidate_4pos_fund_new",
        "seize_collateral_fund_new", "settle_trade_funding", "liquidate_2pos_funding", "adl", "margin_view_2x2_addons",
        "margin_view_2perp_4opt_2assets", *[f"margin_view_2perp_4opt_steps{n}" for n in GRID_STEPS],
        "settle_option_trade", "liquidate_option",
        "settle_expiry", "settle_expiry_4", "settle_expiry_per_position_of_4",
    ]
    b.in_order(order)
    b.report("xmargin gas benchmark. Transactions: receipt gasUsed. Views: eth_estimateGas of an eth_call.",
             "Both include the 21,000 intrinsic gas (and calldata); every transaction starts with cold storage.")
    b.write()
    b.check_floors()
