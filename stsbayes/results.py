"""Results that carry their own provenance: posterior.nc (an ArviZ DataTree) + summary.json, reloadable alone."""

import hashlib
import json
from pathlib import Path
import platform
import subprocess

import numpy as np
import xarray as xr

from . import __version__
from .errors import InputError
from .io.atomic import atomic_path, atomic_write_text
from .io.reading import jsonable as _jsonable  # NaN/inf -> null, numpy -> plain JSON

SCHEMA_VERSION = 1
PACKAGE = Path(__file__).resolve().parent


def package_versions():
    import arviz
    import nutpie
    import pymc
    import pytensor
    return {"stsbayes": __version__, "pymc": pymc.__version__, "pytensor": pytensor.__version__,
            "arviz": arviz.__version__, "nutpie": nutpie.__version__, "numpy": np.__version__,
            "xarray": xr.__version__, "python": platform.python_version()}


def code_version():
    """Package versions, the git commit (read-only git calls; None outside a checkout) and a hash of the package's
    sources as this run loaded them."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):  # the working tree may differ from the commit
        digest.update(path.read_bytes())
    out = {"versions": package_versions(), "git_commit": None, "git_dirty": None,
           "stsbayes_sources_sha256": digest.hexdigest()}
    try:
        out["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE.parent, capture_output=True,
                                           text=True, check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE.parent,
                                capture_output=True, text=True, check=True, timeout=10).stdout
        out["git_dirty"] = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


class FitResult:
    """A finished fit (or calibration): the DataTree of draws and the summary that ``summary.json`` holds."""

    def __init__(self, tree, summary, model=None):
        self.tree = tree
        self._summary = summary
        # the pm.Model the draws came from, while this process lives (evidence estimators need it); not saved
        self.model = model

    def __getstate__(self):
        """Pickled (to or from a worker process) without the live model: a compiled PyMC model does not travel
        between processes, and nothing but this process's evidence estimators needs it."""
        return {**self.__dict__, "model": None}

    def summary(self):
        return self._summary

    @property
    def converged(self):
        return bool(self._summary["diagnostics"]["converged"])

    @property
    def posterior(self):
        return self.tree["posterior"].to_dataset()

    def tip_density(self):
        from .inference.tip import TipDensity
        text = self.tree.attrs.get("tip_density")
        if not text:
            raise InputError("this result holds no tip density: give the posterior.nc of `stsbayes calibrate-tip`")
        return TipDensity.from_dict(json.loads(text))

    def save(self, out_dir):
        """Write posterior.nc and summary.json atomically into ``out_dir`` (created if needed)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "posterior.nc") as tmp:
            self.tree.to_netcdf(tmp, engine="h5netcdf")
        atomic_write_text(out / "summary.json", json.dumps(_jsonable(self._summary), indent=2) + "\n")
        return out

    def report(self, out_dir):
        from .reports import write_report
        return write_report(self, Path(out_dir))


def load_result(path):
    """Reload a result directory (or its posterior.nc) without the script that made it."""
    path = Path(path)
    nc = path / "posterior.nc" if path.is_dir() else path
    if not nc.exists():
        raise InputError(f"{nc} does not exist: give a result directory written by stsbayes (with posterior.nc)")
    try:
        tree = xr.open_datatree(nc, engine="h5netcdf").load()
    except (OSError, ValueError) as err:
        raise InputError(f"{nc} is not a readable stsbayes result ({err}): re-run the fit") from None
    text = tree.attrs.get("summary")
    if not text:
        raise InputError(f"{nc} carries no stsbayes summary: was it written by stsbayes?")
    return FitResult(tree, json.loads(text))
