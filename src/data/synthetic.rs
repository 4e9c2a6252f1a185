//! A built-in synthetic image set, so that training runs on a fresh machine with no data.
//!
//! Ten classes of 1 x 28 x 28 images: class c is a bar at angle c * 18 degrees (jittered by
//! up to 6 degrees either way, so neighbouring classes come within 6 degrees of each other),
//! 4 to 9 pixels either side of a centre jittered by up to 3 pixels, of brightness 60 to
//! 140 over a background of 30, under noise of up to 70 either way, all from the
//! counter-based generator (the set is a pure function of its seed). Hard enough that a
//! 256-128 MLP reaches about 80-85% in a few epochs in fp32, so formats show their cost.

use super::dataset::Dataset;
use crate::rng::random_bits;

fn uniform(seed: u64, stream: u32, i: u64) -> f32 {
    (random_bits(seed, stream, i) as f64 / 4294967296.0) as f32
}

/// `n` images in balanced classes, generated from `seed`.
pub fn synthetic(n: usize, seed: u64) -> Dataset {
    let (h, w) = (28usize, 28usize);
    let mut pixels = Vec::with_capacity(n * h * w);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 10;
        let u = |stream: u32| uniform(seed, stream, i as u64);
        let jitter = (u(6) - 0.5) * 12.0;
        let angle = (class as f32 * 18.0 + jitter).to_radians();
        let (dx, dy) = (angle.cos(), angle.sin());
        let cx = 14.0 + 6.0 * (u(1) - 0.5);
        let cy = 14.0 + 6.0 * (u(2) - 0.5);
        let half_length = 4.0 + 5.0 * u(7);
        let brightness = 60.0 + 80.0 * u(8);
        for y in 0..h {
            for x in 0..w {
                let (px, py) = (x as f32 - cx, y as f32 - cy);
                // Distance from the bar's line, and along it from the centre.
                let d = (px * dy - py * dx).abs();
                let along = (px * dx + py * dy).abs();
                let bar = if d < 1.0 && along < half_length {
                    brightness
                } else {
                    0.0
                };
                let k = (i * h * w + y * w + x) as u64;
                let noise = 70.0 * (uniform(seed, 3, k) + uniform(seed, 4, k) - 1.0);
                pixels.push((bar + 30.0 + noise).clamp(0.0, 255.0) as u8);
            }
        }
        labels.push(class as u8);
    }
    // Shuffle so that batches are not ordered by class.
    let order = super::dataset::shuffled(n, seed, 5);
    let mut shuffled_pixels = Vec::with_capacity(pixels.len());
    let mut shuffled_labels = Vec::with_capacity(n);
    for &i in &order {
        shuffled_pixels.extend_from_slice(&pixels[i * h * w..(i + 1) * h * w]);
        shuffled_labels.push(labels[i]);
    }
    Dataset::from_bytes(
        "synthetic bars",
        &shuffled_pixels,
        shuffled_labels,
        [1, h, w],
        10,
    )
}
