"""Value at Risk and Expected Shortfall: parametric, filtered historical simulation and Monte Carlo, with
contributions per asset.

A portfolio here is a vector of sensitivities ``c`` (USD per unit relative move of each asset, e.g.
:meth:`Portfolio.sensitivity`): the loss under a move ``x`` (fractions of price) is ``L = -c . x``. Levels ``q`` are
confidence levels (0.99 = 99%); VaR and ES are reported as positive losses.

- parametric (normal): ``VaR = z_q sigma_p``, ``ES = sigma_p phi(z_q) / (1 - q)``, ``sigma_p = sqrt(c' S c)``;
  Euler contributions ``c_k (S c)_k / sigma_p`` times ``z_q`` (VaR) or ``phi(z_q)/(1-q)`` (ES) add up to the total.
- filtered historical simulation (FHS, Barone-Adesi et al. 1999): each day's returns divided by that day's EWMA
  volatility forecast give standardised residuals; multiplied by today's forecast they are scenarios for tomorrow
  that keep the fat tails and the cross-asset dependence of the sample; a horizon of ``h`` days scales by sqrt(h).
- Monte Carlo: multivariate normal or Student-t (``nu``) draws with the EWMA covariance.
For the simulation methods VaR is the empirical ``q`` quantile of the losses, ES the mean loss at or beyond it, and
the contributions are the mean of ``-c_k x_k`` over the tail scenarios (they add up to ES; the VaR contributions
average the scenarios nearest the quantile).

**Options** (:class:`~offchain.risk.revalue.OptionHoldings`): in the simulation methods (FHS, Monte Carlo) a book
with options is revalued in full in every scenario, Black-Scholes at the scenario's prices and at volatilities that
move with the scenario (:class:`~offchain.risk.revalue.VolModel`: the EWMA implied-volatility proxy of
option_backtest, ``sigma' = sigma sqrt(lam^h + (1 - lam^h) z^2)`` with ``z`` the standardised move) and ``h`` days
less to expiry; the per-asset contributions hold each asset's options with its linear part. The parametric figure
stays what it is, a delta-normal approximation: the options enter it through their delta only (``delta_normal``),
which says nothing of a delta-hedged book's convexity. A book without options gets the same figures as before, to
the bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .ewma import RISKMETRICS_LAMBDA, ewma_covariance, ewma_variance, repair_covariance
from .revalue import YEAR_DAYS, OptionHoldings, VolModel


@dataclass(frozen=True)
class RiskFigure:
    method: str
    level: float
    var: float
    es: float
    var_contrib: np.ndarray  # per asset, sums to var
    es_contrib: np.ndarray  # per asset, sums to es

    def as_dict(self, assets: tuple[str, ...] | None = None) -> dict:
        names = assets or tuple(str(k) for k in range(len(self.es_contrib)))
        return {"method": self.method, "level": self.level, "var": self.var, "es": self.es,
                "var_contrib": dict(zip(names, map(float, self.var_contrib))),
                "es_contrib": dict(zip(names, map(float, self.es_contrib)))}


def _check_level(q: float) -> None:
    if not 0.5 < q < 1.0:
        raise ValueError(f"level = {q}: a confidence level lies between 0.5 and 1 (e.g. 0.99)")


def normal_var(sigma: float | np.ndarray, q: float) -> float | np.ndarray:
    _check_level(q)
    return stats.norm.ppf(q) * sigma


def normal_es(sigma: float | np.ndarray, q: float) -> float | np.ndarray:
    _check_level(q)
    return sigma * stats.norm.pdf(stats.norm.ppf(q)) / (1.0 - q)


def t_var_es(sigma: float, q: float, nu: float) -> tuple[float, float]:
    """VaR and ES of a Student-t with ``nu`` > 2 degrees of freedom scaled to standard deviation ``sigma``."""
    _check_level(q)
    if nu <= 2:
        raise ValueError(f"nu = {nu}: a Student-t needs nu > 2 for a finite variance")
    scale = sigma * np.sqrt((nu - 2.0) / nu)
    t = stats.t.ppf(q, nu)
    es = stats.t.pdf(t, nu) * (nu + t * t) / ((nu - 1.0) * (1.0 - q))
    return float(t * scale), float(es * scale)


def parametric(c: np.ndarray, cov: np.ndarray, q: float = 0.99, horizon: float = 1.0) -> RiskFigure:
    """Normal VaR/ES of the loss ``-c . x`` with ``x ~ N(0, horizon * cov)``, Euler contributions per asset."""
    c = np.asarray(c, dtype=float)
    s = np.asarray(cov, dtype=float) * horizon
    sc = s @ c
    sigma = float(np.sqrt(max(c @ sc, 0.0)))
    if sigma == 0.0:
        z = np.zeros_like(c)
        return RiskFigure("parametric", q, 0.0, 0.0, z, z)
    z_q = stats.norm.ppf(q)
    k_es = stats.norm.pdf(z_q) / (1.0 - q)
    marginal = c * sc / sigma
    return RiskFigure("parametric", q, float(z_q * sigma), float(k_es * sigma), z_q * marginal, k_es * marginal)


def from_scenarios(c: np.ndarray, scenarios: np.ndarray, q: float = 0.99, method: str = "simulation",
                   neighbours: int = 5) -> RiskFigure:
    """VaR/ES of ``-c . x`` over equally likely ``scenarios`` (S, K), with contributions."""
    return from_parts(-np.asarray(scenarios) * np.asarray(c), q, method, neighbours)


def from_parts(parts: np.ndarray, q: float = 0.99, method: str = "simulation", neighbours: int = 5) -> RiskFigure:
    """VaR/ES of equally likely scenarios given as losses per asset ``parts`` (S, K) (the loss of a scenario is the
    sum of its row), with contributions."""
    _check_level(q)
    parts = np.asarray(parts)
    losses = parts.sum(-1)
    order = np.argsort(losses)
    n = len(losses)
    k = int(np.floor(q * n))  # the VaR is the k-th smallest loss (0-based): P(L <= VaR) >= q
    k = min(k, n - 1)
    var = float(losses[order[k]])
    tail = order[k:]
    es = float(losses[tail].mean())
    es_c = parts[tail].mean(0)
    lo, hi = max(0, k - neighbours), min(n, k + neighbours + 1)
    near = parts[order[lo:hi]].mean(0)
    total = near.sum()
    var_c = near * (var / total) if total != 0 else np.zeros_like(near)
    return RiskFigure(method, q, var, es, var_c, es_c)


def revalued_parts(c: np.ndarray, scenarios: np.ndarray, options: OptionHoldings | None = None,
                   prices: np.ndarray | None = None, vol_mults: np.ndarray | float = 1.0,
                   horizon: float = 1.0) -> np.ndarray:
    """Loss per scenario and asset, (S, K), of the linear sensitivities ``c`` (K,) and, with ``options``, of every
    account's options at ``prices`` (K,) revalued in full at ``prices (1 + x)``, volatilities ``sigma x vol_mults``
    ((S, K) or a scalar) and ``horizon`` days less to expiry (summed over the holdings' accounts)."""
    parts = -np.asarray(scenarios) * np.asarray(c)
    if options is None:
        return parts
    if prices is None:
        raise ValueError("revaluing options needs today's prices (USD per asset)")
    return parts + options.losses(prices, scenarios, vol_mults, horizon / YEAR_DAYS).sum(-2)


def delta_parts(c: np.ndarray, scenarios: np.ndarray, options: OptionHoldings, prices: np.ndarray) -> np.ndarray:
    """The delta approximation of :func:`revalued_parts`: the options replaced by their delta (S, K)."""
    return -np.asarray(scenarios) * (np.asarray(c) + options.delta_sensitivity(prices).sum(0))


def fhs_scenarios(returns: np.ndarray, lam: float = RISKMETRICS_LAMBDA, horizon: float = 1.0,
                  upto: int | None = None) -> np.ndarray:
    """Filtered historical scenarios (simple returns, (S, K)) for the day after ``upto`` (default: the sample end),
    from the residuals of days ``< upto``."""
    r = np.asarray(returns, dtype=float)
    upto = len(r) if upto is None else upto
    var = ewma_variance(r[:upto], lam)
    z = r[:upto] / np.sqrt(var[:-1])
    scen = z * np.sqrt(var[-1]) * np.sqrt(horizon)
    return np.expm1(scen)


def monte_carlo_scenarios(cov: np.ndarray, n: int = 100_000, seed: int = 0, nu: float | None = None,
                          horizon: float = 1.0) -> np.ndarray:
    """``n`` log-return draws N(0, cov) (or Student-t with ``nu``, scaled to the same covariance), as simple returns."""
    rng = np.random.default_rng(seed)
    s = repair_covariance(np.asarray(cov, dtype=float)) * horizon
    chol = np.linalg.cholesky(s + 1e-18 * np.eye(len(s)))
    z = rng.standard_normal((n, len(s)))
    if nu is not None:
        w = rng.chisquare(nu, size=(n, 1)) / nu
        z = z / np.sqrt(w) * np.sqrt((nu - 2.0) / nu)
    return np.expm1(z @ chol.T)


def all_methods(c: np.ndarray, returns: np.ndarray, q: float = 0.99, lam: float = RISKMETRICS_LAMBDA,
                horizon: float = 1.0, mc_paths: int = 50_000, seed: int = 0, nu: float = 5.0,
                options: OptionHoldings | None = None, prices: np.ndarray | None = None,
                vol_model: VolModel | None = None) -> list[RiskFigure]:
    """Parametric, FHS and Monte Carlo (Student-t) figures for one portfolio at the end of ``returns``. With
    ``options`` (and today's ``prices``), FHS and Monte Carlo revalue them in full at each scenario's prices and
    volatilities (``vol_model``, default the EWMA proxy with ``lam``); the parametric figure is then the
    delta-normal approximation (``delta_normal``)."""
    cov = ewma_covariance(returns, lam)[-1]
    fhs = fhs_scenarios(returns, lam, horizon)
    mc = monte_carlo_scenarios(cov, mc_paths, seed, nu, horizon)
    if options is None:
        out = [parametric(c, cov, q, horizon)]
        out.append(from_scenarios(c, fhs, q, "fhs"))
        out.append(from_scenarios(c, mc, q, "monte_carlo"))
        return out
    if prices is None:
        raise ValueError("revaluing options needs today's prices (USD per asset)")
    vm = vol_model or VolModel(lam)
    daily = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    dn = parametric(np.asarray(c) + options.delta_sensitivity(prices).sum(0), cov, q, horizon)
    out = [RiskFigure("delta_normal", q, dn.var, dn.es, dn.var_contrib, dn.es_contrib)]
    for name, x in (("fhs", fhs), ("monte_carlo", mc)):
        parts = revalued_parts(c, x, options, prices, vm.multipliers(x, daily, horizon), horizon)
        out.append(from_parts(parts, q, name))
    return out


def shortfall_figure(equity: np.ndarray, sens: np.ndarray, scenarios: np.ndarray, q: float = 0.99,
                     option_pnl: np.ndarray | None = None) -> dict:
    """Protocol-level loss: in each scenario the sum over accounts of ``max(0, -(E + sens . x))`` (the bad debt if
    no liquidation happened within the horizon); ``option_pnl`` (S, A): the change of each account's options in each
    scenario, revalued in full (``-OptionHoldings.losses(...).sum(-1)``). VaR/ES of it, the expected value, and the
    accounts most often insolvent in the tail."""
    eq_after = equity[None, :] + scenarios @ sens.T  # (S, A)
    if option_pnl is not None:
        eq_after = eq_after + option_pnl
    short = np.clip(-eq_after, 0.0, None).sum(1)
    order = np.sort(short)
    k = min(int(np.floor(q * len(short))), len(short) - 1)
    var = float(order[k])
    tail = short >= var
    return {"level": q, "var": var, "es": float(short[tail].mean()), "mean": float(short.mean()),
            "p_any": float((short > 0).mean()),
            "insolvent_in_tail": float((eq_after[tail] < 0).sum(1).mean())}
