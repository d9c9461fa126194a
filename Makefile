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
# process per test module so that a process killed inside XLA names its module;
# JOBS modules at a time (default 2: one per core of the 2-core CI machine),
# largest files first (`ls -S`) so the long property modules do not start last;
# then tests/thorough_summary.py prints the counts (properties, examples, failures).
JOBS ?= 2
thorough: $(PY)
	$(PY) -m pip install -q -e ".[test]"
	ls -S tests/test_*.py | xargs -P $(JOBS) -I{} sh -c '\
	  JCNN_HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -q -p no:cacheprovider \
	    --hypothesis-show-statistics {} > {}.thorough.log 2>&1; rc=$$?; \
	  echo "== {} (exit $$rc): $$(tail -n 1 {}.thorough.log)"; exit $$((rc != 0))'; \
	$(PY) tests/thorough_summary.py
