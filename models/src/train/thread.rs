//! [`spawn_training_thread`]: training steps on a dedicated `std::thread` (never a tokio
//! worker), fed event batches through a bounded channel, reporting progress through a
//! callback, returning the trained state when the input ends.
//!
//! Two threads: a feature stage (`ctrflow-features`) takes the input through the shuffle
//! buffer, extracts each training batch's features and de-duplicates its item ids
//! ([`IndexedBatch`]); the training thread (`ctrflow-trainer`) runs the steps. The stage works
//! one batch ahead, so that work overlaps the previous step instead of adding to it; the
//! batches, their order and so the trained result are the same as on one thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;
use std::time::Instant;

use arrow::array::RecordBatch;

use super::{FeatureConfig, IndexedBatch, ShuffleBuffer, TrainableNet, Trainer};
use crate::error::{ModelsError, Result};

/// Progress of the training thread, reported after every step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Steps completed.
    pub step: u64,
    /// Rows trained on so far.
    pub samples: u64,
    /// This step's loss.
    pub loss: f32,
    /// Rows per second of this training step (feature extraction ran ahead, on the feature
    /// stage, and is not included).
    pub samples_per_second: f64,
    /// Seconds the training thread has spent so far inside training steps.
    pub stepping_seconds: f64,
    /// Seconds the training thread has spent so far waiting for its next batch: input not
    /// there yet, or not yet through the shuffle buffer and feature extraction.
    pub waited_seconds: f64,
    /// Of `waited_seconds`, the part owed to the input: for each batch, the trainer's wait
    /// for it, up to the time the feature stage was itself blocked on the input channel while
    /// preparing it (had the input been there, the trainer would have waited that much less).
    /// The rest of the waiting is the feature stage's own work.
    pub input_wait_seconds: f64,
    /// Seconds the feature stage had spent, when it handed over this batch, in the shuffle
    /// buffer (adding batches, drawing and gathering training batches, compaction).
    pub shuffle_seconds: f64,
}

/// A running training thread: send it event batches, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct TrainingThread<N: TrainableNet> {
    sender: Option<SyncSender<RecordBatch>>,
    handle: JoinHandle<Result<Trainer<N>>>,
}

impl<N: TrainableNet> TrainingThread<N> {
    /// The channel's sending side, to clone for other producers. Sending blocks while the
    /// channel is full; it fails once the thread has stopped (then `finish` tells why).
    pub fn sender(&self) -> &SyncSender<RecordBatch> {
        self.sender.as_ref().expect("sender present until finish")
    }

    /// Sends one batch (blocking while the channel is full).
    ///
    /// # Errors
    /// The thread has stopped (an error or a panic): call [`finish`](Self::finish) for it.
    pub fn send(&self, batch: RecordBatch) -> Result<()> {
        self.sender()
            .send(batch)
            .map_err(|_| ModelsError::TrainingThread("stopped; finish() gives the reason".into()))
    }

    /// Ends the input (once every clone of the sender is dropped too), waits for the
    /// thread to train on what remains in its shuffle buffer, and returns the trainer.
    pub fn finish(mut self) -> Result<Trainer<N>> {
        drop(self.sender.take());
        match self.handle.join() {
            Ok(result) => result,
            Err(panic) => Err(ModelsError::TrainingThread(panic_message(&*panic))),
        }
    }
}

/// Starts a training thread. `build` runs on the new thread (so the network is initialised
/// and burn's device seeded there), e.g. `|| CtrTrainer::new(config, net_config)` or
/// `move || CtrTrainer::resume(&checkpoint)`. Incoming batches go through a
/// [`ShuffleBuffer`] of `shuffle-rows` rows seeded from the config (or `shuffle` when given,
/// e.g. from a checkpoint); every emitted batch is one [`Trainer::train_step`], after which
/// `progress` is called. The channel holds at most `channel_capacity` batches.
pub fn spawn_training_thread<N, B, P>(
    build: B,
    shuffle: Option<ShuffleBuffer>,
    channel_capacity: usize,
    progress: P,
) -> Result<TrainingThread<N>>
where
    N: TrainableNet,
    Trainer<N>: Send,
    B: FnOnce() -> Result<Trainer<N>> + Send + 'static,
    P: FnMut(Progress) + Send + 'static,
{
    let (sender, receiver) = sync_channel(channel_capacity);
    let handle = std::thread::Builder::new()
        .name("ctrflow-trainer".into())
        .spawn(move || run(build, shuffle, receiver, progress))
        .map_err(|e| ModelsError::TrainingThread(e.to_string()))?;
    Ok(TrainingThread {
        sender: Some(sender),
        handle,
    })
}

/// A batch ready for a step, with the feature stage's clocks as it was sent.
struct Ready {
    batch: IndexedBatch,
    /// Seconds the stage had spent in the shuffle buffer.
    shuffling: f64,
    /// Seconds the stage had spent blocked on the input channel.
    input_waited: f64,
}

