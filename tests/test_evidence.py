"""Evidence estimators, Bayes-factor verdicts and LOO against analytic truths (physics.md §6).

The linear-Gaussian model y = X·β + ε, ε ~ N(0, σ²) with σ known and β ~ N(0, s0² I), has an analytic evidence
(y ~ N(0, σ² I + s0² X Xᵀ)), an analytic posterior and analytic leave-one-out predictive densities. A model with
a positive scale (HalfNormal, log-transformed by PyMC) has its evidence by 1-D quadrature, which checks the
Jacobian of the unconstrained space.
"""

import math

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from arviz_base import from_dict
from scipy import integrate, stats

from stsbayes.errors import InputError
from stsbayes.inference.evidence import (Evidence, boundary_density, bridge_sampling, combine, laplace_evidence,
                                         savage_dickey, smc_evidence, smc_log_evidence)
from stsbayes.inference.predictive import loo_summary
from stsbayes.inference.verdicts import (class_log_bf, log_bayes_factors, posterior_probabilities,
                                         prior_reweighting, statement, strength, verdict, verdicts)

SIGMA = 0.5
PRIOR_SD = 1.0
BETA_TRUE = np.array([0.5, -1.0, 0.3])


# ---------------------------------------------------------------------------------------------- analytic models


@pytest.fixture(scope="module")
def linear():
    rng = np.random.default_rng(20240611)
    x = rng.normal(size=(30, 3))
    y = x @ BETA_TRUE + rng.normal(0.0, SIGMA, size=30)
    return x, y


def linear_log_z(x, y, prior_sd):
    """ln Z of the linear-Gaussian model: the multivariate normal marginal of y."""
    cov = SIGMA**2 * np.eye(len(y)) + prior_sd**2 * x @ x.T
    return stats.multivariate_normal(np.zeros(len(y)), cov).logpdf(y)


def linear_posterior(x, y, prior_sd):
    """Mean and covariance of β given y (conjugate normal)."""
    precision = x.T @ x / SIGMA**2 + np.eye(x.shape[1]) / prior_sd**2
    cov = np.linalg.inv(precision)
    return cov @ x.T @ y / SIGMA**2, cov


def linear_model(x, y, prior_sd=PRIOR_SD):
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, prior_sd, shape=x.shape[1])
        pm.Normal("y", x @ beta, SIGMA, observed=y)
    return model


def sample(model, seed):
    with model:
        return pm.sample(draws=1000, tune=500, chains=4, cores=1, random_seed=seed, progressbar=False,
                         compute_convergence_checks=False)


@pytest.fixture(scope="module")
def linear_fit(linear):
    x, y = linear
    model = linear_model(x, y)
    return model, sample(model, seed=11), linear_log_z(x, y, PRIOR_SD)


@pytest.fixture(scope="module")
def scale_fit():
    """y_i ~ N(mu, s²), mu ~ N(0, 1), s ~ HalfNormal(1); ln Z by integrating mu analytically and s by quadrature."""
    rng = np.random.default_rng(7)
    y = rng.normal(0.3, 0.7, size=20)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 1.0)
        s = pm.HalfNormal("s", 1.0)
        pm.Normal("y", mu, s, observed=y)

    def log_integrand(scale):  # ln p(y | s) p(s), mu marginalised: y ~ N(0, s² I + 1 1ᵀ)
        cov = scale**2 * np.eye(len(y)) + np.ones((len(y), len(y)))
        return stats.multivariate_normal(np.zeros(len(y)), cov).logpdf(y) + stats.halfnorm.logpdf(scale)

    grid = np.linspace(0.05, 3.0, 300)
    peak = max(log_integrand(g) for g in grid)
    value, quad_err = integrate.quad(lambda s_: np.exp(log_integrand(s_) - peak), 0.0, 20.0, limit=200,
                                     epsabs=0.0, epsrel=1e-10)
    assert quad_err < 1e-8 * value
    return model, sample(model, seed=12), peak + math.log(value)


# ---------------------------------------------------------------------------------------------- estimators


def assert_matches(estimate, truth):
    assert len(estimate.by_replicate) >= 4
    assert 0 < estimate.err < 0.3, estimate
    assert abs(estimate.value - truth) <= 3 * estimate.err, (estimate, truth)


