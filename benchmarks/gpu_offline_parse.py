"""Readers of XLA's GPU compile dumps, for ``benchmarks.gpu_offline`` (pure text in, rows out).

A deviceless compile for an H200 leaves three records of the program it built:

* the optimized HLO (``*after_optimizations.txt``): every kernel as an instruction of the
  entry computation, with its operand and result shapes — the HBM bytes it moves, counting
  each operand read once and each result written once;
* the thunk sequence (``*thunk_sequence.txt``, with ``*thunk_metadata.txt`` naming the HLO
  instruction of each thunk): what runs, in order, with each kernel's grid, threads per block
  and dynamic shared memory;
* ptxas' log (``-v``): registers, static shared memory and spill bytes per kernel.

``kernel_rows`` joins them; ``occupancy`` turns a row into resident blocks per SM and
``waves`` into waves over the SMs; ``render`` and ``replace_section`` write the
BENCHMARKS.md section.  Nothing here imports jax: the tests run these on hand-made dumps.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2,
               "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16,
               "f8e4m3fn": 1, "f8e5m2": 1}
_ARRAY = re.compile(r"\b(" + "|".join(DTYPE_BYTES) + r")\[([\d,]*)\]")
# ops that launch nothing: views, tuples, inputs
_NO_KERNEL = {"parameter", "constant", "bitcast", "tuple", "get-tuple-element", "after-all",
              "partition-id", "replica-id", "opt-barrier"}
# thunks that only hold others
_CONTAINERS = {"kCommandBuffer", "kSequential", "kWhile", "kConditional", "kDynamicSlice"}


def array_bytes(shape_text: str) -> list[int]:
    """Bytes of each array in an HLO shape (``f32[2,3]{1,0}`` → ``[24]``; a tuple → one
    entry per element, in order)."""
    out = []
    for m in _ARRAY.finditer(shape_text):
        out.append(math.prod(int(d) for d in m[2].split(",") if d) * DTYPE_BYTES[m[1]])
    return out


_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")


def _split_instruction(rest: str):
    """``shape op(operands), attrs`` → (shape text, op, operand text, attrs)."""
    depth, i = 0, 0
    if rest.startswith("("):  # a tuple shape: up to its closing parenthesis
        for i, ch in enumerate(rest):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                break
        i += 1
    else:
        i = rest.index(" ")
    shape, tail = rest[:i], rest[i:].lstrip()
    m = re.match(r"([\w\-]+)\(", tail)
    if not m:
        return None
    depth, j = 0, m.end() - 1
    for j in range(m.end() - 1, len(tail)):
        depth += tail[j] == "("
        depth -= tail[j] == ")"
        if depth == 0:
            break
    return shape, m[1], tail[m.end():j], tail[j + 1:]


@dataclass(frozen=True)
class HloKernel:
    name: str          # HLO instruction name, as thunk metadata names it
    op: str            # fusion, custom-call, copy, ...
    kind: str          # fusion kind (kLoop, kInput, kCustom), custom-call target, or op
    operand_bytes: int
    result_bytes: int

    @property
    def bytes(self) -> int:
        return self.operand_bytes + self.result_bytes


def hlo_kernels(text: str) -> list[HloKernel]:
    """The instructions of the optimized HLO's ENTRY computation that launch work, with the
    bytes they read (each operand once) and write.  ``%t#k`` names element ``k`` of tuple
    ``t``; a cuDNN call's ``u8`` scratch (the last tuple element) is not counted."""
    start = text.find("\nENTRY ")
    if start < 0:
        if not text.startswith("ENTRY "):
            raise ValueError("hlo_kernels: no ENTRY computation in the HLO text")
        start = -1
    sizes: dict[str, list[int]] = {}
    rows = []
    for line in text[start + 1:].splitlines()[1:]:
        if line.startswith("}"):
            break
        m = _INSTR.match(line)
        if not m:
            continue
        parts = _split_instruction(m[2])
        if parts is None:
            continue
        shape, op, operands, attrs = parts
        sizes[m[1]] = array_bytes(shape)
        if op in _NO_KERNEL:
            continue
        read = 0
        for a in filter(None, (s.strip() for s in operands.split(","))):
            ref = re.match(r"%?([\w.\-]+)(?:#(\d+))?$", a.split(" ")[-1])
            if not ref or ref[1] not in sizes:
                continue
            elems = sizes[ref[1]]
            read += elems[int(ref[2])] if ref[2] is not None else sum(elems)
        target = re.search(r'custom_call_target="([^"]+)"', attrs)
        fkind = re.search(r"\bkind=(\w+)", attrs)
        kind = target[1] if target else fkind[1] if fkind else op
        written = sizes[m[1]]
        if target and "cudnn" in target[1] and len(written) > 1 \
                and _ARRAY.findall(shape)[-1][0] == "u8":
            written = written[:-1]
        rows.append(HloKernel(m[1], op, kind, read, sum(written)))
    return rows


