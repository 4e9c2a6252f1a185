//! Tile sizes of the tiled GEMM kernels, chosen per adapter and passed as pipeline constants.

use super::error::GpuError;

/// A workgroup computes a `tm` x `tn` tile of C in `tk`-deep steps; each invocation an
/// `rm` x `rn` register tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tiles {
    /// Rows of C per workgroup.
    pub tm: u32,
    /// Columns of C per workgroup.
    pub tn: u32,
    /// Depth of each staged slice of A and B (a multiple of 4).
    pub tk: u32,
    /// Rows per invocation (1..=8).
    pub rm: u32,
    /// Columns per invocation (1..=8).
    pub rn: u32,
}

impl std::fmt::Display for Tiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} x {} x {} (tm x tn x tk), {} x {} per invocation",
            self.tm, self.tn, self.tk, self.rm, self.rn
        )
    }
}

impl Tiles {
    /// 32 x 32 tiles for CPU adapters (lavapipe), where small workgroups run best.
    pub const SMALL: Tiles = Tiles {
        tm: 32,
        tn: 32,
        tk: 16,
        rm: 4,
        rn: 4,
    };
    /// 64 x 64 tiles, 256 invocations of 4 x 4: a safe default for GPUs.
    pub const MEDIUM: Tiles = Tiles {
        tm: 64,
        tn: 64,
        tk: 16,
        rm: 4,
        rn: 4,
    };
    /// 128 x 128 tiles, 256 invocations of 8 x 8: for discrete GPUs.
    pub const LARGE: Tiles = Tiles {
        tm: 128,
        tn: 128,
        tk: 8,
        rm: 8,
        rn: 8,
    };

    /// Tiles for an adapter type, unless `setting` (`LOWP_GEMM_TILES`'s value,
    /// `tm,tn,tk,rm,rn`) says otherwise.
    pub fn for_adapter(
        device_type: wgpu::DeviceType,
        limits: &wgpu::Limits,
        setting: Option<&str>,
    ) -> Result<Tiles, GpuError> {
        let t = match setting {
            Some(text) if !text.is_empty() => Tiles::parse(text)?,
            _ => match device_type {
                wgpu::DeviceType::Cpu => Tiles::SMALL,
                wgpu::DeviceType::DiscreteGpu => Tiles::LARGE,
                _ => Tiles::MEDIUM,
            },
        };
        t.validate(limits)?;
        Ok(t)
    }

    /// Parses `tm,tn,tk,rm,rn`.
    pub fn parse(text: &str) -> Result<Tiles, GpuError> {
        let v: Vec<u32> = text
            .split(',')
            .map(|s| s.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                GpuError::Invalid(format!(
                    "LOWP_GEMM_TILES={text:?}: expected five whole numbers tm,tn,tk,rm,rn"
                ))
            })?;
        match v[..] {
            [tm, tn, tk, rm, rn] => Ok(Tiles { tm, tn, tk, rm, rn }),
            _ => Err(GpuError::Invalid(format!(
                "LOWP_GEMM_TILES={text:?}: expected five numbers tm,tn,tk,rm,rn"
            ))),
        }
    }

    /// Checks the tiles fit the kernels and the device.
    pub fn validate(&self, limits: &wgpu::Limits) -> Result<(), GpuError> {
        let bad = |why: String| Err(GpuError::Invalid(format!("GEMM tiles {self}: {why}")));
        if !(1..=8).contains(&self.rm) || !(1..=8).contains(&self.rn) {
            return bad("register tiles rm, rn must be 1..=8".into());
        }
        if self.tm == 0
            || self.tn == 0
            || !self.tm.is_multiple_of(self.rm)
            || !self.tn.is_multiple_of(self.rn)
        {
            return bad("tm and tn must be positive multiples of rm and rn".into());
        }
        if self.tk == 0 || !self.tk.is_multiple_of(4) {
            return bad("tk must be a positive multiple of 4".into());
        }
        let (wx, wy) = (self.tn / self.rn, self.tm / self.rm);
        if wx * wy > limits.max_compute_invocations_per_workgroup
            || wx > limits.max_compute_workgroup_size_x
            || wy > limits.max_compute_workgroup_size_y
        {
            return bad(format!(
                "a {wx} x {wy} workgroup exceeds this device's limits"
            ));
        }
        let bytes = 4 * self.tk * (self.tm + self.tn);
        if bytes > limits.max_compute_workgroup_storage_size {
            return bad(format!(
                "{bytes} bytes of workgroup memory exceed the device's {}",
                limits.max_compute_workgroup_storage_size
            ));
        }
        Ok(())
    }

    /// These tiles reshaped for an `m` x `n` view: while one side's tile is at least twice
    /// that side and the other side is wider than its tile, halve the first and double the
    /// second (the workgroup keeps its size), so thin views stop idling most of each tile.
    pub fn fit(&self, m: usize, n: usize, limits: &wgpu::Limits) -> Tiles {
        let mut t = *self;
        loop {
            let next = if t.tm / 2 >= m as u32 && (t.tn as usize) < n {
                Tiles {
                    tm: t.tm / 2,
                    tn: t.tn * 2,
                    ..t
                }
            } else if t.tn / 2 >= n as u32 && (t.tm as usize) < m {
                Tiles {
                    tn: t.tn / 2,
                    tm: t.tm * 2,
                    ..t
                }
            } else {
                return t;
            };
            if next.validate(limits).is_err() {
                return t;
            }
            t = next;
        }
    }

    /// The pipeline constants of the kernels (`packed`: the dot4I8Packed kernel's word tiles).
    pub fn constants(&self, packed: bool) -> [(&'static str, f64); 9] {
        let depth = if packed { self.tk / 4 } else { self.tk };
        [
            ("TM", self.tm as f64),
            ("TN", self.tn as f64),
            ("TK", self.tk as f64),
            ("RM", self.rm as f64),
            ("RN", self.rn as f64),
            ("WX", (self.tn / self.rn) as f64),
            ("WY", (self.tm / self.rm) as f64),
            ("TILE_A", (depth * self.tm) as f64),
            ("TILE_B", (depth * self.tn) as f64),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::Tiles;

    #[test]
    fn thin_views_get_thin_tiles_of_the_same_workgroup_size() {
        let limits = wgpu::Limits::default();
        let threads = |t: Tiles| (t.tm / t.rm) * (t.tn / t.rn);
        for base in [Tiles::SMALL, Tiles::MEDIUM, Tiles::LARGE] {
            for (m, n) in [
                (6, 12544),
                (16, 4096),
                (12544, 6),
                (1, 1 << 20),
                (500, 500),
                (3, 5),
            ] {
                let t = base.fit(m, n, &limits);
                t.validate(&limits).unwrap();
                assert_eq!(threads(t), threads(base), "{base:?} fit to {m}x{n}");
                // A side never shrinks below its extent once the other side is wide.
                if (t.tm, t.tn) != (base.tm, base.tn) {
                    assert!(t.tm as usize >= m.min(base.tm as usize) || t.tm == t.rm);
                    assert!(t.tn as usize >= n.min(base.tn as usize) || t.tn == t.rn);
                }
            }
            assert_eq!(base.fit(500, 500, &limits), base);
            assert_eq!(base.fit(3, 5, &limits), base);
            let thin = base.fit(6, 12544, &limits);
            assert!(thin.tm < base.tm && thin.tm as usize >= 6.min(base.tm as usize));
        }
    }
}
