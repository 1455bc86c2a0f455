"""Series across spectra (issue 6, physics.md §5): the laws against quadrature and limits, the joint models
against the simulator, the population prior, manifests and bad input; reduced comparisons end to end.
The must-shows at full size are `slow`."""


import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import integrate, special, stats

from reference import conductance_ref
from stsbayes.cli import main
from stsbayes.errors import InputError
from stsbayes.inference import FitData
from stsbayes.inference import series as S
from stsbayes.models.constants import K_B
from stsbayes.models.dos import sample_dos
from stsbayes.models.forward import build_grid
from stsbayes.series import read_manifest, simulate_series

BACKGROUND = {"sample": {"delta": [4.5, 5.8], "gamma": [0.02, 0.02], "weight": [0.5, 0.5]},
              "junction": {"T_eff": 0.4, "modulation_rms": 0.07}, "observation": {"b0": 0.0, "b1": 0.0}}
FIT_BACKGROUND = {"sample": {"delta": [4.5, 5.8], "gamma": [0.02, 0.02], "weight": [0.5, 0.5]},
                  "junction": {"T_eff": 0.4, "bias_offset": 0.0}, "observation": {"b0": 0.0, "b1": 0.0}}
SMALL_BIAS = np.round(np.arange(-0.6, 0.6 + 1e-9, 0.01), 6)


def _datas(sims, bias=SMALL_BIAS, temperature=0.4, rms=0.07):
    return [FitData(bias=bias, y=y, units="uS", temperature_K=temperature,
                    modulation={"kind": "rms", "value_mV": rms, "source": "test"}) for y, _, _ in sims]


def _grid(v_set, t_eff, bias=SMALL_BIAS):
    grid, _ = build_grid(bias, gamma_min=0.02, width_min=0.002, kT_max=K_B * t_eff, v_peak_max=0.1,
                         offset_max=0.0, kT_min=K_B * t_eff, window=v_set)
    return grid


# ----------------------------------------------------------------------------------------------- physics


def test_setpoint_integral_matches_quadrature_of_the_conductance():
    """∫_0^{V_set} dI/dV dV by one grid sum against per-bias quadrature of the conductance, then over V."""
    sample = {"delta": [4.5, 5.8], "gamma": [0.02, 0.02], "weight": [0.5, 0.5],
              "bound_states": [{"eps": 0.05, "width": 0.03, "u2": 0.3, "v2": 0.1}]}
    t_eff, v_set = 0.4, 7.0
    grid = _grid(v_set, t_eff)
    dos = sample_dos(grid.energies, sample["delta"], sample["gamma"], sample["weight"], cells=True,
                     eps=[0.05], width=[0.03], u2=[0.3], v2=[0.1])
    fast = float(S.setpoint_integral(grid, dos, v_set, t_eff).eval())
    v = np.linspace(0.0, v_set, 1401)
    g = np.array([conductance_ref(x, sample, None, t_eff, step=2e-4) for x in v])
    slow = integrate.simpson(g, x=v)
    assert fast == pytest.approx(slow, rel=2e-4)
    # a negative setpoint integrates the occupied side: the current is negative
    back = float(S.setpoint_integral(_grid(v_set, t_eff), dos, -v_set, t_eff).eval())
    assert back < 0


