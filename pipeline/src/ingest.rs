//! The ingest job as a library function: builds the graph (Kafka source -> decode/validate ->
//! landing and dead-letter sinks) with its epoch coordinator and runs it until `shutdown` resolves,
//! the source caught up (`[ingest] until-caught-up`) or something fails. `ctrflow ingest` wraps it
//! with signal handling; tests run it in-process to inject faults (for example a failing object
//! store, see [`ctrflow_storage::Storage::with_layer`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use ctrflow_operators::dataflow::{Graph, StopReason};
use ctrflow_operators::ingest::decode::Decoder;
use ctrflow_operators::ingest::{CoordinatorStats, EpochCoordinator, ManifestOffsets, PartSink};
use ctrflow_operators::kafka::{KafkaSource, coordination_channels, non_empty_partitions};
use ctrflow_schemas::{Domain, Epoch};
use ctrflow_storage::Storage;
use tokio::sync::mpsc;

use crate::config::CtrflowConfig;
use crate::metrics::IngestMetrics;

/// How long start-up waits for topic metadata from the brokers.
const METADATA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs ingest with `config` (already validated) into `storage` until `shutdown` resolves
/// (then the open epoch is finished, landed and committed), in drain mode
/// (`[ingest] until-caught-up`) until the source read every partition to its end offset at
/// assignment (finished the same way), or until an operator, the coordinator or
/// the store fails (then nothing past the last durable epoch manifest is committed, and a
/// restart resumes from there).
pub async fn run_ingest(
    config: &CtrflowConfig,
    storage: Storage,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<CoordinatorStats> {
    let schema = config.schema.event_schema();
    let replica = config.ingest.replica_id.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "ctrflow".into());
        format!("{host}-{}", std::process::id())
    });
    tracing::info!(
        brokers = %config.kafka.brokers,
        group = %config.kafka.group_id,
        store = %config.store.url,
        replica = %replica,
        properties = ?config.kafka.redacted_properties(),
        "ingest starting"
    );

    let (mut coordinator, closed) =
        EpochCoordinator::open(storage.clone(), 2, &replica, &config.ingest.coordinator).await?;
    let with_data = non_empty_partitions(&config.kafka, METADATA_TIMEOUT).await?;
    coordinator.expect_partitions(&with_data);
    let landed = Arc::new(ManifestOffsets::new(storage.clone()));
    let (coordination, end) = coordination_channels(Epoch(1), landed, 8);
    let source = if config.ingest.until_caught_up {
        KafkaSource::draining(&config.kafka, coordination)?
    } else {
        KafkaSource::new(&config.kafka, coordination)?
    };
    let decoder = Decoder::new(config.ingest_decode())?;
    let metrics_server = match &config.metrics.listen {
        Some(listen) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| anyhow::anyhow!("metrics.listen: cannot listen on {listen}: {e}"))?;
            tracing::info!(%listen, "serving Prometheus metrics on /metrics");
            let metrics = IngestMetrics {
                source: source.stats(),
                decode: decoder.stats(),
            };
            Some(AbortOnDrop(tokio::spawn(crate::metrics::serve(
                listener,
                Arc::new(move || metrics.render()),
            ))))
        }
        None => None,
    };
    let (ack_tx, ack_rx) = mpsc::channel(16);
    let topic_domains: HashMap<String, Domain> = Domain::ALL
        .iter()
        .map(|&d| (config.kafka.topics.topic(d).to_string(), d))
        .collect();
    let landing = PartSink::landing(
        storage.clone(),
        &schema,
        closed,
        config.ingest.sink.clone(),
        ack_tx.clone(),
    );
    let dead = PartSink::dead_letter(
        storage.clone(),
        topic_domains,
        config.ingest.sink.clone(),
        ack_tx,
    );

    let mut graph = Graph::new(config.ingest.channel_capacity);
    let s = graph.source(source);
    let d = graph.operator(decoder, 2);
    let l = graph.operator(landing, 0);
    let x = graph.operator(dead, 0);
    graph.connect(s, 0, d)?;
    graph.connect(d, 0, l)?;
    graph.connect(d, 1, x)?;

    let mut coordinator = tokio::spawn(coordinator.run(end.offsets, ack_rx, end.confirm));
    let handle = graph.start()?;
    let stop = handle.shutdown_sender();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: finishing the open epoch");
        let _ = stop.send(StopReason::Shutdown);
    });
    let join = handle.join();
    tokio::pin!(join);
    let stats = tokio::select! {
        graph_result = &mut join => {
            let stats = coordinator.await??;
            graph_result?;
            stats
        }
        // The coordinator only ends early on an error (e.g. storage down): the graph is dropped,
        // which cancels it; nothing past the last manifest was committed.
        coordinator_result = &mut coordinator => {
            let stats = coordinator_result??;
            join.await?;
            stats
        }
    };
    drop(metrics_server);
    Ok(stats)
}

/// Stops a background task (the metrics server) when the run ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
