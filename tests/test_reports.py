"""The HTML report of a fit, built from a small synthetic result (no sampling): files, links, banner, tables."""

import json
import re
import shutil

import numpy as np
import pytest
import xarray as xr
from matplotlib import image as mpimg

from stsbayes.diagnostics.gates import parameter_table, summarize
from stsbayes.errors import InputError
from stsbayes.inference.priors import RIDGE_SCALE
from stsbayes.inference.tip import SPACE
from stsbayes.reports import check_report_assets, figures, render_from_dir, write_report
from stsbayes.results import FitResult

CHAINS, DRAWS, POINTS = 2, 50, 60
GAPS = np.array([1.26, 1.41])  # meV, Pb-like
TIP_GAP = 1.37  # meV


def dynes_like(bias, delta_sum, gamma, g_n=1.0):
    """A Dynes-type conductance with coherence peaks at ±delta_sum: a stand-in for an SIS spectrum."""
    e = np.asarray(bias, complex) - 1j * gamma
    return g_n * np.abs(np.real(e / np.sqrt(e**2 - delta_sum**2)))


def fake_result(*, converged=True, command="fit", sis=True, tip_prior=False, data_sigma=False,
                student_t=False, seed=3):
    """A FitResult with the structure of ``api.run_fit``'s tree, filled with made-up draws."""
    rng = np.random.default_rng(seed)
    shape = (CHAINS, DRAWS)
    dims2, dims3 = ("chain", "draw"), ("chain", "draw", "gap")
    post = {}
    tip_shift = 0.01 * rng.standard_normal(shape) if sis else np.zeros(shape)
    if sis:
        post["delta_tip"] = (dims2, TIP_GAP + tip_shift)
        post["gamma_tip"] = (dims2, 0.01 + 0.002 * rng.random(shape))
    post["T_eff"] = (dims2, 0.35 + 0.01 * rng.standard_normal(shape))
    # the tip/sample ridge: the data fix delta_tip + delta[k], so the gaps move against the tip gap
    post["delta"] = (dims3, GAPS - tip_shift[..., None] + 0.002 * rng.standard_normal(shape + (2,)))
    post["gamma"] = (dims3, 0.02 + 0.003 * rng.random(shape + (2,)))
    w0 = 0.6 + 0.02 * rng.standard_normal(shape)
    post["weight"] = (dims3, np.stack([w0, 1 - w0], axis=-1))
    post["g_n"] = (dims2, 1.0 + 0.01 * rng.standard_normal(shape))
    post["bias_offset"] = (dims2, 0.005 * rng.standard_normal(shape))
    post["b0"] = (dims2, 0.002 * rng.standard_normal(shape))
    post["b1"] = (dims2, 0.001 * rng.standard_normal(shape))
    post["sigma"] = (dims2, 0.03 + 0.002 * rng.random(shape))
    post["eps_0"] = (dims2, 0.2 + 0.01 * rng.standard_normal(shape))
    post["u2_0"] = (dims2, 0.05 + 0.005 * rng.random(shape))
    post["T_excess"] = (dims2, 0.27 + 0.01 * rng.standard_normal(shape))  # internal: not in the summary
    if student_t:
        post["nu"] = (dims2, 5 + rng.random(shape))
    coords = {"chain": np.arange(CHAINS), "draw": np.arange(DRAWS), "gap": np.arange(2)}
    posterior = xr.Dataset(post, coords=coords)

    prior_rng = np.random.default_rng(seed + 1)
    pshape = (1, 500)
    prior_vars = {"delta": (dims3, GAPS + 0.1 * prior_rng.standard_normal(pshape + (2,))),
                  "gamma": (dims3, np.abs(0.05 * prior_rng.standard_normal(pshape + (2,)))),
                  "g_n": (dims2, np.exp(0.2 * prior_rng.standard_normal(pshape))),
                  "sigma": (dims2, np.abs(0.1 * prior_rng.standard_normal(pshape))),  # far wider than posterior
                  "eps_0": (dims2, np.abs(0.3 * prior_rng.standard_normal(pshape)))}  # no b0, b1, T_eff: absent
    if sis and not tip_prior:
        prior_vars["delta_tip"] = (dims2, TIP_GAP + 0.05 * prior_rng.standard_normal(pshape))
    prior = xr.Dataset(prior_vars, coords={"chain": [0], "draw": np.arange(500), "gap": np.arange(2)})

    bias = np.linspace(-5, 5, POINTS)
    tip = posterior["delta_tip"].values if sis else np.zeros(shape)
    mu = np.zeros(shape + (POINTS,))
    for k in range(2):
        total = (tip + posterior["delta"].values[..., k])[..., None]
        mu += posterior["weight"].values[..., k, None] * dynes_like(bias - posterior["bias_offset"].values[..., None],
                                                                      total, 0.05)
    mu *= posterior["g_n"].values[..., None]
    truth = dynes_like(bias, TIP_GAP * sis + GAPS[0], 0.05) * 0.6 + dynes_like(bias, TIP_GAP * sis + GAPS[1],
                                                                                 0.05) * 0.4
    y = truth + 0.03 * rng.standard_normal(POINTS)
    observed = xr.Dataset({"y": ("bias_mV", y)}, coords={"bias_mV": bias})
    if data_sigma:
        observed["sigma"] = ("bias_mV", np.full(POINTS, 0.03))
    sig = posterior["sigma"].values[..., None] * np.ones(POINTS)
    predictions = xr.Dataset({"mu": (("sample", "bias_mV"), mu.reshape(-1, POINTS)),
                              "sigma": (("sample", "bias_mV"), sig.reshape(-1, POINTS))},
                             coords={"bias_mV": bias})
    sample_stats = xr.Dataset({"diverging": (dims2, np.zeros(shape, bool)),
                               "n_steps": (dims2, rng.integers(3, 16, shape)),
                               "depth": (dims2, rng.integers(2, 5, shape)),
                               "energy": (dims2, rng.standard_normal(shape))},
                              coords={"chain": np.arange(CHAINS), "draw": np.arange(DRAWS)})

    names = (["delta_tip", "gamma_tip"] if sis else []) + ["T_eff", "delta", "gamma", "weight", "g_n",
                                                           "bias_offset", "b0", "b1", "sigma", "eps_0", "u2_0"]
    params = summarize(parameter_table(posterior, names))
    params = {(n.rsplit("_", 1)[0] + f"[{n.rsplit('_', 1)[1]}]" if n in ("eps_0", "u2_0") else n): v
              for n, v in params.items()}
    diag = {"divergences": 0 if converged else 3, "max_r_hat": 1.004 if converged else 1.08,
            "min_ess_bulk": 900.0 if converged else 35.0, "converged": converged,
            "failed_gates": [] if converged else ["3 divergent transitions", "R-hat 1.080 > 1.01"],
            "ppc": {"residual_lag1_autocorr": 0.04, "residual_lag1_limit": 0.52, "pit_ks_pvalue": 0.4,
                    "passed": True}}
    summary = {"schema_version": 1, "command": command, "stsbayes_version": "0.1.0", "seed": seed,
               "input": {"file": "pb_demo.dat", "temperature_K": 0.3, "units": "normalised",
                         "modulation": {"kind": "rms", "value_mV": 0.014, "source": "flag"}},
               "sampler": {"name": "nutpie", "chains": CHAINS, "draws": DRAWS, "tune": 50},
               "parameters": params, "fixed": {"modulation_peak_mV": 0.0198}, "diagnostics": diag,
               "timing_s": {"compile": 1.5, "sample": 2.5}}
    tree = xr.DataTree.from_dict({name: xr.DataTree(ds) for name, ds in {
        "posterior": posterior, "prior": prior, "observed_data": observed, "predictions": predictions,
        "sample_stats": sample_stats}.items()})
    g = posterior["gamma_tip"].values.ravel() if sis else None
    z = np.column_stack([posterior["delta_tip"].values.ravel(), np.log(np.expm1((g - 1e-3) / RIDGE_SCALE)),
                         np.log(posterior["T_eff"].values.ravel())]) if sis else None
    density = None if z is None else {"names": ["delta_tip", "gamma_tip", "T_eff"], "space": SPACE,
                                      "mean": z.mean(axis=0).tolist(), "cov": np.cov(z, rowvar=False).tolist(),
                                      "adequacy": {"ks_marginals": {"delta_tip": 0.02, "gamma_tip": 0.09,
                                                                    "T_eff": 0.03},
                                                   "ks_mahalanobis": 0.04, "adequate": False}}
    if command == "calibrate-tip":
        tree.attrs["tip_density"] = json.dumps(density)
        summary["tip_density"] = density
    elif tip_prior:
        summary["tip_prior"] = density
    tree.attrs["summary"] = json.dumps(summary)
    observation = {"noise": "student_t"} if student_t else {}
    tree.attrs["provenance"] = json.dumps({
        "spec": {"tip": {"kind": "dynes" if sis else "metal"}, "observation": observation}, "seed": seed,
        "sampler": summary["sampler"], "versions": {"stsbayes": "0.1.0", "pymc": "6.0.0", "python": "3.12"},
        "grid": {"step_meV": 0.002, "points": 4001, "fft_size": 8192}})
    return FitResult(tree, summary)


