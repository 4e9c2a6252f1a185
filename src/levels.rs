//! Quantization onto a level set (ZipML): the levels of a data column, uniform or
//! variance-optimal, and unbiased stochastic rounding onto them.
//!
//! A value x in [l_j, l_j+1] rounds up to l_j+1 with probability (x - l_j) / (l_j+1 - l_j),
//! else down to l_j: unbiased, with variance (l_j+1 - x)(x - l_j). The variance-optimal
//! levels minimise the sum of that variance over a column's values; some optimum puts every
//! level on a value, so a dynamic program over the sorted values finds it exactly
//! (Zhang et al., ZipML, ICML 2017, section 4).

/// Why a level set cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LevelsError {
    /// No values to fit levels to.
    #[error("no values to fit levels to")]
    Empty,
    /// A value that is NaN or infinite.
    #[error("value {index} is {value}: levels need finite values")]
    NotFinite {
        /// Its position.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A width outside 1..=16 bits.
    #[error("{0} bits: level sets take 1 to 16 bits")]
    Bits(u32),
    /// The program over this many candidate levels would take too long.
    #[error(
        "{distinct} candidate levels at {bits} bits is beyond the dynamic program's reach \
         (about {work:.1e} steps, at most {EXACT_WORK_LIMIT:.0e}); Levels::best_within picks \
         a grid it can afford"
    )]
    TooLarge {
        /// Candidate levels (distinct values, or grid points).
        distinct: usize,
        /// Bits.
        bits: u32,
        /// Steps the exact program would take.
        work: f64,
    },
    /// A grid with fewer than two points.
    #[error("a grid of {0} candidate levels: at least 2 are needed")]
    Grid(usize),
    /// Levels that are not finite and strictly increasing.
    #[error("levels must be finite and strictly increasing")]
    Unsorted,
}

/// Steps the exact dynamic program may take (levels x distinct values^2 / 2).
pub const EXACT_WORK_LIMIT: f64 = 4e9;

/// Candidate levels of the discretised program at most (fewer where 2^bits levels would
/// make it take longer than `EXACT_WORK_LIMIT`).
pub const GRID_POINTS: usize = 4096;

/// How [`Levels::best_within`] chose its levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chosen {
    /// The exact optimum over the data's distinct values.
    Exact,
    /// The optimum over a grid of this many candidates.
    Grid(usize),
    /// Uniform levels: 2^bits levels are too many for the program.
    Uniform,
}

impl std::fmt::Display for Chosen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Chosen::Exact => write!(f, "exact"),
            Chosen::Grid(p) => write!(f, "on a grid of {p}"),
            Chosen::Uniform => write!(f, "uniform: too many levels for the program"),
        }
    }
}

/// A level set: finite values, strictly increasing; at most 2^bits of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Levels(Vec<f32>);

impl Levels {
    /// Levels from their values (finite, strictly increasing, at least one).
    pub fn new(values: Vec<f32>) -> Result<Levels, LevelsError> {
        if values.is_empty() {
            return Err(LevelsError::Empty);
        }
        if values.iter().any(|v| !v.is_finite()) || values.windows(2).any(|w| w[0] >= w[1]) {
            return Err(LevelsError::Unsorted);
        }
        Ok(Levels(values))
    }

    /// The levels, increasing.
    pub fn values(&self) -> &[f32] {
        &self.0
    }

    /// 2^bits uniform levels from `lo` to `hi` (one where lo = hi).
    pub fn uniform(lo: f32, hi: f32, bits: u32) -> Result<Levels, LevelsError> {
        check_bits(bits)?;
        for (index, value) in [(0, lo), (1, hi)] {
            if !value.is_finite() {
                return Err(LevelsError::NotFinite { index, value });
            }
        }
        let (lo, hi) = (lo.min(hi), lo.max(hi));
        let s = (1u32 << bits) - 1;
        let mut v: Vec<f32> = (0..=s)
            .map(|i| (lo as f64 + (hi as f64 - lo as f64) * i as f64 / s as f64) as f32)
            .collect();
        v.dedup();
        Ok(Levels(v))
    }

    /// Uniform levels spanning the values' range.
    pub fn uniform_for(data: &[f32], bits: u32) -> Result<Levels, LevelsError> {
        let (lo, hi) = range(data)?;
        Levels::uniform(lo, hi, bits)
    }

