"""The ``stsbayes`` command: a thin layer over the Python API (architecture.md, "Command line").

Exit codes: 0 success; 2 bad input or usage (one line on stderr, no traceback, nothing half-written);
3 a run finished but failed its convergence gates.
"""

import argparse
import sys

import numpy as np

from .errors import InputError

EXAMPLES = """\
examples:
  stsbayes simulate stsbayes/data/pb_pb.toml --bias-start -4 --bias-stop 4 --points 401 \\
           --noise 0.03 --seed 1 --out pb.csv
  stsbayes simulate spec.toml --format nanonis --out pb.dat      (a Nanonis-style .dat with a current channel)
  stsbayes info pb.dat --json

conventions: bias is the SAMPLE bias in mV (eV > 0 probes empty sample states); energies in meV; the lock-in
amplitude always carries its kind (modulation_rms or modulation_peak, V_peak = sqrt(2) V_rms).
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: one line, exit code 2
        raise InputError(f"{message} (see `{self.prog} --help`)")


def _add_simulate(sub):
    p = sub.add_parser(
        "simulate", help="simulate a spectrum from a spec (true values)",
        description="Compute the expected spectrum of SPEC.toml (every number is a true value) on a uniform bias "
                    "grid, optionally with noise, and write it as CSV (bias_mV,didv) or a Nanonis-style .dat. "
                    "Units: normalised conductance when the spec gives no junction.g_n, else µS.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    p.add_argument("spec", help="the spec (TOML), see architecture.md")
    p.add_argument("--bias-start", type=float, default=-5.0, help="first sample bias in mV (default -5)")
    p.add_argument("--bias-stop", type=float, default=5.0, help="last sample bias in mV (default 5)")
    p.add_argument("--points", type=int, default=401, help="number of bias points (default 401)")
    p.add_argument("--noise", type=float, default=None,
                   help="standard deviation of Gaussian noise in the output's units; overrides observation.sigma")
    p.add_argument("--seed", type=int, default=None, help="random seed for the noise")
    p.add_argument("--format", choices=["csv", "nanonis"], default="csv", help="output format (default csv)")
    p.add_argument("--out", required=True, help="output file")
    g = p.add_argument_group("Nanonis header (--format nanonis): what the microscope would record")
    g.add_argument("--temperature", type=float, metavar="K",
                   help="bath temperature written as T=<mK>mK (default junction.T_eff; readers take it as the lower "
                        "bound of the T_eff prior, so a bath below T_eff keeps the truth inside it)")
    g.add_argument("--setpoint-bias", type=float, metavar="MV",
                   help="setpoint bias in mV (default the bias of largest |V|)")
    g.add_argument("--setpoint-current", type=float, metavar="NA",
                   help="setpoint current in nA (default the written current at the setpoint bias; needed when the "
                        "setpoint bias lies outside the sweep)")
    p.set_defaults(func=run_simulate)


def run_simulate(args):
    from .io import write_csv, write_nanonis_dat
    from .models import load_spec, simulate

    if args.points < 2:
        raise InputError(f"--points {args.points} is too few: give at least 2 bias points")
    if not args.bias_stop > args.bias_start:
        raise InputError(f"--bias-stop ({args.bias_stop} mV) must be above --bias-start ({args.bias_start} mV)")
    if args.noise is not None and not args.noise >= 0:
        raise InputError(f"--noise {args.noise} must be a non-negative standard deviation")
    header = (args.temperature, args.setpoint_bias, args.setpoint_current)
    if args.format != "nanonis" and any(x is not None for x in header):
        raise InputError("--temperature, --setpoint-bias and --setpoint-current go into a Nanonis header: "
                         "add --format nanonis")
    if args.temperature is not None and not args.temperature > 0:
        raise InputError(f"--temperature {args.temperature} must be a positive bath temperature in K")
    if args.setpoint_current is not None and args.setpoint_bias is None:
        raise InputError("--setpoint-current needs --setpoint-bias: give the bias the current was set at")
    spec = load_spec(args.spec)
    bias = np.linspace(args.bias_start, args.bias_stop, args.points)
    didv = simulate(spec, bias, noise=args.noise, seed=args.seed)
    units = "uS" if "g_n" in spec.junction else "normalised"
    if args.format == "csv":
        write_csv(args.out, bias, didv)
    else:
        j = spec.junction
        modulation = ({"kind": "rms", "value_mV": j["modulation_rms"]} if "modulation_rms" in j
                      else {"kind": "peak", "value_mV": j["modulation_peak"]})
        temperature = j["T_eff"] if args.temperature is None else args.temperature
        write_nanonis_dat(args.out, bias, didv, units=units, temperature_K=temperature, modulation=modulation,
                          setpoint_bias_mV=args.setpoint_bias, setpoint_current_nA=args.setpoint_current,
                          comment=f"simulated by stsbayes from {args.spec}")
    print(f"wrote {args.out} ({args.points} points, {units})")
    return 0


def _add_sampling_options(p):
    g = p.add_argument_group("sampling")
    g.add_argument("--sampler", choices=["nutpie", "pymc", "numpyro"], default="nutpie",
                   help="NUTS implementation (default nutpie; numpyro runs the model through JAX)")
    g.add_argument("--backend", choices=["numba", "jax"], default="numba",
                   help="PyTensor backend nutpie compiles to (default numba)")
    g.add_argument("--chains", type=int, default=4, help="number of chains (default 4)")
    g.add_argument("--draws", type=int, default=1000, help="draws per chain after tuning (default 1000)")
    g.add_argument("--tune", type=int, default=1000, help="tuning draws per chain (default 1000)")
    g.add_argument("--max-draws", type=int, default=None, metavar="N",
                   help="a run that fails the gates only for want of length (R-hat or ESS, no divergence) is "
                        "sampled again with twice the draws, up to N per chain (default: --draws, no re-run)")
    g.add_argument("--seed", type=int, default=None, help="random seed: the same seed reproduces the run")
    g.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")


FIT_EPILOG = """gates: any divergence, R-hat > 1.01 or bulk ESS < 400 marks the result unconverged: it is written anyway,
labelled as such, and the exit code is 3. Outputs in --out: posterior.nc (ArviZ DataTree with provenance),
summary.json, report.html with figures.
"""


def _add_calibrate(sub):
    from .io.cli import add_data_options
    p = sub.add_parser(
        "calibrate-tip", help="calibrate a superconducting tip on a reference spectrum (Pb(111) by default)",
        description="Fit a reference spectrum measured with a superconducting tip: posterior over delta_tip, "
                    "gamma_tip, T_eff, the reference's gaps, background and noise. The tip posterior is stored as a "
                    "normalised density over (delta_tip, gamma_tip, T_eff): pass the result to `stsbayes fit --tip`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=FIT_EPILOG + "\nexample:\n  stsbayes calibrate-tip pb.dat --reference pb --out tip/\n")
    p.add_argument("file", help="the reference spectrum (.dat, .csv)")
    p.add_argument("--reference", default="pb",
                   help="pb (two Pb gaps, literature priors) or dynes:N (N gaps, priors from --spec)")
    p.add_argument("--spec", help="spec (TOML) with priors replacing the defaults")
    p.add_argument("--out", required=True, help="output directory")
    add_data_options(p)
    _add_sampling_options(p)
    p.set_defaults(func=run_calibrate)


def _add_fit(sub):
    from .io.cli import add_data_options
    p = sub.add_parser(
        "fit", help="fit a sample spectrum, with the tip's calibration as its prior",
        description="Fit a sample spectrum with the model of --spec. With --tip, the calibrated tip density is the "
                    "prior of (delta_tip, gamma_tip, T_eff), so the tip's uncertainty reaches the sample gaps.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=FIT_EPILOG + "\nexample:\n  stsbayes fit sample.dat --spec sample.toml --tip tip/posterior.nc --out fit/\n")
    p.add_argument("file", help="the sample spectrum (.dat, .csv)")
    p.add_argument("--spec", required=True, help="spec (TOML) with the sample's structure and priors")
    tip = p.add_mutually_exclusive_group()
    tip.add_argument("--tip", help="a calibrate-tip result (directory or its posterior.nc)")
    tip.add_argument("--metal-tip", action="store_true", help="a normal-metal tip (NIS)")
    p.add_argument("--out", required=True, help="output directory")
    add_data_options(p)
    _add_sampling_options(p)
    p.set_defaults(func=run_fit_command)


def _add_report(sub):
    p = sub.add_parser("report", help="(re)build report.html from a result directory",
                       description="Rebuild report.html and its figures from posterior.nc in DIR.")
    p.add_argument("dir", help="a result directory written by calibrate-tip or fit")
    p.set_defaults(func=run_report)


def _fit_inputs(args):
    from .inference import FitData
    from .io.cli import load_from_args
    for name in ("chains", "draws", "tune"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be at least 1")
    from .api import check_max_draws
    check_max_draws(args.max_draws, args.draws)
    spectrum = load_from_args(args.file, args)
    if not hasattr(spectrum, "didv"):
        raise InputError(f"{args.file} is a grid: select a pixel first (stsbayes.load(...).pixel(ix, iy))")
    data = FitData.from_spectrum(spectrum)
    record = {"file": str(args.file), "bias_sign": args.bias_sign, "channel": spectrum.metadata.get("channel"),
              "direction": args.direction}
    sampling = dict(sampler=args.sampler, chains=args.chains, draws=args.draws, tune=args.tune, seed=args.seed,
                    max_draws=args.max_draws,
                    progress=False if args.no_progress else None, fit_modulation=args.fit_modulation,
                    backend=args.backend, input_record=record)
    return data, sampling


def _finish(result, out):
    result.save(out)
    report = result.report(out)
    d = result.summary()["diagnostics"]
    state = "converged" if d["converged"] else "NOT CONVERGED (" + "; ".join(d["failed_gates"]) + ")"
    print(f"{result.summary()['command']}: {state}; results in {out} (report: {report})")
    ppc = d.get("ppc", {})
    if ppc and not ppc.get("passed", True):
        print(f"warning: the posterior predictive check failed (residual lag-1 autocorrelation "
              f"{ppc['residual_lag1_autocorr']:.2f}, limit {ppc['residual_lag1_limit']:.2f}; PIT KS p = "
              f"{ppc['pit_ks_pvalue']:.2g}): the model does not describe these data, so read its numbers with care",
              file=sys.stderr)
    return 0 if d["converged"] else 3


def run_calibrate(args):
    from .api import calibrate_tip
    from .models import load_spec
    data, sampling = _fit_inputs(args)
    spec = load_spec(args.spec) if args.spec else None
    return _finish(calibrate_tip(data, spec, reference=args.reference, **sampling), args.out)


def run_fit_command(args):
    from .api import fit
    from .models import load_spec
    spec = load_spec(args.spec)
    data, sampling = _fit_inputs(args)
    return _finish(fit(data, spec, tip=args.tip, metal_tip=args.metal_tip, **sampling), args.out)


def run_report(args):
    import json
    from pathlib import Path

    from .reports import render_from_dir
    summary = Path(args.dir) / "summary.json"
    try:
        command = json.loads(summary.read_text()).get("command") if summary.is_file() else None
    except (OSError, ValueError):
        command = None
    if command in ("compare", "series"):
        from .reports.compare import render_compare_from_dir
        print(f"report: {render_compare_from_dir(args.dir)}")
        return 0
    print(f"report: {render_from_dir(args.dir)}")
    return 0


COMPARE_EPILOG = """how to read the result:
  Each hypothesis constrains the bound states of one spectrum model: mzm one state pinned at zero energy,
  ysr one Yu-Shiba-Rusinov pair at +-eps, ysr2 two pairs (eps[0] <= eps[1]); --spec gives the background
  (gaps) and priors, its bound_states are replaced. Each is fitted with NUTS and its evidence ln Z estimated
  by SMC and by bridge sampling, each from >= 4 independent replicates (so its error is measured).
  Two questions get a verdict: zero_vs_offset (mzm against the class {ysr, ysr2}) and mzm_vs_ysr2.

