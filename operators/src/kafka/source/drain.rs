//! The drain-mode steps of the source's driver (the rules are in `kafka::drain`): reading
//! each new partition's end offsets, deciding from the emitted offsets (or, after a quiet
//! spell, the consumer's positions) that every partition held was read to its target, and
//! stopping like a graceful shutdown.

use std::time::Duration;

use super::{Driver, END_OFFSET_ATTEMPTS, END_OFFSET_TIMEOUT};
use crate::OperatorError;
use crate::dataflow::SourceContext;

impl Driver {
    /// Drain mode: every partition held was read to its end (by the messages emitted).
    pub(super) fn drained(&mut self) -> bool {
        let Some(drain) = &mut self.drain else {
            return false;
        };
        // A copy of the watermarks only when a report came that a partition still waits for.
        if let Some((reports, high)) = drain
            .reports_seen()
            .and_then(|seen| self.stats.fetched_high_watermarks_after(seen))
        {
            drain.observe_fetched(reports, &high);
        }
        drain.done(|t, p| self.tracker.next_offset(t, p))
    }

    /// Drain mode, after two quiet checks: as [`Self::drained`], but a partition also counts as
    /// read to its end when the consumer's position is there. Offsets never delivered as
    /// messages (transaction markers, compaction) move the position but emit nothing.
    pub(super) fn drained_by_positions(&mut self) -> bool {
        let Some(drain) = &self.drain else {
            return false;
        };
        if drain
            .remaining(|t, p| self.tracker.next_offset(t, p))
            .next()
            .is_none()
        {
            return false; // nothing to learn from positions (or not assigned yet)
        }
        let positions = match self.consumer.positions() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "drain: cannot read the consumer's positions");
                return false;
            }
        };
        let done = drain.done(|t, p| {
            let emitted = self.tracker.next_offset(t, p);
            let fetched = positions.get(&(t.to_string(), p)).copied();
            emitted.max(fetched)
        });
        if done {
            tracing::info!(
                ?positions,
                "drain: the consumer's positions reached the targets (offsets without messages)"
            );
        }
        done
    }

    /// Drain mode, done: log where each partition ended, then stop like a graceful shutdown.
    pub(super) async fn finish_drain(
        &mut self,
        ctx: &mut SourceContext,
    ) -> Result<(), OperatorError> {
        let partitions = self
            .drain
            .as_ref()
            .map(|d| d.describe(|t, p| self.tracker.next_offset(t, p)))
            .unwrap_or_default();
        tracing::info!(
            ?partitions,
            "kafka source caught up: every partition held was read to the end offset it had \
             when assigned (next/target); finishing the open epoch and stopping"
        );
        self.shutdown(ctx).await
    }

    /// Drain mode: reads the end offsets of newly assigned partitions (retrying; a partition
    /// whose offsets cannot be read fails the source rather than stopping it early).
    pub(super) async fn read_end_offsets(&mut self) -> Result<(), OperatorError> {
        let Some(drain) = &self.drain else {
            return Ok(());
        };
        let wanted: Vec<(String, i32)> = drain.unlisted().cloned().collect();
        for (topic, partition) in wanted {
            let mut attempt = 1;
            let end = loop {
                let consumer = self.consumer.share();
                let t = topic.clone();
                let r = tokio::task::spawn_blocking(move || {
                    consumer.end_offsets(&t, partition, END_OFFSET_TIMEOUT)
                })
                .await
                .map_err(|e| OperatorError::Internal(format!("end-offset task failed: {e}")))?;
                match r {
                    Ok(end) => break end,
                    Err(e) if attempt < END_OFFSET_ATTEMPTS => {
                        tracing::warn!(error = %e, attempt, "drain: reading end offsets failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                        attempt += 1;
                    }
                    Err(e) => return Err(e),
                }
            };
            tracing::info!(%topic, partition, low = end.low, high = end.high, "drain: list-offsets end");
            if let Some(drain) = &mut self.drain {
                drain.set_listed(&(topic, partition), end);
            }
        }
        Ok(())
    }
}
