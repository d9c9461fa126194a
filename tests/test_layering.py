"""The package reads top-down: every jcnn module imports only modules below it.

``ORDER`` is the declared layering, bottom first; a module may import (at the
top of the file or inside a function) only modules listed before it — so there
is no import cycle and no import that runs back up.  A new module is placed
here; the conv wing's order is the one docs/architecture.md describes.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "jcnn"

ORDER = [
    # foundations: argument checks, padding rules, windows, geometry
    "_checks", "_padding_rules", "padding", "window", "conv_geometry",
    # the conv wing, bottom up: shared pieces, kernels, arrangements, registry,
    # policy data, plan, argument checks, the custom_vjp and its entry points
    "_conv_blocks", "conv_phases", "conv_forward", "conv_backward",
    "_pallas_base", "conv_pallas", "conv_pallas_depthwise", "conv_pallas_dgrad",
    "conv_pallas_wgrad", "conv_mosaic",
    "conv_arrangements", "conv_policy_table", "conv_plan", "_conv_args", "convolution",
    "transposed_conv",
    # the other operations
    "activations", "smooth_activations", "linear", "losses", "elementwise_losses", "normalization", "feature_norm",
    "_pool_windows", "pooling", "adaptive_pooling", "unpooling", "upsampling", "augment",
    # layers and models
    "_layer_shapes", "layer", "combinators", "summary", "_layers_conv", "_layers_pool",
    "_nn_vocab", "_nn_extra", "torch_weights", "nn",
    # training, data, files, pictures
    "data", "checkpoint", "_fit_data", "_fit_record", "_fit_steps", "training", "_viz_style", "_viz_numbers", "_viz_training", "viz",
    "__init__",
]


def _imports(path: pathlib.Path) -> set[str]:
    """The jcnn modules ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found.update([node.module.split(".")[0]] if node.module else
                             [a.name for a in node.names])
            elif node.module and node.module.split(".")[0] == "jcnn":
                parts = node.module.split(".")
                found.update(parts[1:2] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("jcnn."))
    return found


def violations(order: list[str], root: pathlib.Path = ROOT) -> list[str]:
    """Every import that is not downward, and every module missing from ``order``."""
    modules = {p.stem: p for p in root.glob("*.py")}
    rank = {m: i for i, m in enumerate(order)}
    bad = [f"{m} is not placed in ORDER" for m in sorted(modules) if m not in rank]
    for m, path in sorted(modules.items()):
        for dep in sorted(_imports(path) & set(modules)):
            if m in rank and dep in rank and rank[dep] >= rank[m]:
                bad.append(f"{m} imports {dep}, which is not below it")
    return bad


def test_every_import_runs_downward():
    assert violations(ORDER) == []


def test_order_names_only_existing_modules():
    existing = {p.stem for p in ROOT.glob("*.py")}
    assert [m for m in ORDER if m not in existing] == []


def test_the_checker_catches_an_upward_import_and_a_cycle(tmp_path):
    (tmp_path / "low.py").write_text("def f():\n    from .high import g\n")
    (tmp_path / "high.py").write_text("from . import low\n")
    (tmp_path / "new.py").write_text("import jcnn.low\n")
    bad = violations(["low", "high"], tmp_path)
    assert "low imports high, which is not below it" in bad
    assert "new is not placed in ORDER" in bad
    assert not any(b.startswith("high imports") for b in bad)


@pytest.mark.parametrize("path", sorted(ROOT.glob("*.py")), ids=lambda p: p.name)
def test_modules_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 360, f"{path.name} has {lines} lines; split it by job"


MEASURED = __import__("re").compile(
    r"\d+(\.\d+)?\s*(ms|µs|us|s of training|MiB|GiB|MB|GB|KiB)\b|[GT]FLOP/s|[GT]B/s"
    r"|\d+(\.\d+)?\s*[×x]\s*(faster|slower)")


def measured_numbers(text: str) -> list[str]:
    """Lines of ``text`` that carry a measurement (a time, a size in bytes, a rate,
    a speed-up) — they belong in BENCHMARKS.md, not in the package."""
    return [line.strip() for line in text.splitlines() if MEASURED.search(line)]


def test_no_measured_numbers_in_the_package():
    found = {p.name: measured_numbers(p.read_text()) for p in sorted(ROOT.glob("*.py"))}
    assert {k: v for k, v in found.items() if v} == {}


def test_the_measurement_pattern_can_fail():
    assert measured_numbers("# 1.6x faster on the CPU suite\n# 13.7 ms, 4.5 MiB") == [
        "# 1.6x faster on the CPU suite", "# 13.7 ms, 4.5 MiB"]
    assert measured_numbers("# one block per example\n# 3x3 window") == []
