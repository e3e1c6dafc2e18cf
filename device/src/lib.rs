//! dermo-device: the dermatoscope program `dermo-scope`.
//!
//! A frame flows one way: [`source`] → quality gate (`dermo_model::quality`) → [`classifier`] (the shared
//! `dermo_model` preprocessing, tract runtime and decision rule) → [`ui`] screen → [`display`]
//! sink, and every capture is stored by the [`journal`]. [`app`] is the loop that joins them.

pub mod app;
pub mod bench;
pub mod capture;
pub mod classifier;
pub mod commands;
pub mod config;
pub mod controls;
pub mod display;
pub mod export;
pub mod frame;
pub mod journal;
pub mod modelstore;
pub mod source;
pub mod ui;

pub use capture::{CaptureResult, OutcomeKind};
pub use classifier::Classifier;
pub use config::Config;
pub use dermo_model::quality::{QualityGate, QualityIssue, QualityReport};
pub use frame::{Frame, FrameData};
pub use journal::{Journal, StoragePolicy};
pub use source::{FrameSource, SourceError, SourceSpec};
