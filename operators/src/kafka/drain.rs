//! Drain mode ("until caught up"): the source stops once every partition it holds has been read
//! up to the end offset the partition had when it was assigned, like a scheduled job that lands
//! everything available now and exits.
//!
//! [`DrainTargets`] is the bookkeeping, free of I/O. A partition's target is the larger of two
//! readings taken after its assignment, each a lower bound of its end at that moment:
//!
//! - the broker's answer to a list-offsets request (exact on Apache Kafka);
//! - the high watermark of the fetch responses, from the first statistics report that comes a
//!   whole report interval after the assignment (so it is not a value from before it).
//!   Some Kafka-protocol brokers answer list-offsets with the first offset of the last record
//!   batch instead of the end; tansu does, by up to a batch per partition. Fetch responses carry
//!   the true end there.
//!
//! The source asks [`DrainTargets::done`] after every event, with each partition's next offset
//! (the one after the last message it emitted or found landed). Offsets that are never
//! delivered (transaction markers, compacted messages at the end of a partition) would keep a
//! partition short of its end forever, so when the source has been quiet for a while it also
//! offers the consumer's positions, which move past them.

use std::collections::BTreeMap;

use super::stats::HighWatermarks;

/// A partition, as the source names it.
type Partition = (String, i32);

/// The offsets a partition had when it was assigned, as list-offsets gave them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EndOffsets {
    /// The first offset still in the log (low watermark).
    pub low: i64,
    /// The offset the next produced message gets (high watermark).
    pub high: i64,
}

/// What is known of one partition's target.
#[derive(Debug, Clone)]
struct Target {
    /// From list-offsets, once read.
    listed: Option<EndOffsets>,
    /// From the fetch responses, once a statistics report after `reports_at_assignment + 1`
    /// gave it.
    fetched_high: Option<i64>,
    /// Statistics reports counted when the partition was assigned.
    reports_at_assignment: u64,
}

impl Target {
    /// The offset to reach, once both readings are in.
    fn end(&self) -> Option<(i64, i64)> {
        let listed = self.listed?;
        let fetched = self.fetched_high?;
        Some((listed.low, listed.high.max(fetched)))
    }

    /// Whether a partition whose next offset to read is `next` has reached its target.
    fn reached_by(&self, next: Option<i64>) -> bool {
        match self.end() {
            None => false,
            Some((low, high)) => high <= low || next.is_some_and(|n| n >= high),
        }
    }
}

/// Targets of the partitions held, and whether the source has read them all.
#[derive(Debug, Default)]
pub(super) struct DrainTargets {
    targets: BTreeMap<Partition, Target>,
    /// At least one assignment was received (before it, the group is still being joined).
    assigned_once: bool,
    /// Everything held was revoked and no assignment followed yet (an eager rebalance).
    between_assignments: bool,
    /// The last statistics report observed (see [`DrainTargets::reports_seen`]).
    reports_seen: u64,
}

impl DrainTargets {
    /// New partitions, assigned when `reports` statistics reports had come: their end offsets
    /// must be read before the source can be done.
    pub fn assigned(&mut self, partitions: &[Partition], reports: u64) {
        self.assigned_once = true;
        self.between_assignments = false;
        for p in partitions {
            self.targets.insert(
                p.clone(),
                Target {
                    listed: None,
                    fetched_high: None,
                    reports_at_assignment: reports,
                },
            );
        }
    }

    /// The list-offsets answer for `partition`. Ignored if it was revoked meanwhile.
    pub fn set_listed(&mut self, partition: &Partition, end: EndOffsets) {
        if let Some(t) = self.targets.get_mut(partition) {
            t.listed = Some(end);
        }
    }

