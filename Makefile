# The README's set-up commands: `make demo` and `make test`.
# Each creates .venv if it is missing, installs jcnn into it, then runs.
PY := .venv/bin/python

.PHONY: demo test docs thorough bench pictures gpu-offline test-jax011

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
# then tools/thorough_summary.py prints the counts (properties, examples, failures).
JOBS ?= 2
thorough: $(PY)
	$(PY) -m pip install -q -e ".[test]"
	ls -S tests/test_*.py | xargs -P $(JOBS) -I{} sh -c '\
	  JCNN_HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -q -p no:cacheprovider \
	    --hypothesis-show-statistics {} > {}.thorough.log 2>&1; rc=$$?; \
	  echo "== {} (exit $$rc): $$(tail -n 1 {}.thorough.log)"; exit $$((rc != 0))'; \
	$(PY) tools/thorough_summary.py

# The GPU program compiled for an H200 on this machine, no GPU or driver needed
# (benchmarks/gpu_offline.py): a Python >= 3.12 environment (.venv-gpu) with jax 0.11
# and its CUDA plugin; per layer and dtype every kernel's resources and HBM bytes,
# jcnn against lax (cuDNN).  GPU_OFFLINE_ARGS picks layers, dtypes, --check, --json ...
GPU_PY := .venv-gpu/bin/python
PY312 ?= $(shell for p in python3.12 python3.13 $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.1[2-9]*/bin/python 2>/dev/null); do \
	$$p -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null && echo $$p && break; done)
GPU_OFFLINE_ARGS ?=
$(GPU_PY):
	@test -n "$(firstword $(PY312))" || { echo "gpu-offline: needs a Python >= 3.12"; exit 1; }
	$(firstword $(PY312)) -m venv .venv-gpu
	$(GPU_PY) -m pip install -q "jax==0.11.2" "jaxlib==0.11.2" "jax-cuda12-plugin==0.11.2" \
	  "jax-cuda12-pjrt==0.11.2" "optax>=0.2.8"

gpu-offline: $(GPU_PY)
	$(GPU_PY) -m benchmarks.gpu_offline $(GPU_OFFLINE_ARGS)

# The whole suite on the newer jax of .venv-gpu (0.11.2, Python >= 3.12, with the CUDA
# plugin, so the CUDA-lowering tests run against an abstract device); TESTS picks files
TESTS ?= tests
test-jax011: $(GPU_PY)
	$(GPU_PY) -m pip install -q -e ".[test]"
	$(GPU_PY) -m pytest -n 2 -q $(TESTS)
