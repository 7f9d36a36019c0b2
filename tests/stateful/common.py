"""Constants and transaction helpers shared by the stateful machine (machine.py) and its attacker (attacker.py), and the
failure recording of both state machines (machine.py, options.py)."""
from __future__ import annotations

import functools
import itertools

from brownie import web3
from brownie.network.event import _decode_logs

WAD = 10**18
OWNERS = 4  # honest owners, two subaccounts each
SUBS = 2
ATTACKER_SUBS = 3  # sub 0 also receives the attacker's keeper rewards
# Collaterals: 0 WBTC, 1 WETH, 2 WSOL, 3 LINK, 4 fee-on-transfer (priced as ETH), 5 no-return (priced as SOL),
# 6 DUST (asset 4, its own feed: the token the attacker deposits into other accounts and whose feed it breaks).
# The machine's token list puts USDC (the settlement token) after them.
NCOLL = 7
DUST = 6
DUST_ASSET = 4
USDC_T = NCOLL
HONEST_TOKENS = (0, 1, 2, 3, 4, 5, USDC_T)
# Markets: 0..3 the perpetuals on assets 0..3; market 4 a second ETH perpetual (two books on one asset).
NMARKETS = 5
SHARED_MARKET = 4
LOOSEN_DELAY = 600
BIG_GAS = 28_000_000  # a looper transaction (up to 25 liquidations)


_UNIQUE = itertools.count()
GAS_PRICE = 10 * 10**9  # legacy price above any base fee Ganache reaches here (Anvil runs with base fee 0)


def raw_send(fn, args, sender, data: str | None = None, gas: int = 5_000_000):
    """``fn(*args)`` (or raw ``data`` to ``fn``'s contract) as a plain eth_sendTransaction from an unlocked node
    account. Returns the receipt; a reverted transaction fails the step (every action is simulated first).

    The runs use no Brownie transaction object: it costs about twice as much, and Brownie 1.22 on Anvil now and then
    reported a transaction it had just sent as dropped while the node had mined it. The gas limit is unique in the
    process: every run replays from the same snapshot, and a transaction identical to one of an earlier, reverted run
    (same nonce, data and hash) must not be confused with it."""
    tx = {"from": sender.address, "to": fn._address, "data": data or fn.encode_input(*args),
          "gas": gas + next(_UNIQUE), "gasPrice": GAS_PRICE}
    receipt = web3.eth.wait_for_transaction_receipt(web3.eth.send_transaction(tx), timeout=60, poll_latency=0.02)
    assert receipt["status"] == 1, f"{fn._name}{args} reverted after a successful simulation"
    return receipt


class Sent:
    """A mined transaction: its receipt and its events decoded by Brownie (as ``tx.events``)."""

    def __init__(self, receipt):
        self.receipt = receipt
        self.events = _decode_logs(list(receipt["logs"]))


def send(fn, args, sender, gas: int = 5_000_000) -> Sent:
    return Sent(raw_send(fn, args, sender, gas=gas))


def account_id(owner, sub: int) -> int:
    address = owner if isinstance(owner, str) else owner.address
    return (int(address, 16) << 96) | sub


def record_failures(machine) -> None:
    """Wraps every rule and invariant of the state machine class ``machine`` so that the first exception of a failing
    step is recorded in ``machine.failures`` as (exception type name, where and what) before hypothesis replays and
    shrinks the sequence: chain time moves between the first run and the replay, so the replay can take another path
    (hypothesis then reports the failure as Flaky); the campaign (scripts/bench/fuzz.py) reports what actually failed.
    ``machine.last_rule`` names the rule an invariant failed after (the machine resets it at the start of a run)."""
    machine.failures = []
    machine.last_rule = "the start of the run"

    def recording(fn, is_rule):
        @functools.wraps(fn)
        def wrapper(self, *args, **kwargs):
            if is_rule:
                machine.last_rule = f"{fn.__name__}{kwargs or ''}"
            try:
                return fn(self, *args, **kwargs)
            except Exception as e:
                where = fn.__name__ + (str(kwargs) if kwargs else "")
                where += "" if is_rule else f" after {machine.last_rule}"
                machine.failures.append((type(e).__name__, f"{where}: {type(e).__name__}: {e}"[:1500]))
                raise

        return wrapper

    for r in [*machine.initialize_rules(), *machine.rules()]:
        r.function = recording(r.function, True)
    for i in machine.invariants():
        i.function = recording(i.function, False)
