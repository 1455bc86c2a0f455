"""The HTML report of one fit or tip calibration, built from the result alone (its DataTree and summary).

``write_report`` writes the figures into ``figures/`` first and ``report.html`` last, each file atomically, so a
crash leaves the previous report (whose figures all still exist) or none. Units: bias is the sample bias in mV,
energies in meV, T_eff in K.
"""

import json
from pathlib import Path

import numpy as np

from ..diagnostics.gates import MAX_R_HAT, MIN_ESS_BULK
from ..io.atomic import atomic_path, atomic_write_text
from . import figures as F
from .html import cell, esc, figure, fmt, page, table

REPORT_NAME = "report.html"
FIGURE_DIR = "figures"
# every figure this report may write: files of these names that a new report no longer shows are removed
FIGURES = ("fit.png", "peaks.png", "prior_posterior.png", "ridge.png")
from ..diagnostics.ppc import PIT_P_MIN  # noqa: E402
from ..inference.tip import KS_ADEQUATE, to_physical  # noqa: E402

UNITS = {"delta_tip": "meV", "gamma_tip": "meV", "T_eff": "K", "delta": "meV", "gamma": "meV", "weight": "",
         "floor": "", "modulation_rms": "mV", "bias_offset": "mV", "b1": "1/mV", "sigma_scale": "", "nu": "",
         "eps": "meV", "width": "meV", "u2": "meV", "v2": "meV",
         # series laws (inference/series.py)
         "eps0": "meV", "width0": "meV", "eps_j": "meV", "width_j": "meV", "eps_d": "meV", "width_d": "meV",
         "mu_eps": "meV", "tau_eps": "meV", "u2_d": "meV", "v2_d": "meV", "w": "meV", "w_d": "meV",
         "alpha": "meV/µS", "kappa": "meV/µS", "beta": "meV/T", "gamma_field": "meV/T", "g_eff": "",
         "mu_width": "ln meV", "tau_width": ""}
CONDUCTANCE = ("g_n", "b0", "sigma", "g_n_j")  # in the data's units
DATA_UNITS = {"uS": "µS", "normalised": "normalised", "arb": "arb. units"}


# ----------------------------------------------------------------------------------------------- reading the tree

def _group(tree, name):
    return tree[name].to_dataset() if name in tree.children else None


def _json_attr(tree, key):
    text = tree.attrs.get(key)
    if not text:
        return {}
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return {}


def split_name(name):
    """``delta[1]`` -> ("delta", 1); ``g_n`` -> ("g_n", None)."""
    if name.endswith("]") and "[" in name:
        base, k = name[:-1].split("[", 1)
        if k.isdigit():
            return base, int(k)
    return name, None


def draws(ds, name):
    """(chain, draw) draws of the canonical scalar ``name`` in a group, or None when the group lacks it.

    ``delta[1]`` is index 1 of the vector variable ``delta``; bound-state quantities are stored one variable per
    state, so ``eps[0]`` is the variable ``eps_0``.
    """
    if ds is None:
        return None
    base, k = split_name(name)
    if base in ds.data_vars:
        var = ds[base]
        if not {"chain", "draw"} <= set(var.dims):
            return None
        v = np.asarray(var.transpose("chain", "draw", ...), float)
        if k is None:
            return v if v.ndim == 2 else None
        flat = v.reshape(v.shape[0], v.shape[1], -1)
        return flat[:, :, k] if k < flat.shape[2] else None
    if k is not None and f"{base}_{k}" in ds.data_vars:
        return draws(ds, f"{base}_{k}")
    return None


def _unit(name, g_unit):
    base, _ = split_name(name)
    return g_unit if base in CONDUCTANCE else UNITS.get(base, "")


def _tip_density_draws(density, rng, n=2000):
    """Draws of the tip quantities from a stored tip density (for prior overlays when the prior group lacks them)."""
    mean, cov = np.asarray(density["mean"], float), np.asarray(density["cov"], float)
    z = rng.multivariate_normal(mean, cov, size=n, method="eigh", check_valid="ignore")
    names = density.get("names", ["delta_tip", "gamma_tip", "T_eff"])
    return {name: to_physical(name, z[:, i]) for i, name in enumerate(names)}


