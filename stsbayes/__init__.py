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


def fit_joint(spectra, spec, **kwargs):
    """Fit labelled spectra of one tip together (shared tip and T_eff); see :func:`stsbayes.api.fit_joint`."""
    from .api import fit_joint as _fit_joint
    return _fit_joint(spectra, spec, **kwargs)


def difference(result, name, a, b, **kwargs):
    """P(b:name < a:name) and a credible interval on the change, from a joint fit; see stsbayes.api.difference."""
    from .api import difference as _difference
    return _difference(result, name, a, b, **kwargs)


def compare(data, spec=None, **kwargs):
    """Compare the ZECP hypotheses mzm / ysr / ysr2 on one spectrum by their evidence; see
    :func:`stsbayes.compare.compare`. Returns a CompareResult (``.summary()``, ``.save(dir)``, ``.report(dir)``)."""
    from .comparison import compare as _compare
    return _compare(data, spec, **kwargs)


def load_compare(path):
    """Reload a result directory written by ``stsbayes compare`` (summary.json + posterior_<h>.nc)."""
    from .comparison import load_compare as _load_compare
    return _load_compare(path)


def series(kind, spectra, conditions=None, spec=None, **kwargs):
    """Compare mzm and ysr on a series ("gn", "field" or "defects"): ``spectra`` a manifest CSV or a list of
    spectra with per-spectrum ``conditions``; see :func:`stsbayes.series.series`. Returns a CompareResult."""
    from .series import series as _series
    return _series(kind, spectra, conditions, spec, **kwargs)


def simulate_series(kind, hypothesis, truth, conditions, spec, bias, **kwargs):
    """Simulate a series of spectra (µS) from a law at true values; see :func:`stsbayes.series.simulate_series`."""
    from .series import simulate_series as _simulate_series
    return _simulate_series(kind, hypothesis, truth, conditions, spec, bias, **kwargs)


def load_result(path):
    """Reload a result directory written by calibrate-tip or fit."""
    from .results import load_result as _load_result
    return _load_result(path)


__all__ = ["InputError", "__version__", "calibrate_tip", "compare", "fit", "load", "load_compare", "load_result",
           "load_spec", "series", "simulate", "simulate_series"]
