"""Risk analytics on top of the margin math (:mod:`offchain.margin`): estimators (EWMA volatility and correlation),
VaR/ES, backtests, stress tests, liquidation cascades, calibration and parameter proposals."""
