//! Unit tests. The conformance suite ([`conformance`]) runs every contract check against memory,
//! a local temp dir and a real S3-API server (see [`harness`]).

mod conformance;
mod harness;
mod lock_tests;
mod open_tests;

/// Tests return errors instead of unwrapping.
pub(crate) type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Generate one test per (backend, check) pair: `tests::{memory,local,s3}::{check}`.
macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> super::TestResult {
                    let backend = super::harness::memory(stringify!($name))?;
                    super::conformance::$name(&backend.storage).await
                }
            )*
        }
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> super::TestResult {
                    let backend = super::harness::local(stringify!($name))?;
                    super::conformance::$name(&backend.storage).await
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> super::TestResult {
                    match super::harness::s3(stringify!($name)).await? {
                        Some(backend) => super::conformance::$name(&backend.storage).await,
                        None => Ok(()),
                    }
                }
            )*
        }
    };
}

conformance_tests!(
    put_get_head_delete,
    list_and_list_dirs,
    write_once_replay_and_violation,
    write_once_concurrent_identical,
    pointer_create_and_replace,
    pointer_lost_race,
    pointer_concurrent_counter,
    parquet_round_trip,
    parquet_stream_row_groups,
    parquet_empty,
);
