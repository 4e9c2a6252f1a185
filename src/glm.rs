//! Generalised linear models as HALP trains them: the objective, the rows, and what one
//! epoch's inner steps are; the spec `reference::halp` and `ops::halp` share.

use crate::scaled_fixed::ScaledFixed;

/// The random stream of the grid's stochastic rounding.
pub const GRID_STREAM: u32 = 0x4a1f;

/// A generalised linear model's objective; weights are class-major (`k * cols + c`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Glm {
    /// Least squares, (1/2N) sum (a^T w - y)^2.
    Lsq,
    /// Logistic regression on labels +-1 with an L2 term (l2 / 2)|w|^2.
    Logistic {
        /// The L2 coefficient.
        l2: f32,
    },
    /// A support vector machine on labels +-1: the hinge (1/N) sum max(0, 1 - y a^T w) with an
    /// L2 term (ZipML's estimators only: HALP takes smooth objectives).
    Svm {
        /// The L2 coefficient.
        l2: f32,
    },
    /// Softmax (multinomial logistic) regression on class labels 0..classes with an L2 term.
    Softmax {
        /// The L2 coefficient.
        l2: f32,
        /// Classes (one weight vector each).
        classes: usize,
    },
}

impl Glm {
    /// Gradient factors per row (and weight vectors): 1, or the classes of softmax.
    pub fn outputs(&self) -> usize {
        match self {
            Glm::Softmax { classes, .. } => *classes,
            _ => 1,
        }
    }

    /// The L2 coefficient (0 for least squares).
    pub fn l2(&self) -> f32 {
        match self {
            Glm::Lsq => 0.0,
            Glm::Logistic { l2 } | Glm::Svm { l2 } | Glm::Softmax { l2, .. } => *l2,
        }
    }
}

/// Rows of f32 features (row-major, `cols` each) with their targets.
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a> {
    /// The features.
    pub x: &'a [f32],
    /// Features per row.
    pub cols: usize,
    /// One target per row: a value, a label +-1, or a class index.
    pub y: &'a [f32],
}

impl Rows<'_> {
    /// Row i's features.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.cols..(i + 1) * self.cols]
    }
}

/// One epoch's inner steps: what the step is and where it starts.
#[derive(Clone, Copy, Debug)]
pub struct InnerSteps<'a> {
    /// The epoch's row order; step s takes its batch s mod (batches), `batch` rows each.
    pub order: &'a [usize],
    /// Rows per step.
    pub batch: usize,
    /// Steps.
    pub steps: usize,
    /// Step size.
    pub lr: f32,
    /// SVRG's step (centre's batch gradient out, full gradient in) rather than SGD's.
    pub svrg: bool,
    /// The iterate is an offset from the centre (HALP), not the point itself.
    pub offset: bool,
    /// The grid the iterate is rounded onto after every step, if any.
    pub grid: Option<ScaledFixed>,
    /// Seed of the rounding.
    pub seed: u64,
    /// Steps taken before this epoch (the random counter's position).
    pub step0: u64,
}
