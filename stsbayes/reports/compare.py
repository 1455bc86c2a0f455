"""The HTML report of a comparison of ZECP hypotheses (``stsbayes compare``), built from the result alone.

It shows what a reader needs to judge the verdicts: the data with every hypothesis's posterior predictive band and
residuals, a zoom where the hypotheses differ (±delta_tip for a superconducting tip, where particle-hole symmetry
is decided; zero bias for a metal tip), the bound-state posteriors, the model probabilities with error bars, the
two estimators' ln Z side by side, and each verdict in one sentence. Figures are written first and report.html
last, each atomically. Units: sample bias in mV, energies in meV.
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..inference import verdicts as V
from ..io.atomic import atomic_path, atomic_write_text
from . import figures as F
from .fit import DATA_UNITS, _diagnostics_table, _group, _json_attr, _parameter_table, _spectrum, draws
from .html import cell, esc, fmt, figure, page, table

REPORT_NAME = "report.html"
FIGURE_DIR = "figures"
COLORS = {"mzm": "C3", "ysr": "C0", "ysr2": "C2"}
BOUND_QUANTITIES = ("eps", "width", "u2", "v2")
SIS_ZOOM_HALF_WIDTH = 0.35  # mV around ±delta_tip: the bound states' SIS replicas sit within ±(eps + few widths)
METAL_ZOOM_HALF_WIDTH = 0.5  # mV around zero bias


# ----------------------------------------------------------------------------------------------- figures


def _color(h, i):
    return COLORS.get(h, f"C{i + 4}")


def _band_lines(ax, bias, bands, color, label, mask=None):
    sel = slice(None) if mask is None else mask
    ax.fill_between(bias[sel], bands["q05"][sel], bands["q95"][sel], color=color, alpha=0.18, lw=0)
    ax.plot(bias[sel], bands["median"][sel], color=color, lw=1.2, label=f"{label}: median, 90 % band")


def plot_compare_fit(bias, y, y_err, bands, *, ylabel="dI/dV", windows=None, warning=None):
    """Data with each hypothesis's posterior predictive band (top) and each one's standardised residuals (below).

    ``bands``: {hypothesis: bands from ``figures.predictive_bands``}. ``windows``: bias ranges (mV) to show, one
    column each (None: the whole spectrum).
    """
    windows = windows or [(float(np.min(bias)), float(np.max(bias)))]
    n = len(bands)
    fig = Figure(figsize=(8.0 if len(windows) == 1 else 9.0, 4.2 + 1.1 * n), layout="constrained")
    axes = fig.subplots(1 + n, len(windows), sharex="col", squeeze=False,
                        gridspec_kw={"height_ratios": [3] + [1] * n})
    for col, (lo, hi) in enumerate(windows):
        mask = (bias >= lo) & (bias <= hi)
        ax = axes[0, col]
        for i, (h, b) in enumerate(bands.items()):
            _band_lines(ax, bias, b, _color(h, i), h, mask)
        F._draw_data(ax, bias, y, y_err, mask)
        ax.set_xlim(lo, hi)
        for row, (i, (h, b)) in enumerate(enumerate(bands.items()), start=1):
            axr = axes[row, col]
            resid = ((y - b["median"]) / b["sigma"])[mask]
            axr.axhline(0, color="0.5", lw=0.8)
            for level in (-2, 2):
                axr.axhline(level, color=F.WARNING_COLOR, lw=0.7, ls="--")
            axr.plot(bias[mask], resid, "o", ms=2.2, color=_color(h, i))
            outside = float(np.mean(np.abs(resid) > 2)) if resid.size else 0.0
            axr.set_title(f"{h}: residuals, {100 * outside:.1f} % beyond ±2", fontsize=8, loc="left")
            if col == 0:
                axr.set_ylabel("(y − μ)/σ", fontsize=8)
        axes[-1, col].set_xlabel("sample bias (mV)")
    axes[0, 0].set_ylabel(ylabel)
    axes[0, -1].legend(loc="best", fontsize=7)
    F._warn(fig, warning)
    return fig


def zoom_windows(bias, delta_tip, bias_offset):
    """Where the hypotheses differ most: ±delta_tip (+ V0) for a superconducting tip, zero bias for a metal one."""
    lo_b, hi_b = float(np.min(bias)), float(np.max(bias))
    if delta_tip is None:
        half = min(METAL_ZOOM_HALF_WIDTH, 0.5 * (hi_b - lo_b))
        return [(max(lo_b, bias_offset - half), min(hi_b, bias_offset + half))]
    return [(max(lo_b, bias_offset + s * delta_tip - SIS_ZOOM_HALF_WIDTH),
             min(hi_b, bias_offset + s * delta_tip + SIS_ZOOM_HALF_WIDTH)) for s in (-1, 1)]


def plot_bound_states(panels, *, warning=None, ncols=4):
    """Posterior of each bound-state quantity, one histogram per hypothesis (a vertical line where it is fixed).

    ``panels``: list of (name, {hypothesis: 1-d draws}).
    """
    n = len(panels)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(2.9 * ncols + 0.3, 2.4 * nrows + 0.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (name, by_h) in zip(axes, panels):
        for i, (h, x) in enumerate(by_h.items()):
            x = np.asarray(x, float).ravel()
            x = x[np.isfinite(x)]
            if x.size == 0:
                continue
            if np.ptp(x) == 0:
                ax.axvline(x[0], color=_color(h, i), lw=2, label=f"{h} (fixed)")
            else:
                ax.hist(x, bins=int(np.clip(np.sqrt(x.size), 10, 40)), density=True, histtype="stepfilled",
                        alpha=0.45, color=_color(h, i), label=h)
        ax.set_yticks([])
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.set_xlabel(f"{name} (meV)", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="best")
    for ax in axes[n:]:
        ax.set_visible(False)
    F._warn(fig, warning)
    return fig


def plot_probabilities(summary, *, warning=None):
    """Posterior model probabilities with their 90 % intervals (left) and each estimator's ln Z ± err (right)."""
    per = summary["hypotheses"]
    names = list(per)
    fig = Figure(figsize=(8.5, 3.4), layout="constrained")
    ax, axz = fig.subplots(1, 2)
    x = np.arange(len(names))
    p = np.array([per[h]["posterior_probability"] for h in names])
    lo_hi = np.array([per[h].get("posterior_probability_90") or [pi, pi] for h, pi in zip(names, p)])
    ax.bar(x, p, color=[_color(h, i) for i, h in enumerate(names)], alpha=0.7)
    ax.errorbar(x, p, yerr=[np.clip(p - lo_hi[:, 0], 0, None), np.clip(lo_hi[:, 1] - p, 0, None)], fmt="none",
                ecolor="k", capsize=4, lw=1)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.05)
    odds = summary.get("prior_odds") or {}
    ax.set_title("posterior probability (prior odds " + ", ".join(f"{h} {fmt(odds.get(h, 1))}" for h in names)
                 + ")", fontsize=8)
    ax.set_ylabel("probability (bar), 90 % interval")
    # agreement of the estimators: each one's ln Z relative to the combined value of its hypothesis (the ln Z of
    # different hypotheses can differ by hundreds, which would hide the differences that matter here)
    for j, (method, marker) in enumerate((("smc", "o"), ("bridge", "s"))):
        vals = [per[h]["log_evidence_by_estimator"].get(method) for h in names]
        errs = [(per[h].get("log_evidence_err_by_estimator") or {}).get(method, 0.0) for h in names]
        axz.errorbar(x + (j - 0.5) * 0.25, [v - per[h]["log_evidence"] if v is not None else np.nan
                                             for v, h in zip(vals, names)],
                     yerr=errs, fmt=marker, capsize=3, label=method, color=f"C{j + 7}")
    axz.errorbar(x, np.zeros(len(names)), yerr=[per[h]["log_evidence_err"] for h in names], fmt="D", color="k",
                 capsize=3, label="combined")
    axz.set_xticks(x, [f"{h}\nln Z = {per[h]['log_evidence']:.1f}" for h in names], fontsize=8)
    axz.axhline(0, color="0.6", lw=0.8)
    axz.set_ylabel("ln Z − combined ln Z")
    axz.set_title("estimators (± MC error): agree within 3 combined SE?", fontsize=8)
    axz.legend(fontsize=7, loc="best")
    F._warn(fig, warning)
    return fig


