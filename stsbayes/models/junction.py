"""The tunnelling junction: Fermi function, NIS/SIS conductance by FFT, lock-in kernel, bias mapping (physics.md §3-4).

Energies and biases share one uniform grid of spacing ``h`` (meV = mV for an electron). With the sample-bias
convention the conductance is

    dI/dV(V) = integral N_s(E) { -N_t(E - V) f'(E - V) - N_t'(E - V) [f(E - V) - f(E)] } dE
             = (N_s ⋆ k1)(V) + (N_s f ⋆ N_t')(V),        k1(x) = -d/dx [N_t(x) f(x)],

two cross-correlations ``(a ⋆ b)(V) = sum_E a(E) b(E - V) h`` done by one batched real FFT. Far below the Fermi
level both terms cancel point by point (f = 1, f' = 0 there), so truncating the energy grid only needs the thermal
window [min(0, V), max(0, V)] +- 20 k_B T inside it. The lock-in average and the bias offset V0 are multiplications
in the same Fourier domain (the kernel's transform 2 J1(k V_p)/(k V_p) and the phase exp(-i k V0)); the result is
read at the data's biases directly when they lie on the grid, otherwise by cubic (Keys) interpolation.
"""

from dataclasses import dataclass
from functools import cached_property
import math

import numpy as np
import pytensor.tensor as pt
from pytensor.tensor.fft import irfft_op, rfft_op
from scipy.fft import next_fast_len

from .. import backends  # noqa: F401  (native numba FFTs for nutpie's default backend)
from .constants import K_B
from .dos import cell_mean, dynes, dynes_antiderivative, dynes_derivative, on_symmetric_grid

THERMAL_MARGIN_KT = 20.0  # f(E) - f(E - V) is below 2e-9 beyond 20 k_B T from the window


def fermi(energy, kT):
    """Fermi function f(E) = 1/(1 + exp(E/kT)), E and kT in meV (overflow-free through the sigmoid)."""
    return pt.sigmoid(-pt.as_tensor_variable(energy) / kT)


def modulation_peak(modulation_rms=None, modulation_peak=None):
    """Peak amplitude V_p (mV) of a sinusoidal modulation given as rms or as peak: V_p = sqrt(2) V_rms."""
    if (modulation_rms is None) == (modulation_peak is None):
        raise ValueError("give exactly one of modulation_rms and modulation_peak")
    return modulation_peak if modulation_rms is None else math.sqrt(2.0) * modulation_rms


def lockin_kernel(v, v_peak):
    """Lock-in kernel K(v) = 2/(pi V_p^2) sqrt(V_p^2 - v^2) for |v| <= V_p (NumPy; 1/mV). Unit integral."""
    v = np.asarray(v, dtype=float)
    inside = np.clip(v_peak**2 - v**2, 0.0, None)
    return 2.0 / (np.pi * v_peak**2) * np.sqrt(inside)


def _j1_over_x(x):
    """J1(x)/x for x >= 0 as a PyTensor expression (Numerical Recipes' rational approximations, |err| < 1e-8).

    Written out because PyTensor's own J1 runs in object mode on the numba backend (10 ms for 8000 points with its
    gradient); both branches are evaluated by ``switch``, so each gets a clipped argument to keep gradients finite.
    """
    xs = pt.minimum(x, 8.0)
    y = xs * xs
    small = (72362614232.0 + y * (-7895059235.0 + y * (242396853.1 + y * (-2972611.439 + y * (
        15704.48260 + y * (-30.16036606)))))) / (144725228442.0 + y * (2300535178.0 + y * (
            18583304.74 + y * (99447.43394 + y * (376.9991397 + y)))))
    xl = pt.maximum(x, 8.0)
    z = 8.0 / xl
    y = z * z
    xx = xl - 2.356194491
    p1 = 1.0 + y * (0.183105e-2 + y * (-0.3516396496e-4 + y * (0.2457520174e-5 + y * (-0.240337019e-6))))
    p2 = 0.04687499995 + y * (-0.2002690873e-3 + y * (0.8449199096e-5 + y * (-0.88228987e-6 + y * 0.105787412e-6)))
    large = pt.sqrt(0.636619772 / xl) * (pt.cos(xx) * p1 - z * pt.sin(xx) * p2) / xl
    return pt.switch(x < 8.0, small, large)


