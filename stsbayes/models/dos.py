"""Densities of states, normalised to 1 far from the gap (physics.md §2).

Every function takes energies in meV (a NumPy array or a PyTensor tensor) and parameters as numbers or tensors,
and returns a PyTensor expression: the same graph serves ``simulate`` (compiled with numbers) and the PyMC model.

Dynes convention: N_D(E) = Re[ z / sqrt(z^2 - Delta^2) ], z = E + i*gamma (the usual Dynes form; the paper's
sqrt(E^2 + 2 i gamma E - Delta^2) drops the -gamma^2 and differs at O(gamma^2)). The branch is chosen by writing
z / sqrt(z^2 - Delta^2) = 1 / sqrt(w), w = 1 - Delta^2 / z^2, with the principal square root: for gamma > 0, w never
touches the negative real axis (Im w = 0 only at E = 0, where w = 1 + Delta^2/gamma^2 > 0), so 1/sqrt(w) is
analytic along the whole real E axis and Re(1/sqrt(w)) >= 0 without taking an absolute value. The arithmetic is
written in real numbers without sign functions, so gradients are finite at E = 0 and at E = +-Delta.
"""

import numpy as np
import pytensor.tensor as pt


def _sqrt_w(energy, delta, gamma):
    """sqrt(w) = r + i s (principal branch, see the module docstring), |w| and |z|^2."""
    energy = pt.as_tensor_variable(energy)
    e2 = energy**2
    g2 = gamma**2
    d2 = delta**2
    abs_z2 = e2 + g2  # |z|^2
    inv = d2 / abs_z2**2
    # w = 1 - Delta^2 / z^2 = a + i b, using 1/z^2 = conj(z)^2 / |z|^4
    a = 1.0 - inv * (e2 - g2)
    b = 2.0 * inv * energy * gamma
    abs_w = pt.sqrt(a**2 + b**2)
    # Re sqrt(w) = sqrt((|w| + a) / 2) whatever the sign of b; Im sqrt(w) = b / (2 Re sqrt(w)).
    r = pt.sqrt(0.5 * (abs_w + a))
    return r, b / (2.0 * r), abs_w, abs_z2


def _dynes_parts(energy, delta, gamma):
    """Shared pieces of the Dynes DOS: returns (1/sqrt(w) real, imag, |z|^2)."""
    r, s, abs_w, abs_z2 = _sqrt_w(energy, delta, gamma)
    return r / abs_w, -s / abs_w, abs_z2  # 1/sqrt(w) = conj(sqrt w) / |w|


def dynes_antiderivative(energy, delta, gamma):
    """F(E) = Re sqrt(z^2 - Delta^2) = Re[z sqrt(w)], the antiderivative of N_D that is odd in E (F(0) = 0):
    d/dz [z sqrt(1 - Delta^2/z^2)] = 1/sqrt(w)."""
    energy = pt.as_tensor_variable(energy)
    r, s, _, _ = _sqrt_w(energy, delta, gamma)
    return energy * r - gamma * s


def cell_edges(energy):
    """Edges of the cells centred on a uniform NumPy grid and its spacing; (None, None) for anything else."""
    if isinstance(energy, np.ndarray) and energy.ndim == 1 and energy.size > 1:
        h = float(energy[1] - energy[0])
        if h > 0 and np.allclose(np.diff(energy), h, rtol=1e-9, atol=0.0):
            return np.append(energy - 0.5 * h, energy[-1] + 0.5 * h), h
    return None, None


def cell_mean(energy, antiderivative, point):
    """Mean of a function over each cell of a uniform NumPy grid, (F(E + h/2) - F(E - h/2)) / h from its
    ``antiderivative``; ``point(energy)`` (the function's value) on any other energies.

    Why: the FFT grid samples line shapes only a few steps wide (Dynes peaks of gamma = 2 steps at the broadening
    floor). Point samples then alias: as a gap moves by a fraction of a step the sampled peak heights ripple, and
    so does the gradient of the log-likelihood (measured on a Pb calibration: +-250 around a smooth -150 in
    delta_tip at gamma_tip = 0.0021 meV, enough to make NUTS diverge). Cell means conserve each peak's weight
    exactly and vary smoothly with the parameters. A plain cell mean broadens by an rms of h/sqrt(12), which the
    fourth-order correction below removes to O(h^4).
    """
    edges, h = cell_edges(energy)
    if edges is None:
        return point(energy)
    # one more cell on each side, then the fourth-order cell-mean -> point-value correction of finite-volume
    # schemes, N_i = M_i - (M_(i+1) - 2 M_i + M_(i-1)) / 24 (a 3-tap filter summing to 1: grid sums stay exact)
    edges = np.concatenate([[edges[0] - h], edges, [edges[-1] + h]])
    values = antiderivative(edges)
    means = (values[..., 1:] - values[..., :-1]) / h
    return (26.0 * means[..., 1:-1] - means[..., 2:] - means[..., :-2]) / 24.0


