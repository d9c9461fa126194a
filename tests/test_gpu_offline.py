"""The offline H200 check (``benchmarks.gpu_offline``): its readers of XLA's dumps on small
hand-made dumps modelled on real ones (HLO after optimizations, thunk sequence and
metadata, ptxas' log), the occupancy rules against their definition, the BENCHMARKS.md
section, and — where jax ≥ 0.11 with the CUDA plugin is installed — one tiny layer compiled
for an H200 end to end."""

# ruff: noqa: E501 - the dumps below keep the long lines of the real ones
import math
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import gpu, gpu_offline
from benchmarks import gpu_offline_parse as P

# An ENTRY computation shaped like XLA's (jcnn's 56²×64 program, shrunk): a fusion with a
# tuple result whose elements are read as `%t#k`, bitcasts, a Pallas (Triton) call, a cuDNN
# call with its u8 scratch, a fusion whose attributes hold parentheses and braces.
HLO = """\
HloModule jit_f, entry_computation_layout={(f32[2,8,8,4]{3,2,1,0})->f32[2,8,8,4]{3,2,1,0}}

%fused_slice (param_0: f32[2,8,8,4]) -> (f32[2,8,8,4], f32[2,8,8,4]) {
  %param_0 = f32[2,8,8,4]{3,2,1,0} parameter(0)
  ROOT %tuple = (f32[2,8,8,4]{3,2,1,0}, f32[2,8,8,4]{3,2,1,0}) tuple(%param_0, %param_0)
}

ENTRY %main.9 (x.1: f32[2,8,8,4], w.1: f32[3,3,4,4], ct.1: f32[2,8,8,4]) -> (f32[2,8,8,4], f32[3,3,4,4]) {
  %x.1 = f32[2,8,8,4]{3,2,1,0} parameter(0), sharding={mesh[], [{}, {}, {}, {}]}, metadata={op_name="x" scheduling_name="x.1"}
  %loop_slice_fusion.2 = (f32[2,8,8,4]{3,2,1,0}, f32[2,8,8,2]{3,2,1,0}, /*index=2*/bf16[16]{0}) fusion(%x.1), kind=kLoop, calls=%fused_slice.2, metadata={op_name="jit(f)/transpose(jvp())/cond/branch_0_fun/slice"}
  %bitcast.101.0 = f32[128,2]{1,0} bitcast(%loop_slice_fusion.2#1), metadata={op_name="jit(f)/dot_general"}
  %w.1 = f32[3,3,4,4]{3,2,1,0} parameter(1), sharding={mesh[], [{}, {}, {}, {}]}
  %pallas_call.3 = f32[2,80,4]{2,1,0} custom-call(%bitcast.101.0, %w.1), custom_call_target="__gpu$xla.gpu.triton", operand_layout_constraints={f32[128,2]{1,0}, f32[3,3,4,4]{3,2,1,0}}, api_version=API_VERSION_TYPED_FFI, backend_config={debug = false, name = "jcnn_conv_forward_flat"}
  %ct.1 = f32[2,8,8,4]{3,2,1,0} parameter(2)
  %cudnn-conv.1 = (f32[2,8,8,4]{3,2,1,0}, u8[4096]{0}) custom-call(%ct.1, %w.1), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_o01i->b01f, custom_call_target="__cudnn$convForward", backend_config={"cudnn_conv_backend_config":{"algorithm":{"algo_id":"-1"}}}
  %input_reduce_fusion = f32[3,3,4,4]{3,2,1,0} fusion(%cudnn-conv.1#0, %loop_slice_fusion.2#0, %loop_slice_fusion.2#2), kind=kInput, calls=%fused_reduce, backend_config={"native_emitter_backend_config":{"type":"NATIVE_EMITTER_TYPE_INVALID","unroll_factor":0},"reification_cost":[]}
  ROOT %tuple.1.0 = (f32[2,80,4]{2,1,0}, f32[3,3,4,4]{3,2,1,0}) tuple(%pallas_call.3, %input_reduce_fusion), metadata={scheduling_name="tuple.1.0"}
}
"""
X = 2 * 8 * 8 * 4 * 4  # bytes of f32[2,8,8,4]
W = 3 * 3 * 4 * 4 * 4
HALF = 2 * 8 * 8 * 2 * 4  # f32[2,8,8,2], which f32[128,2] views
SLICE_OUT = X + HALF + 16 * 2
PALLAS_OUT = 2 * 80 * 4 * 4

