"""Figures of a fit: plain functions of arrays that return matplotlib Figures.

No pyplot: each function builds its own ``Figure`` (rendered by the Agg canvas when saved), so reports can be
written from scripts, servers and tests without a display and without global figure state.
Units: bias is the sample bias in mV, energies in meV, temperatures in K.
"""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

PRIOR_COLOR = "0.6"
POSTERIOR_COLOR = "C0"
DATA_COLOR = "k"
WARNING_COLOR = "#c00000"
DPI = 110


def _warn(fig, warning):
    """A red title on a figure of an unconverged run: a figure copied out of the report still says so."""
    if warning:
        fig.suptitle(warning, color=WARNING_COLOR, fontweight="bold")


def predictive_bands(mu, sigma, rng, nu=None):
    """Median expected spectrum and the 5/25/75/95 % quantiles of replicated data, per bias point.

    ``mu``, ``sigma``: (draws, points) posterior draws of the expected spectrum and the noise sd. Replicated data
    are mu + sigma * e with e standard normal (Student-t with ``nu`` (draws,) degrees of freedom when given), so the
    bands hold both the parameter uncertainty and the noise: about 90 % of the data should fall in the 90 % band.
    """
    mu = np.asarray(mu, float)
    sigma = np.broadcast_to(np.asarray(sigma, float), mu.shape)
    if nu is None:
        e = rng.standard_normal(mu.shape)
    else:
        e = rng.standard_t(np.asarray(nu, float)[:, None], size=mu.shape)
    q05, q25, q75, q95 = np.quantile(mu + sigma * e, [0.05, 0.25, 0.75, 0.95], axis=0)
    return {"median": np.median(mu, axis=0), "q05": q05, "q25": q25, "q75": q75, "q95": q95,
            "sigma": np.median(sigma, axis=0)}


def _draw_bands(ax, bias, bands):
    ax.fill_between(bias, bands["q05"], bands["q95"], color=POSTERIOR_COLOR, alpha=0.18, lw=0,
                    label="90 % predictive band")
    ax.fill_between(bias, bands["q25"], bands["q75"], color=POSTERIOR_COLOR, alpha=0.35, lw=0,
                    label="50 % predictive band")
    ax.plot(bias, bands["median"], color=POSTERIOR_COLOR, lw=1.2, label="posterior median of the model")


def _draw_data(ax, bias, y, y_err, mask=None):
    if mask is not None:
        bias, y = bias[mask], y[mask]
        y_err = None if y_err is None else y_err[mask]
    size = 2.5 if len(bias) > 300 else 3.5
    if y_err is not None:
        ax.errorbar(bias, y, yerr=y_err, fmt="o", ms=size, color=DATA_COLOR, ecolor="0.45", elinewidth=0.7,
                    label="data ± sigma", zorder=3)
    else:
        ax.plot(bias, y, "o", ms=size, color=DATA_COLOR, label="data", zorder=3)


def plot_fit(bias, y, y_err=None, bands=None, *, ylabel="dI/dV", warning=None):
    """Data with the posterior predictive band over bias, and standardised residuals below."""
    fig = Figure(figsize=(8.0, 6.2), layout="constrained")
    if bands is None:
        ax = fig.subplots()
        _draw_data(ax, bias, y, y_err)
        ax.set_xlabel("sample bias (mV)")
        ax.set_ylabel(ylabel)
        ax.legend(loc="best", fontsize=8)
        _warn(fig, warning)
        return fig
    ax, axr = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    _draw_bands(ax, bias, bands)
    _draw_data(ax, bias, y, y_err)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best", fontsize=8)
    resid = (y - bands["median"]) / bands["sigma"]
    outside = float(np.mean(np.abs(resid) > 2)) if len(resid) else 0.0
    axr.axhline(0, color="0.5", lw=0.8)
    for level in (-2, 2):
        axr.axhline(level, color=WARNING_COLOR, lw=0.8, ls="--")
    axr.plot(bias, resid, "o", ms=2.5, color=DATA_COLOR)
    axr.set_ylabel("(y − median μ) / σ")
    axr.set_xlabel("sample bias (mV)")
    axr.set_title(f"residuals: {100 * outside:.1f} % beyond ±2 (about 5 % expected for white noise)",
                  fontsize=9, loc="left")
    _warn(fig, warning)
    return fig


