"""Junction physics: lock-in kernel, limits, sign convention, grid bookkeeping, gradients of the likelihood."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import j1

from stsbayes.models import simulate
from stsbayes.models.forward import build_grid, predict
from stsbayes.models.junction import EnergyGrid, _j1_over_x, lockin_kernel, modulation_peak

NIS = {"tip": {"kind": "metal"}, "sample": {"delta": [1.0], "gamma": [0.01], "weight": [1.0]},
       "junction": {"T_eff": 0.3, "modulation_rms": 0.01}}


def test_lockin_kernel_normalised_with_fwhm_sqrt3_vpeak():
    vp = modulation_peak(modulation_rms=0.1)
    assert vp == pytest.approx(0.1 * np.sqrt(2))
    v = np.linspace(-vp, vp, 2_000_001)
    k = lockin_kernel(v, vp)
    assert np.trapezoid(k, v) == pytest.approx(1.0, abs=1e-6)
    above = v[k >= 0.5 * k.max()]
    assert above[-1] - above[0] == pytest.approx(np.sqrt(3) * vp, rel=1e-5)


def test_fourier_transform_of_the_lockin_kernel():
    x = np.concatenate([np.linspace(0, 8, 400), np.linspace(8, 400, 4000)])
    got = _j1_over_x(pt.as_tensor_variable(x)).eval()
    ref = np.where(x > 0, j1(np.maximum(x, 1e-300)) / np.maximum(x, 1e-300), 0.5)
    np.testing.assert_allclose(got, ref, atol=2e-9)
    # the direct transform of K at a few wavenumbers
    vp = 0.2
    v = np.linspace(-vp, vp, 400_001)
    for k in (0.0, 3.0, 40.0):
        direct = np.trapezoid(lockin_kernel(v, vp) * np.cos(k * v), v)
        assert 2 * _j1_over_x(pt.as_tensor_variable(k * vp)).eval() == pytest.approx(direct, abs=1e-5)


def test_normal_state_limit():
    """No gap, no states: the conductance is g_n everywhere, for metal and superconducting tips far out."""
    flat = {"tip": {"kind": "metal"}, "sample": {"delta": [1.0], "gamma": [0.01], "weight": [1.0], "floor": 0.0},
            "junction": {"T_eff": 1.0, "modulation_rms": 0.05, "g_n": 2.5}}
    bias = np.array([-30.0, -25.0, 25.0, 30.0])
    np.testing.assert_allclose(simulate(flat, bias), 2.5 * (1 + 1.0 / (2 * bias**2)), rtol=2e-3)


def test_nis_is_symmetric_without_bound_states_and_thermal_at_the_gap():
    bias = np.linspace(-3, 3, 601)
    y = simulate(NIS, bias)
    np.testing.assert_allclose(y, y[::-1], rtol=1e-6)


def test_sign_convention_electron_weight_at_positive_sample_bias():
    """A state with only electron weight (u2) at +eps shows at +eps in NIS and at +(delta_tip + eps) in SIS."""
    nis = {**NIS, "sample": {**NIS["sample"], "bound_states": [{"eps": 0.3, "width": 0.02, "u2": 0.3, "v2": 0.0}]}}
    bias = np.linspace(-0.8, 0.8, 1601)
    y = simulate(nis, bias)
    assert bias[np.argmax(y)] == pytest.approx(0.3, abs=0.01)
    sis = {**nis, "tip": {"kind": "dynes", "delta": 1.37, "gamma": 0.005}}
    bias = np.linspace(-2.2, 2.2, 4401)
    y = simulate(sis, bias)
    inside = np.abs(bias) < 2.0  # below the sum-gap peaks at +-(1.37 + 1.0)
    assert bias[inside][np.argmax(y[inside])] == pytest.approx(1.37 + 0.3, abs=0.02)  # tip peak shape pulls it in
    # its thermal replica at -(delta_tip - eps) is exponentially weaker at 0.3 K
    at = lambda v: y[np.argmin(np.abs(bias - v))]
    assert at(1.67) > 20 * at(-(1.37 - 0.3))


def test_zero_energy_state_gives_equal_peaks_at_plus_minus_delta_tip():
    spec = {"tip": {"kind": "dynes", "delta": 1.37, "gamma": 0.005},
            "sample": {"delta": [4.5], "gamma": [0.02], "weight": [1.0],
                       "bound_states": [{"eps": 0.0, "width": 0.02, "u2": 0.4, "v2": 0.1}]},
            "junction": {"T_eff": 0.32, "modulation_rms": 0.014}}
    bias = np.linspace(-2, 2, 2001)
    y = simulate(spec, bias)
    np.testing.assert_allclose(y, y[::-1], rtol=1e-6)  # u2 != v2 is invisible at eps = 0


def test_grid_is_even_and_covers_the_window():
    for bias_max in (2.78, 3.0, 4.0, 10.0):
        g = EnergyGrid.for_window(bias_max, step=0.0005, kT_max=0.0069, v_peak_max=0.007, offset_max=0.02)
        assert g.fft_size % 2 == 0
        assert g.fft_size >= 2 * g.half + 1 + g.max_lag
        assert g.lags[-1] >= bias_max + 0.02 + 0.007


def _loglike(bias, sigma, mode=None):
    """Gaussian log-likelihood of the Pb-Pb model as a compiled value+gradient function of all parameters."""
    names = ["delta_tip", "gamma_tip", "T_eff", "v_peak", "g_n", "bias_offset", "b0", "b1", "floor"]
    scalars = {k: pt.dscalar(k) for k in names}
    vectors = {k: pt.dvector(k) for k in ("delta", "gamma", "weight")}
    params = {**scalars, **vectors}
    grid, bias_map = build_grid(bias, gamma_min=0.001, width_min=0.001, kT_max=0.05, v_peak_max=0.03,
                                offset_max=0.05)
    mu = predict(grid, bias_map, bias, params)
    data = pt.dvector("data")
    ll = -0.5 * pt.sum(((data - mu) / sigma) ** 2)
    inputs = list(params.values())
    fn = pytensor.function([data, *inputs], [ll, *pytensor.grad(ll, inputs)], mode=mode)
    return list(params), fn


def test_likelihood_gradient_matches_finite_differences():
    bias = np.linspace(-3.5, 3.5, 281) + 0.0007  # off the grid: the cubic read-out is differentiated too
    rng = np.random.default_rng(3)
    truth = dict(delta_tip=1.37, gamma_tip=0.006, T_eff=0.32, v_peak=0.02, g_n=1.0, bias_offset=0.004, b0=0.01,
                 b1=0.002, floor=0.01, delta=np.array([1.26, 1.41]), gamma=np.array([0.005, 0.007]),
                 weight=np.array([0.55, 0.45]))
    spec = {"tip": {"kind": "dynes", "delta": 1.37, "gamma": 0.006},
            "sample": {"delta": [1.26, 1.41], "gamma": [0.005, 0.007], "weight": [0.55, 0.45], "floor": 0.01},
            "junction": {"T_eff": 0.32, "modulation_peak": 0.02, "bias_offset": 0.004},
            "observation": {"b0": 0.01, "b1": 0.002}}
    data = simulate(spec, bias, noise=0.03, seed=1)
    names, compiled = _loglike(bias, 0.03)
    fn = lambda *args: compiled(data, *args)  # noqa: E731
    point = {k: np.array(v, dtype=float) for k, v in truth.items()}
    point["delta_tip"] = np.array(1.372)  # off the optimum so gradients are not ~0
    values = fn(*[point[k] for k in names])
    for name, grad in zip(names, values[1:]):
        grad = np.atleast_1d(grad)
        for i in range(grad.size):
            h = 1e-6 * max(1e-3, float(np.atleast_1d(point[name])[i]))
            up, down = {k: v.copy() for k, v in point.items()}, {k: v.copy() for k, v in point.items()}
            np.atleast_1d(up[name])[i] += h
            np.atleast_1d(down[name])[i] -= h
            if up[name].ndim == 0:
                up[name], down[name] = point[name] + h, point[name] - h
            fd = (fn(*[up[k] for k in names])[0] - fn(*[down[k] for k in names])[0]) / (2 * h)
            assert np.isfinite(grad[i])
            assert grad[i] == pytest.approx(fd, rel=2e-4, abs=1e-3 * max(1.0, abs(fd))), f"d lnL / d {name}[{i}]"


def _assert_backend_matches(mode):
    """Value and gradient of the Pb-Pb log-likelihood on backend ``mode`` equal the default backend's to 1e-9."""
    bias = np.linspace(-3.2, 3.2, 161) + 0.0003
    names, fn = _loglike(bias, 0.03)
    names, fn_other = _loglike(bias, 0.03, mode=mode)
    data = np.full_like(bias, 1.0)
    point = dict(delta_tip=1.37, gamma_tip=0.006, T_eff=0.32, v_peak=0.02, g_n=1.0, bias_offset=0.004, b0=0.01,
                 b1=0.002, floor=0.01, delta=np.array([1.26, 1.41]), gamma=np.array([0.005, 0.007]),
                 weight=np.array([0.55, 0.45]))
    args = [point[k] for k in names]
    for a, b in zip(fn(data, *args), fn_other(data, *args)):
        np.testing.assert_allclose(np.asarray(b), a, rtol=1e-9, atol=1e-9)


def test_jax_backend_gives_the_same_numbers():
    """The optional JAX path (NumPyro, GPU) runs the same graph through our RFFT/IRFFT conversions."""
    import stsbayes.backends.jax_fft  # noqa: F401 (registers the conversions)

    _assert_backend_matches("JAX")


def test_numba_backend_runs_the_ffts_natively():
    """nutpie compiles the log density with numba: our RFFT/IRFFT dispatch (rocket-fft) must give the same value
    and gradient as the default backend, without PyTensor's object-mode fallback (which serialises the chains)."""
    from pytensor.link.numba.dispatch.basic import numba_funcify
    from pytensor.tensor.fft import IRFFTOp, RFFTOp

    for op in (RFFTOp, IRFFTOp):
        assert op in numba_funcify.registry
    _assert_backend_matches("NUMBA")
