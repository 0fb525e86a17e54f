//! Shared test fixtures of ctrflow, used by unit tests of the crates and by the integration tests
//! in `tests/`. Std only, so any crate can take it as a dev-dependency.
//!
//! External services are started by the test command (`scripts/test.sh`, called by `.ci/run`),
//! which exports where they are:
//! - `CTRFLOW_TEST_S3_ENDPOINT`: a real S3-API server (moto), see `scripts/start-s3.sh`;
//! - `CTRFLOW_TEST_BROKERS`: a real Kafka-protocol broker (tansu), see `scripts/start-broker.sh`;
//! - `CTRFLOW_TEST_ML100K`: MovieLens-100k atomic files, see `scripts/fetch-movielens.sh`.
//!
//! A test that needs one of them and does not find it FAILS with a message saying how to start
//! it. Nothing is skipped silently.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A name unique in this process and across runs (for buckets, memory stores, topics).
/// Lower-case letters, digits and dashes only, so it is a valid S3 bucket name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{n}-{:x}",
        std::process::id(),
        nanos & 0xffff_ffff
    )
}

fn required_env(var: &str, how: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set. This test needs a real service; start it with `{how}` \
             (scripts/test.sh does this for the whole suite)."
        ),
    }
}

/// The S3-API endpoint (e.g. `http://127.0.0.1:5055`).
pub fn s3_endpoint() -> String {
    required_env(
        "CTRFLOW_TEST_S3_ENDPOINT",
        "eval \"$(scripts/start-s3.sh | grep '^export ')\"",
    )
}

/// A fresh bucket on the S3-API server: its URL and the store options to open it with.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    /// `s3://bucket`
    pub url: String,
    /// Endpoint and dummy credentials, as object_store AWS config keys.
    pub options: Vec<(String, String)>,
}

impl S3Bucket {
    /// The options as string slices, the form `Storage::open_with_options` takes.
    pub fn option_refs(&self) -> Vec<(&str, &str)> {
        self.options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// Creates `bucket` on the S3-API server with an unsigned HTTP PUT (moto accepts it).
pub fn s3_bucket(bucket: &str) -> S3Bucket {
    let endpoint = s3_endpoint();
    let hostport = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = TcpStream::connect(&hostport)
        .unwrap_or_else(|e| panic!("cannot connect to the S3-API server at {endpoint}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set timeout");
    let request = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .expect("send PUT bucket");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read PUT bucket response");
    let status = response.lines().next().unwrap_or_default().to_string();
    assert!(
        status.contains(" 200"),
        "creating bucket {bucket} failed: {status}"
    );
    let options = vec![
        ("aws_endpoint".to_string(), endpoint),
        ("aws_access_key_id".to_string(), "test".to_string()),
        ("aws_secret_access_key".to_string(), "test".to_string()),
        ("aws_region".to_string(), "us-east-1".to_string()),
        ("aws_allow_http".to_string(), "true".to_string()),
    ];
    S3Bucket {
        url: format!("s3://{bucket}"),
        options,
    }
}

/// The Kafka-protocol broker address list (e.g. `127.0.0.1:19092`).
pub fn brokers() -> String {
    required_env(
        "CTRFLOW_TEST_BROKERS",
        "eval \"$(scripts/start-broker.sh | grep '^export ')\"",
    )
}

/// A broker of the test's own (the tansu binary of `CTRFLOW_TEST_TANSU`, in-memory storage, a
/// free port on 127.0.0.1), for fault tests that pause or stop it without disturbing tests that
/// share the suite's broker. Killed on drop.
pub struct PrivateBroker {
    child: std::process::Child,
    /// `127.0.0.1:PORT`
    pub address: String,
}

impl PrivateBroker {
    /// Starts the broker and waits (up to 30 s) until it accepts connections.
    pub fn start() -> PrivateBroker {
        let bin = required_env(
            "CTRFLOW_TEST_TANSU",
            "eval \"$(scripts/start-broker.sh | grep '^export ')\"",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let child = std::process::Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let broker = PrivateBroker { child, address };
        let start = std::time::Instant::now();
        while TcpStream::connect(&broker.address).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "private broker on {} did not come up",
                broker.address
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        broker
    }

    /// The broker's process id (to read its CPU time from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the broker process.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("kill -{signal}: {e}"));
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The directory with MovieLens-100k in RecBole's atomic format.
pub fn movielens_100k_dir() -> PathBuf {
    PathBuf::from(required_env(
        "CTRFLOW_TEST_ML100K",
        "export CTRFLOW_TEST_ML100K=$(scripts/fetch-movielens.sh | grep ml-100k)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_bucket_safe() {
        let a = unique_name("ctr");
        let b = unique_name("ctr");
        assert_ne!(a, b);
        assert!(a.len() <= 63, "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{a}"
        );
    }
}
