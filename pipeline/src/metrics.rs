//! Prometheus metrics of `ctrflow ingest`: the counters the operators keep anyway (source,
//! decoder), rendered in the Prometheus text format on `GET /metrics` by a tiny HTTP/1.1
//! server (one request per connection; scrapers need nothing more), plus `GET /healthz`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ctrflow_operators::ingest::decode::DecodeStats;
use ctrflow_operators::kafka::KafkaSourceStats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The counters of one ingest process.
#[derive(Debug, Clone)]
pub struct IngestMetrics {
    /// The Kafka source's counters and lag.
    pub source: Arc<KafkaSourceStats>,
    /// The decoder's accepted/rejected counts.
    pub decode: Arc<DecodeStats>,
}

/// Escapes a label value for the text format.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A counter family with one unlabelled sample.
fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

impl IngestMetrics {
    /// The metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let s = &self.source;
        let mut out = String::with_capacity(4096);
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        for (name, help, value) in [
            (
                "ctrflow_ingest_messages_total",
                "Kafka messages emitted downstream.",
                load(&s.messages),
            ),
            (
                "ctrflow_ingest_bytes_total",
                "Kafka payload bytes emitted downstream.",
                load(&s.bytes),
            ),
            (
                "ctrflow_ingest_epochs_total",
                "Epoch barriers emitted.",
                load(&s.epochs),
            ),
            (
                "ctrflow_ingest_confirmed_epochs_total",
                "Epochs whose manifest is durable.",
                load(&s.confirmed_epochs),
            ),
            (
                "ctrflow_ingest_commits_total",
                "Successful Kafka offset commits.",
                load(&s.commits),
            ),
            (
                "ctrflow_ingest_commit_failures_total",
                "Failed Kafka offset commits (retried).",
                load(&s.commit_failures),
            ),
            (
                "ctrflow_ingest_rebalances_total",
                "Partition assignments and revocations.",
                load(&s.rebalances),
            ),
            (
                "ctrflow_ingest_client_errors_total",
                "Errors reported by librdkafka.",
                load(&s.client_errors),
            ),
            (
                "ctrflow_ingest_accepted_total",
                "Messages that passed validation.",
                self.decode.good(),
            ),
            (
                "ctrflow_ingest_rows_total",
                "Event rows decoded.",
                self.decode.rows(),
            ),
        ] {
            counter(&mut out, name, help, value);
        }
        header(
            &mut out,
            "ctrflow_ingest_dropped_total",
            "counter",
            "Messages dropped before decoding, by cause.",
        );
        let _ = writeln!(
            out,
            "ctrflow_ingest_dropped_total{{cause=\"already-landed\"}} {}\n\
             ctrflow_ingest_dropped_total{{cause=\"unassigned\"}} {}",
            load(&s.dropped_landed),
            load(&s.dropped_unassigned)
        );
        counter(
            &mut out,
            "ctrflow_ingest_skipped_offsets_total",
            "Offsets never delivered between delivered ones: retention deleted messages before \
             ingest read them (data loss), log compaction, or transaction markers. Alert on increase.",
            load(&s.skipped_offsets),
        );
        header(
            &mut out,
            "ctrflow_ingest_rejected_total",
            "counter",
            "Messages sent to the dead letters, by reason.",
        );
        for (reason, n) in self.decode.snapshot() {
            let _ = writeln!(
                out,
                "ctrflow_ingest_rejected_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let lag = s.partition_lag();
        header(
            &mut out,
            "ctrflow_ingest_partition_lag",
            "gauge",
            "Messages not yet consumed, per assigned partition.",
        );
        for l in &lag {
            let _ = writeln!(
                out,
                "ctrflow_ingest_partition_lag{{topic=\"{}\",partition=\"{}\"}} {}",
                label(&l.topic),
                l.partition,
                l.lag
            );
        }
        header(
            &mut out,
            "ctrflow_ingest_partition_uncommitted",
            "gauge",
            "Messages not yet landed and committed, per assigned partition.",
        );
        for l in &lag {
            if let Some(u) = l.uncommitted {
                let _ = writeln!(
                    out,
                    "ctrflow_ingest_partition_uncommitted{{topic=\"{}\",partition=\"{}\"}} {u}",
                    label(&l.topic),
                    l.partition
                );
            }
        }
        out
    }
}

/// Serves `GET /metrics` (from `render`) and `GET /healthz` on `listener` until the task is
/// dropped. Each connection gets one response and is closed.
pub async fn serve(listener: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let mut len = 0;
            // Read until the end of the request head (or the buffer is full).
            while len < buf.len() {
                match stream.read(&mut buf[len..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => len += n,
                }
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let mut parts = head.split_whitespace();
            let (status, content_type, body) = match (parts.next(), parts.next()) {
                (Some("GET"), Some("/metrics")) => (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    render(),
                ),
                (Some("GET"), Some("/healthz")) => ("200 OK", "text/plain", "ok\n".to_string()),
                (Some("GET"), Some(_)) => (
                    "404 Not Found",
                    "text/plain",
                    "try /metrics or /healthz\n".to_string(),
                ),
                _ => (
                    "405 Method Not Allowed",
                    "text/plain",
                    "GET only\n".to_string(),
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn serves_the_counters_in_the_prometheus_text_format() {
        let metrics = IngestMetrics {
            source: Arc::new(KafkaSourceStats::default()),
            decode: Arc::new(DecodeStats::default()),
        };
        metrics.source.messages.store(42, Ordering::Relaxed);
        metrics.source.dropped_landed.store(7, Ordering::Relaxed);
        metrics.source.skipped_offsets.store(3, Ordering::Relaxed);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let m = metrics.clone();
        let server = tokio::spawn(serve(listener, Arc::new(move || m.render())));

        let response = get(addr, "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("text/plain; version=0.0.4"));
        assert!(
            response.contains("\nctrflow_ingest_messages_total 42\n"),
            "{response}"
        );
        assert!(response.contains("ctrflow_ingest_dropped_total{cause=\"already-landed\"} 7\n"));
        assert!(response.contains("ctrflow_ingest_rejected_total{reason=\"bad-json\"} 0\n"));
        assert!(response.contains("\nctrflow_ingest_skipped_offsets_total 3\n"));
        assert!(response.contains("# TYPE ctrflow_ingest_messages_total counter\n"));
        // Content-Length matches the body.
        let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );

        metrics.source.messages.store(43, Ordering::Relaxed);
        assert!(
            get(addr, "/metrics")
                .await
                .contains("\nctrflow_ingest_messages_total 43\n")
        );
        assert!(get(addr, "/healthz").await.ends_with("\r\n\r\nok\n"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
