"""The option state machine (docs/options.md): random sequences of option trades (at the mark and at the band's
edges, between owners and between one owner's subaccounts), price and volatility moves (within the feed's bounds,
outside them, zero, stale), expiry (time runs to it, the first round after it fixes the series, anyone settles the
positions, the slot is listed again) and liquidations of option positions (kind-2 items, in proportion to maxTake).

Its own deployment (``setup_options``) on the module's protocol: a venue, six series, a market maker with 5 million
USDC, two owners with two subaccounts of 60,000 USDC each, a keeper. Every action is simulated first and sent only if
it succeeds.

After every step (invariants):
  - per series: sizes sum to zero until the series is fixed, long interest = sum of longs, short interest = sum of
    |shorts|; each account's option mask is exactly the slots it holds, at most 8 (the fund: any number);
  - the vault's margin (equity, MM, IM) of every account and of the fund equals the exact mirror's
    (``offchain.margin.exact.account_margin`` with ``read_option_market``) to the wei;
  - conservation: USDC held * scale + bad debt >= every settlement balance + every option position's value (a
    series' positions are worth at most 0 together);
  - keeper rewards <= penalties, over the run.
Inside the rules: a fill leaves each side at or above IM unless it only reduced its position (then E - MM rose);
between two subaccounts of one owner, with no price, volatility or time move, the owner's value (sum of max(E, 0))
does not rise; a liquidation raises E - MM; settling anyone's expired positions leaves its equity unchanged; after
every price, volatility or time move every account below MM accepts a proportional take of its live positions (its
fixed ones settled first), whatever the volatility feed says (liveness).
"""
from __future__ import annotations

from brownie import TestVenue, chain
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from offchain.margin.exact import account_margin, max_take
from offchain.margin.snapshot import (read_account_state, read_layout, read_margin_config, read_markets,
                                      read_option_market, read_prices)
from scripts.deploy import set_price
from tests.conftest import Trader

from .common import record_failures

WAD = 10**18
USDC = 10**6
DAY = 86_400
SLOTS = 6
START = {0: 60_000, 1: 3_000}
# (asset, call, strike USD, days): 30-day BTC call and put, a 2-day BTC call, a 7-day ETH call, a 1-day ETH put,
# a 3-day ETH call
SERIES = [(0, True, 60_000, 30), (0, False, 55_000, 30), (0, True, 63_000, 2), (1, True, 3_000, 7),
          (1, False, 2_800, 1), (1, True, 3_200, 3)]
# over a budget (the CI one, tests/stateful/test_options.py, and the long campaign, scripts/bench/fuzz.py) each of these
# must have happened, or the budget proves little
MUST = ("option trades", "price moves", "expiries fixed", "positions settled", "liveness: accepted",
        "mirror comparisons")


