//! Level sets (ZipML): the dynamic program against brute force, the optimum against uniform
//! and grid levels, and stochastic rounding onto levels unbiased within a stated bound.

use lowp::levels::{Levels, LevelsError};
use lowp::rng::random_bits;

/// Pseudo-random values in [-1, 1] with repeats (a few distinct values many times).
fn data(n: usize, seed: u64, distinct: usize) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let r = random_bits(seed, 0, i) as usize % distinct;
            let t = random_bits(seed, 1, r as u64) as f64 / 4294967296.0;
            (2.0 * t * t - 1.0) as f32
        })
        .collect()
}

/// Every subset of `count` levels among the distinct values that keeps the least and the
/// greatest: the least variance any of them gives.
fn brute_force(values: &[f32], count: usize) -> f64 {
    let mut d: Vec<f32> = values.to_vec();
    d.sort_by(f32::total_cmp);
    d.dedup();
    if d.len() <= count {
        return 0.0;
    }
    let inner = d.len() - 2;
    let mut best = f64::INFINITY;
    for mask in 0u32..(1 << inner) {
        if mask.count_ones() as usize != count - 2 {
            continue;
        }
        let mut l = vec![d[0]];
        l.extend((0..inner).filter(|b| mask >> b & 1 == 1).map(|b| d[b + 1]));
        l.push(d[d.len() - 1]);
        best = best.min(Levels::new(l).unwrap().variance(values));
    }
    best
}

#[test]
fn the_dynamic_program_equals_brute_force() {
    // Both sums are of at most 40 nonnegative f64 terms of size <= 4: they agree to within
    // a few ulps of the total, far below 1e-9 (1 + total).
    for seed in 0..40 {
        let values = data(40, seed, 3 + seed as usize % 10);
        for bits in [1, 2, 3] {
            let dp = Levels::optimal(&values, bits).unwrap();
            assert!(dp.values().len() <= 1 << bits);
            let (v, b) = (dp.variance(&values), brute_force(&values, 1 << bits));
            assert!(
                (v - b).abs() <= 1e-9 * (1.0 + b),
                "seed {seed}, {bits} bits: {v} vs {b}"
            );
        }
    }
}

#[test]
fn optimal_levels_beat_grid_levels_which_beat_uniform_ones() {
    // The exact optimum is the least variance of any level set spanning the data (some
    // optimum lies on data points); a grid of (2^b - 1) r + 1 points holds the uniform
    // levels exactly, so its optimum is no worse than uniform.
    for seed in 0..6 {
        let values = data(3000, 100 + seed, 200);
        for bits in [1, 2, 3, 4] {
            let exact = Levels::optimal(&values, bits).unwrap().variance(&values);
            let points = ((1 << bits) - 1) * 8 + 1;
            let grid = Levels::optimal_on_grid(&values, bits, points)
                .unwrap()
                .variance(&values);
            let uniform = Levels::uniform_for(&values, bits)
                .unwrap()
                .variance(&values);
            let slack = 1e-9 * (1.0 + uniform);
            assert!(
                exact <= grid + slack,
                "{bits} bits: exact {exact} > grid {grid}"
            );
            assert!(
                grid <= uniform + slack,
                "{bits} bits: grid {grid} > uniform {uniform}"
            );
            // One bit is two levels, the data's ends, for every method; beyond that the
            // skewed data (t^2) leaves room to gain.
            if bits > 1 {
                assert!(exact < uniform, "{bits} bits: the optimum should gain");
            }
        }
    }
}

#[test]
fn rounding_onto_levels_is_unbiased() {
    // The mean of N roundings of x is within 6 sigma / sqrt(N) of x, sigma^2 the rounding
    // variance (l_j+1 - x)(x - l_j) (plus 2^-24 relative for u's resolution): a false alarm
    // once in about 5e8 per value.
    let levels = Levels::new(vec![-1.0, -0.3, 0.0, 0.25, 1.0]).unwrap();
    let v = levels.values();
    let n = 200_000u64;
    for (t, x) in [-0.9f32, -0.3, -0.01, 0.1, 0.2499, 0.7, 1.0]
        .into_iter()
        .enumerate()
    {
        let mean = (0..n)
            .map(|i| v[levels.round(x, random_bits(7, t as u32, i))] as f64)
            .sum::<f64>()
            / n as f64;
        let (j, up) = levels.bracket(x);
        let var = (v[up] as f64 - x as f64) * (x as f64 - v[j] as f64);
        let bound = 6.0 * (var / n as f64).sqrt() + 2f64.powi(-24) * 2.0;
        assert!(
            (mean - x as f64).abs() <= bound,
            "x {x}: mean {mean}, bound {bound}"
        );
    }
    // Values beyond the levels clamp to the end levels.
    assert_eq!(levels.round(-5.0, 0), 0);
    assert_eq!(levels.round(5.0, u32::MAX), 4);
}