# ----------------------------------------------------------------------------------------------- HTML sections


HOW_TO_READ = (
    "<p>Each hypothesis constrains the in-gap bound states of one spectrum model: <b>mzm</b> one state pinned at "
    "zero energy, <b>ysr</b> one Yu–Shiba–Rusinov pair at ±eps, <b>ysr2</b> two pairs (eps[0] ≤ eps[1]). The "
    "evidence Z of a hypothesis is the probability of the data averaged over its prior; ln B = ln Z<sub>A</sub> − "
    "ln Z<sub>B</sub>. <b>Zero vs offset</b> compares mzm with the class {ysr, ysr2} (within-class prior odds); "
    "<b>mzm vs ysr2</b> compares those two alone. A verdict's strength reads the conservative value |ln B| − 2·err "
    "(err the Monte-Carlo error of ln B): below 1 inconclusive, 1–3 positive, 3–5 strong, above 5 very strong; it "
    "is the weakest of the strengths at the nominal, halved and doubled bound-state prior widths. It is capped at "
    "<em>positive</em> when the two evidence estimators disagree (beyond 3 combined standard errors), when a "
    "posterior predictive check failed (the model misses structure in the data, which inflates ln B for the most "
    "flexible hypothesis), when a run did not converge, or when the prior sensitivity could not be assessed. "
    "Prior odds change the posterior probabilities, never the Bayes factors. LOO (elpd) and stacking weights "
    "answer a different question, which hypothesis predicts new points best, and never replace Z.</p>")


