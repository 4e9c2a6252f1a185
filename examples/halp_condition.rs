//! Where HALP's bits stop being enough: on least-squares sets of growing condition number
//! L_max / mu, the gap HALP reaches at 6 to 14 bits against fp32 SVRG's, and the largest
//! condition number each width converges at, beside the bound (README, "HALP").
//!
//! cargo run --release --example halp_condition

use lowp::methods::halp_bits::{bits_against_condition, contraction, methods_on_conditioned};

fn main() {
    let widths = [6u32, 8, 10, 12, 14];
    let spreads: Vec<f64> = (0..16).map(|k| 2f64.powf(k as f64 * 0.5)).collect();
    let s = bits_against_condition((500, 10), &widths, &spreads, 0.02, 40);
    println!(
        "least squares, {} rows x {} features (columns scaled down geometrically), batch 1, \
         lr {}, one pass per epoch, {} epochs; final gap / initial gap (x: not converged, i.e. \
         not within 10x of fp32 SVRG nor below 1e-10)",
        s.shape.0, s.shape.1, s.lr, s.epochs
    );
    print!("{:>10} {:>7} {:>10}", "L_max/mu", "L_max", "svrg fp32");
    for b in &widths {
        print!(" {:>10}", format!("halp {b}"));
    }
    println!();
    for r in &s.rows {
        print!("{:>10.1} {:>7.2} {:>10.1e}", r.kappa, r.l_max, r.svrg);
        for (j, g) in r.halp.iter().enumerate() {
            print!(" {g:>9.1e}{}", if s.converged(j, r) { " " } else { "x" });
        }
        println!();
    }
    println!("\nwidth  converged up to L_max/mu  bound  observed / bound  ratio to 2 bits fewer");
    for (j, &b) in widths.iter().enumerate() {
        let ratio = match j {
            0 => "-".to_string(),
            _ => format!("{:.1}", s.largest(j) / s.largest(j - 1)),
        };
        println!(
            "{b:>5} {:>26.1} {:>6.1} {:>17.1} {ratio:>22}",
            s.largest(j),
            s.bound(b),
            s.largest(j) / s.bound(b)
        );
    }
    // The five methods at 16 bits where L_max / mu is about 100.
    let (kappa, initial, runs) = methods_on_conditioned((500, 10), 2f64.powf(1.5), 16, 0.02, 40);
    println!(
        "\n16 bits, L_max/mu {kappa:.1}, initial gap {initial:.3e}: final gap / initial, and the \
         mean contraction per epoch until 1e-6 and until 1e-10 of the initial gap"
    );
    for (m, gaps) in &runs {
        let end = gaps.last().copied().unwrap_or(f64::NAN) / initial;
        let early = contraction(initial, gaps, 1e-6 * initial);
        let rate = contraction(initial, gaps, 1e-10 * initial);
        println!("{:>8} {end:>10.1e} {early:>8.3} {rate:>8.3}", m.to_string());
    }
}