def test_bridge_sampling_recovers_analytic_evidence(linear_fit):
    model, trace, truth = linear_fit
    assert_matches(bridge_sampling(model, trace, seed=1), truth)


def test_smc_recovers_analytic_evidence(linear_fit):
    model, _, truth = linear_fit
    assert_matches(smc_evidence(model, seed=2), truth)


def test_bridge_sampling_includes_the_jacobian_of_a_positive_scale(scale_fit):
    model, trace, truth = scale_fit
    estimate = bridge_sampling(model, trace, seed=3)
    assert_matches(estimate, truth)
    # without the log-transform's Jacobian the estimate would be off by about E_post[ln s] ≈ ln 0.7: far outside
    assert 3 * estimate.err < 0.1


def test_smc_with_a_positive_scale(scale_fit):
    model, _, truth = scale_fit
    assert_matches(smc_evidence(model, seed=4), truth)


def test_laplace_evidence_is_exact_for_a_gaussian_posterior(linear):
    x, y = linear
    truth = linear_log_z(x, y, PRIOR_SD)
    result = laplace_evidence(linear_model(x, y), seed=5)
    assert abs(result.laplace - truth) < 1e-4  # Gaussian posterior: the Laplace approximation is exact
    assert_matches(result.evidence, truth)
    assert result.reliable and not result.hessian_regularised and result.ndim == 3
    mean, _ = linear_posterior(x, y, PRIOR_SD)
    np.testing.assert_allclose(result.mode["beta"], mean, atol=1e-5)


def test_laplace_evidence_corrects_a_skewed_posterior_by_importance_sampling(scale_fit):
    model, _, truth = scale_fit
    result = laplace_evidence(model, seed=6)
    assert_matches(result.evidence, truth)
    assert result.reliable
    # the log-scale posterior of 20 points is skewed: the Laplace value alone is off by more than the IS error
    assert abs(result.laplace - truth) > 3 * result.evidence.err


def test_estimators_refuse_too_few_replicates(linear_fit):
    model, trace, _ = linear_fit
    with pytest.raises(InputError, match="at least 4"):
        bridge_sampling(model, trace, replicates=2)
    with pytest.raises(InputError, match="at least 4"):
        smc_evidence(model, replicates=3)


def test_smc_evidence_read_from_the_last_stage_of_ragged_runs():
    # runs with different numbers of tempering stages arrive as an object array of per-chain lists, NaN until β = 1
    stages = np.empty(4, dtype=object)
    stages[:] = [[np.nan, -10.0], [np.nan, np.nan, -10.2], [np.nan, -9.9], [np.nan, np.nan, np.nan, -10.1]]
    tree = xr.DataTree.from_dict({"sample_stats": xr.Dataset({"log_marginal_likelihood": ("chain", stages)})})
    runs = np.array([-10.0, -10.2, -9.9, -10.1])
    estimate = smc_log_evidence(tree)
    assert estimate.by_replicate == tuple(runs)
    assert estimate.value == pytest.approx(math.log(np.mean(np.exp(runs))))
    assert estimate.err > np.std(runs, ddof=1) / 2  # widened for four runs, never narrowed


def test_final_stage_of_one_run_in_either_layout():
    from stsbayes.inference.evidence import final_stage_log_z
    # pm.sample_smc(chains=1) stores its stages as a flat array labelled "chain"; a multi-chain run, per-chain lists
    assert final_stage_log_z(np.array([np.nan, np.nan, -3.5])) == -3.5
    assert final_stage_log_z([[np.nan], [np.nan, -2.0]]) == -2.0
    with pytest.raises(InputError, match="never reached"):
        final_stage_log_z(np.array([np.nan, np.nan]))


# ---------------------------------------------------------------------------------------------- combine


def test_combine_is_inverse_variance_weighted():
    result = combine([Evidence(1.0, 1.0, (), "a"), Evidence(2.0, 0.5, (), "b")])
    assert result.value == pytest.approx((1.0 * 1 + 2.0 * 4) / 5)
    assert result.err == pytest.approx(1 / math.sqrt(5))
    assert result.by_estimator == {"a": 1.0, "b": 2.0}


