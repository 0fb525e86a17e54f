//! URL handling, the memory registry, the SQL-engine accessors and error classification.

use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::TestResult;
use super::harness::unique;
use crate::{ErrorClass, Storage, StorageError, StoreKind};

#[tokio::test]
async fn memory_registry_shares_stores_by_name() -> TestResult {
    let name = unique("shared");
    let a = Storage::open(&format!("memory://{name}"))?;
    let b = Storage::open(&format!("memory://{name}"))?;
    let sub = Storage::open(&format!("memory://{name}/sub/dir"))?;
    let other = Storage::open(&format!("memory://{}", unique("other")))?;
    a.put_once("k", Bytes::from_static(b"1")).await?;
    assert_eq!(
        b.get("k").await?,
        Bytes::from_static(b"1"),
        "same name, same store"
    );
    assert_eq!(other.get_opt("k").await?, None, "other name, other store");
    sub.put_once("x", Bytes::from_static(b"2")).await?;
    assert_eq!(
        a.get("sub/dir/x").await?,
        Bytes::from_static(b"2"),
        "path is a prefix"
    );
    assert_eq!(sub.url().as_str(), format!("memory://{name}/sub/dir"));
    assert_eq!(sub.object_store_url().as_str(), format!("memory://{name}/"));
    assert_eq!(sub.full_path("x"), "sub/dir/x");
    assert_eq!(a.full_path("x"), "x");
    let raw = sub
        .object_store()
        .get(&Path::from("sub/dir/x"))
        .await?
        .bytes()
        .await?;
    assert_eq!(
        raw,
        Bytes::from_static(b"2"),
        "object_store() is the un-prefixed store"
    );
    let caps = a.capabilities();
    assert_eq!(caps.kind, StoreKind::Memory);
    assert!(caps.conditional_update && caps.create_if_absent);
    Ok(())
}

#[tokio::test]
async fn local_paths_and_file_urls() -> TestResult {
    let dir = tempfile::tempdir()?;
    let canonical = std::fs::canonicalize(dir.path())?;
    let target = canonical.join("store").join("root");
    let by_path = Storage::open(target.to_str().ok_or("utf-8")?)?;
    assert!(target.is_dir(), "directory created");
    let file_url = format!("file://{}", target.display());
    assert_eq!(by_path.url().as_str(), file_url);
    let by_url = Storage::open(&file_url)?;
    by_path
        .put_once("a/b.txt", Bytes::from_static(b"hi"))
        .await?;
    assert_eq!(by_url.get("a/b.txt").await?, Bytes::from_static(b"hi"));
    assert_eq!(std::fs::read(target.join("a").join("b.txt"))?, b"hi");

    // A relative path resolves against the current directory.
    let cwd = std::env::current_dir()?;
    let ups = cwd.components().count().saturating_sub(1);
    let relative = format!(
        "{}{}",
        "../".repeat(ups),
        target.to_str().ok_or("utf-8")?.trim_start_matches('/')
    );
    let by_relative = Storage::open(&relative)?;
    assert_eq!(by_relative.url().as_str(), file_url);
    assert_eq!(by_relative.get("a/b.txt").await?, Bytes::from_static(b"hi"));

    assert_eq!(by_path.object_store_url().as_str(), "file:///");
    let full = by_path.full_path("a/b.txt");
    assert_eq!(
        format!("/{full}"),
        target.join("a/b.txt").display().to_string()
    );
    let raw = by_path
        .object_store()
        .get(&Path::from(full))
        .await?
        .bytes()
        .await?;
    assert_eq!(raw, Bytes::from_static(b"hi"));
    let caps = by_path.capabilities();
    assert_eq!(caps.kind, StoreKind::Local);
    assert!(!caps.conditional_update && caps.create_if_absent);
    Ok(())
}

