//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The golden-vector folder `../shared/golden`, or a failure that says where it was looked for.
pub fn golden_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/golden");
    assert!(
        dir.is_dir(),
        "golden vectors not found at {}: the tests need ../shared beside the checkout",
        dir.display()
    );
    dir
}

/// Reads a golden CSV: header names and rows of hex words.
pub fn read_csv(name: &str) -> (Vec<String>, Vec<Vec<u32>>) {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    let header: Vec<String> = lines
        .next()
        .expect("empty csv")
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| {
            l.split(',')
                .map(|w| u32::from_str_radix(w, 16).unwrap_or_else(|_| panic!("bad hex '{w}'")))
                .collect()
        })
        .collect();
    (header, rows)
}

/// Reads an MX blocks CSV (no header, comment lines start with '#').
pub fn read_blocks(name: &str) -> Vec<Vec<u32>> {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            l.split(',')
                .map(|w| u32::from_str_radix(w, 16).unwrap())
                .collect()
        })
        .collect()
}

/// Whether two f32 bit patterns agree, any NaN matching any NaN.
pub fn same_value(a: u32, b: u32) -> bool {
    let nan = |x: u32| x & 0x7fff_ffff > 0x7f80_0000;
    a == b || (nan(a) && nan(b))
}
