//! Sweep grids and the Pareto frontier against independent definitions: the run list is
//! the product of the axes, ids are stable and tell settings (and file contents) apart,
//! shards partition the runs, and the frontier equals the brute-force set of points that no
//! other point dominates.

use lowp::sweep::grid::{Grid, Value, parse_shard, run_id, shard, train_args};
use lowp::sweep::pareto::frontier;
use std::collections::BTreeSet;

const GRID: &str = r#"
[train]
model = "lenet"
epochs = 2
nesterov = true
master = false

[axes]
seed = [0, 1, 2]
lr = [0.1, 0.01]
"#;

#[test]
fn the_runs_are_the_product_of_the_axes_with_stable_distinct_ids() {
    let g = Grid::parse(GRID).unwrap();
    let runs = g.runs();
    assert_eq!(runs.len(), 6);
    // Every combination once; the first axis (in key order: lr) varies slowest.
    let combos: BTreeSet<String> = runs
        .iter()
        .map(|r| format!("{} {}", r.settings["lr"], r.settings["seed"]))
        .collect();
    assert_eq!(combos.len(), 6);
    assert_eq!(runs[0].settings["lr"], Value::Float(0.1));
    assert_eq!(runs[1].settings["lr"], Value::Float(0.1));
    assert_eq!(runs[1].settings["seed"], Value::Int(1));
    assert_eq!(runs[3].settings["lr"], Value::Float(0.01));
    assert!(runs.iter().enumerate().all(|(i, r)| r.index == i));
    // Ids: distinct, the same from a second parse, and a function of the settings only.
    let ids: BTreeSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 6);
    let again = Grid::parse(GRID).unwrap().runs();
    assert_eq!(runs, again);
    assert_eq!(run_id(&runs[3].settings), runs[3].id);
    // Flags: true gives --flag, false nothing; values follow their option.
    let args = train_args(&runs[0].settings);
    assert!(args.contains(&"--nesterov".to_string()));
    assert!(!args.contains(&"--master".to_string()));
    let at = args.iter().position(|a| a == "--epochs").unwrap();
    assert_eq!(args[at + 1], "2");
}

#[test]
fn a_named_files_contents_are_part_of_the_id() {
    let f = std::env::temp_dir().join(format!("lowp-id-{}.toml", std::process::id()));
    std::fs::write(&f, "default = { format = \"fp32\" }\n").unwrap();
    let text = format!("[train]\nprecision = \"{}\"\n", f.display());
    let before = Grid::parse(&text).unwrap().runs()[0].id.clone();
    std::fs::write(&f, "default = { format = \"bf16\" }\n").unwrap();
    let after = Grid::parse(&text).unwrap().runs()[0].id.clone();
    assert_ne!(before, after, "an edited map is another run");
    let _ = std::fs::remove_file(&f);
}

#[test]
fn shards_partition_the_runs() {
    let runs = Grid::parse(GRID).unwrap().runs();
    for n in 1..=7 {
        let mut seen: Vec<usize> = (0..n)
            .flat_map(|i| shard(runs.clone(), (i, n)).into_iter().map(|r| r.index))
            .collect();
        seen.sort();
        assert_eq!(seen, (0..runs.len()).collect::<Vec<_>>(), "{n} shards");
    }
    assert_eq!(parse_shard("2/4").unwrap(), (2, 4));
    for bad in ["4/4", "1/0", "x/2", "3", "-1/2"] {
        assert!(parse_shard(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_frontier_is_every_point_no_other_dominates() {
    // Small integer coordinates, so that ties and duplicates happen.
    let mut s: u64 = 12345;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) % 12) as f64
    };
    for case in 0..200 {
        let n = 1 + case % 25;
        let pts: Vec<(f64, f64)> = (0..n).map(|_| (next(), next())).collect();
        let dominated = |i: usize| {
            pts.iter().enumerate().any(|(j, q)| {
                j != i && q.0 <= pts[i].0 && q.1 <= pts[i].1 && (q.0 < pts[i].0 || q.1 < pts[i].1)
            })
        };
        let want: BTreeSet<usize> = (0..n).filter(|&i| !dominated(i)).collect();
        let got: BTreeSet<usize> = frontier(&pts).into_iter().collect();
        assert_eq!(got, want, "{pts:?}");
    }
    assert_eq!(frontier(&[(1.0, f64::NAN), (2.0, 1.0)]), vec![1]);
}
