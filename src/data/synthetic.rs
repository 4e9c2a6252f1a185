//! A built-in synthetic image set, so that training runs on a fresh machine with no data.
//!
//! Ten classes of 1 x 28 x 28 images: class c is a bright bar at angle c * 18 degrees
//! through a position jittered per image, plus Gaussian-ish noise, all from the
//! counter-based generator (the set is a pure function of its seed).

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
        let angle = class as f32 * std::f32::consts::PI / 10.0;
        let (dx, dy) = (angle.cos(), angle.sin());
        let cx = 14.0 + 4.0 * (uniform(seed, 1, i as u64) - 0.5);
        let cy = 14.0 + 4.0 * (uniform(seed, 2, i as u64) - 0.5);
        for y in 0..h {
            for x in 0..w {
                let (px, py) = (x as f32 - cx, y as f32 - cy);
                // Distance from the bar's line.
                let d = (px * dy - py * dx).abs();
                let along = (px * dx + py * dy).abs();
                let bar = if d < 1.5 && along < 10.0 { 200.0 } else { 0.0 };
                let k = (i * h * w + y * w + x) as u64;
                let noise = 40.0 * (uniform(seed, 3, k) + uniform(seed, 4, k) - 1.0);
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