verdict scale, on the conservative value |ln B| - 2 err:
  < 1 inconclusive,  1-3 positive,  3-5 strong,  > 5 very strong.
  The strength is the weakest of those at the nominal, halved and doubled bound-state prior widths.

caps: a verdict is capped at "positive" (capped_by in summary.json says why) when
  estimators   SMC and bridge disagree by more than 3 combined standard errors (an evidence is not trusted),
  ppc          the favoured side failed its posterior predictive check (a misfit inflates ln B for the most
               flexible hypothesis); a failed check of the disfavoured side is the data speaking against it and
               does not cap,
  convergence  a fit failed its gates (any divergence, R-hat > 1.01, bulk ESS < 400),
  prior        the halved/doubled priors weaken it, or their evidence is unknown: reweighting the draws was
               unreliable (Pareto k > 0.7) and the fit re-run at that prior did not converge (or was skipped
               with --no-prior-rerun).

--prior-odds changes the posterior model probabilities, never the Bayes factors or the verdict strengths
(only the within-class odds of ysr and ysr2 enter the class Bayes factor of zero_vs_offset).

exit codes: 0 all fits converged; 2 bad input (one line, nothing written); 3 some hypothesis did not converge
(results written and marked). Outputs in --out: posterior_<hypothesis>.nc, summary.json, report.html.

