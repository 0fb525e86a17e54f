//! [`EpochCoordinator`]: the commit protocol of `ctrflow ingest`.
//!
//! For every source epoch it waits for (a) the offsets the source emitted in it and (b) an
//! acknowledgement from every sink that the epoch's files are durable. Then it writes the epoch
//! manifest (files + offsets) under the next free `landing/_epochs/{n:020}.json` key, claimed with
//! a create-if-absent put so replicas never overwrite each other, and only then confirms the
//! epoch to the source, which commits the offsets to Kafka. It also tracks the watermark (min over
//! partitions of the max event time, minus the allowed lateness, over every replica's manifests)
//! and closes days: when the watermark passes a day's end, that day's `_SUCCESS` manifest is
//! written for both domains, listing exactly the landing files manifests recorded for it.
//!
//! Fencing: epoch numbers are dense (a writer only ever creates the number after the highest it
//! has listed, and only if it is absent), so a writer that succeeds in creating manifest `n` has
//! read every manifest below `n`, and none can appear below it later. Before each attempt the
//! coordinator checks its ranges against the landed offsets of every manifest it has read: a
//! range starting at or below an offset already landed means another replica took the partition
//! over while this one was paused, and the epoch is refused ([`OperatorError::Fenced`]). Of two
//! writers racing over the same offsets exactly one lands them.
//!
//! Recovery rules (see `docs/ingest.md`): manifests are the truth. Offsets listed by a manifest
//! are landed; the source drops re-delivered messages at or below them ([`landed_offsets`]).
//! Files listed by no manifest are orphans.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::Utc;
use ctrflow_schemas::{
    DayManifest, Domain, Epoch, EpochCheckpoint, EpochManifest, EventDate, FileEntry, FileRole,
    KeyLayout, LandedThrough, OffsetRange, encode_manifest,
};
use ctrflow_storage::{Storage, StorageError};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::partition_key;
use super::sink::{ClosedDays, SinkAck};
use crate::OperatorError;
use crate::kafka::{AssignedPartition, EpochOffsets};

mod checkpoint;
#[cfg(test)]
mod tests;

use checkpoint::{epoch_keys_after, newest_checkpoint, read_epoch};

/// Coordinator settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct CoordinatorConfig {
    /// How far behind the newest event of the slowest partition a day may still receive events
    /// before it is closed; later events go to `late/`.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// A partition assigned to this replica that has had nothing left to consume for this long
    /// is idle and stops holding the watermark back at its last event (default 5 minutes).
    /// Its next event, if older than the watermark by then, lands under `late/`.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Every this many epochs the coordinator writes an epoch checkpoint (the state folded from
    /// all manifests so far), so that a replica starting cold reads one checkpoint and at most
    /// this many manifests instead of every manifest ever written (default 100).
    pub checkpoint_every: u64,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            allowed_lateness: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(300),
            checkpoint_every: 100,
        }
    }
}

/// What the coordinator did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoordinatorStats {
    /// Epoch manifests written by this process.
    pub epochs: u64,
    /// Landing rows listed by them.
    pub landed_rows: u64,
    /// Late rows listed by them.
    pub late_rows: u64,
    /// Dead-letter rows listed by them.
    pub dead_letter_rows: u64,
    /// Days closed (domain, date).
    pub closed_days: Vec<(Domain, EventDate)>,
    /// Epoch checkpoints written.
    pub checkpoints: u64,
}

/// The highest landed offset per (topic, partition): the newest epoch checkpoint plus every
/// epoch manifest after it.
pub async fn landed_offsets(
    storage: &Storage,
) -> Result<HashMap<(String, i32), i64>, OperatorError> {
    let mut out: HashMap<(String, i32), i64> = HashMap::new();
    let mut after = None;
    if let Some(c) = newest_checkpoint(storage).await? {
        out.extend(
            c.landed
                .into_iter()
                .map(|l| ((l.topic, l.partition), l.last_offset)),
        );
        after = Some(KeyLayout.epoch_manifest(c.through));
    }
    for key in epoch_keys_after(storage, after.as_deref()).await? {
        let m = read_epoch(storage, &key).await?;
        for r in m.offsets {
            let e = out.entry((r.topic, r.partition)).or_insert(r.last_offset);
            *e = (*e).max(r.last_offset);
        }
    }
    Ok(out)
}

