//! One planned job: build the trainer the plan names (fresh, continued from the previous
//! version, or an A-CTR initialised from a CPM), stream the window's days through a training
//! thread, then score the evaluation day.
//!
//! Training runs as a dataflow graph (`landing-reader -> holdout -> trainer`) on the operator
//! runtime. The reader (async, DataFusion) and the training thread overlap: batches go through a
//! bounded channel of `daily.read.channel-batches`, so memory stays bounded however long the
//! window is, and the trainer only waits when reading is slower than training. The time the
//! trainer spent waiting is measured (wall time minus the time inside training steps).

use std::sync::atomic::Ordering;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::RecordBatch;
use ctrflow_models::metrics;
use ctrflow_models::train::{
    FeatureBatch, Progress, ShuffleBuffer, TrainableNet, Trainer, spawn_training_thread,
};
use ctrflow_schemas::{Domain, EventDate, ModelMetrics};
use serde::Serialize;

use ctrflow_operators::dataflow::{Graph, MapBatches};
use ctrflow_operators::train::TrainerSink;

use super::data::{LandingDaysSource, TrainingReader};
use super::error::{DailyError, Result};
use super::holdout::Holdout;

/// Where a job's time went (seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct JobTimings {
    /// Wall time of the training phase (reading overlapped with training).
    pub train_wall: f64,
    /// Time inside training steps (feature extraction runs ahead on the training thread's
    /// feature stage and is not included).
    pub train_busy: f64,
    /// Training-phase time the training thread waited for data: for each batch, its wait up
    /// to the time the feature stage was blocked on the read path while preparing that batch
    /// (the shuffle buffer's first fill included). This is what a faster read path would save.
    pub read_wait: f64,
    /// Training-phase time the training thread waited for the feature stage's own work
    /// (shuffling, feature extraction, id de-duplication) while the data was there.
    pub feature_wait: f64,
    /// Training-phase time the feature stage spent in the shuffle buffer (adding, drawing and
    /// gathering batches); it overlaps the steps.
    pub shuffle: f64,
    /// Evaluation.
    pub evaluate: f64,
    /// Writing the artifacts, manifest and pointer.
    pub publish: f64,
}

/// Runs CPU-bound `work` (checkpoint bytes, Parquet encoding) on a blocking thread, not on a
/// tokio worker; `what` names it in the error if the thread panics.
pub async fn blocking<T: Send + 'static>(
    what: &'static str,
    date: EventDate,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DailyError::Worker {
            what,
            date,
            reason: e.to_string(),
        })
}

/// Trains `build()`'s trainer on `days` of `domain`, `epochs` times over, through `shuffle`.
///
/// The training is a dataflow graph on the operator runtime:
/// `landing-reader -> holdout (if any) -> trainer`, where the trainer sink feeds the training
/// thread. An error names the operator that failed; when the training thread itself failed
/// (a NaN loss, bad features), its error is returned rather than the sink's.
#[allow(clippy::too_many_arguments)]
pub async fn train_window<N, B>(
    reader: &TrainingReader,
    domain: Domain,
    days: &[EventDate],
    epochs: u32,
    shuffle: ShuffleBuffer,
    channel_batches: usize,
    date: EventDate,
    holdout: Option<Holdout>,
    build: B,
) -> Result<(Trainer<N>, u64, JobTimings)>
where
    N: TrainableNet,
    Trainer<N>: Send,
    B: FnOnce() -> ctrflow_models::Result<Trainer<N>> + Send + 'static,
{
    let start = Instant::now();
    // The thread's last report: its clocks are cumulative.
    let last = Arc::new(Mutex::new(None::<Progress>));
    let last_in = Arc::clone(&last);
    let thread = spawn_training_thread(build, Some(shuffle), channel_batches, move |p| {
        if let Ok(mut l) = last_in.lock() {
            *l = Some(p);
        }
    })?;

    // The graph's own channels hold one batch each: the trainer's channel is the buffer.
    let mut graph = Graph::new(1);
    let source = graph.source(LandingDaysSource::new(
        reader.clone(),
        domain,
        days.to_vec(),
        epochs,
    ));
    let sink = TrainerSink::new("trainer", thread.sender().clone());
    let handed = sink.rows_handed();
    let trainer_node = graph.operator(sink, 0);
    match holdout {
        Some(h) => {
            // Rows of the holdout never reach the trainer.
            let split = graph.operator(
                MapBatches::new("holdout", move |batch| {
                    h.apply(&batch)
                        .map_err(|e| ctrflow_operators::OperatorError::Internal(e.to_string()))
                }),
                1,
            );
            graph.connect(source, 0, split)?;
            graph.connect(split, 0, trainer_node)?;
        }
        None => graph.connect(source, 0, trainer_node)?,
    }
    let graph_result = graph.start()?.join().await;
    let finished = tokio::task::spawn_blocking(move || thread.finish())
        .await
        .map_err(|e| DailyError::Worker {
            what: "training thread",
            date,
            reason: e.to_string(),
        })?;
    // The thread's error is the root cause of a sink that found it stopped.
    let trainer = finished?;
    graph_result?;
    let rows = handed.load(Ordering::Relaxed);
    let train_wall = start.elapsed().as_secs_f64();
    let last = last.lock().map(|l| *l).unwrap_or_default();
    let (busy, waited, input_wait, shuffling) = last.map_or((0.0, 0.0, 0.0, 0.0), |p| {
        (
            p.stepping_seconds,
            p.waited_seconds,
            p.input_wait_seconds,
            p.shuffle_seconds,
        )
    });
    Ok((
        trainer,
        rows,
        JobTimings {
            train_wall,
            train_busy: busy.min(train_wall),
            read_wait: input_wait.min(train_wall),
            feature_wait: (waited - input_wait).clamp(0.0, train_wall),
            shuffle: shuffling.min(train_wall),
            ..JobTimings::default()
        },
    ))
}