def local_refs(html):
    """Every <img src> and <a href> that names a file (not a web address or an anchor)."""
    refs = re.findall(r'<(?:img[^>]*?\ssrc|a[^>]*?\shref)="([^"]+)"', html)
    return [r for r in refs if not re.match(r"^([a-z]+:|#)", r)]


def check_files(report):
    html = report.read_text(encoding="utf-8")
    refs = local_refs(html)
    assert refs, "the report shows no figures"
    for ref in refs:
        path = report.parent / ref
        assert path.is_file(), f"{ref} is referenced by the report but missing"
        if path.suffix == ".png":
            img = mpimg.imread(path)
            assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
            assert np.ptp(img) > 0, f"{ref} is blank"
    leftovers = [p.name for p in report.parent.rglob(".*.tmp")]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    assert check_report_assets(report) == []
    return html


def parameter_section(html):
    return html.split("<h2>Parameters</h2>", 1)[1].split("<h2>Diagnostics</h2>", 1)[0]


@pytest.fixture(scope="module")
def sis_report(tmp_path_factory):
    """A converged SIS fit whose table has one failing R-hat and one failing ESS (written once, read by several)."""
    result = fake_result()
    for p in result.summary()["parameters"].values():
        p["r_hat"], p["ess_bulk"] = 1.002, 1500.0
    result.summary()["parameters"]["delta[1]"]["r_hat"] = 1.05
    result.summary()["parameters"]["g_n"]["ess_bulk"] = 120.0
    out = tmp_path_factory.mktemp("sis")
    return result, write_report(result, out / "fit")


