//! The CSV feature table: numeric columns as they are, text columns one-hot, the target
//! column apart; scaling to [-1, 1] with an intercept; typed errors for bad files. On a
//! small file written here and on ../shared/data/diamonds.

use lowp::data::DataError;
use lowp::data::table::{Scaler, Table};
use std::path::PathBuf;

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lowp-table-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn numeric_columns_stay_text_columns_are_one_hot_and_scaling_spans_minus_one_to_one() {
    let p = write(
        "small.csv",
        "size,colour,price,weight\n1.5,red,10,3\n2.5,blue,20,3\n0.5,red,15,3\n",
    );
    let t = Table::from_csv(&p, "price").unwrap();
    assert_eq!(t.names, ["size", "colour=blue", "colour=red", "weight"]);
    assert_eq!(t.target, [10.0, 20.0, 15.0]);
    assert_eq!(
        t.features,
        [1.5, 0.0, 1.0, 3.0, 2.5, 1.0, 0.0, 3.0, 0.5, 0.0, 1.0, 3.0]
    );
    let s = Scaler::fit(&t).apply(&t);
    assert_eq!(s.names.last().unwrap(), "intercept");
    // size 1.5 of [0.5, 2.5] is the middle: 0; a constant column maps to 0.
    assert_eq!(&s.features[..5], &[0.0, -1.0, 1.0, 0.0, 1.0]);
    assert_eq!(&s.features[5..10], &[1.0, 1.0, -1.0, 0.0, 1.0]);
}

#[test]
fn bad_tables_are_errors_that_say_what_is_wrong() {
    let cases = [
        ("a,b\n1,2\n", "price", "no column named \"price\""),
        ("a,price\n1,\n", "price", "is empty"),
        ("a,price\n1,cheap\n", "price", "not a number finite in f32"),
        ("a,price\n1,1e39\n", "price", "not a number finite in f32"),
        ("price\n1\n", "price", "no feature columns"),
        (
            "a,price\n-1e39,1\n",
            "price",
            "column \"a\": -1e39 is not a number finite",
        ),
        ("a,price\n", "price", "no rows"),
        ("a,price\n1,2,3\n", "price", "fields"),
    ];
    for (i, (text, target, want)) in cases.into_iter().enumerate() {
        let p = write(&format!("bad{i}.csv"), text);
        let e = Table::from_csv(&p, target).unwrap_err();
        assert!(e.to_string().contains(want), "{text:?}: {e}");
    }
    let missing = Table::from_csv(&PathBuf::from("/nonexistent/x.csv"), "y").unwrap_err();
    assert!(matches!(missing, DataError::Io(..)), "{missing}");
}

#[test]
fn diamonds_loads_as_twenty_six_features() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/diamonds/diamonds.csv");
    assert!(
        p.is_file(),
        "{} not found: the tests need ../shared",
        p.display()
    );
    let t = Table::from_csv(&p, "price").unwrap();
    assert_eq!(t.rows(), 53_940);
    // carat, depth, table, x, y, z; cut (5 grades), color (7), clarity (8).
    assert_eq!(t.cols(), 6 + 5 + 7 + 8, "{:?}", t.names);
    assert_eq!(t.target[0], 326.0);
    let d = t.cols();
    for row in t.features.chunks(d) {
        let hot: f32 = row
            .iter()
            .zip(&t.names)
            .filter(|(_, n)| n.contains('='))
            .map(|(v, _)| v)
            .sum();
        assert_eq!(hot, 3.0, "one grade each of cut, color and clarity");
    }
    let s = Scaler::fit(&t).apply(&t);
    for c in 0..d {
        let col = s.features.iter().skip(c).step_by(d + 1);
        let (lo, hi) = col.fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert_eq!((lo, hi), (-1.0, 1.0), "{}", s.names[c]);
    }
}

#[test]
fn libsvm_rows_are_sparse_features_with_their_labels() {
    let p = write(
        "small.libsvm",
        "+1 1:0.5 3:2 # a comment\n-1 2:-1.5\n\n+1 1:1 2:2 3:3 4:4\n",
    );
    let t = Table::from_libsvm(&p).unwrap();
    assert_eq!(t.names, ["f1", "f2", "f3", "f4"]);
    assert_eq!(t.target, [1.0, -1.0, 1.0]);
    assert_eq!(
        t.features,
        [0.5, 0.0, 2.0, 0.0, 0.0, -1.5, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0]
    );
    for (text, want) in [
        ("x 1:2\n", "line 1: the label \"x\" is not a number"),
        (
            "1 2:1 1:3\n",
            "line 1: index \"1\": expected increasing indices",
        ),
        ("1 0:3\n", "expected increasing indices from 1"),
        ("1 1:nan\n", "not a finite number"),
        ("1 1-3\n", "is not index:value"),
        ("1\n", "no rows with features"),
    ] {
        let p = write("bad.libsvm", text);
        let e = Table::from_libsvm(&p).unwrap_err();
        assert!(e.to_string().contains(want), "{text:?}: {e}");
    }
}