def test_combine_agreement_within_three_combined_standard_errors():
    # 3 √(0.1² + 0.1²) = 0.424
    assert combine([Evidence(-10.0, 0.1, (), "smc"), Evidence(-10.4, 0.1, (), "bridge")]).agree
    assert not combine([Evidence(-10.0, 0.1, (), "smc"), Evidence(-10.45, 0.1, (), "bridge")]).agree
    three = [Evidence(-10.0, 0.1, (), "a"), Evidence(-10.3, 0.1, (), "b"), Evidence(-10.6, 0.1, (), "c")]
    assert not combine(three).agree  # a and c are 0.6 apart
    with pytest.raises(InputError):
        combine([Evidence(-10.0, 0.0, (), "a")])


# ---------------------------------------------------------------------------------------------- Bayes factors


def test_class_log_bf_by_hand():
    log_z = {"mzm": -100.0, "ysr": -95.0, "ysr2": -96.0}
    errs = {"mzm": 0.1, "ysr": 0.2, "ysr2": 0.3}
    # equal within-class odds: ln[(e^-95 + e^-96)/2] + 100
    ln_bf, err = class_log_bf(log_z, None, errs)
    assert ln_bf == pytest.approx(5.0 + math.log((1 + math.exp(-1)) / 2), abs=1e-12)
    w_ysr = 1 / (1 + math.exp(-1))
    assert err == pytest.approx(math.sqrt((w_ysr * 0.2) ** 2 + ((1 - w_ysr) * 0.3) ** 2 + 0.1**2), rel=1e-12)
    # odds 1 : 3 within the class; the class's total odds do not enter
    ln_bf, _ = class_log_bf(log_z, {"mzm": 7.0, "ysr": 1.0, "ysr2": 3.0}, errs)
    assert ln_bf == pytest.approx(math.log((math.exp(5) + 3 * math.exp(4)) / 4), abs=1e-12)
    # one offset hypothesis: the plain Bayes factor, whatever its odds
    assert class_log_bf({"mzm": -3.0, "ysr": (-1.5, 0.2)}, {"ysr": 9.0})[0] == pytest.approx(1.5)
    with pytest.raises(InputError, match="mzm"):
        class_log_bf({"ysr": -1.0, "ysr2": -2.0}, None)


def test_log_bayes_factors_pairs_and_posterior_probabilities():
    log_z = {"ysr2": -1506.3, "mzm": -1520.3, "ysr": -1508.2}
    errs = {"mzm": 0.12, "ysr": 0.1, "ysr2": 0.1}
    pairs = log_bayes_factors(log_z, errs)
    assert list(pairs) == ["ysr_vs_mzm", "ysr2_vs_mzm", "ysr2_vs_ysr"]
    assert pairs["ysr_vs_mzm"]["value"] == pytest.approx(12.1)
    assert pairs["ysr2_vs_ysr"]["value"] == pytest.approx(1.9)
    assert pairs["ysr2_vs_mzm"]["err"] == pytest.approx(math.hypot(0.12, 0.1))
    probs = posterior_probabilities(log_z)
    assert probs["ysr2"] == pytest.approx(1 / (1 + math.exp(-1.9) + math.exp(-14.0)))
    assert probs["mzm"] == pytest.approx(math.exp(-14.0) * probs["ysr2"])  # architecture.md's 7.2e-07
    odds = posterior_probabilities({"mzm": 0.0, "ysr": 0.0}, {"mzm": 3.0, "ysr": 1.0})
    assert odds == pytest.approx({"mzm": 0.75, "ysr": 0.25})


# ---------------------------------------------------------------------------------------------- verdicts


def test_strength_boundaries():
    # x = |ln B| − 2 err, exact in binary floating point
    assert strength(1.999, 0.5) == "inconclusive"
    assert strength(2.0, 0.5) == "positive"
    assert strength(3.999, 0.5) == "positive"
    assert strength(4.0, 0.5) == "strong"
    assert strength(6.0, 0.5) == "strong"
    assert strength(6.001, 0.5) == "very strong"
    assert strength(-6.001, 0.5) == "very strong"  # |ln B|: the side is the verdict's, not the strength's
    assert strength(30.0, 14.75) == "inconclusive"  # a large error makes any ln B conservative


