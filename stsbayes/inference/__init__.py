"""Inference: PyMC models from a spec, default priors, samplers, the tip density that carries calibrations."""

from .data import FitData
from .model import build_model
from .priors import PB_REFERENCE
from .sampling import run_nuts
from .tip import TipDensity

__all__ = ["FitData", "PB_REFERENCE", "TipDensity", "build_model", "run_nuts"]
