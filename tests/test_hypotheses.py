"""The ZECP hypotheses as priors (physics.md §2, §6): names, normalisation, and the reweighting prior.

An evidence is only as right as its prior's normalisation: a prior that integrated to 1/2 would shift ln Z by
ln 2 and hand a Bayes factor of 2 to the other side. ysr2's two states are unordered (iid) and reported sorted by
energy: the sorted pair's density is the iid one times 2!, and the sampling coordinates must carry the prior exactly.
"""

import math

import numpy as np
import pymc as pm
import pytest
from scipy import integrate, stats

from stsbayes.errors import InputError
from stsbayes.inference import hypotheses as H


def prior_model(hypothesis):
    with pm.Model() as model:
        H.bound_state_variables(hypothesis)
    return model


def test_check_accepts_lists_and_comma_strings():
    assert H.check("mzm, ysr,ysr2") == ["mzm", "ysr", "ysr2"]
    assert H.check(["ysr2", "mzm"]) == ["ysr2", "mzm"]


@pytest.mark.parametrize("bad, message", [("mzm,majorana", "unknown hypothesis majorana"), ("", "(none)"),
                                          ("mzm,mzm", "twice")])
def test_check_refuses_unknown_empty_and_repeated(bad, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        H.check(bad)


def test_number_of_states_and_reported_names():
    assert H.N_STATES == {"mzm": 1, "ysr": 1, "ysr2": 2}
    assert H.parameter_names("mzm") == ["width_0", "u2_0", "v2_0"]
    assert H.parameter_names("ysr2") == ["eps_0", "eps_1", "width_0", "width_1", "u2_0", "u2_1", "v2_0", "v2_1"]


def test_the_state_laws_prior_integrates_to_one_in_its_sampling_coordinates():
    """The density NUTS and the evidence estimators see, in (m, u) with StateMixture's Jacobian, integrates to 1: the
    map from (eps >= 0, r) is one to one, with no mirror image to count twice or miss. (ln w and ln width_excess are
    held fixed; there the density is the two normals of the log-normal priors.)"""
    model = prior_model("ysr")
    logp = model.compile_logp(vars=[model[H.STATE_LAW]], jacobian=True, sum=True)
    point = model.initial_point()
    name = model.rvs_to_values[model[H.STATE_LAW]].name
    lw, lg = -1.0, -3.5
    rest = (stats.norm.logpdf(lw, H.STATE_WEIGHT_PRIOR["mu"], H.STATE_WEIGHT_PRIOR["sigma"])
            + stats.norm.logpdf(lg, H.WIDTH_PRIOR["mu"], H.WIDTH_PRIOR["sigma"]))
    density = lambda u, m: math.exp(float(logp({**point, name: np.array([[m, u, lw, lg]])})) - rest)  # noqa: E731
    # s = s0 softplus(u) reaches 1 meV (5 prior sds of eps) at u = 200; m within ±eps
    mass, _ = integrate.dblquad(density, -1.2, 1.2, -40.0, 220.0, epsabs=1e-9, epsrel=1e-7)
    assert mass == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("hypothesis", ["ysr", "ysr2"])
def test_the_reported_states_are_sorted_half_normal_energies(hypothesis):
    """eps_all is each state's HalfNormal(EPS_SIGMA), sorted: for ysr2 the order statistics of two."""
    n = H.N_STATES[hypothesis]
    draws = pm.draw(prior_model(hypothesis)["eps_all"], draws=4000, random_seed=5).reshape(4000, n)
    half = stats.halfnorm(scale=H.EPS_SIGMA)
    assert np.all(np.diff(draws, axis=1) >= 0)
    assert stats.kstest(draws[:, 0], lambda q: 1 - (1 - half.cdf(q)) ** n).pvalue > 1e-3
    assert stats.kstest(draws[:, -1], lambda q: half.cdf(q) ** n).pvalue > 1e-3


def test_offset_states_report_their_weights_at_plus_and_minus_eps_sorted_by_eps():
    """u2 = w sigmoid(r) sits at +eps, v2 at -eps; the report sorts the states by eps and carries each state's
    width and weights with it."""
    model = prior_model("ysr2")
    names = ["eps_all", "u2_all", "v2_all", "width_all"]
    reported = model.compile_fn(model.replace_rvs_by_values([model[k] for k in names]), inputs=model.value_vars,
                                on_unused_input="ignore")
    w, r, width = np.array([0.4, 0.2]), np.array([0.8, -0.3]), np.array([0.03, 0.05])
    law = np.column_stack([[0.07, 0.02], r, w, width - H.WIDTH_FLOOR_SHIFT])
    point = {**model.initial_point(), f"{H.STATE_LAW}_{H.StateMixture.name}__": H.StateMixture(2).forward(law).eval()}
    eps, u2, v2, widths = reported(point)
    np.testing.assert_allclose(eps, [0.02, 0.07])  # state 1 first
    np.testing.assert_allclose(widths, width[::-1])
    high, low = w / (1 + np.exp(-r)), w / (1 + np.exp(r))
    np.testing.assert_allclose([u2[0], v2[0], u2[1], v2[1]], [high[1], low[1], high[0], low[0]])


@pytest.mark.parametrize("n", [1, 2])
def test_state_mixture_inverts_and_its_jacobian_is_the_derivative(n):
    """(eps, r, w, width_excess) rows -> StateMixture's coordinates and back, with the log Jacobian the autodiff one
    (also far out: a lopsided pair, a tiny spread, a wide pair, a lopsided weight split), and the coordinates what
    they claim: per state the lines' mean m and spread s; for two states the total weight, the split, the weighted
    mean and the weighted spread; and the relabelling a sign flip of the second row."""
    import pytensor
    import pytensor.tensor as pt
    t, v, flat = H.StateMixture(n), pt.dmatrix("v"), pt.dvector("flat")
    forward, backward = pytensor.function([v], t.forward(v)), pytensor.function([v], t.backward(v))
    mine = pytensor.function([v], t.log_jac_det(v))
    jacobian = pytensor.function([flat], pytensor.gradient.jacobian(t.backward(flat.reshape((n, 4))).ravel(), flat))
    rows = [[0.05, 0.3, 0.4, 0.02], [0.001, -2.0, 0.05, 0.003], [1e-4, 12.0, 2.0, 0.2], [0.8, 0.0, 0.3, 0.01],
            [0.02, -0.01, 1e-3, 0.05]]
    for k in range(len(rows) - n + 1):
        law = np.array(rows[k:k + n])
        u = forward(law)
        np.testing.assert_allclose(backward(u), law, rtol=1e-9, atol=1e-15)
        assert mine(u) == pytest.approx(np.linalg.slogdet(jacobian(u.ravel()))[1], rel=1e-9, abs=1e-9)
        eps, r, w = law[:, 0], law[:, 1], law[:, 2]
        m, s = eps * np.tanh(r / 2), eps / np.cosh(r / 2)
        z = np.column_stack([m, np.log(np.expm1(s / H.SPREAD_SCALE)), np.log(w), np.log(law[:, 3])])
        if n == 1:
            np.testing.assert_allclose(u, z, rtol=1e-6, atol=1e-12)
            continue
        f = w[0] / w.sum()
        np.testing.assert_allclose(u[0], [*(f * z[0, :2] + (1 - f) * z[1, :2]), np.log(w.sum()),
                                          f * z[0, 3] + (1 - f) * z[1, 3]], rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(u[1], [*((z[0, :2] - z[1, :2]) * np.sqrt(f * (1 - f))), np.log(w[0] / w[1]),
                                          (z[0, 3] - z[1, 3]) * np.sqrt(f * (1 - f))], rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(forward(law[::-1]), u * [[1], [-1]], rtol=1e-9, atol=1e-12)


def _model_prior_logp(model, values):
    """The model's log prior density of the bound-state quantities at constrained ``values`` (no Jacobian)."""
    rvs = [rv for rv in model.free_RVs]
    logp = model.compile_logp(vars=rvs + list(model.potentials), jacobian=False, sum=True)
    point = {}
    for rv in rvs:
        transform = model.rvs_to_transforms.get(rv)
        value = np.asarray(values[rv.name], float)
        point[model.rvs_to_values[rv].name] = (transform.forward(value, *rv.owner.inputs).eval()
                                               if transform is not None else value)
    return float(logp(point))


@pytest.mark.parametrize("hypothesis", ["mzm", "ysr", "ysr2"])
def test_log_prior_of_matches_the_model_prior(hypothesis):
    """The prior that reweighting uses (log_prior_of at factor 1) is the prior the model samples: same numbers."""
    model = prior_model(hypothesis)
    rng = np.random.default_rng(1)
    n = H.N_STATES[hypothesis]
    for _ in range(3):
        width_excess = rng.lognormal(np.log(0.02), 0.5, n)
        values = {"width_excess": width_excess}
        draws = {"width": H.WIDTH_FLOOR_SHIFT + width_excess}
        if hypothesis == "mzm":
            values["w_0"] = draws["w"] = np.array(rng.lognormal(np.log(0.3), 0.5))
            draws["w"] = draws["w"][None]
        else:
            eps = np.sort(rng.uniform(0.01, 0.3, n))
            u2, v2 = rng.lognormal(np.log(0.15), 0.5, n), rng.lognormal(np.log(0.15), 0.5, n)
            values.update(eps_all=eps, w_all=u2 + v2, log_ratio_all=np.log(u2 / v2))
            draws.update(eps=eps, u2=u2, v2=v2)
        if hypothesis == "mzm":
            assert H.log_prior_of(draws, hypothesis, 1.0) == pytest.approx(_model_prior_logp(model, values),
                                                                            abs=1e-9)
            continue
        # the model's density of the iid states is the sorted (reported) one's over n!
        values = {H.STATE_LAW: np.column_stack([values.pop("eps_all"), values.pop("log_ratio_all"),
                                                values.pop("w_all"), values.pop("width_excess")])}
        swapped = {H.STATE_LAW: values[H.STATE_LAW][::-1]}
        assert _model_prior_logp(model, swapped) == pytest.approx(_model_prior_logp(model, values), abs=1e-12)
        assert H.log_prior_of(draws, hypothesis, 1.0) == pytest.approx(
            _model_prior_logp(model, values) + np.log(math.factorial(n)), abs=1e-9)


def test_log_prior_of_scales_every_width():
    draws = {"width": np.array([0.03]), "eps": np.array([0.1]), "u2": np.array([0.2]), "v2": np.array([0.1])}
    doubled = H.log_prior_of(draws, "ysr", 2.0)
    expected = (stats.lognorm.logpdf(0.03 - H.WIDTH_FLOOR_SHIFT, s=2.0, scale=0.02)
                + stats.halfnorm.logpdf(0.1, scale=0.4)
                + stats.lognorm.logpdf(0.3, s=2.0, scale=0.3) + stats.norm.logpdf(np.log(2.0), scale=2.0 * np.sqrt(2)))
    assert doubled == pytest.approx(expected, rel=1e-12)
    # batched draws: one value per draw
    batch = {k: np.tile(v, (5, 1)) for k, v in draws.items()}
    np.testing.assert_allclose(H.log_prior_of(batch, "ysr", 0.5), H.log_prior_of(draws, "ysr", 0.5))


def test_an_offset_pair_at_eps_zero_is_the_mzm_state():
    """ysr nests mzm exactly: the pair's total weight has mzm's prior, and its split (r) is independent of it and
    of eps, so at eps = 0 the offset pair is the zero-energy state whatever r (ln B is about eps alone)."""
    for h in ("ysr", "ysr2"):
        model = prior_model(h)
        draws = pm.draw([model["u2_all"], model["v2_all"]], draws=4000, random_seed=3)
        total = (draws[0] + draws[1]).ravel()
        ratio = np.log(draws[0] / draws[1]).ravel()
        assert stats.kstest(np.log(total), stats.norm(np.log(0.3), 1.0).cdf).pvalue > 1e-3
        assert stats.kstest(ratio, stats.norm(0.0, H.RATIO_SIGMA).cdf).pvalue > 1e-3
        assert abs(stats.spearmanr(total, ratio).statistic) < 0.05
        # the test can fail: the former iid LogNormal(log 0.15, 1) weights give a total of another median
        iid = np.random.default_rng(3).lognormal(np.log(0.15), 1.0, (2, 4000)).sum(axis=0)
        assert stats.kstest(np.log(iid), stats.norm(np.log(0.3), 1.0).cdf).pvalue < 1e-3
    mzm = pm.draw(prior_model("mzm")["w_0"], draws=4000, random_seed=4)
    assert stats.ks_2samp(mzm, total).pvalue > 1e-3


def test_the_mode_search_climbs_ysr2_per_state_and_keeps_the_models_initial_values():
    """search_model: ysr2's states in per-state rows (the same density, other coordinates); nothing for one state."""
    model = prior_model("ysr2")
    model.set_initval(model[H.STATE_LAW], np.array([[0.03, 0.1, 0.4, 0.02], [0.12, -0.2, 0.3, 0.03]]))
    search = H.search_model(model)
    assert search.rvs_to_transforms[search[H.STATE_LAW]].name == "rows"
    assert model.rvs_to_transforms[model[H.STATE_LAW]].name == "mixture"  # the model itself is untouched
    to_rows, to_mixture = H.StateMixture(2, mixed=False), H.StateMixture(2)
    start, rows = model.initial_point(), search.initial_point()
    law = to_rows.backward(rows[f"{H.STATE_LAW}_rows__"]).eval()
    np.testing.assert_allclose(law, [[0.03, 0.1, 0.4, 0.02], [0.12, -0.2, 0.3, 0.03]], rtol=1e-9)
    np.testing.assert_allclose(to_mixture.forward(law).eval(), start[f"{H.STATE_LAW}_mixture__"], rtol=1e-9)
    # the same density: they differ by the log Jacobian between the coordinates only
    delta = (search.compile_logp(jacobian=False)(rows) - model.compile_logp(jacobian=False)(start))
    assert delta == pytest.approx(0.0, abs=1e-9)
    assert H.search_model(prior_model("ysr")) is None and H.search_model(prior_model("mzm")) is None