ARCH_LOG_Z = {"mzm": (-1520.3, 0.12), "ysr": (-1508.2, 0.15), "ysr2": (-1506.3, 0.15)}


def test_verdict_blocks_follow_architecture():
    halved = {h: (v + (0.6 if h != "mzm" else 0.0), e) for h, (v, e) in ARCH_LOG_Z.items()}
    doubled = {h: (v - (0.7 if h != "mzm" else 0.0), e) for h, (v, e) in ARCH_LOG_Z.items()}
    block = verdicts(ARCH_LOG_Z, halved=halved, doubled=doubled, estimators_agree=True, ppc_passed=True,
                     converged=True)
    zero = block["zero_vs_offset"]
    assert zero["favoured"] == "offset"
    assert zero["ln_bf"] == pytest.approx(14.0 + math.log((1 + math.exp(-1.9)) / 2))
    assert zero["strength"] == "very strong" and zero["capped_by"] is None
    assert zero["best_offset_hypothesis"] == "ysr2"
    assert zero["prior_sensitivity"]["halved"]["ln_bf"] == pytest.approx(zero["ln_bf"] + 0.6)
    assert zero["prior_sensitivity"]["doubled"]["strength"] == "very strong"
    pair = block["mzm_vs_ysr2"]
    assert pair["favoured"] == "ysr2" and pair["ln_bf"] == pytest.approx(14.0)
    assert pair["err"] == pytest.approx(math.hypot(0.12, 0.15))
    assert "best_offset_hypothesis" not in pair
    text = statement(block)
    assert text.startswith("The data favour an offset-energy origin over a zero-energy state: ln B = 13.4 ± 0.2 "
                           "(very strong; best offset hypothesis ysr2), stable under halving and doubling")
    assert "The data favour ysr2 over mzm: ln B = 14.0 ± 0.2 (very strong)" in text


def test_zero_favoured_and_inapplicable_question():
    block = verdicts({"mzm": (-10.0, 0.1), "ysr": (-14.0, 0.1)})
    assert block["mzm_vs_ysr2"] is None
    zero = block["zero_vs_offset"]
    assert zero["favoured"] == "zero" and zero["ln_bf"] == pytest.approx(4.0)
    assert zero["strength"] == "strong" and zero["prior_sensitivity"] is None
    pair = verdict("mzm_vs_ysr2", {"mzm": (-10.0, 0.1), "ysr2": (-16.0, 0.1)})
    assert pair["favoured"] == "mzm" and pair["ln_bf"] == pytest.approx(6.0)
    assert "zero-energy state over an offset-energy origin" in statement(block)
    # a series says what the two sides mean for its spectra
    assert statement(block, "field").startswith("The data favour a field-inert zero-energy state (mzm) over a "
                                                "field-responsive state (ysr): ln B = 4.0")
    with pytest.raises(InputError, match="unknown series kind 'pressure'"):
        statement(block, "pressure")


def test_quality_caps_limit_strength_to_positive():
    log_z = {"mzm": (-100.0, 0.1), "ysr": (-90.0, 0.1), "ysr2": (-88.0, 0.1)}
    block = verdicts(log_z, estimators_agree={"mzm": True, "ysr": False, "ysr2": True},
                     ppc_passed={"ysr2": False}, converged={"mzm": True, "ysr": True, "ysr2": True})
    zero, pair = block["zero_vs_offset"], block["mzm_vs_ysr2"]
    assert zero["strength"] == "positive" and zero["capped_by"] == ["estimators", "ppc"]
    # ysr does not enter mzm vs ysr2, so its estimator disagreement does not cap that question
    assert pair["strength"] == "positive" and pair["capped_by"] == ["ppc"]
    assert ("(positive; best offset hypothesis ysr2; capped at positive by disagreeing evidence estimators and a "
            "failed posterior predictive check)") in statement(block)
    assert verdict("zero_vs_offset", log_z, converged=False)["capped_by"] == ["convergence"]
    # a cap never raises a verdict: an inconclusive one stays inconclusive, the reason is still listed
    weak = verdict("zero_vs_offset", {"mzm": (-1.0, 0.1), "ysr": (-1.2, 0.1)}, estimators_agree=False)
    assert weak["strength"] == "inconclusive" and weak["capped_by"] == ["estimators"]
    assert "(inconclusive; caution: disagreeing evidence estimators)" in statement({"zero_vs_offset": weak})


