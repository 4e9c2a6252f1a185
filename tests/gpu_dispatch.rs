//! Kernel parameters from the context's reused uniform chunks, and bind groups reused across
//! submissions: every dispatch runs with its own parameters, across chunk boundaries within
//! one encoder and again in a later encoder that reuses the same chunks and bind groups; a
//! buffer a cached bind group binds is freed when its last handle goes; a host-timed
//! profile changes none of it.

mod common;

use lowp::gpu::Encoder;
use lowp::gpu::buffers::{read_u32, upload_f32, zeroed};
use lowp::gpu::memory::wgpu_memory_bytes;
use lowp::gpu::param_ring::CHUNK;
use lowp::ops::elementwise::record_relu_forward;
use lowp::ops::packed_io::Dst;

/// Values of the input and the accumulated output.
const N: usize = 64;

#[test]
fn every_dispatch_runs_with_its_own_parameters() {
    dispatches_with_their_own_parameters(&common::own_gpu());
}

/// The same under a host-timed profile (`LOWP_PROFILE=host`), which submits what an encoder
/// has recorded before and after each dispatch and waits for it: the same sums, and every
/// dispatch in the profile.
#[test]
fn a_host_timed_profile_runs_each_dispatch_alone_with_its_parameters() {
    let mut c = common::own_gpu();
    c.profiler = Some(lowp::gpu::profile::Profiler::host_timed());
    let counts = dispatches_with_their_own_parameters(&c);
    let lines = c.profiler.as_ref().unwrap().take(&c).unwrap();
    assert!(
        lines
            .iter()
            .all(|l| l.kernel.starts_with("relu/") && l.seconds > 0.0)
    );
    let timed: usize = lines.iter().map(|l| l.dispatches).sum();
    // ReLU of n values: n / 4 quads in one dispatch, the n % 4 left in another.
    let recorded: usize = counts
        .iter()
        .map(|&n| (n >= 4) as usize + (n % 4 != 0) as usize)
        .sum();
    assert_eq!(timed, recorded);
}

/// Accumulates ReLU over enough dispatches to fill two parameter chunks and start a third,
/// in two encoders, checking the sums; returns each call's count of values.
fn dispatches_with_their_own_parameters(c: &lowp::gpu::GpuContext) -> Vec<usize> {
    // Enough dispatches to fill two chunks and start a third, at the device's offsets.
    let align = c
        .device
        .limits()
        .min_uniform_buffer_offset_alignment
        .max(16) as u64;
    let dispatches = 2 * (CHUNK / align) as usize + 3;
    let x = upload_f32(c, "ones", &[1.0; N]).unwrap();
    let out = zeroed(c, "counts", N).unwrap();
    // out[e] += relu(x[e]) = 1 for e below each dispatch's count: after all of them,
    // out[e] is the number of counts above e (small whole numbers, exact in f32).
    let mut expected = [0u32; N];
    let mut counts = Vec::new();
    for round in 0..2u64 {
        let count = |i: usize| 1 + (i * (37 + 26 * round as usize) + 5 * round as usize) % N;
        let mut enc = Encoder::new(c);
        for i in 0..dispatches {
            let n = count(i);
            counts.push(n);
            record_relu_forward(c, &mut enc, &*x, Dst::Accumulate(&out), n).unwrap();
            for e in expected.iter_mut().take(n) {
                *e += 1;
            }
        }
        enc.submit();
        let got: Vec<f32> = read_u32(c, &out, N)
            .unwrap()
            .into_iter()
            .map(f32::from_bits)
            .collect();
        let want: Vec<f32> = expected.iter().map(|&k| k as f32).collect();
        assert_eq!(got, want, "round {round}, {dispatches} dispatches");
    }
    counts
}

#[test]
fn a_cached_bind_group_does_not_keep_a_dropped_buffer() {
    let c = common::own_gpu();
    let n = 1 << 20;
    let x = upload_f32(&c, "input", &vec![1.0; n]).unwrap();
    let y = zeroed(&c, "output", n).unwrap();
    let mut enc = Encoder::new(&c);
    record_relu_forward(&c, &mut enc, &*x, &*y, n).unwrap();
    enc.submit();
    c.wait().unwrap();
    let held = wgpu_memory_bytes(&c.device);
    drop(x);
    c.wait().unwrap();
    let freed = held - wgpu_memory_bytes(&c.device);
    // The input's 4 MiB go back to the device (wgpu's own count; allocations round up).
    assert!(freed >= 4 * n as u64, "{freed} bytes freed of {}", 4 * n);
}

