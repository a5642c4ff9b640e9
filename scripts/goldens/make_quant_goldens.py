#!/usr/bin/env python3
"""Golden files for tests/quant_test.cpp: ggml's quant formats, (de)quantized by references.

Run by hand with the tooling venv (see docs/contributing.md), from anywhere:

    ~/.cache/kiln/venv/bin/python scripts/goldens/make_quant_goldens.py

It writes tests/data/quant/ (README.md there describes the files). The references are

  * the `gguf` package's numpy (de)quantizers (gguf.quants), where it has them;
  * ggml's own C reference code in llama-cpp-python's libggml-base.so, called through ctypes
    (quantize_row_*_ref, dequantize_row_*), for what the gguf package lacks: the K-quant,
    IQ4 and Q8_1 quantizers and everything Q8_K;
  * for Q8_1 dequantization, which neither has (ggml only uses Q8_1 inside dot products), the
    definition x = d * q written out in numpy here.

Where both the gguf package and ggml implement something, the script checks that they agree
bit for bit before writing anything, so each golden is backed by both.
"""

from __future__ import annotations

import ctypes
import importlib.util
import re
import sys
from pathlib import Path

import gguf
import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "quant"

# ---------------------------------------------------------------------------------------------
# ggml through ctypes


def ggml_symbol_name(name: str) -> str:
    """ggml's spelling of a type in function names: q4_K, q4_0, iq4_nl."""
    return name[:-2] + "_K" if name.endswith("_k") else name


def load_ggml() -> ctypes.CDLL:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        sys.exit("llama-cpp-python is not installed in this Python (see docs/contributing.md)")
    lib = ctypes.CDLL(str(Path(spec.origin).parent / "lib" / "libggml-base.so"))
    lib.ggml_type_size.restype = ctypes.c_size_t
    lib.ggml_type_size.argtypes = [ctypes.c_int]
    lib.ggml_blck_size.restype = ctypes.c_int64
    lib.ggml_blck_size.argtypes = [ctypes.c_int]
    return lib


GGML = load_ggml()


