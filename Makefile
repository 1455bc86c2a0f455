# stsbayes: `make demo` runs the main study on bundled data, `make test` runs the tests.
# Both create the environment (.venv, with a Python >= 3.12 found by tools/find-python) when it is missing.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= demo-output

.PHONY: env demo demo-all test test-slow bench bench-calibration clean

env: $(STAMP)

$(STAMP): pyproject.toml
	@python=$$(tools/find-python) || exit 1; \
	  if [ ! -x $(PY) ]; then echo "creating $(VENV) with $$python"; "$$python" -m venv $(VENV) || exit 1; fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# the main line of the study (tip calibration, then the ZECP's origin) on the bundled data, reduced sampling sizes;
# resumable (a finished step is kept: delete $(OUT) to start over)
demo: $(STAMP)
	$(PY) studies/paper.py --pass demo --out $(OUT)

# every step of the study at the issue's sizes (hours on 2 cores; resumable)
demo-all: $(STAMP)
	$(PY) studies/paper.py --pass full --out studies/results

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q

test-slow: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q -m slow -s

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@# nanoGUNE's `nanonis` pins lmfit<0.10, which does not build on Python >= 3.12: install it without its pins
	$(PY) -m pip install --quiet --no-deps nanonis
	$(PY) benchmarks/forward.py

# issue 4's must-show: the Pb tip calibration against emcee (same posterior) and lmfit (the peer's model); ~30 min
bench-calibration: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) benchmarks/calibration.py

# issue 7: simulation-based calibration of the NIS multi-gap fit and the Pb tip calibration; resumable (rerun
# to continue), results and figures in studies/results/; hours per model (SBC_N simulations each)
SBC_N ?= 200
.PHONY: sbc
sbc: $(STAMP)
	nice -n 19 $(PY) studies/sbc.py --model nis --simulations $(SBC_N)
	nice -n 19 $(PY) studies/sbc.py --model sis_pb --simulations $(SBC_N)

# issue 7: how often `compare` reaches each verdict on simulated mzm and ysr2 spectra at the paper's conditions, and
# how often a strong one favours the wrong class; resumable (rerun to continue), results in studies/results/;
# tens of minutes per simulation on 2 cores (VERDICTS_N simulations per truth)
VERDICTS_N ?= 100
.PHONY: verdicts
verdicts: $(STAMP)
	nice -n 19 $(PY) studies/verdicts.py --truth both --simulations $(VERDICTS_N)

# issue 7: the expected ln B (offset vs zero) from noise-free spectra against T_eff, modulation, noise and tip kind,
# for an mzm and a ysr2 truth; resumable, results in studies/results/resolution.json and resolution.png (one
# process per truth, both cores; RESOLUTION_ARGS=--quick for the baseline and each axis's extremes)
RESOLUTION_ARGS ?=
.PHONY: resolution
resolution: $(STAMP)
	nice -n 19 $(PY) studies/resolution.py --truths ysr2 $(RESOLUTION_ARGS) & \
	  nice -n 19 $(PY) studies/resolution.py --truths mzm $(RESOLUTION_ARGS); wait
	$(PY) studies/resolution.py $(RESOLUTION_ARGS)

clean:
	rm -rf $(VENV) $(OUT) *.egg-info
