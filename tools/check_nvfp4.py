#!/usr/bin/env python3
"""NVFP4 from `lowp quantize` against an independent NumPy + ml_dtypes implementation.

    python tools/check_nvfp4.py [LOWP_BINARY] [--device cpu|gpu]

Writes test arrays (magnitudes over many binades, zero blocks, blocks far below the
tensor's amax, tiny tensors whose scale is subnormal), runs
`lowp quantize X.npy Y.npy --format nvfp4 --codes C.npy`, and recomputes the recipe in
NumPy float32 with ml_dtypes' float8_e4m3fn and float4_e2m1fn casts (round to nearest
even): tensor scale s = amax / (448 * 6), block scale = e4m3((block amax / 6) / s),
element = e2m1(x / (scale * s)) clipped to +-6 (zero where the scale is zero, +-Inf
saturating), value = (element * scale) * s. Compares
the codes, block scales, tensor scale and decoded values bit for bit; exits 1 on any
difference. Needs numpy and ml_dtypes (pip install numpy ml_dtypes).
"""

import os
import subprocess
import sys
import tempfile

import ml_dtypes
import numpy as np


def recipe(x):
    """(codes, block scale bytes, tensor scale, values) of x under NVFP4, round to nearest."""
    f32 = np.float32
    finite = np.abs(x[np.isfinite(x)])
    amax = finite.max() if finite.size else f32(0)
    s = f32(amax) / f32(448 * 6)
    if s == 0:
        s = f32(1)
    codes, scales, values = [], [], []
    for i in range(0, x.size, 16):
        blk = x[i:i + 16]
        fin = np.abs(blk[np.isfinite(blk)])
        bamax = fin.max() if fin.size else f32(0)
        t = (f32(bamax) / f32(6)) / s
        scale = np.array([min(t, f32(448))], dtype=np.float32).astype(ml_dtypes.float8_e4m3fn)
        scales.append(int(scale.view(np.uint8)[0]))
        sv = scale.astype(np.float32)[0]
        d = f32(sv * s)
        if d == 0:
            # A zero scale stores zeros; +-Inf still saturates (and counts as an overflow).
            q = np.where(np.isfinite(blk), np.copysign(np.zeros_like(blk), blk),
                         np.clip(blk, f32(-6), f32(6)))
        else:
            q = np.clip(blk / d, f32(-6), f32(6))
        e = q.astype(ml_dtypes.float4_e2m1fn)
        c = e.view(np.uint8) & 0xF
        # ml_dtypes drops the sign of a zero code: lowp keeps it (code 8 is -0).
        c = np.where(np.signbit(blk) & (c == 0), 8, c)
        codes.extend(int(v) for v in c)
        ev = np.abs(e.astype(np.float32))
        v = (ev * sv).astype(np.float32) * s
        values.extend(np.where(np.signbit(blk), -v, v).astype(np.float32))
    return np.array(codes), np.array(scales), s, np.array(values, dtype=np.float32)


def cases():
    rng = np.random.default_rng(2026)
    for k in range(24):
        n = int(rng.integers(1, 3000))
        spread = (k % 6) * 8
        base = [1.0, 1e-20, 1e20, 1e-36, 3e-41, 1e30][k % 6]
        e = rng.integers(-spread, spread + 1, n)
        m = 1 + rng.random(n)
        sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        with np.errstate(over="ignore"):  # values past f32's range become +-Inf
            x = (sign * m * np.exp2(e) * base).astype(np.float32)
        x[(np.arange(n) // 16) % 7 == 3] = 0
        yield k, x


def main() -> int:
    import argparse
    ap = argparse.ArgumentParser(description="NVFP4 from lowp against NumPy + ml_dtypes")
    ap.add_argument("lowp", nargs="?", default=os.path.join("target", "release", "lowp"))
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    a = ap.parse_args()
    lowp, device = a.lowp, a.device
    bad = total = 0
    with tempfile.TemporaryDirectory() as d:
        for k, x in cases():
            xp, yp, cp = (os.path.join(d, f"{k}{s}.npy") for s in ("x", "y", "c"))
            np.save(xp, x)
            subprocess.run([lowp, "quantize", xp, yp, "--format", "nvfp4", "--codes", cp,
                            "--device", device], check=True, capture_output=True)
            codes, scales, s, values = recipe(x)
            got_codes = np.load(cp).astype(np.int64)
            got_scales = np.load(os.path.join(d, f"{k}c_scales.npy")).astype(np.int64)
            got_s = np.load(os.path.join(d, f"{k}c_tensor_scale.npy"))[0]
            got_v = np.load(yp)
            diffs = {
                "codes": int((got_codes != codes).sum()),
                "block scales": int((got_scales != scales).sum()),
                "tensor scale": int(got_s.view(np.uint32) != np.float32(s).view(np.uint32)),
                "values": int((got_v.view(np.uint32) != values.view(np.uint32)).sum()),
            }
            total += x.size
            if any(diffs.values()):
                bad += 1
                print(f"case {k} ({x.size} values): {diffs}")
    print(f"nvfp4 on {device}: {total} values in 24 tensors, "
          f"{'all equal to the NumPy/ml_dtypes recipe' if not bad else f'{bad} tensors differ'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
