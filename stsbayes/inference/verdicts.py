"""Bayes factors, posterior model probabilities and verdicts from ln Z values: pure functions, no sampling.

physics.md §6 and architecture.md (the ``compare`` summary.json) define what is computed here. Two questions are
answered: zero vs offset energy (a comparison of classes: ``mzm`` against {``ysr``, ``ysr2``}) and ``mzm`` vs
``ysr2``. A verdict's strength reads the conservative value |ln B| − 2·err off the table of physics.md §6, takes the
weakest of the nominal, halved and doubled bound-state priors, and is capped at "positive" when the evidence
estimators disagree, a posterior predictive check failed, or a run did not converge.

Log evidences are passed as dicts keyed by hypothesis. A value may be a float (errors then come from ``errs``, or
are taken as exact), a ``(value, err)`` pair, or anything with ``.value`` and ``.err`` (an ``Evidence`` or the
``Combined`` result of :func:`stsbayes.inference.evidence.combine`).
"""

import math
from dataclasses import dataclass

import numpy as np
from arviz_stats.base import array_stats
from scipy.special import logsumexp

from ..errors import InputError

ZERO = "mzm"
OFFSET = ("ysr", "ysr2")
CANONICAL_ORDER = ("mzm", "ysr", "ysr2")
STRENGTHS = ("inconclusive", "positive", "strong", "very strong")
# lower edges of "positive", "strong", "very strong" on |ln B| − 2 err (physics.md §6); see strength()
STRENGTH_EDGES = (1.0, 3.0, 5.0)
CAP_STRENGTH = "positive"
PARETO_K_RERUN = 0.7
# PSIS fits the largest ~n/5 (small n) or 3√n weights; below this there are too few for a tail fit
MIN_REWEIGHT_DRAWS = 100
QUALITY_CAPS = ("estimators", "ppc", "convergence")
PRIOR_SCALINGS = ("halved", "doubled")


# ---------------------------------------------------------------------------------------------- inputs


def _value_err(entry, name, errs):
    if hasattr(entry, "value") and hasattr(entry, "err"):
        value, err = entry.value, entry.err
    elif isinstance(entry, (tuple, list)) and len(entry) == 2:
        value, err = entry
    else:
        value = entry
        err = 0.0 if errs is None else errs.get(name)
        if err is None:
            raise InputError(f"no Monte-Carlo error given for hypothesis {name!r}: add it to errs")
    value, err = float(value), float(err)
    if not math.isfinite(value) or not (math.isfinite(err) and err >= 0):
        raise InputError(f"ln Z of hypothesis {name!r} is {value} ± {err}: both must be finite and the error >= 0; "
                         "rerun its evidence estimate")
    return value, err


def _split(log_z, errs=None):
    """Two dicts, ln Z and its error per hypothesis, from any accepted form of ``log_z``."""
    if not log_z:
        raise InputError("no log evidences given: run at least one hypothesis")
    pairs = {name: _value_err(entry, name, errs) for name, entry in log_z.items()}
    return {n: v for n, (v, _) in pairs.items()}, {n: e for n, (_, e) in pairs.items()}


def _odds(names, prior_odds):
    """Prior odds per hypothesis: ``prior_odds`` where given, 1 (equal) otherwise; each must be > 0."""
    prior_odds = prior_odds or {}  # odds for hypotheses that were not run simply do not enter
    odds = {}
    for name in names:
        value = float(prior_odds.get(name, 1.0))
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"prior odds for {name!r} are {value}: give a positive number (e.g. --prior-odds "
                             "mzm=1,ysr=1,ysr2=1)")
        odds[name] = value
    return odds


def _ordered(names):
    known = [n for n in CANONICAL_ORDER if n in names]
    return known + [n for n in names if n not in known]


# ---------------------------------------------------------------------------------------------- Bayes factors


def _offset_class(values, prior_odds):
    """The offset hypotheses that were run, their ln(π_h Z_h), and their within-class posterior weights
    w_h = π_h Z_h / Σ π Z (π the within-class prior odds, equal by default)."""
    offset = [h for h in OFFSET if h in values]
    odds = _odds(offset, prior_odds)
    log_terms = np.array([math.log(odds[h]) + values[h] for h in offset])
    weights = np.exp(log_terms - logsumexp(log_terms)) if offset else np.array([])
    return offset, odds, log_terms, weights


