# One-command set-up: `make run` starts the app, `make test` runs every check.
# Both create .venv on first use; stamp files inside it make later runs skip the install
# until pyproject.toml changes. `make package` builds the executable from its own lean venv,
# .venv-package, the same way.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# The executable is built from a venv without torch, opencv-python's Qt or PySide6's Addons:
# whatever PyInstaller finds installed can end up in the bundle.
PACKAGE_VENV := .venv-package
PACKAGE_BIN := $(PACKAGE_VENV)/bin
PACKAGE_STAMP := $(PACKAGE_VENV)/.installed
# The torch release that lies on this project's Linux x86_64 / Python 3.11 machines; elsewhere
# pip resolves torch from pyproject.toml's dependencies.
TORCH_PIN := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
CHECK_PYTHON := $(PYTHON) -c 'import sys; sys.exit("fermonitor needs Python >= 3.10, $(PYTHON) is " + sys.version.split()[0]) if sys.version_info < (3, 10) else None'

.PHONY: run test lint bench xvfb clean-venv package smoke

run: $(RUN_STAMP)
	$(BIN)/fermonitor

test: $(DEV_STAMP) xvfb
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check .

bench: $(DEV_STAMP)
	nice -n 19 $(BIN)/python benchmarks/bench_classifier.py --write
	nice -n 19 $(BIN)/python benchmarks/bench_backends.py --write
	nice -n 19 $(BIN)/python benchmarks/precision_agreement.py --write
	nice -n 19 $(BIN)/python benchmarks/gallery_eval.py --write

# Standalone executable (packaging/fermonitor.spec): dist/fermonitor/, then its smoke test.
package: $(PACKAGE_STAMP)
	nice -n 19 $(PACKAGE_BIN)/pyinstaller --noconfirm --clean --distpath dist --workpath build packaging/fermonitor.spec
	du -sh dist/fermonitor

smoke: package
	$(PACKAGE_BIN)/python packaging/smoke_test.py

$(BIN)/python:
	$(CHECK_PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# Torch first, pinned where its wheels are on local disk, so the project install finds it satisfied.
$(VENV)/.installed-torch: $(BIN)/python
	@if [ "$$(uname -s)" = Linux ] && [ "$$(uname -m)" = x86_64 ] && \
	    $(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then \
	    echo "installing $(TORCH_PIN)"; \
	    $(BIN)/pip install $(TORCH_PIN); \
	fi
	touch $@

$(RUN_STAMP): pyproject.toml $(VENV)/.installed-torch
	$(BIN)/pip install -e .
	touch $@

# The runtime dependencies less torch, from packaging/requirements.txt; the project itself
# without its dependencies, so that pip does not pull torch, opencv-python and PySide6 back in.
$(PACKAGE_STAMP): pyproject.toml packaging/requirements.txt
	$(CHECK_PYTHON)
	test -x $(PACKAGE_BIN)/python || $(PYTHON) -m venv $(PACKAGE_VENV)
	$(PACKAGE_BIN)/python -m pip install --upgrade pip
	$(PACKAGE_BIN)/pip install -r packaging/requirements.txt
	$(PACKAGE_BIN)/pip install --no-deps -e .
	touch $@

$(DEV_STAMP): pyproject.toml $(VENV)/.installed-torch
	$(BIN)/pip install -e '.[dev]'
	touch $@ $(RUN_STAMP)

# The screen-capture tests need a real X server. Install Xvfb when it is missing and we may.
xvfb:
	@if command -v Xvfb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y xvfb; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y xvfb; \
	else \
	    echo "Xvfb is not installed and cannot be installed without root: the xvfb-marked tests will skip"; \
	fi

clean-venv:
	rm -rf $(VENV) $(PACKAGE_VENV)