def test_mzm_root_solves_the_setpoint_equation_and_the_excess_approaches_g0():
    t_eff, v_set = 0.4, 7.0
    grid = _grid(v_set, t_eff)
    bg = sample_dos(grid.energies, [4.5, 5.8], [0.02, 0.02], [0.5, 0.5], cells=True)
    a = float(S.setpoint_integral(grid, bg, v_set, t_eff).eval())
    for i_set, kappa in [(2.0, 0.006), (116.0, 0.006), (50.0, 0.05)]:
        g_n = float(S.mzm_normal_conductance(grid, bg, i_set, v_set, t_eff, pt.as_tensor_variable(kappa)).eval())
        width = kappa * g_n
        # the Lorentzian's integral by quadrature: Γ atan(V_set/Γ) up to thermal smearing at V_set (negligible)
        lorentz = width * np.arctan(v_set / width)
        assert g_n * a + S.G0_US * lorentz == pytest.approx(i_set, rel=1e-4)
    # zero-bias excess of the simulated mzm spectrum: G0 Γ²/(Γ² + ...) -> G0 once Γ >> k_B T_eff and the
    # modulation (here Γ = 2.5 meV against 0.034 meV), always from below
    cond = {"setpoint_current_nA": [400.0, 4000.0], "setpoint_bias_mV": [7.0, 7.0]}
    sims = simulate_series("gn", "mzm", {"kappa": 0.1}, cond, BACKGROUND, SMALL_BIAS, noise_fraction=0.0)
    zero = int(np.argmin(np.abs(SMALL_BIAS)))
    widths = []
    for y, _, g_n in sims:
        widths.append(0.1 * g_n)
        excess = y[zero] - g_n * float(conductance_ref(0.0, BACKGROUND["sample"], None, 0.4))
        assert 0 < excess < 1.001 * S.G0_US  # from below, up to the lock-in average of the background
        assert excess == pytest.approx(S.G0_US, rel=0.01)
    assert min(widths) > 1.0  # the limit the assertion tests


@pytest.mark.parametrize("kind,hypothesis,truth,conditions", [
    ("gn", "ysr", dict(eps0=0.01, alpha=-0.015, width=0.03, u2=0.3, v2=0.15),
     {"setpoint_current_nA": [2.0, 30.0, 116.0], "setpoint_bias_mV": [7.0] * 3}),
    ("gn", "mzm", dict(kappa=0.006), {"setpoint_current_nA": [2.0, 30.0, 116.0], "setpoint_bias_mV": [7.0] * 3}),
    ("field", "ysr", dict(eps0=0.02, g_eff=1.0, width0=0.03, beta=0.01, u2=0.3, v2=0.15, gamma_field=0.005,
                          g_n=[1.0, 1.1, 0.9]), {"field_T": [0.0, 2.0, 5.0]}),
    ("defects", "ysr", dict(eps_d=[0.03, 0.05, 0.07], width_d=[0.02, 0.03, 0.025], u2_d=[0.3, 0.2, 0.25],
                            v2_d=[0.1, 0.2, 0.15], g_n=[1.0, 1.2, 0.8]), {"defect": ["a", "b", "c"]}),
    # optional setpoints tie a field series' G_n as in gn (an in-gap window no longer trades G_n against weights)
    ("field", "mzm", dict(width=0.03, w=0.4, gamma_field=0.004),
     {"field_T": [0.0, 2.0, 5.0], "setpoint_current_nA": [1.0, 1.5, 2.0], "setpoint_bias_mV": [10.0] * 3}),
])
def test_the_series_model_at_the_truth_is_the_simulation(kind, hypothesis, truth, conditions):
    """Every joint model's expected spectra at the law's true values reproduce simulate_series (which goes
    through plain single-spectrum specs), and gn's G_n from the setpoint is the simulator's."""
    sims = simulate_series(kind, hypothesis, truth, conditions, BACKGROUND, SMALL_BIAS, noise_fraction=0.0)
    model, info = S.build_series_model(kind, hypothesis, _datas(sims), conditions, FIT_BACKGROUND, metal_tip=True)
    n = len(sims)
    names = {v.name for v in model.free_RVs}
    fix = {k: v for k, v in truth.items() if k in names}
    fix.update({f"s{j}:sigma": 0.01 for j in range(n)})
    if "width" in truth or "width0" in truth:
        fix["width_excess"] = truth.get("width", truth.get("width0")) - 0.002
    if kind in ("field", "defects") and "setpoint_current_nA" not in conditions:
        fix.update({f"s{j}:g_n": sims[j][2] for j in range(n)})
    if kind == "field" and hypothesis == "ysr":  # the pair's weights as total and log ratio, sampled jointly
        fix.update(w=truth["u2"] + truth["v2"], zeeman_law=np.array([truth["eps0"], truth["g_eff"],
                                                                     np.log(truth["u2"] / truth["v2"])]))
    if kind == "defects":
        mu, tau = 0.05, 0.03
        z = -stats.norm.ppf(stats.norm.cdf((mu - np.array(truth["eps_d"])) / tau) / stats.norm.cdf(mu / tau))
        fix.update(mu_width=0.0, tau_width=1.0, log_width_d=np.log(np.array(truth["width_d"]) - 0.002), mu_eps=mu,
                   tau_eps=tau, z_eps=z)
        if hypothesis == "ysr":  # each pair's total weight and asymmetry sqrt(eps² + a0²) sinh(r/2) / a0
            u2, v2, eps = (np.array(truth[k]) for k in ("u2_d", "v2_d", "eps_d"))
            scale = np.hypot(eps, S.ASYMMETRY_SCALE) / S.ASYMMETRY_SCALE
            fix.update(w=u2 + v2, asymmetry=scale * np.sinh(np.log(u2 / v2) / 2))
    assert names == set(fix)
    fixed = pm.do(model, fix)
    wanted = [fixed[f"s{j}:mu"] for j in range(n)] + [fixed["g_n_j"]] + (
        [fixed["eps_j"]] if "eps_j" in fixed.named_vars else [])
    values = pytensor.function([], wanted, mode="FAST_COMPILE")()
    for j, (y, _, _) in enumerate(sims):
        np.testing.assert_allclose(values[j], y, rtol=1e-9, atol=1e-9 * np.max(np.abs(y)))
    np.testing.assert_allclose(values[n], [g for _, _, g in sims], rtol=1e-9)
    if kind == "gn" and hypothesis == "ysr":  # the pair crosses zero between the setpoints: weights swap there
        g_set = np.array(conditions["setpoint_current_nA"]) / 7.0
        np.testing.assert_allclose(values[n + 1], np.abs(0.01 - 0.015 * g_set))
    assert {"g_n_j"} <= set(info.parameters)