def peak_windows(peaks, bias_offset, bias):
    """Bias windows around the negative and positive SIS coherence peaks at ±(delta_tip + delta[k]) + V0.

    The half width beyond the outermost peaks is a fifth of the largest peak energy (at least five bias steps),
    wide enough to show each peak's shoulders and the dip beyond it.
    """
    p = np.asarray(peaks, float)
    step = float(np.median(np.abs(np.diff(bias)))) if len(bias) > 1 else 0.0
    pad = max(0.2 * p.max(), 5 * step)
    return [(bias_offset - p.max() - pad, bias_offset - p.min() + pad),
            (bias_offset + p.min() - pad, bias_offset + p.max() + pad)]


def plot_peak_zoom(bias, y, y_err, bands, peaks, labels, bias_offset=0.0, *, ylabel="dI/dV", warning=None):
    """Zoom on the SIS coherence peaks at eV = ±(delta_tip + delta[k]) (+ the fitted bias offset)."""
    fig = Figure(figsize=(8.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (lo, hi), sign in zip(axes, peak_windows(peaks, bias_offset, bias), (-1, 1)):
        mask = (bias >= lo) & (bias <= hi)
        if bands is not None:
            band = {k: v[mask] for k, v in bands.items()}
            _draw_bands(ax, bias[mask], band)
        _draw_data(ax, bias, y, y_err, mask)
        for i, (p, label) in enumerate(zip(peaks, labels)):
            ax.axvline(bias_offset + sign * p, color=f"C{i + 1}", ls=":", lw=1.2, label=label)
        ax.set_xlim(lo, hi)
        ax.set_xlabel("sample bias (mV)")
        ax.set_title("negative bias" if sign < 0 else "positive bias", fontsize=9)
    axes[0].set_ylabel(ylabel)
    axes[1].legend(loc="best", fontsize=7)
    _warn(fig, warning)
    return fig


def _kde(x, grid):
    """Gaussian kernel density of draws ``x`` on ``grid`` (Silverman's bandwidth); None for constant draws."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return None
    sd = x.std()
    iqr = np.subtract(*np.quantile(x, [0.75, 0.25]))
    spread = min(sd, iqr / 1.34) if iqr > 0 else sd
    h = 0.9 * spread * len(x) ** -0.2
    if not h > 0:
        return None
    density = np.zeros_like(grid)
    for chunk in np.array_split(x, max(1, len(x) // 2000)):  # bounded memory for long chains
        density += np.exp(-0.5 * ((grid[:, None] - chunk[None, :]) / h) ** 2).sum(axis=1)
    return density / (len(x) * h * np.sqrt(2 * np.pi))


def _window(post, prior):
    """x range of one overlay, and whether the prior had to be cut (prior far wider than the posterior)."""
    lo, hi = np.quantile(post, [0.005, 0.995])
    width = hi - lo
    if not width > 0:
        width = max(abs(float(np.mean(post))) * 0.01, 1e-6)
        lo, hi = lo - width, hi + width
    if prior is not None and len(prior) > 1:
        plo, phi = np.quantile(prior, [0.01, 0.99])
        if phi - plo <= 20 * width:
            return min(lo, plo), max(hi, phi), False
        return lo - 0.5 * width, hi + 0.5 * width, True
    return lo - 0.15 * width, hi + 0.15 * width, False


def plot_prior_posterior(panels, *, warning=None, ncols=4):
    """Prior (grey) against posterior (blue) for each parameter.

    ``panels``: list of dicts with ``name``, ``unit``, ``posterior`` (1-d draws) and ``prior`` (1-d draws or None).
    When a prior is far wider than its posterior the axis shows the posterior's range and says where the prior's
    98 % interval lies: a prior that looks flat there did not shape the result.
    """
    n = len(panels)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    height = 2.3 * nrows + 1.2
    fig = Figure(figsize=(2.9 * ncols + 0.3, height))
    # fixed margins (inches) rather than a layout engine: with no y ticks the spacing is simple, and the layout
    # engines cost seconds on a grid of a dozen panels
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.5 / height, top=1 - 0.75 / height, wspace=0.12,
                        hspace=0.6)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, panel in zip(axes, panels):
        post = np.asarray(panel["posterior"], float).ravel()
        post = post[np.isfinite(post)]
        prior = panel.get("prior")
        prior = None if prior is None else np.asarray(prior, float).ravel()
        if prior is not None:
            prior = prior[np.isfinite(prior)]
        lo, hi, cut = _window(post, prior)
        grid = np.linspace(lo, hi, 240)
        if np.ptp(post) > 0:
            bins = int(np.clip(np.sqrt(post.size), 10, 30))
            ax.hist(post, bins=bins, range=(post.min(), post.max()), density=True, histtype="stepfilled",
                    color=POSTERIOR_COLOR, alpha=0.6, label="posterior")
        else:
            ax.axvline(post[0], color=POSTERIOR_COLOR, lw=2, label="posterior (constant)")
        if prior is not None and len(prior) > 1:
            density = _kde(prior, grid)
            if density is not None:
                ax.fill_between(grid, density, color=PRIOR_COLOR, alpha=0.35, lw=0)
                ax.plot(grid, density, color=PRIOR_COLOR, lw=1.2, label="prior")
            else:
                ax.axvline(prior[0], color=PRIOR_COLOR, lw=2, label="prior (constant)")
            if cut:
                plo, phi = np.quantile(prior, [0.01, 0.99])
                ax.set_title(f"prior 98 %: [{plo:.3g}, {phi:.3g}], wider than shown", fontsize=7, color="0.35")
        else:
            ax.set_title("no prior draws", fontsize=7, color="0.35")
        ax.set_xlim(lo, hi)
        ax.set_yticks([])
        ax.xaxis.set_major_locator(MaxNLocator(4))
        unit = panel.get("unit")
        ax.set_xlabel(f"{panel['name']} ({unit})" if unit else panel["name"], fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles, labels, fontsize=7, loc="upper right")
    _warn(fig, warning)
    return fig


def _thinned_indices(x, n):
    flat = np.asarray(x).reshape(-1)
    idx = np.linspace(0, flat.size - 1, min(n, flat.size)).astype(int)
    return idx


def plot_ridge(delta_tip, deltas, labels, *, max_points=1500, warning=None):
    """The tip/sample ridge: delta_tip against each sample gap, one point per (thinned) draw, coloured by chain.

    In SIS spectra the peaks sit at delta_tip + delta[k], so the data fix the sum far better than each gap: the
    draws lie along the anti-diagonal (dashed, constant sum). ``delta_tip`` and each of ``deltas`` are
    (chain, draw) arrays in meV.
    """
    delta_tip = np.asarray(delta_tip, float)
    chains = np.repeat(np.arange(delta_tip.shape[0]), delta_tip.shape[1])
    idx = _thinned_indices(delta_tip, max_points)
    fig = Figure(figsize=(3.6 * len(deltas) + 0.4, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(deltas), squeeze=False)).ravel()
    t = delta_tip.ravel()
    for ax, d, label in zip(axes, deltas, labels):
        d = np.asarray(d, float).ravel()
        for c in np.unique(chains[idx]):
            sel = idx[chains[idx] == c]
            ax.plot(t[sel], d[sel], ".", ms=3, alpha=0.5, color=f"C{int(c) % 10}", label=f"chain {int(c)}")
        total = np.median(t + d)
        xs = np.array([t.min(), t.max()])
        ax.plot(xs, total - xs, color="0.3", ls="--", lw=1, label="constant sum")
        ax.set_xlim(*_pad(t))
        ax.set_ylim(*_pad(d))
        rho = float(np.corrcoef(t, d)[0, 1]) if np.ptp(t) > 0 and np.ptp(d) > 0 else float("nan")
        ax.set_title(f"ρ = {rho:.2f};  sd(Δ_tip + {label}) = {np.std(t + d):.2g} meV", fontsize=8)
        ax.set_xlabel("delta_tip (meV)")
        ax.set_ylabel(f"{label} (meV)")
    axes[0].legend(fontsize=7, loc="best", markerscale=2)
    _warn(fig, warning)
    return fig


def _pad(x):
    lo, hi = float(np.min(x)), float(np.max(x))
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(lo) * 1e-3, 1e-6)
    return lo - pad, hi + pad
