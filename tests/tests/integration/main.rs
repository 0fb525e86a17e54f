//! Cross-crate integration tests of ctrflow, as one test binary with a module per area.
//! Real parts only: Parquet files on a local filesystem and on a real S3-API server, the CLI
//! entry point, the real MovieLens-100k files. Fixtures come from `ctrflow-test-support`.

mod archive;
mod cli;
mod daily;
mod experiment;
mod faults;
mod generate;
mod ingest;
mod ingest_faults;
mod movielens;
