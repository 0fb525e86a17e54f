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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
    }

    fn batch(values: &[i64]) -> RecordBatch {
        RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("batch")
    }

    /// Rows and offsets add up over hand-offs, and the finished file holds every row in order.
    #[tokio::test]
    async fn hand_offs_accumulate_into_one_file() {
        let mut part = OpenPart::new(&schema(), &ParquetWriteOptions::default()).expect("part");
        part.write(vec![batch(&[1, 2])], 10, 11)
            .await
            .expect("first");
        part.write(vec![batch(&[3]), batch(&[4, 5])], 7, 14)
            .await
            .expect("second");
        assert_eq!(part.rows(), 5);
        assert_eq!(part.offsets(), (7, 14));
        let bytes = part.finish().await.expect("finish");
        let values: Vec<i64> =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(bytes, 1024)
                .expect("reader")
                .flat_map(|b| {
                    let b = b.expect("batch");
                    let column = b.column(0).as_any().downcast_ref::<Int64Array>();
                    column.expect("i64").values().to_vec()
                })
                .collect();
        assert_eq!(values, [1, 2, 3, 4, 5]);
    }

    /// A hand-off that fails to encode (rows of another schema) fails the part: the error
    /// surfaces at the next use, and every use after it fails too, so no file with rows
    /// missing can be finished.
    #[tokio::test]
    async fn a_failed_hand_off_fails_every_later_use_of_the_part() {
        let mut part = OpenPart::new(&schema(), &ParquetWriteOptions::default()).expect("part");
        let other = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        let wrong = RecordBatch::try_new(other, vec![Arc::new(StringArray::from(vec!["x"]))])
            .expect("batch");
        part.write(vec![wrong], 0, 0).await.expect("handed off");
        assert!(
            part.write(vec![batch(&[1])], 1, 1).await.is_err(),
            "the encode error"
        );
        assert!(part.write(vec![batch(&[2])], 2, 2).await.is_err(), "lost");
        assert!(part.finish().await.is_err());
    }
}
