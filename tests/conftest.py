import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("MPLBACKEND", "Agg")
# pytest -n 2 already keeps both cores busy: hypotheses run one after the other in each test unless it asks for
# worker processes itself (--workers / workers=), as the tests of that path do
os.environ.setdefault("STSBAYES_WORKERS", "1")

PB_SPEC = {"tip": {"kind": "dynes", "delta": 1.37, "gamma": 0.005},
           "sample": {"delta": [1.26, 1.41], "gamma": [0.005, 0.005], "weight": [0.5, 0.5]},
           "junction": {"T_eff": 0.32, "modulation_rms": 0.014}}


@pytest.fixture
def pb_spec():
    import copy
    return copy.deepcopy(PB_SPEC)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
