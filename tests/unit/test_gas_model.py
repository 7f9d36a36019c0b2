"""The keeper's learned gas limits (offchain/keeper/gas.py)."""
from offchain.keeper.gas import COLD_WRITE_GAS, GasModel, shape_of

TWO_POSITIONS = [(0, 0, 5 * 10**17), (0, 1, 10**18)]
TWO_POSITIONS_OTHER_MARKETS = [(0, 2, 1), (0, 3, 7)]
WITH_COLLATERAL = [(0, 0, 1), (1, 2, 10**8)]


def test_shape_counts_positions_and_collaterals():
    assert shape_of(TWO_POSITIONS) == (2, 0)
    assert shape_of(WITH_COLLATERAL) == (1, 1)
    assert shape_of([]) == (0, 0)


def test_unknown_shape_asks_the_node_then_keeps_the_largest_seen():
    g = GasModel()
    assert g.limit(TWO_POSITIONS) is None
    g.observe(TWO_POSITIONS, 200_082)
    g.observe(TWO_POSITIONS_OTHER_MARKETS, 180_000)  # same shape, less gas: the maximum stays
    assert g.limit(TWO_POSITIONS_OTHER_MARKETS) == 200_082 + 2 * COLD_WRITE_GAS
    # scripts/bench/results/gas.json: the same liquidation when the fund holds none of the markets yet
    assert g.limit(TWO_POSITIONS) >= 234_250
    g.observe(TWO_POSITIONS, 234_250)
    assert g.limit(TWO_POSITIONS) == 234_250 + 2 * COLD_WRITE_GAS
    assert g.limit(WITH_COLLATERAL) is None  # another shape is not guessed


def test_a_reverted_shape_is_estimated_again():
    g = GasModel()
    g.observe(WITH_COLLATERAL, 150_000)
    g.forget([(0, 3, 9), (1, 0, 1)])
    assert g.limit(WITH_COLLATERAL) is None


def test_allowance_covers_a_fund_that_holds_none_of_the_markets_yet():
    """gas.json: liquidate_4pos 308,271 when the fund holds the markets, 376,607 when it holds none of them."""
    g = GasModel()
    four = [(0, m, 1) for m in range(4)]
    g.observe(four, 308_271)
    assert g.limit(four) >= 376_607
