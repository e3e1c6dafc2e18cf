//! dermo-model: the contract shared by the host workbench and the device.
//!
//! One code path on both halves: file or frame → [`preprocess`] → tensor `[1,3,S,S]` →
//! network (built from [`arch`]) → logits → [`decision`] → display / journal / report.

pub mod arch;
pub mod taxonomy;

pub use taxonomy::{Class, CLASSES, NUM_CLASSES};
