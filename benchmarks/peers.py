"""What the benchmarks share: the refined per-bias trapezoid peer and the machine/JSON/number helpers.

The trapezoid peer is the way SIS spectra are computed today outside stsbayes (nanoGUNE's ``nanonis``,
SpectraFox): for every bias a trapezoid over energy, no FFT, no gradient. Here it is plain NumPy with the lock-in
kernel added, at a step chosen by ``forward.py`` to meet the accuracy target (physics.md §4). ``forward.py`` times
it; ``calibration.py`` fits it with lmfit.
"""

import importlib.metadata
import json
import math
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import pytensor
from pytensor.compile.mode import get_mode

from stsbayes.models.constants import K_B

PEER_ENERGY_POINTS = 5000  # nanonis Superconductor.SIS: np.linspace(-10 Delta1, 10 Delta1, 5000)
REFINE_START_STEP = 20 * 1.26 / (PEER_ENERGY_POINTS - 1)  # meV, the peer's own spacing at the Pb sample gap
REFINE_START_NODES = 4
THERMAL_REACH_KT = 30.0  # f(E) - f(E - V) < 1e-13 beyond 30 k_B T from the window (the reference uses 40)


# ------------------------------------------------------------------------ the refined per-bias trapezoid peer
def dynes_and_derivative(x, delta, gamma):
    """Dynes DOS |Re[z / sqrt(z^2 - delta^2)]|, z = x + i gamma, and its derivative in x (complex NumPy)."""
    z = x + 1j * gamma
    root = np.sqrt(z * z - delta**2)
    ratio = z / root
    sign = np.sign(ratio.real)
    return sign * ratio.real, sign * (-(delta**2) / root**3).real


def fermi(x, kT):
    return 0.5 * (1.0 - np.tanh(x / (2.0 * kT)))


def refine_level(level):
    """Energy step (meV) and modulation nodes of refinement ``level``: each level halves one and doubles the other."""
    return REFINE_START_STEP / 2**level, REFINE_START_NODES * 2**level


def trapezoid_sis(p, step, nodes, bias, v_peak):
    """Lock-in averaged SIS conductance g_meas(V - V0) at every bias (mV), by per-bias trapezoids.

    ``p`` holds delta_tip, gamma_tip, T_eff (K), delta, gamma, weight (arrays over the sample gaps) and
    bias_offset; ``v_peak`` is the modulation's peak amplitude (mV). For each bias V and each Gauss-Chebyshev
    (second kind) node u_j = V - V0 + V_p cos(theta_j) -- the weight sin^2(theta_j) is the lock-in kernel -- the
    trapezoid rule on a uniform energy grid of spacing ``step`` over the thermal window
    [min(0, u), max(0, u)] +- 30 k_B T of
        dI/dV(u) = integral N_s(E) { N_t(E - u) [-f'(E - u)] - N_t'(E - u) [f(E - u) - f(E)] } dE.
    Returns the conductance and the number of integrand evaluations.
    """
    bias = np.asarray(bias, dtype=float)
    kT = K_B * p["T_eff"]
    reach = THERMAL_REACH_KT * kT
    i = np.arange(1, nodes + 1)
    theta = i * np.pi / (nodes + 1)
    weights = 2.0 / (nodes + 1) * np.sin(theta) ** 2
    offsets = v_peak * np.cos(theta)
    half = int(math.ceil((np.max(np.abs(bias)) + v_peak + abs(p["bias_offset"]) + reach) / step)) + 2
    energy = np.arange(-half, half + 1) * step
    n_sample = sum(w * dynes_and_derivative(energy, d, g)[0] for d, g, w in zip(p["delta"], p["gamma"], p["weight"]))
    f_energy = fermi(energy, kT)
    out = np.empty(bias.size)
    evaluations = 0
    for k, v in enumerate(bias):
        u = v - p["bias_offset"] + offsets
        lo = int(math.floor((min(0.0, u.min()) - reach) / step)) + half
        hi = int(math.ceil((max(0.0, u.max()) + reach) / step)) + half + 1
        x = energy[None, lo:hi] - u[:, None]
        n_tip, dn_tip = dynes_and_derivative(x, p["delta_tip"], p["gamma_tip"])
        f_x = fermi(x, kT)
        integrand = n_sample[lo:hi] * (n_tip * f_x * (1.0 - f_x) / kT - dn_tip * (f_x - f_energy[lo:hi]))
        out[k] = weights @ np.trapezoid(integrand, dx=step, axis=1)
        evaluations += x.size
    return out, evaluations


# ---------------------------------------------------------------------------------------------- reporting
def machine_info(packages):
    """CPU, platform, Python, the versions of ``packages`` and PyTensor's backend, for a result's provenance."""
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in packages:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "cpu_model": cpu_model, "platform": platform.platform(), "python": platform.python_version(),
            "versions": versions, "pytensor_default_linker": type(get_mode(None).linker).__name__,
            "pytensor_compiledir": str(pytensor.config.compiledir)}


def fmt(x, spec):
    """``format(x, spec)``, or a dash padded to the same width when there is no number."""
    width = int("".join(c for c in spec.split(".")[0] if c.isdigit()) or 0)
    return "-".rjust(width) if x is None else format(x, spec)


def write_json(path, payload):
    """Atomic write: a temporary file in the same folder, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o))
            fh.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the result the usual permissions
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
