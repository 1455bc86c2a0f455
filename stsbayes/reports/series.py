"""The HTML report of a series comparison (``stsbayes series {gn,field,defects}``), built from the result alone.

It shows what a reader needs to judge a series verdict: how the measured spectra move with the covariate (a colour
map with the ysr energies ±eps_j laid over it; gn and field), the quantity each law predicts in the form the paper
plots it (gn: zero-bias conductance against G_set beside the G0 plateau, Fig. 5; field: height and FWHM of the
zero-bias peak against B, Fig. 4g-h; defects: each defect's eps against the population, Fig. 4b), every spectrum
with each hypothesis's posterior predictive band, the model probabilities, and the verdict, evidence and
diagnostics tables of the compare report. Figures are written first and report.html last, each atomically.
Units: sample bias in mV, energies in meV, G_set in µS, B in T, conductances in the data's units (µS for gn).
"""

from pathlib import Path

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from scipy import stats

from ..errors import InputError
from ..inference.series import G0_US
from ..io.atomic import atomic_write_text
from . import figures as F
from .compare import (PROBABILITY_CAPTION, _banner, _color, _save, _sentences, _verdict_rows, evidence_sections,
                      meta_table, report_setup)
from .fit import DATA_UNITS, _group, _json_attr, _spectrum, draws
from .html import cell, esc, figure, fmt, page, table

REPORT_NAME = "report.html"
FIGURE_DIR = "figures"
# the covariate of each kind: its condition key and axis label
COVARIATES = {"gn": ("G_set", "G_set (µS)"), "field": ("field_T", "B (T)"), "defects": ("defect", "defect")}
EPS = {"gn": "eps_j", "field": "eps_j", "defects": "eps_d"}  # the ysr bound-state energy of each spectrum
MAP_HALF_WIDTH = 1.0  # mV: the colour map shows at least ±1 mV around zero bias, where the in-gap states sit
PEAK_SEARCH = 0.3  # mV: the zero-bias peak's maximum is sought within ±0.3 mV (paper: FWHM 0.22 meV, eps <= 0.25)
PEAK_SPAN = 1.0  # mV: its background is read from the valleys within ±1 mV
PEAK_MIN_SNR = 3.0  # a maximum less than 3 noise sd above its background is no peak
POPULATION_DRAWS = 20  # draws of a new defect's eps per posterior draw, for the population band
GRID_COLUMNS = 4


# ----------------------------------------------------------------------------------------------- reading the result


def series_block(summary):
    """(kind, labels, covariate, axis label) of a series summary; the covariate is a float array for gn (G_set,
    µS) and field (B, T), the list of defect names for defects."""
    block = summary.get("series")
    if not isinstance(block, dict) or block.get("kind") not in COVARIATES:
        raise InputError("this result has no series block of kind gn, field or defects: it was not written by "
                         "`stsbayes series`")
    kind, labels = block["kind"], list(block.get("spectra") or [])
    key, axis = COVARIATES[kind]
    values = (block.get("conditions") or {}).get(key)
    if not labels or values is None or len(values) != len(labels):
        raise InputError(f"the series block lacks {key} for each of its spectra: re-run `stsbayes series {kind}`")
    return kind, labels, ([str(v) for v in values] if kind == "defects" else np.asarray(values, float)), axis


def per_spectrum(tree, name):
    """(draws, spectra) posterior draws of a per-spectrum variable (dim ``spectrum``), chains flattened; None
    when the posterior lacks it."""
    post = _group(tree, "posterior")
    if post is None or name not in post.data_vars or "spectrum" not in post[name].dims:
        return None
    v = np.asarray(post[name].transpose("chain", "draw", "spectrum"), float)
    return v.reshape(-1, v.shape[-1])


def _scalar(tree, name):
    x = draws(_group(tree, "posterior"), name)
    return None if x is None else x.ravel()


def _expected(tree, label):
    """(samples, points) thinned posterior draws of one spectrum's expected conductance mu; None if not stored."""
    pred = _group(tree, "predictions")
    if pred is None or f"{label}:mu" not in pred.data_vars:
        return None
    return np.asarray(pred[f"{label}:mu"].transpose("sample", f"{label}:bias_mV"), float)


