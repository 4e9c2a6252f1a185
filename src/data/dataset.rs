//! An in-memory labelled image set: normalized pixels, labels, seeded shuffling and splits.

use crate::rng::random_bits;

/// Images (N x C x H x W, normalized) with their class labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Where it came from (for reports).
    pub name: String,
    /// Pixels, image after image, each C x H x W.
    pub images: Vec<f32>,
    /// One label per image, below `classes`.
    pub labels: Vec<u8>,
    /// (channels, height, width) of one image.
    pub shape: [usize; 3],
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Builds a set from raw bytes (0..=255), scaled to [0, 1].
    pub fn from_bytes(
        name: &str,
        pixels: &[u8],
        labels: Vec<u8>,
        shape: [usize; 3],
        classes: usize,
    ) -> Dataset {
        Dataset {
            name: name.to_string(),
            images: pixels.iter().map(|&p| p as f32 / 255.0).collect(),
            labels,
            shape,
            classes,
        }
    }

    /// Mean and standard deviation of each channel over the whole set.
    pub fn channel_stats(&self) -> Vec<(f32, f32)> {
        let per = self.image_len();
        let plane = self.shape[1] * self.shape[2];
        (0..self.shape[0])
            .map(|c| {
                let (mut sum, mut sq, mut cnt) = (0f64, 0f64, 0f64);
                for img in self.images.chunks(per) {
                    for &v in &img[c * plane..(c + 1) * plane] {
                        sum += v as f64;
                        sq += v as f64 * v as f64;
                        cnt += 1.0;
                    }
                }
                let mean = sum / cnt.max(1.0);
                let std = (sq / cnt.max(1.0) - mean * mean).max(1e-12).sqrt();
                (mean as f32, std as f32)
            })
            .collect()
    }

    /// Standardizes each channel with the given (mean, std), e.g. the training set's.
    pub fn normalize(&mut self, stats: &[(f32, f32)]) {
        let per = self.image_len();
        let plane = self.shape[1] * self.shape[2];
        for img in self.images.chunks_mut(per) {
            for (c, &(mean, std)) in stats.iter().enumerate() {
                for v in &mut img[c * plane..(c + 1) * plane] {
                    *v = (*v - mean) / std;
                }
            }
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize], name: &str) -> Dataset {
        let per = self.image_len();
        let mut images = Vec::with_capacity(indices.len() * per);
        for &i in indices {
            images.extend_from_slice(&self.images[i * per..(i + 1) * per]);
        }
        Dataset {
            name: name.to_string(),
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
            classes: self.classes,
        }
    }

    /// A seeded split into `train` images and the rest, both drawn in shuffled order.
    pub fn split(&self, train: usize, seed: u64) -> Result<(Dataset, Dataset), String> {
        if train == 0 || train >= self.len() {
            return Err(format!(
                "a split needs between 1 and {} training images of {}, got {train}",
                self.len() - 1,
                self.len()
            ));
        }
        let order = shuffled(self.len(), seed, 0);
        Ok((
            self.subset(&order[..train], &format!("{} (train)", self.name)),
            self.subset(&order[train..], &format!("{} (test)", self.name)),
        ))
    }

    /// Number of images in each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// A permutation of 0..n determined by (seed, stream): a Fisher-Yates shuffle driven by the
/// counter-based generator, so that epoch e of a run is always the same order.
pub fn shuffled(n: usize, seed: u64, stream: u32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        // Unbiased enough for shuffling: 64 random bits reduced modulo i + 1.
        let r = (random_bits(seed, stream, 2 * i as u64) as u64) << 32
            | random_bits(seed, stream, 2 * i as u64 + 1) as u64;
        order.swap(i, (r % (i as u64 + 1)) as usize);
    }
    order
}
