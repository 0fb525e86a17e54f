//! Backends for the conformance suite: memory, a local temp dir, and a real S3-API server.
//!
//! The S3 backend needs `CTRFLOW_TEST_S3_ENDPOINT` (run `scripts/start-s3.sh`, which starts moto
//! and prints the export line). Without it the S3 tests fail, unless `CTRFLOW_SKIP_S3_TESTS=1` is
//! set, in which case they print a loud warning and pass without testing anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::TestResult;
use crate::Storage;

/// A storage under test plus whatever must live as long as it.
pub(crate) struct Backend {
    pub(crate) storage: Storage,
    _dir: Option<tempfile::TempDir>,
}

/// A name no other test in this process (or a previous run against the same server) uses.
pub(crate) fn unique(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(30)
        .collect();
    format!(
        "{name}-{:x}-{n}-{:x}",
        std::process::id(),
        nanos % (1 << 40)
    )
}

pub(crate) fn memory(name: &str) -> Result<Backend, crate::StorageError> {
    let storage = Storage::open(&format!("memory://{}/root/prefix", unique(name)))?;
    Ok(Backend {
        storage,
        _dir: None,
    })
}

pub(crate) fn local(name: &str) -> Result<Backend, Box<dyn std::error::Error + Send + Sync>> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("ctrflow-storage-{name}-"))
        .tempdir()?;
    let root = dir.path().join("root").join("prefix");
    let storage = Storage::open(root.to_str().ok_or("temp dir path is not UTF-8")?)?;
    Ok(Backend {
        storage,
        _dir: Some(dir),
    })
}

/// The S3 test endpoint, `None` only when skipping was requested explicitly.
pub(crate) fn s3_endpoint() -> Option<String> {
    match std::env::var("CTRFLOW_TEST_S3_ENDPOINT") {
        Ok(e) if !e.trim().is_empty() => Some(e.trim().trim_end_matches('/').to_string()),
        _ if std::env::var("CTRFLOW_SKIP_S3_TESTS").as_deref() == Ok("1") => {
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 WARNING: CTRFLOW_SKIP_S3_TESTS=1: the S3 conformance tests are SKIPPED and\n\
                 pass without testing anything. Run scripts/start-s3.sh and export\n\
                 CTRFLOW_TEST_S3_ENDPOINT to test the S3 backend.\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            None
        }
        _ => panic!(
            "CTRFLOW_TEST_S3_ENDPOINT is not set. The S3 conformance tests need an S3-API server: \
             run `eval \"$(scripts/start-s3.sh)\"` from the repository root (it installs and starts \
             moto and prints `export CTRFLOW_TEST_S3_ENDPOINT=http://127.0.0.1:5055`), or set \
             CTRFLOW_SKIP_S3_TESTS=1 to skip them explicitly."
        ),
    }
}

/// The builder options pointing at the test server with dummy credentials.
pub(crate) fn s3_options(endpoint: &str) -> [(&'static str, String); 4] {
    [
        ("aws_endpoint", endpoint.to_string()),
        ("aws_access_key_id", "test".to_string()),
        ("aws_secret_access_key", "test".to_string()),
        ("aws_region", "us-east-1".to_string()),
    ]
}

/// A fresh bucket on the test server, opened with a root prefix; `None` when skipping.
pub(crate) async fn s3(
    name: &str,
) -> Result<Option<Backend>, Box<dyn std::error::Error + Send + Sync>> {
    let Some(endpoint) = s3_endpoint() else {
        return Ok(None);
    };
    let bucket = unique(&format!("ct-{name}"));
    create_bucket(&endpoint, &bucket).await?;
    let options = s3_options(&endpoint);
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let storage = Storage::open_with_options(&format!("s3://{bucket}/root/prefix"), &options)?;
    Ok(Some(Backend {
        storage,
        _dir: None,
    }))
}

/// Create a bucket with a plain, unsigned HTTP/1.1 `PUT /{bucket}` (moto accepts it).
async fn create_bucket(endpoint: &str, bucket: &str) -> TestResult {
    let url = url::Url::parse(endpoint)
        .map_err(|e| format!("CTRFLOW_TEST_S3_ENDPOINT={endpoint} is not a URL: {e}"))?;
    let host = url
        .host_str()
        .ok_or("the S3 endpoint has no host")?
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or("the S3 endpoint has no port")?;
    let mut stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| {
            format!(
                "cannot connect to the S3 test server at {endpoint}: {e}. \
                 Start it with scripts/start-s3.sh"
            )
        })?;
    let request = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let status = response.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("creating bucket {bucket} at {endpoint} failed: {status}").into());
    }
    Ok(())
}