@dataclass(frozen=True)
class Thunk:
    id: int
    kind: str              # kCustomKernel, kKernel, kConvolution, kGemm, ...
    kernel: str            # the kernel's symbol (or the thunk kind when it has none)
    grid: tuple = ()       # blocks (x, y, z); () for library calls (cuDNN, cuBLAS)
    threads: tuple = ()
    shared_memory: int = 0  # dynamic shared memory per block, bytes

    @property
    def blocks(self) -> int:
        return math.prod(self.grid) if self.grid else 0

    @property
    def threads_per_block(self) -> int:
        return math.prod(self.threads) if self.threads else 0


_THUNK = re.compile(r"^\s*(\d+):\s+(k\w+)\s*(?:\[[^\]]*\])?\s*(\S+)?(.*)$")


def thunks(text: str) -> list[Thunk]:
    """The leaf thunks of a thunk-sequence dump (containers such as a command buffer are
    skipped, their contents kept), in order."""
    out = []
    for line in text.splitlines():
        m = _THUNK.match(line)
        if not m or m[2] in _CONTAINERS:
            continue
        rest = m[4] or ""
        grid = re.search(r"grid:\s*\[([\d,\s]+)\]", rest)
        thr = re.search(r"threads:\s*\[([\d,\s]+)\]", rest)
        smem = re.search(r"shared_memory:\s*(\d+)", rest)
        dims = lambda g: tuple(int(v) for v in g[1].split(",")) if g else ()  # noqa: E731
        out.append(Thunk(int(m[1]), m[2], m[3] or m[2], dims(grid), dims(thr),
                         int(smem[1]) if smem else 0))
    return out


def thunk_names(metadata_text: str) -> dict[int, str]:
    """``thunk_id → HLO instruction`` from a ``*thunk_metadata.txt`` dump."""
    out = {}
    for block in metadata_text.split("thunk_metadata {")[1:]:
        name = re.search(r'profile_annotation:\s*"([^"]*)"', block)
        tid = re.search(r"thunk_id:\s*(\d+)", block)
        if name and tid:
            out[int(tid[1])] = name[1]
    return out


@dataclass(frozen=True)
class Ptxas:
    registers: int
    spill_stores: int = 0
    spill_loads: int = 0
    stack: int = 0
    static_smem: int = 0

    @property
    def spill_bytes(self) -> int:
        return self.spill_stores + self.spill_loads


def ptxas(log: str) -> dict[str, Ptxas]:
    """Registers, spills and static shared memory per entry function of a ``ptxas -v`` log
    (a kernel compiled twice keeps its last report)."""
    out = {}
    for sec in re.split(r"Compiling entry function '", log)[1:]:
        name = sec[:sec.index("'")]
        props = re.search(rf"Function properties for {re.escape(name)}\s+(\d+) bytes stack "
                          r"frame, (\d+) bytes spill stores, (\d+) bytes spill loads", sec)
        used = re.search(r"Used (\d+) registers([^\n]*)", sec)
        if not used:
            continue
        smem = re.search(r"(\d+) bytes smem", used[2])
        stores, loads, stack = (int(props[i]) for i in (2, 3, 1)) if props else (0, 0, 0)
        out[name] = Ptxas(int(used[1]), stores, loads, stack, int(smem[1]) if smem else 0)
    return out


def ptxas_version(log: str) -> str | None:
    m = re.search(r"Using \S*ptxas with version ([\d.]+)", log)
    return m[1] if m else None


