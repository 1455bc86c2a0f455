"""Densities of states: symmetry, limits, conservation, and agreement with the textbook complex formula."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from reference import dynes_ref
from stsbayes.models.dos import bound_states, dynes, dynes_derivative, sample_dos

E = np.linspace(-6, 6, 24001)


def ev(x):
    return np.asarray(x.eval())


@pytest.mark.parametrize("delta,gamma", [(1.37, 0.001), (1.37, 0.05), (0.3, 0.01), (8.6, 0.02)])
def test_dynes_matches_complex_formula_and_its_derivative(delta, gamma):
    n, dn = ev(dynes(E, delta, gamma)), ev(dynes_derivative(E, delta, gamma))
    n_ref, dn_ref = dynes_ref(E, delta, gamma)
    np.testing.assert_allclose(n, n_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dn, dn_ref, rtol=1e-7, atol=1e-9 * np.abs(dn_ref).max())


def test_dynes_even_nonnegative_and_normal_far_away():
    n = ev(dynes(E, 1.37, 0.005))
    np.testing.assert_allclose(n, n[::-1], rtol=1e-10)
    assert n.min() >= 0
    far = ev(dynes(np.array([200.0, -200.0]), 1.37, 0.005))
    np.testing.assert_allclose(far, 1.0 + 1.37**2 / (2 * 200.0**2), rtol=1e-6)
    # zero-bias value of the Dynes form: gamma / sqrt(gamma^2 + delta^2)
    np.testing.assert_allclose(ev(dynes(np.array([0.0]), 1.37, 0.005)), 0.005 / np.hypot(0.005, 1.37), rtol=1e-12)


def test_dynes_tends_to_bcs_as_gamma_vanishes():
    e = np.array([0.5, 0.99, 1.5, 2.0, 3.0])
    bcs = np.where(np.abs(e) > 1.0, np.abs(e) / np.sqrt(np.clip(e**2 - 1.0, 1e-300, None)), 0.0)
    np.testing.assert_allclose(ev(dynes(e, 1.0, 1e-7)), bcs, rtol=1e-5, atol=1e-4)


def test_dynes_conserves_states():
    """integral (N_D - 1) dE -> 0: the states pushed out of the gap pile up in the coherence peaks."""
    e = np.linspace(-400, 400, 8_000_001)
    n = ev(dynes(e, 1.37, 0.01))
    tail = 2 * 1.37**2 / (2 * 400.0)  # integral of Delta^2/(2 E^2) beyond |E| = 400
    assert abs(np.trapezoid(n - 1.0, e) + tail) < 2e-3


def test_dynes_gradients_finite_at_zero_and_at_the_gap_edge():
    e = pt.dvector("e")
    d, g = pt.dscalar("d"), pt.dscalar("g")
    n = dynes(e, d, g)
    grads = pytensor.function([e, d, g], [pytensor.grad(n.sum(), w) for w in (e, d, g)])
    points = np.array([0.0, 1.37, -1.37, 1.37 + 1e-9])
    for eps_ in (1e-6,):
        for k, (w, fd) in enumerate(zip(grads(points, 1.37, 0.005), [
            None,
            (ev(dynes(points, 1.37 + eps_, 0.005)) - ev(dynes(points, 1.37 - eps_, 0.005))) / (2 * eps_),
            (ev(dynes(points, 1.37, 0.005 + eps_)) - ev(dynes(points, 1.37, 0.005 - eps_))) / (2 * eps_),
        ])):
            assert np.all(np.isfinite(w))
            if fd is not None:
                np.testing.assert_allclose(w, fd.sum(), rtol=1e-5)
    # d/dE by autodiff equals the analytic derivative used for the tip term
    np.testing.assert_allclose(grads(points, 1.37, 0.005)[0], ev(dynes_derivative(points, 1.37, 0.005)), rtol=1e-8)


def test_bound_states_weights_and_positions():
    e = np.linspace(-50, 50, 2_000_001)
    n = ev(bound_states(e, [0.07], [0.02], [0.3], [0.1]))
    assert abs(np.trapezoid(n, e) - 0.4) < 1e-3
    assert abs(e[np.argmax(n)] - 0.07) < 1e-4  # electron weight u2 sits at +eps
    # physics.md: u2 = 0.3 meV at width 0.02 meV is a peak 4.8x the normal-state DOS
    assert abs(ev(bound_states(np.array([0.0]), [0.0], [0.02], [0.3], [0.0]))[0] - 4.77) < 0.01


def test_sample_dos_floor_and_weights():
    n = ev(sample_dos(np.array([0.0, 100.0]), [1.26, 1.41], [0.001, 0.001], [0.6, 0.4], floor=0.2))
    assert abs(n[0] - 0.2) < 1e-3 and abs(n[1] - 1.0) < 1e-3


def test_antiderivative_and_cell_means():
    """F' = N_D with F odd; cell means with the fourth-order correction match point values on a fine grid, and
    bound states' cell means integrate to their weights."""
    from stsbayes.models.dos import cell_mean, dynes_antiderivative

    e = np.linspace(-3, 3, 6001)
    f = ev(dynes_antiderivative(e, 1.37, 0.02))
    np.testing.assert_allclose(f, -f[::-1], atol=1e-12)
    np.testing.assert_allclose(np.gradient(f, e)[1:-1], ev(dynes(e, 1.37, 0.02))[1:-1], atol=2e-3)
    fine = np.linspace(-3, 3, 60001)
    cells = ev(cell_mean(fine, lambda x: dynes_antiderivative(x, 1.37, 0.05), lambda x: dynes(x, 1.37, 0.05)))
    points = ev(dynes(fine, 1.37, 0.05))
    assert np.abs(cells - points).max() < 1e-6 * points.max()
    grid = np.linspace(-2, 2, 4001)
    both = ev(sample_dos(grid, [1.0], [0.02], [1.0], eps=[0.1], width=[0.01], u2=[0.3], v2=[0.2], cells=True))
    bare = ev(sample_dos(grid, [1.0], [0.02], [1.0], cells=True))
    assert (both - bare).sum() * 0.001 == pytest.approx(0.5, abs=2e-3)