/// The scored rows of an evaluation: per row its user, item and label, and per trainer its
/// predicted click probabilities (in the order the trainers were given).
#[derive(Debug, Clone, Default)]
pub struct Scored {
    /// User of each row.
    pub user_ids: Vec<u64>,
    /// Candidate item of each row.
    pub item_ids: Vec<u64>,
    /// Click label of each row.
    pub labels: Vec<u8>,
    /// Event time of each row (ms since the epoch, UTC).
    pub event_times: Vec<i64>,
    /// Per trainer, one probability per row.
    pub predictions: Vec<Vec<f64>>,
}

impl Scored {
    /// The rows as a record batch: `user_id`, `item_id`, `event_time`, `label`, `prediction` (the first
    /// trainer's) and `live_prediction` (the second trainer's, null when there was none).
    pub fn to_record_batch(&self) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
        use arrow::array::{
            ArrayRef, Float64Array, TimestampMillisecondArray, UInt8Array, UInt64Array,
        };
        use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        let n = self.labels.len();
        let column = |i: usize| -> ArrayRef {
            match self.predictions.get(i) {
                Some(p) => std::sync::Arc::new(Float64Array::from(p.clone())),
                None => std::sync::Arc::new(Float64Array::from(vec![None::<f64>; n])),
            }
        };
        let schema = Schema::new(vec![
            Field::new("user_id", DataType::UInt64, false),
            Field::new("item_id", DataType::UInt64, false),
            Field::new(
                "event_time",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("label", DataType::UInt8, false),
            Field::new("prediction", DataType::Float64, true),
            Field::new("live_prediction", DataType::Float64, true),
        ]);
        RecordBatch::try_new(
            std::sync::Arc::new(schema),
            vec![
                std::sync::Arc::new(UInt64Array::from(self.user_ids.clone())),
                std::sync::Arc::new(UInt64Array::from(self.item_ids.clone())),
                std::sync::Arc::new(
                    TimestampMillisecondArray::from(self.event_times.clone()).with_timezone("UTC"),
                ),
                std::sync::Arc::new(UInt8Array::from(self.labels.clone())),
                column(0),
                column(1),
            ],
        )
    }
}

/// Where a model is evaluated: days of a domain, optionally only their holdout rows.
#[derive(Debug, Clone)]
pub struct EvalSet {
    /// The days read.
    pub days: Vec<EventDate>,
    /// Keep only the holdout rows (`evaluate-on = "holdout"`).
    pub holdout: Option<Holdout>,
}

