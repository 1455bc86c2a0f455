"""JAX conversions for PyTensor's RFFTOp / IRFFTOp, so the same graph runs on the JAX backend (NumPyro, GPU).

PyTensor 3.3.8 ships no JAX conversion for its real FFTs. The ops' semantics (pytensor/tensor/fft.py): ``RFFTOp``
takes (batch, ..., n) and returns the half spectrum with a trailing (real, imag) axis, unnormalised; ``IRFFTOp``
takes that layout and returns the *unnormalised* inverse (numpy's irfftn times the product of the lengths).
JAX must run in 64-bit for these spectra (the conductance needs ~1e-6 relative accuracy).
"""

import jax
import jax.numpy as jnp
from pytensor.link.jax.dispatch import jax_funcify
from pytensor.tensor.fft import IRFFTOp, RFFTOp

jax.config.update("jax_enable_x64", True)


@jax_funcify.register(RFFTOp)
def _rfft(op, node=None, **kwargs):
    def rfft(a, s):
        # transform lengths = the input's (stsbayes pads explicitly; the ``s`` input is not used for padding)
        spectrum = jnp.fft.rfftn(a, axes=tuple(range(1, a.ndim)))
        return jnp.stack([spectrum.real, spectrum.imag], axis=-1)

    return rfft


@jax_funcify.register(IRFFTOp)
def _irfft(op, node=None, **kwargs):
    def irfft(a, s):
        # ``s`` is a traced value under jit, so the output lengths come from the static input shape. That assumes
        # even transform lengths, which stsbayes guarantees (EnergyGrid keeps fft_size even).
        spectrum = a[..., 0] + 1j * a[..., 1]
        axes = tuple(range(1, spectrum.ndim))
        lengths = tuple(spectrum.shape[1:-1]) + (2 * (spectrum.shape[-1] - 1),)
        out = jnp.fft.irfftn(spectrum, s=lengths, axes=axes)
        scale = 1
        for n in lengths:
            scale *= n
        return out * scale

    return irfft
