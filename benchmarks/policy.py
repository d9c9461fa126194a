"""Derive the conv plan's policy table from the measurements checked in under
``benchmarks/measured/`` and write ``jcnn/conv_policy_table.py``:
``python -m benchmarks.arrangements --write-policy`` (or ``python -m benchmarks.policy``).

Rules (the *why* lives in :mod:`jcnn.conv_plan`'s docstring):

* CPU batch block: the largest patch matrix of a measured best block, rounded up
  to a quarter of 2^20 elements; depthwise products: the fastest measured
  per-offset block.
* Accelerators: per part (forward, dX, dW) and layer class (depthwise or not),
  the XLA arrangement that was fastest on the most measured layers.
* CUDA's Pallas region, per part: the layers where the fused kernel beat every
  XLA arrangement, as (dtype, window, stride, dilation, groups) cases with the
  contracted channels from half the smallest winner's to the largest winner's,
  and the produced channels at most the largest winner's.  Two sources, the
  GPU's word last:

  - offline (``h200_offline.json``, ``python -m benchmarks.gpu_offline --json``
    with the default plan and with ``--plan pallas,pallas,pallas``): a layer
    and dtype whose forced-kernel program compiles, spills nowhere in the
    kernels, and moves fewer HBM bytes than the XLA plan's program takes the
    kernels for all three parts;
  - a GPU sweep (``h200_float32.json``) of the same kernel version
    (``PALLAS_VERSION``) overrides: a part whose kernel lost on the GPU leaves
    the region, one that won joins it.  Sweeps of older kernels say nothing
    about these.
"""

from __future__ import annotations

import json
import math
import pprint
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURED = ROOT / "benchmarks" / "measured"
TABLE = ROOT / "jcnn" / "conv_policy_table.py"
PARTS = {"fwd": "forward", "dx": "input_grad", "dw": "weight_grad"}
QUARTER = 1 << 18
PALLAS_VERSION = 2  # the fused, no-glue kernels (1: the padded-input kernels)
FORCED = "pallas,pallas,pallas"


def _cpu(cpu: dict) -> dict:
    best = []
    for layer in cpu["blocks"]:
        ms = {int(b): t for b, t in layer["ms"].items()}
        block = min(ms, key=ms.get)
        best.append(block * layer["patch_elements_per_example"])
    dw = []
    for layer in cpu["depthwise_product_blocks"]:
        ms = {int(b): t for b, t in layer["elements_per_offset"].items()}
        dw.append(min(ms, key=ms.get))
    return {"block_elements": math.ceil(max(best) / QUARTER) * QUARTER,
            "scan_elements": cpu["chosen"]["scan_elements"],
            "depthwise_elements": max(dw)}


def _contracted(part: str, r: dict) -> tuple[int, int]:
    """(contracted, produced) channels of ``part`` on layer ``r``: the forward and dW
    contract C_in into C_out, dX the reverse (per group)."""
    c_in, c_out = r["w"][-2], r["w"][-1] // r["groups"]
    return (c_out, c_in) if part == "dx" else (c_in, c_out)


def _case(kind: str, r: dict, dtype: str) -> tuple[tuple, tuple[int, int]]:
    """A measured layer as a region case: ``groups`` is ``"depthwise"`` for one input
    channel per group (any channel count), else the number of groups."""
    nd = len(r["w"]) - 2
    groups = "depthwise" if r["groups"] > 1 and r["w"][-2] == 1 else r["groups"]
    return ((dtype, tuple(r["w"][:-2]), (r["stride"],) * nd, (1,) * nd, groups),
            _contracted(kind, r))


def _defaults(results: list) -> dict:
    defaults = {}
    for kind, part in PARTS.items():
        for cls in ("dense", "depthwise"):
            rows = [r for r in results if (r["groups"] > 1 and r["w"][-2] == 1) ==
                    (cls == "depthwise")]
            wins = Counter()
            for r in rows:
                xla = {k[len(kind) + 1:]: v for k, v in r["ms"].items()
                       if k.startswith(kind + " ") and not k.endswith(" pallas")}
                # ties go to the arrangement made for the class ("depthwise")
                wins[min(xla, key=lambda k: (xla[k], k != "depthwise"))] += 1
            if wins:
                defaults[f"{part}_{cls}"] = wins.most_common(1)[0][0]
    return defaults


