"""The correlated discrepancy term (physics.md §3, misspecification): AR(1) marginalised exactly by a Kalman filter,
a GP by the Hilbert-space approximation, both simulated by `simulate` and fitted.

The reduced fits (2 chains x 200) are too short for the convergence gates; they check what the term is for: data
with correlated residuals fail the predictive check without it, pass with it, and the gap is still recovered.
"""

import numpy as np
import pymc as pm
import pytensor
from pytensor.graph.replace import clone_replace
import pytest
from scipy import stats

import stsbayes
from stsbayes.errors import InputError
from stsbayes.inference import FitData, build_model
from stsbayes.inference.model import build_joint_model
from stsbayes.inference import discrepancy as D
from stsbayes.inference import priors as P
from stsbayes.models import expected_signal, load_spec, simulate

NIS = {"tip": {"kind": "metal"}, "sample": {"delta": [1.0], "gamma": [0.03], "weight": [1.0]},
       "junction": {"T_eff": 0.3, "modulation_rms": 0.02}}
# a gamma prior floor of 0.02 meV keeps the grid coarse (cheap reduced fits); T_eff and the modulation fixed
FIT = {"tip": {"kind": "metal"},
       "sample": {"delta": [{"dist": "normal", "mu": 1.1, "sigma": 0.2}],
                  "gamma": [{"dist": "truncnormal", "mu": 0.03, "sigma": 0.03, "lower": 0.02}]},
       "junction": {"modulation_rms": 0.02, "T_eff": 0.3}}


def with_discrepancy(spec, kind, scale=None, length=None, **observation):
    obs = {"discrepancy": kind, **observation}
    if scale is not None:
        obs["discrepancy_scale"] = scale
    if length is not None:
        obs["discrepancy_length"] = length
    return {**spec, "observation": {**spec.get("observation", {}), **obs}}


def nis_data(bias, y):
    return FitData(bias=bias, y=y, units="normalised", temperature_K=0.3)


# ------------------------------------------------------------------------------------------------ (1) AR(1) likelihood
def test_ar1_likelihood_is_the_exact_multivariate_normal():
    """The model's ln L (Kalman filter) equals the dense N(mu, scale² exp(-|ΔV|/length) + diag sigma²), on an uneven
    bias grid with per-point sigma; the pointwise (one-step-ahead) terms sum to it, also batched over draws."""
    rng = np.random.default_rng(0)
    bias = np.sort(rng.uniform(-2.0, 2.0, 30))
    mu = np.sin(bias)
    sigma = rng.uniform(0.01, 0.03, 30)
    y = mu + rng.normal(0.0, 0.05, 30)
    with pm.Model() as model:
        D.ar1_likelihood("y", mu, sigma, 0.03, 0.25, y, bias, None)
    total = model.compile_logp()({})
    cov = 0.03**2 * np.exp(-np.abs(bias[:, None] - bias[None, :]) / 0.25) + np.diag(sigma**2)
    exact = stats.multivariate_normal(mu, cov).logpdf(y)
    assert total == pytest.approx(exact, abs=1e-8)
    scales, lengths = np.array([0.03, 0.05]), np.array([0.25, 0.6])
    terms, mean, var = D.ar1_conditionals(bias, np.stack([y - mu] * 2), np.stack([sigma**2] * 2), scales, lengths)
    assert terms[0].sum() == pytest.approx(exact, abs=1e-8)
    cov2 = 0.05**2 * np.exp(-np.abs(bias[:, None] - bias[None, :]) / 0.6) + np.diag(sigma**2)
    assert terms[1].sum() == pytest.approx(stats.multivariate_normal(mu, cov2).logpdf(y), abs=1e-8)
    # the first point's predictive is the stationary marginal
    assert mean[0, 0] == 0.0 and var[0, 0] == pytest.approx(0.03**2 + sigma[0] ** 2)


def test_fit_model_with_ar1_has_two_parameters_not_one_per_point():
    bias = np.linspace(-3, 3, 61)
    data = nis_data(bias, expected_signal(NIS, bias))
    model, info = build_model(data, with_discrepancy(FIT, "ar1"), metal_tip=True)
    assert {"discrepancy_scale", "discrepancy_length"} <= set(info.parameters)
    assert sum(int(np.prod(v.shape.eval())) for v in model.free_RVs) < 12  # no latent value per point
    # the built model's ln L is the dense multivariate normal around its own expected spectrum
    inputs = {rv: rv.type() for rv in model.free_RVs}
    y = data.y + 0.02 * np.sin(7 * bias)
    loglik = pytensor.function(list(inputs.values()), [clone_replace(pm.logp(model["y"], y), inputs),
                                                       clone_replace(model["mu"], inputs)],
                               mode="FAST_COMPILE", on_unused_input="ignore")
    point = {"delta": np.array([1.0]), "gamma_0": np.array(0.03), "g_n": np.array(1.0), "bias_offset": np.array(0.0),
             "b0": np.array(0.0), "b1": np.array(0.0), "discrepancy_scale": np.array(0.03),
             "discrepancy_length": np.array(0.3), "sigma": np.array(0.01)}
    total, mu = loglik(*[point[rv.name] for rv in inputs])
    cov = 0.03**2 * np.exp(-np.abs(bias[:, None] - bias[None, :]) / 0.3) + 0.01**2 * np.eye(len(bias))
    assert total == pytest.approx(stats.multivariate_normal(mu, cov).logpdf(y), abs=1e-8)
    model, info = build_model(data, with_discrepancy(FIT, "ar1", scale=0.02, length=0.3), metal_tip=True)
    assert "discrepancy_scale" not in info.parameters and "discrepancy_length" not in info.parameters