def test_prior_sensitivity_takes_the_weakest_of_three():
    log_z = {"mzm": (-100.0, 0.1), "ysr2": (-88.0, 0.1)}  # ln B = 12: very strong
    halved = {"mzm": (-100.0, 0.1), "ysr2": (-95.0, 0.1)}  # 5 − 0.28: strong
    doubled = {"mzm": (-100.0, 0.1), "ysr2": (-86.0, 0.1)}  # very strong
    block = verdict("mzm_vs_ysr2", log_z, halved=halved, doubled=doubled, converged=False)
    assert block["strength"] == "positive" and block["capped_by"] == ["prior", "convergence"]
    assert block["prior_sensitivity"]["halved"] == {"strength": "strong", "ln_bf": pytest.approx(5.0)}
    only_prior = verdict("mzm_vs_ysr2", log_z, halved=halved, doubled=doubled)
    assert only_prior["strength"] == "strong" and only_prior["capped_by"] == ["prior"]
    assert "weakened from very strong when the bound-state priors are halved" in statement({"x": only_prior})
    reversed_ = verdict("mzm_vs_ysr2", log_z, halved={"mzm": (-100.0, 0.1), "ysr2": (-104.0, 0.1)},
                        doubled=doubled)
    assert reversed_["prior_sensitivity"]["halved"] == {"strength": "inconclusive", "ln_bf": pytest.approx(-4.0)}
    assert reversed_["strength"] == "inconclusive" and reversed_["capped_by"] == ["prior"]
    with pytest.raises(InputError):
        verdict("mzm_vs_ysr2", log_z, halved=halved)


# ---------------------------------------------------------------------------------------------- reweighting


def exact_posterior_draws(x, y, prior_sd, n, seed):
    mean, cov = linear_posterior(x, y, prior_sd)
    return np.random.default_rng(seed).multivariate_normal(mean, cov, size=n)


def test_prior_reweighting_to_a_doubled_prior_matches_analytic_evidence(linear):
    x, y = linear
    beta = exact_posterior_draws(x, y, PRIOR_SD, 4000, seed=5)
    old = stats.norm.logpdf(beta, 0.0, PRIOR_SD).sum(axis=1)
    new = stats.norm.logpdf(beta, 0.0, 2 * PRIOR_SD).sum(axis=1)
    result = prior_reweighting(linear_log_z(x, y, PRIOR_SD), old, new)
    truth = linear_log_z(x, y, 2 * PRIOR_SD)
    assert abs(truth - linear_log_z(x, y, PRIOR_SD)) > 1.0  # the prior change matters
    assert result.pareto_k < 0.7 and not result.needs_rerun
    assert 0 < result.err == result.reweighting_err < 0.05  # the old ln Z was given exactly
    assert abs(result.value - truth) <= 3 * result.err, (result, truth)
    with_err = prior_reweighting((linear_log_z(x, y, PRIOR_SD), 0.1), old, new)
    assert with_err.err == pytest.approx(math.hypot(0.1, result.reweighting_err))


def test_prior_reweighting_flags_a_change_too_large(linear):
    x, y = linear
    beta = exact_posterior_draws(x, y, PRIOR_SD, 4000, seed=6)
    old = stats.norm.logpdf(beta, 0.0, PRIOR_SD).sum(axis=1)
    new = stats.norm.logpdf(beta, 0.0, 0.02).sum(axis=1)  # far narrower than the posterior
    assert prior_reweighting(0.0, old, new).needs_rerun


# ---------------------------------------------------------------------------------------------- LOO


def exact_elpd_loo(x, y, prior_sd):
    """Σ_i ln p(y_i | y_-i): the leave-one-out posterior of β is normal, so each predictive density is too."""
    total = 0.0
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        mean, cov = linear_posterior(x[keep], y[keep], prior_sd)
        total += stats.norm.logpdf(y[i], x[i] @ mean, math.sqrt(SIGMA**2 + x[i] @ cov @ x[i]))
    return total


