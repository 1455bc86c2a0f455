"""The one type every reader returns: a tunnelling spectrum in the sample-bias convention.

Units at this boundary: bias in mV (sample bias: the sample's potential relative to the tip, physics.md §1),
conductance in µS when the channel has physical units or was calibrated against the current, "normalised" after
division by the normal-state conductance, "arb" otherwise. ``sigma`` is the standard error of the mean over the
sweeps it was estimated from (``n_sweeps`` of them), or None when the file holds only an average.
"""

from __future__ import annotations

import copy

import numpy as np
import xarray as xr

from stsbayes.errors import InputError

UNITS = ("uS", "nS", "arb", "normalised")


def default_metadata() -> dict:
    """Every metadata key a Spectrum carries, with the value meaning 'not known'."""
    return {
        "source_file": None,
        "channel": None,
        "direction": "fwd",
        "bias_sign": 1,
        "temperature_K": None,
        "temperature_source": None,
        "modulation": None,
        "setpoint_current_nA": None,
        "setpoint_bias_mV": None,
        "g_set_uS": None,
        "position_m": None,
        "calibration": None,
        "comments": [],
        "assumed": [],
    }


class Spectrum:
    """A conductance spectrum: an ``xarray.Dataset`` plus the metadata that says where it came from.

    ``dataset`` has a coordinate ``bias`` (mV, strictly ascending), a variable ``didv`` (and ``sigma`` when known)
    with dims ``(bias,)`` or, for both sweep directions, ``(direction, bias)`` with ``direction = [fwd, bwd]``;
    when the file held individual sweeps they are kept as ``didv_sweeps`` with a ``sweep`` dim.
    """

    def __init__(self, dataset: xr.Dataset, metadata: dict | None = None):
        self.dataset = dataset
        self.metadata = default_metadata()
        self.metadata.update(copy.deepcopy(metadata or {}))

    @classmethod
    def from_arrays(
        cls,
        bias_mV,
        didv,
        sigma=None,
        *,
        units: str = "uS",
        n_sweeps: int = 1,
        direction: str = "fwd",
        metadata: dict | None = None,
        sweeps=None,
    ) -> "Spectrum":
        """Build a Spectrum from arrays: bias (mV, strictly ascending), didv of shape (n,) or (2, n) for
        direction "both", optional sigma of the same shape, optional individual sweeps (…, n_sweeps, n)."""
        bias = np.asarray(bias_mV, dtype=float)
        g = np.asarray(didv, dtype=float)
        if units not in UNITS:
            raise InputError(f"conductance units '{units}' are not one of {', '.join(UNITS)}")
        if bias.ndim != 1 or bias.size < 2:
            raise InputError(f"a spectrum needs at least two bias points, got {bias.size}")
        if not np.all(np.isfinite(bias)) or not np.all(np.diff(bias) > 0):
            raise InputError("the bias axis must be finite and strictly ascending: sort the points and drop repeats")
        expected = (2, bias.size) if direction == "both" else (bias.size,)
        if g.shape != expected:
            raise InputError(f"conductance has shape {g.shape}, expected {expected} for direction '{direction}'")
        if not np.all(np.isfinite(g)):
            raise InputError("the conductance holds NaN or infinite values: remove those points")
        dims = ("direction", "bias") if direction == "both" else ("bias",)
        data_vars = {"didv": (dims, g)}
        if sigma is not None:
            s = np.asarray(sigma, dtype=float)
            if s.shape != g.shape or not np.all(np.isfinite(s)) or np.any(s < 0):
                raise InputError("sigma must have the conductance's shape and hold finite values >= 0")
            data_vars["sigma"] = (dims, s)
        if sweeps is not None:
            data_vars["didv_sweeps"] = (dims[:-1] + ("sweep", "bias"), np.asarray(sweeps, dtype=float))
        coords = {"bias": ("bias", bias, {"units": "mV", "convention": "sample bias"})}
        coords["direction"] = ["fwd", "bwd"] if direction == "both" else direction
        dataset = xr.Dataset(data_vars, coords=coords, attrs={"units": units, "n_sweeps": int(n_sweeps)})
        meta = dict(metadata or {})
        meta["direction"] = direction
        return cls(dataset, meta)

    # --- what the data are ---------------------------------------------------------------------------------
    @property
    def bias_mV(self) -> np.ndarray:
        """Sample bias in mV, strictly ascending."""
        return self.dataset["bias"].values

    @property
    def didv(self) -> np.ndarray:
        """Conductance in ``units``; shape (n,), or (2, n) ordered fwd, bwd for direction "both"."""
        return self.dataset["didv"].values

    @property
    def sigma(self) -> np.ndarray | None:
        """Standard error of the mean over ``n_sweeps`` sweeps (same units and shape as didv), or None."""
        return self.dataset["sigma"].values if "sigma" in self.dataset else None

    @property
    def n_sweeps(self) -> int:
        return int(self.dataset.attrs["n_sweeps"])

    @property
    def units(self) -> str:
        return str(self.dataset.attrs["units"])

    @property
    def direction(self) -> str:
        return str(self.metadata["direction"])

    def __repr__(self) -> str:
        b = self.bias_mV
        return (
            f"Spectrum({b.size} points, {b[0]:g}..{b[-1]:g} mV, {self.units}, direction={self.direction}, "
            f"n_sweeps={self.n_sweeps}, sigma={'yes' if self.sigma is not None else 'no'}, "
            f"channel={self.metadata['channel']!r})"
        )

    # --- derived spectra ---------------------------------------------------------------------------------------
    def select(self, direction: str) -> "Spectrum":
        """The forward or backward sweep of a two-direction spectrum (or this one when it already is that)."""
        if direction == self.direction:
            return self
        if self.direction != "both" or direction not in ("fwd", "bwd"):
            raise InputError(
                f"this spectrum holds direction '{self.direction}' only, not '{direction}': load it again with "
                f"--direction {direction}"
            )
        dataset = self.dataset.sel(direction=direction)
        meta = copy.deepcopy(self.metadata)
        meta["direction"] = direction
        return Spectrum(dataset, meta)

    def normalized(self) -> "Spectrum":
        """Divide by the normal-state conductance estimated from the outer 20 % of the bias window.

        The outer 20 % are the points within 10 % of the window's span from either end (|V| >= 4 mV for a
        -5..5 mV window); one factor serves both sweep directions. The factor is recorded in
        ``metadata["normalization"]``.
        """
        if self.units == "normalised":
            return self
        bias = self.bias_mV
        lo, hi = bias[0], bias[-1]
        edge = 0.1 * (hi - lo)
        outer = (bias <= lo + edge) | (bias >= hi - edge)
        factor = float(np.mean(self.didv[..., outer]))
        if not (np.isfinite(factor) and factor > 0):
            raise InputError(
                f"cannot normalise: the mean conductance in the outer 20 % of the bias window is {factor:.3g} "
                f"{self.units} (not positive); check the channel and its sign, or fit without --normalize"
            )
        dataset = self.dataset.copy(deep=True)
        for name in ("didv", "sigma", "didv_sweeps"):
            if name in dataset:
                dataset[name] = dataset[name] / factor
        dataset.attrs["units"] = "normalised"
        meta = copy.deepcopy(self.metadata)
        meta["normalization"] = {
            "factor": factor,
            "units_before": self.units,
            "window_mV": [[float(lo), float(lo + edge)], [float(hi - edge), float(hi)]],
        }
        meta["assumed"].append(
            f"normalised by the mean conductance {factor:.6g} {self.units} in the outer 20 % of the bias window "
            f"({lo:g}..{lo + edge:g} and {hi - edge:g}..{hi:g} mV), taken as the normal-state conductance"
        )
        return Spectrum(dataset, meta)