def test_joint_fits_name_the_discrepancy_per_spectrum():
    bias = np.linspace(-3, 3, 61)
    data = nis_data(bias, expected_signal(NIS, bias))
    model, info = build_joint_model([data, data], with_discrepancy(FIT, "gp"), labels=["on", "off"], metal_tip=True)
    assert {"on:discrepancy_scale", "on:discrepancy_length", "off:discrepancy_scale",
            "off:discrepancy_length"} <= set(info.parameters)
    assert "on:discrepancy" in model.named_vars and "off:discrepancy_coeffs" in model.named_vars


def test_default_priors_are_the_documented_ones():
    bias = np.linspace(-3, 3, 61)
    data = nis_data(bias, 2.0 * expected_signal(NIS, bias))
    data.units = "uS"
    model, _ = build_model(data, with_discrepancy(FIT, "gp"), metal_tip=True)
    scale, length = pm.draw([model["discrepancy_scale"], model["discrepancy_length"]], draws=20000, random_seed=1)
    s = data.scale
    assert np.std(scale) == pytest.approx(P.DISCREPANCY_SCALE_FRACTION * s * np.sqrt(1 - 2 / np.pi), rel=0.03)
    assert np.median(length) == pytest.approx(0.3, rel=0.03)
    assert np.std(np.log(length)) == pytest.approx(0.5, rel=0.03)


# ------------------------------------------------------------------------------------------------ (2) HSGP accuracy
@pytest.mark.parametrize("points,half", [(151, 3.0), (401, 5.0), (81, 1.0)])
def test_hsgp_covariance_matches_expquad_over_the_window(points, half):
    """Over the bias window, the model's GP covariance is within HSGP_COVARIANCE_TOLERANCE (1 %) of scale² of the
    exact ExpQuad at the shortest, typical and longest plausible lengths of the default prior."""
    bias = np.linspace(-half, half, points) + 0.4  # off-centre windows too
    entry = P.discrepancy_length_entry(None)
    step = bias[1] - bias[0]
    lengths = [D.lower_reach(entry, D.MIN_STEPS_PER_LENGTH * step), 0.3, D.upper_reach(entry)]
    scale = 0.02
    for length in lengths:
        with pm.Model():
            f = D.hsgp_discrepancy("f", bias, scale, length, entry, None)
            coeffs = pm.modelcontext(None)["f_coeffs"]
        basis = pytensor.function([], pytensor.gradient.jacobian(f, coeffs), mode="FAST_COMPILE")()
        approx = basis @ basis.T
        exact = scale**2 * np.exp(-0.5 * ((bias[:, None] - bias[None, :]) / length) ** 2)
        assert np.max(np.abs(approx - exact)) < D.HSGP_COVARIANCE_TOLERANCE * scale**2, length


# ------------------------------------------------------------------------------------------------ (3) simulate
@pytest.mark.parametrize("kind,length", [("ar1", 0.1), ("gp", 0.05)])
def test_simulate_adds_a_discrepancy_with_the_right_correlation(kind, length):
    """Residuals y - E[y] of simulated spectra: lag-1 autocorrelation s² rho / (s² + sigma²), rho the kernel at one
    bias step; their variance s² + sigma²."""
    bias = np.linspace(-5, 5, 401)
    scale, sigma = 0.03, 0.01
    spec = with_discrepancy(NIS, kind, scale, length, sigma=sigma)
    clean = expected_signal(spec, bias)
    step = bias[1] - bias[0]
    rho = np.exp(-step / length) if kind == "ar1" else np.exp(-0.5 * (step / length) ** 2)
    lag1, var = [], []
    for seed in range(8):
        r = simulate(spec, bias, seed=seed) - clean
        lag1.append(np.sum(r[1:] * r[:-1]) / np.sum(r * r))  # about zero mean by construction: no centring
        var.append(np.mean(r * r))
    expected = scale**2 * rho / (scale**2 + sigma**2)
    assert np.mean(lag1) == pytest.approx(expected, abs=0.04)
    assert np.mean(var) == pytest.approx(scale**2 + sigma**2, rel=0.3)
    # without the discrepancy the same spec's residuals are white
    white = simulate({**spec, "observation": {"sigma": sigma}}, bias, seed=0) - clean
    assert abs(np.sum(white[1:] * white[:-1]) / np.sum(white * white)) < 0.15