def _verdict_rows(verdicts):
    rows = []
    for q, b in verdicts.items():
        if b is None:
            rows.append([cell(q, "name"), "—", "—", "—", "not applicable", "—", "—", "—"])
            continue
        ps = b.get("prior_sensitivity") or {}
        rows.append([cell(q, "name"), cell(b["favoured"], "text"), f"{fmt(b['ln_bf'], 3)} ± {fmt(b['err'], 2)}",
                     cell(b["strength"], "text"),
                     cell(", ".join(b.get("capped_by") or []) or "none", None if not b.get("capped_by") else "fail"),
                     *(f"{fmt(ps[k]['ln_bf'], 3)} ({ps[k]['strength']})" if k in ps else "—"
                       for k in ("halved", "doubled")),
                     cell(b.get("best_offset_hypothesis") or "—", "text")])
    return table(["question", "favoured", "ln B ± err", "strength", "capped by", "halved priors", "doubled priors",
                  "best offset"], rows)


def _hypothesis_rows(summary):
    rows = []
    for h, s in summary["hypotheses"].items():
        by, errs = s["log_evidence_by_estimator"], s.get("log_evidence_err_by_estimator") or {}
        interval = s.get("posterior_probability_90") or [None, None]
        ppc = (s.get("diagnostics") or {}).get("ppc") or {}
        agree = bool(s.get("estimators_agree"))
        rows.append([cell(h, "name"), f"{fmt(s['log_evidence'], 6)} ± {fmt(s['log_evidence_err'], 2)}",
                     f"{fmt(by.get('smc'), 6)} ± {fmt(errs.get('smc'), 2)}",
                     f"{fmt(by.get('bridge'), 6)} ± {fmt(errs.get('bridge'), 2)}",
                     cell("yes" if agree else "no", "pass" if agree else "fail"),
                     f"{fmt(s['posterior_probability'], 3)} [{fmt(interval[0], 2)}, {fmt(interval[1], 2)}]",
                     f"{fmt(s['elpd_loo'], 5)} ± {fmt(s['elpd_loo_se'], 2)}", fmt(s["stacking_weight"], 3),
                     cell(fmt(s["pareto_k_max"], 2), None if s["pareto_k_max"] <= 0.7 else "fail"),
                     cell("yes" if s["converged"] else "no", "pass" if s["converged"] else "fail"),
                     cell("yes" if ppc.get("passed", True) else "no", "pass" if ppc.get("passed", True) else "fail")])
    return table(["hypothesis", "ln Z", "ln Z (smc)", "ln Z (bridge)", "agree", "P (90 %)", "elpd LOO",
                  "stacking", "max k̂", "converged", "PPC passed"], rows)