    /// A statistics report, the `reports`-th, with the fetched high watermarks: taken as the
    /// fetched reading of each partition still without one, if the report came at least one
    /// whole interval after its assignment.
    pub fn observe_fetched(&mut self, reports: u64, high: &HighWatermarks) {
        self.reports_seen = self.reports_seen.max(reports);
        for (p, t) in &mut self.targets {
            if t.fetched_high.is_none()
                && reports >= t.reports_at_assignment + 2
                && let Some(&h) = high.get(p)
            {
                t.fetched_high = Some(h);
            }
        }
    }

    /// The statistics report a newer one must follow to be worth observing, while a partition
    /// still needs its fetched reading; None once none does.
    pub fn reports_seen(&self) -> Option<u64> {
        self.targets
            .values()
            .any(|t| t.fetched_high.is_none())
            .then_some(self.reports_seen)
    }

    /// Partitions given up; if nothing is left, the source waits for the next assignment.
    pub fn revoked(&mut self, partitions: &[Partition]) {
        for p in partitions {
            self.targets.remove(p);
        }
        if self.targets.is_empty() {
            self.between_assignments = true;
        }
    }

    /// Partitions whose list-offsets answer is still to be read.
    pub fn unlisted(&self) -> impl Iterator<Item = &Partition> {
        self.targets
            .iter()
            .filter(|(_, t)| t.listed.is_none())
            .map(|(p, _)| p)
    }

