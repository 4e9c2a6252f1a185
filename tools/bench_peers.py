# Training-step time of lowp next to PyTorch (fp32) and QPyTorch (HFP8 emulation) on the
# same machine, in one run: the MLP (784-256-128-10), LeNet-5 and ResNet-8 at batch 64,
# SGD (lr 0.05, momentum 0.9), the same models lowp's `cargo bench --bench train` steps.
#
#   python3 -m venv venv && venv/bin/pip install numpy ninja torch qtorch
#   PATH=$PWD/venv/bin:$PATH venv/bin/python tools/bench_peers.py [--lowp-bench BINARY]
#       [--models mlp,lenet,resnet8] [--steps N] [--out TABLE.md] [--device cuda --gpu-extras]
#       [--gemm-bench BINARY] [--gemm-case 'gemm 512x512x512' ('' skips it)]
#
# lowp's figures come from the bench (`cargo bench --bench train`, or the bench binary
# given, run here with `--bench`); PyTorch's from the same models built with torch.nn and
# timed here, on the CPU (torch's threads set to the machine's cores) or with `--device
# cuda` on a GPU (`--gpu-extras` adds PyTorch's copy bandwidth and matmul rates there).
# Then lowp's GEMM bench for one case (`--gemm-case`, every operand format it runs, each
# beside its fp32) and, for a square case, PyTorch's fp32 matmul of that size on the same
# device.
# QPyTorch's HFP8 is fake quantization as its examples do it: the input, every weight and
# every layer's output rounded to e4m3 in the forward pass, every gradient that flows back
# through them to e5m2 (QPyTorch's nearest: ties away from zero, saturating), the fp32
# weights updated by torch's SGD: the map of examples/precision/hfp8.toml. A step is
# forward, loss, backward and update on a fixed synthetic batch; the median over the timed
# steps is a round's figure. A shared host's speed drifts by 2x within minutes, so each
# model is timed in `--rounds` rounds (default 3), lowp's steps then the peers' in each:
# the table gives the median of the rounds' figures and of their ratios (each lowp's over
# the peer's of the same round), with the ratios' range.
import argparse, os, re, statistics, subprocess, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument('--lowp-bench', help='the train bench binary (default: cargo bench --bench train)')
p.add_argument('--models', default='mlp,lenet,resnet8')
p.add_argument('--steps', type=int, default=0, help='timed steps per case (default: 20, 5 for ResNet-8)')
p.add_argument('--batch', type=int, default=64)
p.add_argument('--rounds', type=int, default=3,
               help="rounds of each model's steps, lowp's then the peers' (default 3)")
p.add_argument('--gemm-bench', help='the GEMM bench binary (default: cargo bench --bench gemm)')
p.add_argument('--gemm-case', default='gemm 512x512x512',
               help="the GEMM bench's case (LOWP_BENCH_CASE; '' skips the GEMM)")
p.add_argument('--out', help='also write the table (Markdown) here')
p.add_argument('--device', default='cpu', help='where PyTorch runs: cpu or cuda')
p.add_argument('--gpu-extras', action='store_true',
               help='also device-to-device copy bandwidth and fp32 (TF32 off) and bf16 matmul at 4096^3')
args = p.parse_args()
models = args.models.split(',')
torch.set_num_threads(os.cpu_count() or 1)
dev = torch.device(args.device)


def sync():
    if dev.type == 'cuda':
        torch.cuda.synchronize()


def qpytorch_hfp8():
    """Forward e4m3 / backward e5m2 quantizers (QPyTorch), or None if it is not installed."""
    try:
        from qtorch import FloatingPoint
        from qtorch.quant import Quantizer, quantizer
    except ImportError:
        return None
    e4m3, e5m2 = FloatingPoint(exp=4, man=3), FloatingPoint(exp=5, man=2)
    act = Quantizer(forward_number=e4m3, backward_number=e5m2,
                    forward_rounding='nearest', backward_rounding='nearest')
    weight = quantizer(forward_number=e4m3, backward_number=e5m2,
                       forward_rounding='nearest', backward_rounding='nearest')
    return act, weight


class Q(nn.Module):
    """Rounds what passes through (forward) and its gradient (backward); identity in fp32."""

    def __init__(self, hfp8):
        super().__init__()
        self.q = hfp8[0] if hfp8 else None

    def forward(self, x):
        return self.q(x) if self.q else x


def qweight(hfp8, w):
    return hfp8[1](w) if hfp8 else w


class QLinear(nn.Linear):
    def __init__(self, i, o, hfp8):
        super().__init__(i, o)
        self.hfp8 = hfp8

    def forward(self, x):
        return F.linear(x, qweight(self.hfp8, self.weight), qweight(self.hfp8, self.bias))