    /// The variance-optimal 2^bits levels for `data`, exactly: a dynamic program over its
    /// distinct values (all of them when there are no more than 2^bits).
    pub fn optimal(data: &[f32], bits: u32) -> Result<Levels, LevelsError> {
        check_bits(bits)?;
        range(data)?;
        let sorted = sorted(data);
        let mut distinct: Vec<f64> = sorted.clone();
        distinct.dedup();
        let count = 1usize << bits;
        let work = count as f64 * (distinct.len() as f64).powi(2) / 2.0;
        if distinct.len() > count && work > EXACT_WORK_LIMIT {
            return Err(LevelsError::TooLarge {
                distinct: distinct.len(),
                bits,
                work,
            });
        }
        Ok(best_levels(&distinct, &sorted, count))
    }

    /// The best variance-optimal levels the program can afford: exact where it can, else
    /// on the largest grid (at most `GRID_POINTS`) within `EXACT_WORK_LIMIT`, else (2^bits
    /// at least as many as such a grid) uniform.
    pub fn best_within(data: &[f32], bits: u32) -> Result<(Levels, Chosen), LevelsError> {
        Levels::best_within_work(data, bits, EXACT_WORK_LIMIT)
    }

    /// [`Levels::best_within`] for a budget of `work` steps of the program.
    pub fn best_within_work(
        data: &[f32],
        bits: u32,
        work: f64,
    ) -> Result<(Levels, Chosen), LevelsError> {
        check_bits(bits)?;
        range(data)?;
        let count = 1usize << bits;
        let values = sorted(data);
        let mut distinct = values.clone();
        distinct.dedup();
        if distinct.len() <= count || count as f64 * (distinct.len() as f64).powi(2) / 2.0 <= work {
            return Ok((best_levels(&distinct, &values, count), Chosen::Exact));
        }
        let points = ((2.0 * work / count as f64).sqrt() as usize).min(GRID_POINTS);
        if points > count {
            let l = Levels::optimal_on_grid(data, bits, points)?;
            Ok((l, Chosen::Grid(points)))
        } else {
            Ok((Levels::uniform_for(data, bits)?, Chosen::Uniform))
        }
    }

    /// The discretised optimum: the best 2^bits levels among `points` evenly spaced
    /// candidates from the values' minimum to their maximum.
    pub fn optimal_on_grid(data: &[f32], bits: u32, points: usize) -> Result<Levels, LevelsError> {
        check_bits(bits)?;
        if points < 2 {
            return Err(LevelsError::Grid(points));
        }
        let (lo, hi) = range(data)?;
        let count = 1usize << bits;
        let work = count as f64 * (points as f64).powi(2) / 2.0;
        if points > count && work > EXACT_WORK_LIMIT {
            return Err(LevelsError::TooLarge {
                distinct: points,
                bits,
                work,
            });
        }
        let mut grid: Vec<f64> = (0..points)
            .map(|i| {
                let t = i as f64 / (points - 1) as f64;
                (lo as f64 + (hi as f64 - lo as f64) * t) as f32 as f64
            })
            .collect();
        grid.dedup();
        Ok(best_levels(&grid, &sorted(data), count))
    }

    /// The index of the level at or below `x` (clamped into the levels' range) and the
    /// next level's index (the same at the top).
    pub fn bracket(&self, x: f32) -> (usize, usize) {
        let v = &self.0;
        let j = v.partition_point(|&l| l <= x).saturating_sub(1);
        (j, (j + 1).min(v.len() - 1))
    }

    /// Rounds `x` onto the levels with the random word `r`: the index of the level chosen.
    /// x is clamped into the levels' range; it rounds up when u (l_j+1 - l_j) < x - l_j with
    /// u = (r >> 8) 2^-24, products and differences in f32 (as a GPU computes them).
    pub fn round(&self, x: f32, r: u32) -> usize {
        let v = &self.0;
        let x = x.clamp(v[0], v[v.len() - 1]);
        let (j, up) = self.bracket(x);
        if up == j {
            return j;
        }
        let u = (r >> 8) as f32 * (1.0 / 16_777_216.0);
        if u * (v[up] - v[j]) < x - v[j] { up } else { j }
    }

