"""The spec: one description of a model, for simulate and fit alike (architecture.md, "The spec").

A spec is a TOML file or the same structure as a dict. Each number is a true value for ``simulate``; for ``fit``
it may instead be a prior table such as ``{dist = "normal", mu = 1.3, sigma = 0.1}``. :func:`parse_spec` checks
every key, unit range and consistency rule and raises :class:`~stsbayes.errors.InputError` with a sentence that
says what to change.
"""

from dataclasses import dataclass, field
import math
from pathlib import Path
import tomllib

from ..errors import InputError
from .constants import GAMMA_FLOOR, MODULATION_RMS_FLOOR, WIDTH_FLOOR

PRIOR_PARAMS = {
    "normal": {"mu", "sigma"},
    "lognormal": {"mu", "sigma"},
    "halfnormal": {"sigma"},
    "truncnormal": {"mu", "sigma", "lower", "upper"},
    "uniform": {"lower", "upper"},
    "beta": {"alpha", "beta"},
    "dirichlet": {"a"},
}
PRIOR_REQUIRED = {"truncnormal": {"mu", "sigma"}}

# table -> key -> kind: "scalar" a number or prior, "vector" a list (of numbers or priors) or a prior,
# "choice:<a|b>" a string, "int" a count, "tables" the bound-state list.
SCHEMA = {
    "tip": {"kind": "choice:dynes|metal", "delta": "scalar", "gamma": "scalar"},
    "sample": {"delta": "vector", "gamma": "vector", "weight": "vector", "floor": "scalar",
               "bound_states": "tables"},
    "junction": {"T_eff": "scalar", "modulation_rms": "scalar", "modulation_peak": "scalar", "g_n": "scalar",
                 "bias_offset": "scalar", "bias_offset_bwd": "scalar"},
    "observation": {"b0": "scalar", "b1": "scalar", "noise": "choice:normal|student_t", "nu": "scalar",
                    "sigma": "scalar", "sigma_scale": "scalar", "discrepancy": "choice:none|ar1|gp",
                    "discrepancy_scale": "scalar", "discrepancy_length": "scalar"},
}
BOUND_STATE_KEYS = ("eps", "width", "u2", "v2")
UNITS = {"delta": "meV", "gamma": "meV", "eps": "meV", "width": "meV", "u2": "meV", "v2": "meV", "T_eff": "K",
         "modulation_rms": "mV", "modulation_peak": "mV", "bias_offset": "mV", "bias_offset_bwd": "mV",
         "discrepancy_length": "mV", "b1": "1/mV"}


@dataclass(frozen=True)
class Prior:
    """A prior given in a spec: a PyMC distribution name and its parameters (PyMC's names)."""

    dist: str
    params: dict

    def as_dict(self):
        return {"dist": self.dist, **self.params}


@dataclass(frozen=True)
class Fitted:
    """A quantity marked ``fit = true`` (e.g. a doubtful modulation amplitude): fitted, with an optional prior
    and the recorded value as a starting point."""

    value: float | None = None
    prior: Prior | None = None


@dataclass
class Spec:
    """A parsed, validated spec. Tables hold numbers, :class:`Prior` or :class:`Fitted` objects."""

    tip: dict = field(default_factory=lambda: {"kind": "metal"})
    sample: dict = field(default_factory=dict)
    junction: dict = field(default_factory=dict)
    observation: dict = field(default_factory=dict)

    @property
    def metal_tip(self):
        return self.tip.get("kind", "dynes") == "metal"

    @property
    def n_gaps(self):
        return len(self.sample.get("delta", []))

    @property
    def bound_states(self):
        return self.sample.get("bound_states", [])

    def as_dict(self):
        """The spec as plain data (priors as tables), e.g. for provenance records."""
        def plain(v):
            if isinstance(v, Prior):
                return v.as_dict()
            if isinstance(v, Fitted):
                out = {"fit": True}
                if v.value is not None:
                    out["value"] = v.value
                if v.prior is not None:
                    out.update(v.prior.as_dict())
                return out
            if isinstance(v, list):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v
        return {name: plain(getattr(self, name)) for name in ("tip", "sample", "junction", "observation")
                if getattr(self, name)}

    def numbers(self, where="simulate"):
        """All values as numbers; raises when a value is a prior (``simulate`` needs true values)."""
        def check(path, v):
            if isinstance(v, (Prior, Fitted)):
                raise InputError(f"{path} is a prior in the spec, but {where} needs a true value: give a number")
        for table, keys in SCHEMA.items():
            for key, v in getattr(self, table).items():
                if key == "bound_states":
                    for i, bs in enumerate(v):
                        for k2, x in bs.items():
                            check(f"sample.bound_states[{i}].{k2}", x)
                elif isinstance(v, list):
                    for i, x in enumerate(v):
                        check(f"{table}.{key}[{i}]", x)
                else:
                    check(f"{table}.{key}", v)
        return self


