"""The FFT engine against the direct-quadrature reference (tests/reference.py), the issue's cases (a)-(d).

Target (physics.md §4): max |error| <= 0.1 % of the largest conductance in the window, and for Pb-Pb on 401 points
over +-4 mV sum(e^2)/(2 sigma^2) <= 1 at sigma = 0.03. The default run checks a reduced set of biases (the
peaks and the gap, where errors live); the `slow` marker runs the full 401-point spectra.
"""

import numpy as np
import pytest

from reference import measured_ref
from stsbayes.models import simulate

SQRT2 = np.sqrt(2.0)


def spec_of(sample, tip, T, rms, offset=0.0, bound=None):
    s = {"sample": dict(sample), "junction": {"T_eff": T, "modulation_rms": rms, "bias_offset": offset}}
    if bound:
        s["sample"]["bound_states"] = bound
    s["tip"] = {"kind": "metal"} if tip is None else {"kind": "dynes", **tip}
    return s


def reference(bias, spec, nodes):
    s = spec["sample"]
    sample = dict(delta=s["delta"], gamma=s["gamma"], weight=s["weight"], floor=s.get("floor", 0.0),
                  bound_states=s.get("bound_states", []))
    tip = None if spec["tip"]["kind"] == "metal" else spec["tip"]
    j = spec["junction"]
    step = min([*s["gamma"], *(b["width"] for b in sample["bound_states"]), *([tip["gamma"]] if tip else [])]) / 10
    return measured_ref(np.asarray(bias) - j["bias_offset"], sample, tip, j["T_eff"], SQRT2 * j["modulation_rms"],
                        nodes=nodes, step=step)


def check(bias, spec, nodes=16, sigma=None):
    got = simulate(spec, bias)
    ref = reference(bias, spec, nodes)
    err = got - ref
    rel = np.abs(err).max() / np.abs(ref).max()
    assert rel <= 1e-3, f"max error {100 * rel:.4f} % of the peak"
    if sigma is not None:
        chi = (err**2).sum() / (2 * sigma**2)
        assert chi <= 1.0, f"sum e^2 / 2 sigma^2 = {chi:.3f}"
    return rel


PB = dict(sample=dict(delta=[1.26, 1.41], gamma=[0.005, 0.005], weight=[0.5, 0.5]),
          tip=dict(delta=1.37, gamma=0.005), T=0.32, rms=0.014)
PB_FLOOR = dict(sample=dict(delta=[1.26, 1.41], gamma=[0.001, 0.001], weight=[0.5, 0.5]),
                tip=dict(delta=1.37, gamma=0.001), T=0.08, rms=0.005)
NIS4 = dict(sample=dict(delta=[3.5, 4.7, 6.4, 8.6], gamma=[0.02, 0.03, 0.03, 0.05], weight=[0.3, 0.3, 0.2, 0.2]),
            tip=None, T=0.5, rms=0.14)
CSCA = dict(delta=[4.5, 5.8], gamma=[0.02, 0.02], weight=[0.5, 0.5])
YSR = [dict(eps=0.07, width=0.02, u2=0.3, v2=0.1)]
ZERO = [dict(eps=0.0, width=0.02, u2=0.25, v2=0.25)]
PB_TIP = dict(delta=1.37, gamma=0.005)


def peaks_and_gap(edges, halfwidth=0.15, n=40, extra=()):
    """Biases concentrated where the conductance changes fast: around each peak, plus a few elsewhere."""
    pts = [np.linspace(c - halfwidth, c + halfwidth, n) for c in edges]
    return np.unique(np.round(np.concatenate(pts + [np.asarray(extra, float)]), 6))


def test_a_nis_four_gaps():
    bias = peaks_and_gap([-8.6, -3.5, 3.5, 4.7, 6.4, 8.6], halfwidth=0.4, n=25, extra=np.linspace(-12, 12, 25))
    check(bias, spec_of(NIS4["sample"], None, NIS4["T"], NIS4["rms"]))


def test_metal_tip_step_follows_the_temperature():
    """A metal tip sees the sample through the Fermi window: the grid step follows kT (0.3 kT, at most 0.01 meV),
    not the narrowest line, and still meets 0.1 % at the coldest junction with lines at the floors."""
    from stsbayes.models.constants import K_B
    from stsbayes.models.forward import choose_step
    assert choose_step(0.001, 0.002, K_B * 0.08) == pytest.approx(0.3 * K_B * 0.08)
    assert choose_step(0.001, 0.002, K_B * 0.5) == 0.01 and choose_step(0.001, 0.002) == 0.0005
    sample = dict(delta=[1.0, 1.5], gamma=[0.001, 0.001], weight=[0.5, 0.5])
    zero = [dict(eps=0.0, width=0.002, u2=0.25, v2=0.25)]
    bias = peaks_and_gap([-1.5, -1.0, 0.0, 1.0, 1.5], halfwidth=0.1, n=31, extra=np.linspace(-2, 2, 21))
    check(bias, spec_of(sample, None, 0.08, 0.005, bound=zero))


def test_b_pb_pb_with_offset_and_off_grid_biases():
    # an offset and biases that do not fall on the grid exercise the Fourier shift and the cubic read-out
    bias = peaks_and_gap([-2.77, -2.63, 2.63, 2.77], halfwidth=0.08, n=21, extra=[0.0013, 1.3017, -3.9])
    check(bias, spec_of(PB["sample"], PB["tip"], PB["T"], PB["rms"], offset=0.0123), sigma=0.03)


def test_b_pb_pb_at_the_prior_floors():
    bias = peaks_and_gap([-2.77, -2.63, 2.63, 2.77], halfwidth=0.03, n=11)
    check(bias, spec_of(PB_FLOOR["sample"], PB_FLOOR["tip"], PB_FLOOR["T"], PB_FLOOR["rms"]), nodes=24, sigma=0.03)


def test_c_sis_particle_hole_asymmetric_ysr_pair():
    bias = peaks_and_gap([-1.44, -1.3, 1.3, 1.44, -5.87, 5.87, 7.17], halfwidth=0.12, n=15)
    check(bias, spec_of(CSCA, PB_TIP, 0.32, 0.014, bound=YSR))


def test_d_sis_zero_energy_state():
    bias = peaks_and_gap([-1.37, 1.37, -5.87, 5.87], halfwidth=0.12, n=15)
    check(bias, spec_of(CSCA, PB_TIP, 0.32, 0.014, bound=ZERO))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["pb", "pb_floor"])
def test_full_pb_pb_401_points(case):
    c = PB if case == "pb" else PB_FLOOR
    bias = np.linspace(-4, 4, 401)
    rel = check(bias, spec_of(c["sample"], c["tip"], c["T"], c["rms"]), nodes=24, sigma=0.03)
    print(f"{case}: max error {100 * rel:.5f} % of the peak")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["nis4", "ysr", "zero"])
def test_full_other_cases(case):
    if case == "nis4":
        spec = spec_of(NIS4["sample"], None, NIS4["T"], NIS4["rms"])
        bias = np.linspace(-12, 12, 481)
    else:
        spec = spec_of(CSCA, PB_TIP, 0.32, 0.014, bound=YSR if case == "ysr" else ZERO)
        bias = np.linspace(-8, 8, 801)
    check(bias, spec)