/// Scores every trainer in `trainers` on `set` of `domain` in one pass over the data (the
/// new model and the live one see exactly the same rows). Returns the trainers and, per
/// trainer, its metrics (`None` when they are undefined, e.g. a day with one label only).
pub async fn evaluate_day<N>(
    reader: &TrainingReader,
    domain: Domain,
    set: &EvalSet,
    trainers: Vec<Trainer<N>>,
    channel_batches: usize,
) -> Result<(Vec<Trainer<N>>, Vec<Option<ModelMetrics>>, Scored)>
where
    N: TrainableNet,
    Trainer<N>: Send + 'static,
{
    // The day errors name: the last day read.
    let day = set
        .days
        .last()
        .copied()
        .ok_or_else(|| DailyError::Invalid("evaluation set without days".into()))?;
    let (sender, receiver) = sync_channel::<RecordBatch>(channel_batches);
    let worker = std::thread::Builder::new()
        .name("ctrflow-evaluator".into())
        .spawn(move || -> ctrflow_models::Result<_> {
            let mut trainers = trainers;
            let mut predictions: Vec<Vec<f64>> = vec![Vec::new(); trainers.len()];
            let (mut labels, mut users, mut items) = (Vec::new(), Vec::new(), Vec::new());
            let mut times = Vec::new();
            let mut features = FeatureBatch::new();
            for batch in receiver {
                for (trainer, out) in trainers.iter_mut().zip(&mut predictions) {
                    features.fill_from_record_batch(&batch, &trainer.config().features)?;
                    out.extend(trainer.predict(&features)?.into_iter().map(f64::from));
                }
                labels.extend(features.labels.iter().map(|&l| u8::from(l > 0.5)));
                users.extend_from_slice(&features.user_ids);
                items.extend_from_slice(&features.item_ids);
                times.extend_from_slice(event_times(&batch)?.values());
            }
            let mut results = Vec::with_capacity(predictions.len());
            for p in &predictions {
                results.push(match metrics::evaluate(p, &labels, &users) {
                    Ok(e)
                        if [e.auc, e.logloss, e.calibration]
                            .iter()
                            .all(|v| v.is_finite()) =>
                    {
                        Some(ModelMetrics {
                            auc: e.auc,
                            gauc: e.gauc.is_finite().then_some(e.gauc),
                            logloss: e.logloss,
                            calibration: e.calibration,
                            samples: e.samples as u64,
                        })
                    }
                    _ => None,
                });
            }
            let scored = Scored {
                user_ids: users,
                item_ids: items,
                labels,
                event_times: times,
                predictions,
            };
            Ok((trainers, results, scored))
        })
        .map_err(|e| DailyError::Worker {
            what: "evaluator",
            date: day,
            reason: e.to_string(),
        })?;
    let holdout = set.holdout;
    let fed = reader
        .for_each_batch(domain, &set.days, |batch| {
            let sender = sender.clone();
            async move {
                blocking("evaluation feeder", day, move || {
                    let batch = match holdout {
                        Some(h) => h.apply(&batch)?,
                        None => batch,
                    };
                    if batch.num_rows() > 0 {
                        // A closed channel means the evaluator failed: its result says why.
                        let _ = sender.send(batch);
                    }
                    Ok(())
                })
                .await?
            }
        })
        .await;
    drop(sender);
    let joined = tokio::task::spawn_blocking(move || worker.join())
        .await
        .map_err(|e| DailyError::Worker {
            what: "evaluator",
            date: day,
            reason: e.to_string(),
        })?
        .map_err(|_| DailyError::Worker {
            what: "evaluator",
            date: day,
            reason: "panicked".into(),
        })?;
    fed?;
    Ok(joined?)
}

/// The `event_time` column of an event batch.
fn event_times(
    batch: &RecordBatch,
) -> ctrflow_models::Result<&arrow::array::TimestampMillisecondArray> {
    batch
        .column_by_name(ctrflow_schemas::columns::EVENT_TIME)
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<arrow::array::TimestampMillisecondArray>()
        })
        .ok_or_else(|| ctrflow_models::ModelsError::Column {
            column: ctrflow_schemas::columns::EVENT_TIME,
            reason: "missing or not Timestamp(ms)".into(),
        })
}

#[cfg(test)]
mod tests;
