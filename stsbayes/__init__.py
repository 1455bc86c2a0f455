"""stsbayes: calibrated posteriors and honest model comparisons for scanning tunnelling spectra."""

__version__ = "0.1.0"

from .errors import InputError  # noqa: E402
from .models import load_spec, simulate  # noqa: E402


def load(path, **overrides):
    """Read a spectrum file (Nanonis .dat/.3ds, CSV/TSV) into a Spectrum (or a Grid); see stsbayes.io.load."""
    from .io import load as _load
    return _load(path, **overrides)


def calibrate_tip(data, spec=None, **kwargs):
    """Calibrate a superconducting tip on a reference spectrum; see :func:`stsbayes.api.calibrate_tip`."""
    from .api import calibrate_tip as _calibrate
    return _calibrate(data, spec, **kwargs)


def fit(data, spec, **kwargs):
    """Fit a sample spectrum (``tip=`` a calibration, or ``metal_tip=True``); see :func:`stsbayes.api.fit`."""
    from .api import fit as _fit
    return _fit(data, spec, **kwargs)


def load_result(path):
    """Reload a result directory written by calibrate-tip or fit."""
    from .results import load_result as _load_result
    return _load_result(path)


__all__ = ["InputError", "__version__", "calibrate_tip", "fit", "load", "load_result", "load_spec", "simulate"]
