from brownie import chain

from offchain.margin.exact import account_margin

WAD = 10**18
USDC = 10**6


def test_trade_and_margin_match_mirror(protocol, make_trader, fund, order, sign, mirror, move_price):
    a, b = make_trader(), make_trader()
    fund(a.id, protocol.usdc, 100_000 * USDC)
    fund(b.id, protocol.tokens[1], 50 * WAD)  # WETH
    price = protocol.oracle.price(0)
    buy = order(a.id, 0, True, WAD // 2, price)
    sell = order(b.id, 0, False, WAD // 2, price)
    protocol.venue.settle(sell, sign(sell, b.wallet), buy, sign(buy, a.wallet), WAD // 2, {"from": __import__("brownie").accounts[2]})
    move_price(0, 58_000)
    for acct in (a.id, b.id):
        d = protocol.vault.marginDetail(acct)
        state, layout, prices, cfg = mirror(acct)
        m = account_margin(state, layout, prices, cfg)
        assert d["equity"] == m.equity
        assert d["margin"]["maintenance"] == m.maintenance
        assert d["margin"]["initial"] == m.initial
        assert m.maintenance > 0
