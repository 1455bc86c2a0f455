"""Reading real data into one Spectrum type, and writing spectra and result files atomically.

``load(path, **overrides)`` reads Nanonis ``.dat`` spectra and ``.3ds`` grids and CSV/TSV tables, in the
sample-bias convention with bias in mV; ``describe(path)`` says what a file holds. Bad input raises
:class:`stsbayes.errors.InputError` only.
"""

from stsbayes.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from stsbayes.io.csvio import write_csv
from stsbayes.io.grid import Grid
from stsbayes.io.nanonis import write_nanonis_dat
from stsbayes.io.reading import describe, load
from stsbayes.io.spectrum import Spectrum

__all__ = [
    "Grid",
    "Spectrum",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "describe",
    "load",
    "write_csv",
    "write_nanonis_dat",
]