THUNKS = """\
000: kCommandBuffer [source | sink]
    001: kCustomKernel [source       | next=002 (1)] loop_slice_fusion_2 grid: [1000, 1, 1] threads: [128, 1, 1]  shared_memory: 0 bytes
    002: kCustomKernel [prev=001 (1) | next=004 (1)] jcnn_conv_forward_flat grid: [64, 28, 1] threads: [128, 1, 1]  shared_memory: 32768 bytes
    003: kConvolution  [source       | next=004 (1)] kConvolution
    004: kCustomKernel [prev=003 (1) | sink        ] input_reduce_fusion grid: [9, 1, 16] threads: [1024, 1, 1]  shared_memory: 0 bytes
"""
METADATA = """\
thunk_metadata {
  thunk_info {
    profile_annotation: "command_buffer_1"
  }
  thunk_kind: "kCommandBuffer"
}
thunk_metadata {
  thunk_info {
    profile_annotation: "loop_slice_fusion.2"
    thunk_id: 1
  }
  thunk_kind: "kCustomKernel"
}
thunk_metadata {
  thunk_info {
    profile_annotation: "pallas_call.3"
    thunk_id: 2
  }
  thunk_kind: "kCustomKernel"
}
thunk_metadata {
  thunk_info {
    profile_annotation: "cudnn-conv.1"
    thunk_id: 3
  }
  thunk_kind: "kConvolution"
}
thunk_metadata {
  thunk_info {
    profile_annotation: "input_reduce_fusion"
    thunk_id: 4
  }
  thunk_kind: "kCustomKernel"
}
"""
PTXAS = """\
I1201 19:47:59.573057    5230 subprocess_compilation.cc:201] Using /usr/local/bin/ptxas with version 13.0.88
I1201 19:47:59.714500    5230 subprocess_compilation.cc:356] ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'loop_slice_fusion_2' for 'sm_90a'
ptxas info    : Function properties for loop_slice_fusion_2
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 56 registers, used 0 barriers
ptxas info    : Compile time = 50.556 ms

ptxas info    : Compiling entry function 'jcnn_conv_forward_flat' for 'sm_90a'
ptxas info    : Function properties for jcnn_conv_forward_flat
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers
ptxas info    : Compiling entry function 'input_reduce_fusion' for 'sm_90a'
ptxas info    : Function properties for __internal_helper
    8 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Function properties for input_reduce_fusion
    24 bytes stack frame, 16 bytes spill stores, 12 bytes spill loads
ptxas warning : Registers are spilled to local memory in function 'input_reduce_fusion', 16 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 26 registers, used 1 barriers, 8320 bytes smem
ptxas info    : Compile time = 9.246 ms
ptxas info    : Compiling entry function 'jcnn_conv_forward_flat' for 'sm_90a'
ptxas info    : Function properties for jcnn_conv_forward_flat
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 228 registers, used 1 barriers
"""


def test_array_bytes_of_arrays_and_tuples():
    assert P.array_bytes("f32[2,3]{1,0}") == [24]
    assert P.array_bytes("(bf16[4]{0}, u8[0]{0}, /*index=2*/pred[3], s64[])") == [8, 0, 3, 8]


def test_hlo_kernels_bytes_follow_tuple_elements_views_and_skip_cudnn_scratch():
    ks = {k.name: k for k in P.hlo_kernels(HLO)}
    # parameters, bitcasts and the ROOT tuple launch nothing
    assert list(ks) == ["loop_slice_fusion.2", "pallas_call.3", "cudnn-conv.1",
                        "input_reduce_fusion"]
    assert (ks["loop_slice_fusion.2"].operand_bytes, ks["loop_slice_fusion.2"].result_bytes) \
        == (X, SLICE_OUT)
    assert ks["loop_slice_fusion.2"].kind == "kLoop"
    # the bitcast of element 1 is the half-channel slice; the weights read once
    assert ks["pallas_call.3"].bytes == HALF + W + PALLAS_OUT
    assert ks["pallas_call.3"].kind == "__gpu$xla.gpu.triton"
    assert ks["cudnn-conv.1"].bytes == X + W + X  # not the 4096 scratch bytes
    assert ks["input_reduce_fusion"].bytes == X + X + 32 + W  # elements 0 and 2 of the tuple


