//! Sources, transforms and sinks of ctrflow.
//!
//! - [`archive`]: writes event batches as a Parquet archive in the landing layout, closing each day
//!   with a `_SUCCESS` manifest (used by the generator and importers).
//! - [`generate`]: the seeded synthetic two-domain log generator.
//! - [`movielens`]: imports MovieLens (RecBole atomic files) as events.
//! - [`sql`]: DataFusion over the archive on any object store.
//! - [`dataflow`]: the operator runtime (messages, operator traits, graphs).
//! - [`ingest`]: decode, validate, dead-letter and landing operators of `ctrflow ingest`.
//! - [`kafka`]: the Kafka source and producer (rdkafka types stay inside).
//! - [`priority`]: ctrflow's worker threads below librdkafka's in CPU priority.
//! - [`train`]: the trainer sink that feeds a model's training thread from a graph.

pub mod archive;
pub mod dataflow;
mod error;
pub mod generate;
pub mod ingest;
pub mod kafka;
pub mod movielens;
pub mod priority;
pub mod sql;
pub mod train;

pub use error::OperatorError;