    /// The variance stochastic rounding onto these levels gives `data` (summed over its
    /// values; a value outside the levels' range counts its clamping's squared error).
    pub fn variance(&self, data: &[f32]) -> f64 {
        let v = &self.0;
        data.iter()
            .map(|&x| {
                let (lo, hi) = (v[0] as f64, v[v.len() - 1] as f64);
                let xf = x as f64;
                if xf < lo {
                    return (lo - xf).powi(2);
                }
                if xf > hi {
                    return (xf - hi).powi(2);
                }
                let (j, up) = self.bracket(x);
                (v[up] as f64 - xf) * (xf - v[j] as f64)
            })
            .sum()
    }
}

fn check_bits(bits: u32) -> Result<(), LevelsError> {
    if (1..=16).contains(&bits) {
        Ok(())
    } else {
        Err(LevelsError::Bits(bits))
    }
}

/// The values' minimum and maximum, or why there are none.
fn range(data: &[f32]) -> Result<(f32, f32), LevelsError> {
    if data.is_empty() {
        return Err(LevelsError::Empty);
    }
    if let Some((index, &value)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(LevelsError::NotFinite { index, value });
    }
    let lo = data.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    Ok((lo, hi))
}

fn sorted(data: &[f32]) -> Vec<f64> {
    let mut s: Vec<f64> = data.iter().map(|&x| x as f64).collect();
    s.sort_by(f64::total_cmp);
    s
}

/// The best `count` levels among the candidates `cand` (increasing; the first and last are
/// the data's minimum and maximum) for the sorted values `data`: the dynamic program
/// T(k, m) = min_j T(k-1, j) + V(j, m), with V(j, m) the variance of the values in
/// (c_j, c_m] from prefix sums of counts, values and squares.
fn best_levels(cand_in: &[f64], data_in: &[f64], count: usize) -> Levels {
    let m = cand_in.len();
    if m <= count {
        return Levels(cand_in.iter().map(|&c| c as f32).collect());
    }
    // The variance is unchanged by a shift: measure from the least candidate, so that the
    // prefix sums of squares do not cancel for data far from zero.
    let origin = cand_in[0];
    let cand: Vec<f64> = cand_in.iter().map(|c| c - origin).collect();
    let data: Vec<f64> = data_in.iter().map(|x| x - origin).collect();
    // Prefix sums over the values at or below each candidate.
    let (mut p0, mut p1, mut p2) = (vec![0f64; m], vec![0f64; m], vec![0f64; m]);
    let mut t = 0;
    let (mut s0, mut s1, mut s2) = (0f64, 0f64, 0f64);
    for (i, &c) in cand.iter().enumerate() {
        while t < data.len() && data[t] <= c {
            (s0, s1, s2) = (s0 + 1.0, s1 + data[t], s2 + data[t] * data[t]);
            t += 1;
        }
        (p0[i], p1[i], p2[i]) = (s0, s1, s2);
    }
    let cost = |j: usize, k: usize| {
        let (a, b) = (cand[j], cand[k]);
        let (n, s, q) = (p0[k] - p0[j], p1[k] - p1[j], p2[k] - p2[j]);
        (-q + (a + b) * s - a * b * n).max(0.0)
    };
    // best[k][i]: least variance of values up to c_i with k + 1 levels, the last at c_i.
    let mut best = vec![f64::INFINITY; m];
    best[0] = 0.0;
    let mut from = vec![vec![0u32; m]; count];
    for from_k in from.iter_mut().skip(1) {
        let mut next = vec![f64::INFINITY; m];
        for i in 1..m {
            for (j, &b) in best.iter().enumerate().take(i) {
                if b.is_finite() {
                    let v = b + cost(j, i);
                    if v < next[i] {
                        (next[i], from_k[i]) = (v, j as u32);
                    }
                }
            }
        }
        best = next;
    }
    let mut idx = vec![m - 1];
    for k in (1..count).rev() {
        idx.push(from[k][*idx.last().unwrap()] as usize);
    }
    idx.reverse();
    Levels(idx.into_iter().map(|i| cand_in[i] as f32).collect())
}

/// How a linear model's samples are read (ZipML): as they are, or quantized onto levels
/// once (naive, biased for least squares) or twice independently (double sampling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimator {
    /// Full precision.
    Fp32,
    /// One stochastic quantization Q(a), used on both sides of a(a^T x - b).
    Naive,
    /// Two independent quantizations, Q1(a)(Q2(a)^T x - b): unbiased for least squares.
    Double,
    /// Logistic regression: independent quantizations Q0, Q1, ..., Qd, the derivative
    /// through a polynomial of degree d whose k-th power of a^T x is estimated by the
    /// product of k independent Q_t(a)^T x: unbiased for the polynomial.
    Chebyshev,
    /// SVM: one quantization Q(a), and the row read again at full precision when the
    /// margin y Q(a)^T x lies within its error band of the hinge (where Q could flip the
    /// hinge's side); the hinge's side is then always the exact one.
    Refetch,
}