#[test]
fn bad_requests_are_errors() {
    assert_eq!(Levels::optimal(&[], 2), Err(LevelsError::Empty));
    assert!(matches!(
        Levels::optimal(&[1.0, f32::NAN], 2),
        Err(LevelsError::NotFinite { index: 1, .. })
    ));
    assert_eq!(Levels::uniform(0.0, 1.0, 0), Err(LevelsError::Bits(0)));
    assert_eq!(Levels::uniform(0.0, 1.0, 17), Err(LevelsError::Bits(17)));
    assert_eq!(
        Levels::optimal_on_grid(&[0.0, 1.0], 2, 1),
        Err(LevelsError::Grid(1))
    );
    assert_eq!(Levels::new(vec![1.0, 1.0]), Err(LevelsError::Unsorted));
    let many: Vec<f32> = (0..200_000).map(|i| i as f32).collect();
    assert!(matches!(
        Levels::optimal(&many, 8),
        Err(LevelsError::TooLarge { .. })
    ));
    // A constant column has one level and no variance.
    let one = Levels::optimal(&[0.5; 10], 3).unwrap();
    assert_eq!(one.values(), &[0.5]);
    assert_eq!(Levels::uniform(2.0, 2.0, 4).unwrap().values(), &[2.0]);
}

#[test]
fn best_within_picks_exact_grid_or_uniform_levels_by_cost() {
    use lowp::levels::Chosen;
    // A budget of 1e7 steps of the program, so that the test runs fast.
    let budget = 1e7;
    let few = data(500, 3, 50);
    assert_eq!(
        Levels::best_within_work(&few, 3, budget).unwrap().1,
        Chosen::Exact
    );
    // 2,000 distinct values at 5 bits: 6.4e7 steps exactly, too many; a grid within the
    // budget (32 levels x points^2 / 2) of more points than levels.
    let many: Vec<f32> = (0..2_000).map(|i| (i as f32 / 2_000.0).powi(2)).collect();
    let (l, how) = Levels::best_within_work(&many, 5, budget).unwrap();
    let Chosen::Grid(points) = how else {
        panic!("{how:?}")
    };
    assert!(
        points > 32 && 32.0 * (points as f64).powi(2) / 2.0 <= budget,
        "{points}"
    );
    assert!(l.variance(&many) <= Levels::uniform_for(&many, 5).unwrap().variance(&many));
    // 2^10 levels are more than any grid within the budget holds: uniform, and said so.
    assert_eq!(
        Levels::best_within_work(&many, 10, budget).unwrap().1,
        Chosen::Uniform
    );
}

#[test]
fn data_far_from_zero_gets_the_same_optimum_as_centred_data() {
    // A shift changes no variance; the program measures from the least candidate, so the
    // prefix sums do not cancel. Shifted by 2^20, values stay exact in f32 (steps of 1/8).
    let base: Vec<f32> = (0..40u64)
        .map(|i| (random_bits(11, 0, i) % 64) as f32 / 8.0)
        .collect();
    let far: Vec<f32> = base.iter().map(|v| v + 1048576.0).collect();
    for bits in [1, 2, 3] {
        let (a, b) = (
            Levels::optimal(&base, bits).unwrap(),
            Levels::optimal(&far, bits).unwrap(),
        );
        let shifted: Vec<f32> = a.values().iter().map(|v| v + 1048576.0).collect();
        assert_eq!(b.values(), &shifted[..], "{bits} bits");
        let brute = brute_force(&far, 1 << bits);
        assert!((b.variance(&far) - brute).abs() <= 1e-9 * (1.0 + brute));
    }
}
