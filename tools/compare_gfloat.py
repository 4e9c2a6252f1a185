# Compare `lowp quantize` (GPU and CPU) with gfloat on general minifloats beyond the golden files.
#
#   python3 -m venv venv && venv/bin/pip install numpy gfloat==0.5.2
#   venv/bin/python tools/compare_gfloat.py target/release/lowp
#
# Bits must agree exactly (any NaN matches any NaN); exits 1 on any mismatch. Writes scratch
# files under /tmp/gcmp.
import os, subprocess, sys, numpy as np
from gfloat import FormatInfo, RoundMode, round_ndarray
from gfloat.types import Domain

LOWP = sys.argv[1]
os.makedirs('/tmp/gcmp', exist_ok=True)
rng = np.random.default_rng(1)

def info(e, m, bias, specials):
    nans = {'ieee': 2**m - 1, 'nan': 1, 'none': 0}[specials]
    dom = Domain.Extended if specials == 'ieee' else Domain.Finite
    return FormatInfo(f'e{e}m{m}', 1 + e + m, m + 1, bias=bias, is_signed=True, domain=dom,
                      has_nz=True, num_high_nans=nans, has_subnormals=True, is_twos_complement=False)

def inputs(fi_max, n=60000):
    x = (rng.standard_normal(n) * np.exp2(rng.uniform(-40, np.log2(fi_max) + 3, n))).astype(np.float32)
    x[:8] = [0.0, -0.0, np.inf, -np.inf, fi_max, -fi_max, 2 * fi_max, np.nan]
    return x

modes = [('nearest', RoundMode.TiesToEven, False), ('nearest', RoundMode.TiesToEven, True),
         ('toward-zero', RoundMode.TowardZero, False), ('nearest-away', RoundMode.TiesToAway, False)]
total = 0
for (e, m, dbias, specials) in [(3, 4, 0, 'ieee'), (5, 3, 2, 'ieee'), (4, 6, -1, 'nan'), (6, 2, 0, 'nan'),
                                (3, 3, 1, 'none'), (7, 8, 0, 'ieee'), (2, 5, -2, 'none'), (5, 10, 4, 'nan'),
                                (4, 0, 0, 'nan'), (8, 6, 0, 'ieee')]:
    bias = 2**(e - 1) - 1 + dbias
    text = f'float(e={e},m={m},bias={bias},specials={specials})'
    fi = info(e, m, bias, specials)
    x = inputs(float(fi.max))
    if specials == 'none':
        x = x[~np.isnan(x)]  # gfloat refuses NaN in a format without NaN; lowp maps it to +0
    np.save('/tmp/gcmp/x.npy', x)
    for (rname, rmode, sat) in modes:
        gsat = sat or specials == 'none'
        want = round_ndarray(fi, x.astype(np.float64), rmode, gsat).astype(np.float32)
        for dev in ['gpu', 'cpu']:
            args = [LOWP, 'quantize', '/tmp/gcmp/x.npy', '/tmp/gcmp/y.npy', '--format', text,
                    '--rounding', rname, '--device', dev] + (['--saturate'] if sat else [])
            subprocess.run(args, check=True, capture_output=True)
            got = np.load('/tmp/gcmp/y.npy')
            bad = (got.view(np.uint32) != want.view(np.uint32)) & ~(np.isnan(got) & np.isnan(want))
            total += int(bad.sum())
            print(f'{text:<44} {rname:<13} sat={sat!s:<5} {dev}: {int(bad.sum())} mismatches of {len(x)}')
            for i in np.nonzero(bad)[0][:3]:
                print(f'    x={x[i]!r} gfloat={want[i]!r} lowp={got[i]!r}')
print('total mismatches', total)
sys.exit(1 if total else 0)