def load_spec(source):
    """A :class:`Spec` from a TOML path, a TOML string, a dict, or an existing Spec."""
    if isinstance(source, Spec):
        return source
    if isinstance(source, dict):
        return parse_spec(source)
    path = Path(source)
    if not path.exists():
        raise InputError(f"spec file {path} does not exist: give the path of a TOML spec (see architecture.md)")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"spec file {path} is not valid TOML ({err}): fix the syntax") from None
    return parse_spec(data)


def _number(path, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(f"{path} must be a number, not {v!r}")
    if not math.isfinite(v):
        raise InputError(f"{path} is {v}: give a finite number")
    return float(v)


def _prior(path, table):
    table = dict(table)
    dist = table.pop("dist", None)
    if dist not in PRIOR_PARAMS:
        raise InputError(f"{path} has prior dist = {dist!r}; use one of {', '.join(PRIOR_PARAMS)}")
    unknown = set(table) - PRIOR_PARAMS[dist]
    if unknown:
        raise InputError(f"{path}: a {dist} prior takes {', '.join(sorted(PRIOR_PARAMS[dist]))}, "
                         f"not {', '.join(sorted(unknown))}")
    missing = PRIOR_REQUIRED.get(dist, PRIOR_PARAMS[dist]) - set(table)
    if missing:
        raise InputError(f"{path}: a {dist} prior needs {', '.join(sorted(missing))}")
    params = {}
    for k, x in table.items():
        if dist == "dirichlet":
            if not isinstance(x, list) or not x:
                raise InputError(f"{path}: a dirichlet prior needs a = [a1, a2, ...]")
            params[k] = [_number(f"{path}.{k}", y) for y in x]
            if min(params[k]) <= 0:
                raise InputError(f"{path}: dirichlet concentrations must be positive")
        else:
            params[k] = _number(f"{path}.{k}", x)
    for k in ("sigma", "alpha", "beta"):
        if k in params and params[k] <= 0:
            raise InputError(f"{path}: the prior's {k} must be positive, not {params[k]}")
    lower, upper = params.get("lower"), params.get("upper")
    if lower is not None and upper is not None and lower >= upper:
        raise InputError(f"{path}: the prior's lower bound {lower} is not below its upper bound {upper}")
    return Prior(dist, params)


def _scalar(path, v):
    """A number, a prior table, or a ``fit = true`` table."""
    if isinstance(v, dict):
        v = dict(v)
        if v.pop("fit", False):
            value = v.pop("value", None)
            value = None if value is None else _number(f"{path}.value", value)
            return Fitted(value=value, prior=_prior(path, v) if v else None)
        return _prior(path, v)
    return _number(path, v)


def _vector(path, v):
    if isinstance(v, dict):
        return _prior(path, v)
    if not isinstance(v, list) or not v:
        raise InputError(f"{path} must be a non-empty list such as [1.26, 1.41]")
    return [_scalar(f"{path}[{i}]", x) for i, x in enumerate(v)]


def _check_unknown(path, given, allowed):
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InputError(f"unknown key {path}{unknown[0]} in the spec; allowed here: {', '.join(allowed)}")


def parse_spec(data):
    """Validate a spec given as plain data (dict from TOML/JSON) and return a :class:`Spec`."""
    if not isinstance(data, dict):
        raise InputError("a spec must be a table of tables ([tip], [sample], [junction], [observation])")
    _check_unknown("", data, SCHEMA)
    spec = Spec(tip={"kind": "metal"} if "tip" not in data else {})
    for table, keys in SCHEMA.items():
        given = data.get(table, {})
        if not isinstance(given, dict):
            raise InputError(f"[{table}] must be a table")
        _check_unknown(f"{table}.", given, keys)
        out = getattr(spec, table)
        for key, v in given.items():
            path = f"{table}.{key}"
            kind = keys[key]
            if kind.startswith("choice:"):
                choices = kind.split(":")[1].split("|")
                if v not in choices:
                    raise InputError(f"{path} = {v!r} is not one of {', '.join(choices)}")
                out[key] = v
            elif kind == "scalar":
                out[key] = _scalar(path, v)
            elif kind == "vector":
                out[key] = _vector(path, v)
            elif kind == "tables":
                if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
                    raise InputError(f"{path} must be a list of tables ([[sample.bound_states]])")
                states = []
                for i, bs in enumerate(v):
                    _check_unknown(f"{path}[{i}].", bs, BOUND_STATE_KEYS)
                    states.append({k: _scalar(f"{path}[{i}].{k}", x) for k, x in bs.items()})
                out[key] = states
    spec.tip.setdefault("kind", "dynes")
    _validate(spec)
    return spec


def _values(v):
    """The plain numbers inside a scalar or vector entry (priors skipped)."""
    if isinstance(v, list):
        return [x for x in v if isinstance(x, float)]
    return [v] if isinstance(v, float) else []


def _validate(spec):
    s, j, o, t = spec.sample, spec.junction, spec.observation, spec.tip
    if spec.metal_tip and ("delta" in t or "gamma" in t):
        raise InputError("tip.kind is \"metal\" but tip.delta/tip.gamma are given: remove them or use kind = \"dynes\"")
    lengths = {k: len(s[k]) for k in ("delta", "gamma", "weight") if isinstance(s.get(k), list)}
    if len(set(lengths.values())) > 1:
        raise InputError("sample.delta, sample.gamma and sample.weight have different lengths "
                         f"({', '.join(f'{k}: {n}' for k, n in lengths.items())}): give one entry per gap")
    for key in ("delta",):
        for v in _values(s.get(key)) + _values(t.get(key)):
            if v <= 0:
                raise InputError(f"a gap (delta = {v} meV) must be positive")
    deltas = s.get("delta")
    if isinstance(deltas, list) and all(isinstance(x, float) for x in deltas):
        if any(b <= a for a, b in zip(deltas, deltas[1:])):
            raise InputError(f"sample.delta = {deltas} must be strictly ascending (ordered gaps avoid relabelling)")
    for path, v in [("sample.gamma", x) for x in _values(s.get("gamma"))] + [("tip.gamma", x) for x in _values(t.get("gamma"))]:
        if v < GAMMA_FLOOR:
            raise InputError(f"{path} = {v} meV is below the {GAMMA_FLOOR} meV floor that the grid's accuracy needs "
                             "(physics.md §4): use at least 0.001")
    weights = s.get("weight")
    if isinstance(weights, list) and all(isinstance(x, float) for x in weights):
        if min(weights) < 0 or abs(sum(weights) - 1.0) > 1e-6:
            raise InputError(f"sample.weight = {weights} must be non-negative and sum to 1 (they sum to "
                             f"{sum(weights):.6g})")
    for v in _values(s.get("floor")):
        if not 0.0 <= v < 1.0:
            raise InputError(f"sample.floor = {v} must lie in [0, 1)")
    for i, bs in enumerate(s.get("bound_states", [])):
        for k in ("eps", "u2", "v2"):
            for v in _values(bs.get(k)):
                if v < 0:
                    raise InputError(f"sample.bound_states[{i}].{k} = {v} must be >= 0 (eps >= 0: the pair sits at "
                                     "+eps with weight u2 and at -eps with weight v2)")
        for v in _values(bs.get("width")):
            if v < WIDTH_FLOOR:
                raise InputError(f"sample.bound_states[{i}].width = {v} meV is below the {WIDTH_FLOOR} meV floor")
    if "modulation_rms" in j and "modulation_peak" in j:
        raise InputError("junction gives both modulation_rms and modulation_peak: give the amplitude once, with its kind")
    for key, factor in (("modulation_rms", 1.0), ("modulation_peak", 1 / math.sqrt(2))):
        for v in _values(j.get(key)):
            if v * factor < MODULATION_RMS_FLOOR:
                raise InputError(f"junction.{key} = {v} mV is below the floor of {MODULATION_RMS_FLOOR} mV rms "
                                 "(real data always have a modulation; the grid's accuracy needs one)")
    for v in _values(j.get("T_eff")):
        if v <= 0:
            raise InputError(f"junction.T_eff = {v} K must be positive")
    for key in ("sigma", "sigma_scale", "discrepancy_scale", "discrepancy_length", "nu"):
        for v in _values(o.get(key)):
            if v <= 0:
                raise InputError(f"observation.{key} = {v} must be positive")
    # discrepancy_scale / discrepancy_length may be absent: fits then use documented default priors (priors.py);
    # simulate needs both as numbers and says so
    if o.get("discrepancy", "none") == "none":
        for key in ("discrepancy_scale", "discrepancy_length"):
            if key in o:
                raise InputError(f"observation.{key} is given but observation.discrepancy is \"none\": set "
                                 "discrepancy = \"ar1\" or \"gp\", or remove the key")
    for key in ("discrepancy_scale", "discrepancy_length"):
        v = o.get(key)
        if isinstance(v, Prior) and not (v.dist in ("lognormal", "halfnormal")
                                         or (v.dist in ("truncnormal", "uniform") and v.params.get("lower", -1) >= 0)):
            raise InputError(f"observation.{key} must be positive, so its prior cannot be {v.dist} over negative "
                             "values: use lognormal, halfnormal, or a truncnormal/uniform with lower >= 0")
    for v in _values(j.get("g_n")):
        if v <= 0:
            raise InputError(f"junction.g_n = {v} must be positive")