def test_the_defect_population_is_the_truncated_normal():
    """eps = mu − tau Φ⁻¹(Φ(−z) Φ(mu/tau)) with z ~ N(0, 1) is N(mu, tau) truncated at 0 (KS test), also where
    most of the untruncated mass would be negative."""
    z = np.random.default_rng(0).standard_normal(20000)
    for mu, tau in [(0.05, 0.02), (0.01, 0.05), (0.0, 0.1)]:
        eps = S.truncated_population(pt.as_tensor_variable(mu), pt.as_tensor_variable(tau),
                                     pt.as_tensor_variable(z)).eval()
        assert np.all(eps >= 0)
        ref = stats.truncnorm(-mu / tau, np.inf, loc=mu, scale=tau)
        assert stats.kstest(eps, ref.cdf).pvalue > 0.01


def test_defects_sampled_centred_or_not_have_the_same_population():
    """population_energies: eps_d centred (eps_resolved ~ TruncatedNormal) or not (z_eps through the truncated
    population) follows N(mu, tau) truncated at 0 either way (KS per defect), the centred density is that truncated
    normal's, and the NumPy form is its quantile function, as the tensor form."""
    mu, tau = 0.03, 0.02
    centred = np.array([True, False, True])
    with pm.Model(coords={"spectrum": list("abc")}) as model:
        eps = S.population_energies(pt.as_tensor_variable(mu), pt.as_tensor_variable(tau), 3, centred)
    assert {v.name for v in model.free_RVs} == {"eps_resolved", "z_eps"}
    assert model["eps_resolved"].type.shape == (2,) and model["z_eps"].type.shape == (1,)
    draws = pm.draw(eps, 4000, random_seed=5)
    ref = stats.truncnorm(-mu / tau, np.inf, loc=mu, scale=tau)
    for k in range(3):
        assert np.all(draws[:, k] >= 0) and stats.kstest(draws[:, k], ref.cdf).pvalue > 0.01
    x = np.array([0.01, 0.05])
    np.testing.assert_allclose(pm.logp(model["eps_resolved"], x).eval(), ref.logpdf(x), rtol=1e-9)
    z = np.array([-2.0, 0.0, 1.5])  # the NumPy form is the truncated normal's quantile at Φ(z), as the tensor one
    at_numpy = S.truncated_population(mu, tau, z, math=special)
    np.testing.assert_allclose(at_numpy, ref.ppf(stats.norm.cdf(z)), rtol=1e-9)
    np.testing.assert_allclose(at_numpy, S.truncated_population(pt.as_tensor_variable(mu), pt.as_tensor_variable(tau),
                                                                pt.as_tensor_variable(z)).eval(), rtol=1e-12)
    with pytest.raises(ValueError, match="one flag per defect"), pm.Model():
        S.population_energies(pt.as_tensor_variable(mu), pt.as_tensor_variable(tau), 3, [True])


