//! dermo-device: the dermatoscope program `dermo-scope`.
//!
//! A frame flows one way: [`source`] → [`quality`] gate → [`classifier`] (the shared
//! `dermo_model` preprocessing, tract runtime and decision rule) → [`ui`] screen → [`display`]
//! sink, and every capture is stored by the [`journal`].

pub mod frame;
pub mod quality;
pub mod source;
pub mod ui;

pub use frame::{Frame, FrameData};
pub use quality::{QualityGate, QualityIssue, QualityReport};
pub use source::{FrameSource, SourceError, SourceSpec};