def _bayes_factor_rows(summary):
    return table(["pair", "ln B", "err"], [[cell(k, "name"), fmt(v["value"], 4), fmt(v["err"], 2)]
                                          for k, v in summary["log_bayes_factors"].items()])


def _sensitivity_rows(summary):
    rows = []
    for h, s in summary["hypotheses"].items():
        for label, r in (s.get("prior_sensitivity") or {}).items():
            rows.append([cell(h, "name"), cell(label, "text"), f"{fmt(r['log_evidence'], 6)} ± {fmt(r['err'], 2)}",
                         cell(r.get("method", "reweighting"), "text"),
                         cell(fmt(r["pareto_k"], 2), "fail" if r["needs_rerun"] else None)])
    return table(["hypothesis", "bound-state priors", "ln Z", "from", "Pareto k̂ of the reweighting"], rows)


def _sentences(verdicts, series_kind=None):
    items = [f"<li><b>{esc(q)}</b>: {esc(V._sentence(q, b, series_kind))}</li>" for q, b in verdicts.items()
             if b is not None]
    return "<ul>" + "".join(items) + "</ul>"


def _banner(summary):
    d = summary.get("diagnostics") or {}
    parts = []
    if d.get("unconverged"):
        parts.append('<div class="banner-bad" role="alert"><strong>NOT CONVERGED</strong> — the fits of '
                     f"{esc(', '.join(d['unconverged']))} failed their convergence gates: their evidences, and "
                     "every verdict that uses them, must not be quoted. Re-run with more tuning and draws.</div>")
    if d.get("ppc_failed"):
        parts.append('<div class="banner-warn"><strong>Posterior predictive check failed</strong> for '
                     f"{esc(', '.join(d['ppc_failed']))}: the model misses structure in these data, so a verdict "
                     "that favours it is capped at positive (a failed check of the disfavoured side counts "
                     "against it and caps nothing).</div>")
    if d.get("estimators_disagree"):
        parts.append('<div class="banner-warn"><strong>Evidence estimators disagree</strong> for '
                     f"{esc(', '.join(d['estimators_disagree']))} (beyond 3 combined standard errors): verdicts "
                     "involving it are capped at positive.</div>")
    for caution in d.get("cautions") or []:
        parts.append(f'<div class="banner-warn"><strong>Caution</strong>: {esc(caution)}.</div>')
    if not parts:
        parts.append('<div class="banner-ok">All fits converged, passed their predictive checks, and both evidence '
                     "estimators agree.</div>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------- the report


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=F.DPI)


def _median(tree, name):
    x = draws(_group(tree, "posterior"), name)
    return None if x is None else float(np.median(x))


def _bound_panels(trees):
    names = []
    for tree in trees.values():
        post = _group(tree, "posterior")
        for q in BOUND_QUANTITIES:
            k = 0
            while post is not None and f"{q}_{k}" in post.data_vars:
                if f"{q}[{k}]" not in names:
                    names.append(f"{q}[{k}]")
                k += 1
    panels = []
    for name in sorted(names, key=lambda n: (BOUND_QUANTITIES.index(n.split("[")[0]), n)):
        by_h = {}
        for h, tree in trees.items():
            x = draws(_group(tree, "posterior"), name)
            if x is not None:
                by_h[h] = x
            elif name == "eps[0]" and h == V.ZERO:
                by_h[h] = np.zeros(2)  # mzm's state is pinned at zero energy
        panels.append((name, by_h))
    return panels


PROBABILITY_CAPTION = ("Left: posterior model probabilities under the stated prior odds, with 90 % intervals from "
                       "the ln Z errors. Right: ln Z from SMC and from bridge sampling relative to their combination, "
                       "per hypothesis (its combined ln Z below the name); the two estimators must agree within 3 "
                       "combined standard errors.")