impl std::fmt::Display for Estimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Estimator::Fp32 => "fp32",
            Estimator::Naive => "naive",
            Estimator::Double => "double",
            Estimator::Chebyshev => "chebyshev",
            Estimator::Refetch => "refetch",
        })
    }
}

impl std::str::FromStr for Estimator {
    type Err = String;
    fn from_str(s: &str) -> Result<Estimator, String> {
        match s {
            "fp32" => Ok(Estimator::Fp32),
            "naive" => Ok(Estimator::Naive),
            "double" => Ok(Estimator::Double),
            "chebyshev" => Ok(Estimator::Chebyshev),
            "refetch" => Ok(Estimator::Refetch),
            _ => Err(format!(
                "estimator {s:?}: expected fp32, naive, double, chebyshev or refetch"
            )),
        }
    }
}

/// The first random stream of the gradient's and the model's rounding (`step_spec`).
pub const STEP_STREAM: u32 = 0x3000_0000;

/// `spec` as step `step` rounds the gradient (`which` 0) or the model (1) through it: its
/// random bits from `seed` on a stream of their own, STEP_STREAM + 2 step + which (apart
/// from every other stream for the first 1.6e9 steps).
pub fn step_spec(
    spec: &crate::quant::QuantSpec,
    seed: u64,
    step: u64,
    which: u32,
) -> crate::quant::QuantSpec {
    crate::quant::QuantSpec {
        seed,
        stream: STEP_STREAM.wrapping_add((step as u32).wrapping_mul(2).wrapping_add(which)),
        ..*spec
    }
}

/// The random stream of sample `s` (0 or 1) of a quantized matrix.
pub const SAMPLE_STREAM: u32 = 0x5a11;

/// A row-major matrix quantized onto per-column levels: each value stored as the index of
/// the level at or below it and one bit per sample (up or not), the compact form of two
/// samples that both lie in {l_j, l_j+1}.
#[derive(Clone, Debug)]
pub struct QuantizedMatrix {
    rows: usize,
    cols: usize,
    levels: Vec<Levels>,
    lower: Vec<u16>,
    up: Vec<u8>,
    inside: Vec<bool>,
    samples: usize,
}

impl QuantizedMatrix {
    /// Quantizes `x` (rows x cols) onto `levels` (one set per column), `samples` (1 to 8)
    /// independent times; value (i, c)'s sample s draws `random_bits(seed, SAMPLE_STREAM + s,
    /// i * cols + c)`.
    pub fn new(
        x: &[f32],
        (rows, cols): (usize, usize),
        levels: Vec<Levels>,
        samples: usize,
        seed: u64,
    ) -> QuantizedMatrix {
        assert_eq!(x.len(), rows * cols, "matrix size");
        assert_eq!(levels.len(), cols, "one level set per column");
        assert!((1..=8).contains(&samples), "one to eight samples");
        assert!(
            levels.iter().all(|l| l.0.len() <= 1 << 16),
            "level indices are stored in 16 bits"
        );
        let mut lower = Vec::with_capacity(x.len());
        let mut up = Vec::with_capacity(x.len());
        let mut inside = Vec::with_capacity(x.len());
        for (e, &v) in x.iter().enumerate() {
            let l = &levels[e % cols];
            let (j, _) = l.bracket(v.clamp(l.0[0], l.0[l.0.len() - 1]));
            inside.push(v != l.0[j]);
            let mut bits = 0u8;
            for s in 0..samples {
                let r = crate::rng::random_bits(seed, SAMPLE_STREAM + s as u32, e as u64);
                if l.round(v, r) != j {
                    bits |= 1 << s;
                }
            }
            lower.push(j as u16);
            up.push(bits);
        }
        QuantizedMatrix {
            rows,
            cols,
            levels,
            lower,
            up,
            inside,
            samples,
        }
    }

    /// Rows and columns.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Sample `s` of value (i, c).
    pub fn value(&self, i: usize, c: usize, s: usize) -> f32 {
        let e = i * self.cols + c;
        let j = self.lower[e] as usize + ((self.up[e] >> s.min(self.samples - 1)) & 1) as usize;
        self.levels[c].0[j]
    }