def _offline_wins(entries: list, shapes: dict) -> dict:
    """``{(case key, part): [(contracted, produced), ...]}``: the layers whose forced
    kernels compiled without spills and moved fewer bytes than the XLA plan."""
    by = {}
    for e in entries:
        by.setdefault((e["layer"], e["dtype"]), {})[e["plan"] == FORCED] = e
    wins = {}
    for (layer, dtype), pair in sorted(by.items()):
        forced, default = pair.get(True), pair.get(False)
        if not forced or not default or not forced["jcnn"].get("ok"):
            continue
        fs, ds = forced["jcnn"]["summary"], default["jcnn"]["summary"]
        own_spill = any(r["spill"] for r in forced["jcnn"]["rows"] if "triton" in r["kind"])
        if own_spill or not (default["jcnn"].get("ok") and fs["hbm_bytes"] < ds["hbm_bytes"]):
            continue
        _, x, w, stride, groups = shapes[layer]
        r = {"x": list(x), "w": list(w), "stride": stride, "groups": groups}
        for kind, part in PARTS.items():
            key, ch = _case(kind, r, dtype)
            wins.setdefault((key, part), []).append(ch)
    return wins


def _gpu(sweep: dict, offline: list | None = None, shapes: dict | None = None) -> dict:
    results = sweep["results"]
    wins = _offline_wins(offline, shapes) if offline else {}
    if sweep.get("pallas_version", 1) == PALLAS_VERSION:  # the GPU has the last word
        for r in results:
            for kind, part in PARTS.items():
                ms = {k[len(kind) + 1:]: v for k, v in r["ms"].items()
                      if k.startswith(kind + " ")}
                if "pallas" not in ms:
                    continue
                key, ch = _case(kind, r, r["dtype"])
                chs = wins.setdefault((key, part), [])
                if min(ms, key=ms.get) == "pallas":
                    chs.append(ch)
                elif ch in chs:
                    chs.remove(ch)
    pallas = {part: [] for part in PARTS.values()}
    for (key, part), chs in sorted(wins.items(), key=lambda kv: repr(kv[0])):
        if not chs:
            continue
        d, win, s, dil, g = key
        pallas[part].append({"dtype": d, "window": win, "stride": s, "dilation": dil,
                             "groups": g,
                             "contracted": (max(min(c for c, _ in chs) // 2, 1),
                                            max(c for c, _ in chs)),
                             "produced_max": max(p for _, p in chs)})
    return {"defaults": _defaults(results), "pallas": pallas}


def derive() -> dict:
    cpu = json.loads((MEASURED / "cpu_blocks.json").read_text())
    sweep = json.loads((MEASURED / "h200_float32.json").read_text())
    offline_path = MEASURED / "h200_offline.json"
    offline, shapes = None, None
    if offline_path.exists():
        from .gpu_offline import layers

        offline, shapes = json.loads(offline_path.read_text())["results"], layers()
    gpu = _gpu(sweep, offline, shapes)
    return {"cpu": _cpu(cpu),
            "accelerator": {"block_bytes": cpu["chosen"]["accelerator_block_bytes"],
                            **gpu["defaults"]},
            "cuda": {"pallas": gpu["pallas"], "pallas_elements": cpu["chosen"]["pallas_elements"]}}


def render(policy: dict) -> str:
    return ('"""The conv plan\'s per-platform thresholds and choices, as data.\n\n'
            "Generated by ``python -m benchmarks.arrangements --write-policy`` from the\n"
            "measurements in ``benchmarks/measured/`` (rules in ``benchmarks/policy.py``);\n"
            "do not edit by hand.  :mod:`jcnn.conv_plan` reads it.\n"
            '"""\n\n__all__ = ["POLICY"]\n\nPOLICY = '
            + pprint.pformat(policy, width=96, sort_dicts=True) + "\n")


def write(path: Path = TABLE) -> str:
    text = render(derive())
    path.write_text(text)
    return text


if __name__ == "__main__":
    out = write()
    sys.stdout.write(out)