def evidence_sections(summary, trees, g_unit, add_probability_figure, warning, contested):
    """The report's evidence part, shared by compare and series: model probabilities (the figure goes through
    ``add_probability_figure(fig)``), hypotheses and Bayes-factor tables, prior sensitivity (``contested`` names
    what was halved and doubled), and each hypothesis's parameters and diagnostics. Returns HTML pieces."""
    sections = ["<h2>Model probabilities and evidence</h2>"]
    add_probability_figure(plot_probabilities(summary, warning=warning))
    sections.append(_hypothesis_rows(summary))
    sections.append("<p class=\"note\">Pairwise log Bayes factors (A_vs_B = ln Z_A − ln Z_B):</p>")
    sections.append(_bayes_factor_rows(summary))
    sections.append(f"<h2>Prior sensitivity</h2><p>ln Z with {esc(contested)} halved and doubled, by importance "
                    "reweighting of the NUTS draws (or a re-run at that prior where reweighting is unreliable); "
                    "Pareto k̂ &gt; 0.7 means the reweighting is unreliable (highlighted).</p>")
    sections.append(_sensitivity_rows(summary))
    for h, s in summary["hypotheses"].items():
        sections.append(f"<h2>Hypothesis {esc(h)}: parameters and diagnostics</h2>")
        diag = s.get("diagnostics") or {}
        sections.append(_parameter_table(s, g_unit, diag.get("chains_in_different_modes") or []))
        sections.append(_diagnostics_table(diag, _group(trees[h], "sample_stats") if h in trees else None))
    return sections


def _evidence_settings(evidence):
    """The evidence settings in words: 'SMC from a Student-t reference fitted to the posterior (df 4, scale 2): 200
    particles × 4 replicates; bridge sampling: 4 replicates; fits re-run at the scaled prior where reweighting
    fails'; keys it does not know are listed as they are."""
    parts = []
    smc = evidence.get("smc")
    if isinstance(smc, dict):
        ref = smc.get("reference")
        start = (f"from a Student-t reference fitted to the posterior (df {fmt(ref.get('df'))}, scale "
                 f"{fmt(ref.get('scale'))})" if isinstance(ref, dict) else f"from the {smc.get('start', '?')}")
        parts.append(f"SMC {start}: {smc.get('draws')} particles × {smc.get('replicates')} replicates")
    bridge = evidence.get("bridge")
    if isinstance(bridge, dict):
        parts.append(f"bridge sampling: {bridge.get('replicates')} replicates")
    if "prior_rerun" in evidence:
        parts.append("fits re-run at the scaled prior where reweighting fails" if evidence["prior_rerun"]
                     else "no re-runs at the scaled priors (--no-prior-rerun)")
    known = {"smc", "bridge", "prior_rerun"}
    parts += [f"{k}: {v}" for k, v in evidence.items() if k not in known]
    return "; ".join(parts)


def meta_table(summary, out, first=()):
    """The run's facts (hypotheses, prior odds, sampler, evidence settings, seed, time, result files) as a table;
    ``first``: (name, value) rows put before them."""
    s = summary.get("sampler") or {}
    rows = [*first, ("hypotheses", ", ".join(summary["hypotheses"])),
            ("prior odds", ", ".join(f"{k} {fmt(v)}" for k, v in (summary.get("prior_odds") or {}).items())),
            ("sampler", f"{s.get('name')}: {s.get('chains')} chains × {s.get('draws')} draws after {s.get('tune')} "
                        "tuning steps"),
            ("evidence", _evidence_settings(s.get("evidence") or {})),
            ("seed", summary.get("seed")),
            ("time", f"{fmt((summary.get('timing_s') or {}).get('total'), 3)} s")]
    html = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    links = [n for n in ["summary.json"] + [f"posterior_{h}.nc" for h in summary["hypotheses"]]
             if (out / n).is_file()]
    if links:
        html += "<tr><th>files</th><td>" + ", ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in links) + "</td></tr>"
    return f'<table class="meta">{html}</table>'


def report_setup(summary, out):
    """The figure folder (created), the not-converged warning, a seeded generator and the conductance unit and axis
    label of a compare or series report."""
    out.mkdir(parents=True, exist_ok=True)
    figdir = out / FIGURE_DIR
    figdir.mkdir(exist_ok=True)
    d = summary.get("diagnostics") or {}
    warning = None if d.get("converged", False) else "NOT CONVERGED: " + ", ".join(d.get("unconverged") or [])
    seed = summary.get("seed")
    rng = np.random.default_rng(seed if isinstance(seed, int) and seed >= 0 else 0)
    units = (summary.get("input") or {}).get("units") or ""
    g_unit = DATA_UNITS.get(units, units)
    return figdir, warning, rng, g_unit, f"dI/dV ({g_unit})" if g_unit else "dI/dV"


