//! `lowp levels`: the quantization levels of an array (or of each column of a matrix) and
//! the variance stochastic rounding onto them gives, uniform beside variance-optimal.

use lowp::data::npy::read_f32;
use lowp::levels::Levels;
use std::path::PathBuf;

/// Arguments of `lowp levels`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// An f32 .npy array: 1-D (one set of levels), or 2-D (one set per column).
    input: PathBuf,
    /// Bits of a level index (2^bits levels).
    #[arg(long, default_value_t = 3)]
    bits: u32,
    /// uniform, optimal (exact, or on a grid where the exact program would take too long),
    /// or both side by side.
    #[arg(long, default_value = "both")]
    method: String,
}

fn show(name: &str, l: &Levels, col: &[f32]) {
    let v: Vec<String> = l.values().iter().map(|x| format!("{x}")).collect();
    println!(
        "  {name:<16} variance {:.6e} (mean {:.6e})  levels [{}]",
        l.variance(col),
        l.variance(col) / col.len() as f64,
        v.join(", ")
    );
}

pub fn run(a: &Args) -> Result<(), String> {
    if !["uniform", "optimal", "both"].contains(&a.method.as_str()) {
        return Err(format!(
            "--method {:?}: expected uniform, optimal or both",
            a.method
        ));
    }
    let arr = read_f32(&a.input).map_err(|e| format!("{}: {e}", a.input.display()))?;
    let (rows, cols) = match arr.shape[..] {
        [n] => (n, 1),
        [n, d] => (n, d),
        _ => {
            return Err(format!(
                "{}: a {}-D array; give a 1-D array or a 2-D matrix",
                a.input.display(),
                arr.shape.len()
            ));
        }
    };
    let at = |i: usize, c: usize| {
        if arr.fortran_order {
            arr.data[c * rows + i]
        } else {
            arr.data[i * cols + c]
        }
    };
    for c in 0..cols {
        let col: Vec<f32> = (0..rows).map(|i| at(i, c)).collect();
        println!("column {c} ({rows} values), {} bits:", a.bits);
        if a.method != "optimal" {
            let u = Levels::uniform_for(&col, a.bits).map_err(|e| e.to_string())?;
            show("uniform", &u, &col);
        }
        if a.method != "uniform" {
            let (o, how) = Levels::best_within(&col, a.bits).map_err(|e| e.to_string())?;
            show(&format!("optimal ({how})"), &o, &col);
        }
    }
    Ok(())
}
