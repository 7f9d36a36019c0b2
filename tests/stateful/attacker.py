"""The attacker of the stateful machine (a mixin of ``machine.Solvency``): one owner with capital in three
subaccounts, a wallet of tokens and a LiquidationLooper, trying to take value out of the vault, the insurance fund and
the other claim holders. Every attack goes through the machine's checked actions (``_trade``: R2, ``_liquidate``: R1
and E4, ``_deposit`` / ``_withdraw``, ``_set_answer``: a price move, E5), and the economic invariants E1-E3 judge its
effect after the step. Rules (``ATTACKER_RULES``; ``make fuzz`` fails unless each has run):

- attack_slice_liquidation: liquidations of 1 wei, a thousandth, exactly maxTake, one wei over it, the planner's
  plan, collateral only; repeated in separate calls;
- attack_loop_liquidation: the same slice N times in one transaction through the LiquidationLooper;
- attack_self_liquidation: a leveraged book between the attacker's subaccounts, pushed below MM, liquidated by the
  attacker itself (sub 0: the keeper account is the liquidated account);
- attack_wash_trade: opening, reducing, flipping and dumping positions between the attacker's subaccounts at the band
  edges, inside the band, at the oracle price and just outside;
- attack_shared_asset: a hedge across the two ETH markets (tiny margin), then one leg dumped at the band edge;
- attack_dust_deposit: dust of DUST or of a listed token deposited into another account, its feed then stale, zero
  or negative: the account still withdraws and is liquidated (R3), the unpriced collateral cannot be seized;
- attack_withdraw_race: an account pushed under water (beyond the fund's cover), then its write-off, the attacker's
  withdrawal, an honest holder's withdrawal and a fresh deposit in every order (E4: the same fraction for every
  claim at the write-off, full payment afterwards, no haircut on later deposits);
- attack_param_edits: every parameter family edited both ways (R5: at once only if no requirement can fall), with a
  twin call carrying extra calldata (no second queue entry), and a queued change that becomes a tightening (its
  entry is deleted when applied, so it cannot later be applied without a new delay).
"""
from __future__ import annotations

import logging

from brownie import web3
from eth_abi import decode as abi_decode
from hypothesis import strategies as st
from hypothesis.stateful import rule

from offchain.keeper.planner import LiquidationTerms as PlannerTerms
from offchain.keeper.planner import plan_liquidation
from offchain.margin.exact import BPS, MarginConfig, account_margin, settled, u16

from . import economics as econ
from .common import DUST, DUST_ASSET, LOOSEN_DELAY, NMARKETS, SHARED_MARKET, USDC_T, WAD, raw_send

log = logging.getLogger(__name__)

ATTACKER_RULES = ("attack_slice_liquidation", "attack_loop_liquidation", "attack_self_liquidation",
                  "attack_wash_trade", "attack_shared_asset", "attack_dust_deposit", "attack_withdraw_race",
                  "attack_param_edits")
MOVES = (2, 4, 7, 10, 15, 20, 30, 45, 60, 80)  # percent, tried in order until the account is where it should be
T_QUEUED = "0x" + bytes(web3.keccak(text="ChangeQueued(bytes32,bytes,uint256)")).hex().removeprefix("0x")
PARAM_FAMILIES = ("risk_weight_uncorrelated", "risk_weight_correlated", "correlation", "stress_append", "stress_edit",
                  "scalars", "haircut", "discount", "market", "liquidation", "band", "stale_queue")


def _max_amount(usd: int, price: int, unit: int) -> int:
    """The largest amount whose value floor(amount * price / unit) is at most ``usd``."""
    return ((usd + 1) * unit - 1) // price if price else 0