@dataclass(frozen=True)
class EnergyGrid:
    """A uniform grid E_i = (i - half) * step, i = 0 .. 2*half, and the FFT length that makes correlations linear.

    The conductance is returned at lags V_j = j * step, |j| <= max_lag. ``fft_size`` >= 2*half + 1 + max_lag keeps
    the circular correlation free of wrap-around at every returned lag.
    """

    step: float  # meV
    half: int
    max_lag: int
    fft_size: int

    @classmethod
    def for_window(cls, bias_max, *, step, kT_max, v_peak_max=0.0, offset_max=0.0):
        """The smallest grid that serves biases |V| <= bias_max (mV) anywhere the prior may go.

        ``kT_max`` (meV) is the largest thermal energy, ``v_peak_max`` (mV) the largest modulation peak amplitude,
        ``offset_max`` (mV) the largest |V0|: all taken from the support of the priors, so accuracy holds wherever a
        sampler moves.
        """
        # lags read by the cubic stencil, widened by the offset shift and the lock-in average
        lag_reach = bias_max + offset_max + v_peak_max + 4 * step
        max_lag = int(math.ceil(lag_reach / step))
        half = int(math.ceil((lag_reach + THERMAL_MARGIN_KT * kT_max + 0.05) / step))
        fft_size = next_fast_len(2 * half + 1 + max_lag, real=True)
        while fft_size % 2:  # irfft restores an even length only: an odd one would drop a sample
            fft_size = next_fast_len(fft_size + 1, real=True)
        return cls(step=float(step), half=half, max_lag=max_lag, fft_size=fft_size)

    @cached_property
    def energies(self):
        return (np.arange(2 * self.half + 1) - self.half) * self.step

    @cached_property
    def lags(self):
        """Biases (mV) at which :func:`conductance_on_grid` returns values."""
        return np.arange(-self.max_lag, self.max_lag + 1) * self.step

    @cached_property
    def wavenumbers(self):
        """Angular wavenumbers k_n = 2 pi n / (P h) (1/mV) of the rfft bins."""
        return 2.0 * np.pi * np.arange(self.fft_size // 2 + 1) / (self.fft_size * self.step)


def _pad(rows, grid):
    """Stack rows of length 2*half+1 and zero-pad them to the FFT length: shape (n_rows, fft_size)."""
    stacked = pt.stack(rows, axis=0)
    return pt.concatenate([stacked, pt.zeros((len(rows), grid.fft_size - (2 * grid.half + 1)))], axis=1)


def _cmul(a, b, conj_b=False):
    """Complex product of arrays whose last axis holds (real, imag)."""
    ar, ai = a[..., 0], a[..., 1]
    br, bi = b[..., 0], b[..., 1]
    if conj_b:
        bi = -bi
    return pt.stack([ar * br - ai * bi, ar * bi + ai * br], axis=-1)


def conductance_on_grid(grid, n_sample, *, T_eff, delta_tip=None, gamma_tip=None, v_peak=None, bias_offset=0.0):
    """Normalised conductance g_meas(V - V0) at the grid's lags (``grid.lags``), a PyTensor vector.

    ``n_sample`` is N_s on ``grid.energies``; a metallic tip when ``delta_tip`` is None, else a Dynes tip
    (delta_tip, gamma_tip in meV). ``T_eff`` in K; ``v_peak`` the modulation's peak amplitude in mV (None: no
    lock-in average); ``bias_offset`` V0 in mV.
    """
    energies = grid.energies
    # The transform length is passed as a constant so that gradients slice with static bounds (the JAX backend
    # needs them); the ops are unnormalised, so 1/P joins the grid step in ``factor``.
    length = np.array([grid.fft_size], dtype="int64")
    kT = K_B * T_eff
    f_e = fermi(energies, kT)
    minus_df = f_e * (1.0 - f_e) / kT  # -f'(x) on the same grid (x and E share it)
    if delta_tip is None:
        padded = _pad([n_sample, minus_df], grid)
        spectra = pt.specify_shape(rfft_op(padded, length), (2, grid.fft_size // 2 + 1, 2))
        product = _cmul(spectra[0], spectra[1], conj_b=True)
    else:
        # cell means of N_t and N_t' (dos.cell_mean: no aliasing of the sharp tip peaks on the grid)
        n_tip = on_symmetric_grid(energies, lambda e: cell_mean(
            e, lambda x: dynes_antiderivative(x, delta_tip, gamma_tip), lambda x: dynes(x, delta_tip, gamma_tip)))
        dn_tip = on_symmetric_grid(energies, lambda e: cell_mean(
            e, lambda x: dynes(x, delta_tip, gamma_tip), lambda x: dynes_derivative(x, delta_tip, gamma_tip)),
            parity=-1)
        k1 = n_tip * minus_df - dn_tip * f_e  # -d/dx [N_t f]
        padded = _pad([n_sample, n_sample * f_e, k1, dn_tip], grid)
        spectra = pt.specify_shape(rfft_op(padded, length), (4, grid.fft_size // 2 + 1, 2))
        product = _cmul(spectra[0], spectra[2], conj_b=True) + _cmul(spectra[1], spectra[3], conj_b=True)
    k = grid.wavenumbers
    factor = grid.step / grid.fft_size
    if v_peak is not None:
        factor = factor * 2.0 * _j1_over_x(k * v_peak)  # Fourier transform of the lock-in kernel
    phase = k * bias_offset
    shift = pt.stack([pt.cos(phase), -pt.sin(phase)], axis=-1)  # exp(-i k V0) moves g to g(V - V0)
    product = _cmul(product, shift) * pt.as_tensor_variable(factor)[..., None]
    # static shapes let slices and their gradients compile with constant bounds (needed by the JAX backend)
    circular = pt.specify_shape(irfft_op(product[None, ...], length)[0], (grid.fft_size,))
    return pt.concatenate([circular[grid.fft_size - grid.max_lag:], circular[: grid.max_lag + 1]])


@dataclass(frozen=True)
class BiasMap:
    """Reads values on the grid's lags at arbitrary biases: exact indices when on the grid, else cubic (Keys)."""

    index: np.ndarray  # (4, n) lag indices into grid.lags (or (1, n) when aligned)
    weight: np.ndarray  # same shape

    @classmethod
    def build(cls, grid, bias):
        bias = np.asarray(bias, dtype=float)
        t = bias / grid.step + grid.max_lag
        nearest = np.rint(t)
        if np.all(np.abs(t - nearest) < 1e-6):
            index = nearest.astype(int)[None, :]
            weight = np.ones_like(index, dtype=float)
        else:
            i = np.floor(t).astype(int)
            s = t - i
            weight = np.stack([
                0.5 * (-s**3 + 2 * s**2 - s),
                0.5 * (3 * s**3 - 5 * s**2 + 2),
                0.5 * (-3 * s**3 + 4 * s**2 + s),
                0.5 * (s**3 - s**2),
            ])
            index = np.stack([i - 1, i, i + 1, i + 2])
        if index.min() < 0 or index.max() > 2 * grid.max_lag:
            raise ValueError("bias outside the grid's window; build the grid from the data's bias range")
        return cls(index=index, weight=weight)

    def __call__(self, values):
        values = pt.as_tensor_variable(values)
        return (values[self.index] * self.weight).sum(axis=0)


def observe(g_meas_at_bias, bias, *, g_n=1.0, b0=0.0, b1=0.0):
    """Observation model y(V) = g_n g_meas(V - V0) (1 + b1 V) + b0 (physics.md §3); V0 is already applied."""
    return g_n * g_meas_at_bias * (1.0 + b1 * np.asarray(bias, dtype=float)) + b0