def _sis_gradient_ripple(n_s_cells):
    """Ripple of d chi^2 / d delta_tip (chi^2 against the spectrum at delta_tip = 1.37, sigma 0.03) over +-0.6 grid
    steps around a point 0.5 steps off, relative to the gradient's smooth range there."""
    from stsbayes.models.constants import K_B
    from stsbayes.models.junction import EnergyGrid, conductance_on_grid

    grid = EnergyGrid.for_window(3.2, step=0.001, kT_max=K_B * 0.1)
    n_s = ev(sample_dos(grid.energies, [1.26, 1.41], [0.003, 0.003], [0.5, 0.5], cells=n_s_cells))
    d = pt.dscalar("d")
    g = conductance_on_grid(grid, pt.as_tensor_variable(n_s), T_eff=0.1, delta_tip=d, gamma_tip=0.0021,
                            v_peak=0.014 * np.sqrt(2))
    near = np.flatnonzero(np.abs(np.abs(grid.lags) - 2.7) < 0.15)
    target = pytensor.function([d], g)(1.37)[near]
    chi = pt.sum((g[near] - target) ** 2) / (2 * 0.03**2)
    grad = pytensor.function([d], pytensor.grad(chi, d))
    x = np.linspace(-1, 1, 121)
    values = np.array([grad(1.3705 + 0.0006 * t) for t in x])
    ripple = values - np.polyval(np.polyfit(x, values, 3), x)
    return np.abs(ripple).max() / (values.max() - values.min())


def test_sis_gradient_is_smooth_at_the_broadening_floor(monkeypatch):
    """At gamma_tip = 2.1 grid steps the point-sampled tip DOS made the SIS likelihood's gradient in delta_tip ripple
    by +-250 around a smooth -150 (NUTS divergences on Pb calibrations); cell means remove the ripple."""
    import stsbayes.models.junction as junction

    smooth = _sis_gradient_ripple(True)
    monkeypatch.setattr(junction, "cell_mean", lambda energy, antiderivative, point: point(energy))
    aliased = _sis_gradient_ripple(False)
    assert smooth < 1e-4 and aliased > 10 * smooth  # measured: 1e-5 and 1.5e-3
