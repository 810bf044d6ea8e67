# The README's two commands: `make demo` (set up + run the main job) and `make test` (set up + run the tests).
# Both create/refresh .venv from the pinned lock; the stamp is keyed by the content of the files that define the
# environment, so a second run installs nothing and starts in seconds.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ENV_HASH := $(shell cat requirements/lock.txt requirements/no-deps.txt setup.cfg setup.py pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.dpsims-env-$(ENV_HASH)
DEMO_OUT ?= work_dirs/demo

.PHONY: env demo test lint bundle
env: $(STAMP)

$(STAMP):
	@echo "Setting up $(VENV) (pinned: requirements/lock.txt; first run takes a few minutes)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/no-deps.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.dpsims-env-*
	touch $@

# The main job: 4 synthetic images for each bundled sample label map, with the bundled model, plus a preview sheet.
demo: $(STAMP)
	$(VENV)/bin/dpsims-aug generate --n 4 --grid --out $(DEMO_OUT)

# Retrain the bundled generator exactly as shipped (about 90 minutes on 2 CPU cores) and export it into the package.
bundle: $(STAMP)
	$(VENV)/bin/dpsims-aug dataset --dataset-format ade20k --out work_dirs/data/embedded --train 1000 --val 100 --size 64
	OMP_NUM_THREADS=2 $(VENV)/bin/dpsims-aug train train_gan/configs/embedded_small.py --work-dir work_dirs/embedded_small
	$(VENV)/bin/dpsims-aug export work_dirs/embedded_small/iter_4000.pth \
		--out dpsims_aug/assets/embedded_small.safetensors --half

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
