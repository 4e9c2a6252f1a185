//! Bind groups kept between submissions: a dispatch whose pipeline, buffers and textures (and
//! parameter offset) match one of the last submission's reuses its bind group instead of
//! making another. Entries unused for a whole submission are dropped, and so is every entry
//! of a buffer or texture whose last handle goes (`memory::DeviceBuffer`, `DeviceTexture`), so the cache keeps no
//! buffer alive that lowp no longer counts.

use std::collections::HashMap;
use std::sync::Mutex;

/// A bind group's identity: its pipeline, (binding, buffer, offset) entries (a kernel entry
/// takes one parameter type, so an offset implies the bytes bound) and (binding, texture
/// view) entries.
pub type Key = (
    wgpu::ComputePipeline,
    Vec<(u32, wgpu::Buffer, u64)>,
    Vec<(u32, wgpu::TextureView)>,
);

/// A bind group's entries: (binding, buffer, offset) and (binding, texture view).
pub type Entries = (Vec<(u32, wgpu::Buffer, u64)>, Vec<(u32, wgpu::TextureView)>);

/// The context's cached bind groups, each with the submission it was last used in.
#[derive(Default)]
pub struct BindCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    groups: HashMap<Key, (wgpu::BindGroup, u64)>,
    submission: u64,
}

impl BindCache {
    /// The cached bind group for `key`, or the one `make` creates (then cached).
    pub fn get(
        &self,
        key: Key,
        make: impl FnOnce() -> Result<wgpu::BindGroup, super::GpuError>,
    ) -> Result<wgpu::BindGroup, super::GpuError> {
        let mut inner = self.inner.lock().unwrap();
        let now = inner.submission;
        if let Some((group, used)) = inner.groups.get_mut(&key) {
            *used = now;
            return Ok(group.clone());
        }
        drop(inner);
        let group = make()?;
        let mut inner = self.inner.lock().unwrap();
        inner.groups.insert(key, (group.clone(), now));
        Ok(group)
    }

    /// Drops the bind groups that bind `buffer`.
    pub fn forget(&self, buffer: &wgpu::Buffer) {
        let mut inner = self.inner.lock().unwrap();
        inner
            .groups
            .retain(|(_, entries, _), _| !entries.iter().any(|(_, b, _)| b == buffer));
    }

    /// Drops the bind groups that bind `view`.
    pub fn forget_texture(&self, view: &wgpu::TextureView) {
        let mut inner = self.inner.lock().unwrap();
        inner
            .groups
            .retain(|(_, _, views), _| !views.iter().any(|(_, v)| v == view));
    }

    /// Marks a submission: bind groups not used since the one before it are dropped.
    pub fn submitted(&self) {
        let mut inner = self.inner.lock().unwrap();
        let now = inner.submission;
        inner.groups.retain(|_, (_, used)| *used + 1 >= now);
        inner.submission += 1;
    }
}
