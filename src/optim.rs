//! Optimizer and loss-scaling specs shared by the GPU kernels (`ops::optim`) and their
//! CPU twins (`reference::optim`): hyper-parameters, and the step state's layout.

/// SGD hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum.
    pub momentum: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// Adam's constants for one step. The bias corrections depend on how many updates were
/// applied (a step skipped by loss scaling does not count, as in PyTorch), which only the
/// device knows: the loss-scale update kernel keeps them in the step state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate of this step.
    pub lr: f32,
    /// beta1.
    pub beta1: f32,
    /// 1 - beta1.
    pub beta1c: f32,
    /// beta2.
    pub beta2: f32,
    /// 1 - beta2.
    pub beta2c: f32,
    /// epsilon.
    pub eps: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
}

impl AdamStep {
    /// The constants of a step with learning rate `lr`.
    pub fn new(lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32) -> Self {
        let (b1, b2) = (beta1 as f64, beta2 as f64);
        AdamStep {
            lr,
            beta1,
            beta1c: (1.0 - b1) as f32,
            beta2,
            beta2c: (1.0 - b2) as f32,
            eps,
            weight_decay,
        }
    }

    /// ln(beta1) and ln(beta2), from which the step state's bias corrections come.
    pub fn ln_betas(&self) -> [f32; 2] {
        [
            (self.beta1 as f64).ln() as f32,
            (self.beta2 as f64).ln() as f32,
        ]
    }
}

/// Words of the step state buffer: [loss scale S, skip this step's update, 1 / S of this
/// step, good steps since S last changed, updates applied, 1 / (1 - beta1^t),
/// 1 / sqrt(1 - beta2^t), 0], t being the updates applied (Adam's bias corrections).
pub const STEP_STATE_WORDS: usize = 8;

/// The step state before the first step, with loss scale `scale` (a power of two): no
/// update applied yet (see [`STEP_STATE_WORDS`]).
pub fn loss_scale_state(scale: f32) -> [u32; STEP_STATE_WORDS] {
    [scale.to_bits(), 0, (1.0 / scale).to_bits(), 0, 0, 0, 0, 0]
}