def class_log_bf(log_z, prior_odds=None, errs=None):
    """ln B of the offset class {ysr, ysr2} (those that were run) against the zero-energy ``mzm``, with its error.

    ln B = ln[(Σ_offset π_h Z_h) / (Σ_offset π_h)] − ln Z_mzm, π the within-class prior odds (architecture.md).
    The error propagates the hypotheses' independent errors by the delta method: the log-sum-exp has gradient
    w_h = π_h Z_h / Σ π Z (the within-class posterior weights), so err² = Σ w_h² e_h² + e_mzm².
    Returns ``(ln_bf, err)``.
    """
    values, errors = _split(log_z, errs)
    offset, odds, log_terms, weights = _offset_class(values, prior_odds)
    if ZERO not in values or not offset:
        raise InputError(f"zero vs offset needs {ZERO!r} and at least one of {', '.join(OFFSET)}; got "
                         f"{', '.join(values)}: add the missing hypotheses to --hypotheses")
    log_class = logsumexp(log_terms) - math.log(sum(odds.values()))
    err = math.sqrt(float(np.sum((weights * np.array([errors[h] for h in offset])) ** 2)) + errors[ZERO] ** 2)
    return float(log_class - values[ZERO]), err


def best_offset_hypothesis(log_z, prior_odds=None, errs=None):
    """The offset hypothesis with the largest π_h Z_h (information only: the verdict is about the class)."""
    values, _ = _split(log_z, errs)
    offset, _, log_terms, _ = _offset_class(values, prior_odds)
    return offset[int(np.argmax(log_terms))] if offset else None


def log_bayes_factors(log_z, errs=None):
    """Every pair of hypotheses as ``{"A_vs_B": {"value": ln Z_A − ln Z_B, "err": √(e_A² + e_B²)}}``.

    Pairs follow architecture.md: in the order mzm, ysr, ysr2 (then any others as given), the later hypothesis is
    A and the earlier is B, so the keys read ``ysr_vs_mzm``, ``ysr2_vs_mzm``, ``ysr2_vs_ysr``.
    """
    values, errors = _split(log_z, errs)
    names = _ordered(list(values))
    out = {}
    for i, b in enumerate(names):
        for a in names[i + 1:]:
            out[f"{a}_vs_{b}"] = {"value": values[a] - values[b], "err": math.hypot(errors[a], errors[b])}
    return out


def posterior_probabilities(log_z, prior_odds=None, errs=None):
    """Posterior probability of each hypothesis, π_h Z_h / Σ π Z, under the stated prior odds (equal by default)."""
    values, _ = _split(log_z, errs)
    names = list(values)
    odds = _odds(names, prior_odds)
    log_terms = np.array([math.log(odds[h]) + values[h] for h in names])
    probs = np.exp(log_terms - logsumexp(log_terms))
    return {h: float(p) for h, p in zip(names, probs)}


# ---------------------------------------------------------------------------------------------- strengths


def strength(ln_bf, err):
    """Verdict strength from the conservative value x = |ln B| − 2·err (physics.md §6).

    x < 1 "inconclusive"; 1 ≤ x < 3 "positive"; 3 ≤ x ≤ 5 "strong"; x > 5 "very strong". The table's "< 1" and
    "> 5" fix the outer edges; its shared edge at 3 is given to the stronger class, like the edge at 1.
    """
    x = abs(float(ln_bf)) - 2.0 * float(err)
    if not math.isfinite(x):
        raise InputError(f"ln B = {ln_bf} ± {err} is not finite: check the evidence estimates")
    if x < STRENGTH_EDGES[0]:
        return STRENGTHS[0]
    if x < STRENGTH_EDGES[1]:
        return STRENGTHS[1]
    if x <= STRENGTH_EDGES[2]:
        return STRENGTHS[2]
    return STRENGTHS[3]


def _directed_strength(ln_bf_for, err):
    """Strength of the evidence *for* a side: ln B counted in its favour, so a reversal is "inconclusive"."""
    return strength(ln_bf_for, err) if ln_bf_for > 0 else STRENGTHS[0]


