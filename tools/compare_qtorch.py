# Compare QPyTorch against `lowp quantize` value for value (-0 and +0 count as equal).
#
#   python3 -m venv venv && venv/bin/pip install numpy ninja torch qtorch
#   PATH=$PWD/venv/bin:$PATH venv/bin/python tools/compare_qtorch.py target/release/lowp
#
# Writes its scratch files under /tmp/qcmp.
import os, subprocess, sys, numpy as np, torch
os.makedirs('/tmp/qcmp', exist_ok=True)
from qtorch.quant import float_quantize, fixed_point_quantize
LOWP = sys.argv[1]
rng = np.random.default_rng(0)
n = 200_000
# magnitudes from far below the subnormal range to far above the max, both signs
x = (rng.standard_normal(n) * np.exp2(rng.uniform(-30, 20, n))).astype(np.float32)
x[:1000] = rng.uniform(-4, 4, 1000).astype(np.float32)
np.save('/tmp/qcmp/x.npy', x)
def lowp(fmt, *flags):
    subprocess.run([LOWP, 'quantize', '/tmp/qcmp/x.npy', '/tmp/qcmp/y.npy', '--format', fmt, *flags],
                   check=True, capture_output=True)
    return np.load('/tmp/qcmp/y.npy')
def neq(a, b):
    return ~((a == b) | (np.isnan(a) & np.isnan(b)))
def diff(a, b):
    return int(np.sum(neq(a, b)))
t = torch.from_numpy(x)
for (E, M) in [(2, 1), (3, 2), (4, 3), (5, 2), (5, 7), (6, 5), (8, 7), (8, 3)]:
    q = float_quantize(t, exp=E, man=M, rounding="nearest").numpy()
    try:
        a = lowp(f'float(e={E},m={M},specials=none)', '--rounding', 'nearest-away', '--saturate')
    except subprocess.CalledProcessError as e:
        print(f'float e={E} m={M}: lowp refuses: {e.stderr.decode().strip()}'); continue
    print(f'float e={E} m={M}: qtorch max {np.abs(q).max():g}; mismatches (by value) {diff(q, a)} of {n}')
    bad = np.nonzero(neq(q, a))[0][:4]
    for i in bad:
        print(f'    x={x[i]!r} qtorch={q[i]!r} lowp={a[i]!r}')
for (W, F) in [(4, 2), (8, 4), (8, 0), (16, 8), (12, 11), (24, 4)]:
    q = fixed_point_quantize(t, wl=W, fl=F, rounding="nearest").numpy()
    a = lowp(f'fixed(wl={W},fl={F})', '--rounding', 'nearest')
    print(f'fixed wl={W} fl={F}: mismatches (by value) {diff(q, a)} of {n}')
    bad = np.nonzero(neq(q, a))[0][:4]
    for i in bad:
        print(f'    x={x[i]!r} qtorch={q[i]!r} lowp={a[i]!r}')