fn run<N, B, P>(
    build: B,
    shuffle: Option<ShuffleBuffer>,
    receiver: Receiver<RecordBatch>,
    mut progress: P,
) -> Result<Trainer<N>>
where
    N: TrainableNet,
    B: FnOnce() -> Result<Trainer<N>>,
    P: FnMut(Progress),
{
    let mut trainer = build()?;
    let shuffle = match shuffle {
        Some(s) => s,
        None => {
            let c = trainer.config();
            ShuffleBuffer::new(c.shuffle_rows, c.batch_size, c.seed)?
        }
    };
    // The feature stage shuffles, extracts and indexes the next batch while this thread
    // steps on the current one. One ready batch in flight; spent ones go back for reuse.
    let (ready_tx, ready_rx) = sync_channel::<Result<Ready>>(1);
    let (spent_tx, spent_rx) = channel::<IndexedBatch>();
    let stop = Arc::new(AtomicBool::new(false));
    let features = trainer.config().features;
    // Index only the item ids the trainer's steps look up.
    let with_sequences = trainer.spec().sequences.is_some();
    let stage = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("ctrflow-features".into())
            .spawn(move || {
                feature_stage(
                    receiver,
                    shuffle,
                    &features,
                    &ready_tx,
                    &spent_rx,
                    &stop,
                    with_sequences,
                )
            })
            .map_err(|e| ModelsError::TrainingThread(e.to_string()))?
    };
    let mut waited = 0.0f64;
    let mut stepping = 0.0f64;
    let mut input_wait = 0.0f64;
    let mut stage_input_waited = 0.0f64;
    let trained = (|| -> Result<()> {
        loop {
            let waited_before = waited;
            let Ok(ready) = timed(&mut waited, || ready_rx.recv()) else {
                break;
            };
            let Ready {
                batch,
                shuffling,
                input_waited,
            } = ready?;
            // Blame the input for as much of this wait as the stage spent waiting for input
            // since it handed over the previous batch.
            let stage_blocked = (input_waited - stage_input_waited).max(0.0);
            stage_input_waited = input_waited;
            input_wait += (waited - waited_before).min(stage_blocked);
            let start = Instant::now();
            let loss = trainer.train_step_indexed(&batch)?;
            let seconds = start.elapsed().as_secs_f64().max(1e-9);
            stepping += seconds;
            let stats = trainer.stats();
            progress(Progress {
                step: stats.steps,
                samples: stats.samples,
                loss,
                samples_per_second: batch.features().rows() as f64 / seconds,
                stepping_seconds: stepping,
                waited_seconds: waited,
                input_wait_seconds: input_wait,
                shuffle_seconds: shuffling,
            });
            // The stage may have stopped already; then the buffer is simply dropped.
            let _ = spent_tx.send(batch);
        }
        Ok(())
    })();
    // On an error here the stage stops at its next input batch (or when the input ends), so
    // the senders see the channel closed instead of feeding a thread that no longer trains.
    stop.store(true, Ordering::Relaxed);
    drop(ready_rx);
    let stage = stage.join();
    trained?;
    stage.map_err(|panic| {
        ModelsError::TrainingThread(format!("feature stage: {}", panic_message(&*panic)))
    })?;
    Ok(trainer)
}

/// The feature stage: input batches through the shuffle buffer into indexed feature batches.
/// Ends when the input ends (after flushing the buffer), on an error (sent on, as the last
/// message), or when the training side stops.
fn feature_stage(
    receiver: Receiver<RecordBatch>,
    mut shuffle: ShuffleBuffer,
    config: &FeatureConfig,
    ready: &SyncSender<Result<Ready>>,
    spent: &Receiver<IndexedBatch>,
    stop: &AtomicBool,
    with_sequences: bool,
) {
    let mut shuffling = 0.0f64;
    let mut input_waited = 0.0f64;
    // Sends one shuffled batch; false when the stage should end.
    let send = |out: RecordBatch, shuffling: f64, input_waited: f64| -> bool {
        let mut batch = spent
            .try_recv()
            .unwrap_or_else(|_| IndexedBatch::new(with_sequences));
        let message = batch
            .fill_from_record_batch(&out, config, with_sequences)
            .map(|()| Ready {
                batch,
                shuffling,
                input_waited,
            });
        let failed = message.is_err();
        ready.send(message).is_ok() && !failed
    };
    // Sends every batch the buffer emits (`flush`: also the partial ones at the end of input);
    // false when the stage should end.
    let drain = |shuffle: &mut ShuffleBuffer, flush: bool, shuffling: &mut f64, waited: f64| loop {
        let next = timed(shuffling, || {
            if flush {
                shuffle.flush()
            } else {
                shuffle.pop()
            }
        });
        match next {
            Ok(Some(out)) => {
                if !send(out, *shuffling, waited) {
                    return false;
                }
            }
            Ok(None) => return true,
            Err(e) => {
                let _ = ready.send(Err(e));
                return false;
            }
        }
    };
    while let Ok(batch) = timed(&mut input_waited, || receiver.recv()) {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = timed(&mut shuffling, || shuffle.push(batch)) {
            let _ = ready.send(Err(e));
            return;
        }
        if !drain(&mut shuffle, false, &mut shuffling, input_waited) {
            return;
        }
    }
    drain(&mut shuffle, true, &mut shuffling, input_waited);
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

/// Runs `work`, adding its wall time in seconds to `total`.
fn timed<T>(total: &mut f64, work: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = work();
    *total += start.elapsed().as_secs_f64();
    out
}
