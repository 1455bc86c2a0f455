"""Spec parsing and validation: every rule gives a sentence that names the key."""

import pytest

from stsbayes.errors import InputError
from stsbayes.models.spec import Fitted, Prior, load_spec, parse_spec

GOOD = {"tip": {"kind": "dynes", "delta": 1.37, "gamma": 0.01},
        "sample": {"delta": [1.26, 1.41], "gamma": [0.004, 0.004], "weight": [0.6, 0.4], "floor": 0.0,
                   "bound_states": [{"eps": 0.05, "width": 0.02, "u2": 0.3, "v2": 0.1}]},
        "junction": {"T_eff": 0.35, "modulation_rms": 0.014, "g_n": 1.0, "bias_offset": 0.0},
        "observation": {"b0": 0.0, "b1": 0.0, "noise": "normal", "sigma": 0.02, "discrepancy": "none"}}


def mutate(path, value):
    import copy
    data = copy.deepcopy(GOOD)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def test_architecture_example_parses_and_round_trips():
    spec = parse_spec(GOOD)
    assert spec.n_gaps == 2 and not spec.metal_tip and len(spec.bound_states) == 1
    assert parse_spec(spec.as_dict()).as_dict() == spec.as_dict()


def test_priors_and_fitted_values():
    data = mutate(("tip", "delta"), {"dist": "normal", "mu": 1.37, "sigma": 0.05})
    data["junction"]["modulation_rms"] = {"fit": True, "value": 0.014, "dist": "lognormal", "mu": -4.3, "sigma": 0.3}
    data["sample"]["weight"] = {"dist": "dirichlet", "a": [1.0, 1.0]}
    spec = parse_spec(data)
    assert spec.tip["delta"] == Prior("normal", {"mu": 1.37, "sigma": 0.05})
    assert isinstance(spec.junction["modulation_rms"], Fitted)
    with pytest.raises(InputError, match="tip.delta is a prior"):
        spec.numbers()


def test_no_tip_table_means_metal():
    data = {k: v for k, v in GOOD.items() if k != "tip"}
    assert parse_spec(data).metal_tip


@pytest.mark.parametrize("path,value,message", [
    (("sample", "delta"), [-1.0, 1.41], "must be positive"),
    (("sample", "delta"), [1.41, 1.26], "strictly ascending"),
    (("sample", "weight"), [0.6, 0.6], "sum to 1"),
    (("sample", "gamma"), [0.004], "different lengths"),
    (("sample", "gamma"), [0.0001, 0.004], "below the 0.001 meV floor"),
    (("sample", "floor"), 1.0, r"floor = 1.0 must lie in \[0, 1\)"),
    (("sample", "colour"), 1.0, "unknown key sample.colour"),
    (("junction", "modulation_peak"), 0.02, "both modulation_rms and modulation_peak"),
    (("junction", "modulation_rms"), 0.001, "below the floor of 0.005 mV rms"),
    (("junction", "T_eff"), -0.1, "T_eff = -0.1 K must be positive"),
    (("junction", "T_eff"), "hot", "must be a number"),
    (("observation", "noise"), "cauchy", "not one of normal, student_t"),
    (("tip", "kind"), "metal", "remove them"),
    (("tip", "delta"), {"dist": "normal", "mu": 1.3}, "needs sigma"),
    (("tip", "delta"), {"dist": "cauchy", "mu": 1.3}, "use one of"),
    (("tip", "delta"), {"dist": "uniform", "lower": 2.0, "upper": 1.0}, "not below its upper bound"),
    (("tip", "delta"), {"dist": "normal", "mu": 1.3, "sigma": -1.0}, "sigma must be positive"),
])
def test_bad_specs_name_the_problem(path, value, message):
    with pytest.raises(InputError, match=message):
        parse_spec(mutate(path, value))


def test_bound_state_rules():
    with pytest.raises(InputError, match=r"bound_states\[0\].eps = -0.1 must be >= 0"):
        parse_spec(mutate(("sample", "bound_states"), [{"eps": -0.1, "width": 0.02, "u2": 0.1, "v2": 0.1}]))
    with pytest.raises(InputError, match=r"unknown key sample.bound_states\[0\].energy"):
        parse_spec(mutate(("sample", "bound_states"), [{"energy": 0.1}]))


def test_toml_file_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[tip\nkind = 'dynes'")
    with pytest.raises(InputError, match="not valid TOML"):
        load_spec(bad)
