"""The solvency state machine (README, "Invariants"; DESIGN section 7, invariants 1-6), shared by the CI test
(tests/stateful/test_invariants.py) and the long campaign (scripts/bench/fuzz.py, ``make fuzz``).

Its own deployment (``setup``) adds to the local protocol: a fee-on-transfer token (collateral 4, priced as ETH) and a
token whose transfers return nothing (collateral 5, priced as SOL), both with a 10% haircut; a guardian distinct from
the admin; a loosening delay of 600 s; eight accounts (four owners x two subaccounts) with margin in USDC and WETH
and a leveraged pair book. Rules cover every user-facing action:

  deposits (all six collaterals and USDC, credited by balance difference), withdrawals (by the owner or an
  operator), trades through a registered venue, price moves, oracle failures (stale, zero and negative answers),
  keeper passes (proportional closes, and the bundled keeper's planner), parameter changes (a tightening applies at
  once, a loosening is queued and applied after the delay, or cancelled by the guardian), pauses (the guardian sets
  flags; only the admin clears them) and the passage of time.

Every action is first simulated with eth_call and sent only if it succeeds; the reason of every refusal must be one
the rule allows. After every step (invariants):
  1. token conservation (each collateral: vault balance >= sum of balances; settlement token: held * scale +
     badDebt >= sum(settlement) + unrealised P&L);
  2. zero-sum per market, open interest = sum of longs;
  6. the off-chain indexer (SQLite, rebuilt from the vault's events) holds exactly the chain's state for every
     account, and the Python margin of that state equals AccountLens's equity and maintenance margin to the wei.
Invariants 3, 4 and 5 are checked inside the rules that can break them (withdraw, trade, liquidate, oracle failure).
"""
from __future__ import annotations

import functools
import itertools
from pathlib import Path

import requests
from brownie import FeeOnTransferToken, NoReturnToken, TestVenue, accounts, chain, web3
from brownie.exceptions import TransactionError
from brownie.network.transaction import TransactionReceipt
from eth_abi import decode as abi_decode
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from offchain.chain import Chain, Deployment, Rpc, load_abis
from offchain.db import connect
from offchain.indexer import Indexer
from offchain.keeper.planner import LiquidationTerms, plan_liquidation
from offchain.risk.margin import AccountState, MarginConfig, account_margin, max_take, u16
from offchain.risk.snapshot import read_account_state, read_layout, read_prices

ROOT = Path(__file__).resolve().parents[2]
WAD = 10**18
OWNERS = 4
SUBS = 2
NCOLL = 6  # 0 WBTC, 1 WETH, 2 WSOL, 3 LINK, 4 fee-on-transfer (ETH), 5 no-return (SOL); token 6 = USDC
USDC_T = NCOLL
LOOSEN_DELAY = 600
ALLOWED_TRADE_REFUSALS = ("InsufficientMargin", "PositionTooLarge", "OpenInterestTooLarge", "PriceOutsideBand")
ORACLE_ERRORS = ("PriceStale", "PriceNotPositive")


def txp(sender):
    """Transaction parameters with a gas limit unique in this process: every run replays from the same snapshot, and a
    transaction identical to one of an earlier, reverted run (same nonce, same data, same hash) confuses Brownie's
    receipt tracking on Anvil ("Tx dropped without known replacement")."""
    return {"from": sender, "gas_limit": 5_000_000 + next(_UNIQUE)}


_UNIQUE = itertools.count()
DROPPED = "Tx dropped without known replacement: "


def send(fn, args, sender):
    """``fn(*args)`` as a transaction from ``sender``. Brownie 1.22 on Anvil now and then reports a transaction it has
    just sent as dropped while the node has mined it; the node's receipt decides: mined, the receipt is returned;
    not mined within 30 s (really dropped), the error stands."""
    try:
        return fn(*args, txp(sender))
    except TransactionError as e:
        if DROPPED not in str(e):
            raise
        txid = str(e).split(DROPPED, 1)[1].split()[0]
        try:
            mined = web3.eth.wait_for_transaction_receipt(txid, timeout=30)
        except Exception:
            raise e from None
        assert mined["status"] == 1, f"{txid} was mined but reverted after a successful simulation"
        Solvency.recovered_receipts = getattr(Solvency, "recovered_receipts", 0) + 1
        return TransactionReceipt(txid, silent=True)