def weakest(*strengths):
    """The weakest of several strengths."""
    return min(strengths, key=STRENGTHS.index)


# ---------------------------------------------------------------------------------------------- verdicts


def _question_log_bf(question, log_z, prior_odds):
    """(ln B, err) of the question's alternative over the zero-energy state, and the two possible verdicts."""
    if question == "zero_vs_offset":
        return class_log_bf(log_z, prior_odds), ("offset", "zero")
    if question == "mzm_vs_ysr2":
        values, errors = _split(log_z)
        return (values["ysr2"] - values[ZERO], math.hypot(errors["ysr2"], errors[ZERO])), ("ysr2", ZERO)
    raise InputError(f"unknown question {question!r}: use zero_vs_offset or mzm_vs_ysr2")


def _involved(question, names):
    if question == "mzm_vs_ysr2":
        return [ZERO, "ysr2"]
    return [ZERO] + [h for h in OFFSET if h in names]


def _favoured_hypotheses(question, favoured, values, prior_odds):
    """The hypotheses a verdict rests on, whose predictive checks must pass for it to be trusted.

    A failed check of the *disfavoured* side is what the data say against it, not a misfit of the verdict's model:
    only the favoured side's checks cap (physics.md §3: a small systematic misfit hands the most flexible hypothesis
    a "very strong" verdict, so it is the winner whose adequacy matters). For the offset class these are the offset
    hypotheses that carry at least 1 % of the class's posterior weight.
    """
    if question == "mzm_vs_ysr2":
        return [favoured]
    if favoured == "zero":
        return [ZERO]
    offset, _, _, weights = _offset_class(values, prior_odds)
    return [h for h, w in zip(offset, weights) if w >= 0.01]


def _failed(flags, involved):
    """Whether any involved hypothesis has a False flag (None means not checked, which does not cap)."""
    if flags is None:
        return False
    if isinstance(flags, bool):
        return not flags
    return any(flags.get(h) is False for h in involved)