def on_symmetric_grid(energy, fn, parity=1):
    """fn(energy) for an even (parity 1) or odd (parity -1) function of E, evaluated on E >= 0 only and mirrored
    when ``energy`` is a NumPy grid symmetric about 0 (the FFT grid is): half the elementwise work and gradient."""
    if isinstance(energy, np.ndarray) and energy.ndim == 1 and energy.size % 2 == 1 and np.array_equal(
            energy, -energy[::-1]):
        m = energy.size // 2
        half = fn(energy[m:])
        left = half[..., :0:-1]
        return pt.concatenate([left if parity == 1 else -left, half], axis=-1)
    return fn(energy)


def dynes(energy, delta, gamma):
    """Dynes density of states N_D(E; delta, gamma) (energies and parameters in meV)."""
    inv_s_re, _, _ = _dynes_parts(energy, delta, gamma)
    return inv_s_re


def dynes_derivative(energy, delta, gamma):
    """dN_D/dE (1/meV), analytic: d/dE [z (z^2 - Delta^2)^(-1/2)] = -Delta^2 / (z^3 w^(3/2))."""
    energy = pt.as_tensor_variable(energy)
    inv_s_re, inv_s_im, abs_z2 = _dynes_parts(energy, delta, gamma)
    # q = (1/sqrt w) * (1/z), 1/z = (E - i gamma)/|z|^2
    q_re = (inv_s_re * energy + inv_s_im * gamma) / abs_z2
    q_im = (inv_s_im * energy - inv_s_re * gamma) / abs_z2
    return -(delta**2) * (q_re**3 - 3.0 * q_re * q_im**2)


def lorentzian(energy, center, width):
    """Lorentzian line (1/meV) of half width ``width`` at ``center``, unit integral."""
    return (width / np.pi) / ((energy - center) ** 2 + width**2)


def bound_states(energy, eps, width, u2, v2):
    """In-gap bound-state pairs: sum_k u2_k L(E; +eps_k) + v2_k L(E; -eps_k) (physics.md §2).

    ``eps``, ``width``, ``u2``, ``v2`` are vectors over pairs (meV; u2/v2 in meV x normal-state DOS). The electron
    weight u2 sits at +eps (empty states, probed at positive sample bias), the hole weight v2 at -eps.
    """
    e = pt.as_tensor_variable(energy)[None, :]
    eps = pt.as_tensor_variable(eps)[:, None]
    width = pt.as_tensor_variable(width)[:, None]
    u2 = pt.as_tensor_variable(u2)[:, None]
    v2 = pt.as_tensor_variable(v2)[:, None]
    return (u2 * lorentzian(e, eps, width) + v2 * lorentzian(e, -eps, width)).sum(axis=0)


def bound_states_antiderivative(energy, eps, width, u2, v2):
    """An antiderivative of :func:`bound_states` in E: sum_k [u2_k atan((E - eps_k)/w_k) + v2_k atan((E + eps_k)/w_k)]
    / pi."""
    e = pt.as_tensor_variable(energy)[None, :]
    eps = pt.as_tensor_variable(eps)[:, None]
    width = pt.as_tensor_variable(width)[:, None]
    u2 = pt.as_tensor_variable(u2)[:, None]
    v2 = pt.as_tensor_variable(v2)[:, None]
    return ((u2 * pt.arctan((e - eps) / width) + v2 * pt.arctan((e + eps) / width)) / np.pi).sum(axis=0)


def sample_dos(energy, delta, gamma, weight, floor=0.0, eps=None, width=None, u2=None, v2=None, cells=False):
    """N_s(E) = c + (1 - c) sum_k w_k N_D(E; delta_k, gamma_k) + N_bs(E) (physics.md §2).

    ``cells``: on a uniform NumPy grid, the mean of N_s over each grid cell instead of its value at the centre
    (see :func:`cell_mean`; the forward model uses it).
    ``delta``, ``gamma``, ``weight`` are vectors over gaps (meV, meV, 1; weights sum to 1), ``floor`` is the in-gap
    floor c. Bound states are added when ``eps`` is given (vectors over pairs, see :func:`bound_states`).
    """
    delta = pt.as_tensor_variable(delta)[:, None]
    gamma = pt.as_tensor_variable(gamma)[:, None]
    weight = pt.as_tensor_variable(weight)[:, None]
    def weighted(fn):
        return lambda e: (weight * fn(pt.as_tensor_variable(e)[None, :], delta, gamma)).sum(axis=0)

    if cells:
        gaps = on_symmetric_grid(energy, lambda e: cell_mean(e, weighted(dynes_antiderivative), weighted(dynes)))
    else:
        gaps = on_symmetric_grid(energy, weighted(dynes))
    dos = floor + (1.0 - floor) * gaps
    if eps is not None:
        if cells:
            dos = dos + cell_mean(energy, lambda e: bound_states_antiderivative(e, eps, width, u2, v2),
                                  lambda e: bound_states(e, eps, width, u2, v2))
        else:
            dos = dos + bound_states(energy, eps, width, u2, v2)
    return dos