def loo_tree(x, y, seed):
    beta = exact_posterior_draws(x, y, PRIOR_SD, 4000, seed).reshape(4, 1000, -1)
    log_lik = stats.norm.logpdf(y, np.einsum("cdk,nk->cdn", beta, x), SIGMA)
    return from_dict({"posterior": {"beta": beta}, "log_likelihood": {"y": log_lik}, "observed_data": {"y": y}},
                     dims={"beta": ["coef"], "y": ["obs"]})


def test_loo_summary_matches_exact_leave_one_out(linear):
    x, y = linear
    reduced = x[:, :1]  # misses the largest coefficient: predicts far worse
    summary = loo_summary({"full": loo_tree(x, y, seed=8), "reduced": loo_tree(reduced, y, seed=9)})
    assert summary["full"]["elpd_loo"] == pytest.approx(exact_elpd_loo(x, y, PRIOR_SD), abs=0.2)
    assert summary["reduced"]["elpd_loo"] == pytest.approx(exact_elpd_loo(reduced, y, PRIOR_SD), abs=0.2)
    assert summary["full"]["elpd_loo_se"] > 0 and summary["full"]["pareto_k_max"] < 0.7
    weights = [s["stacking_weight"] for s in summary.values()]
    assert sum(weights) == pytest.approx(1.0, abs=1e-6)
    assert summary["full"]["stacking_weight"] > 0.9


# ------------------------------------------------------------------------------------------ Savage-Dickey


def _nested_normal_mean(y_mean, n=30, noise=0.1, sigma=0.2):
    """y_i ~ N(eps, noise): eps ~ HalfNormal(sigma) against eps = 0. Returns the exact ln B (quadrature) and the
    posterior of eps (a normal truncated at 0) to draw from."""
    y = y_mean + noise * np.linspace(-1, 1, n) / np.std(np.linspace(-1, 1, n))  # sample mean y_mean exactly
    loglik = lambda e: stats.norm.logpdf(y, e, noise).sum()  # noqa: E731
    base = loglik(0.0)
    z1, _ = integrate.quad(lambda e: stats.halfnorm.pdf(e, scale=sigma) * math.exp(loglik(e) - base), 0, 2,
                           points=[max(y_mean, 0.0)], epsabs=1e-13, epsrel=1e-11)
    precision = n / noise**2 + 1 / sigma**2
    mean, sd = (n * y.mean() / noise**2) / precision, precision**-0.5
    return math.log(z1), stats.truncnorm(-mean / sd, np.inf, loc=mean, scale=sd), sigma


@pytest.mark.parametrize("y_mean", [-0.02, 0.0, 0.02])
def test_savage_dickey_matches_the_exact_bayes_factor_of_a_nested_pair(y_mean):
    """Posteriors piled against 0 (data at, below and just above eps = 0): the density at the boundary from draws,
    with a slope there (y_mean != 0) that a reflected kernel estimate would turn into a bias."""
    truth, posterior, sigma = _nested_normal_mean(y_mean)
    draws = posterior.rvs(size=(4, 4000), random_state=np.random.default_rng(5))
    est = savage_dickey(draws, stats.halfnorm.pdf(0, scale=sigma))
    assert est.method == "savage_dickey" and len(est.by_replicate) == 4
    assert abs(est.value - truth) < 3 * est.err + 0.02, (est, truth)
    assert est.err < 0.1
    # the boundary density itself (pooled over chains; one chain of 4000 draws scatters by about 10 %)
    assert boundary_density(draws).mean() == pytest.approx(posterior.pdf(0.0), rel=0.08)


def test_savage_dickey_says_nan_when_the_posterior_keeps_away_from_zero():
    draws = stats.norm(0.1, 0.01).rvs(size=(4, 2000), random_state=np.random.default_rng(6))
    assert math.isnan(savage_dickey(draws, 4.0).value)
    with pytest.raises(InputError, match=">= 0"):
        boundary_density(-draws)


# ---------------------------------------------------------------------------------------------- mirror symmetry
#
# ysr and ysr2 sample their states as one (n, 4) variable (hypotheses.StateMixture). Relabelling ysr2's two states
# leaves prior and likelihood unchanged and, in those coordinates, flips the sign of the second row
# (hypotheses.state_coordinates), so offset data give two mirror modes while the chains sit in one. A toy with the
# same name and an analytic evidence: the rows are normal (no transform), z_kc ~ N(0, S_c); row 0 observes e_c =
# z_0c + N(0, s_c) and row 1, with an unknown sign, d_c = ±z_1c + N(0, s_c): L = Π_c N(e_c; z_0c, s_c) · mean_± Π_c
# N(d_c; ±z_1c, s_c). The prior is symmetric, so Z = Π_c N(e_c; 0, sqrt(S_c² + s_c²)) N(d_c; 0, sqrt(S_c² + s_c²)).

