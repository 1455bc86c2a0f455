"""What a fit needs from a measurement: biases, values, their units and the recorded conditions."""

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError


@dataclass
class FitData:
    """One spectrum prepared for fitting (sample bias in mV; values in µS, 'arb' or normalised units)."""

    bias: np.ndarray
    y: np.ndarray
    units: str = "normalised"
    sigma: np.ndarray | None = None  # standard error from sweeps
    n_sweeps: int | None = None
    temperature_K: float | None = None
    modulation: dict | None = None  # {"kind": "rms"|"peak", "value_mV": ..., "source": ...}
    metadata: dict = field(default_factory=dict)

    @property
    def scale(self):
        """Conductance scale: mean |y| over the outer 20 % of the bias window (the normal-state region)."""
        span = self.bias.max() - self.bias.min()
        outer = (self.bias <= self.bias.min() + 0.1 * span) | (self.bias >= self.bias.max() - 0.1 * span)
        s = float(np.mean(np.abs(self.y[outer])))
        return s if s > 0 else float(np.max(np.abs(self.y)))

    @classmethod
    def from_spectrum(cls, spectrum, *, temperature_K=None, modulation=None):
        """From a :class:`stsbayes.io.Spectrum` (one direction); flags override the file's metadata."""
        didv = np.asarray(spectrum.didv)
        if didv.ndim != 1:
            raise InputError("fitting both sweep directions at once is not supported yet: use --direction fwd or bwd")
        meta = spectrum.metadata
        return cls(bias=np.asarray(spectrum.bias_mV, float), y=didv.astype(float), units=spectrum.units,
                   sigma=None if spectrum.sigma is None else np.asarray(spectrum.sigma, float),
                   n_sweeps=spectrum.n_sweeps, metadata=dict(meta),
                   temperature_K=temperature_K if temperature_K is not None else meta.get("temperature_K"),
                   modulation=modulation if modulation is not None else meta.get("modulation"))

    def v_peak(self):
        """The modulation's peak amplitude (mV); refuses to guess when the kind is unknown."""
        m = self.modulation
        if not m:
            raise InputError("the lock-in amplitude is unknown: give --modulation-rms or --modulation-peak (mV)")
        if m.get("kind") not in ("rms", "peak"):
            raise InputError(f"the file records a modulation of {m.get('value_mV')} mV without saying rms or peak: "
                             "give --modulation-rms or --modulation-peak")
        return m["value_mV"] * (np.sqrt(2.0) if m["kind"] == "rms" else 1.0)
