//! Data on disk and in memory: .npy arrays, MNIST/Fashion-MNIST IDX, CIFAR-10 binary, and a
//! built-in synthetic image set.

pub mod cifar;
pub mod dataset;
pub mod idx;
pub mod npy;
pub mod synthetic;
pub mod table;

pub use dataset::{Dataset, shuffled};

use std::path::{Path, PathBuf};

/// Why a data set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A file is not in the expected format.
    #[error("{0}: {1}")]
    Format(PathBuf, String),
    /// The folder holds no data set lowp knows.
    #[error(
        "{0}: no data set found; expected MNIST/Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz], and/or the t10k-* pair) or CIFAR-10 binaries (data_batch_*.bin, test_batch.bin)"
    )]
    NotFound(PathBuf),
    /// Images and labels disagree.
    #[error("{0}")]
    Mismatch(String),
}

/// The data sets found in a folder: a training set, and a test set if the folder has one.
#[derive(Debug)]
pub struct Loaded {
    /// Training images (or the only set, for the user to split).
    pub train: Dataset,
    /// Test images, if the folder has a separate test set.
    pub test: Option<Dataset>,
}

fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [stem.to_string(), format!("{stem}.gz")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

fn idx_pair(dir: &Path, prefix: &str) -> Result<Option<Dataset>, DataError> {
    let (Some(img), Some(lab)) = (
        find(dir, &format!("{prefix}-images-idx3-ubyte")),
        find(dir, &format!("{prefix}-labels-idx1-ubyte")),
    ) else {
        return Ok(None);
    };
    let (pixels, [n, rows, cols]) = idx::read_images(&img)?;
    let labels = idx::read_labels(&lab)?;
    if labels.len() != n {
        return Err(DataError::Mismatch(format!(
            "{} holds {n} images but {} holds {} labels",
            img.display(),
            lab.display(),
            labels.len()
        )));
    }
    if let Some(&l) = labels.iter().find(|&&l| l > 9) {
        return Err(DataError::Format(
            lab,
            format!("label {l} is outside 0..=9"),
        ));
    }
    let name = format!("{} ({prefix})", dir.display());
    Ok(Some(Dataset::from_bytes(
        &name,
        &pixels,
        labels,
        [1, rows, cols],
        10,
    )))
}

/// Loads the data set in `dir`: MNIST-style IDX files or CIFAR-10 binary batches.
pub fn load_dir(dir: &Path) -> Result<Loaded, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Io(
            dir.to_path_buf(),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
        ));
    }
    let train = idx_pair(dir, "train")?;
    let test = idx_pair(dir, "t10k")?;
    match (train, test) {
        (Some(train), test) => return Ok(Loaded { train, test }),
        (None, Some(only)) => {
            return Ok(Loaded {
                train: only,
                test: None,
            });
        }
        _ => {}
    }
    let mut batches: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::Io(dir.to_path_buf(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("data_batch_") && n.ends_with(".bin"))
        })
        .collect();
    batches.sort();
    let test_path = dir.join("test_batch.bin");
    if batches.is_empty() && !test_path.is_file() {
        return Err(DataError::NotFound(dir.to_path_buf()));
    }
    let load = |paths: &[PathBuf], name: &str| -> Result<Dataset, DataError> {
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        for p in paths {
            let (px, lb) = cifar::read_batch(p)?;
            pixels.extend(px);
            labels.extend(lb);
        }
        Ok(Dataset::from_bytes(name, &pixels, labels, [3, 32, 32], 10))
    };
    let test = if test_path.is_file() {
        Some(load(
            std::slice::from_ref(&test_path),
            &format!("{} (test)", dir.display()),
        )?)
    } else {
        None
    };
    if batches.is_empty() {
        return Ok(Loaded {
            train: test.unwrap(),
            test: None,
        });
    }
    Ok(Loaded {
        train: load(&batches, &format!("{} (train)", dir.display()))?,
        test,
    })
}
