"""Numba (nopython) implementations of PyTensor's RFFTOp / IRFFTOp, through rocket-fft.

PyTensor 3.3.8 has no numba dispatch for its real FFTs, so the numba backend (the one nutpie compiles by default)
falls back to object mode for them: every gradient evaluation then re-enters the interpreter and holds the GIL, so
nutpie's chains, which run on separate threads, queue behind one another. rocket-fft teaches numba ``np.fft``; with
these two registrations the whole log-density compiles to native code and the chains run in parallel.

Semantics as pytensor/tensor/fft.py: ``RFFTOp`` maps (batch, n) to the unnormalised half spectrum (batch, n//2+1, 2)
with (real, imag) on the last axis; ``IRFFTOp`` maps that back to (batch, n) *unnormalised* (numpy's irfft times
n). stsbayes only transforms one axis after the batch axis, with even lengths (EnergyGrid keeps fft_size even);
other ranks fall back to PyTensor's object-mode implementation.
"""

import numpy as np
import rocket_fft  # noqa: F401  (registers np.fft for numba)
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import generate_fallback_impl, register_funcify_default_op_cache_key
from pytensor.tensor.fft import IRFFTOp, RFFTOp

# bumped when the implementations below change, so numba's on-disk cache does not serve stale code
_VERSION = 1


@register_funcify_default_op_cache_key(RFFTOp)
def _rfft(op, node=None, **kwargs):
    if node is None or node.inputs[0].type.ndim != 2:
        return generate_fallback_impl(op, node, **kwargs)

    @numba_basic.numba_njit
    def rfft(a, s):
        spectrum = np.fft.rfft(np.ascontiguousarray(a), axis=-1)
        out = np.empty((spectrum.shape[0], spectrum.shape[1], 2), dtype=np.float64)
        out[:, :, 0] = spectrum.real
        out[:, :, 1] = spectrum.imag
        return out

    return rfft, _VERSION


@register_funcify_default_op_cache_key(IRFFTOp)
def _irfft(op, node=None, **kwargs):
    if node is None or node.inputs[0].type.ndim != 3:
        return generate_fallback_impl(op, node, **kwargs)

    @numba_basic.numba_njit
    def irfft(a, s):
        m = a.shape[1]
        n = 2 * (m - 1)
        spectrum = np.empty((a.shape[0], m), dtype=np.complex128)
        spectrum.real[:] = a[:, :, 0]
        spectrum.imag[:] = a[:, :, 1]
        return np.fft.irfft(spectrum, n=n, axis=-1) * n

    return irfft, _VERSION