/// The newest landed offset of one partition and the manifest that landed it.
#[derive(Debug, Clone)]
struct LandedBy {
    last_offset: i64,
    writer: String,
    epoch: u64,
}

struct Pending {
    offsets: Option<Vec<OffsetRange>>,
    acks: Vec<SinkAck>,
}

/// See the module docs.
pub struct EpochCoordinator {
    storage: Storage,
    writer: String,
    sinks: usize,
    lateness_ms: i64,
    closed: ClosedDays,
    next_epoch: u64,
    /// The highest manifest key read so far (every lower one has been read too).
    last_key: Option<String>,
    partition_max: BTreeMap<String, i64>,
    /// Per `(topic, partition)`: the highest offset any manifest read so far has landed.
    landed: HashMap<(String, i32), LandedBy>,
    /// This replica's assignment as last reported by the source: `topic/partition` -> caught up.
    assigned: BTreeMap<String, bool>,
    /// Since when each assigned partition has been caught up without a break.
    caught_up_since: BTreeMap<String, Instant>,
    idle_timeout: Duration,
    /// Partitions known to hold data (whichever replica consumes them): `topic/partition`.
    expected: BTreeSet<String>,
    day_files: BTreeMap<(Domain, EventDate), Vec<FileEntry>>,
    checkpoint_every: u64,
    stats: CoordinatorStats,
}

impl EpochCoordinator {
    /// Loads the state of the landing area: existing manifests, closed days. `sinks` is the number
    /// of sinks that acknowledge every epoch; `writer` names this replica in its manifests.
    pub async fn open(
        storage: Storage,
        sinks: usize,
        writer: &str,
        config: &CoordinatorConfig,
    ) -> Result<(Self, ClosedDays), OperatorError> {
        let closed = ClosedDays::default();
        let mut days = BTreeSet::new();
        for domain in Domain::ALL {
            for obj in storage.list(&KeyLayout.landing_table(domain)).await? {
                if obj.key.ends_with("/_SUCCESS")
                    && let Some(date) = KeyLayout.date_of(&obj.key)
                {
                    days.insert((domain, date));
                }
            }
        }
        *closed
            .write()
            .map_err(|_| OperatorError::Internal("closed-days lock poisoned".into()))? = days;
        let mut c = EpochCoordinator {
            storage,
            writer: writer.to_string(),
            sinks,
            lateness_ms: config.allowed_lateness.as_millis() as i64,
            closed: closed.clone(),
            next_epoch: 1,
            last_key: None,
            partition_max: BTreeMap::new(),
            landed: HashMap::new(),
            assigned: BTreeMap::new(),
            caught_up_since: BTreeMap::new(),
            idle_timeout: config.idle_timeout,
            expected: BTreeSet::new(),
            day_files: BTreeMap::new(),
            checkpoint_every: config.checkpoint_every.max(1),
            stats: CoordinatorStats::default(),
        };
        if let Some(checkpoint) = newest_checkpoint(&c.storage).await? {
            c.restore(checkpoint);
        }
        c.refresh().await?;
        Ok((c, closed))
    }

    /// Reads manifests written since the last refresh (by any replica). Numbers are dense and
    /// zero-padded, so only keys after the highest one read so far can be new: the listing
    /// starts there, and its cost does not grow with the number of epochs.
    async fn refresh(&mut self) -> Result<(), OperatorError> {
        for key in epoch_keys_after(&self.storage, self.last_key.as_deref()).await? {
            let m = read_epoch(&self.storage, &key).await?;
            self.absorb(&m);
            self.last_key = Some(key);
        }
        Ok(())
    }

    /// Takes the state of a checkpoint as if its manifests had been read one by one.
    fn restore(&mut self, checkpoint: EpochCheckpoint) {
        self.next_epoch = self.next_epoch.max(checkpoint.through.0 + 1);
        self.last_key = Some(KeyLayout.epoch_manifest(checkpoint.through));
        self.partition_max = checkpoint.max_event_time_ms;
        self.landed = checkpoint
            .landed
            .into_iter()
            .map(|l| {
                let by = LandedBy {
                    last_offset: l.last_offset,
                    writer: l.writer,
                    epoch: l.epoch.0,
                };
                ((l.topic, l.partition), by)
            })
            .collect();
        for f in checkpoint.open_day_files {
            self.day_files
                .entry((f.domain, f.date))
                .or_default()
                .push(f);
        }
    }

