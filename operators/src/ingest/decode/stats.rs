//! Why a message is rejected ([`RejectReason`]) and how many were ([`DecodeStats`], per-epoch
//! [`ReasonCounts`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a raw message went to the dead-letter output instead of the event output. The
/// [`as_str`](RejectReason::as_str) code is stable and machine-readable: it is the `reason`
/// column of dead-letter tables and the label of the rejection metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// `empty-payload`: the message has no bytes (or a null payload).
    EmptyPayload,
    /// `not-utf8`: a JSON payload is not valid UTF-8.
    NotUtf8,
    /// `bad-json`: not JSON (syntax error, truncated text, trailing bytes, duplicate field).
    BadJson,
    /// `missing-field`: a required field of the wire format is absent.
    MissingField,
    /// `wrong-type`: a field has the wrong JSON type or a value outside its type: a negative or
    /// overflowing id, a non-integer where an integer belongs, an unknown `domain` or `device`,
    /// a top-level value that is not an object.
    WrongType,
    /// `unsupported-schema-version`: `schema_version` is not the one this build reads.
    UnsupportedSchemaVersion,
    /// `sequence-too-long`: a behaviour list is longer than `max-seq-len` (never truncated).
    SequenceTooLong,
    /// `misaligned-sequence`: `hist_item_ids` and `hist_category_ids` differ in length.
    MisalignedSequence,
    /// `bad-label`: `label` is an integer other than 0 or 1.
    BadLabel,
    /// `bad-hour`: `hour` is an integer outside 0..=23.
    BadHour,
    /// `bad-content`: `item_content` has the wrong width or a NaN/infinite value.
    BadContent,
    /// `event-time-out-of-window`: `event_time` is older than now minus `max-event-age` or newer
    /// than now plus `max-future`.
    EventTimeOutOfWindow,
    /// `empty-event-id`: `event_id` is the empty string.
    EmptyEventId,
    /// `bad-ipc`: an Arrow IPC payload is unreadable, holds no rows, or its schema is not the
    /// event schema.
    BadIpc,
}

impl RejectReason {
    /// Every reason, in code order (the order of [`DecodeStats::snapshot`]'s keys is alphabetic).
    pub const ALL: [RejectReason; 14] = [
        RejectReason::EmptyPayload,
        RejectReason::NotUtf8,
        RejectReason::BadJson,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::UnsupportedSchemaVersion,
        RejectReason::SequenceTooLong,
        RejectReason::MisalignedSequence,
        RejectReason::BadLabel,
        RejectReason::BadHour,
        RejectReason::BadContent,
        RejectReason::EventTimeOutOfWindow,
        RejectReason::EmptyEventId,
        RejectReason::BadIpc,
    ];

    /// The stable kebab-case code, e.g. `bad-json`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::EmptyPayload => "empty-payload",
            RejectReason::NotUtf8 => "not-utf8",
            RejectReason::BadJson => "bad-json",
            RejectReason::MissingField => "missing-field",
            RejectReason::WrongType => "wrong-type",
            RejectReason::UnsupportedSchemaVersion => "unsupported-schema-version",
            RejectReason::SequenceTooLong => "sequence-too-long",
            RejectReason::MisalignedSequence => "misaligned-sequence",
            RejectReason::BadLabel => "bad-label",
            RejectReason::BadHour => "bad-hour",
            RejectReason::BadContent => "bad-content",
            RejectReason::EventTimeOutOfWindow => "event-time-out-of-window",
            RejectReason::EmptyEventId => "empty-event-id",
            RejectReason::BadIpc => "bad-ipc",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const REASONS: usize = RejectReason::ALL.len();

/// Plain per-reason counts of one batch or one epoch (no atomics: owned by the decoder).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ReasonCounts {
    /// Accepted messages.
    pub good: u64,
    /// Event rows emitted (an IPC message may hold several).
    pub rows: u64,
    /// Rejected messages per reason, indexed by `RejectReason as usize`.
    pub bad: [u64; REASONS],
}

impl ReasonCounts {
    pub fn reject(&mut self, reason: RejectReason) {
        self.bad[reason.index()] += 1;
    }

    pub fn bad_total(&self) -> u64 {
        self.bad.iter().sum()
    }

    pub fn total(&self) -> u64 {
        self.good + self.bad_total()
    }

    pub fn add(&mut self, other: &ReasonCounts) {
        self.good += other.good;
        self.rows += other.rows;
        for (a, b) in self.bad.iter_mut().zip(other.bad) {
            *a += b;
        }
    }

    /// The `n` most frequent reasons with a non-zero count, most frequent first (ties in code
    /// order), formatted as `code: count, ...`.
    pub fn top(&self, n: usize) -> String {
        let mut ranked: Vec<(RejectReason, u64)> = RejectReason::ALL
            .iter()
            .map(|&r| (r, self.bad[r.index()]))
            .filter(|&(_, c)| c > 0)
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
            .iter()
            .take(n)
            .map(|(r, c)| format!("{r}: {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Cumulative decode counters since the decoder was built, cheap to share (`Arc`) with metrics
/// exporters and loggers. The decoder adds one batch's counts at a time (a handful of relaxed
/// atomic adds per batch, none per message), so a reader sees whole batches.
#[derive(Debug, Default)]
pub struct DecodeStats {
    good: AtomicU64,
    rows: AtomicU64,
    bad: [AtomicU64; REASONS],
}

impl DecodeStats {
    /// Rejected messages per reason code, every reason present (zero included).
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        RejectReason::ALL
            .iter()
            .map(|&r| (r.as_str(), self.bad[r.index()].load(Ordering::Relaxed)))
            .collect()
    }

    /// Rejected messages of one reason.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.bad[reason.index()].load(Ordering::Relaxed)
    }

    /// Accepted messages.
    pub fn good(&self) -> u64 {
        self.good.load(Ordering::Relaxed)
    }

    /// Rejected messages, all reasons.
    pub fn bad(&self) -> u64 {
        self.bad.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Event rows emitted (at least [`good`](Self::good): an Arrow IPC message may hold several).
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    pub(super) fn add(&self, c: &ReasonCounts) {
        self.good.fetch_add(c.good, Ordering::Relaxed);
        self.rows.fetch_add(c.rows, Ordering::Relaxed);
        for (a, &b) in self.bad.iter().zip(&c.bad) {
            if b > 0 {
                a.fetch_add(b, Ordering::Relaxed);
            }
        }
    }
}