class QConv(nn.Conv2d):
    def __init__(self, i, o, k, hfp8, stride=1, pad=0):
        super().__init__(i, o, k, stride=stride, padding=pad)
        self.hfp8 = hfp8

    def forward(self, x):
        return F.conv2d(x, qweight(self.hfp8, self.weight), qweight(self.hfp8, self.bias),
                        self.stride, self.padding)


def mlp(h):
    return nn.Sequential(Q(h), nn.Flatten(), QLinear(784, 256, h), nn.ReLU(), Q(h),
                         QLinear(256, 128, h), nn.ReLU(), Q(h), QLinear(128, 10, h))


def lenet(h):
    return nn.Sequential(Q(h), QConv(1, 6, 5, h, pad=2), nn.ReLU(), Q(h), nn.MaxPool2d(2),
                         QConv(6, 16, 5, h), nn.ReLU(), Q(h), nn.MaxPool2d(2), nn.Flatten(),
                         QLinear(400, 120, h), nn.ReLU(), Q(h), QLinear(120, 84, h), nn.ReLU(),
                         Q(h), QLinear(84, 10, h))


class Block(nn.Module):
    """Two 3x3 convolutions with batch norm; the shortcut is the identity or option A."""

    def __init__(self, cin, cout, stride, h):
        super().__init__()
        self.c1, self.b1 = QConv(cin, cout, 3, h, stride, 1), nn.BatchNorm2d(cout)
        self.c2, self.b2 = QConv(cout, cout, 3, h, 1, 1), nn.BatchNorm2d(cout)
        self.q, self.stride, self.pad = Q(h), stride, cout - cin

    def forward(self, x):
        y = self.q(F.relu(self.q(self.b1(self.c1(x)))))
        y = self.q(self.b2(self.c2(y)))
        s = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.pad:
            s = F.pad(s, (0, 0, 0, 0, 0, self.pad))
        return self.q(F.relu(self.q(y + s)))


def resnet8(h):
    return nn.Sequential(Q(h), QConv(3, 16, 3, h, 1, 1), nn.BatchNorm2d(16), Q(h), nn.ReLU(),
                         Block(16, 16, 1, h), Block(16, 32, 2, h), Block(32, 64, 2, h),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), Q(h), QLinear(64, 10, h))


SHAPES = {'mlp': (1, 28, 28), 'lenet': (1, 28, 28), 'resnet8': (3, 32, 32)}
BUILD = {'mlp': mlp, 'lenet': lenet, 'resnet8': resnet8}