def _bias_offset(tree):
    x = _scalar(tree, "bias_offset")
    return 0.0 if x is None else float(np.median(x))


# ----------------------------------------------------------------------------------------------- measurements


def _noise_sd(y):
    """Robust white-noise sd of a spectrum from its second differences (var(y[i-1] − 2y[i] + y[i+1]) = 6σ²)."""
    d2 = np.diff(y, 2)
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / np.sqrt(6.0))


def _crossing(x, y, start, step, level):
    """Bias where ``y`` first falls below ``level`` walking from index ``start`` by ``step``, linearly
    interpolated (the caller knows that it does)."""
    i = start
    while y[i + step] >= level:
        i += step
    j = i + step
    return x[i] + (x[j] - x[i]) * (y[i] - level) / (y[i] - y[j])


def peak_shape(bias, y, *, search=PEAK_SEARCH, span=PEAK_SPAN):
    """(height, FWHM) of the zero-bias peak of one spectrum, in its conductance units and mV; NaNs when there is no
    peak.

    The spectrum is smoothed by a 3-point running mean (the same for data and model draws, so both are measured
    alike) and its maximum sought within ±``search`` of zero. The background is the higher of the lowest points
    left and right of the peak within ±``span`` (so both half-height crossings exist); the height is the maximum
    above it and the FWHM the distance between the half-height crossings nearest the peak (linear interpolation).
    A broad peak's own tails within ±``span`` count as background. A split state is measured by its higher branch
    (with the other when the dip between them stays above half height). No peak: the maximum sits on the edge of
    the search window (a slope, not a peak), or its height is below ``PEAK_MIN_SNR`` noise sd.
    """
    order = np.argsort(bias)
    x, raw = np.asarray(bias, float)[order], np.asarray(y, float)[order]
    inside = np.flatnonzero(np.abs(x) <= search)
    if inside.size < 3:
        return float("nan"), float("nan")
    ys = raw.copy()
    ys[1:-1] = (raw[:-2] + raw[1:-1] + raw[2:]) / 3.0
    top = inside[np.argmax(ys[inside])]
    background = max(ys[(x >= -span) & (x <= x[top])].min(), ys[(x >= x[top]) & (x <= span)].min())
    height = ys[top] - background
    if top in (inside[0], inside[-1]) or not height > PEAK_MIN_SNR * _noise_sd(raw):
        return float("nan"), float("nan")
    half = background + 0.5 * height
    return float(height), float(_crossing(x, ys, top, 1, half) - _crossing(x, ys, top, -1, half))


def _interval(x):
    """5 %, 50 % and 95 % quantiles of the finite values of ``x``; NaNs when fewer than half are finite (the draws
    mostly show no peak)."""
    x = np.asarray(x, float)
    ok = x[np.isfinite(x)]
    if ok.size == 0 or ok.size < 0.5 * x.size:
        return np.full(3, np.nan)
    return np.quantile(ok, [0.05, 0.5, 0.95])


def population_band(mu, tau, rng, per_draw=POPULATION_DRAWS):
    """5 %, 50 % and 95 % quantiles of a new defect's eps: the population N(mu_eps, tau_eps) truncated at 0, mixed
    over the posterior draws of (mu_eps, tau_eps)."""
    mu = np.repeat(np.asarray(mu, float), per_draw)
    tau = np.maximum(np.repeat(np.asarray(tau, float), per_draw), 1e-12)
    eps = stats.truncnorm.rvs(-mu / tau, np.inf, loc=mu, scale=tau, random_state=rng)
    return np.quantile(eps, [0.05, 0.5, 0.95])


# ----------------------------------------------------------------------------------------------- figures


