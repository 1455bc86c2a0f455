"""A slow, obviously-right reference for the conductance: direct quadrature of physics.md §3, per bias.

Independent of the package: complex NumPy with the textbook |Re[...]| Dynes form, the integrand of dI/dV written
as in physics.md, integrated by the trapezoid rule on a fine grid over each bias's thermal window, and the lock-in
average by Gauss-Chebyshev quadrature of the second kind (its weight sqrt(1 - t^2) *is* the lock-in kernel).
"""

import numpy as np

K_B = 0.08617333262


def dynes_ref(e, delta, gamma):
    """(N_D, dN_D/dE) from complex arithmetic; the sign fixes whichever branch NumPy's sqrt picked."""
    z = e + 1j * gamma
    root = np.sqrt(z * z - delta**2)
    ratio = z / root
    sign = np.sign(ratio.real)
    return sign * ratio.real, sign * (-(delta**2) / root**3).real


def sample_dos_ref(e, sample):
    n = np.zeros_like(e)
    for d, g, w in zip(sample["delta"], sample["gamma"], sample["weight"]):
        n += w * dynes_ref(e, d, g)[0]
    c = sample.get("floor", 0.0)
    n = c + (1 - c) * n
    for bs in sample.get("bound_states", []):
        lor = lambda x0: (bs["width"] / np.pi) / ((e - x0) ** 2 + bs["width"] ** 2)
        n += bs["u2"] * lor(bs["eps"]) + bs["v2"] * lor(-bs["eps"])
    return n


def conductance_ref(v, sample, tip, T, step=1e-4):
    """Normalised dI/dV at sample bias v (mV) before lock-in; tip None means a metallic tip."""
    kT = K_B * T
    lo, hi = min(0.0, v) - 40 * kT, max(0.0, v) + 40 * kT
    n = int(np.ceil((hi - lo) / step)) + 1
    e = np.linspace(lo, hi, n)
    x = e - v
    f = lambda u: 0.5 * (1 - np.tanh(u / (2 * kT)))
    mdf = lambda u: 1.0 / (4 * kT * np.cosh(u / (2 * kT)) ** 2)  # -f'
    if tip is None:
        nt, dnt = np.ones_like(x), np.zeros_like(x)
    else:
        nt, dnt = dynes_ref(x, tip["delta"], tip["gamma"])
    integrand = sample_dos_ref(e, sample) * (nt * mdf(x) - dnt * (f(x) - f(e)))
    return np.trapezoid(integrand, e)


def measured_ref(bias, sample, tip, T, v_peak, nodes=24, step=1e-4):
    """Lock-in averaged conductance at each bias (Gauss-Chebyshev-U over the modulation)."""
    i = np.arange(1, nodes + 1)
    theta = i * np.pi / (nodes + 1)
    w = 2.0 / (nodes + 1) * np.sin(theta) ** 2
    out = np.empty(len(bias))
    for k, v in enumerate(bias):
        out[k] = sum(wi * conductance_ref(v + v_peak * np.cos(t), sample, tip, T, step) for wi, t in zip(w, theta))
    return out
