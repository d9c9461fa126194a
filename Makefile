# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv (if missing), installs jcnn into it, then runs.
PYTHON ?= .venv/bin/python
VENV_PY := $(if $(filter .venv/bin/python,$(PYTHON)),.venv/bin/python,$(PYTHON))

.PHONY: demo test bench pictures

.venv/bin/python:
	python3 -m venv .venv

demo: $(VENV_PY)
	$(PYTHON) -m pip install -q -e ".[examples]"
	$(PYTHON) examples/train_digits.py

test: $(VENV_PY)
	$(PYTHON) -m pip install -q -e ".[test]"
	$(PYTHON) -m pytest -n 2 -q tests

bench: $(VENV_PY)
	$(PYTHON) -m pip install -q -e ".[examples]"
	$(PYTHON) -m benchmarks

pictures: $(VENV_PY)
	$(PYTHON) -m pip install -q -e ".[examples]"
	$(PYTHON) examples/visualize.py --out docs/pictures
