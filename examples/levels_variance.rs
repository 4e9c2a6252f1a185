//! The variance stochastic rounding gives a data set's scaled feature columns (summed over
//! every value, f64), with uniform and with variance-optimal levels at 1 to 4 bits: does
//! optimal at b bits reach uniform at b + 1? On diamonds (all 53,940 rows, log price the
//! target, 26 features) and MNIST's pixels (the 10,000 test images, 784 features).
//!
//! `cargo run --release --example levels_variance [DIAMONDS.csv] [MNIST_DIR]` (defaults:
//! ../shared/data/diamonds/diamonds.csv and ../shared/data/mnist).

use lowp::data::table::{Scaler, Table};
use lowp::methods::linear::{LevelKind, column_levels};

/// The summed variance of every column of `t` under `bits`-bit levels of `kind`.
fn variance(t: &Table, bits: u32, kind: LevelKind) -> f64 {
    let d = t.cols();
    column_levels(t, bits, kind)
        .expect("levels of every column")
        .iter()
        .enumerate()
        .map(|(c, l)| {
            let col: Vec<f32> = t.features.iter().skip(c).step_by(d).copied().collect();
            l.variance(&col)
        })
        .sum()
}

fn report(name: &str, raw: &Table) {
    let t = Scaler::fit(raw).apply(raw);
    println!(
        "\n{name}: {} rows x {} columns (scaled to [-1, 1], the intercept included)",
        t.rows(),
        t.cols()
    );
    println!("| bits | uniform | optimal | uniform at bits + 1 | optimal / uniform at bits + 1 |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    let uniform: Vec<f64> = (1..=5)
        .map(|b| variance(&t, b, LevelKind::Uniform))
        .collect();
    for b in 1..=4u32 {
        let opt = variance(&t, b, LevelKind::Optimal);
        let next = uniform[b as usize];
        println!(
            "| {b} | {:.4e} | {opt:.4e} | {next:.4e} | {:.2} |",
            uniform[b as usize - 1],
            opt / next
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let diamonds = args
        .next()
        .unwrap_or_else(|| "../shared/data/diamonds/diamonds.csv".into());
    let mnist = args.next().unwrap_or_else(|| "../shared/data/mnist".into());
    let mut d = Table::from_csv(std::path::Path::new(&diamonds), "price").expect("diamonds");
    d.target.iter_mut().for_each(|v| *v = v.ln());
    report("diamonds", &d);
    let loaded = lowp::data::load_dir(std::path::Path::new(&mnist)).expect("MNIST");
    let mut sets = vec![&loaded.train];
    sets.extend(loaded.test.as_ref());
    report(
        "MNIST pixels",
        &Table::from_all_images(&sets).expect("MNIST images"),
    );
}
