"""Backend glue for PyTensor ops that lack a conversion (architecture.md, backend decision)."""

from . import numba_fft  # noqa: E402,F401  (registers the numba FFTs whenever the models are imported)