def _rows(values, log):
    """Row centres and (lower, upper) edges of each spectrum on the covariate axis (log-spaced for ``log``), and
    whether the values tie so that rows are placed by rank instead."""
    v = np.asarray(values, float)
    t = np.log(v) if log else v
    order = np.argsort(t, kind="stable")
    ranked = bool(np.any(np.diff(t[order]) <= 0))
    pos = np.empty_like(t)
    pos[order] = np.arange(t.size, dtype=float) if ranked else t[order]
    ts = pos[order]
    gaps = np.diff(ts) if ts.size > 1 else np.ones(1)
    half = 0.5 * np.concatenate([gaps[:1], gaps, gaps[-1:]])
    lower, upper = np.empty_like(t), np.empty_like(t)
    lower[order], upper[order] = ts - half[:-1], ts + half[1:]
    if log and not ranked:
        pos, lower, upper = np.exp(pos), np.exp(lower), np.exp(upper)
    return pos, lower, upper, ranked


def _edges(x):
    mid = 0.5 * (x[1:] + x[:-1])
    return np.concatenate([[x[0] - (mid[0] - x[0])], mid, [x[-1] + (x[-1] - mid[-1])]])


def plot_map(spectra, covariate, axis_label, g_n, eps, offsets, *, log=False, warning=None):
    """The measured spectra as a colour map (bias × covariate), each divided by its g_n, with the ysr ±eps_j
    (median and 90 % interval, + bias offset) and the mzm zero line laid over it.

    ``spectra``: per spectrum (bias, y); ``g_n``: per-spectrum divisors (None: raw conductance); ``eps``:
    {hypothesis: (3, spectra) 5/50/95 % quantiles of eps_j in meV} for the offset hypotheses; ``offsets``:
    {hypothesis: median bias offset (mV)}, mzm's line at its own.
    """
    pos, lower, upper, ranked = _rows(covariate, log)
    reach = max([MAP_HALF_WIDTH] + [2.0 * float(np.nanmax(q[2])) for q in eps.values()])
    full = (min(float(np.min(b)) for b, _ in spectra), max(float(np.max(b)) for b, _ in spectra))
    lo, hi = max(-reach, full[0]), min(reach, full[1])
    if lo >= hi:  # spectra that do not reach zero bias: show them whole
        lo, hi = full
    rows = []
    for j, (b, y) in enumerate(spectra):
        order = np.argsort(b)
        z = np.asarray(y, float)[order] / (1.0 if g_n is None else g_n[j])
        rows.append((np.asarray(b, float)[order], z))
    shown = np.concatenate([z[(b >= lo) & (b <= hi)] for b, z in rows])
    norm = Normalize(*np.quantile(shown, [0.01, 0.99]))
    fig = Figure(figsize=(7.6, 5.0), layout="constrained")
    ax = fig.subplots()
    for j, (b, z) in enumerate(rows):
        mesh = ax.pcolormesh(_edges(b), [lower[j], upper[j]], z[None, :], cmap="Greys", norm=norm, shading="flat",
                             rasterized=True)
    fig.colorbar(mesh, ax=ax, label="dI/dV / g_n (posterior median)" if g_n is not None else "dI/dV")
    order = np.argsort(pos)
    for i, (h, q) in enumerate(eps.items()):
        v0 = offsets.get(h, 0.0)
        for sign in (-1, 1):
            ax.errorbar(v0 + sign * q[1][order], pos[order], xerr=[q[1][order] - q[0][order],
                                                                   q[2][order] - q[1][order]],
                        fmt="o-", ms=4, lw=1.0, capsize=2, color=_color(h, i + 1),
                        label=f"{h}: ±eps (median, 90 %)" if sign > 0 else None)
    for h, v0 in offsets.items():
        if h not in eps:
            ax.axvline(v0, color=_color(h, 0), ls="--", lw=1.4, label=f"{h}: zero energy")
    if log and not ranked:
        ax.set_yscale("log")
    if ranked:
        ax.set_yticks(pos, [f"{v:g}" for v in covariate])
    ax.set_ylim(float(np.min(lower)), float(np.max(upper)))
    ax.set_xlim(lo, hi)
    ax.set_xlabel("sample bias (mV)")
    ax.set_ylabel(axis_label + (" (rows by rank)" if ranked else ""))
    ax.legend(loc="upper right", fontsize=7, framealpha=0.85)
    F._warn(fig, warning)
    return fig