    /// The state after manifest `through` as a checkpoint. Only valid right after this
    /// coordinator wrote manifest `through`: it had then read every manifest below it.
    fn checkpoint(&self, through: Epoch) -> EpochCheckpoint {
        let mut landed: Vec<LandedThrough> = self
            .landed
            .iter()
            .map(|((topic, partition), by)| LandedThrough {
                topic: topic.clone(),
                partition: *partition,
                last_offset: by.last_offset,
                writer: by.writer.clone(),
                epoch: Epoch(by.epoch),
            })
            .collect();
        landed.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        EpochCheckpoint {
            through,
            max_event_time_ms: self.partition_max.clone(),
            landed,
            open_day_files: self.day_files.values().flatten().cloned().collect(),
        }
    }

    /// Writes the checkpoint through `epoch` if it is due. A failure costs only read time for
    /// later cold starts, so it is logged, not fatal.
    async fn write_checkpoint_if_due(&mut self, epoch: Epoch) {
        if !epoch.0.is_multiple_of(self.checkpoint_every) {
            return;
        }
        let checkpoint = self.checkpoint(epoch);
        // It lists every open day's files (megabytes at short epochs): encode off the runtime.
        let bytes = match tokio::task::spawn_blocking(move || encode_manifest(&checkpoint)).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(%epoch, error = %e, "could not encode the epoch checkpoint");
                return;
            }
        };
        let key = KeyLayout.epoch_checkpoint(epoch);
        match self.storage.swap_pointer(&key, bytes.into(), None).await {
            Ok(_) | Err(StorageError::PointerConflict { .. }) => {
                self.stats.checkpoints += 1;
                tracing::debug!(%epoch, "epoch checkpoint written");
            }
            Err(e) => {
                tracing::warn!(%epoch, error = %e, "could not write the epoch checkpoint; later cold starts read more manifests")
            }
        }
    }

    fn absorb(&mut self, m: &EpochManifest) {
        self.next_epoch = self.next_epoch.max(m.epoch.0 + 1);
        for (p, &t) in &m.max_event_time_ms {
            let e = self.partition_max.entry(p.clone()).or_insert(t);
            *e = (*e).max(t);
        }
        for r in &m.offsets {
            let newer = self
                .landed
                .get(&(r.topic.clone(), r.partition))
                .is_none_or(|l| r.last_offset > l.last_offset);
            if newer {
                self.landed.insert(
                    (r.topic.clone(), r.partition),
                    LandedBy {
                        last_offset: r.last_offset,
                        writer: m.writer.clone(),
                        epoch: m.epoch.0,
                    },
                );
            }
        }
        for f in &m.files {
            if f.role == FileRole::Landing {
                self.day_files
                    .entry((f.domain, f.date))
                    .or_default()
                    .push(f.clone());
            }
        }
    }

    /// Writes the manifest of one finished epoch under the next free epoch number.
    async fn write_manifest(
        &mut self,
        offsets: Vec<OffsetRange>,
        acks: Vec<SinkAck>,
    ) -> Result<EpochManifest, OperatorError> {
        let mut files = Vec::new();
        let mut max_event_time_ms = BTreeMap::new();
        for ack in acks {
            files.extend(ack.files);
            for (p, t) in ack.max_event_time_ms {
                let e = max_event_time_ms.entry(p).or_insert(t);
                *e = (*e).max(t);
            }
        }
        loop {
            self.refresh().await?;
            self.check_not_fenced(&offsets)?;
            let manifest = EpochManifest {
                epoch: Epoch(self.next_epoch),
                writer: self.writer.clone(),
                created_at: Utc::now(),
                files: files.clone(),
                offsets: offsets.clone(),
                max_event_time_ms: max_event_time_ms.clone(),
            };
            let key = KeyLayout.epoch_manifest(manifest.epoch);
            match self
                .storage
                .swap_pointer(&key, encode_manifest(&manifest).into(), None)
                .await
            {
                Ok(_) => {
                    self.absorb(&manifest);
                    self.last_key = Some(key);
                    return Ok(manifest);
                }
                // Another replica claimed this number first: take the next one.
                Err(StorageError::PointerConflict { .. }) => self.next_epoch += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Refuses an epoch whose ranges start at or below an offset some manifest already landed
    /// (see the module docs on fencing).
    fn check_not_fenced(&self, offsets: &[OffsetRange]) -> Result<(), OperatorError> {
        for r in offsets {
            if let Some(l) = self.landed.get(&(r.topic.clone(), r.partition))
                && r.first_offset <= l.last_offset
            {
                return Err(OperatorError::Fenced {
                    topic: r.topic.clone(),
                    partition: r.partition,
                    first_offset: r.first_offset,
                    landed_through: l.last_offset,
                    writer: l.writer.clone(),
                    epoch: l.epoch,
                });
            }
        }
        Ok(())
    }

    /// The watermark: the minimum over every partition any manifest has seen of its maximum
    /// event time, minus the allowed lateness. None while a partition assigned to this replica,
    /// or declared by [`EpochCoordinator::expect_partitions`], has delivered nothing yet and is
    /// not known to be caught up (its events could be older than everything seen so far: after
    /// a restart librdkafka may fetch one partition far ahead of another, and another group
    /// member may hold a partition for a while).
    ///
    /// Idle partitions (assigned here, caught up for at least `idle-timeout`) are left out of
    /// the minimum, so a partition whose producers stopped does not keep every later day open.
    /// When every partition is idle the minimum is taken over all of them: nothing moves.
    pub fn watermark_ms(&self) -> Option<i64> {
        let caught_up = |p: &String| self.assigned.get(p).copied().unwrap_or(false);
        let waiting = self
            .assigned
            .keys()
            .chain(&self.expected)
            .any(|p| !caught_up(p) && !self.partition_max.contains_key(p));
        if waiting {
            return None;
        }
        let idle = |p: &String| {
            caught_up(p)
                && self
                    .caught_up_since
                    .get(p)
                    .is_some_and(|since| since.elapsed() >= self.idle_timeout)
        };
        let active = self
            .partition_max
            .iter()
            .filter(|(p, _)| !idle(p))
            .map(|(_, t)| *t)
            .min();
        active
            .or_else(|| self.partition_max.values().min().copied())
            .map(|t| t - self.lateness_ms)
    }

    /// Declares partitions that hold data (see [`crate::kafka::non_empty_partitions`]): until
    /// each has delivered an event to some manifest (or is assigned here and caught up), no day
    /// closes. Without this, a replica whose group peers (or a killed predecessor still in the
    /// group) hold a silent partition would close days that partition still has events for.
    pub fn expect_partitions(&mut self, partitions: &[(String, i32)]) {
        self.expected
            .extend(partitions.iter().map(|(t, p)| partition_key(t, *p)));
    }

    /// Records the source's assignment (sent with every epoch's offsets).
    fn set_assignment(&mut self, assigned: &[AssignedPartition]) {
        self.assigned = assigned
            .iter()
            .map(|a| (partition_key(&a.topic, a.partition), a.caught_up))
            .collect();
        let now = Instant::now();
        let assigned = &self.assigned;
        self.caught_up_since
            .retain(|p, _| assigned.get(p).copied().unwrap_or(false));
        for (p, &caught_up) in assigned {
            if caught_up {
                self.caught_up_since.entry(p.clone()).or_insert(now);
            }
        }
    }

    /// Closes every day (both domains) whose end the watermark has passed.
    async fn close_days(&mut self) -> Result<(), OperatorError> {
        let Some(watermark) = self.watermark_ms() else {
            return Ok(());
        };
        let dates: BTreeSet<EventDate> = self
            .day_files
            .keys()
            .map(|(_, d)| *d)
            .filter(|d| d.end_ms() <= watermark)
            .collect();
        for date in dates {
            for domain in Domain::ALL {
                let already = self
                    .closed
                    .read()
                    .map_err(|_| OperatorError::Internal("closed-days lock poisoned".into()))?
                    .contains(&(domain, date));
                if already {
                    continue;
                }
                let files = self
                    .day_files
                    .get(&(domain, date))
                    .cloned()
                    .unwrap_or_default();
                let manifest = DayManifest {
                    domain,
                    date,
                    rows: files.iter().map(|f| f.rows).sum(),
                    files,
                    watermark_ms: Some(watermark),
                    producer: "ingest".into(),
                    closed_at: Utc::now(),
                };
                let key = KeyLayout.day_success(domain, date);
                match self
                    .storage
                    .swap_pointer(&key, encode_manifest(&manifest).into(), None)
                    .await
                {
                    // Already closed by another replica: same files, keep theirs.
                    Ok(_) | Err(StorageError::PointerConflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                self.closed
                    .write()
                    .map_err(|_| OperatorError::Internal("closed-days lock poisoned".into()))?
                    .insert((domain, date));
                self.stats.closed_days.push((domain, date));
                tracing::info!(%domain, %date, rows = manifest.rows, watermark, "day closed");
            }
        }
        // A closed day's files are in its `_SUCCESS`: forget them, so that memory stays bounded
        // by the open days, however long the job runs.
        let closed = self
            .closed
            .read()
            .map_err(|_| OperatorError::Internal("closed-days lock poisoned".into()))?;
        self.day_files.retain(|day, _| !closed.contains(day));
        Ok(())
    }

    async fn finish_epoch(
        &mut self,
        source_epoch: Epoch,
        pending: Pending,
        confirm: &mpsc::Sender<Epoch>,
    ) -> Result<(), OperatorError> {
        let offsets = pending.offsets.unwrap_or_default();
        let manifest = self.write_manifest(offsets, pending.acks).await?;
        self.stats.epochs += 1;
        for f in &manifest.files {
            match f.role {
                FileRole::Landing => self.stats.landed_rows += f.rows,
                FileRole::Late => self.stats.late_rows += f.rows,
                FileRole::DeadLetter => self.stats.dead_letter_rows += f.rows,
            }
        }
        tracing::debug!(epoch = %manifest.epoch, source_epoch = %source_epoch, files = manifest.files.len(), "epoch manifest written");
        self.close_days().await?;
        self.write_checkpoint_if_due(manifest.epoch).await;
        // The source commits offsets only after this: the manifest above is durable.
        let _ = confirm.send(source_epoch).await;
        Ok(())
    }

    /// Runs until both input channels close. Epochs complete in order.
    pub async fn run(
        mut self,
        mut offsets: mpsc::Receiver<EpochOffsets>,
        mut acks: mpsc::Receiver<SinkAck>,
        confirm: mpsc::Sender<Epoch>,
    ) -> Result<CoordinatorStats, OperatorError> {
        let mut pending: BTreeMap<Epoch, Pending> = BTreeMap::new();
        let (mut offsets_open, mut acks_open) = (true, true);
        while offsets_open || acks_open {
            tokio::select! {
                o = offsets.recv(), if offsets_open => match o {
                    Some(o) => {
                        self.set_assignment(&o.assigned);
                        pending.entry(o.epoch).or_insert_with(|| Pending { offsets: None, acks: Vec::new() }).offsets = Some(o.ranges);
                    }
                    None => offsets_open = false,
                },
                a = acks.recv(), if acks_open => match a {
                    Some(a) => pending.entry(a.epoch).or_insert_with(|| Pending { offsets: None, acks: Vec::new() }).acks.push(a),
                    None => acks_open = false,
                },
            }
            // Finish complete epochs in order; a later epoch never overtakes an earlier one.
            while let Some(entry) = pending.first_entry() {
                let ready = entry.get().offsets.is_some() && entry.get().acks.len() >= self.sinks;
                if !ready {
                    break;
                }
                let (epoch, p) = entry.remove_entry();
                self.finish_epoch(epoch, p, &confirm).await?;
            }
        }
        Ok(self.stats)
    }
}

/// [`crate::kafka::LandedOffsets`] read from the epoch manifests in a store.
pub struct ManifestOffsets {
    storage: Storage,
}

impl ManifestOffsets {
    /// Landed offsets of the landing area in `storage`.
    pub fn new(storage: Storage) -> Self {
        ManifestOffsets { storage }
    }
}

#[async_trait::async_trait]
impl crate::kafka::LandedOffsets for ManifestOffsets {
    async fn landed(&self) -> Result<HashMap<(String, i32), i64>, OperatorError> {
        landed_offsets(&self.storage).await
    }
}
