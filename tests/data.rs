//! Data loaders on the real MNIST and CIFAR-10 files, splits, shuffling, the synthetic set,
//! and clear errors for bad files.

use lowp::data::{DataError, Dataset, load_dir, shuffled, synthetic::synthetic};
use std::path::PathBuf;

fn shared(sub: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(sub);
    assert!(
        p.is_dir(),
        "{} missing: the tests need ../shared beside the checkout",
        p.display()
    );
    p
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lowp-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn mnist_test_set_loads() {
    let l = load_dir(&shared("mnist")).unwrap();
    assert!(
        l.test.is_none(),
        "only the t10k pair is there: one set, for the user to split"
    );
    let d = l.train;
    assert_eq!((d.len(), d.shape, d.classes), (10_000, [1, 28, 28], 10));
    assert_eq!(d.images.len(), 10_000 * 784);
    // The first MNIST test digits are 7, 2, 1, 0, 4 (LeCun et al.'s published order).
    assert_eq!(&d.labels[..5], &[7, 2, 1, 0, 4]);
    // Class counts of the MNIST test set, as published.
    assert_eq!(
        d.class_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert!(d.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
    // The mean MNIST pixel is about 0.13 (0.1325 for the test set).
    let (mean, std) = d.channel_stats()[0];
    assert!(
        (mean - 0.1325).abs() < 0.002 && (std - 0.31).abs() < 0.01,
        "{mean} {std}"
    );
}

#[test]
fn gzipped_and_plain_idx_load_the_same() {
    let dir = tmpdir("plain");
    for f in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        let bytes =
            lowp::data::idx::read_maybe_gz(&shared("mnist").join(format!("{f}.gz"))).unwrap();
        std::fs::write(dir.join(f), bytes).unwrap();
    }
    let plain = load_dir(&dir).unwrap().train;
    let gz = load_dir(&shared("mnist")).unwrap().train;
    assert_eq!(plain.images, gz.images);
    assert_eq!(plain.labels, gz.labels);
}

#[test]
fn cifar_subset_loads() {
    let l = load_dir(&shared("cifar10")).unwrap();
    let (train, test) = (l.train, l.test.unwrap());
    assert_eq!((train.len(), train.shape), (10_000, [3, 32, 32]));
    assert_eq!(test.len(), 2_000);
    // Class-balanced, as its README says.
    assert_eq!(train.class_counts(), vec![1000; 10]);
    assert_eq!(test.class_counts(), vec![200; 10]);
}

#[test]
fn seeded_split_and_shuffle() {
    let d = load_dir(&shared("mnist")).unwrap().train;
    let (a, b) = d.split(8_000, 42).unwrap();
    assert_eq!((a.len(), b.len()), (8_000, 2_000));
    let (a2, _) = d.split(8_000, 42).unwrap();
    assert_eq!(a.labels, a2.labels, "same seed, same split");
    let (a3, _) = d.split(8_000, 43).unwrap();
    assert_ne!(a.labels, a3.labels, "another seed, another split");
    // Disjoint and complete: the images of both halves are all of the set.
    let total: Vec<usize> = a
        .class_counts()
        .iter()
        .zip(b.class_counts())
        .map(|(x, y)| x + y)
        .collect();
    assert_eq!(total, d.class_counts());
    assert!(d.split(0, 1).is_err() && d.split(10_000, 1).is_err());
    // A shuffle is a permutation, reproducible, and different per stream.
    let p = shuffled(1000, 7, 1);
    let mut sorted = p.clone();
    sorted.sort();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert_eq!(p, shuffled(1000, 7, 1));
    assert_ne!(p, shuffled(1000, 7, 2));
    // Normalizing with the training statistics centres the training set.
    let mut a = a;
    let stats = a.channel_stats();
    a.normalize(&stats);
    let (m, s) = a.channel_stats()[0];
    assert!(m.abs() < 1e-4 && (s - 1.0).abs() < 1e-4, "{m} {s}");
}

#[test]
fn synthetic_set_is_deterministic_and_balanced() {
    let a: Dataset = synthetic(500, 3);
    assert_eq!(a, synthetic(500, 3));
    assert_ne!(a.images, synthetic(500, 4).images);
    assert_eq!(a.class_counts(), vec![50; 10]);
    assert_eq!(a.shape, [1, 28, 28]);
}

#[test]
fn bad_data_is_a_clear_error() {
    let empty = tmpdir("empty");
    assert!(matches!(load_dir(&empty), Err(DataError::NotFound(_))));
    let e = load_dir(&empty.join("nope")).unwrap_err().to_string();
    assert!(e.contains("no such folder"), "{e}");
    let bad = tmpdir("bad");
    std::fs::write(
        bad.join("t10k-images-idx3-ubyte"),
        [0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2],
    )
    .unwrap();
    std::fs::write(
        bad.join("t10k-labels-idx1-ubyte"),
        [0u8, 0, 8, 1, 0, 0, 0, 2, 1, 2],
    )
    .unwrap();
    let e = load_dir(&bad).unwrap_err().to_string();
    assert!(e.contains("shorter than an IDX header"), "{e}");
    // A whole header (2 images of 2 x 2) but only 3 of the 8 pixel bytes.
    let truncated = [0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 9, 9, 9];
    std::fs::write(bad.join("t10k-images-idx3-ubyte"), truncated).unwrap();
    let e = load_dir(&bad).unwrap_err().to_string();
    assert!(e.contains("19 bytes") && e.contains("says 24"), "{e}");
    let cif = tmpdir("cifar");
    std::fs::write(cif.join("test_batch.bin"), vec![0u8; 100]).unwrap();
    let e = load_dir(&cif).unwrap_err().to_string();
    assert!(e.contains("CIFAR-10 records"), "{e}");
}

/// The CIFAR loader against the file's own bytes: records of 1 label byte then 1024 red,
/// 1024 green and 1024 blue bytes, row-major; image i's channel c, row r, column q is
/// byte 1 + 1024 c + 32 r + q of record i, scaled by 1/255. Checked whole for the first
/// and last records of both files; the channels differ, so a swap would show.
#[test]
fn cifar_pixels_and_channel_order_are_the_files_bytes() {
    let l = load_dir(&shared("cifar10")).unwrap();
    for (file, set) in [
        ("data_batch_1.bin", &l.train),
        ("test_batch.bin", l.test.as_ref().unwrap()),
    ] {
        let bytes = std::fs::read(shared("cifar10").join(file)).unwrap();
        let records = bytes.len() / 3073;
        assert_eq!(records * 3073, bytes.len());
        assert_eq!(set.len(), records);
        let mut channels_differ = false;
        for i in [0, 1, 2, records - 1] {
            let rec = &bytes[i * 3073..(i + 1) * 3073];
            assert_eq!(set.labels[i], rec[0], "{file} record {i}: label");
            for c in 0..3 {
                for p in 0..1024 {
                    let want = rec[1 + 1024 * c + p] as f32 / 255.0;
                    assert_eq!(
                        set.images[i * 3072 + 1024 * c + p].to_bits(),
                        want.to_bits(),
                        "{file} record {i}: channel {c}, row {}, column {}",
                        p / 32,
                        p % 32
                    );
                }
            }
            channels_differ |= (0..1024).any(|p| rec[1 + p] != rec[1 + 1024 + p]);
        }
        assert!(channels_differ, "{file}: red and green never differ");
    }
}