    /// The width of the interval value (i, c) lies strictly inside, l_j+1 - l_j, or 0 where
    /// it is a level itself (every sample of it is then exact): a bound on |Q(a) - a| for a
    /// value within the levels' range (the training set's levels span it).
    pub fn gap(&self, i: usize, c: usize) -> f32 {
        let v = &self.levels[c].0;
        let e = i * self.cols + c;
        let j = self.lower[e] as usize;
        match self.inside[e] {
            true => v[(j + 1).min(v.len() - 1)] - v[j],
            false => 0.0,
        }
    }

    /// Whether each value lies strictly between two levels (row-major): the one bit
    /// refetching stores beside a sample, which zeroes the error band of a value on a level.
    pub fn inside(&self) -> &[bool] {
        &self.inside
    }

    /// The level sets, one per column.
    pub fn levels(&self) -> &[Levels] {
        &self.levels
    }

    /// Width of every stored level index: enough for the column with the most levels.
    pub fn index_bits(&self) -> u32 {
        let most = self.levels.iter().map(|l| l.0.len()).max().unwrap_or(1);
        (usize::BITS - (most - 1).leading_zeros()).max(1)
    }

    /// Samples per value (1 to 8): the up bits stored per value.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Each value's level index, row-major.
    pub fn lower(&self) -> &[u16] {
        &self.lower
    }

    /// Each value's up bits (bit s: sample s rounded up), row-major.
    pub fn up(&self) -> &[u8] {
        &self.up
    }

    /// Bits of sample data stored per row: each value's level index and one bit per sample
    /// (refetching stores one more, `inside`).
    pub fn bits_per_row(&self) -> usize {
        self.cols * (self.index_bits() as usize + self.samples)
    }
}

/// The samples of a linear model's data as an estimator reads them.
pub enum Samples<'a> {
    /// Full precision, row-major rows x cols.
    Fp32(&'a [f32], usize),
    /// Quantized onto levels (one sample: naive; two: double sampling).
    Quantized(&'a QuantizedMatrix, Estimator),
    /// Quantized onto levels (one sample), with the full-precision rows (row-major) to read
    /// again where the quantized margin is too near the hinge (`Estimator::Refetch`).
    Refetch(&'a QuantizedMatrix, &'a [f32]),
}

impl Samples<'_> {
    /// Columns.
    pub fn cols(&self) -> usize {
        match self {
            Samples::Fp32(_, c) => *c,
            Samples::Quantized(q, _) | Samples::Refetch(q, _) => q.shape().1,
        }
    }

    /// Sample `s` of value (i, c): 0 is the gradient's factor, 1 to d the residual's.
    pub fn value(&self, i: usize, c: usize, s: usize) -> f32 {
        match self {
            Samples::Fp32(x, cols) => x[i * cols + c],
            Samples::Quantized(q, Estimator::Naive) | Samples::Refetch(q, _) => q.value(i, c, 0),
            Samples::Quantized(q, _) => q.value(i, c, s),
        }
    }

    /// Value (i, c) at full precision, where it is held (`Refetch` and `Fp32`).
    pub fn full(&self, i: usize, c: usize) -> Option<f32> {
        match self {
            Samples::Fp32(x, cols) => Some(x[i * cols + c]),
            Samples::Refetch(q, x) => Some(x[i * q.shape().1 + c]),
            Samples::Quantized(..) => None,
        }
    }
}

/// The objective of a linear model.
#[derive(Clone, Debug, PartialEq)]
pub enum Loss {
    /// Least squares, (1/2N) sum (a^T w - b)^2.
    Lsq,
    /// Logistic regression on labels y = +-1, (1/N) sum log(1 + exp(-y a^T w)) + (l2/2)|w|^2;
    /// with `poly`, the derivative's sigma(-z) is the polynomial sum_k poly[k] z^k.
    Logistic {
        /// The L2 coefficient.
        l2: f32,
        /// Monomial coefficients of the derivative's polynomial (Chebyshev estimator).
        poly: Option<Vec<f32>>,
    },
    /// A support vector machine on labels y = +-1: the hinge, (1/N) sum max(0, 1 - y a^T w)
    /// + (l2/2)|w|^2, by its subgradient -y a where y a^T w < 1.
    Hinge {
        /// The L2 coefficient.
        l2: f32,
    },
}
