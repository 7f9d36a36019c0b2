"""OrderSettlement: every entry point (settle, cancel, cancelAllBefore, setFees, hashOrder) and every revert path,
with exact custom-error matching, plus the vault checks a settled trade goes through (band, caps, margin, pause).

Reverting `settle` calls are mostly checked with `settle.call(...)`: the same code on the latest block, without the
debug_traceTransaction Brownie runs on every reverted transaction (slow when the revert comes from deep in the
margin computation). A few are real transactions, to show the mined revert is the same."""
from __future__ import annotations


import brownie
import pytest
from brownie import OrderSettlement, accounts, chain, web3
from brownie.exceptions import VirtualMachineError
from eth_abi import encode
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_keys import keys

from tests.fixture_spec import FIXTURE_SPEC
from offchain.orders import Order, next_free_nonce, sign_order, typed_data
from offchain.margin.exact import AccountState, account_margin
from tests.conftest import NOW, Trader, err, reverts_at

WAD = 10**18
USDC = 10**6
BPS = 10_000
MAKER_BPS, TAKER_BPS = 2, 5
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
BTC, ETH = 0, 1


# ---------------------------------------------------------------------------------------------- helpers


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def sdiv(a: int, b: int) -> int:
    """Solidity signed division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def fee(fill: int, price: int, bps: int) -> int:
    """Fee as the venue computes it: notional rounded up, then the rate rounded up."""
    return ceil_div(ceil_div(fill * price, WAD) * bps, BPS)


@pytest.fixture
def venue(protocol):
    return protocol.venue


@pytest.fixture
def submitter():
    return accounts[2]


class Traders(list):
    """The module's traders: four with 100,000 USDC and gas (indexable), plus `small` (1,000 USDC), `medium`
    (10,000 USDC) and `weth_only` (2 WETH, no USDC), without gas (they only sign)."""


@pytest.fixture(scope="module")
def traders(protocol, deployer):
    """Created once per module (every test reverts to this state) to keep the suite fast."""
    usdc, vault, tx = protocol.usdc, protocol.vault, {"from": deployer}
    out = Traders(Trader(vault) for _ in range(4))
    out.small, out.medium, out.weth_only = Trader(vault), Trader(vault), Trader(vault)
    amounts = [(t, 100_000 * USDC) for t in out] + [(out.small, 1_000 * USDC), (out.medium, 10_000 * USDC)]
    total = sum(a for _, a in amounts)
    usdc.mint(deployer, total, tx)
    usdc.approve(vault, total, tx)
    for t, amount in amounts:
        vault.deposit(t.id, usdc, amount, tx)
    for t in out:
        deployer.transfer(t.wallet, "1 ether")
    weth = protocol.tokens[1]
    weth.mint(deployer, 2 * WAD, tx)
    weth.approve(vault, 2 * WAD, tx)
    vault.deposit(out.weth_only.id, weth, 2 * WAD, tx)
    return out


@pytest.fixture
def trade(venue, order, sign, submitter):
    """trade(maker, taker, market, taker_buys, size, price, fill=None) -> (tx, maker_order, taker_order)."""

    def _trade(maker, taker, market, taker_buys, size, price, fill=None, taker_limit=None):
        mo = order(maker.id, market, not taker_buys, size, price)
        to = order(taker.id, market, taker_buys, size, price if taker_limit is None else taker_limit)
        tx = venue.settle(mo, sign(mo, maker.wallet), to, sign(to, taker.wallet), size if fill is None else fill,
                          {"from": submitter})
        return tx, mo, to

    return _trade


def signed_pair(order, sign, maker, taker, market, taker_buys, size, price):
    mo = order(maker.id, market, not taker_buys, size, price)
    to = order(taker.id, market, taker_buys, size, price)
    return mo, sign(mo, maker.wallet), to, sign(to, taker.wallet)


def pos(vault, account, market):
    """(size, openNotional) as plain ints."""
    size, on = vault.positionOf(account, market)
    return int(size), int(on)


def oracle_price(protocol, asset):
    return int(protocol.oracle.price(asset))


# ---------------------------------------------------------------------------------------------- hashOrder
def test_hash_order_matches_offchain_eip712_digest(venue, order, make_trader):
    o = order(make_trader().id, 2, True, 3 * WAD, 151 * WAD, expiry=2_000_000_000, nonce=77)
    digest = _hash_eip191_message(encode_typed_data(full_message=typed_data(o, chain.id, venue.address)))
    assert bytes(venue.hashOrder(o)) == bytes(digest)
    # and by hand: keccak(0x1901 || domainSeparator || structHash)
    typehash = web3.keccak(
        text="Order(uint256 account,uint256 market,bool isBuy,uint256 size,uint256 limitPrice,uint256 expiry,"
        "uint256 nonce)"
    )
    assert bytes(venue.ORDER_TYPEHASH()) == bytes(typehash)
    domain = web3.keccak(encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [web3.keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
         web3.keccak(text="xmargin OrderSettlement"), web3.keccak(text="1"), chain.id, venue.address],
    ))
    struct = web3.keccak(encode(["bytes32"] + ["uint256", "uint256", "bool"] + ["uint256"] * 4, [typehash, *o]))
    assert bytes(venue.hashOrder(o)) == bytes(web3.keccak(b"\x19\x01" + domain + struct))


def test_hash_order_changes_with_every_field(venue, order, make_trader):
    o = order(make_trader().id, 1, False, WAD, 3000 * WAD, expiry=2_000_000_000, nonce=5)
    hashes = {bytes(venue.hashOrder(o))}
    for i, field in enumerate(Order._fields):
        changed = list(o)
        changed[i] = (not o[i]) if field == "isBuy" else o[i] + 1
        hashes.add(bytes(venue.hashOrder(Order(*changed))))
    assert len(hashes) == 1 + len(Order._fields)


# ---------------------------------------------------------------------------------------------- fills
def test_settle_full_fill_opens_opposite_positions(protocol, venue, traders, trade):
    vault = protocol.vault
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    tx, mo, to = trade(b, a, BTC, True, WAD // 2, p)  # b makes a sell, a takes (buys)
    notional = WAD // 2 * p // WAD
    assert pos(vault, a.id, BTC) == (WAD // 2, notional)
    assert pos(vault, b.id, BTC) == (-(WAD // 2), -notional)
    assert pos(vault, a.id, BTC)[0] + pos(vault, b.id, BTC)[0] == 0
    assert vault.openInterest(BTC) == WAD // 2
    mh, th = venue.hashOrder(mo), venue.hashOrder(to)
    # filled whole at the first settlement: recorded by the nonces' bits alone, no fill record of their own
    assert venue.filledOf(mo) == WAD // 2 and venue.filledOf(to) == WAD // 2
    assert venue.filled(mh) == 0 and venue.filled(th) == 0
    assert venue.nonceBitmap(b.id, mo.nonce >> 8) >> (mo.nonce & 0xFF) & 1 == 1
    assert venue.nonceBitmap(a.id, to.nonce >> 8) >> (to.nonce & 0xFF) & 1 == 1
    filled = [(e["orderHash"], e["account"], e["fill"], e["filledTotal"]) for e in tx.events["OrderFilled"]]
    assert filled == [(mh, b.id, WAD // 2, WAD // 2), (th, a.id, WAD // 2, WAD // 2)]
    t = tx.events["Trade"]
    assert (t["buyer"], t["seller"], t["market"], t["size"], t["price"]) == (a.id, b.id, BTC, WAD // 2, p)
    assert t["fees"] == fee(WAD // 2, p, MAKER_BPS) + fee(WAD // 2, p, TAKER_BPS)


def test_settle_fees_rounded_up_paid_to_fund(protocol, venue, traders, trade):
    vault = protocol.vault
    fund_id = vault.fundAccount()
    a, b = traders[:2]
    p = oracle_price(protocol, BTC) + 123_456_789  # not a round number
    size = WAD // 3  # 0.333.. BTC: the notional has a fractional part
    fund_before = vault.settlementOf(fund_id)
    sa, sb = vault.settlementOf(a.id), vault.settlementOf(b.id)
    tx, _, _ = trade(a, b, BTC, False, size, p)  # a makes a buy, b takes (sells)
    exact = size * p
    assert exact % WAD != 0
    notional = exact // WAD + 1
    maker_fee = ceil_div(notional * MAKER_BPS, BPS)
    taker_fee = ceil_div(notional * TAKER_BPS, BPS)
    assert (notional * MAKER_BPS) % BPS != 0 and (notional * TAKER_BPS) % BPS != 0  # both really round up
    assert vault.settlementOf(a.id) == sa - maker_fee
    assert vault.settlementOf(b.id) == sb - taker_fee
    assert vault.settlementOf(fund_id) == fund_before + maker_fee + taker_fee
    assert tx.events["Trade"]["fees"] == maker_fee + taker_fee


def test_settle_partial_fills_tracked_in_filled(protocol, venue, traders, order, sign, submitter):
    a, b, c = traders[:3]
    p = oracle_price(protocol, ETH)
    maker = order(a.id, ETH, False, 10 * WAD, p)
    msig = sign(maker, a.wallet)
    mh = venue.hashOrder(maker)
    t1 = order(b.id, ETH, True, 3 * WAD, p)
    t2 = order(c.id, ETH, True, 10 * WAD, p)
    venue.settle(maker, msig, t1, sign(t1, b.wallet), 3 * WAD, {"from": submitter})
    assert venue.filled(mh) == 3 * WAD
    tx = venue.settle(maker, msig, t2, sign(t2, c.wallet), 4 * WAD, {"from": submitter})
    assert venue.filled(mh) == 7 * WAD
    assert venue.filled(venue.hashOrder(t2)) == 4 * WAD
    assert tx.events["OrderFilled"][0]["filledTotal"] == 7 * WAD
    venue.settle(maker, msig, t2, sign(t2, c.wallet), 3 * WAD, {"from": submitter})
    assert venue.filled(mh) == 10 * WAD
    assert pos(protocol.vault, a.id, ETH)[0] == -10 * WAD
    assert pos(protocol.vault, b.id, ETH)[0] == 3 * WAD
    assert pos(protocol.vault, c.id, ETH)[0] == 7 * WAD


def test_settle_beyond_remaining_size_reverts_overfilled(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    p = oracle_price(protocol, ETH)
    maker = order(a.id, ETH, False, 2 * WAD, p)
    taker = order(b.id, ETH, True, 5 * WAD, p)
    ms, ts = sign(maker, a.wallet), sign(taker, b.wallet)
    venue.settle(maker, ms, taker, ts, WAD + 1, {"from": submitter})
    with brownie.reverts(err("OrderOverfilled", venue.hashOrder(maker), WAD + 1, WAD, 2 * WAD)):
        venue.settle.call(maker, ms, taker, ts, WAD, {"from": submitter})
    venue.settle(maker, ms, taker, ts, WAD - 1, {"from": submitter})  # exactly the remainder
    assert venue.filled(venue.hashOrder(maker)) == 2 * WAD == venue.filledOf(maker)
    with brownie.reverts(err("OrderOverfilled", venue.hashOrder(maker), 2 * WAD, 1, 2 * WAD)):
        venue.settle.call(maker, ms, taker, ts, 1, {"from": submitter})  # filled in parts to the end: no more


def test_settle_replayed_signatures_revert_nonce_used(protocol, venue, traders, order, sign, submitter):
    """Orders filled whole at their first settlement: replaying them (together, or one against a fresh counterparty)
    finds their nonces used."""
    a, b = traders[:2]
    mo, ms, to, ts = signed_pair(order, sign, a, b, BTC, True, WAD // 4, oracle_price(protocol, BTC))
    venue.settle(mo, ms, to, ts, WAD // 4, {"from": submitter})
    with brownie.reverts(err("NonceUsed", a.id, mo.nonce)):
        venue.settle.call(mo, ms, to, ts, WAD // 4, {"from": submitter})
    # the taker order alone, against a fresh maker, is replayed too
    c = traders[2]
    mo2 = order(c.id, BTC, False, WAD // 4, mo.limitPrice)
    with brownie.reverts(err("NonceUsed", b.id, to.nonce)):
        venue.settle.call(mo2, sign(mo2, c.wallet), to, ts, 1, {"from": submitter})
    assert pos(protocol.vault, b.id, BTC)[0] == WAD // 4


@pytest.mark.parametrize("first", ["whole", "part", "cancel"])
def test_a_nonce_names_one_order(protocol, venue, traders, order, sign, submitter, first):
    """Once an account's order filled (whole or in part) or was cancelled, another order of the account signed with
    the same nonce (here a larger size at a better price) never fills; the first order, filled in part, goes on."""
    a, b, c = traders[:3]
    p = oracle_price(protocol, ETH)
    mo = order(a.id, ETH, False, 2 * WAD, p)
    twin = order(a.id, ETH, False, 5 * WAD, p - WAD, nonce=mo.nonce)
    ms = sign(mo, a.wallet)
    taker = order(b.id, ETH, True, 10 * WAD, p)
    tsig = sign(taker, b.wallet)
    if first == "cancel":
        venue.cancel(mo, {"from": a.wallet})
    else:
        venue.settle(mo, ms, taker, tsig, 2 * WAD if first == "whole" else WAD, {"from": submitter})
    with brownie.reverts(err("NonceUsed", a.id, mo.nonce)):
        venue.settle.call(twin, sign(twin, a.wallet), taker, tsig, WAD, {"from": submitter})
    assert venue.filledOf(twin) == 5 * WAD  # it can no longer fill
    if first == "part":
        venue.settle(mo, ms, taker, tsig, WAD, {"from": submitter})
        assert venue.filledOf(mo) == venue.filled(venue.hashOrder(mo)) == 2 * WAD
    # another account's order with the same nonce is unaffected
    other = order(c.id, ETH, False, WAD, p, nonce=mo.nonce)
    venue.settle(other, sign(other, c.wallet), taker, tsig, WAD, {"from": submitter})
    assert venue.filledOf(other) == WAD


def test_first_settlement_beyond_the_size_reverts_and_uses_no_nonce(protocol, venue, traders, order, sign, submitter):
    """The nonce's bit is written before the size check of a first fill: the revert takes it back, and the order still
    fills whole afterwards."""
    a, b = traders[:2]
    p = oracle_price(protocol, ETH)
    maker = order(a.id, ETH, False, WAD, p)
    taker = order(b.id, ETH, True, 3 * WAD, p)
    ms, ts = sign(maker, a.wallet), sign(taker, b.wallet)
    with brownie.reverts(err("OrderOverfilled", venue.hashOrder(maker), 0, 2 * WAD, WAD)):
        venue.settle(maker, ms, taker, ts, 2 * WAD, {"from": submitter})
    assert venue.nonceBitmap(a.id, maker.nonce >> 8) >> (maker.nonce & 0xFF) & 1 == 0
    assert venue.filledOf(maker) == 0
    venue.settle(maker, ms, taker, ts, WAD, {"from": submitter})
    assert venue.filledOf(maker) == WAD and venue.filled(venue.hashOrder(maker)) == 0


def test_same_account_and_nonce_on_both_sides_reverts_nonce_used(protocol, venue, traders, order, sign, submitter):
    """Maker and taker orders of one account under one nonce: the taker finds the nonce used by the maker before the
    vault's self-trade check is reached."""
    a = traders[0]
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, True, WAD // 10, p)
    to = order(a.id, BTC, False, WAD // 10, p, nonce=mo.nonce)
    with brownie.reverts(err("NonceUsed", a.id, mo.nonce)):
        venue.settle.call(mo, sign(mo, a.wallet), to, sign(to, a.wallet), WAD // 10, {"from": submitter})


def test_cancelling_a_twin_voids_the_unfilled_order_under_its_nonce(protocol, venue, traders, order, sign, submitter):
    """`cancel` of any order under a nonce voids an unfilled order of the same nonce (as taker here); an order already
    filled in part goes on filling."""
    a, b = traders[:2]
    p = oracle_price(protocol, ETH)
    unfilled = order(b.id, ETH, True, WAD, p)
    venue.cancel(order(b.id, ETH, True, 9 * WAD, p, nonce=unfilled.nonce), {"from": b.wallet})
    maker = order(a.id, ETH, False, 4 * WAD, p)
    ms = sign(maker, a.wallet)
    with brownie.reverts(err("NonceUsed", b.id, unfilled.nonce)):
        venue.settle.call(maker, ms, unfilled, sign(unfilled, b.wallet), WAD, {"from": submitter})
    taker = order(b.id, ETH, True, 4 * WAD, p)
    ts = sign(taker, b.wallet)
    venue.settle(maker, ms, taker, ts, WAD, {"from": submitter})  # the maker fills in part
    venue.cancel(order(a.id, ETH, False, WAD, p, nonce=maker.nonce), {"from": a.wallet})  # its twin is cancelled
    venue.settle(maker, ms, taker, ts, WAD, {"from": submitter})
    assert venue.filledOf(maker) == 2 * WAD


def test_cancel_after_a_whole_fill_and_below_the_floor_read_as_cancelled(protocol, venue, traders, order, sign,
                                                                       submitter):
    a, b = traders[:2]
    mo, ms, to, ts = signed_pair(order, sign, a, b, BTC, True, WAD // 10, oracle_price(protocol, BTC))
    venue.settle(mo, ms, to, ts, WAD // 10, {"from": submitter})
    assert venue.filledOf(mo) == WAD // 10
    venue.cancel(mo, {"from": a.wallet})
    assert venue.filledOf(mo) == 2**256 - 1
    with brownie.reverts(err("OrderCancelled", venue.hashOrder(mo))):
        venue.settle.call(mo, ms, to, ts, WAD // 10, {"from": submitter})
    # an unfilled order below the account's nonce floor can never fill: read as cancelled
    low = order(b.id, BTC, True, WAD, oracle_price(protocol, BTC))
    assert venue.filledOf(low) == 0
    venue.cancelAllBefore(b.id, low.nonce + 1, {"from": b.wallet})
    assert venue.filledOf(low) == 2**256 - 1


def test_next_free_nonce_skips_used_nonces_and_the_floor(protocol, venue, traders, order, sign, submitter):
    """offchain.orders.next_free_nonce on the deployed venue: the lowest nonce not used and not below the floor,
    across a word boundary."""
    a, b = traders[:2]
    w3_venue = web3.eth.contract(address=venue.address, abi=venue.abi)
    fresh = Trader(protocol.vault)
    assert next_free_nonce(w3_venue, fresh.id) == 0
    p = oracle_price(protocol, ETH)
    taker = order(b.id, ETH, True, 10 * WAD, p)
    ts = sign(taker, b.wallet)
    base = 5 * 256 + 254  # a's next nonces cross from word 5 into word 6
    venue.cancelAllBefore(a.id, base, {"from": a.wallet})
    assert next_free_nonce(w3_venue, a.id) == base
    for nonce in (base, base + 1):
        mo = order(a.id, ETH, False, WAD, p, nonce=nonce)
        venue.settle(mo, sign(mo, a.wallet), taker, ts, WAD, {"from": submitter})
    venue.cancel(order(a.id, ETH, False, WAD, p, nonce=base + 2), {"from": a.wallet})
    assert next_free_nonce(w3_venue, a.id) == base + 3


def test_settle_closing_trades_realise_pnl_and_net_to_zero(protocol, venue, traders, trade, move_price):
    vault = protocol.vault
    fund_id = vault.fundAccount()
    a, b, c = traders[:3]
    traders = (a, b, c)
    fund0 = vault.settlementOf(fund_id)
    s0 = {t.id: vault.settlementOf(t.id) for t in traders}
    size = 7 * WAD // 10
    p1 = oracle_price(protocol, BTC) + 987_654_321_987
    trade(b, a, BTC, True, size, p1)  # a buys 0.7 BTC from b (a taker)
    pe = oracle_price(protocol, ETH)
    trade(c, a, ETH, False, 5 * WAD, pe)  # a sells 5 ETH to c (a taker)
    move_price(BTC, 61_234.5678)
    p2 = oracle_price(protocol, BTC) - 3
    close = 3 * WAD // 10
    trade(c, a, BTC, False, close, p2)  # a sells 0.3 BTC to c (c maker buy): partial close, realised
    on1 = ceil_div(size * p1, WAD)
    basis_closed = sdiv(on1 * -close, -size)
    realised = (close * p2) // WAD - basis_closed
    assert realised > 0
    fees_a = fee(size, p1, TAKER_BPS) + fee(5 * WAD, pe, TAKER_BPS) + fee(close, p2, TAKER_BPS)
    fees_b = fee(size, p1, MAKER_BPS)
    fees_c = fee(5 * WAD, pe, MAKER_BPS) + fee(close, p2, MAKER_BPS)
    assert vault.settlementOf(a.id) == s0[a.id] + realised - fees_a
    assert vault.settlementOf(b.id) == s0[b.id] - fees_b
    assert vault.settlementOf(c.id) == s0[c.id] - fees_c
    assert vault.settlementOf(fund_id) == fund0 + fees_a + fees_b + fees_c
    assert pos(vault, a.id, BTC) == (size - close, on1 - basis_closed)
    assert pos(vault, c.id, BTC) == (close, ceil_div(close * p2, WAD))
    for market in (BTC, ETH):
        assert sum(pos(vault, t.id, market)[0] for t in traders) == 0
    assert vault.openInterest(BTC) == size  # a 0.4 long + c 0.3 long
    assert vault.openInterest(ETH) == 5 * WAD
    # a closes the rest at a loss price: position gone, the remaining basis fully released
    move_price(BTC, 60_000)
    p3 = oracle_price(protocol, BTC)
    before = vault.settlementOf(a.id)
    trade(b, a, BTC, False, size - close, p3, taker_limit=p3)  # b buys back 0.4 from a
    assert pos(vault, a.id, BTC) == (0, 0)
    expected = (size - close) * p3 // WAD - (on1 - basis_closed) - fee(size - close, p3, TAKER_BPS)
    assert vault.settlementOf(a.id) == before + expected
    assert sum(pos(vault, t.id, BTC)[0] for t in traders) == 0


# ---------------------------------------------------------------------------------------------- expiry, cancel
def test_settle_expired_maker_order_reverts(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    expiry = chain[-1].timestamp - 1
    mo = order(a.id, BTC, True, WAD // 10, p, expiry=expiry)
    to = order(b.id, BTC, False, WAD // 10, p)
    with reverts_at("OrderExpired", venue.hashOrder(mo), expiry, NOW):  # a real (mined, reverted) transaction
        venue.settle(mo, sign(mo, a.wallet), to, sign(to, b.wallet), WAD // 10, {"from": submitter})


def test_settle_taker_order_after_expiry_reverts(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    expiry = chain.time() + 600
    mo = order(a.id, BTC, True, WAD // 10, p)
    to = order(b.id, BTC, False, WAD // 10, p, expiry=expiry)
    ms, ts = sign(mo, a.wallet), sign(to, b.wallet)
    venue.settle(mo, ms, to, ts, WAD // 20, {"from": submitter})  # valid before expiry
    chain.mine(timestamp=expiry)  # expiry is inclusive (feeds stay fresh: max age 3600 s)
    venue.settle.call(mo, ms, to, ts, WAD // 20, {"from": submitter})
    chain.mine(timestamp=expiry + 1)
    with brownie.reverts(err("OrderExpired", venue.hashOrder(to), expiry, expiry + 1)):
        venue.settle.call(mo, ms, to, ts, WAD // 20, {"from": submitter})


def test_cancel_by_owner_blocks_settlement(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    mo, ms, to, ts = signed_pair(order, sign, a, b, BTC, True, WAD // 10, oracle_price(protocol, BTC))
    tx = venue.cancel(mo, {"from": a.wallet})
    mh = venue.hashOrder(mo)
    assert tx.events["OrderCancel"] == {"orderHash": mh, "account": a.id}
    assert venue.filled(mh) == 2**256 - 1 == venue.filledOf(mo)
    with brownie.reverts(err("OrderCancelled", mh)):
        venue.settle.call(mo, ms, to, ts, WAD // 10, {"from": submitter})


def test_cancel_after_partial_fill_blocks_the_rest(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    mo, ms, to, ts = signed_pair(order, sign, a, b, BTC, False, WAD // 10, oracle_price(protocol, BTC))
    venue.settle(mo, ms, to, ts, WAD // 20, {"from": submitter})
    venue.cancel(to, {"from": b.wallet})  # the taker cancels its half-filled order
    with brownie.reverts(err("OrderCancelled", venue.hashOrder(to))):
        venue.settle.call(mo, ms, to, ts, WAD // 20, {"from": submitter})


def test_cancel_by_operator_allowed(protocol, venue, traders, order):
    a = traders[0]
    op = accounts[5]
    protocol.vault.setOperator(op, True, {"from": a.wallet})
    o = order(a.id, BTC, True, WAD, 60_000 * WAD)
    venue.cancel(o, {"from": op})
    assert venue.filled(venue.hashOrder(o)) == 2**256 - 1 == venue.filledOf(o)
    assert venue.nonceBitmap(a.id, o.nonce >> 8) >> (o.nonce & 0xFF) & 1 == 1


def test_cancel_by_stranger_reverts_bad_signer(protocol, venue, traders, order):
    a = traders[0]
    stranger = accounts[6]
    o = order(a.id, BTC, True, WAD, 60_000 * WAD)
    with brownie.reverts(err("BadSigner", a.id, stranger)):
        venue.cancel(o, {"from": stranger})
    assert venue.filledOf(o) == 0
    assert venue.nonceBitmap(a.id, o.nonce >> 8) >> (o.nonce & 0xFF) & 1 == 0


def test_cancel_all_before_invalidates_lower_nonces(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    p = oracle_price(protocol, ETH)
    old = order(a.id, ETH, True, WAD, p, nonce=10_000_009)
    edge = order(a.id, ETH, True, WAD, p, nonce=10_000_010)
    taker = order(b.id, ETH, False, 2 * WAD, p)
    tsig = sign(taker, b.wallet)
    tx = venue.cancelAllBefore(a.id, 10_000_010, {"from": a.wallet})
    assert tx.events["NonceFloorSet"] == {"account": a.id, "minNonce": 10_000_010}
    assert venue.minNonce(a.id) == 10_000_010
    with brownie.reverts(err("OrderCancelled", venue.hashOrder(old))):
        venue.settle.call(old, sign(old, a.wallet), taker, tsig, WAD, {"from": submitter})
    venue.settle(edge, sign(edge, a.wallet), taker, tsig, WAD, {"from": submitter})  # nonce == floor stays valid
    assert venue.filledOf(edge) == WAD
    # another account's orders with low nonces are unaffected
    assert venue.minNonce(b.id) == 0


def test_cancel_all_before_only_raises(protocol, venue, traders):
    a = traders[0]
    venue.cancelAllBefore(a.id, 500, {"from": a.wallet})
    tx = venue.cancelAllBefore(a.id, 100, {"from": a.wallet})
    assert venue.minNonce(a.id) == 500
    assert "NonceFloorSet" not in tx.events


def test_cancel_all_before_by_operator_allowed(protocol, venue, traders):
    a = traders[0]
    op = accounts[5]
    protocol.vault.setOperator(op, True, {"from": a.wallet})
    venue.cancelAllBefore(a.id, 42, {"from": op})
    assert venue.minNonce(a.id) == 42


def test_cancel_all_before_by_stranger_reverts_bad_signer(protocol, venue, traders):
    a = traders[0]
    stranger = accounts[6]
    with brownie.reverts(err("BadSigner", a.id, stranger)):
        venue.cancelAllBefore(a.id, 42, {"from": stranger})
    assert venue.minNonce(a.id) == 0


# ---------------------------------------------------------------------------------------------- signatures
def test_settle_stranger_signature_reverts_bad_signer(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    stranger = accounts.add()
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, True, WAD // 10, p)
    to = order(b.id, BTC, False, WAD // 10, p)
    with brownie.reverts(err("BadSigner", a.id, stranger.address)):
        venue.settle.call(mo, sign(mo, stranger), to, sign(to, b.wallet), WAD // 10, {"from": submitter})
    with brownie.reverts(err("BadSigner", b.id, stranger.address)):
        venue.settle.call(mo, sign(mo, a.wallet), to, sign(to, stranger), WAD // 10, {"from": submitter})
    # the other account's owner is a stranger too
    with brownie.reverts(err("BadSigner", a.id, b.wallet.address)):
        venue.settle.call(mo, sign(mo, b.wallet), to, sign(to, b.wallet), WAD // 10, {"from": submitter})


def test_settle_operator_signature_accepted(protocol, venue, traders, order, sign, submitter, mirror):
    a, b = traders[:2]
    op = accounts.add()
    protocol.vault.setOperator(op.address, True, {"from": a.wallet})
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, True, WAD // 10, p)
    to = order(b.id, BTC, False, WAD // 10, p)
    venue.settle(mo, sign(mo, op), to, sign(to, b.wallet), WAD // 10, {"from": submitter})
    assert pos(protocol.vault, a.id, BTC)[0] == WAD // 10
    # an operator covers every subaccount of the owner
    sub = a.account(7)
    mo2 = order(sub, BTC, True, WAD // 10, p)
    to2 = order(b.id, BTC, False, WAD // 10, p)
    # (the signature passes; the empty subaccount then fails the margin check, not the signer check)
    _, layout, prices, cfg = mirror(sub)
    would_be = AccountState(settlement=-fee(WAD // 10, p, MAKER_BPS), positions={BTC: (WAD // 10, p // 10)})
    m = account_margin(would_be, layout, prices, cfg)
    with brownie.reverts(err("InsufficientMargin", sub, m.equity, m.initial)):
        venue.settle.call(mo2, sign(mo2, op), to2, sign(to2, b.wallet), WAD // 10, {"from": submitter})


def test_settle_revoked_operator_signature_reverts_bad_signer(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    op = accounts.add()
    protocol.vault.setOperator(op.address, True, {"from": a.wallet})
    protocol.vault.setOperator(op.address, False, {"from": a.wallet})
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, True, WAD // 10, p)
    to = order(b.id, BTC, False, WAD // 10, p)
    with brownie.reverts(err("BadSigner", a.id, op.address)):
        venue.settle.call(mo, sign(mo, op), to, sign(to, b.wallet), WAD // 10, {"from": submitter})


def test_settle_other_chain_signature_reverts_bad_signer(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, True, WAD // 10, p)
    to = order(b.id, BTC, False, WAD // 10, p)
    wrong = sign_order(mo, a.wallet.private_key, chain.id + 1, venue.address)
    recovered = Account._recover_hash(bytes(venue.hashOrder(mo)), signature=wrong)
    assert recovered != a.wallet.address
    with brownie.reverts(err("BadSigner", a.id, recovered)):
        venue.settle.call(mo, wrong, to, sign(to, b.wallet), WAD // 10, {"from": submitter})


def test_settle_other_venue_signature_reverts_bad_signer(protocol, venue, traders, order, sign, submitter, deployer):
    vault = protocol.vault
    other = OrderSettlement.deploy(vault, protocol.params, MAKER_BPS, TAKER_BPS, {"from": deployer})
    vault.setVenue(other, True, {"from": deployer})
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, True, WAD // 10, p)
    to = order(b.id, BTC, False, WAD // 10, p)
    ms_other = sign_order(mo, a.wallet.private_key, chain.id, other.address)
    ts_other = sign_order(to, b.wallet.private_key, chain.id, other.address)
    recovered = Account._recover_hash(bytes(venue.hashOrder(mo)), signature=ms_other)
    assert recovered != a.wallet.address
    with brownie.reverts(err("BadSigner", a.id, recovered)):
        venue.settle.call(mo, ms_other, to, sign(to, b.wallet), WAD // 10, {"from": submitter})
    # the same signatures are valid on the venue they were made for
    other.settle(mo, ms_other, to, ts_other, WAD // 10, {"from": submitter})
    assert pos(vault, a.id, BTC)[0] == WAD // 10
    assert venue.filled(venue.hashOrder(mo)) == 0


def test_settle_malleable_signature_reverts_invalid_s(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, True, WAD // 10, p)
    to = order(b.id, BTC, False, WAD // 10, p)
    sig = sign(mo, a.wallet)
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    s2, v2 = SECP256K1_N - s, 55 - v  # (r, n - s, v ^ 1): the twin signature
    twin = r + s2.to_bytes(32, "big") + bytes([v2])
    # the twin is a valid signature of the same signer for plain ecrecover
    h = bytes(venue.hashOrder(mo))
    pub = keys.Signature(vrs=(v2 - 27, int.from_bytes(r, "big"), s2)).recover_public_key_from_msg_hash(h)
    assert pub.to_checksum_address() == a.wallet.address
    with brownie.reverts(err("ECDSAInvalidSignatureS", s2.to_bytes(32, "big"))):
        venue.settle.call(mo, twin, to, sign(to, b.wallet), WAD // 10, {"from": submitter})
    venue.settle(mo, sig, to, sign(to, b.wallet), WAD // 10, {"from": submitter})  # the low-s original works
    assert venue.filledOf(mo) == WAD // 10


def test_settle_short_signature_reverts_bad_length(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, True, WAD // 10, p)
    to = order(b.id, BTC, False, WAD // 10, p)
    with brownie.reverts(err("ECDSAInvalidSignatureLength", 64)):
        venue.settle.call(mo, sign(mo, a.wallet)[:64], to, sign(to, b.wallet), WAD // 10, {"from": submitter})


# ---------------------------------------------------------------------------------------------- matching
@pytest.mark.parametrize("above", [True, False])
def test_settle_price_outside_band_reverts(protocol, venue, traders, order, sign, submitter, above):
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    band = p * 200 // BPS
    price = p + band + 1 if above else p - band - 1
    mo, ms, to, ts = signed_pair(order, sign, a, b, BTC, above, WAD // 10, price)
    with brownie.reverts(err("PriceOutsideBand", BTC, price, p, 200)):
        venue.settle.call(mo, ms, to, ts, WAD // 10, {"from": submitter})


@pytest.mark.parametrize("above", [True, False])
def test_settle_price_at_band_edge_succeeds(protocol, venue, traders, trade, above):
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    price = p + p * 200 // BPS if above else p - p * 200 // BPS
    assert (p * 200) % BPS == 0  # exactly on the edge
    trade(a, b, BTC, True, WAD // 10, price)
    assert pos(protocol.vault, b.id, BTC) == (WAD // 10, price // 10)


def test_settle_taker_buy_limit_below_maker_price_reverts(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, False, WAD // 10, p)
    to = order(b.id, BTC, True, WAD // 10, p - 1)
    th = venue.hashOrder(to)
    with brownie.reverts(err("LimitPriceNotMet", th, p, p - 1)):
        venue.settle.call(mo, sign(mo, a.wallet), to, sign(to, b.wallet), WAD // 10, {"from": submitter})


def test_settle_taker_sell_limit_above_maker_price_reverts(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, True, WAD // 10, p)
    to = order(b.id, BTC, False, WAD // 10, p + 1)
    with brownie.reverts(err("LimitPriceNotMet", venue.hashOrder(to), p, p + 1)):
        venue.settle.call(mo, sign(mo, a.wallet), to, sign(to, b.wallet), WAD // 10, {"from": submitter})


def test_settle_fills_at_maker_price_when_taker_limit_better(protocol, venue, traders, trade):
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    tx, _, _ = trade(a, b, BTC, True, WAD // 10, p, taker_limit=p + 500 * WAD)  # b would pay more; pays p
    assert tx.events["Trade"]["price"] == p
    assert pos(protocol.vault, b.id, BTC) == (WAD // 10, p // 10)


@pytest.mark.parametrize("is_buy", [True, False])
def test_settle_same_side_orders_revert_no_match(protocol, venue, traders, order, sign, submitter, is_buy):
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, is_buy, WAD // 10, p)
    to = order(b.id, BTC, is_buy, WAD // 10, p)
    with brownie.reverts(err("OrdersDoNotMatch", venue.hashOrder(mo), venue.hashOrder(to))):
        venue.settle.call(mo, sign(mo, a.wallet), to, sign(to, b.wallet), WAD // 10, {"from": submitter})


def test_settle_different_markets_revert_no_match(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, True, WAD // 10, p)
    to = order(b.id, ETH, False, WAD // 10, p)
    with brownie.reverts(err("OrdersDoNotMatch", venue.hashOrder(mo), venue.hashOrder(to))):
        venue.settle.call(mo, sign(mo, a.wallet), to, sign(to, b.wallet), WAD // 10, {"from": submitter})


def test_settle_same_account_reverts_self_trade(protocol, venue, traders, order, sign, submitter):
    a = traders[0]
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, True, WAD // 10, p)
    to = order(a.id, BTC, False, WAD // 10, p)
    with brownie.reverts(err("SelfTrade", a.id)):
        venue.settle.call(mo, sign(mo, a.wallet), to, sign(to, a.wallet), WAD // 10, {"from": submitter})


def test_settle_between_own_subaccounts_allowed(protocol, venue, traders, fund, order, sign, submitter):
    a = traders[0]
    sub = a.account(1)
    fund(sub, protocol.usdc, 100_000 * USDC)
    p = oracle_price(protocol, BTC)
    mo = order(a.id, BTC, True, WAD // 10, p)
    to = order(sub, BTC, False, WAD // 10, p)
    venue.settle(mo, sign(mo, a.wallet), to, sign(to, a.wallet), WAD // 10, {"from": submitter})
    assert pos(protocol.vault, sub, BTC)[0] == -(WAD // 10)


def test_settle_zero_fill_reverts(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    mo, ms, to, ts = signed_pair(order, sign, a, b, BTC, True, WAD // 10, oracle_price(protocol, BTC))
    with brownie.reverts(err("ZeroFill")):
        venue.settle.call(mo, ms, to, ts, 0, {"from": submitter})


def test_settle_unlisted_market_reverts(protocol, venue, traders, order, sign, submitter):
    a, b = traders[:2]
    mo, ms, to, ts = signed_pair(order, sign, a, b, 9, True, WAD // 10, 100 * WAD)
    with brownie.reverts(err("UnknownMarket", 9)):
        venue.settle.call(mo, ms, to, ts, WAD // 10, {"from": submitter})


# ---------------------------------------------------------------------------------------------- fees, access
def test_set_fees_by_admin_applies_to_next_trade(protocol, venue, traders, trade, deployer):
    vault = protocol.vault
    fund_id = vault.fundAccount()
    tx = venue.setFees(100, 37, {"from": deployer})
    assert tx.events["FeesSet"] == {"makerBps": 100, "takerBps": 37}
    assert (venue.makerFeeBps(), venue.takerFeeBps()) == (100, 37)
    a, b = traders[:2]
    p = oracle_price(protocol, ETH) + 1
    f0, sa, sb = vault.settlementOf(fund_id), vault.settlementOf(a.id), vault.settlementOf(b.id)
    trade(a, b, ETH, True, 3 * WAD, p)
    assert vault.settlementOf(a.id) == sa - fee(3 * WAD, p, 100)
    assert vault.settlementOf(b.id) == sb - fee(3 * WAD, p, 37)
    assert vault.settlementOf(fund_id) == f0 + fee(3 * WAD, p, 100) + fee(3 * WAD, p, 37)


def test_set_fees_zero_charges_nothing(protocol, venue, traders, trade, deployer):
    vault = protocol.vault
    venue.setFees(0, 0, {"from": deployer})
    a, b = traders[:2]
    f0 = vault.settlementOf(vault.fundAccount())
    tx, _, _ = trade(a, b, BTC, False, WAD // 3, oracle_price(protocol, BTC) + 7)
    assert tx.events["Trade"]["fees"] == 0
    assert vault.settlementOf(a.id) == vault.settlementOf(b.id) == 100_000 * WAD
    assert vault.settlementOf(vault.fundAccount()) == f0


@pytest.mark.parametrize("maker,taker,bad", [(101, 5, 101), (2, 101, 101), (10**30, 0, 10**30)])
def test_set_fees_above_max_reverts(venue, deployer, maker, taker, bad):
    with brownie.reverts(err("FeeTooHigh", bad, 100)):
        venue.setFees(maker, taker, {"from": deployer})
    assert (venue.makerFeeBps(), venue.takerFeeBps()) == (MAKER_BPS, TAKER_BPS)


def test_set_fees_at_max_accepted(venue, deployer):
    venue.setFees(100, 100, {"from": deployer})
    assert (venue.makerFeeBps(), venue.takerFeeBps()) == (100, 100)


def test_set_fees_by_non_admin_reverts(protocol, venue, deployer):
    params = protocol.params
    risk_admin = accounts[3]
    params.grantRole(params.RISK_ADMIN_ROLE(), risk_admin, {"from": deployer})
    for caller in (accounts[4], risk_admin):  # a stranger; a risk admin without DEFAULT_ADMIN_ROLE
        with brownie.reverts(err("NotAdmin", caller)):
            venue.setFees(1, 1, {"from": caller})
    assert (venue.makerFeeBps(), venue.takerFeeBps()) == (MAKER_BPS, TAKER_BPS)


def test_deploy_with_fee_above_max_reverts(protocol, deployer):
    with brownie.reverts(err("FeeTooHigh", 101, 100)):
        OrderSettlement.deploy(protocol.vault, protocol.params, 0, 101, {"from": deployer})


def test_settle_trade_by_non_venue_reverts(protocol, traders, deployer):
    a, b = traders[:2]
    for caller in (accounts[4], deployer):  # even the admin is not a venue
        with brownie.reverts(err("NotVenue", caller)):
            protocol.vault.settleTrade(a.id, b.id, BTC, WAD, 60_000 * WAD, 0, 0, {"from": caller})
    assert pos(protocol.vault, a.id, BTC) == (0, 0)


def test_settle_through_disabled_venue_reverts(protocol, venue, traders, order, sign, submitter, deployer):
    a, b = traders[:2]
    protocol.vault.setVenue(venue, False, {"from": deployer})
    mo, ms, to, ts = signed_pair(order, sign, a, b, BTC, True, WAD // 10, oracle_price(protocol, BTC))
    with brownie.reverts(err("NotVenue", venue)):
        venue.settle.call(mo, ms, to, ts, WAD // 10, {"from": submitter})


# ---------------------------------------------------------------------------------------------- caps
def test_settle_position_above_cap_reverts(protocol, venue, traders, order, sign, submitter, deployer):
    protocol.params.setMarket(BTC, 1000, FIXTURE_SPEC.markets[BTC].max_open_interest, WAD, {"from": deployer})
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    mo, ms, to, ts = signed_pair(order, sign, a, b, BTC, True, 2 * WAD, p)  # b buys 2 from a
    with brownie.reverts(err("PositionTooLarge", b.id, BTC, WAD + 1, WAD)):
        venue.settle.call(mo, ms, to, ts, WAD + 1, {"from": submitter})
    venue.settle(mo, ms, to, ts, WAD, {"from": submitter})  # exactly the cap
    # the seller side is capped too
    mo2, ms2, to2, ts2 = signed_pair(order, sign, traders[2], a, BTC, False, WAD, p)  # a sells 1 more
    with brownie.reverts(err("PositionTooLarge", a.id, BTC, -2 * WAD, WAD)):
        venue.settle.call(mo2, ms2, to2, ts2, WAD, {"from": submitter})


def test_settle_reducing_position_above_cap_allowed(protocol, venue, traders, trade, deployer):
    a, b = traders[:2]
    p = oracle_price(protocol, BTC)
    trade(a, b, BTC, True, 2 * WAD, p)  # b long 2, a short 2
    protocol.params.setMarket(BTC, 1000, FIXTURE_SPEC.markets[BTC].max_open_interest, WAD, {"from": deployer})  # cap now below both
    trade(a, b, BTC, False, WAD // 2, p)  # both reduce: allowed though still above the cap
    assert pos(protocol.vault, b.id, BTC)[0] == 3 * WAD // 2
    assert pos(protocol.vault, a.id, BTC)[0] == -3 * WAD // 2


def test_settle_open_interest_above_cap_reverts(protocol, venue, traders, order, sign, submitter, deployer):
    protocol.params.setMarket(BTC, 1000, WAD, 10**9 * WAD, {"from": deployer})
    a, b, c = traders[:3]
    p = oracle_price(protocol, BTC)
    mo, ms, to, ts = signed_pair(order, sign, a, b, BTC, True, 3 * WAD, p)
    venue.settle(mo, ms, to, ts, 8 * WAD // 10, {"from": submitter})
    assert protocol.vault.openInterest(BTC) == 8 * WAD // 10
    with brownie.reverts(err("OpenInterestTooLarge", BTC, 11 * WAD // 10, WAD)):
        venue.settle.call(mo, ms, to, ts, 3 * WAD // 10, {"from": submitter})
    # moving a long from one account to another does not change open interest
    mo2, ms2, to2, ts2 = signed_pair(order, sign, b, c, BTC, True, 8 * WAD // 10, p)  # c buys b's long
    venue.settle(mo2, ms2, to2, ts2, 8 * WAD // 10, {"from": submitter})
    assert protocol.vault.openInterest(BTC) == 8 * WAD // 10
    venue.settle(mo, ms, to, ts, 2 * WAD // 10, {"from": submitter})  # up to the cap exactly
    assert protocol.vault.openInterest(BTC) == WAD


# ---------------------------------------------------------------------------------------------- margin, pause
def test_settle_opening_without_margin_reverts_insufficient_margin(
    protocol, venue, traders, order, sign, submitter, mirror
):
    a, b = traders.small, traders[1]
    p = oracle_price(protocol, BTC)
    mo, ms, to, ts = signed_pair(order, sign, b, a, BTC, True, WAD, p)  # a (taker) buys 1 BTC
    _, layout, prices, cfg = mirror(a.id)
    would_be = AccountState(settlement=1_000 * WAD - fee(WAD, p, TAKER_BPS), positions={BTC: (WAD, p)})
    m = account_margin(would_be, layout, prices, cfg)
    assert m.equity < m.initial
    with brownie.reverts(err("InsufficientMargin", a.id, m.equity, m.initial)):
        venue.settle.call(mo, ms, to, ts, WAD, {"from": submitter})
    assert pos(protocol.vault, a.id, BTC) == (0, 0)
    assert protocol.vault.settlementOf(a.id) == 1_000 * WAD


def test_settle_seller_without_margin_reverts_naming_seller(
    protocol, venue, traders, order, sign, submitter, mirror
):
    a, b = traders[0], traders.weth_only  # b: 2 WETH, ~6,000 USD before haircut
    p = oracle_price(protocol, BTC)
    mo, ms, to, ts = signed_pair(order, sign, b, a, BTC, True, WAD, p)  # b (maker) sells 1 BTC
    state, layout, prices, cfg = mirror(b.id)
    state.settlement -= fee(WAD, p, MAKER_BPS)
    state.positions[BTC] = (-WAD, -p)
    m = account_margin(state, layout, prices, cfg)
    assert m.equity < m.initial
    with brownie.reverts(err("InsufficientMargin", b.id, m.equity, m.initial)):
        venue.settle.call(mo, ms, to, ts, WAD, {"from": submitter})


def test_settle_opening_with_enough_margin_succeeds(protocol, venue, traders, trade):
    a, b = traders.medium, traders[1]
    p = oracle_price(protocol, BTC)
    trade(b, a, BTC, True, WAD, p)
    equity, mm, im = protocol.vault.margin(a.id)
    assert im <= equity and pos(protocol.vault, a.id, BTC)[0] == WAD


def test_settle_reduce_only_below_initial_margin_allowed(
    protocol, venue, traders, trade, order, sign, submitter, move_price, mirror
):
    vault = protocol.vault
    a, (b, c) = traders.medium, traders[1:3]
    trade(b, a, BTC, True, WAD, oracle_price(protocol, BTC))  # a long 1 BTC on 10k USDC
    move_price(BTC, 57_500)
    p = oracle_price(protocol, BTC)
    equity, mm, im = vault.margin(a.id)
    assert mm <= equity < im  # below IM, not liquidatable
    # adding risk is refused ...
    mo, ms, to, ts = signed_pair(order, sign, c, a, BTC, True, WAD // 10, p)
    state, layout, prices, cfg = mirror(a.id)
    size, on = state.positions[BTC]
    state.settlement -= fee(WAD // 10, p, TAKER_BPS)
    state.positions[BTC] = (size + WAD // 10, on + ceil_div(WAD // 10 * p, WAD))
    m = account_margin(state, layout, prices, cfg)
    with brownie.reverts(err("InsufficientMargin", a.id, m.equity, m.initial)):
        venue.settle.call(mo, ms, to, ts, WAD // 10, {"from": submitter})
    # ... reducing is allowed although the account stays below IM afterwards
    trade(c, a, BTC, False, WAD // 10, p)
    assert pos(vault, a.id, BTC)[0] == 9 * WAD // 10
    e2, _, im2 = vault.margin(a.id)
    assert e2 < im2


def test_settle_increase_when_paused_reverts(protocol, venue, traders, order, sign, submitter, deployer):
    tx = protocol.params.setPause(1, {"from": deployer})
    assert tx.events["PauseSet"]["flags"] == 1
    a, b = traders[:2]
    mo, ms, to, ts = signed_pair(order, sign, a, b, BTC, True, WAD // 10, oracle_price(protocol, BTC))
    with brownie.reverts(err("Paused", 1)):
        venue.settle.call(mo, ms, to, ts, WAD // 10, {"from": submitter})


def test_settle_reduce_only_when_paused_allowed(protocol, venue, traders, trade, order, sign, submitter, deployer):
    a, b, c = traders[:3]
    p = oracle_price(protocol, BTC)
    trade(a, b, BTC, True, WAD, p)  # b long 1, a short 1
    protocol.params.setPause(1, {"from": deployer})
    trade(a, b, BTC, False, WAD // 4, p)  # both reduce
    assert pos(protocol.vault, b.id, BTC)[0] == 3 * WAD // 4
    # one side reducing is not enough: c would open a new position
    mo, ms, to, ts = signed_pair(order, sign, c, b, BTC, False, WAD // 4, p)
    with brownie.reverts(err("Paused", 1)):
        venue.settle.call(mo, ms, to, ts, WAD // 4, {"from": submitter})
    # flipping through zero opens a new position: refused too
    mo, ms, to, ts = signed_pair(order, sign, a, b, BTC, False, WAD, p)  # b sells 1 (long 0.75 -> short 0.25)
    with brownie.reverts(err("Paused", 1)):
        venue.settle.call(mo, ms, to, ts, WAD, {"from": submitter})
    venue.settle(mo, ms, to, ts, 3 * WAD // 4, {"from": submitter})  # closing both exactly is fine
    assert pos(protocol.vault, b.id, BTC) == (0, 0)
    assert pos(protocol.vault, a.id, BTC) == (0, 0)
