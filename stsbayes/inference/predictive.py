"""Leave-one-out predictive comparison of hypotheses: a second, prior-insensitive view beside the evidence.

PSIS-LOO (arviz_stats ``loo``) estimates each hypothesis' expected log predictive density for a new point, and
stacking (arviz_stats ``compare``, method="stacking") finds the mixture of their predictive distributions that
predicts best. They answer "which predicts the data better", not "which is more probable": they never replace Z
(physics.md §6).
"""

import warnings

import numpy as np
import xarray as xr
from arviz_stats import compare, loo

from ..errors import InputError

OBSERVED = "y"


def _joined(tree, var_name):
    """A joint fit's pointwise terms (``<label>:y`` per spectrum) as one variable ``var_name`` over all points:
    leaving one point out of a series is leaving it out of its spectrum."""
    if "log_likelihood" not in tree.children or var_name in tree["log_likelihood"]:
        return tree
    ds = tree["log_likelihood"].to_dataset()
    parts = [ds[v] for v in ds.data_vars if v.endswith(f":{var_name}")]
    if not parts:
        return tree
    values = np.concatenate([np.asarray(p.transpose("chain", "draw", ...)).reshape(p.sizes["chain"],
                                                                                 p.sizes["draw"], -1)
                             for p in parts], axis=-1)
    joined = xr.Dataset({var_name: (("chain", "draw", "point"), values)},
                        coords={"chain": ds.chain, "draw": ds.draw})
    groups = {"posterior": tree["posterior"].to_dataset(), "log_likelihood": joined}
    return xr.DataTree.from_dict({k: xr.DataTree(v) for k, v in groups.items()})


def _loo(name, tree, var_name):
    tree = _joined(tree, var_name)
    if "log_likelihood" not in tree.children or var_name not in tree["log_likelihood"]:
        raise InputError(f"the posterior of {name!r} has no log_likelihood/{var_name}: sample it with the "
                         "pointwise log likelihood stored (e.g. pm.compute_log_likelihood)")
    with warnings.catch_warnings():
        # a large Pareto k̂ is reported as pareto_k_max (the reader judges it there), not as a warning
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto distribution")
        return loo(tree, pointwise=True, var_name=var_name)


def loo_summary(trees, var_name=OBSERVED):
    """Per hypothesis: elpd_loo, elpd_loo_se, pareto_k_max and the stacking weight, from posterior DataTrees.

    ``trees`` maps hypothesis name → DataTree with a ``log_likelihood`` group holding ``var_name`` (the same
    observations for every hypothesis). Stacking weights sum to 1; with one hypothesis its weight is 1.
    """
    if not trees:
        raise InputError("no posteriors to compare: give at least one hypothesis")
    results = {name: _loo(name, tree, var_name) for name, tree in trees.items()}
    sizes = {name: r.n_data_points for name, r in results.items()}
    if len(set(sizes.values())) > 1:
        raise InputError(f"the hypotheses were fitted to different numbers of points {sizes}: compare fits of the "
                         "same data only")
    if len(results) == 1:
        weights = dict.fromkeys(results, 1.0)
    else:
        table = compare(results, method="stacking", round_to="none")
        weights = {name: float(table.loc[name, "weight"]) for name in results}
    return {name: {"elpd_loo": float(r.elpd), "elpd_loo_se": float(r.se),
                   "pareto_k_max": float(np.max(r.pareto_k.values)), "stacking_weight": weights[name]}
            for name, r in results.items()}
