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

clean:
	rm -rf $(VENV) $(OUT) *.egg-info
