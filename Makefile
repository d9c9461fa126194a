# The README's set-up commands: `make demo` and `make test`.
# Each creates .venv if it is missing, installs jcnn into it, then runs.
PY := .venv/bin/python

.PHONY: demo test bench pictures

$(PY):
	python3 -m venv .venv

demo: $(PY)
	$(PY) -m pip install -q -e ".[examples]"
	$(PY) examples/train_digits.py

test: $(PY)
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pytest -n 2 -q tests

bench: $(PY)
	$(PY) -m pip install -q -e ".[examples]"
	$(PY) -m benchmarks

pictures: $(PY)
	$(PY) -m pip install -q -e ".[examples]"
	$(PY) examples/visualize.py --out docs/pictures
