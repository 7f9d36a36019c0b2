"""The solvency state machine (README, "Invariants"; DESIGN section 7, invariants 1-6) with an attacker and the
economic invariants E1-E5, shared by the CI test (tests/stateful/test_invariants.py) and the long campaign
(scripts/bench/fuzz.py, ``make fuzz``).

Its own deployment (``setup``) adds to the local protocol: a fee-on-transfer token (collateral 4, priced as ETH) and a
token whose transfers return nothing (collateral 5, priced as SOL), both with a 10% haircut; a DUST token (collateral
6) on asset 4, which has its own feed and no correlation with anything; a second ETH market (market 4, so two books
share an asset); a guardian distinct from the admin; a loosening delay of 600 s; an insurance fund of 25,000 USD (the
rest withdrawn, so write-offs beyond the fund's cover happen); eight honest accounts (four owners x two subaccounts)
with USDC, WETH and volatile collateral and books of longs, shorts and hedges (across assets and across the two ETH
markets); an attacker (three subaccounts with capital, a wallet of tokens and a LiquidationLooper).

Honest rules (this module) cover every user-facing action: deposits, withdrawals (by the owner or an operator),
trades through a registered venue, price moves, oracle failures (stale, zero and negative answers), keeper passes
(proportional closes, and the bundled keeper's planner), parameter changes (R5: at once only when no requirement can
fall, otherwise queued and applied after the delay, or cancelled by the guardian), pauses and the passage of time.
Attacker rules are in ``tests/stateful/attacker.py``. Every action is first simulated with eth_call and sent only if
it succeeds; trades (R2), liquidations (R1) and withdrawals are predicted in exact integers
(``tests/stateful/economics.py``) and the vault must do exactly that: the same verdict, the same refusal, the same
taken / penalty / keeper reward, the same post-trade books.

After every step (invariants):
  1. token conservation (each collateral: vault balance >= sum of balances; settlement token: held * scale +
     badDebt >= sum(settlement) + unrealised P&L);
  2. zero-sum per market, open interest = sum of longs;
  6. the off-chain indexer (SQLite, rebuilt from the vault's events) holds exactly the chain's state for every
     account, and the Python margin of that state equals AccountLens's equity and maintenance margin to the wei;
  E1-E3 over the segment since the last checkpoint (every price move starts a new segment, so a segment never spans
     one): E1 no owner's value (sum over its subaccounts of max(net value, 0) at the oracle price) rises by more than
     its deposits - withdrawals + the keeper rewards R1 allows (at most the penalty) + what other owners' fills
     gave it; E2 keeper rewards never exceed penalties and the fund's value falls only by the bad debt it covers,
     debt of accounts already under water at the last price move; E3 no account's equity falls below min(its
     equity at the start of the segment, 0) beyond a few wei per fill and its share of a socialised loss.
Invariants 3, 4 and 5, E4 (every positive settlement balance bears the same fraction of a socialised write-off) and
E5 (after every price move every account below MM has a liquidation the rule accepts, and the bundled planner's plan
succeeds in eth_call) are checked inside the rules that can break them.
"""
from __future__ import annotations

import logging
from pathlib import Path

import requests
from brownie import (ChainlinkFeed, FeeOnTransferToken, LiquidationLooper, NoReturnToken, TestToken, TestVenue,
                     accounts, chain, web3)
from eth_abi import decode as abi_decode
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from offchain.chain import CONTRACTS, Chain, Deployment, Rpc, load_abis
from offchain.db import connect
from offchain.indexer import Indexer
from offchain.keeper.planner import LiquidationTerms as PlannerTerms
from offchain.keeper.planner import plan_liquidation
from offchain.margin.defaults import START_PRICES_USD
from tests.fixture_spec import FIXTURE_SPEC
from offchain.margin.exact import AccountState, MarginConfig, account_margin, settled, u16
from offchain.margin.funding import INDEX_UNIT, FundingWord, MarketFunding, accrued, adl_shares
from offchain.margin.snapshot import read_layout

from . import economics as econ
from .attacker import ATTACKER_RULES, AttackerRules
from .common import (BIG_GAS, DUST, DUST_ASSET, HONEST_TOKENS, LOOSEN_DELAY, NCOLL, NMARKETS, OWNERS,
                     SHARED_MARKET, SUBS, USDC_T, WAD, account_id, raw_send, record_failures, send)

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
_SESSION = requests.Session()  # one keep-alive connection for the batched reads
_SESSION.trust_env = False  # no proxy lookup per request (it showed up in profiles)
FUND_LEFT_USDC = 25_000  # the insurance fund keeps this much; the rest of the local seed is withdrawn in setup
ATTACKER_CAPITAL = (5_000, 40_000, 40_000)  # USDC per attacker subaccount
FUNDER_CAPITAL = 2_000_000  # USDC in each of the two subaccounts whose fee-paying fills set funding premiums
OI_CAP_USD = 20_000_000  # open-interest cap of every market at the start price: a premium depth of 40,000 USD of fees
PREMIUM_FEE_USD = 1_000  # fee paid by each side of a premium fill
__all__ = ["Solvency", "setup", "ATTACKER_RULES", "MUST_CHECK"]