example:
  stsbayes compare defect.dat --hypotheses mzm,ysr,ysr2 --spec sample.toml --tip tip/posterior.nc --out cmp/
"""


def _add_compare(sub):
    from .io.cli import add_data_options
    p = sub.add_parser(
        "compare", help="compare ZECP hypotheses (mzm, ysr, ysr2) by their evidence, with verdicts",
        description="Fit one spectrum under each hypothesis about its zero-energy conductance peak and compare "
                    "them by marginal likelihood (two independent estimators), with LOO as a predictive view, "
                    "prior-sensitivity checks and capped verdicts (physics.md, section 6).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=COMPARE_EPILOG)
    p.add_argument("file", help="the sample spectrum (.dat, .csv)")
    p.add_argument("--hypotheses", default="mzm,ysr,ysr2",
                   help="comma-separated hypotheses; mzm and at least one of ysr, ysr2 (default mzm,ysr,ysr2)")
    p.add_argument("--spec", help="spec (TOML) with the background's structure and priors")
    tip = p.add_mutually_exclusive_group()
    tip.add_argument("--tip", help="a calibrate-tip result (directory or its posterior.nc)")
    tip.add_argument("--metal-tip", action="store_true", help="a normal-metal tip (NIS)")
    p.add_argument("--prior-odds", metavar="H=ODDS,...",
                   help="prior odds, e.g. mzm=1,ysr=1,ysr2=1 (default equal): change probabilities, not Bayes factors")
    p.add_argument("--out", required=True, help="output directory")
    g = p.add_argument_group("evidence")
    g.add_argument("--smc-draws", type=int, default=None, help="SMC particles per replicate (default 1000)")
    g.add_argument("--replicates", type=int, default=4, help="independent replicates per estimator (>= 4)")
    g.add_argument("--smc-start", choices=["reference", "prior"], default="reference",
                   help="SMC tempers from a broad reference fitted to the NUTS draws (default) or from the prior "
                        "(independent of NUTS but far slower)")
    g.add_argument("--no-prior-rerun", action="store_true",
                   help="where reweighting to the halved/doubled priors is unreliable, cap the verdict instead of "
                        "fitting that hypothesis again at the scaled prior (saves up to two fits per hypothesis)")
    _add_workers_option(g)
    add_data_options(p)
    _add_sampling_options(p)
    p.set_defaults(func=run_compare)


def _add_workers_option(group):
    group.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="processes fitting hypotheses side by side (default: one per core, at most one per "
                            "hypothesis, or $STSBAYES_WORKERS). Compiling, the mode search and both evidence "
                            "estimators use one core each, so hypotheses side by side keep every core busy; "
                            "1 runs them one after the other")


def _positive_int(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def run_compare(args):
    """`stsbayes compare`: all input checked before sampling, results written only when complete."""
    from .comparison import DEFAULT_SMC_DRAWS, check_hypotheses, check_prior_odds, compare, parse_prior_odds
    from .models import load_spec
    names = check_hypotheses(args.hypotheses)
    odds = check_prior_odds(parse_prior_odds(args.prior_odds) if args.prior_odds is not None else None, names)
    spec = load_spec(args.spec) if args.spec else None
    if args.tip:
        from .results import load_result
        load_result(args.tip).tip_density()  # a bad --tip fails now, before hours of sampling
    data, sampling = _fit_inputs(args)
    result = compare(data, spec, hypotheses=names, tip=args.tip, metal_tip=args.metal_tip, prior_odds=odds,
                     smc_draws=args.smc_draws or DEFAULT_SMC_DRAWS, replicates=args.replicates,
                     smc_start=args.smc_start, prior_rerun=not args.no_prior_rerun, workers=args.workers,
                     **sampling)
    return _finish_comparison(result, args.out, "compare")


def _finish_comparison(result, out, name):
    """Save a compare or series result and its report, print the verdict and its warnings; the exit code."""
    result.save(out)
    report = result.report(out)
    summary = result.summary()
    d = summary["diagnostics"]
    state = "converged" if d["converged"] else "NOT CONVERGED (" + ", ".join(d["unconverged"]) + ")"
    print(f"{name}: {state}; results in {out} (report: {report})")
    print(summary["statement"])
    print_quality(summary)
    return result.exit_code


def print_quality(summary):
    """The warnings and notes on a compare or series summary's quality, on stderr: predictive checks that cap a
    verdict, those that only count against the disfavoured side, disagreeing estimators, cautions."""
    d = summary["diagnostics"]
    blocks = [b for b in (summary.get("verdicts") or {}).values() if b]
    failed = d.get("ppc_failed") or []
    disfavoured = [set(b.get("ppc_failed_disfavoured") or []) for b in blocks]
    capped = [dis for b, dis in zip(blocks, disfavoured) if "ppc" in (b.get("capped_by") or [])]
    rejected = [h for h in failed if any(h in dis for dis in disfavoured) and all(h in dis for dis in capped)]
    others = [h for h in failed if h not in rejected]
    if others:
        print(f"warning: posterior predictive check failed for {', '.join(others)}: a verdict that favours "
              f"{'it' if len(others) == 1 else 'them'} is capped at positive", file=sys.stderr)
    if rejected:
        print(f"note: {', '.join(rejected)} also fail{'s' if len(rejected) == 1 else ''} the posterior predictive "
              f"check, on the disfavoured side: the data reject {'it' if len(rejected) == 1 else 'them'} beyond "
              "the Bayes factor, which caps nothing", file=sys.stderr)
    if d.get("estimators_disagree"):
        print(f"warning: evidence estimators disagree for {', '.join(d['estimators_disagree'])}: verdicts "
              "involving it are capped at positive", file=sys.stderr)
    for caution in d.get("cautions") or []:
        print(f"caution: {caution}", file=sys.stderr)


SERIES_EPILOG = """the three series (physics.md section 5), each mzm (zero energy) against ysr (offset energy):
  gn       one defect at several tip heights; manifest columns file, setpoint_current_nA, setpoint_bias_mV.
           Metallic tip, conductances in uS (no --normalize): each spectrum's normal-state conductance G_n
           follows from its setpoint, I_set = integral of dI/dV from 0 to V_set. mzm: a state pinned at 0 whose
           coupling width Gamma_j = kappa G_n,j grows with the junction conductance (zero-bias excess towards
           G0 = 77.5 uS); ysr: one pair at eps_j = |eps0 + alpha G_set,j| that splits as the tip approaches.
  field    one defect at several fields; column field_T. Metallic tip. mzm inert (eps 0, width and weight
           fixed); ysr responsive: eps(B) = eps0 + g_eff mu_B B / 2, width(B) = width0 + beta B, weight kept.
  defects  one spectrum per defect; column defect (a name). mzm: every eps_d = 0; ysr: eps_d from a
           population N(mu_eps, tau_eps) truncated at 0. Widths come from a population in both.
  field and defects may add the columns setpoint_current_nA and setpoint_bias_mV (metal tip, uS): each G_n
  then follows from its setpoint as in gn. Without them G_n is fitted per spectrum, and a window that stays
  inside the gap leaves it trading against the bound-state weights: include the coherence peaks, or the setpoints.
  Shared by all spectra: T_eff, the tip, the background gaps (from --spec) and the bias offset; each spectrum
  has its own noise. Verdicts, caps and exit codes as `stsbayes compare --help` explains (mzm_vs_ysr2 is null).

