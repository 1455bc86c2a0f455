"""The series report (``stsbayes series``, issue 6): figures and tables from a saved result alone.

Results are assembled without sampling: hand-made DataTrees with the groups and variables a series fit stores
(per-spectrum ``<label>:y`` data, ``<label>:mu`` predictions, the laws' posterior variables with dim
``spectrum``), evidences from known values through ``assemble_summary``. Each kind is saved, reloaded, reported
and rebuilt by ``stsbayes report``; the peak measure and the population band are checked against known shapes.
"""

import json
import re

import numpy as np
import pytest
import xarray as xr
from matplotlib.image import imread
from scipy import stats

from stsbayes.cli import main
from stsbayes.comparison import CompareResult, assemble_summary, load_compare
from stsbayes.errors import InputError
from stsbayes.inference import verdicts as V
from stsbayes.inference.evidence import Evidence, combine
from stsbayes.inference.verdicts import Reweighted
from stsbayes.reports import check_report_assets
from stsbayes.reports.html import esc
from stsbayes.reports.series import peak_shape, population_band, series_block
from stsbayes.results import FitResult

BIAS = np.linspace(-0.5, 0.5, 51)
N_CHAIN, N_DRAW = 2, 20
CONDITIONS = {"gn": {"setpoint_current_nA": [2.0, 20.0, 60.0, 116.0], "setpoint_bias_mV": [7.0] * 4},
              "field": {"field_T": [0.0, 2.0, 5.0]},
              "defects": {"defect": ["II-a", "II-b", "II-c", "II-d"]}}
FIGURES = {"gn": {"series_map.png", "series_zero_bias.png", "series_spectra.png", "series_probabilities.png"},
           "field": {"series_map.png", "series_peak.png", "series_spectra.png", "series_probabilities.png"},
           "defects": {"series_eps.png", "series_spectra.png", "series_probabilities.png"}}


def lorentz_pair(eps, width, g_n, floor=0.05):
    """A spectrum with a pair of Lorentzians at ±eps on a flat in-gap floor (µS)."""
    line = sum(width**2 / ((BIAS - s * eps) ** 2 + width**2) for s in (-1, 1))
    return g_n * (floor + line)


def truths(kind):
    """Per-spectrum true (eps, width, g_n) of the simulated data, and the G_set of gn."""
    cond = CONDITIONS[kind]
    n = len(next(iter(cond.values())))
    if kind == "gn":
        g_set = np.asarray(cond["setpoint_current_nA"]) / 7.0
        return np.abs(0.01 + 0.012 * g_set), np.full(n, 0.04), 1.1 * g_set
    if kind == "field":
        b = np.asarray(cond["field_T"])
        return 0.5 * 0.3 * 0.05788 * b, 0.04 + 0.02 * b, np.ones(n)
    return np.array([0.05, 0.08, 0.11, 0.07]), np.full(n, 0.04), np.ones(n)


def posterior_vars(kind, h, rng, eps, width, g_n):
    """The law's posterior variables of (kind, hypothesis): scalars (chain, draw), vectors (chain, draw, spectrum)."""
    n = len(eps)

    def s(mean, sd=0.01):
        return mean + sd * abs(mean or 1) * rng.standard_normal((N_CHAIN, N_DRAW))

    def v(mean, sd=0.02):
        return np.asarray(mean) * (1 + sd * rng.standard_normal((N_CHAIN, N_DRAW, n)))

    out = {"g_n_j": v(g_n), "bias_offset": s(0.0, 0.001)}
    if kind == "gn" and h == "ysr":
        out.update(eps0=s(0.01), alpha=s(0.012), width=s(0.04), u2=s(0.3), v2=s(0.15), eps_j=v(eps))
    elif kind == "gn":
        out.update(kappa=s(0.01), width_j=v(0.01 * g_n))
    elif kind == "field" and h == "ysr":
        out.update(eps0=s(0.001), g_eff=s(0.3), width0=s(0.04), beta=s(0.02), u2=s(0.2), v2=s(0.2), eps_j=v(eps),
                   width_j=v(width), gamma_field=s(0.005))
    elif kind == "field":
        out.update(width=s(0.06), w=s(0.4), gamma_field=s(0.005))
    elif h == "ysr":
        out.update(mu_eps=s(0.08), tau_eps=s(0.03), mu_width=s(np.log(0.04)), tau_width=s(0.2), eps_d=v(eps),
                   width_d=v(width), u2_d=v(np.full(n, 0.3)), v2_d=v(np.full(n, 0.15)))
    else:
        out.update(mu_width=s(np.log(0.06)), tau_width=s(0.2), width_d=v(np.full(n, 0.06)),
                   w_d=v(np.full(n, 0.4)))
    return out