def setup(protocol, deployer):
    """The machine's deployment on top of ``deploy_local`` (see the module doc). Returns the context."""
    tx = {"from": deployer}
    v, params, oracle = protocol.vault, protocol.params, protocol.oracle
    venue = TestVenue.deploy(v, tx)
    v.setVenue(venue, True, tx)
    fee_token = FeeOnTransferToken.deploy(tx)
    no_return = NoReturnToken.deploy(tx)
    v.listCollateral(fee_token, 1, tx)
    v.listCollateral(no_return, 2, tx)
    params.setHaircut(4, 1000, tx)  # tightening from 0: applies at once
    params.setHaircut(5, 1000, tx)
    dust_feed = ChainlinkFeed.deploy(8, 10**8, tx)  # 1 USD
    oracle.setFeed(DUST_ASSET, dust_feed, 3600, tx)
    dust = TestToken.deploy("Dust", "DUST", 18, tx)
    v.listCollateral(dust, DUST_ASSET, tx)
    params.setHaircut(DUST, 5000, tx)  # the loosening delay is still 0: these apply at once
    params.setRiskWeight(DUST_ASSET, 4000, tx)  # haircut + risk weight <= 100%: a deposit never lowers E - MM
    v.listMarket(1, tx)  # market 4: a second ETH perpetual
    # open-interest caps of 20 million USD (the default 2 billion would make the premium depth 4 million USD of fees:
    # funding would barely move); position caps stay at the default
    for m in range(NMARKETS):
        spec = FIXTURE_SPEC.markets[m if m != SHARED_MARKET else 1]
        usd = START_PRICES_USD[m if m != SHARED_MARKET else 1]
        params.setMarket(m, 1200 if m == SHARED_MARKET else spec.standard_mmr_bps, OI_CAP_USD * WAD // usd,
                         spec.max_position_size, tx)
    assert params.fundingWord() != 0, "the deployment runs with funding off"
    guardian = accounts[8]
    params.grantRole(params.GUARDIAN_ROLE(), guardian, tx)
    params.setLoosenDelay(LOOSEN_DELAY, tx)  # lengthening: at once
    tokens = [*protocol.tokens, fee_token, no_return, dust, protocol.usdc]
    for t in tokens:
        t.mint(deployer, 10**40, tx)
        t.approve(v, 2**256 - 1, tx)
    fund = v.fundAccount()
    seed = int(v.settlementOf(fund)) // int(v.settlementScale())
    v.withdraw(fund, protocol.usdc, seed - FUND_LEFT_USDC * 10**6, deployer, tx)
    owners = [accounts[2 + i] for i in range(OWNERS)]
    ids = [account_id(o, s) for o in owners for s in range(SUBS)]
    for acct in ids:  # 60,000 USD of margin each: half USDC, half WETH
        v.deposit(acct, protocol.usdc, 30_000 * 10**6, tx)
        v.deposit(acct, tokens[1], 10 * WAD, tx)
    v.deposit(ids[1], tokens[0], 10**8, tx)  # the short BTC book also holds 1 WBTC (a hedge)
    v.deposit(ids[4], tokens[2], 200 * 10**9, tx)  # the long SOL book also holds 200 WSOL (more of the same risk)
    # a leveraged book: accounts 2i and 2i+1 hold opposite positions in market i % 4, near their IM
    for pair in range(len(ids) // 2):
        market = pair % 4
        price = protocol.oracle.price(market)
        usd = (200_000, 150_000, 100_000, 100_000)[market]
        venue.trade(ids[2 * pair], ids[2 * pair + 1], market, usd * WAD * WAD // price, price, 0, tx)
    eth = protocol.oracle.price(1)
    venue.trade(ids[7], ids[0], SHARED_MARKET, 50_000 * WAD * WAD // eth, eth, 0, tx)  # long BTC / short ETH
    venue.trade(ids[5], ids[2], SHARED_MARKET, 30_000 * WAD * WAD // eth, eth, 0, tx)  # ETH long in one, short in other
    attacker = accounts[7]
    looper = LiquidationLooper.deploy(v, {"from": attacker})
    for t in (protocol.usdc, dust, tokens[0], tokens[1]):
        t.mint(attacker, 10**40, tx)
        t.approve(v, 2**256 - 1, {"from": attacker})
    for sub, usd in enumerate(ATTACKER_CAPITAL):
        v.deposit(account_id(attacker, sub), protocol.usdc, usd * 10**6, {"from": attacker})
    funder = accounts[6]
    for sub in range(2):
        v.deposit(account_id(funder, sub), protocol.usdc, FUNDER_CAPITAL * 10**6, tx)
    return {"protocol": protocol, "venue": venue, "tokens": tokens, "guardian": guardian, "owners": owners,
            "funders": [account_id(funder, sub) for sub in range(2)],
            "ids": ids, "keeper": accounts[1], "deployer": deployer, "addresses": protocol.addresses(),
            "attacker": attacker, "looper": looper, "dust_feed": dust_feed}


def offchain_chain(addresses) -> Chain:
    """The off-chain package's own view of the deployment (raw eth_call reads, custom-error decoding)."""
    rpc = Rpc([web3.provider.endpoint_uri], timeout=120, retries=2, backoff=0.05)
    dep = Deployment(int(addresses["chainId"]), {n: addresses[n] for n in CONTRACTS}, int(addresses["startBlock"]),
                     tuple(addresses["assets"]))
    return Chain(rpc, dep, load_abis(ROOT / "build" / "contracts"))


def _topic(signature: str) -> str:
    return "0x" + bytes(web3.keccak(text=signature)).hex().removeprefix("0x")


T_LIQUIDATED = _topic("Liquidated(uint256,address,uint256,uint256,uint256,int256,int256)")
T_WRITE_OFF = _topic("BadDebtWrittenOff(uint256,uint256,uint256,uint256,uint256)")
T_INDEX = _topic("SettlementIndexUpdated(uint256,uint256,uint256)")
T_POSITION = _topic("PositionUpdated(uint256,uint256,int256,int256,int256)")
T_DELEVERAGED = _topic("Deleveraged(uint256,uint256,bool,uint256,uint256)")
T_TOUCH = {T_POSITION,
           _topic("CollateralUpdated(uint256,address,uint256)"), _topic("SettlementUpdated(uint256,int256)")}

# checks that must have met real cases over a campaign (CI and make fuzz): indices that moved, accrued funding to
# conserve, Deleveraged events whose sides were checked position by position
MUST_CHECK = ("funding: indices moved", "funding conservation with accrued funding", "ADL: Deleveraged events",
              "ADL: positions charged")

traders = st.integers(0, OWNERS * SUBS - 1)
tokens_st = st.sampled_from(HONEST_TOKENS)
markets = st.integers(0, NMARKETS - 1)
assets = st.integers(0, 3)
usds = st.integers(100, 300_000)
fracs = st.integers(1, 100)  # percent
moves = st.integers(-35, 35)  # per mille from the oracle price: sometimes outside the 2% band
price_moves = st.sampled_from([-40, -25, -12, -5, 5, 12, 25, 40])  # percent


class Solvency(AttackerRules, RuleBasedStateMachine):
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
        self.attacker = c["attacker"]
        self.looper = c["looper"]
        self.feeds = [*self.p.feeds, c["dust_feed"]]  # by asset
        self.fund = int(self.v.fundAccount())
        self.keeper_account = account_id(self.keeper, 0)
        self.attacker_accounts = [account_id(self.attacker, s) for s in range(3)]
        self.looper_account = account_id(self.looper.address, 0)
        # every account with a margin (checked against AccountLens), and every account the invariants follow
        self.funders = c["funders"]
        self.margined = (self.accounts + [self.keeper_account] + self.attacker_accounts + [self.looper_account]
                         + self.funders)
        self.everyone = self.margined + [self.fund]
        # E1's owners: who each account's value belongs to; who is credited a liquidation caller's reward
        self.owner_of = {a: f"owner{i // SUBS}" for i, a in enumerate(self.accounts)}
        self.owner_of[self.keeper_account] = "keeper"
        self.owner_of.update({a: "attacker" for a in self.attacker_accounts + [self.looper_account]})
        self.owner_of.update({a: "funder" for a in self.funders})
        self.owner_accounts: dict[str, list[int]] = {}
        for a, o in self.owner_of.items():
            self.owner_accounts.setdefault(o, []).append(a)
        self.reward_owner = {self.keeper.address.lower(): "keeper", self.attacker.address.lower(): "attacker",
                             self.looper.address.lower(): "attacker"}
        if "chain" not in c:  # built once per process: the listing does not change after setup
            c["chain"] = offchain_chain(c["addresses"])
            c["layout"] = read_layout(c["chain"].at("latest").vault)
            c["scale"] = int(self.v.settlementScale())
        self.scale = c["scale"]
        self.c = c["chain"]
        self.at = self.c.at("latest")
        self.layout = c["layout"]
        self.indexer = Indexer(self.c, connect(":memory:"))  # rebuilt from the events in every run
        self.log_block = web3.eth.block_number  # settlements and deleveraging counted up to here (funding dust)
        self.settlements: dict[int, int] = {}  # market -> PositionUpdated events in this run
        self.adl_dust: dict[int, int] = {}  # market -> most the index shifts of its deleveraging rounded up
        self.adl_sources: dict[int, set] = {}  # account -> (market, long) of positions liquidated since it traded
        self.stored_index: dict[tuple[int, int], int] = {}  # (account, market) -> last index read (see _read_states)
        self.queued: list[tuple] = []  # loosenings waiting for the delay: (kind, index, fn, args, new, id)
        self.operators: dict[int, int] = {}  # owner index -> operator owner index
        self.prev: econ.Snapshot | None = None  # the economic checkpoint (set by the first invariant check)
        self.seg = econ.Segment()
        Solvency.runs += 1
        Solvency.last_rule = "the start of the run"

    # ------------------------------------------------------------------ helpers
    def _count(self, name):
        Solvency.rule_counts[name] = Solvency.rule_counts.get(name, 0) + 1

    @staticmethod
    def _tally(name, n=1):
        """How often a check met a case that exercises it (fuzz.json "checks"): a check never met proves nothing."""
        Solvency.checks[name] = Solvency.checks.get(name, 0) + n

    def _call(self, fn, *args):
        """A view at the latest block, decoded: one round trip (a Brownie call or the off-chain Chain costs more)."""
        return self._batch([(fn, args)], "latest")[0]

    def _price(self, asset):
        return int(self._call(self.p.oracle.price, asset))

    def _amount(self, t, usd):
        if t == USDC_T:
            return usd * 10**6
        asset, decimals = self.layout.collateral_asset[t], self.layout.collateral_decimals[t]
        return usd * 10**decimals * WAD // self._price(asset)

    def _usd(self, t, amount, prices=None):
        """USD value (1e18) of ``amount`` of token ``t`` at the oracle price."""
        if t == USDC_T:
            return amount * self.scale
        prices = prices or self._market()[0]
        return econ.token_usd(amount, prices[self.layout.collateral_asset[t]], self.layout.collateral_decimals[t])

    def _simulate(self, fn, args, sender, gas=None, data=None):
        """eth_call of ``fn(*args)`` (or of raw ``data`` to ``fn``'s contract) from ``sender``: (True, return data)
        or (False, decoded custom error)."""
        call = {"from": sender.address if hasattr(sender, "address") else sender, "to": fn._address,
                "data": data or fn.encode_input(*args)}
        if gas:
            call["gas"] = hex(gas)
        resp = web3.provider.make_request("eth_call", [call, "latest"])
        if "error" not in resp:
            return True, resp.get("result", "0x")
        err = resp["error"]
        data = err.get("data")
        data = (data.get("data") or data.get("result")) if isinstance(data, dict) else data
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            return False, self.c.errors.decode(data)
        return False, str(err.get("message"))

    def _try(self, fn, *args, sender, gas=5_000_000):
        """Simulate first; send only if it succeeds. Returns (ok, reason, receipt)."""
        ok, msg = self._simulate(fn, args, sender, gas=gas if gas > 5_000_000 else None)
        if not ok:
            return False, msg, None
        self._last_result = msg  # the call's return data
        receipt = send(fn, args, sender, gas)
        name = getattr(fn, "_name", str(fn))
        Solvency.done[name] = Solvency.done.get(name, 0) + 1
        return True, "", receipt

    def _state(self, acct):
        return self._read_states("latest", [acct])[acct]

    def _margin(self, acct):
        return self._call(self.v.margin, acct)  # (E, MM, IM) from the chain

    def _market(self, block="latest"):
        """Prices as the vault sees them (0: no valid price), the margin words and every market's funding state
        advanced to ``block`` (markets whose asset has no valid price left out: nothing on them can be valued)."""
        prices, cfg, *funding = self._batch([(self.p.oracle.pricesFor, (0, self._asset_mask())),
                                             (self.params.marginConfig, ())]
                                            + [(self.v.marketFunding, (m,)) for m in range(NMARKETS)], block,
                                            allow_revert=True)
        prices = [int(x) for x in prices]
        markets = {m: MarketFunding(int(f[0]), int(f[1]), int(f[5]), int(f[2]), int(f[3]), int(f[6]))
                   for m, f in enumerate(funding) if f is not None and prices[self.layout.market_asset[m]]}
        return prices, MarginConfig.from_chain(cfg), markets

    def _terms(self):
        return econ.LiquidationTerms(*(int(x) for x in self._call(self.params.liquidationConfig)))

    def _last_prices(self):
        """Every asset's last feed answer (IOracleRouter.lastPrice: a stale feed's last value, 0 if not positive)."""
        assets = range(max(self.layout.market_asset + self.layout.collateral_asset) + 1)
        return [int(x) for x in self._batch([(self.p.oracle.lastPrice, (a,)) for a in assets], "latest")]

    def _index(self):
        return int(self._call(self.v.settlementIndex)[0])

    def _control(self):
        return int(self._call(self.params.control))

    def _paused(self, flag):
        return self._control() & flag != 0

    def _assets_of(self, acct, positions_only=False):
        s = self._state(acct)
        out = {self.layout.market_asset[m] for m in s.positions}
        return out if positions_only else out | {self.layout.collateral_asset[j] for j in s.collateral}

    def _eoa(self, acct):
        """Who can withdraw from ``acct`` (None for the looper's account: the contract has no withdraw)."""
        if acct in self.accounts:
            return self.owners[self.accounts.index(acct) // SUBS]
        return {self.keeper_account: self.keeper, **{a: self.attacker for a in self.attacker_accounts}}.get(acct)

    def _seizable(self, state, prices):
        """Does the account hold anything a liquidation can take (a position, or collateral with a price)?"""
        return bool(state.positions) or any(b and prices[self.layout.collateral_asset[j]]
                                            for j, b in state.collateral.items())

    def _bal(self, t, holder):
        return self._call(self.tokens[t].balanceOf, holder)

    def _holdings(self, acct):
        s = self._state(acct)
        return s.canonical(), [self._bal(t, self.v) for t in range(NCOLL + 1)]

    # ------------------------------------------------------------------ checked actions
    def _deposit(self, acct, token, amount, sender):
        """A deposit into ``acct`` (by anyone): credited by balance difference, counted as value entering the
        account's owner (E1). Returns the amount credited (0 when refused: only while deposits are paused)."""
        before = self._state(acct)
        m0 = account_margin(before, self.layout, *self._market())
        held = self._bal(token, self.v)
        ok, msg, _ = self._try(self.v.deposit, acct, self.tokens[token], amount, sender=sender)
        if not ok:
            assert self._paused(2) and msg.startswith("Paused"), msg
            return 0
        arrived = self._bal(token, self.v) - held
        expected = amount - amount // 100 if token == 4 else amount  # the fee token burns 1% of every transfer
        assert arrived == expected, "token accounting: the vault did not receive what the token moved"
        after = self._state(acct)
        if token == USDC_T:
            credited = after.settlement - before.settlement
            assert arrived * self.scale - 1 <= credited <= arrived * self.scale, "deposit credited != arrived"
        else:
            assert after.collateral.get(token, 0) - before.collateral.get(token, 0) == arrived, \
                "deposit credited != arrived (fee-on-transfer safety)"
        prices, cfg, markets = self._market()
        if acct in self.owner_of:
            self.seg.flow(self.owner_of[acct], self._usd(token, arrived, prices))
        m1 = account_margin(after, self.layout, prices, cfg, markets)
        assert m1.equity - m1.maintenance >= m0.equity - m0.maintenance - 4, \
            "a deposit lowered the account's E - MM (someone else's deposit could make it liquidatable)"
        return arrived

    def _withdraw(self, acct, token, amount, sender, to=None):
        """A withdrawal, predicted from the mirror: it goes through iff E >= IM afterwards (invariant 3), pays in full
        (R4) and counts as value leaving the owner (E1). Returns (ok, reason)."""
        to = to or sender
        s = self._state(acct)
        prices, cfg, markets = self._market()
        after = econ.copy.deepcopy(s)
        if token == USDC_T:
            value = amount * self.scale
            enough = s.settlement >= value
            after.settlement = econ.roundtrip(s.settlement, s.settlement - value, self._index())
        else:
            enough = s.collateral.get(token, 0) >= amount
            after.collateral[token] = s.collateral.get(token, 0) - amount
        m1 = account_margin(after, self.layout, prices, cfg, markets) if enough else None
        wallet = self._bal(token, to)
        ok, msg, _ = self._try(self.v.withdraw, acct, self.tokens[token], amount, to, sender=sender)
        if not enough:
            assert not ok and msg.startswith("InsufficientBalance"), msg
            return ok, msg
        assert ok == (m1.equity >= m1.initial), f"withdrawal verdict: E' {m1.equity} IM' {m1.initial}: {msg or 'ok'}"
        if not ok:
            assert msg.startswith("InsufficientMargin"), msg
            return ok, msg
        e, _, im = self._margin(acct)
        assert e >= im, "invariant 3: a withdrawal left the account below IM"
        paid = self._bal(token, to) - wallet
        sent = amount - amount // 100 if token == 4 else amount
        assert paid == sent, f"R4: a withdrawal of {amount} paid {paid}"
        assert self._state(acct).canonical() == after.canonical(), "withdrawal: the books differ from the rule"
        if acct in self.owner_of:
            self.seg.flow(self.owner_of[acct], -self._usd(token, amount, prices))
        return ok, msg

    def _trade(self, buyer, seller, market, size, price, fee=0):
        """A fill through the test venue, predicted by the trade rule (R2, economics.trade_verdict): the vault must
        refuse exactly what the rule refuses (with the same error) and leave exactly the books the rule computes.
        Fills between two owners at a price away from the oracle move value between them: recorded for E1."""
        sb, ss = self._state(buyer), self._state(seller)
        prices, cfg, markets = self._market()
        word = int(self._call(self.params.marketWord, market))
        mk = econ.Market(self.layout.market_asset[market], (word >> 128) & (2**112 - 1), (word >> 16) & (2**112 - 1),
                         int(self._call(self.v.openInterest, market)))
        control = self._control()
        verdict = econ.trade_verdict(sb, ss, mk, market, size, price, self.layout, prices, cfg, (control >> 8) & 0xFFFF,
                                     control & 1 != 0, self._index(), markets) if fee == 0 else None
        ok, msg, _ = self._try(self.venue.trade, buyer, seller, market, size, price, fee, sender=self.deployer)
        if ok:  # trading again: earlier liquidations are no longer a source of deleveraging
            self.adl_sources.pop(buyer, None)
            self.adl_sources.pop(seller, None)
        if verdict is not None:
            self._tally(f"R2 {verdict.error or 'accepted'}" + (" below IM" if any(verdict.below_im) else ""))
            assert ok == (verdict.error == ""), f"R2: trade verdict {verdict.error or 'ok'} but the vault said " \
                                                f"{msg or 'ok'} (size {size}, price {price})"
            if not ok:
                assert msg.startswith(verdict.error), f"R2: expected {verdict.error}, got {msg}"
                return False, msg, verdict
            after = (self._state(buyer), self._state(seller))
            assert [s.canonical() for s in after] == [s.canonical() for s in verdict.after], \
                "the fill's books differ from the rule's"
            for acct, below in zip((buyer, seller), verdict.below_im):
                e, mm, im = self._margin(acct)
                assert e >= im or (below and e >= 0), "invariant 3: a trade left an account below IM against R2"
        elif not ok:
            return False, msg, None
        oracle = prices[mk.asset]
        ob, os_ = self.owner_of.get(buyer), self.owner_of.get(seller)
        if ob != os_:
            gain = size * (oracle - price) // WAD  # the buyer's gain at the oracle price (the seller's loss)
            if ob is not None:
                self.seg.transfer(ob, max(gain, 0) + 2)
            if os_ is not None:
                self.seg.transfer(os_, max(-gain, 0) + 2)
        return True, "", verdict

    def _holders(self):
        """settlementOf of every followed account (one batch)."""
        return dict(zip(self.everyone, (int(x) for x in self._batch(
            [(self.v.settlementOf, (a,)) for a in self.everyone], "latest"))))

    def _liquidate(self, acct, items, sender, times=0, outcomes=None):
        """``liquidate(acct, items)`` from ``sender`` (or ``times`` of them in one transaction through the
        LiquidationLooper, called by the attacker), predicted by R1 (economics.liquidation_outcome): the same verdict,
        then each Liquidated event with the predicted taken, penalty, keeper reward and E - MM before and after.
        A call that writes debt off is checked for E4. Returns (ok, reason, receipt, outcomes)."""
        prices, cfg, markets = self._market()
        terms = self._terms()
        via = self.looper if times else None
        keeper_acct = account_id(via.address if via else sender, 0)
        state = self._state(acct)
        index = self._index()
        last = self._last_prices()
        if outcomes is None:
            outcomes, s = [], state
            for _ in range(max(times, 1)):
                o = econ.liquidation_outcome(s, items, self.layout, prices, cfg, terms, keeper_acct == acct, index,
                                             last, markets)
                outcomes.append(o)
                if o.error:
                    break
                s = o.after
        bankrupt = account_margin(state, self.layout, prices, cfg, markets).equity < 0
        before = (self._holders(), int(self._call(self.v.badDebt))) if bankrupt else None
        pre = self._read_states("latest") if bankrupt else None  # every followed account, for a write-off's checks
        if via:
            ok, msg, tx = self._try(via.loop, acct, items, times, False, sender=sender, gas=BIG_GAS)
        else:
            ok, msg, tx = self._try(self.v.liquidate, acct, items, sender=sender)
        good = [o for o in outcomes if not o.error]
        if not via:
            assert ok == (outcomes[0].error == ""), f"R1: liquidation verdict {outcomes[0].error or 'ok'}, vault: " \
                                                    f"{msg or 'ok'} (items {items})"
            if not ok:
                assert msg.startswith(outcomes[0].error), f"R1: expected {outcomes[0].error}, got {msg}"
                return False, msg, None, outcomes
        else:
            assert ok, f"the looper never reverts (strict=False): {msg}"
            calls, rewards = abi_decode(["uint256", "uint256"], bytes.fromhex(self._last_result[2:]))
            assert calls == len(good), f"R1: {calls} of {times} looped liquidations went through, expected {len(good)}"
            assert rewards == sum(o.reward for o in good), "R1: looped rewards differ from the rule"
        events = list(tx.events["Liquidated"]) if "Liquidated" in tx.events else []
        assert len(events) == len(good), "one Liquidated event per liquidation"
        for ev, o in zip(events, good):
            got = (ev["taken"], ev["penalty"], ev["keeperReward"], ev["surplusBefore"], ev["surplusAfter"])
            want = (o.taken, o.penalty, o.reward, o.surplus_before, o.surplus_after)
            assert got == want, f"R1: liquidation (taken, penalty, reward, E-MM before, after) {got} != rule {want}"
            self._tally("R1 liquidations" + (" in a loop" if via else ""))
            self._tally("R1 penalty capped" if o.penalty < econ.mul_div_up(o.taken, terms.penalty, 10_000) else
                        "R1 penalty at the rate")
            assert ev["keeperReward"] <= ev["penalty"], "E2: a keeper reward above the penalty"
        if good:
            left, expect = self._state(acct), good[-1].after
            assert left.canonical() == expect.canonical(), f"R1: the account's books {left.canonical()} differ from " \
                                                           f"the rule's {expect.canonical()}"
        after = self._state(acct)
        sources = self.adl_sources.setdefault(acct, set())
        sources |= {(m, q > 0) for m, (q, _) in state.positions.items()
                    if abs(after.positions.get(m, (0, 0))[0]) < abs(q)}
        assert "Deleveraged" not in tx.events or "BadDebtWrittenOff" in tx.events, "deleveraging without a write-off"
        if "BadDebtWrittenOff" in tx.events:
            assert pre is not None, f"a write-off of {acct:#x}, whose equity was not negative before the call"
            self._check_deleveraging(acct, tx, pre, markets, self.adl_sources.pop(acct))
        if before is not None and "BadDebtWrittenOff" in tx.events:
            self._check_socialisation(before, tx, acct, keeper_acct, sum(ev["keeperReward"] for ev in events))
        return True, "", tx, outcomes

    def _check_deleveraging(self, acct, tx, pre, markets0, sources):
        """A write-off's deleveraging (ICrossMarginVault, "Deleveraging"), from its events and every followed account
        before and after the call:
          ADL-side: each Deleveraged event charges the side opposite a position of the bankrupt account liquidated
            since it last traded, and only that side: every position on it (not settled in the call) loses its size
            times the index shift (to the wei), every other position and every account without one loses nothing;
          ADL-last: every source side paid exactly its due under the split (offchain.margin.funding.adl_shares:
            in proportion to the sides' notional, each at most its cap adlShare * riskWeight * its notional, a full
            side's excess passed on to the sides with room), the write-off adds up, claims (depositors) pay only when
            every side is at its cap, and when nothing is socialised no account without a position lost a wei."""
        w = tx.events["BadDebtWrittenOff"][0]
        charges = list(tx.events["Deleveraged"]) if "Deleveraged" in tx.events else []
        assert w["deleveraged"] == sum(e["amount"] for e in charges), "ADL: Deleveraged events != the write-off's"
        prices, cfg, markets = self._market()
        post = self._read_states("latest")
        share = FundingWord.decode(int(self._call(self.params.fundingWord))).adl_share_bps
        for e in charges:
            m, longs_pay = e["market"], e["longsPay"]
            assert e["account"] == acct and (m, not longs_pay) in sources, \
                f"ADL-side: market {m} ({'longs' if longs_pay else 'shorts'} pay) is no source of {acct:#x}: {sources}"
            self._tally("ADL: Deleveraged events")
            for a in self.everyone:
                q = pre[a].positions.get(m, (0, 0))[0]
                if a == acct or (post[a].positions.get(m, (0, 0))[0], post[a].funding.get(m)) != \
                        (q, pre[a].funding.get(m)):
                    continue  # settled in this call (the bankrupt account, the fund)
                lost = accrued(q, pre[a].funding.get(m, 0), markets0[m]) - accrued(q, post[a].funding.get(m, 0),
                                                                                   markets[m]) if q else 0
                if q and (q > 0) == longs_pay:
                    expect = abs(q) * e["shift"] // INDEX_UNIT
                    assert expect <= lost <= expect + 1, f"ADL-side: {a:#x} ({q}) paid {lost}, its share is {expect}"
                    self._tally("ADL: positions charged")
                else:
                    assert lost == 0, f"ADL-side: {a:#x} ({q} in market {m}) paid {lost} for the other side"
        # the split (offchain.margin.funding.adl_shares, the contract's rule): in proportion to notional among the
        # sides with room, each at most its cap, a full side's excess passed on; claims pay only when all are full
        charged = {e["market"]: e["amount"] for e in charges}
        notional, room = {}, {}
        for m, long_liquidated in sources:
            src = m if long_liquidated else 16 + m
            notional[src] = int(self._call(self.v.openInterest, m)) * prices[self.layout.market_asset[m]] // WAD
            room[src] = notional[src] * cfg.risk_weight(self.layout.market_asset[m]) * share // 10**8
        due = adl_shares(notional, room, w["debt"] - w["coveredByFund"])
        for src, d in due.items():
            assert charged.get(src % 16, 0) == d, f"ADL-last: market {src % 16}'s {'longs' if src >= 16 else 'shorts'} " \
                                                  f"paid {charged.get(src % 16, 0)}, their due is {d} (cap {room[src]})"
        assert w["deleveraged"] == sum(due.values()) and w["socialised"] == w["debt"] - w["coveredByFund"] - \
            w["deleveraged"], f"ADL-last: the write-off does not add up: {dict(w)}"
        if w["socialised"]:
            self._tally("ADL-last: socialised after every opposite side was exhausted")
            assert all(due[s] == room[s] for s in due), f"ADL-last: {w['socialised']} socialised while a side had room"
        elif not w["socialised"]:
            for a in self.everyone:
                if not pre[a].positions and a not in (acct, self.fund):
                    assert post[a].settlement >= pre[a].settlement, \
                        f"ADL-last: {a:#x} holds no position and lost {pre[a].settlement - post[a].settlement}"

    def _check_socialisation(self, before, tx, acct, keeper_acct, reward):
        """E4: a write-off beyond the fund's cover lowers every positive settlement balance by the same fraction, and
        holders lose together exactly the uncovered debt (or what exceeds every claim is recorded as bad debt)."""
        held, debt0 = before
        now = self._holders()
        debt1 = int(self._call(self.v.badDebt))
        uncovered = sum(e["socialised"] for e in tx.events["BadDebtWrittenOff"])
        holders = [a for a in self.everyone if held[a] > 0 and a not in (acct, self.fund)]
        after = {a: now[a] - (reward if a == keeper_acct else 0) for a in holders}
        if holders:
            ref = max(holders, key=lambda a: held[a])
            for h in holders:
                gap = abs(after[h] * held[ref] - held[h] * after[ref])
                assert gap <= 2 * held[ref] + 2 * held[h], \
                    f"E4: {h:#x} kept {after[h]}/{held[h]} of its claim, {ref:#x} kept {after[ref]}/{held[ref]}"
        lost = sum(held[h] - after[h] for h in holders)
        if not uncovered:
            assert lost <= 2 * len(holders), f"E4: holders lost {lost} to a write-off the fund covered"
            self._tally("E4 write-off covered by the fund")
            return
        self._tally("E4 write-off socialised")
        assert "SettlementIndexUpdated" in tx.events, "E4: an uncovered write-off did not move the index"
        # the index is rounded down (against the holders): by less than one unit, i.e. shares / 1e18 wei in all
        slack = tx.events["SettlementIndexUpdated"]["totalShares"] // 10**18 + 2 * len(holders) + 2
        gap = lost + (debt1 - debt0) - uncovered
        if tx.events["SettlementIndexUpdated"]["totalShares"] == 0:
            # a loss that takes (almost) every claim: all are void, and what they held beyond the loss goes to the fund
            self._tally("E4 write-off took every claim (pool restarted)")
            assert all(after[h] == 0 for h in holders), "E4: a claim survived the restart of the pool"
            gap -= max(lost - uncovered, 0)
        assert -2 * len(holders) - 2 <= gap <= slack, \
            f"E4: holders lost {lost}, bad debt rose {debt1 - debt0}, uncovered debt {uncovered} (slack {slack})"

    # ------------------------------------------------------------------ price moves (E5) and checkpoints
    def _set_answer(self, asset, answer, keeper=True):
        """A new price for ``asset``: the economic segment ends before it (E1-E3 checked) and a new one starts after;
        then E5 for every account below MM, then (``keeper``) the keepers react."""
        self._checkpoint()
        raw_send(self.feeds[asset].updateAnswer, (max(int(answer), 1),), self.deployer)
        self.prev, self.seg = self._snapshot(), econ.Segment()
        self._check_liveness()
        if keeper:
            self.keeper_pass(100)

    def _check_liveness(self):
        """E5: every account below MM has a liquidation the rule accepts (R1's witness: the same fraction of every
        position and priced collateral, as much as maxTake allows) and the bundled keeper's plan, both succeeding in
        eth_call against the vault in this block."""
        prices, cfg, markets = self._market()
        terms = self._terms()
        last = self._last_prices()
        pterms = PlannerTerms(terms.word, terms.discounts)
        for acct, state in self._read_states("latest", self.margined).items():
            m = account_margin(state, self.layout, prices, cfg, markets)
            if not m.liquidatable:
                continue
            self._tally("E5 accounts below MM after a price move")
            items = econ.proportional_items(state, self.layout, prices, cfg, terms, markets)
            o = econ.liquidation_outcome(state, items, self.layout, prices, cfg, terms, last_prices=last,
                                         markets=markets)
            if o.error == "LiquidationEmpty" and not items and not state.positions:
                # only collateral without a valid price is left, worth at least the dust threshold at its feed's
                # last answer: it is never given away, the account waits for the feed (ICrossMarginVault, bad debt)
                self._tally("E5 waiting for a stale feed (collateral above dust)")
                ok, msg = self._simulate(self.v.liquidate, (acct, []), self.keeper)
                assert not ok and msg.startswith("LiquidationEmpty"), f"E5/R4: the vault wrote {acct:#x} off: {msg}"
                continue
            assert o.error == "", f"E5: the proportional take of {acct:#x} ({items}) fails the rule: {o.error}"
            ok, msg = self._simulate(self.v.liquidate, (acct, items), self.keeper)
            assert ok, f"E5: the proportional take of {acct:#x} is refused by the vault: {msg}"
            plan = plan_liquidation(settled(state, markets), self.layout, prices, cfg, pterms)
            assert plan is not None, f"E5: the keeper's planner finds no liquidation for {acct:#x} below MM"
            ok, msg = self._simulate(self.v.liquidate, (acct, plan.as_args()), self.keeper)
            assert ok, f"E5: the keeper's plan {plan} for {acct:#x} is refused: {msg}"

    def _snapshot(self) -> econ.Snapshot:
        block = web3.eth.block_number
        states = self._read_states(block)
        (index, _), bad_debt = self._batch([(self.v.settlementIndex, ()), (self.v.badDebt, ())], block)
        prices, cfg, markets = self._market(block)
        return econ.Snapshot(block, states, prices, cfg, int(index), int(bad_debt), markets)

    def _checkpoint(self, now: econ.Snapshot | None = None):
        """E1-E3 over the segment since the last checkpoint (no price move in between); starts a new segment."""
        now = now or self._snapshot()
        if self.prev is not None:
            assert now.prices == self.prev.prices, "harness: a price moved without a checkpoint"
            liquidations, write_offs = self._segment_events(self.prev.block + 1, now.block)
            self._tally("E1-E3 segments")
            self._deleveraging_allowance(now)
            problems = econ.check_segment(self.prev, now, self.seg, self.owner_accounts, self.fund, self.reward_owner,
                                          self.layout, liquidations, write_offs)
            assert not problems, "; ".join(problems)
        self.prev, self.seg = now, econ.Segment()

    def _deleveraging_allowance(self, now):
        """What the segment's deleveraging charges may take from each account (E2, E3): a position on the charged
        side (at the segment's start or end) pays its size times the index shift, plus a wei of rounding."""
        for market, longs_pay, shift in self.seg.deleveraged:
            for a, s1 in now.states.items():
                sizes = [s.positions.get(market, (0, 0))[0] for s in (self.prev.states.get(a, s1), s1)]
                charged = max((abs(q) for q in sizes if q and (q > 0) == longs_pay), default=0)
                if charged:
                    self.seg.charged(a, charged * shift // INDEX_UNIT + 1)

    def _segment_events(self, start, end):
        liquidations, write_offs = [], []
        if start > end:
            return liquidations, write_offs
        logs = web3.provider.make_request("eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end),
                                                           "address": self.v.address}])["result"]
        for lg in logs:
            t0 = lg["topics"][0]
            data = bytes.fromhex(lg["data"][2:])
            if t0 == T_LIQUIDATED:
                taken, penalty, reward = abi_decode(["uint256"] * 3, data[:96])
                keeper = "0x" + lg["topics"][2][-40:]
                liquidations.append(econ.Liquidation(int(lg["topics"][1], 16), keeper, taken, penalty, reward))
            elif t0 == T_WRITE_OFF:
                debt, covered, _, socialised = abi_decode(["uint256"] * 4, data)
                write_offs.append(econ.WriteOff(int(lg["topics"][1], 16), debt, covered, socialised))
            elif t0 == T_DELEVERAGED:
                longs_pay, _, shift = abi_decode(["bool", "uint256", "uint256"], data)
                self.seg.deleveraged.append((int(lg["topics"][2], 16), longs_pay, shift))
            elif t0 == T_INDEX and abi_decode(["uint256"] * 3, data)[1] == 0:
                self.seg.restarts += 1  # the pool restarted: every claim held before is void
            elif t0 in T_TOUCH:
                self.seg.touched(int(lg["topics"][1], 16))
        return liquidations, write_offs

    def _asset_mask(self):
        return sum(1 << a for a in set(self.layout.market_asset + self.layout.collateral_asset))

    # ------------------------------------------------------------------ rules: collateral
    @rule(trader=traders, token=tokens_st, usd=usds)
    def deposit(self, trader, token, usd):
        self._count("deposit")
        amount = self._amount(token, usd)
        if amount:
            self._deposit(self.accounts[trader], token, amount, self.deployer)

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
        if amount:
            self._withdraw(acct, token, amount, sender)

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
        assert self._call(self.v.isAuthorized, self.accounts[owner * SUBS], self.owners[operator].address) == approve

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
        oracle = self._price(self.layout.market_asset[market])
        size = usd * WAD * WAD // oracle
        if size:
            self._trade(self.accounts[trader], self.accounts[other], market, size, oracle * (1000 + move) // 1000)

    # ------------------------------------------------------------------ rules: oracle
    @rule(asset=assets, move=price_moves)
    def move_price(self, asset, move):
        self._count("move_price")
        self._set_answer(asset, self._call(self.feeds[asset].latestAnswer) * (100 + move) // 100)

    @rule(trader=traders, other=traders, asset=st.integers(0, DUST_ASSET),
          kind=st.sampled_from(["stale", "zero", "negative"]))
    def oracle_failure(self, trader, other, asset, kind):
        """A feed goes stale or answers <= 0 (R3): an account with a position on the asset cannot withdraw, trade or
        be liquidated (the oracle's error; nothing moves: invariant 5); collateral of the asset counts at zero, so
        an account holding only that collateral is valued, withdraws and is liquidated without it (and the
        collateral cannot be seized). A fresh answer restores the price."""
        self._count(f"oracle_failure_{kind}")
        acct = self.accounts[trader]
        expected = "PriceStale" if kind == "stale" else "PriceNotPositive"
        with self._broken_feed(asset, kind):
            snapshot = self._holdings(acct)
            self._check_broken_asset(acct, asset, expected)
            if other != trader and asset < DUST_ASSET:  # a trade in a market on the broken asset: refused
                books = [m for m, a in enumerate(self.layout.market_asset) if a == asset]
                market = books[trader % len(books)]
                ok, msg = self._simulate(self.venue.trade, (acct, self.accounts[other], market, WAD // 100, 10**18,
                                                            0), self.deployer)
                assert not ok and msg.startswith(expected), f"invariant 5: trade on a bad price: {msg}"
            assert self._holdings(acct) == snapshot, "invariant 5: something moved on a bad price"

    def _broken_feed(self, asset, kind):
        machine = self

        # for the vault a broken feed is a price move to 0 (its collateral counts 0): the economic segment ends
        # before the break and before the repair (E1-E3 compare states at the same prices only)
        class Broken:
            def __enter__(self):
                feed = machine.feeds[asset]
                self.answer = machine._call(feed.latestAnswer)
                machine._checkpoint()
                if kind == "stale":
                    now = chain.time()
                    raw_send(feed.updateRoundData, (machine._call(feed.latestRound) + 1, self.answer, now - 7200,
                                                    now - 7200), machine.deployer)
                else:
                    raw_send(feed.updateAnswer, (0 if kind == "zero" else -self.answer,), machine.deployer)
                machine.prev, machine.seg = machine._snapshot(), econ.Segment()

            def __exit__(self, *exc):
                if exc[0] is None:
                    machine._checkpoint()
                raw_send(machine.feeds[asset].updateAnswer, (self.answer,), machine.deployer)
                machine.prev, machine.seg = machine._snapshot(), econ.Segment()

        return Broken()

    def _check_broken_asset(self, acct, asset, expected):
        """R3 for one account while ``asset`` has no valid price (simulated only: nothing is sent)."""
        owner = self._eoa(acct) or self.keeper  # the looper's account: nobody may withdraw (Unauthorized)
        s = self._state(acct)
        held = [(j, s.collateral[j]) for j in sorted(s.collateral)]
        if asset in self._assets_of(acct, positions_only=True):
            for j, bal in held[:1] + ([(USDC_T, 1)] if s.settlement >= self.scale else []):
                ok, msg = self._simulate(self.v.withdraw, (acct, self.tokens[j], 1, owner), owner)
                assert not ok and msg.startswith(expected), f"invariant 5: withdrawal on a bad price: {msg}"
            ok, msg = self._simulate(self.v.liquidate, (acct, []), self.keeper)
            assert not ok and msg.startswith(expected), f"invariant 5: liquidation on a bad price: {msg}"
            return
        prices, cfg, markets = self._market()
        assert prices[asset] == 0
        m = account_margin(s, self.layout, prices, cfg, markets)
        e, mm, im = self._margin(acct)
        assert (e, mm, im) == (m.equity, m.maintenance, m.initial), "R3: collateral without a price must count 0"
        for j, bal in held:
            after = econ.copy.deepcopy(s)
            after.collateral[j] = bal // 2
            m1 = account_margin(after, self.layout, prices, cfg, markets)
            ok, msg = self._simulate(self.v.withdraw, (acct, self.tokens[j], bal - bal // 2, owner), owner)
            if self._eoa(acct) is None:
                assert not ok and msg.startswith("Unauthorized"), msg
                continue
            assert ok == (m1.equity >= m1.initial), f"R3: withdrawal verdict with an unpriced asset: {msg or 'ok'}"
            if self.layout.collateral_asset[j] == asset and m.liquidatable:
                ok, msg = self._simulate(self.v.liquidate, (acct, [(1, j, 1)]), self.keeper)
                assert not ok and msg.startswith("BadLiquidationItem"), f"R3: unpriced collateral seized: {msg}"
        terms = self._terms()
        if m.liquidatable and self._seizable(s, prices):
            plan = plan_liquidation(settled(s, markets), self.layout, prices, cfg,
                                    PlannerTerms(terms.word, terms.discounts))
            assert plan is not None, f"R3: no liquidation for {acct:#x} below MM while asset {asset} has no price"
            ok, msg = self._simulate(self.v.liquidate, (acct, plan.as_args()), self.keeper)
            assert ok, f"R3: the keeper's plan for {acct:#x} is refused while asset {asset} has no price: {msg}"
        elif m.liquidatable:  # only unpriced collateral left: nothing to take until the feed is back, unless it is
            # dust at its feed's last answer and the account owes: then a call naming nothing writes it off (R4)
            ok, msg = self._simulate(self.v.liquidate, (acct, []), self.keeper)
            o = econ.liquidation_outcome(s, [], self.layout, prices, cfg, terms, index=self._index(),
                                         last_prices=self._last_prices(), markets=markets)
            assert ok == (o.error == ""), f"R3/R4: a call naming nothing on {acct:#x}: rule {o.error or 'ok'}, " \
                                          f"vault {msg or 'ok'} (state {s.canonical()})"
            if s.collateral and not ok:
                assert msg.startswith("LiquidationEmpty"), f"R3: {msg}"
            if not s.collateral:
                assert ok, f"R4: an account holding nothing but debt must be written off: {msg}"
        else:
            ok, msg = self._simulate(self.v.liquidate, (acct, []), self.keeper)
            assert not ok and msg.startswith("AccountHealthy"), f"R3: {msg}"

    # ------------------------------------------------------------------ rules: liquidation
    @rule(frac=fracs)
    def keeper_pass(self, frac):
        """A keeper liquidates every account below MM (``frac`` percent of what the rule allows, spread over every
        position; 100: the bundled keeper's planner) and tries one healthy account, which must be refused."""
        self._count("keeper_pass")
        prices, cfg, markets = self._market()
        terms = self._terms()
        healthy_tried = False
        states = self._read_states("latest", self.margined)
        equity, maintenance = self._call(self.p.lens.equityAndMaintenance, self.margined)
        for acct, e, mm in zip(self.margined, equity, maintenance):
            state = states[acct]
            m = account_margin(state, self.layout, prices, cfg, markets)
            if (m.equity, m.maintenance) != (e, mm):  # an earlier liquidation of this pass credited it a reward
                state = self._state(acct)
                m = account_margin(state, self.layout, prices, cfg, markets)
                e, mm, _ = self._margin(acct)
            assert (m.equity, m.maintenance) == (e, mm), "invariant 6: mirror margin != vault margin"
            if not m.liquidatable:
                if not healthy_tried and state.positions:
                    items = [(0, mk, 1) for mk in sorted(state.positions)][:1]
                    ok, msg, _, _ = self._liquidate(acct, items, self.keeper)
                    assert not ok and msg.startswith("AccountHealthy"), "invariant 3: a healthy account was liquidated"
                    healthy_tried = True
                continue
            allowed = econ.allowed_take(m.equity, m.maintenance, m.initial, m.gross_total, terms)
            if frac == 100:
                plan = plan_liquidation(settled(state, markets), self.layout, prices, cfg,
                                        PlannerTerms(terms.word, terms.discounts))
                assert plan is not None, f"no plan for {acct:#x} below MM"
                items = plan.as_args()
            else:
                share = (allowed * frac // 100, max(m.gross_total, 1))
                items = [(0, mk, abs(size) * share[0] // share[1]) for mk, (size, _) in sorted(state.positions.items())]
                items = [it for it in items if it[2] > 0] or [(0, mk, 1) for mk in sorted(state.positions)][:1]
            ok, msg, tx, outcomes = self._liquidate(acct, items, self.keeper)
            if not ok:
                # proportional closes of positions alone can fail to raise E - MM when collateral hedges a position
                assert frac != 100, f"the keeper's plan {items} was refused: {msg}"
                continue
            ev = tx.events["Liquidated"]
            assert ev["taken"] <= allowed, "invariant 4: took more than the rule allows"
            if ev["taken"]:
                assert ev["surplusAfter"] > ev["surplusBefore"], "invariant 4: E - MM did not rise"

    # ------------------------------------------------------------------ rules: parameters and pauses
    def _at_once(self, kind, args):
        """R5: does this change apply at once (it cannot lower any account's requirement)?"""
        cfg = MarginConfig.from_chain(self._call(self.params.marginConfig))
        if kind == "risk_weight":
            a, new = args
            uncorrelated = all(cfg.correlation(a, b) == 0 for b in range(8) if b != a)
            return new >= u16(cfg.global_word, a) and uncorrelated
        if kind == "haircut":
            return args[1] >= u16(cfg.haircuts, args[0])
        if kind == "price_band":
            return args[0] <= (self._control() >> 8) & 0xFFFF
        if kind == "scalars":
            return all(n >= u16(cfg.global_word, 8 + i) for i, n in enumerate(args))
        raise ValueError(kind)

    # one rule per parameter family, so that every family is changed both ways within the CI budget
    @rule(index=st.integers(0, 5), tighten=st.booleans(), step=st.integers(1, 6))
    def param_risk_weight(self, index, tighten, step):
        self.change_parameter("risk_weight", index, tighten, step)

    @rule(index=st.integers(0, 5), tighten=st.booleans(), step=st.integers(1, 6))
    def param_haircut(self, index, tighten, step):
        self.change_parameter("haircut", index, tighten, step)

    @rule(tighten=st.booleans(), step=st.integers(1, 6))
    def param_price_band(self, tighten, step):
        self.change_parameter("price_band", 0, tighten, step)

    @rule(tighten=st.booleans(), step=st.integers(1, 6))
    def param_scalars(self, tighten, step):
        self.change_parameter("scalars", 0, tighten, step)

    def change_parameter(self, kind, index, tighten, step):
        """Risk admin: raise (``tighten``) or lower a parameter of family ``kind``. R5 decides: a change that cannot
        lower any account's requirement applies at once (and keepers react); any other (a risk weight of a correlated
        asset, whichever way) is only queued."""
        self._count(f"param_{kind}_{'tighten' if tighten else 'loosen'}")
        cfg = MarginConfig.from_chain(self._call(self.params.marginConfig))
        sign = 1 if tighten else -1
        if kind == "risk_weight":
            a = index % 4
            old = u16(cfg.global_word, a)
            new = min(max(old + sign * 100 * step, 100), 3000)
            fn, args = self.params.setRiskWeight, (a, new)
        elif kind == "haircut":
            j = index % 6
            disc = u16(int(self._call(self.params.liquidationConfig)[1]), j)
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
        at_once = self._at_once(kind, args)
        ident = bytes(web3.keccak(hexstr=fn.encode_input(*args)))
        if not at_once and any(q[5] == ident for q in self.queued):  # the same change is already queued
            ok, msg = self._simulate(fn, args, self.deployer)
            assert ok or msg.startswith("ChangeNotReady"), msg
            return
        before = self._param_value(kind, index)
        ok, msg, tx = self._try(fn, *args, sender=self.deployer)
        assert ok, f"{kind} {args}: {msg}"
        after = self._param_value(kind, index)
        if at_once:
            assert after == new, f"R5: a change of {kind} that cannot lower a requirement did not apply at once"
            assert int(self._call(self.params.readyAt, ident)) == 0, "R5: applying a change must delete its queue entry"
            self.queued = [q for q in self.queued if q[5] != ident]
            self.keeper_pass(100)
        else:
            assert after == before, f"R5: a change of {kind} {args} that can lower a requirement applied at once"
            assert "ChangeQueued" in tx.events
            assert int(self._call(self.params.readyAt, ident)) > 0
            self.queued.append((kind, index, fn, args, new, ident))

    def _param_value(self, kind, index):
        cfg = MarginConfig.from_chain(self._call(self.params.marginConfig))
        if kind == "risk_weight":
            return u16(cfg.global_word, index % 4)
        if kind == "haircut":
            return u16(cfg.haircuts, index % 6)
        if kind == "price_band":
            return (self._control() >> 8) & 0xFFFF
        return (u16(cfg.global_word, 8), u16(cfg.global_word, 9), u16(cfg.global_word, 10))

    @rule(early=st.booleans())
    def apply_queued(self, early):
        """The oldest queued change: refused before its time (ChangeNotReady), applied after it."""
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
        assert self._param_value(kind, index) == new, f"a queued change of {kind} did not apply after the delay"
        assert int(self._call(self.params.readyAt, ident)) == 0, "R5: applying a queued change must delete its entry"
        self.keeper_pass(100)  # a queued risk-weight rise tightens

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
        assert int(self._call(self.params.readyAt, ident)) == 0

    @rule(flags=st.integers(1, 3))
    def guardian_pause(self, flags):
        self._count("guardian_pause")
        current = self._control() & 3
        ok, msg, _ = self._try(self.params.setPause, current | flags, sender=self.guardian)
        assert ok, msg
        assert self._control() & 3 == current | flags
        assert int(self._call(self.v.controlWord)) & 3 == current | flags, "the vault's copy"
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
        self._sleep(seconds)

    # ------------------------------------------------------------------ rules: funding and deleveraging
    @rule(market=markets, hours=st.integers(1, 4), up=st.booleans())
    def funding_hours(self, market, hours, up):
        """Funding moves: the two funder subaccounts fill 30 bps above (``up``: longs pay) or below the index paying a
        fee (the premium, capped at 20 bps, weighs by it), then ``hours`` hours pass with the market touched every
        hour (a fee-free fill at the index: the accrual of each hour at that hour's rate, and a settlement of the
        funders' positions). Then the premium's weight is left to decay to zero (a quiet spell of a few times 10
        hours, the market touched after each), so the rate is exactly 0 again and the indices stay put outside this
        rule: the other rules predict the vault to the wei from a view of the funding state. Like a price move, the
        rule ends the economic segment before it and starts a new one after it (funding moves value between
        traders)."""
        self._count("funding_hours")
        if self._paused(1):  # trades paused: no fill can set a premium (nor touch the market)
            return
        self._checkpoint()
        before = self._market()[2].get(market)
        oracle = self._price(self.layout.market_asset[market])
        size = 10_000 * WAD * WAD // oracle
        buyer, seller = self.funders if up else self.funders[::-1]
        price = oracle * (10_000 + (30 if up else -30)) // 10_000
        ok, msg, _ = self._try(self.venue.trade, buyer, seller, market, size, price, PREMIUM_FEE_USD * WAD,
                               sender=self.deployer)
        assert ok, f"premium fill: {msg}"
        for _ in range(hours):
            self._sleep(3600)
            self._touch(market)
        moved = self._market()[2][market]
        assert before is None or moved.long_index != before.long_index, \
            f"funding: {hours} h after a premium fill the indices of market {market} did not move"
        self._tally("funding: indices moved")
        rate_up = (moved.long_index > before.long_index) if before else up
        assert rate_up == up, "funding: a premium above the index must make the longs pay (below: the shorts)"
        for _ in range(12):  # quiet: touched every 10 hours, the weight falls 61-fold each time, to 0 in a few
            f = self._call(self.v.marketFunding, market)
            if int(f[3]) == 0:
                break
            self._sleep(10 * 3600)
            self._touch(market)
        assert (int(f[3]), int(f[4])) == (0, 0), f"funding: weight {f[3]} and rate {f[4]} after the quiet spell"
        self.prev, self.seg = self._snapshot(), econ.Segment()
        self.keeper_pass(100)  # funding may have pushed accounts below MM

    def _touch(self, market):
        """A fee-free fill between the funders at the index: the market's funding advances and is stored."""
        oracle = self._price(self.layout.market_asset[market])
        ok, msg, _ = self._try(self.venue.trade, self.funders[0], self.funders[1], market, WAD // 1000, oracle, 0,
                               sender=self.deployer)
        assert ok, f"touch of market {market}: {msg}"

    @rule(pick=st.integers(0, 2**16))
    def gap_crash(self, pick):
        """A gap: one price jumps against an account so far that its loss exceeds the insurance fund (no keeper in
        between), then the keepers liquidate it: the write-off deleverages the opposite side of its markets."""
        self._count("gap_crash")
        books = [a for a, st_ in self._read_states("latest", self.accounts).items() if st_.positions]
        for acct in books[pick % len(books):] + books[:pick % len(books)] if books else []:
            if self._push(acct, "beyond_fund"):
                self._tally("gap crash beyond the fund")
                self.keeper_pass(100)
                return

    def _sleep(self, seconds):
        """Time passes; feeds keep their heartbeat (each is refreshed, at the same answer, once it is more than 30
        minutes old: prices never move here)."""
        chain.sleep(seconds)
        chain.mine()
        now = chain.time()
        stamps = self._batch([(f.latestTimestamp, ()) for f in self.feeds] + [(f.latestAnswer, ()) for f in self.feeds],
                             "latest")
        for feed, stamp, answer in zip(self.feeds, stamps, stamps[len(self.feeds):]):
            if now - stamp > 1800:
                raw_send(feed.updateAnswer, (answer,), self.deployer)

    # ------------------------------------------------------------------ invariants
    def _batch(self, calls, block, allow_revert=False):
        """One JSON-RPC batch of eth_calls [(contract fn, args)] at ``block``: the decoded results, in order (None for
        a call that reverted, when ``allow_revert``)."""
        tag = block if isinstance(block, str) else hex(block)
        payload = [{"jsonrpc": "2.0", "id": i, "method": "eth_call",
                    "params": [{"to": fn._address, "data": fn.encode_input(*args)}, tag]}
                   for i, (fn, args) in enumerate(calls)]
        out = sorted(_SESSION.post(web3.provider.endpoint_uri, json=payload, timeout=120).json(),
                     key=lambda r: r["id"])
        decoded = []
        for (fn, _), r in zip(calls, out):
            if allow_revert and "result" not in r:
                decoded.append(None)
                continue
            assert "result" in r, f"{fn._name} reverted in the invariant check: {r.get('error')}"
            types = [o["type"] if o["type"] != "tuple" else
                     "(" + ",".join(c["type"] for c in o["components"]) + ")" for o in fn.abi["outputs"]]
            vals = abi_decode(types, bytes.fromhex(r["result"][2:]))
            decoded.append(vals[0] if len(vals) == 1 else vals)
        return decoded

    def _read_states(self, block, which=None):
        """The state of every followed account (or of ``which``) at ``block`` (two batches)."""
        which = self.everyone if which is None else which
        v, n = self.v, len(which)
        r = self._batch([(v.masksOf, (a,)) for a in which] + [(v.settlementOf, (a,)) for a in which], block)
        second, keys = [], []
        for a, (mk_mask, c_mask) in zip(which, r[:n]):
            for mk in range(16):
                if mk_mask >> mk & 1:
                    second += [(v.positionOf, (a, mk)), (v.fundingOf, (a, mk))]
                    keys += [(a, "p", mk), (a, "f", mk)]
            for j in range(16):
                if c_mask >> j & 1:
                    second.append((v.collateralOf, (a, j)))
                    keys.append((a, "c", j))
        states = {a: AccountState(settlement=int(s)) for a, s in zip(which, r[n:])}
        for (a, kind, k), val in zip(keys, self._batch(second, block, allow_revert=True) if second else []):
            if kind == "p":
                states[a].positions[k] = (int(val[0]), int(val[1]))
            elif kind == "f":  # the index the position stored (fundingOf reverts while its asset has no valid price:
                # then nothing can have settled the position since it was last read)
                index = int(val[1]) if val else self.stored_index.get((a, k), 0)
                states[a].funding[k] = self.stored_index[a, k] = index
            else:
                states[a].collateral[k] = int(val)
        return states

    @invariant()
    def solvency_and_mirror(self):
        Solvency.steps += 1
        head = self.c.rpc.head()
        self.indexer.sync(head)
        v = self.v
        states = self._read_states(head)
        first = [(t.balanceOf, (v.address,)) for t in self.tokens] + [(v.badDebt, ())]
        first += [(v.openInterest, (mk,)) for mk in range(NMARKETS)]
        first += [(self.p.lens.equityAndMaintenance, (self.margined,)), (self.params.marginConfig, ())]
        first += [(self.p.oracle.prices, (self._asset_mask(),)), (v.settlementIndex, ())]
        r = self._batch(first, head)
        balances = r[:NCOLL + 1]
        bad_debt = int(r[NCOLL + 1])
        oi = r[NCOLL + 2:NCOLL + 2 + NMARKETS]
        (equity, maintenance), cfg_words, prices, (index, _) = r[NCOLL + 2 + NMARKETS:]
        indexed = self.indexer.states(self.everyone)
        for a in self.everyone:  # invariant 6: the indexed state is the chain's
            assert indexed[a].canonical() == states[a].canonical(), f"invariant 6: indexed state of {a:#x}"
        cfg = MarginConfig.from_chain(cfg_words)
        prices = [int(x) for x in prices]
        markets = self._market(head)[2]
        for a, e, mm in zip(self.margined, equity, maintenance):
            m = account_margin(indexed[a], self.layout, prices, cfg, markets)
            assert (m.equity, m.maintenance) == (e, mm), f"invariant 6: off-chain margin of {a:#x} != AccountLens"
        for j in range(NCOLL):  # invariant 1
            assert balances[j] >= sum(s.collateral.get(j, 0) for s in states.values()), f"invariant 1: collateral {j}"
        held = balances[USDC_T] * self.scale + bad_debt
        claims = sum(s.settlement for s in states.values())
        unrealised = -sum(on for s in states.values() for (_, on) in s.positions.values())
        owed = {m: sum(accrued(s.positions[m][0], s.funding.get(m, 0), f) for s in states.values() if m in s.positions)
                for m, f in markets.items()}  # accrued funding of each market's positions (+ owed to them)
        assert held >= claims + unrealised + sum(owed.values()), "invariant 1: settlement token"
        self._check_funding_conserved(head, states, owed)
        for mk in range(NMARKETS):  # invariant 2
            sizes = [s.positions.get(mk, (0, 0))[0] for s in states.values()]
            assert sum(sizes) == 0, f"invariant 2: market {mk}"
            assert int(oi[mk]) == sum(x for x in sizes if x > 0), f"open interest {mk}"
        self._checkpoint(econ.Snapshot(head, states, prices, cfg, int(index), bad_debt, markets))  # E1-E3

    def _check_funding_conserved(self, head, states, owed):
        """Funding is conserved per market: its fundingBalance (what positions paid in, less what was paid out) covers
        the accrued funding of its open positions, and the difference is rounding dust: less than one wei per
        settlement of a position since the run began (the payer's share rounds up, the receiver's down), per open
        position, and per deleveraging charge its open interest / 1e9 wei (the index shift rounds up)."""
        if head > self.log_block:
            logs = web3.provider.make_request("eth_getLogs", [{
                "fromBlock": hex(self.log_block + 1), "toBlock": hex(head), "address": self.v.address,
                "topics": [[T_POSITION, T_DELEVERAGED]]}])["result"]
            for lg in logs:
                m = int(lg["topics"][2], 16)
                if lg["topics"][0] == T_POSITION:
                    self.settlements[m] = self.settlements.get(m, 0) + 1
                else:
                    oi = int(self._batch([(self.v.openInterest, (m,))], int(lg["blockNumber"], 16))[0])
                    self.adl_dust[m] = self.adl_dust.get(m, 0) + oi // INDEX_UNIT + 1
            self.log_block = head
        balances = self._batch([(self.v.fundingBalance, (m,)) for m in owed], head)
        for (m, due), balance in zip(owed.items(), balances):
            dust = int(balance) - due
            bound = self.settlements.get(m, 0) + self.adl_dust.get(m, 0) + sum(m in s.positions
                                                                               for s in states.values())
            assert 0 <= dust <= bound, \
                f"funding conservation, market {m}: fundingBalance {balance} - accrued {due} = {dust}, not in " \
                f"[0, {bound}]"
            if due:
                self._tally("funding conservation with accrued funding")


record_failures(Solvency)
Solvency.checks = {}
