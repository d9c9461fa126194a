"""Lowering a program for a platform this machine does not have (``cuda``, ``tpu``).

``jax.jit(fn).trace(*args).lower(lowering_platforms=platforms)`` is enough on jax 0.10; from
jax 0.11 on, lowering a Pallas (Triton) kernel for CUDA on a machine without a GPU raises
"No supported GPU devices found" unless the lowering runs inside an abstract mesh whose
abstract device is a CUDA GPU.  ``lower_for`` adds that mesh only where it is needed
(a GPU platform asked for, jax ≥ 0.11, no GPU here), so the tests read the same on both.
"""

from __future__ import annotations

import contextlib

import jax

GPU_PLATFORMS = ("cuda", "rocm")
# the GPU the project measures on; its kind is what Pallas reads the compute capability from
DEVICE_KIND = "NVIDIA H200"
NUM_CORES = 132


def _needs_abstract_gpu(platforms) -> bool:
    if not any(p in GPU_PLATFORMS for p in platforms):
        return False
    if tuple(int(v) for v in jax.__version__.split(".")[:2]) < (0, 11):
        return False
    return not any(d.platform == "gpu" for d in jax.devices())


@contextlib.contextmanager
def abstract_gpu(platforms=("cuda",)):
    """Inside: lowering for ``platforms`` finds an abstract CUDA GPU (a no-op where none is
    needed)."""
    if not _needs_abstract_gpu(platforms):
        yield
        return
    from jax.sharding import AbstractDevice, AbstractMesh, AxisType, use_abstract_mesh
    dev = AbstractDevice(device_kind=DEVICE_KIND, num_cores=NUM_CORES, platform="cuda")
    # an Auto axis: with an Explicit one, the Pallas interpreter of a program lowered for
    # cpu and cuda at once meets operands of unequal shardings (ShardingTypeError)
    mesh = AbstractMesh((1,), ("x",), (AxisType.Auto,), abstract_device=dev)
    with use_abstract_mesh(mesh):
        yield


def lower_for(fn, *args, platforms=("cuda",)):
    """``jax.jit(fn)`` traced on ``args`` and lowered for ``platforms`` (a
    ``jax.stages.Lowered``), whatever devices this machine has."""
    platforms = tuple(platforms)
    with abstract_gpu(platforms):
        return jax.jit(fn).trace(*args).lower(lowering_platforms=platforms)


def lowered_text(fn, *args, platforms=("cuda",)) -> str:
    """The StableHLO text of ``lower_for``."""
    return lower_for(fn, *args, platforms=platforms).as_text()
