# The README's set-up commands: `make demo` and `make test`.
# Each creates .venv if it is missing, installs jcnn into it, then runs.
PY := .venv/bin/python

.PHONY: demo test docs thorough bench pictures

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

docs: $(PY)
	$(PY) -m pip install -q -e ".[docs]"
	$(PY) -m mkdocs build --strict -d site

# Every property at 2,000 examples (random seeds, Hypothesis database on), one
# process per test module so that a process killed inside XLA names its module.
thorough: $(PY)
	$(PY) -m pip install -q -e ".[test]"
	status=0; for f in tests/test_*.py; do echo "== $$f"; \
	  JCNN_HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -q \
	    --hypothesis-show-statistics $$f > "$$f.thorough.log" 2>&1 \
	    || { rc=$$?; status=1; echo "   FAILED (exit $$rc): see $$f.thorough.log"; }; \
	  tail -n 1 "$$f.thorough.log"; done; exit $$status