def _noise_dof(posterior, provenance, n_samples):
    """Student-t degrees of freedom per prediction draw, or None for normal noise.

    Predictions are evenly spaced draws of the flattened chains (``api._thin``), so the same indices pick ``nu``.
    """
    obs = (provenance.get("spec") or {}).get("observation") or {}
    if obs.get("noise") != "student_t":
        return None
    if posterior is not None and "nu" in posterior.data_vars:
        flat = np.asarray(posterior["nu"], float).ravel()
        return flat[np.linspace(0, flat.size - 1, min(n_samples, flat.size)).astype(int)]
    if isinstance(obs.get("nu"), (int, float)):
        return np.full(n_samples, float(obs["nu"]))
    return None


def _spectrum(tree, provenance, posterior, rng, label=None):
    """Bias, data, data sd and predictive bands (None where the tree lacks them); ``label``: one spectrum of a
    joint fit."""
    nm = (lambda n: n) if label is None else (lambda n: f"{label}:{n}")  # noqa: E731
    obs = _group(tree, "observed_data")
    if obs is None or nm("y") not in obs.data_vars:
        return None
    dim = nm("bias_mV")
    bias = np.asarray(obs[dim], float)
    y = np.asarray(obs[nm("y")], float)
    y_err = np.asarray(obs[nm("sigma")], float) if nm("sigma") in obs.data_vars else None
    pred = _group(tree, "predictions")
    bands, student = None, False
    if pred is not None and nm("mu") in pred.data_vars:
        mu = np.asarray(pred[nm("mu")].transpose(..., dim), float).reshape(-1, len(bias))
        if nm("sigma") in pred.data_vars:
            sigma = np.asarray(pred[nm("sigma")].transpose(..., dim), float).reshape(-1, len(bias))
        else:
            sigma = np.broadcast_to(y_err, mu.shape) if y_err is not None else None
        if sigma is not None:
            nu = _noise_dof(posterior, provenance, mu.shape[0])
            student = nu is not None and len(nu) == mu.shape[0]
            bands = F.predictive_bands(mu, sigma, rng, nu if student else None)
    return {"bias": bias, "y": y, "y_err": y_err, "bands": bands, "student_t": student}


# ------------------------------------------------------------------------------------------------ HTML sections

def _banner(diag):
    converged = bool(diag.get("converged", False))
    parts = []
    if converged:
        parts.append(
            f'<div class="banner-ok">Converged: {fmt(diag.get("divergences"))} divergent transitions, '
            f'max R-hat {fmt(diag.get("max_r_hat"))}, min bulk ESS {fmt(diag.get("min_ess_bulk"))} '
            f"(gates: no divergence, R-hat ≤ {MAX_R_HAT}, bulk ESS ≥ {MIN_ESS_BULK}).</div>")
    else:
        gates = diag.get("failed_gates") or ["no reason recorded"]
        items = "".join(f"<li>{esc(g)}</li>" for g in gates)
        parts.append(
            '<div class="banner-bad" role="alert"><strong>NOT CONVERGED</strong> — this run failed its '
            "convergence gates, so the draws are not a reliable posterior and the numbers below must not be "
            "used or quoted. Re-run with more tuning and draws, or revise the model and priors. Failed gates:"
            f"<ul>{items}</ul></div>")
    ppc = diag.get("ppc") or {}
    if ppc and not ppc.get("passed", True):
        parts.append(
            '<div class="banner-warn"><strong>Posterior predictive check failed:</strong> the model does not '
            f'describe these data to within their noise (residual lag-1 autocorrelation '
            f'{fmt(ppc.get("residual_lag1_autocorr"), 3)}, limit ±{fmt(ppc.get("residual_lag1_limit"), 3)}; '
            f'PIT uniformity p = {fmt(ppc.get("pit_ks_pvalue"), 3)}). Look at the residuals before trusting the '
            "parameters.</div>")
    return "\n".join(parts)


