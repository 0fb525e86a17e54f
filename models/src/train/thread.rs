//! [`spawn_training_thread`]: training steps on a dedicated `std::thread` (never a tokio
//! worker), fed event batches through a bounded channel, reporting progress through a
//! callback, returning the trained state when the input ends.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Instant;

use arrow::array::RecordBatch;

use super::{FeatureBatch, ShuffleBuffer, TrainableNet, Trainer};
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
    /// Rows per second of this step (feature extraction + training step).
    pub samples_per_second: f64,
    /// Seconds the thread has spent so far blocked on the channel, waiting for input.
    pub waited_seconds: f64,
    /// Seconds the thread has spent so far in the shuffle buffer (adding batches, drawing and
    /// gathering training batches, compaction).
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
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panicked".into());
                Err(ModelsError::TrainingThread(message))
            }
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
    let mut shuffle = match shuffle {
        Some(s) => s,
        None => {
            let c = trainer.config();
            ShuffleBuffer::new(c.shuffle_rows, c.batch_size, c.seed)?
        }
    };
    let mut features = FeatureBatch::new();
    let (mut waited, mut shuffling) = (0.0f64, 0.0f64);
    let mut step =
        |trainer: &mut Trainer<N>, batch: RecordBatch, waited: f64, shuffling: f64| -> Result<()> {
            let start = Instant::now();
            features.fill_from_record_batch(&batch, &trainer.config().features)?;
            let loss = trainer.train_step(&features)?;
            let seconds = start.elapsed().as_secs_f64().max(1e-9);
            let stats = trainer.stats();
            progress(Progress {
                step: stats.steps,
                samples: stats.samples,
                loss,
                samples_per_second: features.rows() as f64 / seconds,
                waited_seconds: waited,
                shuffle_seconds: shuffling,
            });
            Ok(())
        };
    loop {
        let Ok(batch) = timed(&mut waited, || receiver.recv()) else {
            break;
        };
        timed(&mut shuffling, || shuffle.push(batch))?;
        while let Some(out) = timed(&mut shuffling, || shuffle.pop())? {
            step(&mut trainer, out, waited, shuffling)?;
        }
    }
    while let Some(out) = timed(&mut shuffling, || shuffle.flush())? {
        step(&mut trainer, out, waited, shuffling)?;
    }
    Ok(trainer)
}

/// Runs `work`, adding its wall time in seconds to `total`.
fn timed<T>(total: &mut f64, work: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = work();
    *total += start.elapsed().as_secs_f64();
    out
}