# ---------------------------------------------------------------- occupancy and waves
@dataclass(frozen=True)
class Device:
    """What bounds resident blocks on one SM (CUDA occupancy rules of compute capability 9.0)."""
    name: str = "H200"
    sms: int = 132
    regs_per_sm: int = 65536
    regs_per_block: int = 65536
    max_regs_per_thread: int = 255
    reg_unit: int = 256            # registers are allocated per warp in units of 256
    smem_per_sm: int = 233472      # 228 KiB
    smem_per_block: int = 232448   # 227 KiB opt-in
    smem_reserved: int = 1024      # the runtime's share of each block
    smem_unit: int = 128
    threads_per_sm: int = 2048
    threads_per_block: int = 1024
    blocks_per_sm: int = 32
    hbm_bytes_per_s: float = 4.8e12
    # dense peaks, FLOP/s: FP32 without tensor cores, TF32 and bf16 tensor cores (H200 SXM)
    peak_f32: float = 66.9e12
    peak_tf32: float = 494.7e12
    peak_bf16: float = 989.4e12


H200 = Device()


def occupancy(threads: int, registers: int, smem: int, dev: Device = H200) -> tuple[int, str]:
    """``(blocks per SM, what limits it)`` for a kernel of ``threads`` per block,
    ``registers`` per thread and ``smem`` bytes of shared memory per block (static +
    dynamic); ``(0, why)`` when one block does not fit."""
    warps = -(-threads // 32)
    if threads > dev.threads_per_block:
        return 0, f"{threads} threads > {dev.threads_per_block}"
    if smem > dev.smem_per_block:
        return 0, f"{smem} B smem > {dev.smem_per_block}"
    regs_warp = -(-max(registers, 1) * 32 // dev.reg_unit) * dev.reg_unit
    if registers > dev.max_regs_per_thread or regs_warp * warps > dev.regs_per_block:
        return 0, f"{registers} regs × {threads} threads > {dev.regs_per_block}"
    limits = {"threads": dev.threads_per_sm // (warps * 32),
              "blocks": dev.blocks_per_sm,
              "regs": (dev.regs_per_sm // regs_warp) // warps}
    smem_block = -(-(smem + dev.smem_reserved) // dev.smem_unit) * dev.smem_unit
    limits["smem"] = dev.smem_per_sm // smem_block
    lim = min(limits, key=lambda k: (limits[k], k != "blocks"))
    return limits[lim], lim


def waves(blocks: int, per_sm: int, dev: Device = H200) -> float:
    """Grid blocks over the blocks the whole GPU holds at once (``inf`` when none fits)."""
    return blocks / (per_sm * dev.sms) if per_sm else math.inf


def kernel_rows(hlo: str, thunk_seq: str, metadata: str, log: str,
                dev: Device = H200) -> list[dict]:
    """One row per launched kernel (thunk order): its HLO instruction, kind, HBM bytes,
    grid, threads, registers, shared memory (static + dynamic), spills, blocks per SM and
    waves.  Library calls (cuDNN, cuBLAS) have bytes but no grid or registers."""
    hk = {k.name: k for k in hlo_kernels(hlo)}
    names = thunk_names(metadata)
    regs = ptxas(log)
    rows = []
    by_symbol = {n.replace(".", "_").replace("-", "_"): n for n in hk}
    for t in thunks(thunk_seq):
        # the metadata names the instruction; without it, the symbol XLA derives from it
        instr = names.get(t.id) or by_symbol.get(t.kernel)
        k = hk.get(instr)
        p = regs.get(t.kernel)
        row = {"thunk": t.id, "kind": k.kind if k else t.kind, "hlo": instr, "kernel": t.kernel,
               "bytes": k.bytes if k else None, "grid": list(t.grid),
               "threads": t.threads_per_block,
               "blocks": t.blocks, "registers": p.registers if p else None,
               "smem": t.shared_memory + (p.static_smem if p else 0),
               "spill": p.spill_bytes if p else 0, "per_sm": None, "limit": None, "waves": None}
        if t.grid and p:
            row["per_sm"], row["limit"] = occupancy(row["threads"], p.registers, row["smem"], dev)
            row["waves"] = waves(t.blocks, row["per_sm"], dev)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- summaries and tables
def roofline(hbm_bytes: int, flop: float, dtype: str, dev: Device = H200) -> dict:
    """Lower bounds in µs: bytes at HBM bandwidth, FLOPs at the dense tensor-core peak of
    ``dtype`` (f32 at JAX's default precision runs TF32 products), and their max."""
    peak = dev.peak_bf16 if dtype in ("bfloat16", "float16") else dev.peak_tf32
    t_mem = hbm_bytes / dev.hbm_bytes_per_s * 1e6
    t_flop = flop / peak * 1e6
    return {"t_mem_us": t_mem, "t_flop_us": t_flop, "t_us": max(t_mem, t_flop)}


def summarize(rows: list[dict]) -> dict:
    """Kernels, HBM bytes, spill bytes, largest shared memory and registers, lowest
    occupancy and most waves of one program's kernel rows."""
    fit = [r["per_sm"] for r in rows if r["per_sm"] is not None]
    return {"kernels": len(rows), "hbm_bytes": sum(r["bytes"] or 0 for r in rows),
            "spill_bytes": sum(r["spill"] for r in rows),
            "max_smem": max((r["smem"] for r in rows), default=0),
            "max_registers": max((r["registers"] or 0 for r in rows), default=0),
            "min_per_sm": min(fit, default=None),
            "max_waves": max((r["waves"] for r in rows if r["waves"] is not None), default=None)}


def gmean(values) -> float:
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else math.nan


def problems(result: dict, strict: bool = False) -> tuple[list[str], list[str]]:
    """``(failures, warnings)`` of the CI guard for one layer: jcnn's program does not compile,
    or one of its kernels fits no SM, or one of jcnn's own kernels (Pallas, compiled by
    Triton) spills — failures; a spill in one of XLA's fusions is a warning, unless
    ``strict``."""
    fail, warn = [], []
    j = result["jcnn"]
    tag = f"{result['layer']} {result['dtype']}"
    if not j.get("ok"):
        return [f"{tag}: jcnn's program does not compile: {short_error(j.get('error', ''))}"], []
    for r in j["rows"]:
        if r["spill"]:
            own = "triton" in r["kind"]
            (fail if own or strict else warn).append(
                f"{tag}: {'Pallas' if own else 'XLA'} kernel {r['kernel']} spills {r['spill']} "
                f"bytes ({r['registers']} registers, {r['threads']} threads)")
        if r["per_sm"] == 0:
            fail.append(f"{tag}: kernel {r['kernel']} does not fit on an SM ({r['limit']})")
    return fail, warn


def short_error(error: str) -> str:
    """The telling line of a compile error: a traceback's last ``...Error:`` line, else the
    first line."""
    lines = [ln.strip() for ln in (error or "").splitlines() if ln.strip()]
    named = [ln for ln in lines if re.match(r"[\w.]*(Error|Exception|Exit)\b", ln)]
    return (named[-1] if named else lines[0] if lines else "?")[:300]


def _num(v: float) -> str:
    """Three significant figures at most, no exponent: 1925, 30.1, 0.42."""
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def _mb(b):
    return _num(b / 1e6) if b is not None else "—"


def layer_table(results: list[dict]) -> list[list[str]]:
    """Header + one row per (layer, dtype): kernels, HBM MB, spills, smallest occupancy,
    roofline µs of jcnn and lax, and the ratios jcnn/lax."""
    head = ["layer", "dtype", "jcnn plan", "kernels jcnn/lax", "HBM MB jcnn/lax", "bytes ratio",
            "spill B", "max smem KiB", "min blocks/SM", "roofline µs jcnn/lax"]
    out = [head]
    for r in results:
        j, lx = r["jcnn"], r["lax"]
        js, ls = j.get("summary", {}), lx.get("summary", {})
        if not j.get("ok"):
            out.append([r["layer"], r["dtype"], r.get("plan", ""), "does not compile", "", "", "",
                        "", "", short_error(j.get("error", ""))[:100]])
            continue
        if not lx.get("ok"):
            ls = {}
        out.append([r["layer"], r["dtype"], r.get("plan", ""),
                    f"{js['kernels']}/{ls.get('kernels', '—')}",
                    f"{_mb(js['hbm_bytes'])}/{_mb(ls.get('hbm_bytes'))}",
                    f"{r['bytes_ratio']:.2f}" if r.get("bytes_ratio") else "—",
                    str(js["spill_bytes"]), f"{js['max_smem'] / 1024:.0f}",
                    str(js["min_per_sm"]) if js["min_per_sm"] is not None else "—",
                    _num(j["roofline"]["t_us"]) + "/"
                    + (_num(lx["roofline"]["t_us"]) if ls else "—")])
    return out


def kernel_table(rows: list[dict]) -> list[list[str]]:
    head = ["#", "kernel", "kind", "grid", "threads", "regs", "smem KiB", "spill B",
            "blocks/SM", "limit", "waves", "HBM MB"]
    out = [head]
    for r in rows:
        out.append([str(r["thunk"]), r["kernel"], r["kind"],
                    "×".join(map(str, r["grid"])) or "—", str(r["threads"] or "—"),
                    str(r["registers"] if r["registers"] is not None else "—"),
                    f"{r['smem'] / 1024:.1f}", str(r["spill"]),
                    str(r["per_sm"]) if r["per_sm"] is not None else "—", r["limit"] or "—",
                    f"{r['waves']:.2f}" if r["waves"] is not None else "—",
                    f"{r['bytes'] / 1e6:.1f}" if r["bytes"] is not None else "—"])
    return out


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def geomeans(results: list[dict]) -> dict[str, dict]:
    """Per dtype: geometric means of jcnn/lax HBM bytes, kernels and roofline time, over the
    layers where both compiled."""
    out = {}
    for dt in dict.fromkeys(r["dtype"] for r in results):
        both = [r for r in results if r["dtype"] == dt and r["jcnn"].get("ok")
                and r["lax"].get("ok")]
        out[dt] = {"layers": len(both),
                   "bytes": gmean(r["bytes_ratio"] for r in both),
                   "kernels": gmean(r["jcnn"]["summary"]["kernels"] / r["lax"]["summary"]["kernels"]
                                    for r in both if r["lax"]["summary"]["kernels"]),
                   "roofline": gmean(r["jcnn"]["roofline"]["t_us"] / r["lax"]["roofline"]["t_us"]
                                     for r in both)}
    return out


START, END = "<!-- gpu-offline:start -->", "<!-- gpu-offline:end -->"


def render(results: list[dict], command: str, meta: str = "") -> str:
    """The BENCHMARKS.md section, markers included."""
    d = H200
    about = (
        f"`{command}` compiles each layer's forward + backward (`y, vjp = jax.vjp(conv, x, w)`, "
        "returning `y` and both gradients for a dense cotangent) for an NVIDIA H200 "
        "on a CPU-only machine — XLA's deviceless compile, with its own Triton and ptxas — "
        "jcnn's CUDA plan against `lax.conv_general_dilated` (cuDNN).  HBM bytes: every "
        "kernel's operands read once and results written once, from the optimized HLO.  "
        f"Roofline: the larger of the bytes at {d.hbm_bytes_per_s / 1e12:.1f} TB/s and the FLOPs "
        f"at the dense tensor-core peak ({d.peak_tf32 / 1e12:.1f} TFLOP/s TF32 for f32 at JAX's "
        f"default precision, {d.peak_bf16 / 1e12:.1f} bf16; FP32 without tensor cores: "
        f"{d.peak_f32 / 1e12:.1f}).  Blocks/SM: the fewest of jcnn's kernels hold, from "
        f"registers, shared memory and threads ({d.sms} SMs; per SM 64 K registers, 228 KiB "
        "shared memory, 2,048 threads, 32 blocks).  No times: the lent GPU has the last word."
        + (f"  {meta}" if meta else ""))
    lines = [START, "## GPU: H200, compiled offline (no GPU)", "", about, "",
             markdown_table(layer_table(results)), ""]
    for dt, g in geomeans(results).items():
        lines.append(f"- {dt}, geometric mean over {g['layers']} layers (jcnn/lax): HBM bytes "
                     f"{g['bytes']:.2f}, kernels {g['kernels']:.2f}, "
                     f"roofline time {g['roofline']:.2f}")
    lines += ["", END]
    return "\n".join(lines)


def replace_section(text: str, section: str) -> str:
    """``text`` with the part between the gpu-offline markers replaced by ``section``
    (itself marked); appended when the markers are absent."""
    if START in text and END in text and text.index(START) < text.index(END):
        return text[:text.index(START)] + section + text[text.index(END) + len(END):]
    return text.rstrip("\n") + "\n\n" + section + "\n"
