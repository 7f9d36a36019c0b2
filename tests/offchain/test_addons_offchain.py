"""The dynamic add-ons off-chain: an updater's volatility-scaler raise, a correlation break, or a market depth puts
accounts below their maintenance margin without any price move, and the keeper (screen, exact confirmation,
transaction) liquidates exactly those accounts; the account the add-ons leave healthy is left alone.
"""
from __future__ import annotations

from brownie import accounts, web3

from offchain.margin.exact import account_margin
from offchain.margin.snapshot import read_account_state, read_layout, read_margin_config, read_prices
from tests.adversarial.helpers import deposit
from tests.conftest import Trader

USDC = 10**6
WAD = 10**18
BTC, ETH = 0, 1


def _book(protocol, venue, deployer, maker, usdc, legs=()) -> Trader:
    """A new account holding ``usdc`` USDC and a position worth each ``(market, usd)`` of ``legs`` (signed) at the
    oracle price, against ``maker``."""
    t = Trader(protocol.vault)
    deposit(protocol, deployer, t.id, protocol.usdc, usdc * USDC)
    for market, usd in legs:
        price = protocol.oracle.price(market)
        buyer, seller = (t.id, maker) if usd > 0 else (maker, t.id)
        venue.trade(buyer, seller, market, abs(usd) * WAD * WAD // price, price, 0, {"from": deployer})
    return t


def _mirror(protocol, account):
    layout = read_layout(protocol.vault)
    return account_margin(read_account_state(protocol.vault, account), layout, read_prices(protocol.oracle, layout),
                          read_margin_config(protocol.params))


def _liquidated_since(vault, block) -> set[int]:
    return {int(e.args.account) for e in vault.events.get_sequence(block, event_type="Liquidated")}


def test_addon_raises_put_accounts_under_water_and_the_keeper_liquidates_exactly_them(
        protocol, test_venue, deployer, make_keeper, keeper_wallet):
    vault, params, venue = protocol.vault, protocol.params, test_venue
    updater = accounts[6]
    params.grantRole(params.RISK_UPDATER_ROLE(), updater, {"from": deployer})
    maker = _book(protocol, venue, deployer, 0, 10_000_000).id

    def book(usdc, *legs):
        return _book(protocol, venue, deployer, maker, usdc, legs)

    # each book opens at its initial margin (1.5 MM) plus a little
    # a directional ETH book: 100,000 of ETH on 18,100 (MM 12,000): an ETH scaler of 200% makes MM 24,000
    directional = book(18_100, (ETH, 100_000))
    # a hedged BTC/ETH pair (MM 100,000 from the low regime and the stress scan): a 50% correlation break raises its
    # low-regime charge to about 131,000, and the ETH scaler, ETH being 55% of its weighted sensitivities, by 55% more
    hedged = book(151_000, (BTC, 1_000_000), (ETH, -1_000_000))
    hedged_mm = _mirror(protocol, hedged.id).maintenance
    # a large BTC book (MM 400,000 on 4 million): a depth of 1 billion USD adds 4M * sqrt(4M / 1bn) = 253,000
    large = book(601_000, (BTC, 4_000_000))
    # a small BTC book with ample equity: the same depth adds 1,000 to its 10,000
    safe = book(50_000, (BTC, 100_000))
    books = (directional, hedged, large, safe)

    keeper = make_keeper("addons", keeper_wallet)
    assert keeper.step().liquidatable == 0
    start = web3.eth.block_number
    params.setVolScaler(ETH, 15_000, {"from": updater})  # the updater's largest step, at once
    params.setVolScaler(ETH, 20_000, {"from": deployer})  # the risk admin raises by any amount
    params.setCorrelationBreak(5_000, {"from": updater})
    params.setMarketDepth(BTC, 100, {"from": deployer})  # 100 units of 10 million USD
    for t in books:
        m = _mirror(protocol, t.id)
        assert tuple(vault.margin(t.id)) == (m.equity, m.maintenance, m.initial)  # the chain = the mirror
    under = {t.id for t in books if _mirror(protocol, t.id).liquidatable}
    assert under == {directional.id, hedged.id, large.id}
    assert _mirror(protocol, hedged.id).maintenance > hedged_mm * 125 // 100  # the break removed hedge credit
    report = keeper.step()
    assert set(report.sent) == under
    assert _liquidated_since(vault, start) == under
