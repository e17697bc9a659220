# scdnn: every target creates .venv itself and installs what it needs (no network besides PyPI).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision together so their builds match (PyPI CUDA builds; they run on CPU too. 2.14.1 pairs with 0.29.2)
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.2"
	$(PY) -m pip install --quiet -e ".[geo,export,dev,region]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# the edit-test loop: every test but those marked slow (training and benchmark runs,
# full-size networks, ONNX export, fresh-interpreter checks)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(VENV)/bin/scdnn demo

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