class AttackerRules:
    """Attacker rules; ``self`` is the machine (machine.Solvency)."""

    # ------------------------------------------------------------------ helpers
    def _below_mm(self):
        prices, cfg, markets = self._market()
        states = self._read_states("latest", self.margined)
        return [a for a in self.margined if account_margin(states[a], self.layout, prices, cfg, markets).liquidatable]

    def _push(self, acct, depth="mm"):
        """Move one price against ``acct`` (the asset of its largest exposure) until it is below MM (``depth`` "mm"),
        under water ("bankrupt") or under water by more than the fund can cover ("beyond_fund"), without a keeper
        pass: the attacker gets there first. True when it got there."""
        prices, cfg, markets = self._market()
        state = self._state(acct)
        fund = max(self._state(self.fund).settlement, 0)

        def there(m):
            return {"mm": m.liquidatable, "bankrupt": m.equity < 0, "beyond_fund": m.equity < -fund - 1000 * WAD}[depth]

        m = account_margin(state, self.layout, prices, cfg, markets)
        if there(m):
            return True
        for k in sorted(range(len(m.delta)), key=lambda k: -abs(m.delta[k])):
            if m.delta[k] == 0 or k == DUST_ASSET:
                continue
            answer = self._call(self.feeds[k].latestAnswer)
            for pct in MOVES:
                new = answer * (100 - pct if m.delta[k] > 0 else 100 + pct) // 100
                trial = list(prices)
                trial[k] = new * 10**10  # the feeds have 8 decimals
                if there(account_margin(state, self.layout, trial, cfg, markets)):
                    self._set_answer(k, new, keeper=False)
                    return there(account_margin(self._state(acct), self.layout, *self._market()))
        return False

    def _target(self, pick, depth="mm"):
        """An account below MM (pushing one there if none is), chosen by ``pick``."""
        below = self._below_mm()
        if below:
            return below[pick % len(below)]
        books = [a for a, s in self._read_states("latest", self.margined).items() if s.positions]
        for acct in books[pick % len(books):] + books[:pick % len(books)] if books else []:
            if self._push(acct, depth):
                return acct
        return None

    def _capital(self, acct, usd):
        """Top the attacker's subaccount up to ``usd`` of equity from its wallet."""
        e = account_margin(self._state(acct), self.layout, *self._market()).equity
        if e < usd * WAD:
            self._deposit(acct, USDC_T, (usd * WAD - e) // 10**12 + 1, self.attacker)

    def _slice(self, state, shape, allowed, prices, pick):
        """Liquidation items of one shape (see attack_slice_liquidation)."""
        positions = sorted((mk, q) for mk, (q, _) in state.positions.items() if q)
        priced = [(j, b) for j, b in sorted(state.collateral.items())
                  if b and prices[self.layout.collateral_asset[j]]]
        if shape == "collateral" or not positions:
            if not priced:
                return []
            j, bal = priced[pick % len(priced)]
            price, unit = prices[self.layout.collateral_asset[j]], 10 ** self.layout.collateral_decimals[j]
            amount = {"one_wei": 1, "small": _max_amount(allowed // 1000, price, unit),
                      "tenth": _max_amount(allowed // 10, price, unit)}.get(shape, _max_amount(allowed, price, unit))
            return [(1, j, max(min(amount + (shape == "over") * unit, bal), 1))]
        mk, q = positions[pick % len(positions)]
        price = prices[self.layout.market_asset[mk]]
        amount = {"one_wei": 1, "small": _max_amount(allowed // 1000, price, WAD),
                  "tenth": _max_amount(allowed // 10, price, WAD)}.get(shape, _max_amount(allowed, price, WAD))
        if shape == "over":
            amount += WAD * WAD // price + 1  # a dollar more than the rule allows
        return [(0, mk, max(min(amount, abs(q)), 1))]

    # ------------------------------------------------------------------ liquidations
    @rule(pick=st.integers(0, 15), shape=st.sampled_from(["one_wei", "small", "max", "over", "plan", "collateral"]),
          repeat=st.sampled_from([1, 3]))
    def attack_slice_liquidation(self, pick, shape, repeat):
        """Slices from 1 wei up to maxTake (and one over it), each call predicted by R1: rewards never exceed the
        slice's own penalty, the minimum reward only for a take of >= 99% of maxTake."""
        self._count("attack_slice_liquidation")
        acct = self._target(pick)
        if acct is None:
            return
        for _ in range(repeat):
            prices, cfg, markets = self._market()
            state = self._state(acct)
            m = account_margin(state, self.layout, prices, cfg, markets)
            if not m.liquidatable:
                return
            terms = self._terms()
            if shape == "plan":
                plan = plan_liquidation(settled(state, markets), self.layout, prices, cfg,
                                        PlannerTerms(terms.word, terms.discounts))
                items = plan.as_args() if plan else []
            else:
                allowed = econ.allowed_take(m.equity, m.maintenance, m.initial, m.gross_total, terms)
                items = self._slice(state, shape, allowed, prices, pick)
            self._liquidate(acct, items, self.attacker)

    @rule(pick=st.integers(0, 15), times=st.sampled_from([3, 10, 25]),
          shape=st.sampled_from(["one_wei", "small", "tenth"]))
    def attack_loop_liquidation(self, pick, times, shape):
        """The same slice ``times`` times in one transaction (LiquidationLooper): every call is a liquidation of its
        own, so the rewards are at most the sum of the slices' penalties (R1, E1, E2)."""
        self._count("attack_loop_liquidation")
        acct = self._target(pick)
        if acct is None:
            return
        prices, cfg, markets = self._market()
        state = self._state(acct)
        m = account_margin(state, self.layout, prices, cfg, markets)
        allowed = econ.allowed_take(m.equity, m.maintenance, m.initial, m.gross_total, self._terms())
        items = self._slice(state, shape, allowed, prices, pick)
        if items:
            self._liquidate(acct, items, self.attacker, times=times)

    @rule(sub=st.sampled_from([0, 1]), market=st.integers(0, NMARKETS - 1), lev=st.sampled_from([3, 5, 8]),
          long=st.booleans(), take=st.sampled_from(["plan", "max", "slices", "loop"]),
          rescue=st.sampled_from([None, "favourable", "oracle", "worse"]))
    def attack_self_liquidation(self, sub, market, lev, long, take, rescue):
        """A leveraged book between two of the attacker's subaccounts; the price moves against one; the attacker
        liquidates it itself (sub 0: its own keeper account), earning at most the penalty it pays. ``rescue``: first
        the account below MM (so below IM) sells a third of its book to its sibling at a price good for it, at the
        oracle price or at a worse one (R2: accepted below IM only for a pure reduction at no worse than the oracle
        price that raises E - MM)."""
        self._count("attack_self_liquidation")
        a, b = self.attacker_accounts[sub], self.attacker_accounts[2]
        if not self._state(a).positions:
            self._capital(a, 10_000)
            self._capital(b, 40_000)
            equity = account_margin(self._state(a), self.layout, *self._market()).equity
            oracle = self._price(self.layout.market_asset[market])
            size = lev * equity * WAD // oracle
            for _ in range(4):  # the largest of 4 sizes the trade rule accepts
                ok, _, _ = self._trade(*((a, b) if long else (b, a)), market, size, oracle)
                if ok:
                    break
                size //= 2
        if not self._push(a):
            return
        if rescue:
            q = self._state(a).positions.get(market, (0, 0))[0]
            oracle, edge = self._band_price(market, "edge_high")
            price = {"favourable": edge, "oracle": oracle, "worse": 2 * oracle - edge}[rescue]
            if q > 0:  # a sells: a higher price is good for it
                self._trade(b, a, market, q // 3, price)
            elif q < 0:  # a buys: a lower price is good for it
                self._trade(a, b, market, -q // 3, 2 * oracle - price)
        prices, cfg, markets = self._market()
        state = self._state(a)
        m = account_margin(state, self.layout, prices, cfg, markets)
        terms = self._terms()
        allowed = econ.allowed_take(m.equity, m.maintenance, m.initial, m.gross_total, terms)
        if take == "plan":
            plan = plan_liquidation(settled(state, markets), self.layout, prices, cfg,
                                    PlannerTerms(terms.word, terms.discounts))
            self._liquidate(a, plan.as_args() if plan else [], self.attacker)
        elif take == "loop":
            self._liquidate(a, self._slice(state, "tenth", allowed, prices, 0), self.attacker, times=10)
        else:
            for _ in range(1 if take == "max" else 4):
                state = self._state(a)
                m = account_margin(state, self.layout, prices, cfg, markets)
                if not m.liquidatable:
                    break
                allowed = econ.allowed_take(m.equity, m.maintenance, m.initial, m.gross_total, terms)
                self._liquidate(a, self._slice(state, "max" if take == "max" else "tenth", allowed, prices, 0),
                                self.attacker)

    # ------------------------------------------------------------------ trades between one owner's subaccounts
    def _band_price(self, market, where):
        oracle = self._price(self.layout.market_asset[market])
        half = oracle * ((self._control() >> 8) & 0xFFFF) // BPS
        return oracle, {"edge_low": oracle - half, "edge_high": oracle + half, "inside_low": oracle - half // 3,
                        "inside_high": oracle + half // 3, "oracle": oracle, "outside": oracle + half + 1}[where]

    @rule(market=st.integers(0, NMARKETS - 1),
          where=st.sampled_from(["edge_low", "edge_high", "inside_low", "inside_high", "oracle", "outside"]),
          shape=st.sampled_from(["open", "reduce", "flip", "dump"]), usd=st.sampled_from([1_000, 20_000, 150_000,
                                                                                            600_000]),
          subs=st.sampled_from([(0, 1), (1, 2), (2, 1), (1, 0), (0, 2)]))
    def attack_wash_trade(self, market, where, shape, usd, subs):
        """Wash and reduce-only trades between the attacker's subaccounts at every point of the band (R2: a side
        left below IM only by a pure reduction at no worse than the oracle price that raises E - MM, E >= 0)."""
        self._count("attack_wash_trade")
        a, b = (self.attacker_accounts[s] for s in subs)
        oracle, price = self._band_price(market, where)
        q = self._state(a).positions.get(market, (0, 0))[0]
        size = usd * WAD * WAD // oracle
        if shape == "open" or q == 0:
            buyer, seller = (a, b) if usd % 3 else (b, a)
        elif shape == "dump":  # a's whole position to b at the worst edge for a
            size = abs(q)
            buyer, seller = (b, a) if q > 0 else (a, b)
            price = oracle - (price - oracle if price > oracle else oracle - price) * (1 if q > 0 else -1)
        else:
            size = min(size, abs(q)) if shape == "reduce" else abs(q) + size
            buyer, seller = (b, a) if q > 0 else (a, b)
        if size:
            self._trade(buyer, seller, market, size, price)

    @rule(where=st.sampled_from(["edge_low", "edge_high", "inside_low", "oracle"]), leg=st.sampled_from([1, 4]),
          usd=st.sampled_from([50_000, 400_000, 1_250_000]), subs=st.sampled_from([(1, 2), (2, 1), (0, 1)]))
    def attack_shared_asset(self, where, leg, usd, subs):
        """Markets 1 and 4 share ETH: long one and short the other is a hedge needing almost no margin (the basis
        add-on). Build one of up to ``usd`` a side between two subaccounts (as large as their margin allows: 60x
        ``a``'s equity), then close one leg of it (a pure reduction for both) at the band edge worst for ``a``: a 2%
        loss on the leg exceeds ``a``'s equity. R2 refuses whatever would leave ``a`` below IM after a fill worse than
        the oracle price; E1 and E3 would see the bankruptcy."""
        self._count("attack_shared_asset")
        a, b = (self.attacker_accounts[s] for s in subs)
        self._capital(a, 20_000)
        self._capital(b, 40_000)
        self._build_hedge(a, b, usd)
        q = self._state(a).positions.get(leg, (0, 0))[0]
        if q == 0:
            return
        oracle, price = self._band_price(leg, where)
        worse = abs(price - oracle)  # on the side of the oracle price that is worse for a
        if q > 0:
            self._trade(b, a, leg, abs(q), oracle - worse)  # a sells its long leg
        else:
            self._trade(a, b, leg, abs(q), oracle + worse)  # a buys back its short leg

    def _build_hedge(self, a, b, usd):
        """``a`` long market 1 and short market 4 (``b`` the other sides), ``usd`` a side or as much as both can
        margin: each round opens the long leg as large as the headroom above IM of both allows, then the short leg."""
        for _ in range(24):
            prices, cfg, markets = self._market()
            oracle = prices[1]
            held = abs(self._state(a).positions.get(1, (0, 0))[0]) * oracle // WAD
            headroom = min(self._headroom(a, prices, cfg, markets), self._headroom(b, prices, cfg, markets))
            chunk = min(usd * WAD - held, headroom * 100 // 21) * WAD // oracle  # an unhedged ETH leg needs ~18% IM
            if chunk * oracle < 1_000 * WAD * WAD:
                return
            if not self._trade(a, b, 1, chunk, oracle)[0]:  # a long market 1
                return
            if not self._trade(b, a, SHARED_MARKET, chunk, oracle)[0]:  # a short market 4
                return

    def _headroom(self, acct, prices, cfg, markets):
        m = account_margin(self._state(acct), self.layout, prices, cfg, markets)
        return m.equity - m.initial

    # ------------------------------------------------------------------ dust and unpriced collateral (R3)
    @rule(victim=st.integers(0, 12), token=st.sampled_from(["dust", "wbtc", "weth"]),
          kind=st.sampled_from(["stale", "zero", "negative"]), amount=st.sampled_from(["wei", "thousand", "dollar"]),
          push=st.booleans())
    def attack_dust_deposit(self, victim, token, kind, amount, push):
        """The attacker deposits dust of a token into another account, then the token's feed breaks: the account is
        valued without it, can still withdraw, and is still liquidated (while below MM, some liquidation goes
        through, the keeper's plan first); the unpriced dust cannot be seized."""
        self._count("attack_dust_deposit")
        acct = self.margined[victim % len(self.margined)]
        j = {"dust": DUST, "wbtc": 0, "weth": 1}[token]
        asset = self.layout.collateral_asset[j]
        if asset in self._assets_of(acct, positions_only=True):
            j, asset = DUST, DUST_ASSET  # R3 keeps the oracle's error for an asset the account trades
        if push and self._state(acct).positions:
            self._push(acct)
        had = self._state(acct).collateral.get(j, 0)
        dust = self._deposit(acct, j, {"wei": 1, "thousand": 1000}.get(amount) or self._amount(j, 1), self.attacker)
        expected = "PriceStale" if kind == "stale" else "PriceNotPositive"
        with self._broken_feed(asset, kind):
            self._check_broken_asset(acct, asset, expected)
            terms = self._terms()
            for _ in range(4):  # liquidated for real while the feed is broken
                prices, cfg, markets = self._market()
                state = self._state(acct)
                m = account_margin(state, self.layout, prices, cfg, markets)
                if not m.liquidatable:
                    break
                if not self._seizable(state, prices):
                    # only unpriced collateral is left: a bankrupt account whose unpriced collateral is dust at its
                    # feed's last answer is written off by a call naming nothing (R3: the attacker's dust never
                    # blocks it; R4: the loss is marked in one call); collateral worth more waits for its feed
                    last = self._last_prices()
                    o = econ.liquidation_outcome(state, [], self.layout, prices, cfg, terms, index=self._index(),
                                                 last_prices=last, markets=markets)
                    ok, msg = self._simulate(self.v.liquidate, (acct, []), self.keeper)
                    assert ok == (o.error == ""), f"R3/R4: write-off of {acct:#x} with only unpriced collateral: " \
                        f"rule {o.error or 'ok'}, vault {msg or 'ok'} (state {state.canonical()}, last {last})"
                    if m.equity < 0 and had == 0 and dust and set(state.collateral) == {j}:
                        assert ok, f"R3/R4: the attacker's {dust} units of {j} (feed {kind}) block a write-off"
                    if ok:
                        self._tally("R4 write-off with unpriced dust")
                        ok, msg, _, _ = self._liquidate(acct, [], self.keeper)
                        assert ok, msg
                    break
                plan = plan_liquidation(settled(state, markets), self.layout, prices, cfg,
                                        PlannerTerms(terms.word, terms.discounts))
                witness = econ.proportional_items(state, self.layout, prices, cfg, terms, markets)
                assert plan is not None, f"R3: {acct:#x} is below MM with unpriced collateral and the planner finds " \
                    f"no liquidation; the rule's witness {witness}: " \
                    f"{econ.liquidation_outcome(state, witness, self.layout, prices, cfg, terms, markets=markets)}; " \
                    f"state " \
                    f"{state.canonical()}, prices {prices}"
                ok, msg, _, _ = self._liquidate(acct, plan.as_args(), self.keeper)
                assert ok, msg
            s = self._state(acct)
            if self._eoa(acct) is not None and s.settlement > self.scale:  # and withdraws for real (its owner)
                self._withdraw(acct, USDC_T, max(s.settlement, 0) // self.scale // 100 + 1, self._eoa(acct))

    # ------------------------------------------------------------------ withdrawals racing a write-off (E4)
    @rule(pick=st.integers(0, 15), order=st.permutations(range(4)), frac=st.sampled_from([30, 100]),
          depth=st.sampled_from(["bankrupt", "beyond_fund"]))
    def attack_withdraw_race(self, pick, order, frac, depth):
        """An account goes under water (beyond what the fund can cover, or not); its write-off, the attacker's
        withdrawal, an honest holder's withdrawal and a fresh deposit race in every order. Whoever still holds a
        positive settlement balance at the write-off bears the same fraction (E4, checked in _liquidate); every
        withdrawal pays in full; a deposit after the write-off is not haircut (checked in _deposit)."""
        self._count("attack_withdraw_race")
        books = [a for a, s in self._read_states("latest", self.margined).items() if s.positions]
        if not books:
            return
        victim = next((a for a in books[pick % len(books):] + books[:pick % len(books)] if self._push(a, depth)), None)
        if victim is None:
            return
        self._capital(self.attacker_accounts[1], 5_000)
        holders = sorted((a for a in self.accounts if a != victim), key=lambda a: -self._state(a).settlement)
        for step in order:
            if step == 0:  # the write-off: everything taken in one call (E < 0: maxTake is everything)
                prices, cfg, markets = self._market()
                s = self._state(victim)
                items = [(0, mk, abs(q)) for mk, (q, _) in sorted(s.positions.items()) if q]
                items += [(1, j, b) for j, b in sorted(s.collateral.items()) if b]
                if account_margin(s, self.layout, prices, cfg, markets).liquidatable:
                    ok, msg, _, _ = self._liquidate(victim, items, self.keeper)
                    assert ok or not account_margin(s, self.layout, prices, cfg, markets).equity < 0, \
                        f"R4: a bankrupt account could not be written off in one call: {msg}"
            elif step in (1, 2):
                acct = self.attacker_accounts[1] if step == 1 else holders[0]
                sender = self.attacker if step == 1 else self.owners[self.accounts.index(acct) // 2]
                amount = max(self._state(acct).settlement, 0) // self.scale * frac // 100
                if amount:
                    self._withdraw(acct, USDC_T, amount, sender)
            else:
                self._deposit(holders[-1], USDC_T, 1_000 * 10**6 + pick, self.deployer)
        self.keeper_pass(100)

    # ------------------------------------------------------------------ parameter edits (R5)
    def _r5(self, fn_name, args):
        """R5: does the call apply at once (True) or is it queued (False)?"""
        cfg = MarginConfig.from_chain(self._call(self.params.marginConfig))
        if fn_name == "setRiskWeight":
            a, w = args
            return w >= cfg.risk_weight(a) and all(cfg.correlation(a, b) == 0 for b in range(8) if b != a)
        if fn_name == "setStressVector":
            return args[0] == cfg.num_stress
        if fn_name == "setMarginScalars":
            return all(n >= u16(cfg.global_word, 8 + i) for i, n in enumerate(args))
        if fn_name == "setHaircut":
            return args[1] >= cfg.haircut(args[0])
        if fn_name == "setMarket":
            w = int(self._call(self.params.marketWord, args[0]))
            return args[1] >= w & 0xFFFF and args[2] <= (w >> 16) & (2**112 - 1) and args[3] <= w >> 128
        if fn_name == "setPriceBand":
            return args[0] <= (self._control() >> 8) & 0xFFFF
        return False  # correlations, stress edits and pops, discounts, the liquidation word: always queued

    def _param_call(self, fn, args, twin=False):
        """One setter call by the risk admin (``twin``: with 32 extra calldata bytes, sent raw). Checks R5: applied
        at once (and its queue entry deleted) or queued under the canonical id, with the canonical call in
        ChangeQueued; a call already queued and not ready is refused (ChangeNotReady) with that same id.
        Returns "applied", "queued" or "not_ready"."""
        canonical = fn.encode_input(*args)
        ident = bytes(web3.keccak(hexstr=canonical))
        data = canonical + "00" * 32 if twin else canonical
        at_once = self._r5(fn._name.split(".")[-1], args)
        ready = int(self._call(self.params.readyAt, ident))
        ok, msg = self._simulate(fn, args, self.deployer, data=data)
        if not ok:
            assert msg.startswith("ChangeNotReady") and ready and not at_once, f"R5: {fn._name}{args}: {msg}"
            assert str(ident) in msg, f"R5: a twin call was refused under another id than the canonical one: {msg}"
            return "not_ready"
        before = self._call(self.params.marginConfig), self._call(self.params.liquidationConfig), \
            self._control()
        receipt = raw_send(fn, args, self.deployer, data=data)
        type(self).done[fn._name] = type(self).done.get(fn._name, 0) + 1
        queued = [lg for lg in receipt["logs"] if lg["topics"] and "0x" + lg["topics"][0].hex().removeprefix("0x")
                  == T_QUEUED]
        if at_once or (ready and ready <= web3.eth.get_block(receipt["blockNumber"])["timestamp"]):
            assert not queued, f"R5: {fn._name}{args} should apply at once, it was queued"
            assert int(self._call(self.params.readyAt, ident)) == 0, "R5: applying a change must delete its queue entry"
            return "applied"
        assert queued, f"R5: {fn._name}{args} can lower a requirement but applied at once"
        after = self._call(self.params.marginConfig), self._call(self.params.liquidationConfig), \
            self._control()
        assert before == after, f"R5: a queued change of {fn._name} moved a parameter"
        lg = queued[0]
        assert bytes(lg["topics"][1]) == ident, "R5: the queue id is not keccak256 of the canonical call"
        (call, _), = [abi_decode(["bytes", "uint256"], bytes(lg["data"]))]
        assert call == bytes.fromhex(canonical[2:]), "R5: ChangeQueued does not carry the canonical call"
        assert int(self._call(self.params.readyAt, ident)) > 0
        return "queued"

    def _family(self, family, up, step, pick):
        """(setter, args) of one edit of ``family``; ``up``: the direction that raises requirements."""
        cfg = MarginConfig.from_chain(self._call(self.params.marginConfig))
        liq, disc = (int(x) for x in self._call(self.params.liquidationConfig))
        sign = 1 if up else -1
        p = self.params
        clamp = lambda x, lo, hi: min(max(x, lo), hi)  # noqa: E731
        if family == "risk_weight_uncorrelated":  # asset 4 (uncorrelated unless an edit below correlated it)
            return p.setRiskWeight, (DUST_ASSET, clamp(cfg.risk_weight(DUST_ASSET) + sign * 100 * step, 100, 5000))
        if family == "risk_weight_correlated":
            a = pick % 4
            return p.setRiskWeight, (a, clamp(cfg.risk_weight(a) + sign * 100 * step, 100, 3000))
        if family == "correlation":
            a, b = ((0, 1), (1, 2), (0, DUST_ASSET))[pick % 3]
            return p.setCorrelation, (a, b, clamp(cfg.correlation(a, b) + sign * 500 * step, -10_000, 10_000))
        if family == "stress_append":  # up: a new vector (at most 12 in all), down: the last one popped
            if up and cfg.num_stress < 12:
                shocks = [0] * 8
                shocks[DUST_ASSET if pick % 2 else pick % 4] = -500 * step
                return p.setStressVector, (cfg.num_stress, shocks)
            return p.popStressVector, ()
        if family == "stress_edit":
            shocks = [cfg.shock(0, k) for k in range(8)]
            shocks[pick % 4] = clamp(shocks[pick % 4] - sign * 100 * step, -10_000, 10_000)
            return p.setStressVector, (0, shocks)
        if family == "scalars":
            return p.setMarginScalars, (clamp(cfg.alpha + sign * 500 * step, 10_000, 30_000),
                                        clamp(cfg.basis_addon + sign * 10 * step, 0, 2000),
                                        clamp(cfg.floor_rate + sign * 10 * step, 0, 5000))
        if family == "haircut":
            j = pick % 6
            return p.setHaircut, (j, clamp(cfg.haircut(j) + sign * 250 * step, u16(disc, j), 5000))
        if family == "discount":
            j = pick % 6
            return p.setLiquidationDiscount, (j, clamp(u16(disc, j) - sign * 50 * step, 0, cfg.haircut(j)))
        if family == "market":
            m = pick % NMARKETS
            w = int(self._call(self.params.marketWord, m))
            rate, oi, pos = w & 0xFFFF, (w >> 16) & (2**112 - 1), w >> 128
            f = 2**step
            return p.setMarket, (m, clamp(rate + sign * 100 * step, 10, 10_000), oi // f if up else oi * f,
                                 pos // f if up else pos * f)
        if family == "liquidation":
            t = econ.LiquidationTerms(liq, disc)
            return p.setLiquidation, (t.close_factor, clamp(t.penalty + sign * 50 * step, 0, 2000), t.keeper_share,
                                      t.deep, t.min_reward, t.dust)
        if family == "band":
            return p.setPriceBand, (clamp(((self._control() >> 8) & 0xFFFF) - sign * 25 * step, 50, 500),)
        raise ValueError(family)

    @rule(family=st.sampled_from(PARAM_FAMILIES), up_first=st.booleans(), twin=st.booleans(), apply=st.booleans(),
          step=st.integers(1, 4), pick=st.integers(0, 11))
    def attack_param_edits(self, family, up_first, twin, apply, step, pick):
        """Edits in both directions (R5), the first one sent as a twin with extra calldata when ``twin`` (it must
        share the canonical call's queue entry), queued changes applied after the delay when ``apply``; then the
        guardian cancels what is left. ``stale_queue``: a queued widening of the band that later applies at once as a
        narrowing must lose its queue entry, so widening to it again waits for a new delay."""
        self._count("attack_param_edits")
        mine = []
        if family == "stale_queue":
            self._stale_queue(step)
        else:
            for up in (up_first, not up_first):
                fn, args = self._family(family, up, step, pick)
                result = self._param_call(fn, args, twin=twin and up == up_first)
                if result == "queued":
                    mine.append((fn, args))
                    if twin:  # the canonical call now finds the twin's entry: not ready, no new entry
                        assert self._param_call(fn, args) == "not_ready"
                    if apply:
                        self._after_delay()
                        assert self._param_call(fn, args) == "applied"
                        mine.pop()
                if result != "queued" or apply:
                    self.keeper_pass(100)  # a change in force may have raised requirements
        for fn, args in mine:
            ident = bytes(web3.keccak(hexstr=fn.encode_input(*args)))
            if int(self._call(self.params.readyAt, ident)):
                ok, msg, _ = self._try(self.params.cancel, ident, sender=self.guardian)
                assert ok, msg
                assert self._param_call(fn, args, twin=True) == "queued", "R5: a cancelled change needs a new delay"
                ok, msg, _ = self._try(self.params.cancel, ident, sender=self.guardian)
                assert ok, msg
        self.queued = [q for q in self.queued if self._call(self.params.readyAt, q[5])]  # entries applied here are gone

    def _after_delay(self):
        self._sleep(LOOSEN_DELAY + 1)

    def _stale_queue(self, step):
        p = self.params
        for q in [q for q in self.queued if q[0] == "price_band"]:  # start from no queued band change
            ok, msg, _ = self._try(p.cancel, q[5], sender=self.guardian)
            assert ok, msg
            self.queued.remove(q)
        band = (self._control() >> 8) & 0xFFFF
        lo, hi = min(band, 400), min(band, 400) + 25 * step
        if band != lo:
            assert self._param_call(p.setPriceBand, (lo,)) == "applied"
        mid = (lo + hi) // 2
        assert self._param_call(p.setPriceBand, (mid,)) == "queued"  # a widening waits
        assert self._param_call(p.setPriceBand, (hi,)) == "queued"
        self._after_delay()
        assert self._param_call(p.setPriceBand, (hi,)) == "applied"
        assert self._param_call(p.setPriceBand, (mid,)) == "applied"  # now a narrowing: at once, its entry deleted
        assert self._param_call(p.setPriceBand, (lo,)) == "applied"
        assert self._param_call(p.setPriceBand, (mid,)) == "queued", \
            "R5: a widening was applied through a queue entry left over from before (no new delay)"
        ident = bytes(web3.keccak(hexstr=p.setPriceBand.encode_input(mid)))
        ok, msg, _ = self._try(p.cancel, ident, sender=self.guardian)
        assert ok, msg
        self.keeper_pass(100)