def torch_step_ms(name, hfp8, steps):
    torch.manual_seed(0)
    model = BUILD[name](hfp8).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(args.batch, *SHAPES[name], device=dev)
    y = torch.randint(0, 10, (args.batch,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        sync()
        t = time.perf_counter()
        step()
        sync()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def extras():
    """Copy bandwidth (GB/s, bytes read plus written) and matmul TFLOP/s on the device."""
    def timed(f, reps=20):
        f()
        sync()
        t = time.perf_counter()
        for _ in range(reps):
            f()
        sync()
        return (time.perf_counter() - t) / reps
    n = 1 << 28
    a, b = torch.empty(n, device=dev), torch.empty(n, device=dev)
    out = {'copy GB/s': 8 * n / timed(lambda: b.copy_(a)) / 1e9}
    del a, b
    torch.backends.cuda.matmul.allow_tf32 = False
    for dt, name in [(torch.float32, 'fp32 matmul 4096^3 TFLOP/s (TF32 off)'),
                     (torch.bfloat16, 'bf16 matmul 4096^3 TFLOP/s')]:
        x = torch.randn(4096, 4096, device=dev, dtype=dt)
        out[name] = 2 * 4096**3 / timed(lambda: x @ x) / 1e12
    return out


def lowp_step_ms(models):
    """{(model, 'fp32'|'hfp8'): ms per step} from lowp's train bench, for `models`."""
    env = dict(os.environ, LOWP_PROFILE='')
    cmd = [args.lowp_bench, '--bench'] if args.lowp_bench else ['cargo', 'bench', '--bench', 'train']
    found = {}
    for m in models:
        env['LOWP_BENCH_MODEL'] = m
        env['LOWP_BENCH_BATCH'] = str(args.batch)
        if args.steps:
            env['LOWP_BENCH_STEPS'] = str(args.steps)
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            r = re.match(r'^(\w+)\s+(fp32|hfp8)\b.*?\s([\d.]+)\s+([\d.]+)\s+\d+%$', line)
            if r:
                found[(r.group(1), r.group(2))] = float(r.group(3))
            a = re.match(r'^adapter: (.*?);', line)
            if a:
                found['adapter'] = a.group(1)
    return found


def lowp_gemm():
    """[(operands, GFLOP/s, of fp32)] from lowp's GEMM bench for --gemm-case."""
    env = dict(os.environ, LOWP_PROFILE='', LOWP_BENCH_CASE=args.gemm_case)
    cmd = [args.gemm_bench, '--bench'] if args.gemm_bench else ['cargo', 'bench', '--bench', 'gemm']
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        r = re.match(r'^' + re.escape(args.gemm_case) + r'\s+(\S+)\s+([\d.]+)\s+(\S+)$', line)
        if r:
            rows.append((r.group(1), float(r.group(2)), r.group(3)))
    return rows


def torch_matmul_gflops(n, reps=20):
    """PyTorch's fp32 n^3 matmul on the device, GFLOP/s (TF32 off)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    for _ in range(3):
        a @ b
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n**3 / ((time.perf_counter() - t) / reps) / 1e9


hfp8 = qpytorch_hfp8()
if hfp8 is None:
    print('QPyTorch not installed: its column is left empty', file=sys.stderr)
# Per round: {(model, map): ms} of lowp and of the peers.
rounds = []
for r in range(max(args.rounds, 1)):
    ours_r, peer_r = {}, {}
    for m in models:
        ours_r.update(lowp_step_ms([m]))
        steps = args.steps or (5 if m == 'resnet8' else 20)
        peer_r[(m, 'fp32')] = torch_step_ms(m, None, steps)
        if hfp8:
            peer_r[(m, 'hfp8')] = torch_step_ms(m, hfp8, steps)
    rounds.append((ours_r, peer_r))
    print(f'round {r + 1} of {max(args.rounds, 1)} done', file=sys.stderr)


def across(side, key):
    """The median over the rounds of one side's figure (None where a round lacks it)."""
    v = [rd[side].get(key) for rd in rounds]
    return statistics.median(v) if v and all(x is not None for x in v) else None


ours = {k: across(0, k) for k in rounds[0][0] if k != 'adapter'}
ours['adapter'] = rounds[0][0].get('adapter', '?')
peer = {k: across(1, k) for k in rounds[0][1]}

cpu = 'unknown CPU'
try:
    for line in open('/proc/cpuinfo'):
        if line.startswith('model name'):
            cpu = line.split(':', 1)[1].strip()
            break
except OSError:
    pass
lines = [
    f'lowp: {ours.get("adapter", "?")}; PyTorch {torch.__version__} on '
    + (torch.cuda.get_device_name() if dev.type == 'cuda' else f'the CPU ({cpu}')
    + f', {torch.get_num_threads()} CPU threads); batch {args.batch}, ms per step (median of '
    + f'{len(rounds)} rounds, each lowp then its peers)',
    '',
    '| model | map | lowp | peer | peer ms / step | lowp / peer (rounds) |',
    '| --- | --- | ---: | --- | ---: | ---: |',
]
for m in models:
    for fmt, who in [('fp32', 'PyTorch fp32'), ('hfp8', 'QPyTorch HFP8')]:
        a, b = ours.get((m, fmt)), peer.get((m, fmt))
        ratios = [rd[0][(m, fmt)] / rd[1][(m, fmt)] for rd in rounds
                  if rd[0].get((m, fmt)) and rd[1].get((m, fmt))]
        ratio = ''
        if ratios:
            ratio = f'{statistics.median(ratios):.1f}x'
            if len(ratios) > 1:
                ratio += f' ({min(ratios):.1f}-{max(ratios):.1f})'
        lines.append(f'| {m} | {fmt} | {a or float("nan"):.1f} | {who} | '
                     f'{b or float("nan"):.1f} | {ratio} |')
if args.gemm_case:
    size = re.search(r'(\d+)x(\d+)x(\d+)', args.gemm_case)
    lines += ['', f'| lowp `{args.gemm_case}` | GFLOP/s | of lowp fp32 |', '| --- | ---: | ---: |']
    lines += [f'| {o} | {g:.2f} | {pct} |' for o, g, pct in lowp_gemm()]
    if size and size.group(1) == size.group(2) == size.group(3):
        n = int(size.group(1))
        lines.append(f'| PyTorch fp32 matmul {n}^3 | {torch_matmul_gflops(n):.2f} | |')
if args.gpu_extras:
    lines += ['', '| PyTorch on the device | value |', '| --- | ---: |']
    lines += [f'| {k} | {v:.2f} |' for k, v in extras().items()]
text = '\n'.join(lines)
print(text)
if args.out:
    with open(args.out, 'w') as f:
        f.write(text + '\n')