def setup_options(protocol, deployer):
    """The machine's deployment on the module's protocol (see the module doc). Returns the context."""
    tx = {"from": deployer}
    venue = TestVenue.deploy(protocol.vault, tx)
    protocol.vault.setVenue(venue, True, tx)
    t = chain.time()
    for slot, (asset, call, strike, days) in enumerate(SERIES):
        protocol.options.listSeries(slot, asset, call, strike * WAD, t + days * DAY, tx)
    protocol.usdc.mint(deployer, 10**30, tx)
    protocol.usdc.approve(protocol.vault, 2**256 - 1, tx)
    maker = Trader(protocol.vault)
    protocol.vault.deposit(maker.id, protocol.usdc, 5_000_000 * USDC, tx)
    owners = [Trader(protocol.vault) for _ in range(2)]
    traders = []
    for o in owners:
        for sub in range(2):
            acct = (int(o.wallet.address, 16) << 96) | sub
            protocol.vault.deposit(acct, protocol.usdc, 60_000 * USDC, tx)
            traders.append(acct)
    return {"protocol": protocol, "venue": venue, "deployer": deployer, "maker": maker.id, "traders": traders,
            "owner_of": {a: i // 2 for i, a in enumerate(traders)}, "keeper": protocol.vault.accountId(deployer, 7)}


class OptionSolvency(RuleBasedStateMachine):
    context: dict = {}
    counts: dict = {}  # what happened over all runs (successful actions and checks met)
    steps = 0  # invariant checks (one per step, plus one at the start of each run)
    runs = 0

    def __init__(self):
        super().__init__()
        chain.revert()
        c = self.context
        self.p, self.venue, self.deployer = c["protocol"], c["venue"], c["deployer"]
        self.v, self.om = self.p.vault, self.p.options
        self.maker, self.traders, self.owner_of = c["maker"], c["traders"], c["owner_of"]
        self.fund = int(self.v.fundAccount())
        self.everyone = [self.maker, *self.traders]
        self.layout = read_layout(self.v)
        self.penalties = self.rewards = 0
        OptionSolvency.runs += 1
        OptionSolvency.last_rule = "the start of the run"

    # ------------------------------------------------------------------ helpers
    def _count(self, name, n=1):
        OptionSolvency.counts[name] = OptionSolvency.counts.get(name, 0) + n

    def _send(self, fn, *args, sender=None):
        """Simulate, then send if it succeeds: (ok, revert message, tx)."""
        params = {"from": sender or self.deployer}
        try:
            fn.call(*args, params)
        except Exception as e:  # noqa: BLE001 (a refusal: its custom error)
            return False, getattr(e, "revert_msg", str(e)) or "", None
        return True, "", fn(*args, {**params, "gas_limit": 29_000_000})

    def _mirror(self, accounts_):
        """(vault margin, mirror margin) of each account, at the latest block (None where prices are missing)."""
        prices = read_prices(self.p.oracle, self.layout)
        cfg = read_margin_config(self.p.params)
        markets = read_markets(self.v, self.layout, prices)
        market = read_option_market(self.om, self.p.oracle, self.p.params, chain[-1].timestamp)
        out = {}
        for a in accounts_:
            state = read_account_state(self.v, a, self.om)
            if any(prices[self.om.series(s)[0]] == 0 for s in state.options):
                out[a] = None
                continue
            out[a] = (tuple(int(x) for x in self.v.margin(a)),
                      account_margin(state, self.layout, prices, cfg, markets, market))
        return out

    def _owner_states(self, owner):
        return [read_account_state(self.v, a, self.om) for a in self.traders if self.owner_of[a] == owner]

    def _value_at(self, states, time):
        """Sum of max(E, 0) of ``states`` (the mirror) at the current prices and at ``time``: the same instant for
        the states before and after a fill (the block that includes a fill is later than the one before it, and the
        options' time decay alone would move the owner's value between the two)."""
        prices = read_prices(self.p.oracle, self.layout)
        cfg = read_margin_config(self.p.params)
        markets = read_markets(self.v, self.layout, prices)
        market = read_option_market(self.om, self.p.oracle, self.p.params, time)
        return sum(max(account_margin(st_, self.layout, prices, cfg, markets, market).equity, 0) for st_ in states)

    def _live_slots(self):
        now = chain[-1].timestamp
        return [s for s in range(SLOTS) if self.om.series(s)[7] and self.om.series(s)[3] > now]

    def _refresh_prices(self):
        for asset in (0, 1):
            feed = self.p.feeds[asset]
            set_price(feed, int(feed.latestAnswer()) / 10**8, self.deployer)

    # ------------------------------------------------------------------ rules
    @initialize()
    def books(self):
        """Every run starts with option books near their margin: subaccounts 0 and 2 write 5 BTC 30-day calls each
        to the maker, subaccount 3 writes 30 ETH 1-day puts, and subaccount 1 buys 10 ETH 7-day calls from its
        sibling 0 at the band's top edge (a wash trade)."""
        t = self.traders
        for buyer, seller, slot, size, edge in ((self.maker, t[0], 0, 5, 0), (self.maker, t[2], 0, 5, 0),
                                               (self.maker, t[3], 4, 30, 0), (t[1], t[0], 3, 10, 98)):
            spot = int(self.p.oracle.price(self.om.series(slot)[0]))
            band = (int(self.p.params.optionWord()) >> 184) & 0xFFFF
            price = int(self.om.mark(slot)) + spot * band * edge // (100 * 10_000)
            ok, msg, _ = self._send(self.venue.tradeOption, buyer, seller, slot, size * WAD, price, 0)
            assert ok, f"the initial books: {msg}"

    @rule(buyer=st.integers(0, 4), seller=st.integers(0, 4), pick=st.integers(0, 2**16),
          usd=st.integers(1_000, 400_000), edge=st.sampled_from([-98, -50, 0, 50, 98]))
    def trade_option(self, buyer, seller, pick, usd, edge):
        """A fill of ``usd`` of notional at the mark moved by ``edge`` % of the band (maker = index 0; 98% at most:
        the mark decays between the simulation and the block)."""
        self._count("rule trade_option")
        live = self._live_slots()
        if not live or buyer == seller:
            return
        slot = live[pick % len(live)]
        b, s = self.everyone[buyer], self.everyone[seller]
        asset = self.om.series(slot)[0]
        spot = int(self.p.oracle.price(asset))
        band = (int(self.p.params.optionWord()) >> 184) & 0xFFFF
        price = max(int(self.om.mark(slot)) + spot * band * edge // (100 * 10_000), 0)
        size = usd * WAD * WAD // spot
        same_owner = b in self.owner_of and s in self.owner_of and self.owner_of[b] == self.owner_of[s]
        before = self._owner_states(self.owner_of[b]) if same_owner else None
        sizes = {a: int(self.om.sizeOf(a, slot)) for a in (b, s)}
        ok, msg, _ = self._send(self.venue.tradeOption, b, s, slot, size, price, 0)
        if not ok:
            self._count(f"trade refused: {msg.split(':')[0]}")
            return
        self._count("option trades")
        for a, delta in ((b, size), (s, -size)):
            e, mm, im = (int(x) for x in self.v.margin(a))
            q = sizes[a]
            reduced = q != 0 and (q > 0) != (delta > 0) and abs(delta) <= abs(q)
            assert e >= im or (reduced and e >= 0), f"a fill left {a:#x} below IM without only reducing"
        if same_owner:
            self._count("wash trades between subaccounts")
            now = chain[-1].timestamp
            after = self._value_at(self._owner_states(self.owner_of[b]), now)
            assert after <= self._value_at(before, now) + 2, "a wash trade raised the owner's value"

    @rule(asset=st.integers(0, 1), pct=st.sampled_from([-30, -15, -5, 5, 15, 30]))
    def move_price(self, asset, pct):
        feed = self.p.feeds[asset]
        new = max(int(feed.latestAnswer()) * (100 + pct) // 100, START[asset] * 10**8 // 10)
        feed.updateAnswer(new, {"from": self.deployer})
        self._count("price moves")
        self._check_liveness()

    @rule(asset=st.integers(0, 1), mode=st.sampled_from(["down", "up", "above_max", "below_min", "zero", "stale"]))
    def move_vol(self, asset, mode):
        feed = self.p.vol_feeds[asset]
        current = max(int(feed.latestAnswer()), 10**7)
        if mode == "stale":
            chain.sleep(DAY + 60)
            chain.mine()
            self._refresh_prices()
        else:
            answer = {"down": current * 2 // 3, "up": current * 3 // 2, "above_max": 6 * 10**8, "below_min": 10**6,
                      "zero": 0}[mode]
            feed.updateAnswer(answer, {"from": self.deployer})
        self._count(f"vol {mode}")
        self._check_liveness()

    @rule()
    def expire(self):
        """Time runs to the nearest expiry (within 3 days), the feeds publish, the series is fixed by the first round
        at or after its expiry (a later round is refused), anyone settles every holder, the slot is listed again."""
        now = chain[-1].timestamp
        listed = [(s, self.om.series(s)) for s in range(SLOTS)]
        pending = [(se[3], s) for s, se in listed if se[7] and se[4] == 0]
        if not pending or min(pending)[0] > now + 3 * DAY:
            return
        expiry, slot = min(pending)
        if expiry > now:
            chain.sleep(expiry - now + 1)
            chain.mine()
        self._refresh_prices()
        asset = self.om.series(slot)[0]
        feed = self.p.feeds[asset]
        latest = int(feed.latestRound())
        first = next((r for r in range(latest, 1, -1) if int(feed.getTimestamp(r)) >= expiry
                      > int(feed.getTimestamp(r - 1))), None)
        assert first is not None, "no round at or after the expiry"
        self._refresh_prices()  # a later round
        ok, msg, _ = self._send(self.om.fixExpiry, slot, int(feed.latestRound()))
        assert not ok and msg.startswith("BadExpiryRound"), f"a later round fixed the series: {msg}"
        ok, msg, _ = self._send(self.om.fixExpiry, slot, first)
        assert ok, msg
        self._count("expiries fixed")
        for a in [*self.everyone, self.fund]:
            if not (int(self.v.optionsOf(a)) >> slot) & 1:
                continue
            q, s0 = int(self.om.sizeOf(a, slot)), int(self.v.settlementOf(a))
            se = self.om.series(slot)
            payoff = max(se[4] - se[2], 0) if se[1] else max(se[2] - se[4], 0)
            ok, msg, _ = self._send(self.v.settleExpired, a, [slot])
            assert ok, msg
            # the position's value (floor(size * payoff), what equity counted) moved into the settlement balance
            # (positive balances are shares of the claims pool: a wei of rounding)
            assert abs(int(self.v.settlementOf(a)) - s0 - q * payoff // WAD) <= 1, "settlement != the payoff"
            self._count("positions settled")
        s = self.om.series(slot)
        assert (s[5], s[6]) == (0, 0), "interest left after every position was settled"
        a, call, strike, days = SERIES[slot]
        spot = int(self.p.oracle.price(a))
        ok, msg, _ = self._send(self.om.listSeries, slot, a, call, spot // 10**18 * 10**18, chain.time() + days * DAY)
        if ok:
            self._count("series listed again")
        self._check_liveness()

    @rule(pick=st.integers(0, 2**16), frac=st.sampled_from([100, 50, 10]))
    def liquidate(self, pick, frac):
        """The keeper takes ``frac`` % of maxTake, in proportion, from the first account below MM."""
        self._count("rule liquidate")
        below = [a for a in self.everyone if self._below_mm(a)]
        if not below:
            return
        target = below[pick % len(below)]
        items = self._items(target, frac)
        if not items and frac != 100:
            return
        ok, msg, tx = self._send(self.v.liquidate, target, items)
        if not ok and frac != 100:
            self._count(f"partial take refused: {msg.split(':')[0]}")
            return
        assert ok, f"a proportional take of {target:#x} was refused: {msg}"
        ev = tx.events["Liquidated"]
        assert ev["surplusAfter"] > ev["surplusBefore"] or ev["taken"] == 0, "a liquidation did not raise E - MM"
        assert ev["keeperReward"] <= ev["penalty"]
        self.penalties += ev["penalty"]
        self.rewards += ev["keeperReward"]
        self._count("liquidations" + (" of options" if any(i[0] == 2 for i in items) else ""))

    # ------------------------------------------------------------------ liveness
    def _below_mm(self, a):
        try:
            e, mm, _ = (int(x) for x in self.v.margin(a))
        except Exception:  # noqa: BLE001 (no valid price: nothing can be valued)
            return False
        return e < mm

    def _items(self, a, frac=100):
        """A take of ``frac`` % of maxTake from every live option position (fixed ones settled first)."""
        mask = int(self.v.optionsOf(a))
        fixed = [s for s in range(32) if mask >> s & 1 and self.om.series(s)[4] != 0]
        if fixed:
            self.v.settleExpired(a, fixed, {"from": self.deployer})
            self._count("fixed positions settled before a liquidation")
        e, mm, im = (int(x) for x in self.v.margin(a))
        d = self.v.marginDetail(a)
        gross = sum(int(x) for x in d[4]) + int(d[6][1])
        liq = int(self.p.params.liquidationConfig()[0])
        allowed = max_take(e, mm, im, gross, liq)
        assert allowed == int(self.v.maxTake(e, mm, im, gross, liq))
        mask = int(self.v.optionsOf(a))
        slots = [s for s in range(32) if mask >> s & 1]
        target = allowed * frac // 100
        target = target - len(slots) - 1 if target > len(slots) + 1 else 0
        items = []
        for s in slots:
            q = abs(int(self.om.sizeOf(a, s)))
            amount = q if allowed >= gross and frac == 100 else q * target // gross
            if amount:
                items.append((2, s, amount))
        return items

    def _check_liveness(self):
        for a in self.everyone:
            if not self._below_mm(a):
                continue
            self._count("accounts below MM probed")
            items = self._items(a)
            try:
                self.v.liquidate.call(a, items, {"from": self.deployer})
            except Exception as e:  # noqa: BLE001
                raise AssertionError(f"liveness: the proportional take {items} of {a:#x} is refused: "
                                     f"{getattr(e, 'revert_msg', e)}") from e
            self._count("liveness: accepted")

    # ------------------------------------------------------------------ invariants
    @invariant()
    def series_and_mirror(self):
        OptionSolvency.steps += 1
        accounts_ = [*self.everyone, self.fund]
        for slot in range(SLOTS):
            s = self.om.series(slot)
            sizes = [int(self.om.sizeOf(a, slot)) for a in accounts_]
            if s[4] == 0:
                assert sum(sizes) == 0, f"series {slot}: sizes do not sum to zero"
            assert int(s[5]) == sum(q for q in sizes if q > 0), f"series {slot}: long interest"
            assert int(s[6]) == -sum(q for q in sizes if q < 0), f"series {slot}: short interest"
        for a in accounts_:
            mask = int(self.v.optionsOf(a))
            held = {s for s in range(SLOTS) if int(self.om.sizeOf(a, s)) != 0}
            assert {s for s in range(32) if mask >> s & 1} == held, f"mask of {a:#x}"
            assert a == self.fund or len(held) <= 8
        value = 0
        for a, pair in self._mirror(accounts_).items():
            if pair is None:
                continue
            (e, mm, im), m = pair
            assert (e, mm, im) == (m.equity, m.maintenance, m.initial), f"vault margin of {a:#x} != the mirror's"
            value += m.equity
            self._count("mirror comparisons")
        held = int(self.p.usdc.balanceOf(self.v)) * 10**12 + int(self.v.badDebt())
        assert held >= value, "conservation: USDC held < settlement balances + option values"
        assert self.rewards <= self.penalties


record_failures(OptionSolvency)  # the campaign reports the first failure of a batch (see record_failures)