MIRROR_PRIOR, MIRROR_NOISE = np.array([0.2, 1.4, 1.0, 1.0]), np.array([0.02, 0.3, 0.1, 0.1])
# row 1's first coordinate negative and its third (the weight split) positive: with them, state 0 is the lower
# energy (hypotheses.state_energies), so the identity image is the folded one
MIRROR_DATA = {1: ([0.1, 1.0, -0.3, 0.2],), 2: ([0.1, 1.0, -0.3, 0.2], [-0.3, -0.5, 0.4, 0.2])}


def mirror_model(n=1):
    import pytensor.tensor as pt
    from stsbayes.inference.hypotheses import STATE_LAW
    rows, s = MIRROR_DATA[n], MIRROR_NOISE
    with pm.Model() as model:
        z = pm.Normal(STATE_LAW, 0.0, MIRROR_PRIOR, shape=(n, 4))
        pm.Normal("other", 0.0, 1.0)  # coordinates the images leave alone
        pm.LogNormal("positive", 0.0, 1.0)
        pm.Potential("row_0", pm.logp(pm.Normal.dist(z[0], s), np.array(rows[0])).sum())
        if n == 2:
            signed = [pm.logp(pm.Normal.dist(sign * z[1], s), np.array(rows[1])).sum() for sign in (1, -1)]
            pm.Potential("row_1", pt.logsumexp(pt.stack(signed)) - np.log(2.0))
    truth = sum(stats.norm.logpdf(row, 0, np.hypot(MIRROR_PRIOR, s)).sum() for row in rows)
    return model, truth


def one_mirror_mode_trace(n=1, n_chain=4, n_draw=1000, seed=0):
    """Exact draws from the identity image's mode only, as chains started together at one mode would give."""
    rng, var = np.random.default_rng(seed), 1.0 / (1.0 / MIRROR_PRIOR**2 + 1.0 / MIRROR_NOISE**2)
    rows = [rng.normal(var * np.array(obs) / MIRROR_NOISE**2, np.sqrt(var), (n_chain, n_draw, 4))
            for obs in MIRROR_DATA[n]]
    return from_dict({"posterior": {"states": np.stack(rows, axis=-2),
                                    "other": rng.normal(0, 1, (n_chain, n_draw)),
                                    "positive": rng.lognormal(0, 1, (n_chain, n_draw))}})


def test_state_coordinates_images_and_fold():
    from stsbayes.inference.evidence import fold, mirror_images
    from stsbayes.inference.hypotheses import state_coordinates
    model, _ = mirror_model(2)
    states = state_coordinates(model)
    # value_vars order: states (0-7, two rows), other (8), positive_log__ (9)
    assert states.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    perms, signs = mirror_images(10, states)
    assert (perms == np.arange(10)).all() and (signs[0] == 1).all()
    np.testing.assert_array_equal(signs[1], [1, 1, 1, 1, -1, -1, -1, -1, 1, 1])
    canonical = np.array([0.1, 1.0, -0.3, 0.2, -0.3, -0.5, 0.4, 0.2, 0.7, 0.1])  # state 0 the lower energy
    images = canonical[perms] * signs
    assert len({tuple(i) for i in images}) == 2
    np.testing.assert_array_equal(fold(images, states), np.tile(canonical, (2, 1)))
    assert state_coordinates(mirror_model(1)[0]).tolist() == [[0, 1, 2, 3]]
    assert len(mirror_images(6, state_coordinates(mirror_model(1)[0]))[0]) == 1  # one state: no image