def _errorbars(ax, x, q, color, label, fmt_="o-", ms=4):
    ok = np.isfinite(q[1])
    if ok.any():
        ax.errorbar(x[ok], q[1][ok], yerr=[q[1][ok] - q[0][ok], q[2][ok] - q[1][ok]], fmt=fmt_, ms=ms, lw=1.0,
                    capsize=3, color=color, label=label)


def _nudge(x, i, n, log):
    """Side-by-side x positions of ``n`` hypotheses at the same covariate (a few % apart)."""
    shift = (i - 0.5 * (n - 1)) * 0.04
    if log:
        return x * np.exp(shift)
    span = float(np.ptp(x)) or 1.0
    return x + shift * span


def plot_zero_bias(g_set, measured, predicted, *, ylabel, warning=None):
    """Zero-bias conductance against G_set: data and each hypothesis's posterior median and 90 % interval of mu
    there, with the conductance quantum G0 (the plateau mzm's excess approaches).

    ``measured``: (spectra,) in µS; ``predicted``: {hypothesis: (3, spectra) 5/50/95 % quantiles}.
    """
    fig = Figure(figsize=(7.0, 4.6), layout="constrained")
    ax = fig.subplots()
    order = np.argsort(g_set)
    x = g_set[order]
    for i, (h, q) in enumerate(predicted.items()):
        _errorbars(ax, _nudge(x, i + 1, len(predicted) + 1, True), q[:, order], _color(h, i),
                   f"{h}: μ at zero bias (median, 90 %)")
    ax.plot(_nudge(x, 0, len(predicted) + 1, True), measured[order], "ks", ms=5, label="data (point nearest 0 mV)",
            zorder=4)
    ax.axhline(G0_US, color="0.35", ls="--", lw=1, label=f"G0 = 2e²/h = {G0_US:.2f} µS")
    ax.set_xscale("log")
    values = np.concatenate([measured] + [q[np.isfinite(q)] for q in predicted.values()])
    if np.all(values > 0):
        ax.set_yscale("log")
    ax.set_xlabel("G_set = I_set / V_set (µS)")
    ax.set_ylabel(ylabel)
    ax.set_title("log axes; dashed: the conductance quantum G0, the plateau of mzm's zero-bias excess", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    F._warn(fig, warning)
    return fig


def plot_peak_shape(field, measured, predicted, *, ylabel, warning=None):
    """Height and FWHM of the zero-bias peak against B (paper Fig. 4g-h): data and each hypothesis's expected
    spectra (median and 90 % interval over posterior draws).

    ``measured``: (2, spectra) height, FWHM; ``predicted``: {hypothesis: (2, 3, spectra)}.
    """
    fig = Figure(figsize=(9.0, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    order = np.argsort(field)
    n = len(predicted) + 1
    for k, (ax, name) in enumerate(zip(axes, (f"peak height above background ({ylabel})", "FWHM (mV)"))):
        for i, (h, q) in enumerate(predicted.items()):
            _errorbars(ax, _nudge(field[order], i + 1, n, False), q[k][:, order], _color(h, i),
                       f"{h}: expected spectrum (median, 90 %)")
        ax.plot(_nudge(field[order], 0, n, False), measured[k][order], "ks", ms=5, label="data", zorder=4)
        ax.set_xlabel("B (T)")
        ax.set_ylabel(name)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=7, loc="best")
    F._warn(fig, warning)
    return fig


def plot_defect_energies(names, eps, zero, band, *, warning=None):
    """Each defect's eps (median and 90 % interval) under the offset hypotheses, mzm's pinned zero, and the ysr
    population's 5-95 % band (a new defect's eps).

    ``eps``: {hypothesis: (3, defects)}; ``zero``: hypotheses pinned at 0; ``band``: 5/50/95 % or None.
    """
    fig = Figure(figsize=(max(6.0, 0.55 * len(names) + 3.0), 4.2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(names), dtype=float)
    if band is not None:
        ax.axhspan(band[0], band[2], color=_color("ysr", 1), alpha=0.13, lw=0,
                   label="ysr population: 5–95 % of a new defect's eps")
        ax.axhline(band[1], color=_color("ysr", 1), ls=":", lw=1, label="ysr population median")
    n = len(eps) + len(zero)
    for i, (h, q) in enumerate(eps.items()):
        _errorbars(ax, x + (i - 0.5 * (n - 1)) * 0.15, q, _color(h, i + 1), f"{h}: eps_d (median, 90 %)",
                   fmt_="o")
    for i, h in enumerate(zero, start=len(eps)):
        ax.plot(x + (i - 0.5 * (n - 1)) * 0.15, np.zeros_like(x), "D", ms=4, color=_color(h, 0),
                label=f"{h}: eps = 0")
    ax.set_xticks(x, names, rotation=45 if len(names) > 8 else 0)
    ax.set_xlabel("defect")
    ax.set_ylabel("eps (meV)")
    ax.legend(fontsize=7, loc="best")
    F._warn(fig, warning)
    return fig


def plot_spectra_grid(panels, *, ylabel, warning=None):
    """One small panel per spectrum: data and each hypothesis's posterior median and 90 % predictive band.

    ``panels``: list of (title, bias, y, {hypothesis: bands from ``figures.predictive_bands``}).
    """
    n = len(panels)
    ncols = min(GRID_COLUMNS, n)
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(3.1 * ncols + 0.4, 2.5 * nrows + 0.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (title, bias, y, bands) in zip(axes, panels):
        order = np.argsort(bias)
        for i, (h, b) in enumerate(bands.items()):
            ax.fill_between(bias[order], b["q05"][order], b["q95"][order], color=_color(h, i), alpha=0.2, lw=0)
            ax.plot(bias[order], b["median"][order], color=_color(h, i), lw=1.1, label=f"{h}: median, 90 % band")
        ax.plot(bias, y, "o", ms=1.6, color=F.DATA_COLOR, label="data", zorder=3)
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[(nrows - 1) * ncols:n]:
        ax.set_xlabel("sample bias (mV)", fontsize=8)
    for ax in axes[::ncols]:
        ax.set_ylabel(ylabel, fontsize=8)
    axes[0].legend(fontsize=6, loc="best")
    F._warn(fig, warning)
    return fig


# ----------------------------------------------------------------------------------------------- HTML sections


LAWS = {
    "gn": ("<b>mzm</b>: a zero-energy excess G0·Γ<sub>j</sub>²/(V² + Γ<sub>j</sub>²) on the background, its "
           "width growing with the junction conductance (Γ<sub>j</sub> = kappa·g_n_j), so the zero-bias conductance "
           "rises towards the quantum G0 = 2e²/h as the tip approaches; <b>ysr</b>: one Yu–Shiba–Rusinov pair at "
           "±eps<sub>j</sub> with eps<sub>j</sub> = |eps0 + alpha·G_set,j| (the tip's force tunes the exchange "
           "coupling) and fixed weights u², v²: the zero-bias peak splits into two branches that move apart as "
           "G_set grows, and the whole spectrum scales with g_n_j. Each spectrum's g_n_j follows from its setpoint "
           "(I_set, V_set)."),
    "field": ("<b>mzm</b> (inert): zero energy, width and weight independent of B; <b>ysr</b> (responsive): "
              "eps<sub>j</sub> = eps0 + ½·g_eff·μ<sub>B</sub>·B<sub>j</sub> and width<sub>j</sub> = width0 + "
              "beta·B<sub>j</sub> with the weight conserved, so the zero-bias peak drops and widens (and splits "
              "once eps exceeds the width). In both the background gap broadening may grow with the field "
              "(gamma_field)."),
    "defects": ("one spectrum per defect of one type. <b>mzm</b>: every eps_d = 0; <b>ysr</b>: each eps_d is drawn "
                "from a population N(mu_eps, tau_eps) truncated at 0, so the defects share what they have in common "
                "and each keeps its own energy. In both the widths come from a log-normal population (mu_width, "
                "tau_width) and each defect has its own weights."),
}
FIGURES_READ = {
    "gn": ("The colour map shows the measured spectra (bias across, G_set up, each divided by its g_n) with the ysr "
           "energies ±eps_j and mzm's zero line over them: splitting branches that follow the points favour ysr. "
           "The zero-bias figure puts the measured conductance at zero bias beside each hypothesis's expected "
           "value and the G0 plateau."),
    "field": ("The colour map shows the measured spectra (bias across, B up, each divided by its g_n) with the ysr "
              "energies ±eps_j and mzm's zero line over them. The peak figure measures the zero-bias peak's height "
              "and FWHM the same way on the data and on each hypothesis's expected spectra (paper Fig. 4g–h): an "
              "inert mzm keeps both fixed, a responsive ysr state lowers and widens the peak."),
    "defects": ("The energy figure shows each defect's eps under ysr against the population band, beside mzm's "
                "zero: a population that sits clear of zero favours ysr."),
}


def how_to_read(kind):
    return (f"<p>Both hypotheses are one joint model over all spectra ({LAWS[kind]}) The spectra share T_eff and the "
            "background gaps; each has its own noise and linear background. The evidence Z of a hypothesis is the "
            "probability of all the data averaged over its prior; ln B = ln Z<sub>ysr</sub> − ln Z<sub>mzm</sub> "
            "for <b>zero vs offset</b> (mzm vs ysr2 does not apply to a series). A verdict's strength reads |ln B| − "
            "2·err (err the Monte-Carlo error): below 1 inconclusive, 1–3 positive, 3–5 strong, above 5 very "
            "strong, the weakest of the values at the nominal, halved and doubled priors of the contested law "
            "parameters; it is capped at <em>positive</em> when the two evidence estimators disagree, a predictive "
            "check failed, a run did not converge, or the prior sensitivity could not be assessed. Prior odds "
            "change the posterior probabilities, never the Bayes factors; LOO and stacking answer which hypothesis "
            f"predicts new points best, never replacing Z.</p><p>{FIGURES_READ[kind]} The grid shows every "
            "spectrum with each hypothesis's posterior median and 90 % band of replicated data (expected spectrum "
            "plus noise): about nine points in ten should lie inside a band that describes the data. Bias is the "
            "sample bias in mV, energies in meV.</p>")


def _spectra_table(summary, labels, files, conditions, g_n):
    """One row per spectrum: its file, covariates, each hypothesis's median g_n_j and predictive check (passed,
    residual lag-1 autocorrelation, PIT uniformity p-value: the joint fit's check per spectrum)."""
    names = list(summary["hypotheses"])
    rows = []
    for j, label in enumerate(labels):
        row = [cell(label, "name"), cell(Path(files[j]).name if files else "—", "text")]
        row += [fmt(v[j]) if isinstance(v[j], (int, float)) else cell(v[j], "text") for v in conditions.values()]
        for h in names:
            row.append(fmt(None if g_n.get(h) is None else float(np.median(g_n[h][:, j]))))
        for h in names:
            by = ((summary["hypotheses"][h].get("diagnostics") or {}).get("ppc") or {}).get("by_spectrum") or {}
            check = by.get(label) or {}
            passed = check.get("passed")
            text = "—" if passed is None else (f"{'yes' if passed else 'no'} (lag-1 r "
                                              f"{fmt(check.get('residual_lag1_autocorr'), 2)}, PIT p "
                                              f"{fmt(check.get('pit_ks_pvalue'), 2)})")
            row.append(cell(text, None if passed is None else ("pass" if passed else "fail")))
        rows.append(row)
    return table(["spectrum", "file", *conditions, *(f"g_n_j, {h}" for h in names),
                  *(f"predictive check, {h}" for h in names)], rows)


# ----------------------------------------------------------------------------------------------- the report


def _panel_title(kind, label, value):
    if kind == "gn":
        return f"{label}: G_set {value:.3g} µS"
    if kind == "field":
        return f"{label}: B = {value:g} T"
    return f"{label}: defect {value}"


def write_series_report(result, out_dir):
    """Write ``out_dir/report.html`` and ``out_dir/figures/series_*.png`` for a series :class:`CompareResult`.

    Everything comes from ``result.summary()`` (its ``series`` block names the kind, spectra and covariates) and
    ``result.trees`` (posterior, observed data and thinned predictions per hypothesis); no model is rebuilt.
    """
    out = Path(out_dir)
    summary, trees = result.summary(), result.trees
    kind, labels, covariate, axis_label = series_block(summary)
    names = list(summary["hypotheses"])
    missing = [h for h in names if h not in trees]
    if missing:
        raise InputError(f"the result lacks the posterior of {', '.join(missing)}: re-run `stsbayes series {kind}`")
    figdir, warning, rng, g_unit, ylabel = report_setup(summary, out)
    sections = []

    def add_figure(name, fig, caption, alt):
        _save(fig, figdir / name)
        sections.append(figure(f"{FIGURE_DIR}/{name}", caption, alt))

    parts = {h: [_spectrum(tree, _json_attr(tree, "provenance"), _group(tree, "posterior"), rng, label=label)
                 for label in labels] for h, tree in trees.items()}
    data = parts[names[0]]
    absent = [label for label, p in zip(labels, data) if p is None]
    if absent:
        raise InputError(f"the result lacks the observed spectra {', '.join(absent)}: re-run `stsbayes series {kind}`")
    g_n = {h: per_spectrum(tree, "g_n_j") for h, tree in trees.items()}
    pooled = [x for x in g_n.values() if x is not None]
    g_n_median = np.median(np.concatenate(pooled), axis=0) if pooled else None
    eps = {h: np.quantile(x, [0.05, 0.5, 0.95], axis=0) for h, tree in trees.items()
           if (x := per_spectrum(tree, EPS[kind])) is not None}
    zero = [h for h in names if h not in eps]

    if kind in ("gn", "field"):
        sections.append(f"<h2>The spectra against {'G_set' if kind == 'gn' else 'B'}</h2>")
        spectra = [(p["bias"], p["y"]) for p in data]
        add_figure("series_map.png",
                   plot_map(spectra, covariate, axis_label, g_n_median, eps,
                            {h: _bias_offset(tree) for h, tree in trees.items()}, log=kind == "gn",
                            warning=warning),
                   f"Measured spectra as a colour map against sample bias (mV) and {esc(axis_label)}"
                   + (" (log scale)" if kind == "gn" else "") + ", each row divided by its posterior median g_n_j "
                   "(draws of both hypotheses pooled) so that rows compare; colours span the 1–99 % range shown. "
                   "Points: the ysr posterior ±eps_j (median, bars the 90 % interval, shifted by the median bias "
                   "offset); dashed: mzm's zero energy. An offset state shows as two branches at ±eps_j.",
                   "colour map of the spectra with the ysr energies")
    if kind == "gn":
        nearest = [int(np.argmin(np.abs(p["bias"]))) for p in data]
        measured = np.array([p["y"][i] for p, i in zip(data, nearest)])
        predicted = {}
        for h, tree in trees.items():
            mus = [_expected(tree, label) for label in labels]
            if all(m is not None for m in mus):
                predicted[h] = np.array([np.quantile(m[:, i], [0.05, 0.5, 0.95]) for m, i in zip(mus, nearest)]).T
        add_figure("series_zero_bias.png",
                   plot_zero_bias(covariate, measured, predicted, ylabel=f"zero-bias {ylabel}", warning=warning),
                   "Conductance at zero bias (the data point nearest 0 mV) against the setpoint conductance G_set, "
                   "log axes. Bars: each hypothesis's posterior median and 90 % interval of the expected conductance "
                   "μ at that point (no noise). mzm's excess grows towards the conductance quantum G0 (dashed) as "
                   "its width kappa·g_n_j grows; ysr's zero-bias conductance falls once the peak splits.",
                   "zero-bias conductance against G_set")
    if kind == "field":
        measured = np.array([peak_shape(p["bias"], p["y"]) for p in data]).T
        predicted = {}
        for h, tree in trees.items():
            mus = [_expected(tree, label) for label in labels]
            if all(m is not None for m in mus):
                shapes = [np.array([peak_shape(p["bias"], row) for row in m]) for p, m in zip(data, mus)]
                predicted[h] = np.array([[_interval(s[:, k]) for s in shapes] for k in range(2)]).transpose(0, 2, 1)
        sections.append("<h2>The zero-bias peak against B</h2>")
        add_figure("series_peak.png", plot_peak_shape(covariate, measured, predicted, ylabel=g_unit or "data units",
                                                      warning=warning),
                   "Height above the local background and full width at half maximum of the zero-bias peak against "
                   f"B (paper Fig. 4g–h), measured alike on the data (squares) and on each hypothesis's expected "
                   f"spectra (median and 90 % interval over posterior draws): the maximum within ±{PEAK_SEARCH:g} mV "
                   f"after a 3-point running mean, above the higher of the valley minima within ±{PEAK_SPAN:g} mV, "
                   "half-height crossings by linear interpolation. Missing points: no peak (a maximum on the window's "
                   "edge or below 3 noise sd; for a hypothesis, in most draws).", "zero-bias peak height and FWHM")
    if kind == "defects":
        band = None
        for tree in trees.values():
            mu, tau = _scalar(tree, "mu_eps"), _scalar(tree, "tau_eps")
            if mu is not None and tau is not None:
                band = population_band(mu, tau, rng)
        sections.append("<h2>Bound-state energy of each defect</h2>")
        add_figure("series_eps.png", plot_defect_energies(covariate, eps, zero, band, warning=warning),
                   "Each defect's bound-state energy eps_d (meV): ysr's posterior median with its 90 % interval; mzm "
                   "pins every eps_d at 0. Shaded: the ysr population, N(mu_eps, tau_eps) truncated at 0 and mixed "
                   "over the posterior draws, 5–95 % of where a new defect's eps would fall (dotted: its median).",
                   "per-defect energies and the population band")

    sections.append("<h2>Each spectrum and each hypothesis's posterior predictive</h2>")
    panels = []
    for j, (label, p) in enumerate(zip(labels, data)):
        bands = {h: parts[h][j]["bands"] for h in names if parts[h][j] is not None and parts[h][j]["bands"] is not None}
        panels.append((_panel_title(kind, label, covariate[j]), p["bias"], p["y"], bands))
    add_figure("series_spectra.png", plot_spectra_grid(panels, ylabel=ylabel, warning=warning),
               "Every spectrum of the series (points) against sample bias (mV) with each hypothesis's posterior median "
               "of the expected spectrum and the 90 % band of replicated data (expected spectrum + noise).",
               "each spectrum with each hypothesis's predictive band")
    sections.append(_spectra_table(summary, labels, (summary.get("series") or {}).get("files"),
                                   (summary.get("series") or {}).get("conditions") or {}, g_n))

    sections += evidence_sections(summary, trees, g_unit, lambda fig: add_figure(
        "series_probabilities.png", fig, PROBABILITY_CAPTION, "model probabilities and ln Z"), warning,
        "the prior width of every contested law parameter")

    title = f"stsbayes series {kind}" + (" — NOT CONVERGED" if warning else "")
    facts = [("series", f"{kind}: {len(labels)} spectra ({', '.join(labels)})")]
    body = [f"<h1>{esc(title)}</h1>", _banner(summary), meta_table(summary, out, facts),
            "<h2>Verdicts</h2>", _sentences(summary["verdicts"], kind), _verdict_rows(summary["verdicts"]),
            f"<p>{esc(summary.get('statement', ''))}</p>", "<h2>How to read this report</h2>", how_to_read(kind),
            *sections]
    path = out / REPORT_NAME
    atomic_write_text(path, page(title, "\n".join(body)))
    return path