def verdict(question, log_z, *, errs=None, prior_odds=None, halved=None, doubled=None, estimators_agree=None,
            ppc_passed=None, converged=None, prior_unreliable=None):
    """One verdict block of summary.json (architecture.md), or None when the question does not apply.

    ``question`` is "zero_vs_offset" or "mzm_vs_ysr2". ``halved`` / ``doubled`` are the log evidences of every
    hypothesis with the contested bound-state prior widths halved / doubled (``(value, err)`` pairs or objects
    with .value/.err such as :func:`prior_reweighting`'s results; plain floats count as exact); None leaves
    ``prior_sensitivity`` null (not assessed). ``estimators_agree``, ``ppc_passed`` and ``converged`` are a bool or
    a dict per hypothesis. A False estimator agreement or convergence for any hypothesis entering the question caps
    the strength at "positive"; a failed predictive check caps it only on the favoured side (see
    :func:`_favoured_hypotheses`), and one on the disfavoured side is listed in ``ppc_failed_disfavoured``.

    ``ln_bf`` ≥ 0 counts for ``favoured``; the ``prior_sensitivity`` ln_bf and strength count for the same side,
    so a reversal shows as a negative ln_bf and "inconclusive". ``capped_by`` lists "prior" when the halved or
    doubled prior weakened the strength, and every failed quality condition ("estimators", "ppc", "convergence")
    — whether or not it lowered this particular verdict, because each one is a reason not to trust it (for "ppc"
    only the favoured side's checks count).

    ``prior_unreliable`` (a bool or a dict per hypothesis) marks hypotheses whose halved/doubled evidences could
    not be trusted (reweighting with Pareto k̂ > 0.7 and no re-run): the prior sensitivity of a verdict involving
    one is unknown, so the verdict is capped at "positive" with reason "prior" and the block lists them in
    ``prior_sensitivity_unreliable``.
    """
    values, errors = _split(log_z, errs)
    if question == "mzm_vs_ysr2" and not {ZERO, "ysr2"} <= set(values):
        return None
    if question == "zero_vs_offset" and (ZERO not in values or not any(h in values for h in OFFSET)):
        return None
    log_z = {h: (values[h], errors[h]) for h in values}
    (ln_bf, err), (alternative, null) = _question_log_bf(question, log_z, prior_odds)
    favoured, sign = (alternative, 1.0) if ln_bf >= 0 else (null, -1.0)
    nominal = _directed_strength(sign * ln_bf, err)

    block = {"favoured": favoured, "ln_bf": sign * ln_bf, "err": err, "strength": nominal}
    if question == "zero_vs_offset":
        block["best_offset_hypothesis"] = best_offset_hypothesis(log_z, prior_odds)

    capped_by = []
    final = nominal
    if halved is not None and doubled is not None:
        sensitivity = {}
        for label, scaled in zip(PRIOR_SCALINGS, (halved, doubled)):
            (ln_s, err_s), _ = _question_log_bf(question, _complete(scaled, values, label), prior_odds)
            sensitivity[label] = {"strength": _directed_strength(sign * ln_s, err_s), "ln_bf": sign * ln_s}
        block["prior_sensitivity"] = sensitivity
        final = weakest(nominal, *(s["strength"] for s in sensitivity.values()))
        if final != nominal:
            capped_by.append("prior")
    elif halved is not None or doubled is not None:
        raise InputError("prior sensitivity needs both the halved and the doubled log evidences: give both or neither")
    else:
        block["prior_sensitivity"] = None

    involved = _involved(question, values)
    unreliable = _flagged(prior_unreliable, involved)
    if unreliable:
        block["prior_sensitivity_unreliable"] = unreliable
        if "prior" not in capped_by:
            capped_by.append("prior")
        final = weakest(final, CAP_STRENGTH)
    favoured_side = _favoured_hypotheses(question, favoured, values, prior_odds)
    for reason, flags in zip(QUALITY_CAPS, (estimators_agree, ppc_passed, converged)):
        if _failed(flags, favoured_side if reason == "ppc" else involved):
            capped_by.append(reason)
            final = weakest(final, CAP_STRENGTH)
    rejected = [h for h in involved if h not in favoured_side and _failed(ppc_passed, [h])]
    if rejected:
        block["ppc_failed_disfavoured"] = rejected
    block["strength"] = final
    block["capped_by"] = capped_by or None
    return block


def _flagged(flags, involved):
    """The involved hypotheses with a True flag (a plain bool flags all of them)."""
    if not flags:
        return []
    if isinstance(flags, bool):
        return list(involved)
    return [h for h in involved if flags.get(h)]


def _complete(scaled, values, label):
    """The scaled-prior log evidences, checked to cover every hypothesis of the nominal ones."""
    missing = [h for h in values if h not in scaled]
    if missing:
        raise InputError(f"the {label} prior's log evidences lack {', '.join(missing)}: give every hypothesis")
    return {h: _value_err(scaled[h], h, None) for h in values}


def verdicts(log_z, **kwargs):
    """The ``verdicts`` block of summary.json: ``zero_vs_offset`` and ``mzm_vs_ysr2`` (each None if not applicable).

    Keyword arguments are those of :func:`verdict`.
    """
    return {q: verdict(q, log_z, **kwargs) for q in ("zero_vs_offset", "mzm_vs_ysr2")}


# ---------------------------------------------------------------------------------------------- statement

_CAP_WORDS = {"estimators": "disagreeing evidence estimators", "ppc": "a failed posterior predictive check",
              "convergence": "an unconverged run"}
_SIDE_WORDS = {"offset": "an offset-energy origin", "zero": "a zero-energy state"}
# a series asks the zero-vs-offset question through how the peak behaves across the spectra (physics.md §5)
SERIES_SIDE_WORDS = {
    "gn": {"offset": "a YSR state whose energy moves with G_N (ysr)",
           "zero": "a zero-energy state broadened by the coupling (mzm)"},
    "field": {"offset": "a field-responsive state (ysr)", "zero": "a field-inert zero-energy state (mzm)"},
    "defects": {"offset": "defect states at offset energies (ysr)",
                "zero": "a zero-energy state at every defect (mzm)"},
}


