"""Forward physics, no sampling: densities of states, the junction, the spec and simulate()."""

from .constants import G0, K_B, MU_B
from .dos import bound_states, dynes, dynes_derivative, lorentzian, sample_dos
from .junction import BiasMap, EnergyGrid, conductance_on_grid, fermi, lockin_kernel, modulation_peak
from .simulate import expected_signal, simulate, true_parameters
from .spec import Prior, Spec, load_spec, parse_spec

__all__ = ["G0", "K_B", "MU_B", "BiasMap", "EnergyGrid", "Prior", "Spec", "bound_states", "conductance_on_grid",
           "dynes", "dynes_derivative", "expected_signal", "fermi", "load_spec", "lockin_kernel", "lorentzian",
           "modulation_peak", "parse_spec", "sample_dos", "simulate", "true_parameters"]
