//! Dispatches past the device's real per-dimension workgroup limit, and amax.

mod common;

use lowp::gpu::buffers::upload_f32;
use lowp::quant::QuantSpec;
use lowp::{ops, reference};

#[test]
fn dequantize_beyond_one_dispatch_row() {
    let ctx = common::gpu();
    let limit = ctx.device.limits().max_compute_workgroups_per_dimension as usize;
    // One invocation per element: this many elements need more than `limit` workgroups.
    let n = limit * 256 + 1000;
    if n * 4 > ctx.device.limits().max_storage_buffer_binding_size as usize {
        panic!("the adapter's storage binding limit is too small for {n} f32 values");
    }
    let x: Vec<f32> = (0..n).map(|i| ((i % 9973) as f32 - 4986.0) * 0.1).collect();
    let spec = QuantSpec::new("e4m3".parse().unwrap());
    let (t, exc) = ops::quantize(&ctx, &x, &[n], &spec).unwrap();
    let r = reference::quantize(&x, &spec);
    assert_eq!(exc, r.exceptions);
    let y = ops::dequantize(&ctx, &t).unwrap();
    let yr = reference::dequantize(&r);
    // Spot-check the tail (past the first dispatch row) and a stride through the rest.
    for i in (0..n).step_by(997).chain(n - 2000..n) {
        assert_eq!(y[i].to_bits(), yr[i].to_bits(), "element {i}");
    }
}

#[test]
fn amax_ignores_nan_and_sees_inf() {
    let ctx = common::gpu();
    let x = [1.0f32, -7.5, f32::NAN, 3.0, 0.0];
    let b = upload_f32(&ctx, "x", &x).unwrap();
    assert_eq!(ops::amax(&ctx, &b, x.len()).unwrap(), 7.5);
    let x = [1.0f32, f32::NEG_INFINITY];
    let b = upload_f32(&ctx, "x", &x).unwrap();
    assert_eq!(ops::amax(&ctx, &b, x.len()).unwrap(), f32::INFINITY);
}
