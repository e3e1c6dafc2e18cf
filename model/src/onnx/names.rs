//! The names of the written graph's tensors, and what depends on the architecture only: the
//! contract between the writer (host) and the runtime (host and device), so these build without
//! the writer.

use crate::arch::{padding, ArchSpec, Block};

/// Name of the network input.
pub const INPUT: &str = "input";
/// Name of the last feature map (after the head conv, BatchNorm and ReLU6).
pub const FEATURES: &str = "features";
/// Name of the global-average-pooled, flattened features `[N, C]`.
pub const POOLED: &str = "pooled";
/// Name of the logits.
pub const LOGITS: &str = "logits";
/// Name of the class-activation maps `[N, classes, h, w]`: the classifier applied at every cell
/// of the last feature map, so each map's spatial mean is that class's logit.
pub const CLASS_MAPS: &str = "class_maps";
/// Name of the global-average-pooled output of the block the OOD rule reads `[N, C]`.
pub const OOD_FEATURES: &str = "ood_features";

/// Name of block `index`'s output tensor: its residual sum, or its projection when it has none.
/// `None` when the network has no such block.
pub fn block_output(spec: &ArchSpec, index: usize) -> Option<String> {
    let b = spec.blocks().into_iter().nth(index)?;
    let step = if b.has_skip() { "add" } else { "project" };
    Some(format!("blocks.{index}.{step}"))
}

/// Prefix of the tensor names of the frozen OOD branch (see [`ood_trunk`]).
pub const OOD_PREFIX: &str = "ood.";

/// The spatial side of the last feature map for a square input of side `size`.
pub fn feature_map_side(spec: &ArchSpec, size: usize) -> usize {
    let down = |s: usize, k: usize, stride: usize| (s + 2 * padding(k) - k) / stride + 1;
    spec.blocks()
        .iter()
        .fold(down(size, 3, 2), |s, b: &Block| down(s, b.kernel, b.stride))
}
