//! Training as a dataflow sink: [`TrainerSink`] hands each batch to a model's training thread
//! ([`ctrflow_models::train::spawn_training_thread`]), so a training job is a graph like any
//! other: a source of event batches (the daily job reads closed landing days), optional
//! transforms (its holdout split), and this sink.
//!
//! The training thread's input is a bounded channel. The sink waits for room on a blocking
//! thread (never on a tokio worker), so a trainer slower than its reader stalls the graph
//! upstream instead of growing memory. When the training thread stops (an error such as a NaN
//! loss), the sink fails with [`OperatorError::Disconnected`]; the thread's own error, which
//! `TrainingThread::finish` returns, is the one to report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;

use arrow::array::RecordBatch;
use async_trait::async_trait;

use crate::OperatorError;
use crate::dataflow::{Collector, Operator};

/// A sink that feeds a training thread (the sender of `TrainingThread::sender`).
pub struct TrainerSink {
    name: String,
    sender: SyncSender<RecordBatch>,
    rows: Arc<AtomicU64>,
}

impl TrainerSink {
    /// A sink called `name` sending into a training thread's channel.
    pub fn new(name: impl Into<String>, sender: SyncSender<RecordBatch>) -> Self {
        TrainerSink {
            name: name.into(),
            sender,
            rows: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The number of rows handed to the trainer so far, readable after the graph is gone.
    pub fn rows_handed(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.rows)
    }
}

#[async_trait]
impl Operator for TrainerSink {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn process_batch(
        &mut self,
        batch: RecordBatch,
        _out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        let rows = batch.num_rows() as u64;
        if rows == 0 {
            return Ok(());
        }
        let sender = self.sender.clone();
        let handed = tokio::task::spawn_blocking(move || sender.send(batch).is_ok())
            .await
            .map_err(|e| OperatorError::Internal(format!("{}: feeder task: {e}", self.name)))?;
        if !handed {
            return Err(OperatorError::Disconnected(format!(
                "{}: the training thread stopped",
                self.name
            )));
        }
        self.rows.fetch_add(rows, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use arrow::array::UInt64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use ctrflow_schemas::Epoch;

    use super::*;
    use crate::dataflow::{Message, drive};

    /// A batch of `n` rows (the sink does not look at the columns).
    fn events(n: u64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::UInt64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(UInt64Array::from_iter_values(0..n))])
            .expect("batch")
    }

    #[tokio::test]
    async fn hands_every_batch_to_the_trainer_in_order() {
        let (tx, rx) = sync_channel(8);
        let mut sink = TrainerSink::new("trainer", tx);
        let handed = sink.rows_handed();
        let (a, b) = (events(30), events(20));
        drive(
            &mut sink,
            [
                Message::Batch(a.clone()),
                Message::Barrier(Epoch(1)),
                Message::Batch(b.clone()),
                Message::End,
            ],
            0,
        )
        .await
        .expect("drive");
        drop(sink);
        let received: Vec<RecordBatch> = rx.iter().collect();
        assert_eq!(received, vec![a, b]);
        assert_eq!(handed.load(Ordering::Relaxed), 50);
    }

    #[tokio::test]
    async fn a_stopped_training_thread_fails_the_sink() {
        let (tx, rx) = sync_channel(1);
        drop(rx);
        let mut sink = TrainerSink::new("trainer", tx);
        let err = drive(&mut sink, [Message::Batch(events(5))], 0)
            .await
            .expect_err("must fail");
        assert!(matches!(err, OperatorError::Disconnected(_)), "{err}");
        assert!(err.to_string().contains("training thread stopped"), "{err}");
    }
}