    /// Partitions not yet known to be read to their target, given each partition's next offset.
    pub fn remaining<'a>(
        &'a self,
        next: impl Fn(&str, i32) -> Option<i64> + 'a,
    ) -> impl Iterator<Item = &'a Partition> + 'a {
        self.targets
            .iter()
            .filter(move |((t, p), target)| !target.reached_by(next(t, *p)))
            .map(|(p, _)| p)
    }

    /// Per partition held: `topic/partition next/target` (target `?` while unknown), for logs.
    pub fn describe(&self, next: impl Fn(&str, i32) -> Option<i64>) -> Vec<String> {
        self.targets
            .iter()
            .map(|((t, p), target)| {
                let next = next(t, *p).map_or("-".to_string(), |n| n.to_string());
                let end = target
                    .end()
                    .map_or("?".to_string(), |(_, high)| high.to_string());
                format!("{t}/{p} {next}/{end}")
            })
            .collect()
    }

    /// True once the group assigned this source its partitions (possibly none) and each of them
    /// has been read to its target.
    pub fn done(&self, next: impl Fn(&str, i32) -> Option<i64>) -> bool {
        self.assigned_once && !self.between_assignments && self.remaining(next).next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn p(topic: &str, partition: i32) -> Partition {
        (topic.to_string(), partition)
    }

    fn next_of(map: &HashMap<Partition, i64>) -> impl Fn(&str, i32) -> Option<i64> + '_ {
        |t, p| map.get(&(t.to_string(), p)).copied()
    }

    fn high(entries: &[(Partition, i64)]) -> HighWatermarks {
        entries.iter().cloned().collect()
    }

    /// Assigns `partitions` (no report yet) and gives both readings: `listed` from list-offsets
    /// (low 0) and `fetched` from the second report.
    fn ready(partitions: &[(Partition, i64, i64)]) -> DrainTargets {
        let mut d = DrainTargets::default();
        let names: Vec<Partition> = partitions.iter().map(|(p, _, _)| p.clone()).collect();
        d.assigned(&names, 0);
        let fetched: Vec<(Partition, i64)> =
            partitions.iter().map(|(p, _, f)| (p.clone(), *f)).collect();
        for (p, listed, _) in partitions {
            d.set_listed(
                p,
                EndOffsets {
                    low: 0,
                    high: *listed,
                },
            );
        }
        d.observe_fetched(2, &high(&fetched));
        d
    }

    #[test]
    fn not_done_before_the_first_assignment_nor_before_both_readings() {
        let mut d = DrainTargets::default();
        assert!(!d.done(|_, _| None), "no assignment yet");
        d.assigned(&[p("a", 0)], 5);
        assert_eq!(d.unlisted().count(), 1);
        d.set_listed(&p("a", 0), EndOffsets { low: 0, high: 0 });
        assert_eq!(d.unlisted().count(), 0);
        assert!(!d.done(|_, _| None), "no fetched high watermark yet");
        // The next report may predate the first fetch: it is not taken.
        d.observe_fetched(6, &high(&[(p("a", 0), 0)]));
        assert!(!d.done(|_, _| None));
        d.observe_fetched(7, &high(&[(p("a", 0), 0)]));
        assert!(d.done(|_, _| None), "an empty partition is read to its end");
    }

    #[test]
    fn done_once_every_partition_reached_the_larger_reading() {
        // b/1's list-offsets answer is short of its end (a broker answering with the last
        // batch's first offset); the fetch responses carry the end.
        let d = ready(&[(p("a", 0), 10, 10), (p("b", 1), 8, 12)]);
        let mut next = HashMap::new();
        assert!(!d.done(next_of(&next)), "nothing read");
        next.insert(p("a", 0), 10);
        next.insert(p("b", 1), 8);
        let left: Vec<_> = d.remaining(next_of(&next)).cloned().collect();
        assert_eq!(left, vec![p("b", 1)], "8 is short of the fetched 12");
        next.insert(p("b", 1), 12);
        assert!(d.done(next_of(&next)));
    }

    #[test]
    fn the_target_does_not_move_with_later_reports() {
        let mut d = ready(&[(p("a", 0), 10, 10)]);
        // Messages produced later raise the high watermark; the target stays.
        d.observe_fetched(9, &high(&[(p("a", 0), 50)]));
        assert!(d.done(|_, _| Some(10)));
    }

    #[test]
    fn a_partition_with_retention_deleted_messages_counts_from_its_low_watermark() {
        let mut d = DrainTargets::default();
        d.assigned(&[p("a", 0)], 0);
        // Everything was deleted by retention: low == high, nothing to read.
        d.set_listed(&p("a", 0), EndOffsets { low: 40, high: 40 });
        d.observe_fetched(2, &high(&[(p("a", 0), 40)]));
        assert!(d.done(|_, _| None));
    }

    #[test]
    fn an_eager_rebalance_waits_for_the_next_assignment() {
        let mut d = ready(&[(p("a", 0), 0, 0), (p("a", 1), 0, 0)]);
        assert!(d.done(|_, _| None));
        d.revoked(&[p("a", 0), p("a", 1)]);
        assert!(!d.done(|_, _| None), "everything revoked: wait");
        d.assigned(&[p("a", 1)], 10);
        assert!(!d.done(|_, _| None), "new end offsets unknown");
        d.set_listed(&p("a", 1), EndOffsets { low: 0, high: 3 });
        d.observe_fetched(12, &high(&[(p("a", 1), 3)]));
        assert!(!d.done(|_, _| Some(2)));
        assert!(d.done(|_, _| Some(3)));
    }

    #[test]
    fn a_partial_revocation_keeps_draining_the_rest_and_late_readings_are_ignored() {
        let mut d = DrainTargets::default();
        d.assigned(&[p("a", 0), p("a", 1)], 0);
        d.set_listed(&p("a", 0), EndOffsets { low: 0, high: 5 });
        d.revoked(&[p("a", 1)]);
        // The readings of the revoked partition arrive after the revocation.
        d.set_listed(&p("a", 1), EndOffsets { low: 0, high: 100 });
        d.observe_fetched(2, &high(&[(p("a", 0), 5), (p("a", 1), 100)]));
        assert!(d.done(|_, _| Some(5)), "only a/0 is held");
        assert_eq!(d.unlisted().count(), 0);
    }

    #[test]
    fn an_empty_assignment_is_done_at_once() {
        let mut d = DrainTargets::default();
        d.assigned(&[], 0);
        assert!(d.done(|_, _| None));
    }
}