example:
  stsbayes series gn manifest.csv --hypotheses mzm,ysr --spec background.toml --metal-tip --temperature 0.4 \\
           --modulation-rms 0.07 --out gn/
  manifest.csv:
    file,setpoint_current_nA,setpoint_bias_mV
    gn_002nA.dat,2,7
    gn_116nA.dat,116,7
"""


def _add_series(sub):
    from .io.cli import add_data_options
    p = sub.add_parser(
        "series", help="compare mzm and ysr on a G_N series, a field series or many defects",
        description="Fit a set of spectra jointly under each hypothesis, with the law that ties them (setpoint, "
                    "field, defect population), and compare the hypotheses by their evidence as `compare` does.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SERIES_EPILOG)
    p.add_argument("kind", choices=["gn", "field", "defects"], help="which series")
    p.add_argument("manifest", help="CSV with one row per spectrum (see below)")
    p.add_argument("--hypotheses", default="mzm,ysr", help="mzm,ysr (the default and the only choice)")
    p.add_argument("--spec", help="spec (TOML) with the background's gaps, T_eff, modulation and priors")
    tip = p.add_mutually_exclusive_group()
    tip.add_argument("--tip", help="a calibrate-tip result (defects only)")
    tip.add_argument("--metal-tip", action="store_true", help="a normal-metal tip (required for gn and field)")
    p.add_argument("--prior-odds", metavar="H=ODDS,...", help="prior odds, e.g. mzm=1,ysr=1 (default equal)")
    p.add_argument("--out", required=True, help="output directory")
    g = p.add_argument_group("evidence")
    g.add_argument("--smc-draws", type=int, default=None, help="SMC particles per replicate (default 1000)")
    g.add_argument("--replicates", type=int, default=4, help="independent replicates per estimator (>= 4)")
    g.add_argument("--no-prior-rerun", action="store_true",
                   help="cap a verdict whose halved/doubled-prior reweighting is unreliable instead of refitting")
    _add_workers_option(g)
    add_data_options(p)
    _add_sampling_options(p)
    p.set_defaults(func=run_series)


def run_series(args):
    """`stsbayes series`: manifest, files and priors checked before sampling; results written only when complete."""
    from .comparison import DEFAULT_SMC_DRAWS, check_prior_odds, parse_prior_odds
    from .io.cli import overrides_from_args
    from .models import load_spec
    from .series import read_manifest, series
    if args.normalize:
        raise InputError("a series keeps absolute conductances (µS): drop --normalize")
    if args.direction == "both":
        raise InputError("fit one sweep direction per spectrum: --direction fwd or bwd")
    if args.fit_modulation:
        raise InputError("--fit-modulation is not supported for series: give the recorded modulation")
    for name in ("chains", "draws", "tune"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be at least 1")
    names = [h.strip() for h in args.hypotheses.split(",")]
    odds = check_prior_odds(parse_prior_odds(args.prior_odds) if args.prior_odds is not None else None, names)
    spec = load_spec(args.spec) if args.spec else None
    datas, conditions, files = read_manifest(args.kind, args.manifest, **overrides_from_args(args))
    record = {"manifest": str(args.manifest), "files": files, "bias_sign": args.bias_sign,
              "direction": args.direction}
    result = series(args.kind, datas, conditions, spec, hypotheses=names, tip=args.tip, metal_tip=args.metal_tip,
                    prior_odds=odds, chains=args.chains, draws=args.draws, tune=args.tune, seed=args.seed,
                    max_draws=args.max_draws,
                    progress=False if args.no_progress else None, smc_draws=args.smc_draws or DEFAULT_SMC_DRAWS,
                    replicates=args.replicates, prior_rerun=not args.no_prior_rerun, input_record=record,
                    workers=args.workers,
                    files=files)
    return _finish_comparison(result, args.out, f"series {args.kind}")


def build_parser():
    parser = _Parser(prog="stsbayes", description="Calibrated posteriors and model comparisons for tunnelling "
                     "spectra of superconductors.", formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog=EXAMPLES)
    from . import __version__
    parser.add_argument("--version", action="version", version=f"stsbayes {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_simulate(sub)
    _add_calibrate(sub)
    _add_fit(sub)
    _add_compare(sub)
    _add_series(sub)
    _add_report(sub)
    try:
        from .io.cli import add_info_command
    except ImportError:  # the reader is optional until stsbayes.io lands
        pass
    else:
        add_info_command(sub)
    return parser


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except InputError as err:
        print(f"stsbayes: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `stsbayes info FILE --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("stsbayes: interrupted; finished outputs are kept, nothing half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
