"""Convergence gates: any divergence, R-hat > 1.01 or bulk ESS < 400 marks a run unconverged (exit code 3)."""

import numpy as np
from arviz_stats import ess, rhat

MAX_R_HAT = 1.01
MIN_ESS_BULK = 400


def parameter_table(posterior, names):
    """Per scalar quantity (vectors flattened to ``name[k]``): draws as a (chain, draw) array."""
    table = {}
    for name in names:
        if name not in posterior:
            continue
        values = np.asarray(posterior[name])
        if values.ndim == 2:
            table[name] = values
        else:
            flat = values.reshape(values.shape[0], values.shape[1], -1)
            for k in range(flat.shape[2]):
                table[f"{name}[{k}]"] = flat[:, :, k]
    return table


def summarize(table):
    """mean, sd, q05, q50, q95, r_hat, ess_bulk for each (chain, draw) array."""
    out = {}
    for name, x in table.items():
        q05, q50, q95 = np.quantile(x, [0.05, 0.5, 0.95])
        constant = np.ptp(x) == 0
        out[name] = {"mean": float(x.mean()), "sd": float(x.std(ddof=1)), "q05": float(q05), "q50": float(q50),
                     "q95": float(q95), "r_hat": 1.0 if constant else float(rhat(x)),
                     "ess_bulk": float(x.size) if constant else float(ess(x, method="bulk"))}
    return out


def chain_modes(table, threshold=3.0):
    """Quantities whose chain means lie more than ``threshold`` within-chain sds apart: chains in other modes.

    Chains exploring one mode have means within ~sd/sqrt(ESS) of each other; a gap of several sds means at least
    one chain sits in a different mode (R-hat sees it too; this names the quantity)."""
    stuck = []
    for name, x in table.items():
        sd = float(np.sqrt(np.mean(x.var(axis=1))))
        if sd > 0 and x.shape[0] > 1:
            means = x.mean(axis=1)
            if (means.max() - means.min()) / sd > threshold:
                stuck.append(name)
    return stuck


def gates(parameters, divergences):
    """The convergence verdict recorded with every result."""
    r = [p["r_hat"] for p in parameters.values()]
    e = [p["ess_bulk"] for p in parameters.values()]
    max_r, min_e = (max(r), min(e)) if r else (1.0, 0.0)
    reasons = []
    if divergences:
        reasons.append(f"{divergences} divergent transitions")
    if max_r > MAX_R_HAT:
        reasons.append(f"R-hat {max_r:.3f} > {MAX_R_HAT}")
    if min_e < MIN_ESS_BULK:
        reasons.append(f"bulk ESS {min_e:.0f} < {MIN_ESS_BULK}")
    return {"divergences": int(divergences), "max_r_hat": float(max_r), "min_ess_bulk": float(min_e),
            "converged": not reasons, "failed_gates": reasons}