def _header_rows(summary, provenance, links):
    inp = summary.get("input") or {}
    rows = [("command", summary.get("command", "—")), ("input file", inp.get("file", "—"))]
    data = []
    if inp.get("units"):
        data.append(f"conductance in {DATA_UNITS.get(inp['units'], inp['units'])}")
    if inp.get("temperature_K") is not None:
        data.append(f"bath temperature {fmt(inp['temperature_K'])} K")
    mod = inp.get("modulation")
    if isinstance(mod, dict) and mod.get("value_mV") is not None:
        source = f", from {mod['source']}" if mod.get("source") else ""
        data.append(f"lock-in modulation {fmt(mod['value_mV'])} mV {mod.get('kind', '')}{source}")
    for key in ("channel", "direction", "bias_sign"):
        if inp.get(key) is not None:
            data.append(f"{key.replace('_', ' ')} {inp[key]}")
    if data:
        rows.append(("data", "; ".join(data)))
    s = summary.get("sampler") or {}
    if s:
        rows.append(("sampler", f"{s.get('name', '?')}: {s.get('chains', '?')} chains × {s.get('draws', '?')} "
                                f"draws after {s.get('tune', '?')} tuning steps"))
    rows.append(("seed", summary.get("seed", provenance.get("seed", "—"))))
    timing = summary.get("timing_s") or {}
    if timing:
        numbers = {k: v for k, v in timing.items() if isinstance(v, (int, float))}
        text = ", ".join(f"{k} {v:.1f} s" for k, v in numbers.items())
        if len(numbers) > 1:
            text += f" (total {sum(numbers.values()):.1f} s)"
        rows.append(("timing", text))
    versions = provenance.get("versions") or {}
    if not versions and summary.get("stsbayes_version"):
        versions = {"stsbayes": summary["stsbayes_version"]}
    if versions:
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    grid = provenance.get("grid") or {}
    if grid:
        rows.append(("energy grid", f"step {fmt(grid.get('step_meV'))} meV, {grid.get('points')} points, "
                                    f"FFT size {grid.get('fft_size')}"))
    html_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    if links:
        html_rows += ("<tr><th>files</th><td>" + ", ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in links)
                      + "</td></tr>")
    return f'<table class="meta">{html_rows}</table>'


def _how_to_read(is_sis):
    ridge = (" With a superconducting tip the data fix the peak positions delta_tip + delta[k] far better than "
             "either gap alone: the ridge figure shows that trade-off, and a sample gap can be no more certain "
             "than the tip calibration allows." if is_sis else "")
    return (
        "<p>Bias is the <em>sample</em> bias V in mV (V &gt; 0 probes empty sample states); energies (delta, gamma, "
        "eps, width, u2, v2) are in meV, T_eff in K, bias offset and lock-in modulation in mV, g_n, b0 and sigma "
        "in the data's units. The first figure shows the measured spectrum (points) with the posterior predictive "
        "bands: the model's expected conductance at each posterior draw plus simulated noise. About half the "
        "points should lie in the dark 50 % band and nine in ten in the light 90 % band; below, the residuals "
        "(data − median model) / noise sd should scatter between the ±2 lines without structure — runs of "
        "same-sign residuals beside the peaks mean the model misses some physics. In the parameter table, 5 % and "
        "95 % bound the central 90 % credible interval. A result is usable only when it passed its convergence "
        "gates (no divergent transitions, R-hat ≤ 1.01 and bulk ESS ≥ 400 for every parameter) and its predictive "
        f"check. Grey curves are priors: a posterior that merely repeats its prior was not measured.{ridge}</p>")


def _parameter_table(summary, g_unit, stuck):
    params = summary.get("parameters") or {}
    rows = []
    for name, p in params.items():
        r, e = p.get("r_hat"), p.get("ess_bulk")
        r_ok = r is not None and r <= MAX_R_HAT
        e_ok = e is not None and e >= MIN_ESS_BULK
        rows.append([cell(name, "name fail" if name in stuck else "name"), cell(_unit(name, g_unit), "text"),
                     fmt(p.get("mean")), fmt(p.get("sd"), 3), fmt(p.get("q05")), fmt(p.get("q50")),
                     fmt(p.get("q95")), cell(fmt(r, 4), None if r_ok else "fail"),
                     cell(fmt(e if e is None else round(e)), None if e_ok else "fail")])
    if not rows:
        return "<p>No parameters were recorded.</p>"
    out = table(["parameter", "unit", "mean", "sd", "5 %", "median", "95 %", "R-hat", "bulk ESS"], rows)
    fixed = summary.get("fixed") or {}
    if fixed:
        out += "<p class=\"note\">Held fixed (not fitted):</p>" + table(
            ["quantity", "value"], [[cell(k, "name"), fmt(v)] for k, v in fixed.items()])
    return out