def test_simulate_names_the_discrepancy_only_when_asked():
    bias = np.linspace(-3, 3, 51)
    spec = with_discrepancy(NIS, "ar1", 0.03, 0.2)  # no white noise: the discrepancy alone
    assert np.std(simulate(spec, bias, seed=1) - expected_signal(NIS, bias)) > 0.005
    np.testing.assert_array_equal(simulate(NIS, bias, seed=1), expected_signal(NIS, bias))


# ------------------------------------------------------------------------------------------------ (4) reduced fits
def _fit(data, spec):
    return stsbayes.fit(data, spec, metal_tip=True, chains=2, draws=200, tune=200, seed=3, progress=False)


def _check_pair(kind):
    """Simulated with the term: the white-noise model fails the predictive check (lag-1 autocorrelation of the
    residuals flagged), the model with the term passes it and recovers the gap and the discrepancy's scale."""
    bias = np.linspace(-3, 3, 151)
    truth = with_discrepancy(NIS, kind, 0.03, 0.3, sigma=0.01)
    data = nis_data(bias, simulate(truth, bias, seed=2))
    ppc = _fit(data, FIT).summary()["diagnostics"]["ppc"]
    assert not ppc["passed"] and ppc["residual_lag1_autocorr"] > ppc["residual_lag1_limit"]
    result = _fit(data, with_discrepancy(FIT, kind))
    ppc = result.summary()["diagnostics"]["ppc"]
    assert ppc["passed"], ppc
    p = result.summary()["parameters"]
    assert abs(p["delta[0]"]["mean"] - 1.0) < 3 * p["delta[0]"]["sd"]
    assert {"discrepancy_scale", "discrepancy_length"} <= set(p)
    assert abs(p["discrepancy_scale"]["mean"] - 0.03) < 3 * p["discrepancy_scale"]["sd"]
    assert set(result.tree["predictions"]["mu"].dims) == {"sample", "bias_mV"}
    return result


def test_ar1_term_makes_the_predictive_check_pass():
    result = _check_pair("ar1")
    # the stored pointwise terms (one-step-ahead conditionals) sum, draw by draw, to the model's own ln L of the
    # observations, so LOO on them and the evidence estimators see the same likelihood
    stored = np.asarray(result.tree["log_likelihood"]["y"]).sum(axis=-1).ravel()
    model, post = result.model, result.tree["posterior"]
    inputs = {rv: rv.type() for rv in model.free_RVs}
    loglik = pytensor.function(list(inputs.values()),
                               clone_replace(pm.logp(model["y"], model.rvs_to_values[model["y"]]), inputs),
                               mode="FAST_COMPILE", on_unused_input="ignore")
    flat = {rv: np.asarray(post[rv.name]).reshape(-1, *np.shape(post[rv.name])[2:]) for rv in model.free_RVs}
    for i in (0, 57, 399):
        assert stored[i] == pytest.approx(float(loglik(*[flat[rv][i] for rv in inputs])), abs=1e-6)


@pytest.mark.slow
def test_gp_term_makes_the_predictive_check_pass():
    result = _check_pair("gp")
    assert "discrepancy" in result.tree["predictions"] and "discrepancy" not in result.tree["posterior"]


# ------------------------------------------------------------------------------------------------ (5) bad input
@pytest.mark.parametrize("observation,message", [
    ({"discrepancy": "ar1", "discrepancy_scale": 0.03, "discrepancy_length": 0.0}, "must be positive"),
    ({"discrepancy": "ar1", "discrepancy_scale": -0.1, "discrepancy_length": 0.3}, "must be positive"),
    ({"discrepancy": "white"}, "not one of none, ar1, gp"),
    ({"discrepancy": "gp", "discrepancy_length": {"dist": "normal", "mu": 0.3, "sigma": 0.1}}, "must be positive"),
    ({"discrepancy_scale": 0.03}, "discrepancy is \"none\""),
])
def test_bad_discrepancy_specs_name_the_problem(observation, message):
    with pytest.raises(InputError, match=message):
        load_spec({**NIS, "observation": observation})


def test_bad_discrepancy_combinations_are_explained():
    bias = np.linspace(-3, 3, 31)
    with pytest.raises(InputError, match="needs observation.discrepancy_scale to simulate"):
        simulate(with_discrepancy(NIS, "ar1", length=0.3), bias, noise=0.01)
    with pytest.raises(InputError, match="discrepancy_length is a prior in the spec, but simulate needs a true"):
        simulate(with_discrepancy(NIS, "gp", 0.03, {"dist": "lognormal", "mu": -1.0, "sigma": 0.5}), bias)
    data = nis_data(bias, expected_signal(NIS, bias))
    with pytest.raises(InputError, match="exact likelihood only with noise = \"normal\""):
        build_model(data, with_discrepancy(FIT, "ar1", noise="student_t"), metal_tip=True)
    fine = np.linspace(-10, 10, 2001)  # 0.01 mV steps: lengths down to 0.02 mV would need > 1000 basis functions
    with pytest.raises(InputError, match="GP basis functions"):
        build_model(nis_data(fine, expected_signal(NIS, fine)),
                    with_discrepancy(FIT, "gp", length={"dist": "uniform", "lower": 0.0001, "upper": 1.0}),
                    metal_tip=True)
