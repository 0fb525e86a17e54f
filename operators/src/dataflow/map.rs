//! [`MapBatches`]: a stateless transform operator from a function of one batch.

use arrow::array::RecordBatch;
use async_trait::async_trait;

use super::{Collector, Operator};
use crate::OperatorError;

/// Applies a function to every batch and emits the result on port 0 (an empty result is not
/// emitted). For filters and projections that need no state across batches, such as the daily
/// job's holdout split. Control messages pass through unchanged.
pub struct MapBatches<F> {
    name: String,
    map: F,
}

impl<F> MapBatches<F>
where
    F: FnMut(RecordBatch) -> Result<RecordBatch, OperatorError> + Send + 'static,
{
    /// An operator called `name` applying `map`.
    pub fn new(name: impl Into<String>, map: F) -> Self {
        MapBatches {
            name: name.into(),
            map,
        }
    }
}

#[async_trait]
impl<F> Operator for MapBatches<F>
where
    F: FnMut(RecordBatch) -> Result<RecordBatch, OperatorError> + Send + 'static,
{
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn process_batch(
        &mut self,
        batch: RecordBatch,
        out: &mut dyn Collector,
    ) -> Result<(), OperatorError> {
        let mapped = (self.map)(batch)?;
        if mapped.num_rows() > 0 {
            out.collect(0, mapped).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BooleanArray, UInt64Array};
    use arrow::compute::filter_record_batch;
    use arrow::datatypes::{DataType, Field, Schema};
    use ctrflow_schemas::Epoch;

    use super::*;
    use crate::dataflow::{Message, drive};

    fn batch(values: &[u64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::UInt64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(UInt64Array::from(values.to_vec()))])
            .expect("batch")
    }

    fn even_only(b: RecordBatch) -> Result<RecordBatch, OperatorError> {
        let values = b
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| OperatorError::Internal("not u64".into()))?;
        let keep: BooleanArray = values.iter().map(|v| v.map(|v| v % 2 == 0)).collect();
        filter_record_batch(&b, &keep).map_err(|source| OperatorError::Arrow {
            context: "filtering",
            source,
        })
    }

    #[tokio::test]
    async fn maps_each_batch_skips_empty_results_and_forwards_control() {
        let mut op = MapBatches::new("evens", even_only);
        let out = drive(
            &mut op,
            [
                Message::Batch(batch(&[1, 2, 3, 4])),
                Message::Batch(batch(&[5, 7])),
                Message::Barrier(Epoch(1)),
                Message::Batch(batch(&[6])),
                Message::End,
            ],
            1,
        )
        .await
        .expect("drive");
        let rows: Vec<usize> = out.batches(0).iter().map(|b| b.num_rows()).collect();
        assert_eq!(rows, vec![2, 1], "the all-odd batch is not emitted");
        let order: Vec<&str> = out.ports[0]
            .iter()
            .map(|m| match m {
                Message::Batch(_) => "batch",
                Message::Barrier(_) => "barrier",
                Message::Watermark(_) => "watermark",
                Message::End => "end",
            })
            .collect();
        assert_eq!(order, ["batch", "barrier", "batch", "end"]);
    }

    #[tokio::test]
    async fn an_error_of_the_function_is_the_operators_error() {
        let mut op = MapBatches::new("failing", |_b: RecordBatch| {
            Err::<RecordBatch, _>(OperatorError::Internal("no".into()))
        });
        let err = drive(&mut op, [Message::Batch(batch(&[1]))], 1)
            .await
            .expect_err("must fail");
        assert!(err.to_string().contains("no"), "{err}");
    }
}