/// A looping kernel's grid never gives an invocation so many items that they and their own
/// loops pass llvmpipe's 65,535-iteration loop limit (which would drop the rest silently):
/// one item an invocation where even two would; otherwise at most the context's workgroups
/// where that suffices.
#[test]
fn looping_grids_keep_within_the_loop_limit() {
    use lowp::gpu::dispatch::{ITEM_SLACK, ITEMS_MOST, looping_grid};
    for cap in [None, Some(1), Some(3), Some(16)] {
        let c = common::gpu().with_item_groups(cap);
        for count in [1u32, 255, 256, 4097, 1 << 20, 10_000_000, u32::MAX / 2] {
            for iterations in [4u32, 64, 1022, 1023, 30_000, 40_000, u32::MAX] {
                let (gx, gy) = looping_grid(&c, count, iterations);
                let groups = gx as u64 * gy as u64;
                let per = (count as u64).div_ceil(groups * 256);
                let what = format!("cap {cap:?}, {count} items, {iterations} iterations");
                assert!(per <= ITEMS_MOST as u64, "{what}: {per} items");
                assert!(
                    per == 1 || per * (iterations as u64 + 1 + ITEM_SLACK as u64) <= 65_535,
                    "{what}: {per} items"
                );
                assert!(gx <= c.max_groups_x(), "{what}");
                // Never more workgroups than one item an invocation needs; at most the cap
                // where the limit allows it.
                assert!(
                    groups <= (count as u64).div_ceil(256).max(1) + gx as u64,
                    "{what}"
                );
                if let Some(most) = cap {
                    let least = (count as u64).div_ceil(256 * ITEMS_MOST as u64);
                    if iterations as u64 + 1 + ITEM_SLACK as u64 <= 1024 {
                        assert!(groups <= (most as u64).max(least) + gx as u64, "{what}");
                    }
                }
            }
        }
    }
}

/// A context's settings given in code take the place of the environment's, one by one, and
/// a bad one is the same typed error as from the environment.
#[test]
fn settings_given_in_code_replace_the_environments() {
    use lowp::gpu::{GpuContext, GpuError};
    let ctx =
        GpuContext::with_settings(&[("LOWP_ITEM_GROUPS", "5"), ("LOWP_SEGMENTS", "0")]).unwrap();
    assert_eq!(ctx.item_groups(), Some(5));
    assert!(!ctx.segments());
    let other = GpuContext::with_settings(&[("LOWP_ITEM_GROUPS", "0")]).unwrap();
    assert_eq!(other.item_groups(), None);
    // What is not given comes from the environment, as in `GpuContext::new`.
    let plain = GpuContext::new().unwrap();
    assert_eq!(other.segments(), plain.segments());
    match GpuContext::with_settings(&[("LOWP_ITEM_GROUPS", "many")]) {
        Err(GpuError::Invalid(e)) => assert!(e.contains("LOWP_ITEM_GROUPS"), "{e}"),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("a bad setting was taken"),
    }
    match GpuContext::with_settings(&[("LOWP_RUN_LANES", "3")]) {
        Err(GpuError::Invalid(e)) => assert!(e.contains("LOWP_RUN_LANES"), "{e}"),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("run lanes that do not divide a workgroup were taken"),
    }
    let wide = GpuContext::with_settings(&[("LOWP_RUN_LANES", "256")]).unwrap();
    assert_eq!(wide.run_lanes(), 256);
    // Settings read elsewhere than in the constructor go there too; a name it does not read
    // (a misspelling) is refused rather than ignored.
    match GpuContext::with_settings(&[("LOWP_GEMM_TILES", "1,2")]) {
        Err(GpuError::Invalid(_)) => {}
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("bad tiles were taken"),
    }
    match GpuContext::with_settings(&[("LOWP_SEGMENT", "0")]) {
        Err(GpuError::Invalid(e)) => assert!(e.contains("LOWP_SEGMENT "), "{e}"),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("an unknown setting was taken"),
    }
}

/// A looping kernel takes every item exactly once whatever width its runs of items have
/// (lanes side by side across the workgroup, a CPU adapter's 8, one, or a few), at counts
/// whose quads leave the last run of a group of lanes cut short, one item a lane or several:
/// ReLU of positive values added into zeros gives each value once (never would leave 0; twice
/// in different passes of a loop, 2x).
#[test]
fn looping_kernels_take_every_item_once_for_any_run_width() {
    let n_most = 100_003;
    let x: Vec<f32> = (0..n_most).map(|i| i as f32 + 1.0).collect();
    for lanes in [256u32, 8, 32, 1] {
        // At most 3 workgroups (a 2 x 2 grid, items spread over all four): several items a
        // lane at the larger counts.
        let c = common::gpu()
            .with_max_groups_x(2)
            .with_item_groups(Some(3))
            .with_run_lanes(lanes);
        for n in [1usize, 5, 255, 769, 4_097, 40_001, 99_999, n_most] {
            let xs = upload_f32(&c, "input", &x[..n]).unwrap();
            let out = zeroed(&c, "sums", n).unwrap();
            let mut enc = Encoder::new(&c);
            record_relu_forward(&c, &mut enc, &*xs, Dst::Accumulate(&out), n).unwrap();
            enc.submit();
            let got = read_u32(&c, &out, n).unwrap();
            for (i, (&g, &v)) in got.iter().zip(&x[..n]).enumerate() {
                assert_eq!(g, v.to_bits(), "{lanes} lanes, {n} items: item {i}");
            }
        }
    }
}
