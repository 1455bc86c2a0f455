"""The forward model as one PyTensor graph: parameters -> expected conductance at the data's biases.

:func:`predict` is the single implementation used by :func:`stsbayes.models.simulate.simulate` (compiled with
numbers) and by the PyMC models in ``stsbayes.inference`` (with random variables).
"""

import numpy as np
import pytensor.tensor as pt

from .constants import GAMMA_FLOOR, WIDTH_FLOOR
from .dos import sample_dos
from .junction import BiasMap, EnergyGrid, conductance_on_grid, observe

# Parameter names of the graph (canonical names of architecture.md, with the modulation as its peak amplitude).
TIP_PARAMS = ("delta_tip", "gamma_tip")
BOUND_PARAMS = ("eps", "width", "u2", "v2")


THERMAL_STEP_FRACTION = 0.3  # metal tip: grid step per kT at the lowest temperature the prior allows
METAL_STEP_CAP = 0.01  # meV


def choose_step(gamma_min=GAMMA_FLOOR, width_min=WIDTH_FLOOR, kT_min=None):
    """Grid step (meV) that keeps the conductance within 0.1 % of its peak for every broadening >= the minima.

    Measured against the quadrature reference (tests/test_accuracy.py): at the floors (gamma 0.001 meV, 0.005 mV
    rms, 80 mK) a step of 0.0005 meV gives 0.007 % and 0.001 meV gives 2.4 %; at Pb parameters (gamma 0.005 meV)
    0.002 meV gives 0.0004 %. Half the narrowest line width, at most 0.002 meV.

    A metal tip (``kT_min`` given: k_B times the lowest T_eff the prior allows) sees the sample only through the
    Fermi window, whose width the cell-mean densities need resolved, not the lines': 0.3 kT_min, at most
    0.01 meV, when that is coarser. Measured (tests/test_accuracy.py::test_metal_tip_step_follows_the_temperature):
    at 80 mK and lines of 0.001-0.002 meV, 0.002 meV gives 0.011 % and 0.004 meV 0.18 %; at 0.5 K, 0.016 meV
    gives 0.005 %.
    """
    step = min(0.002, 0.5 * min(gamma_min, width_min))
    if kT_min is not None and kT_min > 0:
        step = max(step, min(METAL_STEP_CAP, THERMAL_STEP_FRACTION * kT_min))
    return step


def predict(grid, bias_map, bias, params):
    """Expected measured signal y(V) at ``bias`` (mV) for a dict of parameters (numbers or tensors).

    Keys: ``delta``, ``gamma``, ``weight`` (vectors over gaps), ``floor``; optional bound states ``eps``, ``width``,
    ``u2``, ``v2`` (vectors over pairs); ``delta_tip``, ``gamma_tip`` (absent: metallic tip); ``T_eff`` (K);
    ``v_peak`` (mV, modulation peak amplitude); ``g_n``, ``bias_offset`` (mV), ``b0``, ``b1`` (1/mV).
    """
    bound = {k: params[k] for k in BOUND_PARAMS} if "eps" in params else {}
    n_s = sample_dos(grid.energies, params["delta"], params["gamma"], params["weight"], params.get("floor", 0.0),
                     cells=True, **bound)
    g = conductance_on_grid(grid, n_s, T_eff=params["T_eff"], delta_tip=params.get("delta_tip"),
                            gamma_tip=params.get("gamma_tip"), v_peak=params.get("v_peak"),
                            bias_offset=params.get("bias_offset", 0.0))
    return observe(bias_map(g), bias, g_n=params.get("g_n", 1.0), b0=params.get("b0", 0.0), b1=params.get("b1", 0.0))


def build_grid(bias, *, gamma_min, width_min, kT_max, v_peak_max, offset_max, kT_min=None, window=None):
    """Grid and bias map for data at ``bias`` (mV) and a prior support described by the extremes given
    (``kT_min`` only for a metal tip, see :func:`choose_step`); ``window`` (mV) widens the grid to serve
    |V| <= window beyond the data."""
    bias = np.asarray(bias, dtype=float)
    reach = max(float(np.max(np.abs(bias))), float(window or 0.0))
    grid = EnergyGrid.for_window(reach, step=choose_step(gamma_min, width_min, kT_min),
                                 kT_max=kT_max, v_peak_max=v_peak_max, offset_max=offset_max)
    return grid, BiasMap.build(grid, bias)


def as_tensor_params(params):
    return {k: pt.as_tensor_variable(np.asarray(v, dtype=float)) for k, v in params.items()}
