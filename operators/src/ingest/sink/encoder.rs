//! [`OpenPart`]: one output file of a [`super::PartSink`] being encoded while its epoch is open.
//!
//! The sink hands each part its rows as they arrive; the part encodes them on tokio's blocking
//! pool into an in-memory [`ParquetEncoder`]. A part's batches are encoded in arrival order, one
//! task at a time (the next hand-off first waits for the previous one, which is usually long
//! done), while different parts encode in parallel. So the Parquet work is spread over the epoch
//! instead of falling on its barrier, the sink keeps taking input meanwhile, and what a part
//! holds is its compressed file so far, not its Arrow rows. Nothing is stored until the part is
//! finished and its bytes put.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use ctrflow_storage::{ParquetEncoder, ParquetWriteOptions, StorageError};
use tokio::task::JoinHandle;

use crate::OperatorError;

/// The encoder, the blocking task that currently owns it, or neither.
enum State {
    Idle(Box<ParquetEncoder>),
    Encoding(JoinHandle<Result<ParquetEncoder, StorageError>>),
    /// A hand-off failed or its wait was cancelled: the file would miss rows, so every further
    /// use of the part fails.
    Lost,
}

/// One file being encoded; see the module docs.
pub(super) struct OpenPart {
    state: State,
    rows: usize,
    first_offset: i64,
    last_offset: i64,
}

fn task_failed(e: tokio::task::JoinError) -> OperatorError {
    OperatorError::Internal(format!("parquet encoding task failed: {e}"))
}

impl OpenPart {
    /// An empty file of `schema` encoded with `options`.
    pub(super) fn new(
        schema: &SchemaRef,
        options: &ParquetWriteOptions,
    ) -> Result<Self, OperatorError> {
        Ok(OpenPart {
            state: State::Idle(Box::new(ParquetEncoder::new(schema, options)?)),
            rows: 0,
            first_offset: i64::MAX,
            last_offset: i64::MIN,
        })
    }

    /// Rows handed to the part so far.
    pub(super) fn rows(&self) -> usize {
        self.rows
    }

    /// Smallest and largest source offset among the rows handed so far.
    pub(super) fn offsets(&self) -> (i64, i64) {
        (self.first_offset, self.last_offset)
    }

    /// Hands `batches` (whose source offsets span `first..=last`) to the encoder: waits for
    /// the part's previous hand-off, then encodes these on the blocking pool and returns without
    /// waiting for them. An encoding error surfaces at the next hand-off or at
    /// [`OpenPart::finish`].
    pub(super) async fn write(
        &mut self,
        batches: Vec<RecordBatch>,
        first: i64,
        last: i64,
    ) -> Result<(), OperatorError> {
        let mut encoder = self.settle().await?;
        self.rows += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
        self.first_offset = self.first_offset.min(first);
        self.last_offset = self.last_offset.max(last);
        self.state = State::Encoding(tokio::task::spawn_blocking(move || {
            for batch in &batches {
                encoder.write(batch)?;
            }
            Ok(encoder)
        }));
        Ok(())
    }

    /// Waits for every hand-off, then flushes the last row group and the footer (on the
    /// blocking pool) and returns the file.
    pub(super) async fn finish(mut self) -> Result<Bytes, OperatorError> {
        let encoder = self.settle().await?;
        let bytes = tokio::task::spawn_blocking(move || encoder.finish())
            .await
            .map_err(task_failed)??;
        Ok(bytes)
    }

    /// The encoder once no task holds it.
    async fn settle(&mut self) -> Result<ParquetEncoder, OperatorError> {
        match std::mem::replace(&mut self.state, State::Lost) {
            State::Idle(encoder) => Ok(*encoder),
            State::Encoding(task) => Ok(task.await.map_err(task_failed)??),
            State::Lost => Err(OperatorError::Internal(
                "a landing part lost its encoder after an earlier failure".into(),
            )),
        }
    }
}
