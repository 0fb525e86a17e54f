//! Drain mode ("until caught up"): the source stops once every partition it holds has been read
//! up to the end offset the partition had when it was assigned, like a scheduled job that lands
//! everything available now and exits.
//!
//! [`DrainTargets`] is the bookkeeping, free of I/O: the end offsets read at each assignment and
//! the decision whether the source is done. The source reads the offsets from the brokers and
//! asks [`DrainTargets::done`] after every event, with each partition's next offset (the one after
//! the last message it emitted or found landed). Offsets that are never delivered (transaction
//! markers, compacted messages at the end of a partition) would keep a partition short of its end
//! forever, so when the source has been quiet for a while it also offers the consumer's positions,
//! which move past them.

use std::collections::{BTreeMap, BTreeSet};

/// A partition, as the source names it.
type Partition = (String, i32);

/// The offsets a partition had when it was assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EndOffsets {
    /// The first offset still in the log (low watermark).
    pub low: i64,
    /// The offset the next produced message gets (high watermark): the drain target.
    pub high: i64,
}

impl EndOffsets {
    /// Whether a partition whose next offset to read is `next` has reached this end.
    fn reached_by(&self, next: Option<i64>) -> bool {
        self.high <= self.low || next.is_some_and(|n| n >= self.high)
    }
}

/// End offsets of the partitions held, and whether the source has read them all.
#[derive(Debug, Default)]
pub(super) struct DrainTargets {
    ends: BTreeMap<Partition, EndOffsets>,
    /// Assigned, end offsets not read yet.
    unknown: BTreeSet<Partition>,
    /// At least one assignment was received (before it, the group is still being joined).
    assigned_once: bool,
    /// Everything held was revoked and no assignment followed yet (an eager rebalance).
    between_assignments: bool,
}

impl DrainTargets {
    /// New partitions: their end offsets must be read before the source can be done.
    pub fn assigned(&mut self, partitions: &[Partition]) {
        self.assigned_once = true;
        self.between_assignments = false;
        for p in partitions {
            self.unknown.insert(p.clone());
        }
    }

    /// The end offsets of `partition`, read from the brokers after its assignment. Ignored if the
    /// partition was revoked meanwhile.
    pub fn set_end(&mut self, partition: &Partition, end: EndOffsets) {
        if self.unknown.remove(partition) {
            self.ends.insert(partition.clone(), end);
        }
    }

    /// Partitions given up; if nothing is left, the source waits for the next assignment.
    pub fn revoked(&mut self, partitions: &[Partition]) {
        for p in partitions {
            self.unknown.remove(p);
            self.ends.remove(p);
        }
        if self.ends.is_empty() && self.unknown.is_empty() {
            self.between_assignments = true;
        }
    }

    /// Partitions whose end offsets are still to be read.
    pub fn unknown(&self) -> impl Iterator<Item = &Partition> {
        self.unknown.iter()
    }

    /// Partitions not yet read to their end, given each partition's next offset to read.
    pub fn remaining<'a>(
        &'a self,
        next: impl Fn(&str, i32) -> Option<i64> + 'a,
    ) -> impl Iterator<Item = (&'a Partition, EndOffsets)> + 'a {
        self.ends
            .iter()
            .filter(move |((t, p), end)| !end.reached_by(next(t, *p)))
            .map(|(p, end)| (p, *end))
    }

    /// True once the group assigned this source its partitions (possibly none) and each of them
    /// has been read to the end offset it had when assigned.
    pub fn done(&self, next: impl Fn(&str, i32) -> Option<i64>) -> bool {
        self.assigned_once
            && !self.between_assignments
            && self.unknown.is_empty()
            && self.remaining(next).next().is_none()
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

    #[test]
    fn not_done_before_the_first_assignment_nor_while_end_offsets_are_unknown() {
        let mut d = DrainTargets::default();
        let none = HashMap::new();
        assert!(!d.done(next_of(&none)), "no assignment yet");
        d.assigned(&[p("a", 0)]);
        assert!(!d.done(next_of(&none)), "end offsets not read yet");
        d.set_end(&p("a", 0), EndOffsets { low: 0, high: 0 });
        assert!(
            d.done(next_of(&none)),
            "an empty partition is read to its end"
        );
    }

    #[test]
    fn done_once_every_partition_reached_its_end() {
        let mut d = DrainTargets::default();
        d.assigned(&[p("a", 0), p("b", 1)]);
        d.set_end(&p("a", 0), EndOffsets { low: 0, high: 10 });
        d.set_end(&p("b", 1), EndOffsets { low: 5, high: 8 });
        let mut next = HashMap::new();
        assert!(!d.done(next_of(&next)), "nothing read");
        next.insert(p("a", 0), 10);
        next.insert(p("b", 1), 7);
        let left: Vec<_> = d
            .remaining(next_of(&next))
            .map(|(p, _)| p.clone())
            .collect();
        assert_eq!(left, vec![p("b", 1)]);
        assert!(!d.done(next_of(&next)));
        next.insert(p("b", 1), 8);
        assert!(d.done(next_of(&next)));
        // Messages produced after the assignment do not move the target.
        next.insert(p("a", 0), 12);
        assert!(d.done(next_of(&next)));
    }

    #[test]
    fn a_partition_with_retention_deleted_messages_counts_from_its_low_watermark() {
        let mut d = DrainTargets::default();
        d.assigned(&[p("a", 0)]);
        // Everything was deleted by retention: low == high, nothing to read.
        d.set_end(&p("a", 0), EndOffsets { low: 40, high: 40 });
        assert!(d.done(|_, _| None));
    }

    #[test]
    fn an_eager_rebalance_waits_for_the_next_assignment() {
        let mut d = DrainTargets::default();
        d.assigned(&[p("a", 0), p("a", 1)]);
        d.set_end(&p("a", 0), EndOffsets { low: 0, high: 0 });
        d.set_end(&p("a", 1), EndOffsets { low: 0, high: 0 });
        assert!(d.done(|_, _| None));
        d.revoked(&[p("a", 0), p("a", 1)]);
        assert!(!d.done(|_, _| None), "everything revoked: wait");
        d.assigned(&[p("a", 1)]);
        assert!(!d.done(|_, _| None), "new end offsets unknown");
        d.set_end(&p("a", 1), EndOffsets { low: 0, high: 3 });
        assert!(!d.done(|_, _| Some(2)));
        assert!(d.done(|_, _| Some(3)));
    }

    #[test]
    fn a_partial_revocation_keeps_draining_the_rest_and_late_end_offsets_are_ignored() {
        let mut d = DrainTargets::default();
        d.assigned(&[p("a", 0), p("a", 1)]);
        d.set_end(&p("a", 0), EndOffsets { low: 0, high: 5 });
        d.revoked(&[p("a", 1)]);
        // The end offsets of the revoked partition arrive after the revocation.
        d.set_end(&p("a", 1), EndOffsets { low: 0, high: 100 });
        assert!(d.done(|_, _| Some(5)), "only a/0 is held");
        assert_eq!(d.unknown().count(), 0);
    }

    #[test]
    fn an_empty_assignment_is_done_at_once() {
        let mut d = DrainTargets::default();
        d.assigned(&[]);
        assert!(d.done(|_, _| None));
    }
}
