"""Bundled example data: spectra simulated by ``stsbayes simulate`` from the specs beside them (see README.md).

Regenerate with ``python -m stsbayes.data.generate``; :data:`DATA` is this folder.
"""

from pathlib import Path

DATA = Path(__file__).parent