def test_hlo_kernels_needs_an_entry_computation():
    with pytest.raises(ValueError, match="ENTRY"):
        P.hlo_kernels("HloModule m\n%f (p: f32[]) -> f32[] {\n}\n")


def test_thunks_keep_leaves_in_order_with_grid_threads_and_shared_memory():
    ts = P.thunks(THUNKS)
    assert [t.id for t in ts] == [1, 2, 3, 4]  # the command buffer holds them, launches none
    assert ts[1] == P.Thunk(2, "kCustomKernel", "jcnn_conv_forward_flat", (64, 28, 1),
                            (128, 1, 1), 32768)
    assert (ts[1].blocks, ts[1].threads_per_block) == (64 * 28, 128)
    assert (ts[2].kind, ts[2].grid, ts[2].blocks) == ("kConvolution", (), 0)
    assert ts[3].blocks == 9 * 16


def test_thunk_names_map_ids_to_hlo_instructions():
    assert P.thunk_names(METADATA) == {1: "loop_slice_fusion.2", 2: "pallas_call.3",
                                       3: "cudnn-conv.1", 4: "input_reduce_fusion"}


def test_ptxas_reads_registers_spills_and_static_smem_of_entry_functions():
    p = P.ptxas(PTXAS)
    assert set(p) == {"loop_slice_fusion_2", "jcnn_conv_forward_flat", "input_reduce_fusion"}
    assert p["loop_slice_fusion_2"] == P.Ptxas(56, 0, 0, 0, 0)
    # the helper's 8-byte frame is not the kernel's; the kernel's own line is
    assert p["input_reduce_fusion"] == P.Ptxas(26, 16, 12, 24, 8320)
    assert p["input_reduce_fusion"].spill_bytes == 28
    assert p["jcnn_conv_forward_flat"].registers == 228  # compiled twice: the last report
    assert P.ptxas_version(PTXAS) == "13.0.88"
    assert P.ptxas_version("no log") is None


@pytest.mark.parametrize("threads, regs, smem, expect", [
    # 228 regs → 7,424 per warp (units of 256) × 4 warps = 29,696: 2 blocks in 65,536
    (128, 228, 32768, (2, "regs")),
    # 160 KiB + 1 KiB reserved: one block in 228 KiB
    (128, 198, 163840, (1, "smem")),
    # 1,024 threads: 2 blocks in 2,048 threads (regs: 26 → 1,024/warp × 32 = 32,768: 2 too)
    (1024, 26, 8320, (2, "threads")),
    # 2 warps, 1 KiB: the 32-block limit
    (64, 30, 1024, (32, "blocks")),
    # 56 regs → 1,792/warp: 36 warps → 9 blocks of 4 warps
    (128, 56, 0, (9, "regs")),
])
def test_occupancy_hand_worked(threads, regs, smem, expect):
    assert P.occupancy(threads, regs, smem) == expect


@pytest.mark.parametrize("threads, regs, smem, why", [
    (128, 100, 232449, "smem"), (1056, 16, 0, "threads"), (1024, 72, 0, "regs"),
    (32, 256, 0, "regs")])
def test_occupancy_zero_when_one_block_does_not_fit(threads, regs, smem, why):
    n, reason = P.occupancy(threads, regs, smem)
    assert n == 0 and why in reason


