#!/usr/bin/env bash
# A newer lavapipe beside the system's, without installing it: downloads Debian
# bookworm-backports' mesa-vulkan-drivers (and the libdrm it needs) into DIR (default
# /tmp/lavapipe-backport), unpacks them there, and prints the two variables that make the
# Vulkan loader use that lavapipe in place of the system's driver.
#
#   bash tools/lavapipe_backport.sh [DIR]
#   eval "$(bash tools/lavapipe_backport.sh)"     # then cargo test, cargo bench, ...
#
# Why: lavapipe 22.3 (bookworm's own) loads a storage-buffer value whose address differs
# across lanes one lane at a time through the stack, which stalls on AMD Zen hosts (see
# BENCHMARKS.md, sessions 25 and 26); lavapipe 25.0 loads them without that stall: training
# steps 1.5-2.6x faster there, the 512^3 GEMM (panels in textures) about 15% slower.
# For Debian 12 (bookworm) on x86-64; elsewhere the distribution's own newer Mesa (25.0
# measured; the versions between 22.3 and 25.0 not).
set -euo pipefail
dir="${1:-/tmp/lavapipe-backport}"
mkdir -p "$dir/lists" "$dir/cache" "$dir/debs" "$dir/root"
echo "deb http://deb.debian.org/debian bookworm-backports main" >"$dir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache")
apt-get "${apt_opts[@]}" update -qq >&2
rm -f "$dir"/debs/*.deb
(cd "$dir/debs" && apt-get "${apt_opts[@]}" -o APT::Sandbox::User=root download -qq \
    mesa-vulkan-drivers/bookworm-backports libdrm2/bookworm-backports \
    libdrm-amdgpu1/bookworm-backports >&2)
for deb in "$dir"/debs/*.deb; do
    dpkg -x "$deb" "$dir/root"
done
lib="$dir/root/usr/lib/x86_64-linux-gnu"
# The package's manifest names the library without a path: point it at the unpacked one.
sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$lib/libvulkan_lvp.so\"#" \
    "$dir/root/usr/share/vulkan/icd.d/lvp_icd.json" >"$dir/lvp_icd.json"
printf 'export LD_LIBRARY_PATH=%q\n' "$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
printf 'export VK_DRIVER_FILES=%q\n' "$dir/lvp_icd.json"
