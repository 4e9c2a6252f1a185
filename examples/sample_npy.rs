//! Writes a sample f32 .npy array (Gaussian values with a few outliers) to try `lowp quantize` on.
//!
//! cargo run --release --example sample_npy -- sample.npy

use lowp::data::npy::{NpyArray, write_f32};
use lowp::rng::random_bits;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sample.npy".into());
    let (rows, cols) = (256, 256);
    let data: Vec<f32> = (0..rows * cols)
        .map(|i| {
            // Box-Muller from two counter-based uniforms; every 1000th value is an outlier.
            let u = |k: u64| (random_bits(7, k as u32, i as u64) as f64 + 0.5) / 4294967296.0;
            let g = (-2.0 * u(0).ln()).sqrt() * (2.0 * std::f64::consts::PI * u(1)).cos();
            (if i % 1000 == 0 { g * 100.0 } else { g }) as f32
        })
        .collect();
    let a = NpyArray {
        shape: vec![rows, cols],
        fortran_order: false,
        data,
    };
    if let Err(e) = write_f32(path.as_ref(), &a) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    println!("wrote {path}: {rows}x{cols} float32");
}