def account_id(owner, sub):
    return (int(owner.address, 16) << 96) | sub


def setup(protocol, deployer):
    """The machine's deployment on top of ``deploy_local`` (see the module doc). Returns the context."""
    tx = {"from": deployer}
    v, params = protocol.vault, protocol.params
    venue = TestVenue.deploy(v, tx)
    v.setVenue(venue, True, tx)
    fee_token = FeeOnTransferToken.deploy(tx)
    no_return = NoReturnToken.deploy(tx)
    v.listCollateral(fee_token, 1, tx)
    v.listCollateral(no_return, 2, tx)
    params.setHaircut(4, 1000, tx)  # tightening from 0: applies at once
    params.setHaircut(5, 1000, tx)
    guardian = accounts[8]
    params.grantRole(params.GUARDIAN_ROLE(), guardian, tx)
    params.setLoosenDelay(LOOSEN_DELAY, tx)  # lengthening: at once
    tokens = [*protocol.tokens, fee_token, no_return, protocol.usdc]
    for t in tokens:
        t.mint(deployer, 10**40, tx)
        t.approve(v, 2**256 - 1, tx)
    owners = [accounts[2 + i] for i in range(OWNERS)]
    ids = [account_id(o, s) for o in owners for s in range(SUBS)]
    for acct in ids:  # 60,000 USD of margin each: half USDC, half WETH
        v.deposit(acct, protocol.usdc, 30_000 * 10**6, tx)
        v.deposit(acct, protocol.tokens[1], 10 * WAD, tx)
    # a leveraged book: accounts 2i and 2i+1 hold opposite positions in market i % 4, near their IM
    for pair in range(len(ids) // 2):
        market = pair % 4
        price = protocol.oracle.price(market)
        usd = (200_000, 150_000, 100_000, 100_000)[market]
        venue.trade(ids[2 * pair], ids[2 * pair + 1], market, usd * WAD * WAD // price, price, 0, tx)
    return {"protocol": protocol, "venue": venue, "tokens": tokens, "guardian": guardian, "owners": owners,
            "ids": ids, "keeper": accounts[1], "deployer": deployer, "addresses": protocol.addresses()}


def offchain_chain(addresses) -> Chain:
    """The off-chain package's own view of the deployment (raw eth_call reads, custom-error decoding)."""
    rpc = Rpc([web3.provider.endpoint_uri], timeout=120, retries=2, backoff=0.05)
    names = ("CrossMarginVault", "AccountLens", "OracleRouter", "RiskParameters", "OrderSettlement")
    dep = Deployment(int(addresses["chainId"]), {n: addresses[n] for n in names}, int(addresses["startBlock"]),
                     tuple(addresses["assets"]))
    return Chain(rpc, dep, load_abis(ROOT / "build" / "contracts"))


traders = st.integers(0, OWNERS * SUBS - 1)
tokens_st = st.integers(0, NCOLL)
markets = st.integers(0, 3)
assets = st.integers(0, 3)
usds = st.integers(100, 300_000)
fracs = st.integers(1, 100)  # percent
moves = st.integers(-35, 35)  # per mille from the oracle price: sometimes outside the 2% band
price_moves = st.sampled_from([-40, -25, -12, -5, 5, 12, 25, 40])  # percent
PARAMS = ("risk_weight", "haircut", "price_band", "scalars")


class Solvency(RuleBasedStateMachine):
    context: dict = {}  # set by setup(): protocol, venue, tokens, ...
    done: dict = {}  # successful transactions by kind, over all runs
    rule_counts: dict = {}  # rule executions by name, over all runs
    steps = 0  # invariant checks (one per step, plus one at the start of each run)
    runs = 0

    def __init__(self):
        super().__init__()
        chain.revert()  # every run starts from the same deployment
        c = self.context
        self.p = c["protocol"]
        self.v = self.p.vault
        self.params = self.p.params
        self.venue = c["venue"]
        self.tokens = c["tokens"]
        self.owners = c["owners"]
        self.accounts = c["ids"]
        self.keeper = c["keeper"]
        self.deployer = c["deployer"]
        self.guardian = c["guardian"]
        self.everyone = self.accounts + [self.v.fundAccount(), account_id(self.keeper, 0)]
        self.scale = int(self.v.settlementScale())
        self.c = offchain_chain(c["addresses"])
        self.at = self.c.at("latest")
        self.layout = read_layout(self.at.vault)
        self.indexer = Indexer(self.c, connect(":memory:"))  # rebuilt from the events in every run
        self.queued: list[tuple[str, tuple, bytes]] = []  # loosenings waiting for the delay: (setter, args, id)
        self.operators: dict[int, int] = {}  # owner index -> operator owner index
        Solvency.runs += 1

    # ------------------------------------------------------------------ helpers
    def _count(self, name):
        Solvency.rule_counts[name] = Solvency.rule_counts.get(name, 0) + 1

    def _amount(self, t, usd):
        if t == USDC_T:
            return usd * 10**6
        asset, decimals = self.layout.collateral_asset[t], self.layout.collateral_decimals[t]
        return usd * 10**decimals * WAD // int(self.c.call("OracleRouter", "price", asset))

    def _simulate(self, fn, args, sender):
        """eth_call of ``fn(*args)`` from ``sender``: (True, '') or (False, decoded custom error)."""
        req = [{"from": sender.address, "to": fn._address, "data": fn.encode_input(*args)}, "latest"]
        resp = web3.provider.make_request("eth_call", req)
        if "error" not in resp:
            return True, ""
        err = resp["error"]
        data = err.get("data")
        data = (data.get("data") or data.get("result")) if isinstance(data, dict) else data
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            return False, self.c.errors.decode(data)
        return False, str(err.get("message"))

    def _try(self, fn, *args, sender):
        """Simulate first; send only if it succeeds. Returns (ok, reason, receipt)."""
        ok, msg = self._simulate(fn, args, sender)
        if not ok:
            return False, msg, None
        receipt = send(fn, args, sender)
        name = getattr(fn, "_name", str(fn))
        Solvency.done[name] = Solvency.done.get(name, 0) + 1
        return True, "", receipt

    def _state(self, acct):
        return read_account_state(self.at.vault, acct)

    def _margin(self, acct):
        return self.c.call("CrossMarginVault", "margin", acct)  # (E, MM, IM) from the chain

    def _market(self):
        prices = read_prices(self.at.oracle, self.layout)
        return prices, MarginConfig.from_chain(self.c.call("RiskParameters", "marginConfig"))

    def _control(self):
        return int(self.c.call("RiskParameters", "control"))

    def _paused(self, flag):
        return self._control() & flag != 0

    def _assets_of(self, acct):
        s = self._state(acct)
        return {self.layout.market_asset[m] for m in s.positions} | {self.layout.collateral_asset[j]
                                                                     for j in s.collateral}

    def _bal(self, t, holder):
        return int(self.tokens[t].balanceOf(holder))

    def _holdings(self, acct):
        s = self._state(acct)
        return s.canonical(), [self._bal(t, self.v) for t in range(NCOLL + 1)]

    # ------------------------------------------------------------------ rules: collateral
    @rule(trader=traders, token=tokens_st, usd=usds)
    def deposit(self, trader, token, usd):
        self._count("deposit")
        acct = self.accounts[trader]
        amount = self._amount(token, usd)
        if amount == 0:
            return
        before = self._state(acct)
        held = self._bal(token, self.v)
        ok, msg, _ = self._try(self.v.deposit, acct, self.tokens[token], amount, sender=self.deployer)
        if not ok:
            assert self._paused(2) and msg.startswith("Paused"), msg
            return
        arrived = self._bal(token, self.v) - held
        expected = amount - amount // 100 if token == 4 else amount  # the fee token burns 1% of every transfer
        assert arrived == expected, "token accounting: the vault did not receive what the token moved"
        after = self._state(acct)
        if token == USDC_T:
            assert after.settlement - before.settlement == arrived * self.scale, "deposit credited != arrived"
        else:
            assert after.collateral.get(token, 0) - before.collateral.get(token, 0) == arrived, \
                "deposit credited != arrived (fee-on-transfer safety)"

    @rule(trader=traders, token=tokens_st, frac=st.sampled_from([1, 2, 5, 10, 25, 50, 100]), by_operator=st.booleans())
    def withdraw(self, trader, token, frac, by_operator):
        self._count("withdraw")
        acct = self.accounts[trader]
        owner_ix = trader // SUBS
        sender = self.owners[owner_ix]
        if by_operator and owner_ix in self.operators:
            sender = self.owners[self.operators[owner_ix]]
        s = self._state(acct)
        bal = max(s.settlement, 0) // self.scale if token == USDC_T else s.collateral.get(token, 0)
        amount = bal * frac // 100
        if amount == 0:
            return
        ok, msg, _ = self._try(self.v.withdraw, acct, self.tokens[token], amount, sender, sender=sender)
        if ok:
            e, _, im = self._margin(acct)
            assert e >= im, "invariant 3: a withdrawal left the account below IM"
        else:
            assert msg.startswith("InsufficientMargin"), msg

    @rule(owner=st.integers(0, OWNERS - 1), operator=st.integers(0, OWNERS - 1), approve=st.booleans())
    def set_operator(self, owner, operator, approve):
        self._count("set_operator")
        if owner == operator:
            return
        ok, msg, _ = self._try(self.v.setOperator, self.owners[operator], approve, sender=self.owners[owner])
        assert ok, msg
        if approve:
            self.operators[owner] = operator
        elif self.operators.get(owner) == operator:
            del self.operators[owner]
        assert self.v.isAuthorized(self.accounts[owner * SUBS], self.owners[operator]) == approve

    # ------------------------------------------------------------------ rules: trading
    @rule(trader=traders, other=traders, market=markets, usd=st.sampled_from([300, 2_000, 10_000, 50_000, 200_000]),
          move=moves, paired=st.booleans())
    def trade(self, trader, other, market, usd, move, paired):
        self._count("trade")
        if paired:  # the two sides of a starting pair trade back in their market: both reduce
            other, market = trader ^ 1, (trader // 2) % 4
            if self._state(self.accounts[trader]).positions.get(market, (0, 0))[0] < 0:
                trader, other = other, trader
            if self._state(self.accounts[trader]).positions.get(market, (0, 0))[0] == 0:
                return
            trader, other = other, trader  # the short side buys, the long side sells
        if trader == other:
            return
        buyer, seller = self.accounts[trader], self.accounts[other]
        oracle = int(self.c.call("OracleRouter", "price", self.layout.market_asset[market]))
        price = oracle * (1000 + move) // 1000
        size = usd * WAD * WAD // oracle
        if size == 0:
            return
        before = {a: self._state(a).positions.get(market, (0, 0))[0] for a in (buyer, seller)}
        increases = {}
        for acct, delta in ((buyer, size), (seller, -size)):
            old = before[acct]
            new = old + delta
            increases[acct] = old == 0 or (old > 0) == (delta > 0) or (new != 0 and (new > 0) != (old > 0))
        ok, msg, _ = self._try(self.venue.trade, buyer, seller, market, size, price, 0, sender=self.deployer)
        if not ok:
            paused_ok = self._paused(1) and any(increases.values()) and msg.startswith("Paused")
            assert paused_ok or msg.startswith(ALLOWED_TRADE_REFUSALS), msg
            return
        assert not (self._paused(1) and any(increases.values())), "a trade that adds risk went through a pause"
        for acct in (buyer, seller):
            if increases[acct]:
                e, _, im = self._margin(acct)
                assert e >= im, "invariant 3: a trade that added risk left the account below IM"

    # ------------------------------------------------------------------ rules: oracle
    @rule(asset=assets, move=price_moves)
    def move_price(self, asset, move):
        self._count("move_price")
        feed = self.p.feeds[asset]
        answer = int(feed.latestAnswer()) * (100 + move) // 100
        feed.updateAnswer(max(answer, 1), txp(self.deployer))
        self.keeper_pass(100)  # keepers react to every price update

    @rule(trader=traders, other=traders, asset=assets, kind=st.sampled_from(["stale", "zero", "negative"]))
    def oracle_failure(self, trader, other, asset, kind):
        """A feed goes stale or answers <= 0: nothing that needs it moves (invariant 5); a fresh answer restores."""
        self._count(f"oracle_failure_{kind}")
        acct = self.accounts[trader]
        owner = self.owners[trader // SUBS]
        feed = self.p.feeds[asset]
        answer = int(feed.latestAnswer())
        if kind == "stale":
            now = chain.time()
            feed.updateRoundData(int(feed.latestRound()) + 1, answer, now - 7200, now - 7200, txp(self.deployer))
        else:
            feed.updateAnswer(0 if kind == "zero" else -answer, txp(self.deployer))
        expected = "PriceStale" if kind == "stale" else "PriceNotPositive"
        try:
            if asset in self._assets_of(acct):
                snapshot = self._holdings(acct)
                s = self._state(acct)
                held = [(self.tokens[j], 1) for j in sorted(s.collateral)][:1]
                if s.settlement >= self.scale:
                    held.append((self.tokens[USDC_T], 1))
                for token, amount in held[:1]:
                    ok, msg, _ = self._try(self.v.withdraw, acct, token, amount, owner, sender=owner)
                    assert not ok and msg.startswith(expected), f"invariant 5: withdrawal on a bad price: {msg}"
                ok, msg, _ = self._try(self.v.liquidate, acct, [], sender=self.keeper)
                assert not ok and msg.startswith(expected), f"invariant 5: liquidation on a bad price: {msg}"
                assert self._holdings(acct) == snapshot, "invariant 5: something moved on a bad price"
            # a trade in the broken market between two accounts: refused whatever they hold
            if other != trader:
                market = asset  # market m is the perpetual on asset m
                buyer, seller = acct, self.accounts[other]
                snap = (self._holdings(buyer), self._holdings(seller))
                ok, msg, _ = self._try(self.venue.trade, buyer, seller, market, WAD // 100, 10**18, 0,
                                       sender=self.deployer)
                assert not ok and msg.startswith(expected), f"invariant 5: trade on a bad price: {msg}"
                assert (self._holdings(buyer), self._holdings(seller)) == snap, "invariant 5"
        finally:
            feed.updateAnswer(answer, txp(self.deployer))

    # ------------------------------------------------------------------ rules: liquidation
    @rule(frac=fracs)
    def keeper_pass(self, frac):
        """A keeper liquidates every account below MM (``frac`` percent of what the rule allows, spread over every
        position; 100: the bundled keeper's planner) and tries one healthy account, which must be refused."""
        self._count("keeper_pass")
        prices, cfg = self._market()
        terms = LiquidationTerms(*(int(x) for x in self.c.call("RiskParameters", "liquidationConfig")))
        healthy_tried = False
        for acct in self.accounts:
            healthy_tried = self._liquidate(acct, prices, cfg, terms, frac, healthy_tried)

    def _liquidate(self, acct, prices, cfg, terms, frac, healthy_tried):
        state = self._state(acct)
        m = account_margin(state, self.layout, prices, cfg)
        e, mm, _ = self._margin(acct)
        assert (m.equity, m.maintenance) == (e, mm), "invariant 6: mirror margin != vault margin"
        allowed = max_take(m.equity, m.maintenance, m.initial, m.gross_total, terms.word) if m.liquidatable else 0
        if not m.liquidatable:
            if not healthy_tried and state.positions:
                items = [(0, mk, 1) for mk in sorted(state.positions)][:1]
                ok, msg, _ = self._try(self.v.liquidate, acct, items, sender=self.keeper)
                assert not ok and msg.startswith("AccountHealthy"), "invariant 3: a healthy account was liquidated"
                return True
            return healthy_tried
        planned = None
        if frac == 100:
            planned = plan_liquidation(state, self.layout, prices, cfg, terms)
            items = planned.as_args() if planned is not None else []
        else:
            share = (allowed * frac // 100, max(m.gross_total, 1))
            items = [(0, mk, abs(size) * share[0] // share[1]) for mk, (size, _) in sorted(state.positions.items())]
            items = [it for it in items if it[2] > 0] or [(0, mk, 1) for mk in sorted(state.positions)][:1]
        ok, msg, tx = self._try(self.v.liquidate, acct, items, sender=self.keeper)
        if not ok:
            # proportional closes can fail to raise E - MM when collateral hedges a position; a planned one may not
            assert planned is None, f"the keeper's plan {planned} was refused: {msg}"
            assert msg.startswith(("LiquidationNotImproving", "LiquidationEmpty")), msg
            return healthy_tried
        ev = tx.events["Liquidated"]
        assert ev["taken"] <= allowed, "invariant 4: took more than the rule allows"
        if planned is not None:
            assert (ev["taken"], ev["surplusAfter"]) == (planned.taken, planned.surplus_after), \
                "the planner's replay differs from the contract"
        if ev["taken"]:
            assert ev["surplusAfter"] > ev["surplusBefore"], "invariant 4: E - MM did not rise"
            e, mm, _ = self._margin(acct)
            left = self._state(acct)
            if left.positions or left.collateral:
                assert e - mm == ev["surplusAfter"], "the event's E - MM is not the account's"
            else:  # nothing left: a negative balance was written off after the event's figure
                assert e - mm >= ev["surplusAfter"] and left.settlement >= 0
        return healthy_tried

    # ------------------------------------------------------------------ rules: parameters and pauses
    @rule(kind=st.sampled_from(PARAMS), index=st.integers(0, 5), tighten=st.booleans(), step=st.integers(1, 6))
    def change_parameter(self, kind, index, tighten, step):
        """Risk admin: a tightening applies at once (and keepers react); a loosening is only queued."""
        self._count(f"param_{kind}_{'tighten' if tighten else 'loosen'}")
        cfg = MarginConfig.from_chain(self.c.call("RiskParameters", "marginConfig"))
        sign = 1 if tighten else -1
        if kind == "risk_weight":
            a = index % 4
            old = u16(cfg.global_word, a)
            new = min(max(old + sign * 100 * step, 100), 3000)
            fn, args = self.params.setRiskWeight, (a, new)
        elif kind == "haircut":
            j = index % NCOLL
            disc = u16(int(self.c.call("RiskParameters", "liquidationConfig")[1]), j)
            old = u16(cfg.haircuts, j)
            new = min(max(old + sign * 250 * step, disc), 5000)
            fn, args = self.params.setHaircut, (j, new)
        elif kind == "price_band":
            old = (self._control() >> 8) & 0xFFFF
            new = min(max(old - sign * 25 * step, 50), 500)
            fn, args = self.params.setPriceBand, (new,)
        else:
            old = (u16(cfg.global_word, 8), u16(cfg.global_word, 9), u16(cfg.global_word, 10))
            new = (min(max(old[0] + sign * 500 * step, 10_000), 30_000), min(max(old[1] + sign * 10 * step, 0), 2000),
                   min(max(old[2] + sign * 10 * step, 0), 5000))
            fn, args = self.params.setMarginScalars, new
        if new == old:
            return
        ident = bytes(web3.keccak(hexstr=fn.encode_input(*args)))
        if not tighten and any(q[5] == ident for q in self.queued):  # the same change is already queued
            ok, msg = self._simulate(fn, args, self.deployer)
            assert ok or msg.startswith("ChangeNotReady"), msg
            return
        before = self._param_value(kind, index)
        ok, msg, tx = self._try(fn, *args, sender=self.deployer)
        assert ok, f"{kind} {args}: {msg}"
        after = self._param_value(kind, index)
        if tighten:
            assert after == new, f"a tightening of {kind} did not apply at once"
            self.keeper_pass(100)
        else:
            assert after == before, f"a loosening of {kind} applied before the delay"
            assert "ChangeQueued" in tx.events
            assert int(self.params.readyAt(ident)) > 0
            self.queued.append((kind, index, fn, args, new, ident))

    def _param_value(self, kind, index):
        cfg = MarginConfig.from_chain(self.c.call("RiskParameters", "marginConfig"))
        if kind == "risk_weight":
            return u16(cfg.global_word, index % 4)
        if kind == "haircut":
            return u16(cfg.haircuts, index % NCOLL)
        if kind == "price_band":
            return (self._control() >> 8) & 0xFFFF
        return (u16(cfg.global_word, 8), u16(cfg.global_word, 9), u16(cfg.global_word, 10))

    @rule(early=st.booleans())
    def apply_queued(self, early):
        """The oldest queued loosening: refused before its time (ChangeNotReady), applied after it."""
        self._count("apply_queued")
        if not self.queued:
            return
        kind, index, fn, args, new, ident = self.queued[0]
        if early:
            ok, msg = self._simulate(fn, args, self.deployer)
            if not ok:
                assert msg.startswith("ChangeNotReady"), msg
                return
        else:
            self.time_passes(LOOSEN_DELAY + 1)
        self.queued.pop(0)
        ok, msg, _ = self._try(fn, *args, sender=self.deployer)
        assert ok, msg
        assert self._param_value(kind, index) == new, f"a queued loosening of {kind} did not apply after the delay"

    @rule()
    def cancel_queued(self):
        """The guardian cancels the newest queued change; calling the setter again only queues it anew."""
        self._count("cancel_queued")
        if not self.queued:  # queue a loosening first (risk weight of a random asset down by 1%)
            self.change_parameter("risk_weight", len(self.accounts) % 4 + Solvency.runs % 4, False, 1)
            if not self.queued:
                return
        kind, index, fn, args, new, ident = self.queued.pop()
        ok, msg, _ = self._try(self.params.cancel, ident, sender=self.guardian)
        assert ok, msg
        assert int(self.params.readyAt(ident)) == 0

    @rule(flags=st.integers(1, 3))
    def guardian_pause(self, flags):
        self._count("guardian_pause")
        current = self._control() & 3
        ok, msg, _ = self._try(self.params.setPause, current | flags, sender=self.guardian)
        assert ok, msg
        assert self._control() & 3 == current | flags
        if current | flags:
            ok, msg, _ = self._try(self.params.setPause, 0, sender=self.guardian)  # clearing is the admin's
            assert not ok and msg.startswith("Unauthorized"), msg

    @rule()
    def admin_unpause(self):
        self._count("admin_unpause")
        if self._control() & 3:
            ok, msg, _ = self._try(self.params.setPause, 0, sender=self.deployer)
            assert ok, msg
            assert self._control() & 3 == 0

    @rule(seconds=st.sampled_from([60, 300, 900]))
    def time_passes(self, seconds):
        """Time goes by; feeds keep their heartbeat (each is refreshed once it is more than 30 minutes old)."""
        self._count("time_passes")
        chain.sleep(seconds)
        chain.mine()
        now = chain.time()
        for feed in self.p.feeds:
            if now - int(feed.latestTimestamp()) > 1800:
                feed.updateAnswer(int(feed.latestAnswer()), txp(self.deployer))

    # ------------------------------------------------------------------ invariants
    def _batch(self, calls, block):
        """One JSON-RPC batch of eth_calls [(contract fn, args)] at ``block``: the decoded results, in order."""
        payload = [{"jsonrpc": "2.0", "id": i, "method": "eth_call",
                    "params": [{"to": fn._address, "data": fn.encode_input(*args)}, hex(block)]}
                   for i, (fn, args) in enumerate(calls)]
        out = sorted(requests.post(web3.provider.endpoint_uri, json=payload, timeout=120).json(),
                     key=lambda r: r["id"])
        decoded = []
        for (fn, _), r in zip(calls, out):
            assert "result" in r, f"{fn._name} reverted in the invariant check: {r.get('error')}"
            types = [o["type"] if o["type"] != "tuple" else
                     "(" + ",".join(c["type"] for c in o["components"]) + ")" for o in fn.abi["outputs"]]
            vals = abi_decode(types, bytes.fromhex(r["result"][2:]))
            decoded.append(vals[0] if len(vals) == 1 else vals)
        return decoded

    @invariant()
    def solvency_and_mirror(self):
        Solvency.steps += 1
        head = self.c.rpc.head()
        self.indexer.sync(head)
        v, n = self.v, len(self.everyone)
        first = [(v.masksOf, (a,)) for a in self.everyone] + [(v.settlementOf, (a,)) for a in self.everyone]
        first += [(t.balanceOf, (v.address,)) for t in self.tokens] + [(v.badDebt, ())]
        first += [(v.openInterest, (mk,)) for mk in range(4)]
        first += [(self.p.lens.equityAndMaintenance, (self.accounts,)), (self.params.marginConfig, ())]
        mask = sum(1 << a for a in set(self.layout.market_asset + self.layout.collateral_asset))
        first += [(self.p.oracle.prices, (mask,))]
        r = self._batch(first, head)
        masks, settlement = r[:n], r[n:2 * n]
        balances = r[2 * n:2 * n + NCOLL + 1]
        bad_debt = r[2 * n + NCOLL + 1]
        oi = r[2 * n + NCOLL + 2:2 * n + NCOLL + 6]
        (equity, maintenance), cfg_words, prices = r[2 * n + NCOLL + 6:]
        second, keys = [], []
        for a, (mk_mask, c_mask) in zip(self.everyone, masks):
            for mk in range(16):
                if mk_mask >> mk & 1:
                    second.append((v.positionOf, (a, mk)))
                    keys.append((a, "p", mk))
            for j in range(16):
                if c_mask >> j & 1:
                    second.append((v.collateralOf, (a, j)))
                    keys.append((a, "c", j))
        states = {a: AccountState(settlement=int(s)) for a, s in zip(self.everyone, settlement)}
        for (a, kind, k), val in zip(keys, self._batch(second, head) if second else []):
            if kind == "p":
                states[a].positions[k] = (int(val[0]), int(val[1]))
            else:
                states[a].collateral[k] = int(val)
        indexed = self.indexer.states(self.everyone)
        for a in self.everyone:  # invariant 6: the indexed state is the chain's
            assert indexed[a].canonical() == states[a].canonical(), f"invariant 6: indexed state of {a:#x}"
        cfg = MarginConfig.from_chain(cfg_words)
        prices = [int(x) for x in prices]
        for a, e, mm in zip(self.accounts, equity, maintenance):
            m = account_margin(indexed[a], self.layout, prices, cfg)
            assert (m.equity, m.maintenance) == (e, mm), f"invariant 6: off-chain margin of {a:#x} != AccountLens"
        for j in range(NCOLL):  # invariant 1
            assert balances[j] >= sum(s.collateral.get(j, 0) for s in states.values()), f"invariant 1: collateral {j}"
        held = balances[USDC_T] * self.scale + int(bad_debt)
        claims = sum(s.settlement for s in states.values())
        unrealised = -sum(on for s in states.values() for (_, on) in s.positions.values())
        assert held >= claims + unrealised, "invariant 1: settlement token"
        for mk in range(4):  # invariant 2
            sizes = [s.positions.get(mk, (0, 0))[0] for s in states.values()]
            assert sum(sizes) == 0, f"invariant 2: market {mk}"
            assert int(oi[mk]) == sum(x for x in sizes if x > 0), f"open interest {mk}"


# The first exception of every failing step is recorded before hypothesis replays and shrinks the sequence: chain
# time moves between the first run and the replay, so the replay can take another path (hypothesis then reports the
# failure as Flaky); the campaign reports what actually failed.
Solvency.failures = []


def _recording(fn):
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except Exception as e:
            Solvency.failures.append((type(e).__name__, f"{fn.__name__}{kwargs or ''}: {type(e).__name__}: {e}"[:1500]))
            raise

    return wrapper


for _r in Solvency.rules():
    _r.function = _recording(_r.function)
for _i in Solvency.invariants():
    _i.function = _recording(_i.function)
