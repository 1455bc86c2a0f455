"""Posterior predictive checks: is the residual white, and are the data typical draws of the model?"""

import numpy as np
from scipy import stats

PIT_P_MIN = 1e-3  # PIT values are called non-uniform below this KS p-value


def predictive_check(y, mu_draws, sigma_draws, rng=None, nu_draws=None):
    """Residual lag-1 autocorrelation and PIT uniformity.

    ``mu_draws`` (n_draws, n_points), ``sigma_draws`` (n_draws,) or (n_draws, n_points). A correct model leaves
    standardised residuals with lag-1 autocorrelation ~ N(0, 1/n) and PIT values uniform on [0, 1]; systematic
    misfit (e.g. unmodelled structure beside the peaks, physics.md §3) shows as positive autocorrelation.

    With a correlated discrepancy term the draws must carry it, or a model that explains the correlation would
    fail the check: for a GP in the mean, ``mu_draws`` are the means including each draw's GP; for a marginalised
    AR(1), ``mu_draws`` and ``sigma_draws`` are each draw's one-step-ahead predictive mean and sd (the Kalman
    filter's, ``api._pointwise``), whose residuals are the innovations — white, with uniform PIT, when the model
    holds.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    sigma_draws = np.asarray(sigma_draws, float)
    if sigma_draws.ndim == 1:
        sigma_draws = sigma_draws[:, None] * np.ones_like(mu_draws)
    resid = (y - mu_draws.mean(axis=0)) / sigma_draws.mean(axis=0)
    r = resid - resid.mean()
    lag1 = float(np.sum(r[1:] * r[:-1]) / np.sum(r * r))
    if nu_draws is None:
        draws = mu_draws + sigma_draws * rng.standard_normal(mu_draws.shape)
    else:
        draws = mu_draws + sigma_draws * rng.standard_t(np.asarray(nu_draws)[:, None], size=mu_draws.shape)
    pit = (draws < y).mean(axis=0)
    pit_p = float(stats.kstest(pit, "uniform").pvalue)
    n = len(y)
    limit = max(0.1, 4.0 / np.sqrt(n))
    return {"residual_lag1_autocorr": lag1, "residual_lag1_limit": float(limit), "pit_ks_pvalue": pit_p,
            "passed": bool(abs(lag1) < limit and pit_p > PIT_P_MIN)}