@given(st.integers(1, 1024), st.integers(1, 255), st.integers(0, 232448))
def test_occupancy_is_the_most_blocks_every_resource_holds(threads, regs, smem):
    """Against the definition: n blocks fit every per-SM budget, n + 1 blocks break one."""
    d = P.H200
    warps = -(-threads // 32)
    regs_block = -(-regs * 32 // 256) * 256 * warps
    smem_block = -(-(smem + 1024) // 128) * 128

    def fits(n):
        return (n * warps * 32 <= d.threads_per_sm and n <= d.blocks_per_sm
                and n * regs_block <= d.regs_per_sm and n * smem_block <= d.smem_per_sm)

    n, _ = P.occupancy(threads, regs, smem)
    if regs_block > d.regs_per_block:
        assert n == 0
    else:
        assert n >= 1 and fits(n) and not fits(n + 1)


def test_waves():
    assert P.waves(264, 1) == 2.0
    assert P.waves(64 * 28, 2) == pytest.approx(1792 / 264)
    assert P.waves(10, 0) == math.inf


def test_kernel_rows_join_the_three_dumps():
    rows = P.kernel_rows(HLO, THUNKS, METADATA, PTXAS)
    assert [r["hlo"] for r in rows] == ["loop_slice_fusion.2", "pallas_call.3", "cudnn-conv.1",
                                        "input_reduce_fusion"]
    pallas, cudnn, reduce = rows[1], rows[2], rows[3]
    assert (pallas["registers"], pallas["smem"], pallas["per_sm"]) == (228, 32768, 2)
    assert pallas["waves"] == pytest.approx(64 * 28 / (2 * 132))
    assert pallas["bytes"] == HALF + W + PALLAS_OUT
    # cuDNN: bytes, no grid, no registers
    assert (cudnn["kind"], cudnn["grid"], cudnn["registers"], cudnn["per_sm"]) \
        == ("__cudnn$convForward", [], None, None)
    # static (ptxas) + dynamic (thunk) shared memory; the spill carried over
    assert (reduce["smem"], reduce["spill"], reduce["per_sm"]) == (8320, 28, 2)
    s = P.summarize(rows)
    assert s["kernels"] == 4 and s["spill_bytes"] == 28 and s["max_registers"] == 228
    assert s["hbm_bytes"] == sum(k.bytes for k in P.hlo_kernels(HLO))
    assert s["min_per_sm"] == 2


def test_kernel_rows_without_metadata_match_kernels_by_symbol():
    rows = P.kernel_rows(HLO, THUNKS, "", PTXAS)
    assert [r["hlo"] for r in rows] == ["loop_slice_fusion.2", None, None, "input_reduce_fusion"]
    assert rows[0]["bytes"] == X + SLICE_OUT and rows[1]["bytes"] is None


def _result(layer, dtype, jb, lb, jk=3, lk=2, rows=(), ok=True):
    j = {"ok": ok, "rows": list(rows), "summary": {"kernels": jk, "hbm_bytes": jb,
         "spill_bytes": 0, "max_smem": 0, "max_registers": 0, "min_per_sm": 4},
         "roofline": P.roofline(jb, 1e9, dtype)}
    if not ok:
        j["error"] = "Shared memory size limit exceeded"
    lx = {"ok": True, "rows": [], "summary": {"kernels": lk, "hbm_bytes": lb}, "roofline":
          P.roofline(lb, 1e9, dtype)}
    return {"layer": layer, "dtype": dtype, "plan": "pallas,pallas,pallas", "jcnn": j,
            "lax": lx, "bytes_ratio": jb / lb if ok else None}


def test_roofline_is_the_larger_of_bandwidth_and_peak_time():
    r = P.roofline(4.8e12 * 1e-6, 0, "float32")  # 1 µs of bytes, no FLOPs
    assert r["t_mem_us"] == pytest.approx(1.0) and r["t_us"] == pytest.approx(1.0)
    r = P.roofline(0, 989.4e12 * 2e-6, "bfloat16")  # 2 µs at the bf16 peak
    assert r["t_us"] == pytest.approx(2.0)
    assert P.roofline(0, 989.4e12 * 2e-6, "float32")["t_us"] == pytest.approx(4.0, rel=1e-3)


def test_geomeans_render_and_replace_section():
    results = [_result("a", "float32", 200, 100, jk=2, lk=1),
               _result("b", "float32", 800, 100, jk=8, lk=1),
               _result("c", "float32", 1, 1, ok=False)]
    g = P.geomeans(results)["float32"]
    assert g["layers"] == 2 and g["bytes"] == pytest.approx(4.0) \
        and g["kernels"] == pytest.approx(4.0)
    sec = P.render(results, "python -m benchmarks.gpu_offline")
    assert sec.startswith(P.START) and sec.endswith(P.END)
    assert "| a | float32 | pallas,pallas,pallas | 2/1 |" in sec
    assert "does not compile" in sec and "HBM bytes 4.00" in sec
    doc = f"# B\n\nbefore\n\n{P.START}\nold\n{P.END}\n\nafter\n"
    new = P.replace_section(doc, sec)
    assert new == f"# B\n\nbefore\n\n{sec}\n\nafter\n"
    assert P.replace_section(new, sec) == new
    assert P.replace_section("# B\n", sec) == f"# B\n\n{sec}\n"


def test_problems_name_what_fails_the_guard():
    assert P.problems(_result("a", "float32", 2, 1)) == ([], [])
    fail, _ = P.problems(_result("c", "bfloat16", 1, 1, ok=False))
    assert fail == ["c bfloat16: jcnn's program does not compile: Shared memory size limit "
                    "exceeded"]
    rows = P.kernel_rows(HLO, THUNKS, METADATA, PTXAS)
    spill = "d float32: XLA kernel input_reduce_fusion spills 28 bytes (26 registers, 1024 threads)"
    assert P.problems(_result("d", "float32", 2, 1, rows=rows)) == ([], [spill])
    assert P.problems(_result("d", "float32", 2, 1, rows=rows), strict=True) == ([spill], [])
    # the same spill in a Pallas kernel, or a kernel no SM holds, fails
    rows[3] = dict(rows[3], kind="__gpu$xla.gpu.triton")
    rows[0] = dict(rows[0], per_sm=0, limit="1 B smem > 0")
    fail, warn = P.problems(_result("d", "float32", 2, 1, rows=rows))
    assert warn == [] and fail == ["d float32: kernel loop_slice_fusion_2 does not fit on an "
                                   "SM (1 B smem > 0)", spill.replace("XLA", "Pallas")]


def test_layers_are_the_gpu_suite_table():
    table = gpu_offline.layers()
    assert list(table.values()) == gpu.LAYERS + gpu.QUICK_LAYERS
    assert all(a in table for a in gpu_offline.ALIASES.values())
    assert gpu_offline.layer_name((64, 224, 224, 3), (7, 7, 3, 64), 2, 1) == "224x3-7x7-s2"
    assert gpu_offline.layer_name((64, 56, 56, 144), (3, 3, 1, 144), 1, 144) == "56x144-dw"


@pytest.mark.parametrize("spec", gpu.LAYERS)
def test_same_pads_and_flop_agree_with_lax(spec):
    """Pads: lax's own SAME split; FLOPs: 3 × 2 × (output elements) × (window × C_in/groups),
    the output shape from lax."""
    import jax
    from jax import lax
    _, xs, ws, s, g = spec
    assert gpu_offline.same_pads(xs, ws, s) == tuple(
        lax.padtype_to_pads(xs[1:-1], ws[:-2], (s, s), "SAME"))
    y = jax.eval_shape(lambda x, w: lax.conv_general_dilated(
        x, w, (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=g), jax.ShapeDtypeStruct(xs, "float32"),
        jax.ShapeDtypeStruct(ws, "float32"))
    assert gpu_offline.flop(xs, ws, s, g) == 3 * 2 * math.prod(y.shape) * math.prod(ws[:-1])


def test_unknown_layer_is_refused(capsys):
    with pytest.raises(SystemExit):
        gpu_offline.main(["--layers", "l99"])
    assert "unknown layers ['l99']" in capsys.readouterr().err


def test_one_tiny_layer_compiles_for_an_h200_end_to_end(tmp_path):
    """jax ≥ 0.11 with the CUDA plugin only (``make gpu-offline``): no GPU is needed."""
    pytest.importorskip("jax_cuda12_plugin")
    import jax
    if tuple(int(v) for v in jax.__version__.split(".")[:2]) < (0, 11):
        pytest.skip(f"deviceless CUDA compiles need jax >= 0.11, not {jax.__version__}")
    spec = {"name": "16x8", "x": [4, 16, 16, 8], "w": [3, 3, 8, 8], "stride": 1, "groups": 1,
            "dtype": "float32"}
    res = {who: gpu_offline.compile_program(dict(spec, who=who), sys.executable, 600)
           for who in ("jcnn", "lax")}
    for who, r in res.items():
        assert r["ok"], (who, r.get("error"))
        assert r["rows"] and r["ptxas_version"]
        # at least x, w, ct read and y, dx, dw written
        compulsory = 4 * (3 * 4 * 16 * 16 * 8 + 2 * 3 * 3 * 8 * 8)
        assert r["summary"]["hbm_bytes"] >= compulsory
        for row in r["rows"]:
            if row["grid"]:  # every generated kernel was seen by ptxas and fits an SM
                assert row["registers"] and row["per_sm"] >= 1, row
    assert any(r["kind"].startswith("__cudnn$conv") for r in res["lax"]["rows"])
    assert "plan" in res["jcnn"] and not res["jcnn"]["plan"].startswith("?")