#[cfg(feature = "aws")]
#[test]
fn s3_urls_build_without_network() -> TestResult {
    let s = Storage::open_with_options(
        "s3://my-bucket/some/prefix/",
        &[
            ("aws_endpoint", "http://127.0.0.1:1"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("aws_secret_access_key", "s"),
        ],
    )?;
    assert_eq!(s.url().as_str(), "s3://my-bucket/some/prefix");
    assert_eq!(s.object_store_url().as_str(), "s3://my-bucket/");
    assert_eq!(s.full_path("landing/ad/"), "some/prefix/landing/ad");
    assert_eq!(s.capabilities().kind, StoreKind::S3);
    assert!(s.capabilities().conditional_update);
    let e = Storage::open_with_options("s3://b", &[("no_such_option", "1")])
        .expect_err("unknown option");
    assert!(matches!(e, StorageError::InvalidOption { .. }), "{e}");
    let e = Storage::open("s3:///prefix-without-bucket").expect_err("no bucket");
    assert!(matches!(e, StorageError::InvalidUrl { .. }), "{e}");
    Ok(())
}

#[test]
fn invalid_urls_are_user_errors() {
    for url in ["", "ftp://host/x", "hdfs://nn/path", "http://example.com/x"] {
        let e = Storage::open(url).expect_err("unsupported URL");
        assert!(matches!(e, StorageError::InvalidUrl { .. }), "{url}: {e}");
        assert_eq!(e.class(), ErrorClass::User);
        let msg = e.to_string();
        assert!(
            msg.contains("s3://") && msg.contains("memory://"),
            "lists schemes: {msg}"
        );
        assert!(msg.contains(url), "names the URL: {msg}");
    }
    let e = Storage::open_with_options("memory://x", &[("a", "b")]).expect_err("no options");
    assert!(matches!(e, StorageError::InvalidOption { .. }), "{e}");
}

#[test]
fn disabled_features_are_named() {
    #[cfg(not(feature = "gcp"))]
    {
        let e = Storage::open("gs://bucket/p").expect_err("gcp is off");
        assert!(
            matches!(e, StorageError::FeatureDisabled { feature: "gcp", .. }),
            "{e}"
        );
        assert!(e.to_string().contains("--features gcp"), "{e}");
    }
    #[cfg(not(feature = "azure"))]
    for url in ["az://container/p", "abfs://container/p"] {
        let e = Storage::open(url).expect_err("azure is off");
        assert!(
            matches!(
                e,
                StorageError::FeatureDisabled {
                    feature: "azure",
                    ..
                }
            ),
            "{e}"
        );
    }
    #[cfg(not(feature = "aws"))]
    {
        let e = Storage::open("s3://bucket/p").expect_err("aws is off");
        assert!(
            matches!(e, StorageError::FeatureDisabled { feature: "aws", .. }),
            "{e}"
        );
    }
}

#[test]
fn error_classes() {
    let store_err = |source| StorageError::ObjectStore {
        op: "get",
        key: "k".into(),
        source,
    };
    let transient = store_err(object_store::Error::Generic {
        store: "S3",
        source: "connection reset".into(),
    });
    assert!(transient.is_retryable());
    assert_eq!(
        transient.to_string(),
        "get 'k' failed: Generic S3 error: connection reset"
    );
    let denied = store_err(object_store::Error::PermissionDenied {
        path: "k".into(),
        source: "no".into(),
    });
    assert_eq!(denied.class(), ErrorClass::User);
    let conflict = StorageError::PointerConflict { key: "k".into() };
    assert!(conflict.is_conflict() && !conflict.is_retryable());
    let wrapped = StorageError::Parquet {
        key: "k".into(),
        source: parquet::errors::ParquetError::External(Box::new(object_store::Error::Generic {
            store: "S3",
            source: "timeout".into(),
        })),
    };
    assert!(
        wrapped.is_retryable(),
        "store failures inside parquet reads are retryable"
    );
    let corrupt = StorageError::Parquet {
        key: "k".into(),
        source: parquet::errors::ParquetError::General("bad footer".into()),
    };
    assert!(!corrupt.is_retryable());
}
