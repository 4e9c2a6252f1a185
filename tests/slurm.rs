//! A real Slurm job array runs a sweep's shards: a one-node cluster on this machine
//! (`tests/slurm/cluster.sh` starts it; `SLURM_CONF` names it), the grid submitted as a
//! four-task array of `examples/sweeps/slurm.sbatch`, waited for, merged, and its results
//! equal the same grid run locally. Ignored by a plain `cargo test` (it needs the cluster);
//! CI runs it after starting one: `cargo test --test slurm -- --ignored`.

mod common;

use common::sweep::{fresh, grid, results, same, sweep};
use std::process::Command;

#[test]
#[ignore = "needs a Slurm cluster: tests/slurm/cluster.sh"]
fn a_slurm_job_array_runs_the_shards_and_merges_to_the_local_results() {
    let dir = fresh("slurm");
    let g = grid(&dir);
    let (array, local) = (dir.join("array"), dir.join("local"));
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("sbatch")
        .args(["--wait", "--array=0-3", "--chdir"])
        .arg(&dir)
        .arg(format!("--output={}/task-%a.out", dir.display()))
        .arg(format!("{root}/examples/sweeps/slurm.sbatch"))
        .arg(&g)
        .arg(&array)
        .env("LOWP", env!("CARGO_BIN_EXE_lowp"))
        .output()
        .expect("sbatch (start a cluster with tests/slurm/cluster.sh)");
    let logs: String = (0..4)
        .map(|i| std::fs::read_to_string(dir.join(format!("task-{i}.out"))).unwrap_or_default())
        .collect();
    assert!(
        out.status.success(),
        "the array failed: {}\n{logs}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Four shards, four results files, merged into one table of every run.
    for i in 0..4 {
        assert!(
            array.join(format!("results-{i}-of-4.jsonl")).exists(),
            "shard {i}:\n{logs}"
        );
    }
    sweep(&["merge", array.to_str().unwrap()]);
    let csv = std::fs::read_to_string(array.join("merged.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4);
    sweep(&["run", g.to_str().unwrap(), "--out", local.to_str().unwrap()]);
    same(&results(&array), &results(&local));
    let _ = std::fs::remove_dir_all(&dir);
}