def _parameters(post):
    params = {}
    for name, x in post.items():
        flat = x.reshape(N_CHAIN * N_DRAW, -1)
        for k in range(flat.shape[1]):
            q05, q50, q95 = np.quantile(flat[:, k], [0.05, 0.5, 0.95])
            params[name if x.ndim == 2 else f"{name}[{k}]"] = {
                "mean": float(flat[:, k].mean()), "sd": float(flat[:, k].std()), "q05": q05, "q50": q50, "q95": q95,
                "r_hat": 1.0, "ess_bulk": 800}
    return params


def fake_series_fit(kind, h, rng, *, converged=True):
    """A FitResult shaped like a series fit of ``kind`` under ``h``: data from ysr's truth, each hypothesis's
    expected spectra (mzm: a zero-energy peak), its posterior variables and pointwise likelihood."""
    eps, width, g_n = truths(kind)
    labels = [f"s{j}" for j in range(len(eps))]
    sigma = 0.02 * g_n
    post = posterior_vars(kind, h, rng, eps, width, g_n)
    dims = {"chain": np.arange(N_CHAIN), "draw": np.arange(N_DRAW)}
    posterior = xr.Dataset({k: (("chain", "draw") if x.ndim == 2 else ("chain", "draw", "spectrum"), x)
                            for k, x in post.items()}, coords={**dims, "spectrum": labels})
    observed, loglik, predictions, checks = {}, {}, {}, {}
    for j, label in enumerate(labels):
        dim = f"{label}:bias_mV"
        y = lorentz_pair(eps[j], width[j], g_n[j]) + rng.normal(0, sigma[j], BIAS.size)
        shape = (eps[j], width[j]) if h == "ysr" else (0.0, 1.4 * width[j])
        mu = lorentz_pair(*shape, g_n[j])[None, :] * (1 + 0.01 * rng.standard_normal((N_CHAIN * N_DRAW, 1)))
        observed[f"{label}:y"] = (dim, y)
        loglik[f"{label}:y"] = (("chain", "draw", dim), stats.norm.logpdf(y, mu, sigma[j]).reshape(
            N_CHAIN, N_DRAW, -1))
        predictions[f"{label}:mu"] = (("sample", dim), mu)
        predictions[f"{label}:sigma"] = (("sample", dim), np.full_like(mu, sigma[j]))
        checks[label] = {"residual_lag1_autocorr": 0.05, "residual_lag1_limit": 0.36, "pit_ks_pvalue": 0.4,
                         "passed": True}
    coords = {f"{label}:bias_mV": BIAS for label in labels}
    groups = {"posterior": posterior,
              "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), np.zeros((N_CHAIN, N_DRAW), bool))},
                                         coords=dims),
              "prior": xr.Dataset({k: (("chain", "draw"), rng.standard_normal((1, 50))) for k in ("g_eff", "u2")},
                                  coords={"chain": [0], "draw": np.arange(50)}),
              "log_likelihood": xr.Dataset(loglik, coords={**dims, **coords}),
              "observed_data": xr.Dataset(observed, coords=coords),
              "predictions": xr.Dataset(predictions, coords=coords)}
    tree = xr.DataTree.from_dict({k: xr.DataTree(v) for k, v in groups.items()})
    tree.attrs["provenance"] = json.dumps({"labels": labels, "hypothesis": h})
    summary = {"schema_version": 1, "command": "series", "seed": 5, "input": {"units": "uS"},
               "sampler": {"name": "nutpie", "chains": N_CHAIN, "draws": N_DRAW, "tune": 20},
               "parameters": _parameters(post), "fixed": {},
               "diagnostics": {"divergences": 0, "max_r_hat": 1.0, "min_ess_bulk": 800, "converged": converged,
                               "failed_gates": [] if converged else ["R-hat 1.05 > 1.01"],
                               "ppc": {"passed": True, "by_spectrum": checks}},
               "timing_s": {"compile": 1.0, "sample": 2.0}, "spectra": labels}
    return FitResult(tree, summary), labels


