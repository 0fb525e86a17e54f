//! The `ctrflow` command line: configuration loading, logging, progress reporting and the
//! commands that drive the operators. `main.rs` only calls [`run`].
//!
//! Exit codes: 0 success, 1 failure, 2 bad usage or configuration.

pub mod cli;
mod commands;
pub mod config;
pub mod daily;
pub mod demo;
pub mod experiment;
pub mod gc;
pub mod ingest;
mod logging;
pub mod metrics;
mod progress;

pub use cli::{main_entry, run, trains};