@pytest.fixture(scope="module")
def unconverged_report(tmp_path_factory):
    """An unconverged tip calibration, saved with FitResult.save and rendered as `stsbayes report DIR` does."""
    result = fake_result(command="calibrate-tip", converged=False, data_sigma=True)
    out = tmp_path_factory.mktemp("calibration")
    result.save(out)
    return result, render_from_dir(out)


def test_report_has_every_figure_and_parameter(sis_report):
    result, report = sis_report
    assert report.name == "report.html" and report.parent.name == "fit" and report.is_file()
    html = check_files(report)
    for name in ("fit.png", "peaks.png", "prior_posterior.png", "ridge.png"):
        assert f'src="figures/{name}"' in html
    for name in result.summary()["parameters"]:
        assert f">{name}<" in parameter_section(html), name
    assert "eps[0]" in html and "T_excess" not in html  # mapped bound-state names; internals skipped
    for text in ("pb_demo.dat", "nutpie", "6.0.0", "compile 1.5 s", "sample bias", "meV",
                 "residual lag-1 autocorrelation", "PIT uniformity", "modulation_peak_mV"):
        assert text in html, text


def test_failing_r_hat_and_ess_cells_are_highlighted(sis_report):
    section = parameter_section(sis_report[1].read_text(encoding="utf-8"))
    assert section.count('class="fail"') == 2
    assert '<td class="fail">1.05</td>' in section and '<td class="fail">120</td>' in section


@pytest.mark.parametrize("which", ["sis_report", "unconverged_report"])
def test_not_converged_banner_iff_unconverged(request, which):
    result, report = request.getfixturevalue(which)
    converged = result.converged
    html = check_files(report)
    assert ("NOT CONVERGED" in html) == (not converged)
    assert ('class="banner-bad"' in html) == (not converged)
    if not converged:
        banner = html.split('class="banner-bad"', 1)[1].split("</div>", 1)[0]
        assert "3 divergent transitions" in banner and "R-hat 1.080 &gt; 1.01" in banner
        assert "NOT CONVERGED" in html.split("<title>", 1)[1].split("</title>", 1)[0]


def test_calibration_shows_its_tip_density(unconverged_report):
    html = unconverged_report[1].read_text(encoding="utf-8")
    assert "Tip density" in html and "calibrate-tip" in html
    assert '<td class="fail">no</td>' in html  # the stored density's adequacy check failed
    assert "with its per-point sigma" in html


def test_second_report_overwrites_cleanly_and_drops_stale_figures(sis_report, tmp_path):
    out = tmp_path / "fit"
    shutil.copytree(sis_report[1].parent, out)
    before = sorted(p.name for p in (out / "figures").iterdir())
    html = check_files(write_report(fake_result(seed=4, tip_prior=True), out))
    assert sorted(p.name for p in (out / "figures").iterdir()) == before
    assert "Tip prior" in html and "drawn from the tip prior" in html  # a fit with --tip
    # a normal-metal-tip (NIS) result into the same folder: no SIS zoom or ridge, and their old files go
    html = check_files(write_report(fake_result(sis=False, student_t=True), out))
    assert "peaks.png" not in html and "ridge.png" not in html and "Student-t" in html
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["fit.png", "prior_posterior.png"]
    assert "Normal-metal tip" in html and "delta_tip" not in parameter_section(html)