def ggml_quantize(name: str, x: np.ndarray) -> np.ndarray:
    """ggml's quantize_row_<name>_ref on a whole number of blocks."""
    qtype = T[name.upper()]
    elems, nbytes = int(GGML.ggml_blck_size(qtype)), int(GGML.ggml_type_size(qtype))
    x = np.ascontiguousarray(x, dtype=np.float32)
    assert x.size % elems == 0
    out = np.zeros(x.size // elems * nbytes, dtype=np.uint8)
    fn = getattr(GGML, f"quantize_row_{ggml_symbol_name(name)}_ref")
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn(x.ctypes.data, out.ctypes.data, x.size)
    return out


def ggml_dequantize(name: str, q: np.ndarray) -> np.ndarray:
    """ggml's dequantize_row_<name> on a whole number of blocks."""
    qtype = T[name.upper()]
    elems, nbytes = int(GGML.ggml_blck_size(qtype)), int(GGML.ggml_type_size(qtype))
    q = np.ascontiguousarray(q, dtype=np.uint8)
    assert q.size % nbytes == 0
    out = np.zeros(q.size // nbytes * elems, dtype=np.float32)
    fn = getattr(GGML, f"dequantize_row_{ggml_symbol_name(name)}")
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn(q.ctypes.data, out.ctypes.data, out.size)
    return out


def numpy_dequantize_q8_1(q: np.ndarray) -> np.ndarray:
    """x = d * q. block_q8_1 is {f16 d; f16 s; int8 qs[32]} (36 bytes)."""
    blocks = q.reshape(-1, 36)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 4:36].copy().view(np.int8).astype(np.float32)
    return (qs * d).reshape(-1)


# ---------------------------------------------------------------------------------------------
# References per type

# (quantizer reference, dequantizer reference) per lowercase dtype name.
QUANTIZERS = {
    "f16": "gguf",
    "bf16": "gguf",
    "q4_0": "gguf+ggml",
    "q4_1": "gguf+ggml",
    "q5_0": "gguf+ggml",
    "q5_1": "gguf+ggml",
    "q8_0": "gguf+ggml",
    "q8_1": "ggml",
    "q2_k": "ggml",
    "q3_k": "ggml",
    "q4_k": "ggml",
    "q5_k": "ggml",
    "q6_k": "ggml",
    "q8_k": "ggml",
    "iq4_nl": "ggml",
    "iq4_xs": "ggml",
}
DEQUANTIZERS = {
    "f32": "gguf",
    "f16": "gguf",
    "bf16": "gguf",
    "q4_0": "gguf+ggml",
    "q4_1": "gguf+ggml",
    "q5_0": "gguf+ggml",
    "q5_1": "gguf+ggml",
    "q8_0": "gguf+ggml",
    "q8_1": "numpy",
    "q2_k": "gguf+ggml",
    "q3_k": "gguf+ggml",
    "q4_k": "gguf+ggml",
    "q5_k": "gguf+ggml",
    "q6_k": "gguf+ggml",
    "q8_k": "ggml",
    "iq4_nl": "gguf+ggml",
    "iq4_xs": "gguf+ggml",
}


def reference_quantize(name: str, x: np.ndarray) -> np.ndarray:
    how = QUANTIZERS[name]
    if how.startswith("gguf"):
        q = np.ascontiguousarray(gguf_quantize(x, T[name.upper()])).view(np.uint8).reshape(-1)
        if how == "gguf+ggml":
            other = ggml_quantize(name, x)
            assert np.array_equal(q, other), f"{name}: gguf and ggml quantizers disagree"
        return q
    return ggml_quantize(name, x)


def reference_dequantize(name: str, q: np.ndarray) -> np.ndarray:
    how = DEQUANTIZERS[name]
    if how == "numpy":
        return numpy_dequantize_q8_1(q)
    if how == "ggml":
        return ggml_dequantize(name, q)
    y = np.asarray(gguf_dequantize(q, T[name.upper()]), dtype=np.float32).reshape(-1)
    if how == "gguf+ggml":
        other = ggml_dequantize(name, q)
        assert np.array_equal(y.view(np.uint32), other.view(np.uint32)), (
            f"{name}: gguf and ggml dequantizers disagree"
        )
    return y


# ---------------------------------------------------------------------------------------------
# Inputs


def quantize_input() -> np.ndarray:
    """10 super-blocks of 256 floats (so 80 legacy blocks of 32), each a different hard case.

    No element is zero."""
    rng = np.random.default_rng(20240601)
    n = 256
    blocks = []
    # 0: plain normal.
    blocks.append(rng.normal(0, 1, n))
    # 1: normal with a few large outliers of either sign.
    b = rng.normal(0, 1, n)
    idx = rng.choice(n, 6, replace=False)
    b[idx] = rng.choice([-1, 1], 6) * rng.uniform(30, 100, 6)
    blocks.append(b)
    # 2: one value everywhere.
    blocks.append(np.full(n, 0.7))
    # 3: negative only.
    blocks.append(-rng.uniform(0.05, 3.0, n))
    # 4: each 32-element sub-block constant, values of both signs and several magnitudes.
    consts = [0.7, -1.3, 2.5, -0.01, 1e-3, 5.0, -5.0, 0.25]
    blocks.append(np.repeat(consts, 32))
    # 5: positive only, each sub-block scaled by 10^U(-2, 2): very uneven sub-block scales.
    b = rng.uniform(0.01, 1.0, n) * np.repeat(10.0 ** rng.uniform(-2, 2, 8), 32)
    blocks.append(b)
    # 6: tiny values: the f16 scales are subnormal.
    blocks.append(rng.normal(0, 1e-4, n))
    # 7: large values.
    blocks.append(rng.normal(0, 300, n))
    # 8: heavy tails.
    blocks.append(rng.laplace(0, 1, n) ** 3)
    # 9: sub-blocks alternately negative-only and positive-only (16-element halves differ too),
    #    one sub-block almost constant, one with a single outlier.
    b = rng.uniform(0.1, 2.0, n) * np.tile(np.repeat([1, -1], 16), 8)
    b[64:96] = 1.5 + rng.normal(0, 1e-3, 32)
    b[160:192] = rng.normal(0, 0.1, 32)
    b[170] = -40.0
    blocks.append(b)
    x = np.concatenate(blocks).astype(np.float32)
    x[x == 0] = np.float32(1e-3)
    return x


class XorShift32:
    """Marsaglia's xorshift32; tests/quant_test.cpp has the same generator."""

    def __init__(self, seed: int) -> None:
        self.state = seed & 0xFFFFFFFF

    def next(self) -> int:
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x

    def uniform(self) -> float:
        """In [-1, 1), on a 2^-23 grid: exact in float32, so C++ computes the same values."""
        return (self.next() >> 8) * 2.0**-23 - 1.0


STRESS_SUPER_BLOCKS = 16


def stress_input() -> np.ndarray:
    """Many more blocks for the quantizers' searches, generated so that C++ can regenerate them
    bit for bit (so only the quantized bytes are stored). Per 32-element sub-block: a mode, a
    power-of-two scale and an outlier position, then 32 triangular values (mean of two uniforms),
    all exact float32 arithmetic. Zeros are replaced by scale * 2^-12."""
    rng = XorShift32(0x9E3779B9)
    out = []
    for _ in range(STRESS_SUPER_BLOCKS * 8):
        mode = rng.next() % 6
        scale = 2.0 ** (int(rng.next() % 17) - 10)
        outlier = rng.next() % 32
        v = [(rng.uniform() + rng.uniform()) * 0.5 for _ in range(32)]
        if mode == 1:  # positive only
            v = [abs(a) for a in v]
        elif mode == 2:  # negative only
            v = [-abs(a) for a in v]
        elif mode == 3:  # all equal
            v = [v[0]] * 32
        elif mode == 4:  # one outlier
            v[outlier] *= 64
        elif mode == 5:  # tiny: the f16 scales underflow
            scale = 2.0**-24
        v = [a * scale if a != 0 else scale * 2.0**-12 for a in v]
        out.extend(v)
    return np.array(out, dtype=np.float32)


# Byte offsets of the f16 scale fields in each block (the rest of a raw block is random bytes).
F16_SCALES = {
    "q4_0": [0], "q4_1": [0, 2], "q5_0": [0], "q5_1": [0, 2], "q8_0": [0], "q8_1": [0, 2],
    "q2_k": [80, 82], "q3_k": [108], "q4_k": [0, 2], "q5_k": [0, 2], "q6_k": [208],
    "iq4_nl": [0], "iq4_xs": [0],
}  # fmt: skip
F32_SCALES = {"q8_k": [0]}


def raw_blocks(name: str, rng: np.random.Generator) -> np.ndarray:
    """Random blocks of type `name`: random bytes, with finite scales of either sign (some
    subnormal f16), and for plain float types random finite values (including subnormals)."""
    if name == "f32":
        bits = rng.integers(0, 2**32, 512, dtype=np.uint64).astype(np.uint32)
        exp = (bits >> 23) & 0xFF
        bits = np.where(exp == 0xFF, bits & ~np.uint32(0x40000000), bits)  # no inf/nan
        return bits.view(np.uint8)
    if name in ("f16", "bf16"):
        bits = rng.integers(0, 2**16, 512, dtype=np.uint32).astype(np.uint16)
        top = np.uint16(0x4000)  # the top exponent bit: clearing it makes any value finite
        if name == "f16":
            bits = np.where((bits & 0x7C00) == 0x7C00, bits & ~top, bits)
        else:
            bits = np.where((bits & 0x7F80) == 0x7F80, bits & ~top, bits)
        return bits.astype(np.uint16).view(np.uint8)
    qtype = T[name.upper()]
    elems, nbytes = GGML_QUANT_SIZES[qtype]
    if name == "q8_1":
        nbytes = 36  # see sizes: the gguf package still has the old 40-byte layout
    nblocks = 8 if elems == 32 else 3
    blocks = rng.integers(0, 256, (nblocks, nbytes), dtype=np.uint16).astype(np.uint8)
    for off in F16_SCALES.get(name, []):
        mag = 10.0 ** rng.uniform(-6, 1, nblocks)
        scale = (rng.choice([-1.0, 1.0], nblocks) * mag).astype(np.float16)
        blocks[:, off : off + 2] = scale.view(np.uint8).reshape(nblocks, 2)
    for off in F32_SCALES.get(name, []):
        mag = 10.0 ** rng.uniform(-8, 1, nblocks)
        scale = (rng.choice([-1.0, 1.0], nblocks) * mag).astype(np.float32)
        blocks[:, off : off + 4] = scale.view(np.uint8).reshape(nblocks, 4)
    return blocks.reshape(-1)


# ---------------------------------------------------------------------------------------------
# Block sizes


def dtypes_def() -> list[tuple[str, int, int, int]]:
    """(name, ggml id, block elems, block bytes) of every ggml type in ir/dtypes.def."""
    text = (ROOT / "ir" / "dtypes.def").read_text()
    rows = re.findall(r'^X\((\w+), "(\w+)", (\d+), (\d+), (\d+), (?:true|false)\)', text, re.M)
    return [(name, int(i), int(e), int(b)) for _, name, i, e, b in rows if int(i) != 1000]


def sizes_table() -> str:
    lines = [
        "# Block shapes of every ggml type in ir/dtypes.def, by scripts/goldens/make_quant_goldens.py",
        "# name ggml_id ggml_block_elems ggml_block_bytes gguf_py_block_elems gguf_py_block_bytes",
        "# ggml_*: ggml_blck_size/ggml_type_size from libggml-base.so (authoritative).",
        "# gguf_py_*: gguf.constants.GGML_QUANT_SIZES (gguf " + package_version("gguf") + ").",
    ]
    for name, gid, _, _ in dtypes_def():
        qtype = T(gid)
        assert qtype.name.lower() == name, (qtype.name, name)
        pe, pb = GGML_QUANT_SIZES[qtype]
        ge, gb = int(GGML.ggml_blck_size(gid)), int(GGML.ggml_type_size(gid))
        lines.append(f"{name} {gid} {ge} {gb} {pe} {pb}")
    return "\n".join(lines) + "\n"


def package_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return "?"


# ---------------------------------------------------------------------------------------------


README = """# Quant goldens

Made by `scripts/goldens/make_quant_goldens.py` (do not edit by hand); read by
`tests/quant_test.cpp`. All binary files are raw little-endian arrays with no header.

- `input.f32`: 2560 float32 inputs (10 super-blocks of 256: normal, outliers, all-equal,
  negative-only, constant sub-blocks, uneven sub-block scales, tiny, large, heavy-tailed, mixed
  signs). No element is zero.
- `NAME.q`: `input.f32` quantized to type NAME (ir/dtypes.def names) by the reference.
- `NAME.deq.f32`: `NAME.q` dequantized by the reference.
- `NAME.stress.q`: 16 super-blocks (4096 values) from a generator that the test re-runs in C++
  (`stress_input` in the script, `stress_input` in the test: xorshift32, exact float32
  arithmetic), quantized by the reference. Per 32-element sub-block one of: plain, positive
  only, negative only, all equal, one outlier, tiny (f16 scales underflow); power-of-two
  scales from 2^-10 to 2^6. Not for f16/bf16.
- `NAME.raw.q`: random blocks of type NAME (random bytes; scales are finite f16/f32 values of
  either sign, some subnormal; F32/F16/BF16 are random finite values).
- `NAME.raw.deq.f32`: `NAME.raw.q` dequantized by the reference.
- `sizes.txt`: block shape of every type in ir/dtypes.def per ggml and per the gguf package.
  They differ only for q8_1: the gguf package still lists the old 40-byte layout; ggml's
  `block_q8_1` is 36 bytes ({f16 d, f16 s, int8 qs[32]}).

References:

- "gguf": the gguf package's numpy code, gguf.quants (gguf {gguf});
- "ggml": ggml's C reference code in llama-cpp-python's libggml-base.so (llama-cpp-python
  {llama}): quantize_row_*_ref and dequantize_row_*;
- "gguf+ggml": the gguf package, checked bit for bit against ggml by the script;
- "numpy": x = d * q written in the script (Q8_1 only: neither has a Q8_1 dequantizer).

| type | quantize (`NAME.q`) | dequantize (`*.deq.f32`) |
|------|---------------------|--------------------------|
"""


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    x = quantize_input()
    x.tofile(OUT / "input.f32")
    stress = stress_input()
    for name in QUANTIZERS:
        q = reference_quantize(name, x)
        q.tofile(OUT / f"{name}.q")
        reference_dequantize(name, q).astype(np.float32).tofile(OUT / f"{name}.deq.f32")
        if name not in ("f16", "bf16"):
            reference_quantize(name, stress).tofile(OUT / f"{name}.stress.q")
    rng = np.random.default_rng(7)
    for name in DEQUANTIZERS:
        q = raw_blocks(name, rng)
        y = reference_dequantize(name, q).astype(np.float32)
        assert np.all(np.isfinite(y)), name
        q.tofile(OUT / f"{name}.raw.q")
        y.tofile(OUT / f"{name}.raw.deq.f32")
    (OUT / "sizes.txt").write_text(sizes_table())
    rows = [
        f"| {n} | {QUANTIZERS.get(n, '-')} | {DEQUANTIZERS.get(n, '-')} |" for n in DEQUANTIZERS
    ]
    readme = README.replace("{gguf}", package_version("gguf"))
    readme = readme.replace("{llama}", package_version("llama_cpp_python"))
    (OUT / "README.md").write_text(readme + "\n".join(rows) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
