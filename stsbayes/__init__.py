"""stsbayes: calibrated posteriors and honest model comparisons for scanning tunnelling spectra."""

__version__ = "0.1.0"

from .errors import InputError  # noqa: E402
from .models import load_spec, simulate  # noqa: E402


def load(path, **overrides):
    """Read a spectrum file (Nanonis .dat/.3ds, CSV/TSV) into a Spectrum (or a Grid); see stsbayes.io.load."""
    from .io import load as _load
    return _load(path, **overrides)


__all__ = ["InputError", "__version__", "load", "load_spec", "simulate"]
