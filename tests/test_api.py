"""The public surface: ``__all__`` says what each module offers, ``import jcnn``
reaches every submodule, and every public function documents itself with an
example (the examples run in ``test_docs.py``)."""

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import jcnn

MODULES = [m.name for m in pkgutil.iter_modules(jcnn.__path__) if not m.name.startswith("_")]


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_exactly_the_public_callables(name):
    mod = importlib.import_module(f"jcnn.{name}")
    public = {n for n, o in vars(mod).items()
              if not n.startswith("_") and callable(o) and not inspect.ismodule(o)
              and getattr(o, "__module__", None) == mod.__name__}
    listed = set(mod.__all__)
    assert public <= listed, f"jcnn.{name}.__all__ misses {sorted(public - listed)}"
    assert all(hasattr(mod, n) for n in listed), sorted(n for n in listed if not hasattr(mod, n))


def test_top_level_names_exist_and_rank_specific_pools_are_there():
    assert all(hasattr(jcnn, n) for n in jcnn.__all__)
    for base in ("max_pool", "avg_pool", "global_max_pool", "global_avg_pool"):
        for nd in (1, 2, 3):
            assert f"{base}{nd}d" in jcnn.__all__
    for name in ("max_pool_with_indices", "max_unpool", "ConvPlan"):
        assert name in jcnn.__all__


def test_submodules_load_on_first_access():
    code = ("import sys, jcnn\n"
            "lazy = ['training', 'data', 'checkpoint', 'viz']\n"
            "assert not any(f'jcnn.{m}' in sys.modules for m in lazy), sys.modules.keys()\n"
            "assert callable(jcnn.training.fit) and callable(jcnn.data.load_digits)\n"
            "assert callable(jcnn.checkpoint.save) and callable(jcnn.viz.max_pool_routes)\n"
            "assert callable(jcnn.nn.Conv) and callable(jcnn.conv_plan.plan)\n"
            "assert 'training' in dir(jcnn)\n"
            "try:\n    jcnn.nope\nexcept AttributeError as e:\n    assert 'nope' in str(e)\n"
            "else:\n    raise SystemExit('no AttributeError')\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def _public_functions():
    for n in jcnn.__all__:
        o = getattr(jcnn, n)
        if callable(o) and not inspect.isclass(o) and not inspect.ismodule(o):
            yield n, o
    for sub in ("nn", "training", "data", "checkpoint", "viz"):  # the user-facing submodules
        mod = getattr(jcnn, sub)
        for n in mod.__all__:
            o = getattr(mod, n)
            if inspect.isfunction(o) and o.__module__ == mod.__name__:
                yield f"{sub}.{n}", o


@pytest.mark.parametrize("name,fn", list(_public_functions()))
def test_every_public_function_has_an_example(name, fn):
    doc = inspect.getdoc(fn) or ""
    assert ">>>" in doc, f"{name} has no runnable example in its docstring"