def write_compare_report(result, out_dir):
    """Write ``out_dir/report.html`` and ``out_dir/figures/compare_*.png`` for a :class:`CompareResult`."""
    out = Path(out_dir)
    summary, trees = result.summary(), result.trees
    figdir, warning, rng, g_unit, ylabel = report_setup(summary, out)
    sections = []

    def add_figure(name, fig, caption, alt):
        _save(fig, figdir / name)
        sections.append(figure(f"{FIGURE_DIR}/{name}", caption, alt))

    spectra = {h: _spectrum(tree, _json_attr(tree, "provenance"), _group(tree, "posterior"), rng)
               for h, tree in trees.items()}
    first = next(iter(spectra.values()))
    bands = {h: s["bands"] for h, s in spectra.items() if s is not None and s["bands"] is not None}
    sections.append("<h2>Data and each hypothesis's posterior predictive</h2>")
    if first is not None and bands:
        data = (first["bias"], first["y"], first["y_err"], bands)
        add_figure("compare_fit.png", plot_compare_fit(*data, ylabel=ylabel, warning=warning),
                   "Measured spectrum (points) against sample bias with each hypothesis's posterior median and 90 % "
                   "band of replicated data (expected spectrum + noise). Lower panels: each hypothesis's residuals "
                   "(y − median μ)/σ with ±2 lines; structure there means the model misses physics.",
                   "data with each hypothesis's predictive band and residuals")
        tree0 = next(iter(trees.values()))
        delta_tip = _median(tree0, "delta_tip")
        offset = _median(tree0, "bias_offset") or 0.0
        windows = zoom_windows(first["bias"], delta_tip, offset)
        where = (f"±delta_tip = ±{delta_tip:.3f} mV (+ bias offset), where a bound state's electron and hole "
                 "weights show as unequal peak heights only if its energy is not zero" if delta_tip is not None else
                 "zero bias (metal tip): a zero-energy state gives one symmetric peak, an offset pair two peaks at "
                 "±eps")
        add_figure("compare_zoom.png", plot_compare_fit(*data, ylabel=ylabel, windows=windows, warning=warning),
                   f"Zoom on {where}.", "zoom where the hypotheses differ")
    else:
        sections.append("<p>No posterior predictions were stored.</p>")
    panels = _bound_panels(trees)
    if panels:
        sections.append("<h2>Bound-state posteriors</h2>")
        add_figure("compare_bound_states.png", plot_bound_states(panels, warning=warning),
                   "Posterior draws of the bound-state energies eps, half widths, and electron (u2) and hole (v2) "
                   "weights under each hypothesis (meV). mzm pins eps[0] at 0 and splits its weight equally.",
                   "bound-state posteriors per hypothesis")
    sections += evidence_sections(summary, trees, g_unit, lambda fig: add_figure(
        "compare_probabilities.png", fig, PROBABILITY_CAPTION, "model probabilities and ln Z"), warning,
        "every bound-state prior width")

    title = f"stsbayes compare: {(summary.get('input') or {}).get('file') or 'spectrum'}"
    if warning:
        title += " — NOT CONVERGED"
    body = [f"<h1>{esc(title)}</h1>", _banner(summary), meta_table(summary, out),
            "<h2>Verdicts</h2>", _sentences(summary["verdicts"]), _verdict_rows(summary["verdicts"]),
            f"<p>{esc(summary.get('statement', ''))}</p>", "<h2>How to read this report</h2>", HOW_TO_READ,
            *sections]
    path = out / REPORT_NAME
    atomic_write_text(path, page(title, "\n".join(body)))
    return path


def render_compare_from_dir(result_dir):
    """Reload a compare (or series) directory and rewrite its report; returns the report's path."""
    from ..comparison import load_compare
    return load_compare(result_dir).report(Path(result_dir))