def side_words(series_kind=None):
    """The words for the two sides of zero_vs_offset: a single spectrum's, or those of a series kind."""
    if series_kind is None:
        return _SIDE_WORDS
    if series_kind not in SERIES_SIDE_WORDS:
        raise InputError(f"unknown series kind {series_kind!r}: use {', '.join(SERIES_SIDE_WORDS)}")
    return SERIES_SIDE_WORDS[series_kind]


def _number(x):
    return f"{x:.1f}" if abs(x) >= 0.1 or x == 0 else f"{x:.2g}"


def _words(items):
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _prior_clause(block):
    unreliable = block.get("prior_sensitivity_unreliable")
    if unreliable:
        return (f"but its sensitivity to the bound-state priors is unknown: reweighting {_words(unreliable)} to the "
                f"halved and doubled priors is unreliable (Pareto k̂ > {PARETO_K_RERUN}) and no converged re-run at "
                "those priors replaced it, so it is capped at positive")
    sensitivity = block.get("prior_sensitivity")
    if sensitivity is None:
        return "its sensitivity to the bound-state priors was not assessed"
    reversed_under = [k for k, s in sensitivity.items() if s["ln_bf"] < 0]
    if reversed_under:
        return f"but it reverses when the bound-state priors are {_words(reversed_under)}"
    if "prior" in (block.get("capped_by") or []):
        weakest_strength = weakest(*(s["strength"] for s in sensitivity.values()))
        weakened = [k for k, s in sensitivity.items() if s["strength"] == weakest_strength]
        nominal = strength(block["ln_bf"], block["err"])
        return f"weakened from {nominal} when the bound-state priors are {_words(weakened)}"
    return "stable under halving and doubling the bound-state priors"


def _uncapped_strength(block):
    """The strength before the quality caps: the weakest of the nominal and the scaled priors."""
    strengths = [strength(block["ln_bf"], block["err"])]
    strengths += [s["strength"] for s in (block.get("prior_sensitivity") or {}).values()]
    return weakest(*strengths)


def _sentence(question, block, series_kind=None):
    if question == "zero_vs_offset":
        sides = side_words(series_kind)
        favoured = sides[block["favoured"]]
        other = sides["zero" if block["favoured"] == "offset" else "offset"]
    else:
        favoured, other = block["favoured"], ("mzm" if block["favoured"] == "ysr2" else "ysr2")
    details = [block["strength"]]
    if block.get("best_offset_hypothesis") and block["favoured"] == "offset":
        details.append(f"best offset hypothesis {block['best_offset_hypothesis']}")
    quality = [_CAP_WORDS[c] for c in (block.get("capped_by") or []) if c in _CAP_WORDS]
    if quality:
        binding = STRENGTHS.index(_uncapped_strength(block)) > STRENGTHS.index(CAP_STRENGTH)
        details.append(f"{'capped at ' + CAP_STRENGTH + ' by' if binding else 'caution:'} {_words(quality)}")
    rejected = block.get("ppc_failed_disfavoured")
    if rejected and block["strength"] != STRENGTHS[0]:
        one = len(rejected) == 1
        details.append(f"{_words(rejected)} also fail{'s' if one else ''} {'its' if one else 'their'} predictive "
                       "check")
    ln_b = f"ln B = {_number(block['ln_bf'])} ± {_number(block['err'])}"
    if block["strength"] == STRENGTHS[0]:
        lead = f"The data do not decide between {favoured} and {other}: {ln_b} in favour of {favoured}"
    else:
        lead = f"The data favour {favoured} over {other}: {ln_b}"
    return f"{lead} ({'; '.join(details)}), {_prior_clause(block)}."


def statement(verdicts_block, series_kind=None):
    """One plain sentence per answered question, e.g. architecture.md's "The data favour an offset-energy origin
    over a zero-energy state: ln B = 13.4 ± 0.2 (very strong; best offset hypothesis ysr2), stable under halving
    and doubling the bound-state priors." A series (``series_kind`` gn, field or defects) names its two sides by
    how the peak behaves across the spectra, e.g. "a field-responsive state (ysr)".
    """
    sentences = [_sentence(q, b, series_kind) for q, b in verdicts_block.items() if b is not None]
    if not sentences:
        raise InputError("no verdicts to state: the comparison needs mzm and at least one offset hypothesis")
    return " ".join(sentences)