def test_a_crash_leaves_the_previous_report(sis_report, tmp_path, monkeypatch):
    shutil.copytree(sis_report[1].parent, tmp_path, dirs_exist_ok=True)
    report = tmp_path / "report.html"
    old = report.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(figures, "plot_prior_posterior", broken)
    with pytest.raises(RuntimeError, match="figure failed"):
        write_report(fake_result(converged=False), tmp_path)
    assert report.read_bytes() == old
    check_files(report)


def test_render_from_dir_after_save(unconverged_report):
    result, report = unconverged_report
    assert report == report.parent / "report.html" and (report.parent / "posterior.nc").is_file()
    html = check_files(report)
    assert 'href="summary.json"' in html and 'href="posterior.nc"' in html
    for name in result.summary()["parameters"]:
        assert f">{name}<" in parameter_section(html)


def test_render_from_dir_refuses_a_folder_without_a_result(tmp_path):
    with pytest.raises(InputError, match="posterior.nc"):
        render_from_dir(tmp_path)


def _png(path, size=(4, 3)):
    from PIL import Image
    Image.new("RGB", size, (200, 30, 30)).save(path)
    return path.read_bytes()


def test_report_assets_checker_catches_missing_corrupt_and_broken_links(tmp_path):
    """A missing image, a corrupt and a truncated PNG, a broken link, a bad inlined PNG and a broken link inside a
    linked page are each one problem; web addresses, anchors and good files are none."""
    import base64
    (tmp_path / "figures").mkdir()
    good = _png(tmp_path / "figures" / "good.png")
    (tmp_path / "figures" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    (tmp_path / "figures" / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "figures" / "ok.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>')
    (tmp_path / "summary.json").write_text("{}")
    step = tmp_path / "step"
    step.mkdir()
    (step / "report.html").write_text('<a href="../summary.json">up</a><img src="figures/gone.png">')
    inline = base64.b64encode(good).decode()
    (tmp_path / "index.html").write_text(f"""<!DOCTYPE html><html><head>
        <link rel="stylesheet" href="https://example.org/x.css"></head><body>
        <a href="#top">top</a> <a href="mailto:someone@example.org">mail</a> <a href="summary.json">summary</a>
        <a href="figures/good.png"><img src="figures/good.png" alt=""></a> <img src="figures/ok.svg">
        <img src="data:image/png;base64,{inline}"> <img src="data:image/png;base64,{inline[:41]}">
        <img src="figures/missing.png"> <img src="figures/corrupt.png"> <img src="figures/truncated.png">
        <a href="posterior.nc">posterior</a> <a href="step/report.html#top">step</a>
        <a href="index.html">this page again</a> <img src="file:///tmp/elsewhere.png"></body></html>""")
    problems = check_report_assets(tmp_path / "index.html")
    expected = ["figures/missing.png", "figures/corrupt.png", "figures/truncated.png", "posterior.nc",
                "step/figures/gone.png", "data:image/png", "file:///tmp/elsewhere.png"]
    assert len(problems) == len(expected), problems
    for text in expected:
        assert sum(text in p for p in problems) == 1, (text, problems)
    said = "\n".join(problems)
    for text in ("figures/missing.png, which does not exist", "corrupt.png does not decode",
                 "truncated.png does not decode", "step/report.html: <img", "not valid base64",
                 "breaks when the report's folder is moved"):
        assert text in said, (text, problems)
    assert check_report_assets(tmp_path / "absent.html") == ["absent.html does not exist"]
    (tmp_path / "figures" / "missing.png").write_bytes(good)
    (tmp_path / "figures" / "corrupt.png").write_bytes(good)
    (tmp_path / "figures" / "truncated.png").write_bytes(good)
    (tmp_path / "posterior.nc").write_bytes(b"")
    (step / "figures").mkdir()
    _png(step / "figures" / "gone.png")
    assert len(check_report_assets(tmp_path / "index.html")) == 2  # the inlined stub and the file: address


def test_predictive_band_covers_its_nominal_fraction():
    """With the true expected spectrum and noise, 90 % (50 %) of fresh data fall in the 90 % (50 %) band."""
    rng = np.random.default_rng(7)
    bias = np.linspace(-4, 4, 4000)
    truth = dynes_like(bias, 2.6, 0.05)
    mu = truth + 0.002 * rng.standard_normal((200, 1)) * np.ones_like(truth)  # small parameter uncertainty
    bands = figures.predictive_bands(mu, 0.03 * np.ones_like(mu), rng)
    y = truth + 0.03 * rng.standard_normal(len(bias))
    inside90 = np.mean((y >= bands["q05"]) & (y <= bands["q95"]))
    inside50 = np.mean((y >= bands["q25"]) & (y <= bands["q75"]))
    assert abs(inside90 - 0.90) < 0.03 and abs(inside50 - 0.50) < 0.04
    assert np.allclose(bands["sigma"], 0.03)