def fake_series(kind, *, unconverged=()):
    """A series CompareResult of ``kind`` from known evidences (ysr favoured by 8 nats)."""
    rng = np.random.default_rng(11)
    runs = {}
    for h, value in (("mzm", -130.0), ("ysr", -122.0)):
        estimates = {m: Evidence(value, 0.1, (value,) * 4, m) for m in ("smc", "bridge")}
        fit, labels = fake_series_fit(kind, h, rng, converged=h not in unconverged)
        runs[h] = {"fit": fit, "evidence": combine(estimates), "estimates": estimates,
                   "sensitivity": {label: Reweighted(value + d, 0.15, 0.1, 0.2, False)
                                   for label, d in (("halved", 0.3), ("doubled", -0.4))},
                   "timing_s": {"total": 3.0}}
    summary = assemble_summary(runs, hypotheses=["mzm", "ysr"], prior_odds={"mzm": 1.0, "ysr": 1.0}, seed=5,
                               sampler="nutpie", evidence_settings={"smc": {"draws": 100}}, input_record=None,
                               timing={"total": 9.0}, command="series", series_kind=kind)
    conditions = dict(CONDITIONS[kind])
    if kind == "gn":
        conditions["G_set"] = list(np.asarray(conditions["setpoint_current_nA"]) / 7.0)
    summary["series"] = {"kind": kind, "spectra": labels, "files": [f"data/{x}.dat" for x in labels],
                         "conditions": conditions}
    return CompareResult(summary, {h: r["fit"].tree for h, r in runs.items()})


def _images(html):
    return re.findall(r'<img src="([^"]+)"', html)


@pytest.mark.parametrize("kind", ["gn", "field", "defects"])
def test_series_report_from_a_saved_result(kind, tmp_path):
    unconverged = ("ysr",) if kind == "field" else ()
    out = tmp_path / kind
    result = fake_series(kind, unconverged=unconverged)
    caution = "s0 ends inside the gaps & more" if kind == "defects" else None
    result.summary()["diagnostics"]["cautions"] = [caution] if caution else []
    result.save(out)
    again = load_compare(out)
    path = again.report(out)
    html = path.read_text()
    images = _images(html)
    assert {src.split("/")[-1] for src in images} == FIGURES[kind]
    for src in images:
        image = imread(out / src)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert f"stsbayes series {kind}" in html
    verdict = again.summary()["verdicts"]["zero_vs_offset"]
    # a series names its sides by how the peak behaves across the spectra, not as a single spectrum's origin
    sides = V.SERIES_SIDE_WORDS[kind]
    assert (f"<b>zero_vs_offset</b>: The data favour {esc(sides['offset'])} over {esc(sides['zero'])}") in html
    assert esc(V._sentence("zero_vs_offset", verdict, kind)) in html
    assert "offset-energy origin" not in html
    assert ("NOT CONVERGED" in html) == bool(unconverged)
    assert ("<strong>Caution</strong>: s0 ends inside the gaps &amp; more." in html) == bool(caution)
    for h in ("mzm", "ysr"):
        assert f"Hypothesis {h}: parameters and diagnostics" in html
        assert f'href="posterior_{h}.nc"' in html
    assert not list(out.glob("**/.*.tmp"))
    assert check_report_assets(path) == []
    # `stsbayes report DIR` rebuilds it from the directory alone
    path.unlink()
    assert main(["report", str(out)]) == 0
    assert set(_images((out / "report.html").read_text())) == set(images)
    assert check_report_assets(out / "report.html") == []


def test_peak_shape_measures_a_known_lorentzian():
    x = np.linspace(-1.0, 1.0, 401)
    lorentzian = 0.2 + 0.03 * x + 1.0 * 0.05**2 / (x**2 + 0.05**2)  # FWHM 0.1 mV
    gaussian = 0.2 - 0.03 * x + 0.4 * np.exp(-0.5 * (x / 0.12) ** 2)  # FWHM 0.283 mV
    for y, height, fwhm in ((lorentzian, 1.0, 0.1), (gaussian, 0.4, 2.3548 * 0.12)):
        measured = peak_shape(x[::-1], y[::-1])  # any bias order
        np.testing.assert_allclose(measured, (height, fwhm), rtol=0.06)
    rng = np.random.default_rng(0)
    assert np.isnan(peak_shape(x, 1.0 + 0.01 * rng.standard_normal(x.size))).all()  # noise only
    assert np.isnan(peak_shape(x, 1.0 + x)).all()  # a slope has no peak


def test_population_band_is_the_truncated_normal():
    rng = np.random.default_rng(1)
    band = population_band(np.full(400, 0.05), np.full(400, 0.1), rng)
    exact = stats.truncnorm.ppf([0.05, 0.5, 0.95], -0.5, np.inf, loc=0.05, scale=0.1)
    np.testing.assert_allclose(band, exact, atol=0.006)


def test_a_compare_summary_is_refused():
    with pytest.raises(InputError, match="not written by `stsbayes series`"):
        series_block({"command": "compare"})