def test_the_field_pair_coordinates_invert_and_their_jacobian_is_the_derivative():
    """PairMoments maps (eps0, g_eff, r) to (m, u, lambda) and back, its log Jacobian is the autodiff one, and
    m, s are the mean and sd of the two lines' energies at the mean field."""
    from pymc.logprob.transforms import Transform
    t = S.PairMoments(0.07)
    v = pt.dvector("v")
    forward, backward = pytensor.function([v], t.forward(v)), pytensor.function([v], t.backward(v))
    mine, auto = pytensor.function([v], t.log_jac_det(v)), pytensor.function([v], Transform.log_jac_det(t, v))
    rng = np.random.default_rng(0)
    for x in [np.array([abs(rng.normal(0, 0.2)), abs(rng.normal(0, 2)), rng.normal(0, 1.4)]) for _ in range(6)] + [
            np.array([1e-4, 1e-3, 12.0]), np.array([0.3, 1e-5, -0.01])]:
        u = forward(x)
        np.testing.assert_allclose(backward(u), x, rtol=1e-9)
        assert mine(u) == pytest.approx(float(auto(u)), rel=1e-9, abs=1e-9)
        e, p = x[0] + 0.07 * x[1], 1.0 / (1.0 + np.exp(-x[2]))  # lines at +e (weight p) and -e
        assert u[0] == pytest.approx(e * p - e * (1 - p), rel=1e-9)
        spread = S.H.SPREAD_SCALE * np.logaddexp(0.0, u[1])  # s = s0 softplus(u)
        assert spread == pytest.approx(np.sqrt(e ** 2 - (e * (2 * p - 1)) ** 2), rel=1e-6)


def test_the_field_pairs_joint_prior_is_the_three_priors():
    """zeeman_law draws eps0, g_eff and log_ratio independently from their own priors (KS against each)."""
    with pm.Model():
        law = S.zeeman_pair_law(0.07, 1.0)
        draws = pm.draw(pt.stack(law), 4000, random_seed=3)
    for k, ref in enumerate([stats.halfnorm(scale=0.2), stats.halfnorm(scale=2.0), stats.norm(scale=np.sqrt(2))]):
        assert stats.kstest(draws[:, k], ref.cdf).pvalue > 0.01
    with pytest.raises(InputError, match="nonzero field"), pm.Model():
        S.zeeman_pair_law(0.0, 1.0)


def test_a_defect_pairs_asymmetry_carries_the_log_ratios_prior():
    """The asymmetry a = sqrt(eps² + a0²) sinh(r/2) / a0 is sampled with the density PyMC derives from
    r ~ N(0, sqrt 2 f): r drawn through it follows that normal at any eps, and the model's log density of a is r's
    plus the log Jacobian |dr/da|."""
    eps = np.array([1e-4, 0.003, 0.05])
    for factor in (1.0, 0.5):
        with pm.Model(coords={"spectrum": list("abc")}) as model:
            r = S.asymmetric_ratio(pt.as_tensor_variable(eps), factor, dims="spectrum")
        draws = pm.draw(r, 3000, random_seed=4)
        for k in range(3):
            assert stats.kstest(draws[:, k], stats.norm(scale=np.sqrt(2) * factor).cdf).pvalue > 0.01
        a = np.array([0.3, -2.0, 5.0])
        scale = np.hypot(eps, S.ASYMMETRY_SCALE) / S.ASYMMETRY_SCALE
        ratio = 2 * np.arcsinh(a / scale)
        jac = 2 / scale / np.sqrt(1 + (a / scale) ** 2)
        expected = stats.norm.logpdf(ratio, scale=np.sqrt(2) * factor) + np.log(jac)
        np.testing.assert_allclose(pm.logp(model["asymmetry"], a).eval(), expected, rtol=1e-9)


