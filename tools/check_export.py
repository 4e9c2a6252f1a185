#!/usr/bin/env python3
"""Reads `lowp export` files with Python's safetensors and PyTorch, as a user would.

    python tools/check_export.py STORED.safetensors FP32.safetensors

STORED is `lowp export RUN STORED --as stored`, FP32 the same checkpoint `--as fp32`.
Every parameter stored as a float dtype PyTorch has (float8_e4m3fn, float8_e5m2, float16,
bfloat16, float32; MX block scales as float8_e8m0fnu, per-tensor exponents as int32) is
loaded as that dtype, decoded by PyTorch and compared value for value with the f32 export.
Fixed point (integers k in int8/int16/int32, value k * 2^-fl) is decoded the same way;
codes of other formats are listed with their format. Exits 1 on any difference.
"""

import re
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file


def main() -> int:
    stored_path, fp32_path = sys.argv[1:3]
    stored = load_file(stored_path)
    fp32 = load_file(fp32_path)
    with safe_open(stored_path, "pt") as f:
        meta = f.metadata() or {}
    floats = {torch.float8_e4m3fn, torch.float8_e5m2, torch.float16, torch.bfloat16, torch.float32}
    bad = 0
    for name in sorted(fp32):
        want = fp32[name]
        if name not in stored:
            print(f"{name}: missing from {stored_path}")
            bad += 1
            continue
        t = stored[name]
        fmt = meta.get("format." + name, "f32")
        fixed = re.fullmatch(r"fixed\(wl=(\d+),fl=(\d+)\)", fmt)
        if fixed:
            # Two's-complement integers k, the value k * 2^-fl.
            got = torch.ldexp(t.to(torch.float64), torch.tensor(-float(fixed[2]))).to(torch.float32)
        elif t.dtype in floats:
            got = t.to(torch.float32)
        else:
            print(f"{name:<24} {str(t.dtype):<22} {list(t.shape)} codes of {fmt}")
            continue
        if name + ".block_scales" in stored:
            s = stored[name + ".block_scales"].to(torch.float32)
            flat = got.reshape(-1)
            got = (flat * s.repeat_interleave(32)[: flat.numel()]).reshape(got.shape)
        if name + ".scale_exp" in stored:
            got = torch.ldexp(got, stored[name + ".scale_exp"].to(torch.float32))
        same = got.shape == want.shape and torch.equal(got, want)
        print(f"{name:<24} {str(t.dtype):<22} {list(t.shape)} {fmt}: "
              f"{'equal to the f32 export' if same else 'DIFFERENT'}")
        bad += not same
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
