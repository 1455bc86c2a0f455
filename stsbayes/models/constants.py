"""Physical constants in the package's units (meV, K, T, µS); physics.md §1."""

K_B = 0.08617333262  # meV / K
MU_B = 0.05788381806  # meV / T
G0 = 77.48091729  # µS, the conductance quantum 2e^2/h

# Floors that the grid's accuracy guarantee rests on (physics.md §4): below these an SIS sum peak is too sharp
# for any fixed grid, and real data always have some broadening.
GAMMA_FLOOR = 0.001  # meV, Dynes broadening of tip and sample gaps
WIDTH_FLOOR = 0.001  # meV, Lorentzian half width of a bound state
MODULATION_RMS_FLOOR = 0.005  # mV rms lock-in modulation