def test_contested_log_prior_is_the_models_prior():
    """The reweighting's log prior of the contested parameters equals the model's own prior density of them
    (at factor 1), and scales its widths like the model built at prior_scale."""
    cond = {"field_T": [0.0, 2.0, 5.0]}
    sims = simulate_series("field", "mzm", dict(width=0.03, w=0.4, gamma_field=0.0, g_n=1.0), cond, BACKGROUND,
                           SMALL_BIAS, noise_fraction=0.0)
    for factor in (1.0, 2.0):
        model, _ = S.build_series_model("field", "ysr", _datas(sims), cond, FIT_BACKGROUND, prior_scale=factor)
        point = {"eps0": 0.03, "g_eff": 1.5, "width_excess": 0.02, "beta": 0.01, "w": 0.5, "log_ratio": -0.4}
        import xarray as xr
        post = xr.Dataset({k: (("chain", "draw"), np.full((1, 1), v)) for k, v in point.items()})
        mine = S.log_prior_of(post, "field", "ysr", factor)[0]
        law = np.array([point[k] for k in S.ZEEMAN_LAW])  # eps0, g_eff and log_ratio: one joint variable
        theirs = float(pm.logp(model["zeeman_law"], law).eval()) + sum(
            float(pm.logp(model[k], v).eval()) for k, v in point.items() if k not in S.ZEEMAN_LAW)
        assert mine == pytest.approx(theirs, rel=1e-8)


# ----------------------------------------------------------------------------------------------- input


def test_a_window_inside_the_gaps_without_setpoints_is_cautioned():
    """g_n trades against the bound-state weights when a spectrum never reaches its coherence peaks."""
    import xarray as xr
    rng = np.random.default_rng(0)
    post = xr.Dataset({"delta": (("chain", "draw", "gap"), rng.normal([4.5, 5.8], 0.01, (2, 50, 2)))})
    inside = [FitData(bias=np.linspace(-1.0, 1.0, 21), y=np.ones(21)) for _ in range(2)]
    wide = FitData(bias=np.linspace(-7.0, 7.0, 21), y=np.ones(21))
    cond = {"field_T": np.array([0.0, 2.0, 5.0])}
    (text,) = S.window_cautions([*inside, wide], cond, [post, post], ["s0", "s1", "s2"])
    assert text.startswith("s0, s1 end inside the gaps (window up to ±1 mV, coherence peaks near ±5.8 mV)")
    assert S.window_cautions([wide, wide], cond, [post], ["s0", "s1"]) == []
    # a superconducting tip moves the coherence peaks out to delta_tip + delta
    tip = post.assign(delta_tip=(("chain", "draw"), np.full((2, 50), 1.4)))
    (text,) = S.window_cautions([wide], cond, [tip], ["s0"])
    assert text.startswith("s0 ends inside the gaps (window up to ±7 mV, coherence peaks near ±7.2 mV)")
    # gaps the spec fixes are not in the posterior: they set the edge themselves
    fixed = xr.Dataset({"w": (("chain", "draw"), np.ones((2, 50)))})
    (text,) = S.window_cautions(inside, cond, [fixed], ["s0", "s1"], fixed_gaps=[4.5, 5.8])
    assert "coherence peaks near ±5.8 mV" in text
    assert S.window_cautions(inside, cond, [fixed], ["s0", "s1"]) == []  # nothing says where the gaps are
    assert S.window_cautions([wide], cond, [fixed], ["s0"], fixed_gaps=[4.5, 5.8]) == []
    # setpoints fix G_n whatever the window
    tied = {**cond, "setpoint_current_nA": np.ones(3), "setpoint_bias_mV": np.ones(3)}
    assert S.window_cautions(inside, tied, [post], ["s0", "s1"]) == []


