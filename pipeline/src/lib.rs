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

pub use cli::run;

/// The process-wide allocator of every binary that links this crate (`ctrflow` and the test
/// builds of it). With glibc's malloc, ingest's resident memory crept up to about 1 GiB while
/// draining a backlog, and the daily job's grew with the number of days: memory freed on one
/// thread (decoders, Parquet writers, trainers) stayed in per-thread arenas. mimalloc keeps it
/// flat; `docs/benchmarks.md` has both measurements.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