def _diagnostics_table(diag, sample_stats):
    def row(label, value, ok=None, criterion="—"):
        cls = None if ok is None else ("pass" if ok else "fail")
        return [cell(label, "name"), cell(value, cls), cell(criterion, "text")]

    rows = []
    div = diag.get("divergences")
    rows.append(row("divergent transitions", fmt(div), None if div is None else div == 0, "0"))
    r = diag.get("max_r_hat")
    rows.append(row("max R-hat", fmt(r), None if r is None else r <= MAX_R_HAT, f"≤ {MAX_R_HAT}"))
    e = diag.get("min_ess_bulk")
    rows.append(row("min bulk ESS", fmt(e if e is None else round(e)), None if e is None else e >= MIN_ESS_BULK,
                    f"≥ {MIN_ESS_BULK}"))
    if "chains_in_different_modes" in diag:
        stuck = diag["chains_in_different_modes"] or []
        rows.append(row("chains in different modes", ", ".join(stuck) or "none", not stuck, "none"))
    converged = bool(diag.get("converged", False))
    rows.append(row("converged", "yes" if converged else "no", converged, "all gates pass"))
    ppc = diag.get("ppc") or {}
    if ppc and "by_spectrum" in ppc:  # a joint fit: one check per spectrum
        for label, check in ppc["by_spectrum"].items():
            lag1, p = check.get("residual_lag1_autocorr"), check.get("pit_ks_pvalue")
            rows.append(row(f"{label}: lag-1 r, PIT p", f"{fmt(lag1, 3)}, {fmt(p, 3)}", bool(check.get("passed")),
                            "passes both"))
        rows.append(row("predictive checks passed", "yes" if ppc["passed"] else "no", bool(ppc["passed"])))
    elif ppc:
        lag1, limit = ppc.get("residual_lag1_autocorr"), ppc.get("residual_lag1_limit")
        ok = None if lag1 is None or limit is None else abs(lag1) < limit
        rows.append(row("residual lag-1 autocorrelation", fmt(lag1, 3), ok,
                        f"|r| < {fmt(limit, 3)}" if limit is not None else "—"))
        p = ppc.get("pit_ks_pvalue")
        rows.append(row("PIT uniformity (KS p-value)", fmt(p, 3), None if p is None else p > PIT_P_MIN,
                        f"> {PIT_P_MIN:g}"))
        if "passed" in ppc:
            rows.append(row("predictive check passed", "yes" if ppc["passed"] else "no", bool(ppc["passed"])))
    if sample_stats is not None:
        for var, label in (("depth", "mean tree depth"), ("n_steps", "mean leapfrog steps per draw")):
            if var in sample_stats.data_vars:
                rows.append(row(label, fmt(float(np.mean(np.asarray(sample_stats[var], float))), 3)))
    return table(["quantity", "value", "criterion"], rows)


def _tip_section(summary, tree, has_tip):
    density = summary.get("tip_density") or _json_attr(tree, "tip_density")
    if density:
        heading = "Tip density (the result of this calibration)"
        note = ("This multivariate normal is the tip prior of later fits: pass this result to "
                "<code>stsbayes fit --tip DIR/posterior.nc</code>.")
    elif summary.get("tip_prior"):
        density = summary["tip_prior"]
        heading = "Tip prior (the calibration given with --tip)"
        note = "The tip quantities were drawn from this calibrated density; their posteriors are above."
    elif has_tip:
        return ("<h2>Tip</h2><p>The tip's priors came from the spec (no calibration was given): the sample gaps "
                "carry only the uncertainty those priors allow.</p>")
    else:
        return "<h2>Tip</h2><p>Normal-metal tip (NIS): the model has no tip parameters.</p>"
    names = density.get("names", ["delta_tip", "gamma_tip", "T_eff"])
    mean = np.asarray(density.get("mean", []), float)
    cov = np.asarray(density.get("cov", []), float)
    if mean.shape != (len(names),) or cov.shape != (len(names), len(names)):
        return f"<h2>{esc(heading)}</h2><p>The stored density is malformed.</p>"
    sd = np.sqrt(np.diag(cov))
    rows = []
    for i, name in enumerate(names):
        lo, mid, hi = (to_physical(name, mean[i] + c * sd[i]) for c in (-1.645, 0.0, 1.645))
        rows.append([cell(name, "name"), cell(UNITS.get(name, ""), "text"), fmt(mean[i]), fmt(sd[i], 3),
                     fmt(mid), fmt(lo), fmt(hi)])
    out = [f"<h2>{esc(heading)}</h2>", f"<p>{note} Space: {esc(density.get('space', 'z'))}.</p>",
           table(["quantity", "unit", "z mean", "z sd", "median", "5 %", "95 %"], rows)]
    corr = cov / np.outer(sd, sd) if np.all(sd > 0) else cov
    out.append("<p class=\"note\">Correlations on the z scale:</p>")
    out.append(table([""] + list(names), [[cell(n, "name")] + [fmt(c, 3) for c in corr[i]]
                                          for i, n in enumerate(names)]))
    adequacy = density.get("adequacy") or {}
    if adequacy:
        def ks_cell(v):  # TipDensity's adequacy rule
            return cell(fmt(v, 3), None if v is None or v < KS_ADEQUATE else "fail")

        rows = [[cell(f"KS distance, {k}", "name"), ks_cell(v)]
                for k, v in (adequacy.get("ks_marginals") or {}).items()]
        if "ks_mahalanobis" in adequacy:
            rows.append([cell("KS distance, Mahalanobis radii vs χ²(3)", "name"),
                         ks_cell(adequacy["ks_mahalanobis"])])
        if "adequate" in adequacy:
            ok = bool(adequacy["adequate"])
            rows.append([cell(f"normal density adequate (all < {KS_ADEQUATE})", "name"),
                         cell("yes" if ok else "no", "pass" if ok else "fail")])
        out.append("<p class=\"note\">How well the normal density describes the calibration's draws:</p>")
        out.append(table(["check", "value"], rows))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------- the report

