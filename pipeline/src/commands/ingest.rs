//! `ctrflow ingest`: builds the ingest graph, runs it with the epoch coordinator and turns
//! SIGINT/SIGTERM into a graceful shutdown.

use std::collections::HashMap;
use std::sync::Arc;

use ctrflow_operators::dataflow::Graph;
use ctrflow_operators::ingest::decode::Decoder;
use ctrflow_operators::ingest::{EpochCoordinator, ManifestOffsets, PartSink};
use ctrflow_operators::kafka::{KafkaSource, coordination_channels};
use ctrflow_schemas::{Domain, Epoch};
use tokio::sync::mpsc;

use crate::cli::IngestArgs;
use crate::config::CtrflowConfig;

pub async fn run(args: IngestArgs, mut config: CtrflowConfig) -> anyhow::Result<()> {
    if let Some(b) = args.brokers {
        config.kafka.brokers = b;
    }
    if let Some(g) = args.group {
        config.kafka.group_id = g;
    }
    config.validate()?;
    let storage = super::open_store(args.store, &mut config)?;
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

    let (coordinator, closed) =
        EpochCoordinator::open(storage.clone(), 2, &replica, &config.ingest.coordinator).await?;
    let landed = Arc::new(ManifestOffsets::new(storage.clone()));
    let (coordination, end) = coordination_channels(Epoch(1), landed, 8);
    let source = KafkaSource::new(&config.kafka, coordination)?;
    let decoder = Decoder::new(config.ingest_decode())?;
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
        wait_for_signal().await;
        tracing::info!("shutdown requested: finishing the open epoch");
        let _ = stop.send(ctrflow_operators::dataflow::StopReason::Shutdown);
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
    tracing::info!(
        epochs = stats.epochs,
        landed_rows = stats.landed_rows,
        late_rows = stats.late_rows,
        dead_letter_rows = stats.dead_letter_rows,
        closed_days = stats.closed_days.len(),
        "ingest stopped"
    );
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