def test_conditions_are_checked():
    with pytest.raises(InputError, match="setpoint_current_nA"):
        S.check_conditions("gn", {"setpoint_bias_mV": [7, 7]}, 2)
    with pytest.raises(InputError, match="same sign"):
        S.check_conditions("gn", {"setpoint_current_nA": [2, -3], "setpoint_bias_mV": [7, 7]}, 2)
    with pytest.raises(InputError, match="at least two"):
        S.check_conditions("field", {"field_T": [0.0]}, 1)
    with pytest.raises(InputError, match="own defect"):
        S.check_conditions("defects", {"defect": ["a", "a"]}, 2)
    with pytest.raises(InputError, match=">= 0"):
        S.check_conditions("field", {"field_T": [0.0, -1.0]}, 2)
    with pytest.raises(InputError, match="both setpoint"):
        S.check_conditions("field", {"field_T": [0.0, 1.0], "setpoint_current_nA": [1.0, 1.0]}, 2)
    tied = S.check_conditions("defects", {"defect": ["a", "b"], "setpoint_current_nA": [1.0, 2.0],
                                          "setpoint_bias_mV": [10.0, 10.0]}, 2)
    np.testing.assert_allclose(tied["G_set"], [0.1, 0.2])


def _write_series(tmp_path, sims, rows, header):
    lines = [header]
    for j, ((y, _, _), row) in enumerate(zip(sims, rows)):
        name = f"s{j}.csv"
        (tmp_path / name).write_text("bias_mV,didv_uS\n" + "".join(f"{b:.6f},{v:.8f}\n" for b, v in zip(SMALL_BIAS, y)))
        lines.append(f"{name},{row}")
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "manifest.csv"


def test_manifest_reads_files_and_covariates(tmp_path):
    cond = {"field_T": [0.0, 2.0, 5.0]}
    sims = simulate_series("field", "mzm", dict(width=0.03, w=0.4, gamma_field=0.0, g_n=1.0), cond, BACKGROUND,
                           SMALL_BIAS, seed=1)
    manifest = _write_series(tmp_path, sims, ["0", "2", "5"], "file,field_T")
    datas, conditions, files = read_manifest("field", manifest)
    assert len(datas) == 3 and conditions["field_T"] == [0.0, 2.0, 5.0] and all(d.units == "uS" for d in datas)
    np.testing.assert_allclose(datas[1].y, sims[1][0], rtol=0, atol=1e-8)
    with pytest.raises(InputError, match="setpoint_current_nA"):
        read_manifest("gn", manifest)
    # optional setpoint columns of a field series are read (they then fix each spectrum's G_n)
    manifest = _write_series(tmp_path, sims, ["0,1.0,10", "2,1.5,10", "5,2.0,10"],
                             "file,field_T,setpoint_current_nA,setpoint_bias_mV")
    _, conditions, _ = read_manifest("field", manifest)
    assert conditions["setpoint_current_nA"] == [1.0, 1.5, 2.0] and conditions["setpoint_bias_mV"] == [10.0] * 3


@pytest.mark.parametrize("extra,rows,header,message", [
    ([], ["0", "x", "5"], "file,field_T", "must hold a number"),
    ([], ["0", "2", "5"], "file,field", "missing: field_T"),
    (["--normalize"], ["0", "2", "5"], "file,field_T", "drop --normalize"),
    (["--tip", "nowhere"], ["0", "2", "5"], "file,field_T", "metallic tip|does not exist"),
    (["--hypotheses", "mzm,ysr2"], ["0", "2", "5"], "file,field_T", "mzm with ysr"),
])
def test_series_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, extra, rows, header, message):
    cond = {"field_T": [0.0, 2.0, 5.0]}
    sims = simulate_series("field", "mzm", dict(width=0.03, w=0.4, gamma_field=0.0, g_n=1.0), cond, BACKGROUND,
                           SMALL_BIAS, seed=1)
    manifest = _write_series(tmp_path, sims, rows, header)
    spec = tmp_path / "bg.toml"
    spec.write_text('[sample]\ndelta = [4.5, 5.8]\ngamma = [0.02, 0.02]\nweight = [0.5, 0.5]\n')
    out = tmp_path / "out"
    args = ["series", "field", str(manifest), "--spec", str(spec), "--temperature", "0.4", "--modulation-rms",
            "0.07", "--out", str(out), *extra]
    if "--tip" not in extra:
        args.append("--metal-tip")
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    import re
    assert re.search(message, err), err
    assert not out.exists()