def test_state_energies_are_the_states_eps():
    """The numpy energies that fold sorts by are the model's eps, for one state and for two."""
    import pytensor
    import pytensor.tensor as pt
    from stsbayes.inference.hypotheses import StateMixture, state_energies
    rng, v = np.random.default_rng(3), pt.dmatrix("v")
    for n in (1, 2):
        forward = pytensor.function([v], StateMixture(n).forward(v))
        law = np.column_stack([rng.uniform(0.001, 0.3, n), rng.normal(0, 2, n), rng.lognormal(-1, 1, n),
                               rng.lognormal(-4, 1, n)])
        np.testing.assert_allclose(state_energies(forward(law)), law[:, 0], rtol=1e-9)


def test_linear_model_has_no_mirror(linear):
    from stsbayes.inference.hypotheses import state_coordinates
    assert state_coordinates(linear_model(*linear)) is None


def test_bridge_sampling_names_where_the_density_is_not_finite():
    """A draw outside the model's support (a weight of exactly 0) is refused, naming the draws and the variable."""
    model, _ = mirror_model(1)
    trace = one_mirror_mode_trace(1)
    trace["posterior"]["positive"][0, 3] = 0.0
    with pytest.raises(InputError, match=r"at 1 of 4000 posterior draws \(unconstrained positive_log__ not finite\)"):
        bridge_sampling(model, trace, seed=7)


@pytest.mark.parametrize("n", [1, 2])
def test_bridge_sampling_counts_the_mirror_modes_the_chains_never_visit(n, monkeypatch):
    import stsbayes.inference.evidence as E
    model, truth = mirror_model(n)
    trace = one_mirror_mode_trace(n)
    assert_matches(bridge_sampling(model, trace, seed=7), truth)
    if n == 1:
        return  # one state: no relabelling
    # the test can fail: a proposal on the visited mode alone finds 1 / n! of the evidence
    monkeypatch.setattr(E, "state_coordinates", lambda model: None)
    blind = bridge_sampling(model, trace, seed=7)
    lost = np.log(math.factorial(n))
    assert abs(blind.value - (truth - lost)) <= 3 * blind.err + 0.02


def test_laplace_evidence_counts_the_mirror_modes(monkeypatch):
    import stsbayes.inference.evidence as E
    model, truth = mirror_model(2)
    result = laplace_evidence(model, seed=8)
    assert_matches(result.evidence, truth)
    assert result.reliable
    assert abs(result.laplace - truth) < 0.05  # two Gaussian modes, each counted once
    monkeypatch.setattr(E, "state_coordinates", lambda model: None)  # the control: one mode's worth
    blind = laplace_evidence(model, seed=8)
    assert abs(blind.evidence.value - (truth - np.log(2.0))) < 0.05
    assert blind.laplace == pytest.approx(result.laplace - np.log(2.0), abs=1e-6)


def test_reference_smc_counts_the_mirror_modes(monkeypatch):
    import stsbayes.comparison as C
    model, truth = mirror_model(2)
    trace = one_mirror_mode_trace(2)
    assert_matches(C.reference_smc_evidence(model, trace, draws=500, seed=9), truth)
    monkeypatch.setattr(C.H, "state_coordinates", lambda model: None)  # the control: one mode's worth
    blind = C.reference_smc_evidence(model, trace, draws=500, seed=9)
    assert abs(blind.value - (truth - np.log(2.0))) <= 3 * blind.err + 0.02


def test_reference_smc_fits_each_run_to_the_other_chains(monkeypatch):
    import stsbayes.comparison as C
    model, _ = mirror_model(2)
    trace = one_mirror_mode_trace(2)
    seen, build = [], C.reference_model
    monkeypatch.setattr(C, "reference_model", lambda model, draws: seen.append(draws) or build(model, draws))
    estimate = C.reference_smc_evidence(model, trace, draws=200, seed=3)
    flat = C.UnconstrainedDensity(model).to_unconstrained(trace["posterior"].to_dataset())
    assert len(seen) == len(estimate.by_replicate) == 4
    for r, draws in enumerate(seen):  # run r's reference leaves out chain r: four different references
        np.testing.assert_array_equal(draws, np.delete(flat, r, axis=0).reshape(-1, flat.shape[-1]))
    assert len(set(estimate.by_replicate)) == 4
    with pytest.raises(InputError, match="too few to fit 4 SMC references"):
        C.reference_smc_evidence(model, one_mirror_mode_trace(2, n_draw=5), draws=200, seed=3)  # 15 for 10