def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=F.DPI)


def write_report(result, out_dir):
    """Write ``out_dir/report.html`` and its figures (``out_dir/figures/*.png``) for a fit or calibration.

    ``result`` is a :class:`~stsbayes.results.FitResult` (``.tree``, ``.summary()``). Returns the report's path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figdir = out / FIGURE_DIR
    figdir.mkdir(exist_ok=True)
    tree, summary = result.tree, result.summary()
    provenance = _json_attr(tree, "provenance")
    diag = summary.get("diagnostics") or {}
    converged = bool(diag.get("converged", False))
    warning = None if converged else "NOT CONVERGED: " + "; ".join(diag.get("failed_gates") or ["see report"])
    posterior, prior = _group(tree, "posterior"), _group(tree, "prior")
    seed = summary.get("seed")
    rng = np.random.default_rng(seed if isinstance(seed, int) and seed >= 0 else 0)
    units = (summary.get("input") or {}).get("units") or ""
    g_unit = DATA_UNITS.get(units, units)
    ylabel = f"dI/dV ({g_unit})" if g_unit else "dI/dV"
    command = summary.get("command", "fit")
    delta_tip = draws(posterior, "delta_tip")
    params = list((summary.get("parameters") or {}).keys())
    if delta_tip is not None and "delta_tip" not in params:
        params.insert(0, "delta_tip")  # the tip/sample ridge makes delta_tip's posterior always worth showing

    gaps = [(n, draws(posterior, n)) for n in params if split_name(n)[0] == "delta"]
    gaps = [(n, d) for n, d in gaps if d is not None]  # (name, (chain, draw) draws) of each sample gap
    sections, written = [], []

    def add_figure(name, fig, caption, alt):
        _save(fig, figdir / name)
        written.append(name)
        sections.append(figure(f"{FIGURE_DIR}/{name}", caption, alt))

    for label in (provenance or {}).get("labels") or []:
        part = _spectrum(tree, provenance, posterior, rng, label)
        if part is not None and part["bands"] is not None:
            sections.append(f"<h2>Spectrum {esc(label)}: data and posterior predictive</h2>")
            add_figure(f"fit_{label}.png", F.plot_fit(part["bias"], part["y"], part["y_err"], part["bands"],
                                                      ylabel=ylabel, warning=warning),
                       f"Spectrum {label} of the joint fit against sample bias (mV); line: posterior median of the "
                       "expected spectrum; bands: 50 % and 90 % intervals of replicated data. Lower panel: residuals.",
                       f"data and posterior predictive band of spectrum {label}")
    spectrum = _spectrum(tree, provenance, posterior, rng)
    if spectrum is not None:
        sections.append("<h2>Data and posterior predictive</h2>")
        noise = "Student-t" if spectrum["student_t"] else "normal"
        caption = ("Measured spectrum against sample bias (mV)"
                   + (" with its per-point sigma" if spectrum["y_err"] is not None else "")
                   + (f"; line: posterior median of the expected spectrum; bands: 50 % and 90 % intervals of "
                      f"replicated data (expected spectrum + {noise} noise, {len(spectrum['bands']['median'])} bias "
                      "points). Lower panel: residuals (y − median μ) / median σ with ±2 lines."
                      if spectrum["bands"] is not None else "; no posterior predictions were stored."))
        data = (spectrum["bias"], spectrum["y"], spectrum["y_err"], spectrum["bands"])
        add_figure("fit.png", F.plot_fit(*data, ylabel=ylabel, warning=warning), caption,
                   "data and posterior predictive band")
        if delta_tip is not None and gaps:
            peaks = [float(np.median(delta_tip + d)) for _, d in gaps]
            labels = [f"±(Δ_tip + {n}) = ±{p:.3f} meV" for (n, _), p in zip(gaps, peaks)]
            offset = draws(posterior, "bias_offset")
            v0 = float(np.median(offset)) if offset is not None else 0.0
            add_figure("peaks.png", F.plot_peak_zoom(*data, peaks, labels, v0, ylabel=ylabel, warning=warning),
                       "Zoom on the SIS coherence peaks at sample bias ±(delta_tip + delta[k]) + bias_offset "
                       f"(dotted lines at posterior medians; bias_offset {v0:.4f} mV).", "zoom on the SIS peaks")

    sections.append("<h2>Parameters</h2>")
    stuck = diag.get("chains_in_different_modes") or []
    sections.append(_parameter_table(summary, g_unit, stuck))
    sections.append(f"<p class=\"note\">Highlighted cells fail a gate (R-hat &gt; {MAX_R_HAT}, bulk ESS &lt; "
                    f"{MIN_ESS_BULK}; a highlighted name: its chains sit in different modes).</p>")
    sections.append("<h2>Diagnostics</h2>")
    sections.append(_diagnostics_table(diag, _group(tree, "sample_stats")))

    panels = []
    tip_draws = None
    for name in params:
        post = draws(posterior, name)
        if post is None:
            continue
        pri = draws(prior, name)
        if pri is None and name in ("delta_tip", "gamma_tip", "T_eff") and summary.get("tip_prior"):
            # fits with --tip: the prior of the tip quantities is the calibration's density
            tip_draws = tip_draws or _tip_density_draws(summary["tip_prior"], rng)
            pri = tip_draws.get(name)
        panels.append({"name": name, "unit": _unit(name, g_unit), "posterior": post,
                       "prior": None if pri is None else np.ravel(pri)})
    if panels:
        sections.append("<h2>Prior and posterior</h2>")
        add_figure("prior_posterior.png", F.plot_prior_posterior(panels, warning=warning),
                   "Posterior draws (blue histogram) against the prior (grey density) of each parameter. Where the "
                   "prior is far wider than the posterior the axis shows the posterior and notes the prior's "
                   "98 % interval." + (" Tip quantities without prior draws are drawn from the tip prior."
                                       if tip_draws is not None else ""),
                   "prior and posterior of each parameter")
    if delta_tip is not None and gaps:
        sections.append("<h2>Tip/sample ridge</h2>")
        add_figure("ridge.png", F.plot_ridge(delta_tip, [d for _, d in gaps], [n for n, _ in gaps],
                                             warning=warning),
                   "delta_tip against each sample gap (thinned draws, coloured by chain). The dashed line has "
                   "constant delta_tip + delta[k]: draws along it are the trade-off the SIS peak positions allow; "
                   "ρ is the correlation.", "delta_tip against the sample gaps")
    sections.append(_tip_section(summary, tree, delta_tip is not None))

    links = [name for name in ("summary.json", "posterior.nc") if (out / name).is_file()]
    title = f"stsbayes {command}: {(summary.get('input') or {}).get('file') or 'result'}"
    if not converged:
        title += " — NOT CONVERGED"
    body = [f"<h1>{esc(title)}</h1>", _banner(diag), _header_rows(summary, provenance, links),
            "<h2>How to read this report</h2>", _how_to_read(delta_tip is not None), *sections]
    path = out / REPORT_NAME
    atomic_write_text(path, page(title, "\n".join(body)))
    # only now that the new report is in place: figures the previous report showed and this one does not
    for name in FIGURES:
        if name not in written:
            (figdir / name).unlink(missing_ok=True)
    return path


def render_from_dir(result_dir):
    """Reload a result directory (``stsbayes report DIR``) and rewrite its report; returns the report's path."""
    from ..results import load_result
    result_dir = Path(result_dir)
    result = load_result(result_dir)
    return write_report(result, result_dir if result_dir.is_dir() else result_dir.parent)