# ---------------------------------------------------------------------------------------------- prior reweighting


@dataclass(frozen=True)
class Reweighted:
    """ln Z at a new prior from reweighting: ``value`` ± ``err`` (total), of which ``reweighting_err`` comes from
    the reweighting itself; ``pareto_k`` of the weights and ``needs_rerun`` when k̂ > 0.7 and no trustworthy
    re-run replaced it. ``rerun`` marks a value that comes from a fit at the scaled prior, not from reweighting
    (``pareto_k`` is then the reweighting's k̂ that called for it)."""

    value: float
    err: float
    reweighting_err: float
    pareto_k: float
    needs_rerun: bool
    rerun: bool = False


def prior_reweighting(log_z, log_prior_draws_old, log_prior_draws_new, *, r_eff=1.0):
    """ln Z under a new prior by importance reweighting the posterior draws of the old one (physics.md §6).

    Z' = Z · E_post[p'(θ)/p(θ)]. ``log_z`` is ln Z at the old prior: a float, a ``(value, err)`` pair or an object
    with .value/.err. ``log_prior_draws_old`` / ``_new`` are the log prior densities of the same posterior draws
    under the old and new priors, in the same parametrisation (any Jacobian cancels in the ratio). The new priors
    need full support where the old posterior lives (no hard upper bounds), or the ratio is undefined.

    The expectation is the Pareto-smoothed (PSIS) mean of the ratios, using arviz_stats' ``psislw``; the weights'
    Pareto k̂ > 0.7 means the estimate is unreliable and the fit must be re-run at the new prior
    (``needs_rerun``). The reweighting's own Monte-Carlo error of ln Z' is √(Σ w̃² − 1/n)/√r_eff with w̃ the
    normalised smoothed weights (the delta method on the mean ratio); ``err`` adds it in quadrature to the error
    of ``log_z``. ``r_eff`` is ESS/draws of the posterior draws (1 for independent draws).
    """
    log_z_old, err_old = _value_err(log_z, "the old prior", None)
    old = np.ravel(np.asarray(log_prior_draws_old, dtype=float))
    new = np.ravel(np.asarray(log_prior_draws_new, dtype=float))
    if old.shape != new.shape or old.size < MIN_REWEIGHT_DRAWS:
        raise InputError(f"the old and new log priors must be on the same draws, at least {MIN_REWEIGHT_DRAWS} of "
                         f"them (got {old.size} and {new.size}): evaluate both priors on the same posterior draws")
    if not (np.all(np.isfinite(old)) and np.all(np.isfinite(new))):
        raise InputError("a log prior density is not finite at some posterior draw: the new prior needs full "
                         "support where the posterior lives (no hard bounds), or re-run the fit at the new prior")
    if not (0 < r_eff <= 1.5):
        raise InputError(f"r_eff = {r_eff} must be ESS/draws, a positive number near or below 1")
    log_ratio = new - old
    if np.ptp(log_ratio) == 0:
        # the priors differ by a constant on these draws: the weights are equal, exact, and have no tail to fit
        return Reweighted(log_z_old + float(log_ratio[0]), err_old, 0.0, 0.0, False)
    # psislw smooths the weights exp(-x) and normalises them; pass -log_ratio to weight by the ratio itself
    log_w, pareto_k = array_stats.psislw(-log_ratio, r_eff=r_eff, axis=-1)
    # the normalisation hides the smoothed sum: recover it from the smallest ratio, which smoothing (tail only)
    # leaves untouched, so log_w[i] = log_ratio[i] − log Σ smoothed ratios
    anchor = int(np.argmin(log_ratio))
    log_mean_ratio = float(log_ratio[anchor] - log_w[anchor] - math.log(log_ratio.size))
    weights = np.exp(log_w)
    extra = math.sqrt(max(float(np.sum(weights**2)) - 1.0 / log_ratio.size, 0.0) / r_eff)
    return Reweighted(log_z_old + log_mean_ratio, math.hypot(err_old, extra), extra, float(pareto_k),
                      bool(pareto_k > PARETO_K_RERUN))
