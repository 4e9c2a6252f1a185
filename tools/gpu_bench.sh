#!/usr/bin/env bash
# lowp on a machine with a GPU and PyTorch, as one table folder: `lowp info` (the adapter
# and what it offers: f16, subgroups, dot4I8Packed, cooperative matrix), the quantize and
# GEMM benches, and the training steps next to PyTorch and QPyTorch on the same GPU with
# PyTorch's copy bandwidth and matmul rates (tools/bench_peers.py --device cuda --gpu-extras).
#
# Build where the sources are (the same x86-64), then carry BIN to the GPU machine:
#   cargo build --release && cargo bench --no-run
#   mkdir -p BIN && cp target/release/lowp BIN/ && for b in quantize gemm train; do
#     cp "$(ls -t target/release/deps/$b-* | grep -v '\.d$' | head -1)" BIN/$b; done
# There, from the repository root (the benches read examples/ from the current folder):
#   bash tools/gpu_bench.sh BIN OUT_DIR
set -uo pipefail
bin=${1:?usage: tools/gpu_bench.sh BIN_DIR [OUT_DIR]}
out=${2:-gpu-bench}
mkdir -p "$out"
status=0
"$bin/lowp" info >"$out/info.txt" 2>&1 || status=1
for b in quantize gemm; do
    "$bin/$b" --bench >"$out/$b.txt" 2>&1 || status=1
done
python3 tools/bench_peers.py --lowp-bench "$bin/train" --gemm-bench "$bin/gemm" --device cuda --gpu-extras \
    --out "$out/peers.md" >"$out/peers.log" 2>&1 || status=1
cat "$out/info.txt" "$out/peers.md" 2>/dev/null
exit $status
