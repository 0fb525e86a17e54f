//! [`KeyLayout`]: the one place that names objects in storage. Every key ctrflow reads or writes
//! comes from here, so the layout documented in `docs/architecture.md` cannot drift:
//!
//! ```text
//! landing/{natural|ad}/date=YYYY-MM-DD/part-*.parquet
//! landing/{natural|ad}/date=YYYY-MM-DD/_SUCCESS
//! landing/_epochs/{epoch:020}.json
//! dead-letter/{natural|ad}/date=YYYY-MM-DD/part-*.parquet
//! late/{natural|ad}/date=YYYY-MM-DD/part-*.parquet
//! models/{tpm|cpm|actr}/{version}/{file} + manifest.json
//! models/{tpm|cpm|actr}/LATEST
//! embeddings/tpm/{version}/{users,items}.parquet + manifest.json
//! reports/{date}/report.html + metrics.json
//! ```
//! Keys are relative to the store root chosen by `--store`.

use std::fmt;

use crate::{Domain, Epoch, EventDate, ModelKind, ModelVersion};

/// How a data part file is named. Names are deterministic, so replaying the same input writes
/// the same keys (idempotent landing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartName {
    /// A file of consecutive Kafka messages: `part-{topic}-{partition}-{first}-{last}.parquet`.
    Kafka {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// First offset in the file.
        first_offset: i64,
        /// Last offset in the file (inclusive).
        last_offset: i64,
    },
    /// A file written by a batch producer (generator, importer): `part-{source}-{seq:05}.parquet`.
    Batch {
        /// The producer (`gen`, `ml`, ...).
        source: String,
        /// Sequence number within the day partition.
        seq: u32,
    },
}

impl fmt::Display for PartName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartName::Kafka {
                topic,
                partition,
                first_offset,
                last_offset,
            } => write!(
                f,
                "part-{topic}-{partition}-{first_offset:020}-{last_offset:020}.parquet"
            ),
            PartName::Batch { source, seq } => write!(f, "part-{source}-{seq:05}.parquet"),
        }
    }
}

/// The two tables of a TPM embedding snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingTable {
    /// User embeddings.
    Users,
    /// Item embeddings.
    Items,
}

impl EmbeddingTable {
    /// `users` or `items`.
    pub fn as_str(self) -> &'static str {
        match self {
            EmbeddingTable::Users => "users",
            EmbeddingTable::Items => "items",
        }
    }
}

/// Produces every object key of ctrflow. Stateless; the store root is applied by the storage layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyLayout;

impl KeyLayout {
    /// `landing/{domain}/`
    pub fn landing_table(&self, domain: Domain) -> String {
        format!("landing/{domain}/")
    }

    /// `landing/{domain}/date=YYYY-MM-DD/`
    pub fn landing_day(&self, domain: Domain, date: EventDate) -> String {
        format!("landing/{domain}/date={date}/")
    }

    /// A landing data file.
    pub fn landing_file(&self, domain: Domain, date: EventDate, part: &PartName) -> String {
        format!("landing/{domain}/date={date}/{part}")
    }

    /// The `_SUCCESS` day manifest of a domain's day.
    pub fn day_success(&self, domain: Domain, date: EventDate) -> String {
        format!("landing/{domain}/date={date}/_SUCCESS")
    }

    /// `landing/_epochs/`
    pub fn epochs_dir(&self) -> &'static str {
        "landing/_epochs/"
    }

    /// `landing/_epochs/{epoch:020}.json`
    pub fn epoch_manifest(&self, epoch: Epoch) -> String {
        format!("landing/_epochs/{:020}.json", epoch.0)
    }

    /// `landing/_epoch_checkpoints/`
    pub fn epoch_checkpoints_dir(&self) -> &'static str {
        "landing/_epoch_checkpoints/"
    }

    /// `landing/_epoch_checkpoints/{epoch:020}.json`: epoch manifests 1..=`epoch` folded.
    pub fn epoch_checkpoint(&self, epoch: Epoch) -> String {
        format!("landing/_epoch_checkpoints/{:020}.json", epoch.0)
    }

    /// `dead-letter/{domain}/`
    pub fn dead_letter_table(&self, domain: Domain) -> String {
        format!("dead-letter/{domain}/")
    }

    /// A dead-letter file.
    pub fn dead_letter_file(&self, domain: Domain, date: EventDate, part: &PartName) -> String {
        format!("dead-letter/{domain}/date={date}/{part}")
    }

    /// A file of late events.
    pub fn late_file(&self, domain: Domain, date: EventDate, part: &PartName) -> String {
        format!("late/{domain}/date={date}/{part}")
    }

    /// `models/{kind}/`
    pub fn models_of(&self, kind: ModelKind) -> String {
        format!("models/{kind}/")
    }

    /// `models/{kind}/{version}/`
    pub fn model_dir(&self, kind: ModelKind, version: &ModelVersion) -> String {
        format!("models/{kind}/{version}/")
    }

    /// A file of a model version (`model.mpk`, `config.json`, ...).
    pub fn model_file(&self, kind: ModelKind, version: &ModelVersion, file: &str) -> String {
        format!("models/{kind}/{version}/{file}")
    }

    /// `models/{kind}/{version}/manifest.json`
    pub fn model_manifest(&self, kind: ModelKind, version: &ModelVersion) -> String {
        self.model_file(kind, version, "manifest.json")
    }

    /// `models/{kind}/LATEST`
    pub fn model_latest(&self, kind: ModelKind) -> String {
        format!("models/{kind}/LATEST")
    }

    /// `embeddings/tpm/`
    pub fn embeddings_root(&self) -> &'static str {
        "embeddings/tpm/"
    }

    /// `embeddings/tpm/{version}/{users|items}.parquet`
    pub fn embeddings_table(&self, version: &ModelVersion, table: EmbeddingTable) -> String {
        format!("embeddings/tpm/{version}/{}.parquet", table.as_str())
    }

    /// `embeddings/tpm/{version}/manifest.json`
    pub fn embeddings_manifest(&self, version: &ModelVersion) -> String {
        format!("embeddings/tpm/{version}/manifest.json")
    }

    /// `reports/{date}/report.html`
    pub fn report(&self, date: EventDate) -> String {
        format!("reports/{date}/report.html")
    }

    /// `reports/{date}/metrics.json`
    pub fn report_metrics(&self, date: EventDate) -> String {
        format!("reports/{date}/metrics.json")
    }

    /// `reports/{date}/predictions/{model}.parquet`: every row a model was evaluated on, with
    /// its prediction.
    pub fn report_predictions(&self, date: EventDate, model: ModelKind) -> String {
        format!("reports/{date}/predictions/{model}.parquet")
    }

    /// The date of a key inside a `date=YYYY-MM-DD/` partition, if any.
    pub fn date_of(&self, key: &str) -> Option<EventDate> {
        let start = key.find("date=")? + "date=".len();
        key.get(start..start + 10)?.parse().ok()
    }

    /// Domain and date of a landing data file key; `None` for any other key (manifests, epochs).
    pub fn parse_landing_file(&self, key: &str) -> Option<(Domain, EventDate)> {
        let rest = key.strip_prefix("landing/")?;
        let (domain, rest) = rest.split_once('/')?;
        let domain = domain.parse().ok()?;
        let (_, file) = rest.split_once('/')?;
        if !(file.starts_with("part-") && file.ends_with(".parquet")) {
            return None;
        }
        Some((domain, self.date_of(key)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_matches_the_documented_layout() {
        let l = KeyLayout;
        let d: EventDate = "2024-03-09".parse().expect("date");
        let v = ModelVersion::for_date(d);
        let kafka = PartName::Kafka {
            topic: "ads.v1".into(),
            partition: 3,
            first_offset: 10,
            last_offset: 99,
        };
        let batch = PartName::Batch {
            source: "gen".into(),
            seq: 7,
        };
        let cases = [
            (l.landing_table(Domain::Natural), "landing/natural/"),
            (l.landing_day(Domain::Ad, d), "landing/ad/date=2024-03-09/"),
            (
                l.landing_file(Domain::Ad, d, &kafka),
                "landing/ad/date=2024-03-09/part-ads.v1-3-00000000000000000010-00000000000000000099.parquet",
            ),
            (
                l.landing_file(Domain::Natural, d, &batch),
                "landing/natural/date=2024-03-09/part-gen-00007.parquet",
            ),
            (
                l.day_success(Domain::Ad, d),
                "landing/ad/date=2024-03-09/_SUCCESS",
            ),
            (l.epochs_dir().to_string(), "landing/_epochs/"),
            (
                l.epoch_manifest(Epoch(42)),
                "landing/_epochs/00000000000000000042.json",
            ),
            (l.dead_letter_table(Domain::Ad), "dead-letter/ad/"),
            (
                l.dead_letter_file(Domain::Natural, d, &batch),
                "dead-letter/natural/date=2024-03-09/part-gen-00007.parquet",
            ),
            (
                l.late_file(Domain::Ad, d, &batch),
                "late/ad/date=2024-03-09/part-gen-00007.parquet",
            ),
            (l.models_of(ModelKind::Cpm), "models/cpm/"),
            (l.model_dir(ModelKind::Tpm, &v), "models/tpm/d20240309/"),
            (
                l.model_file(ModelKind::Actr, &v, "model.mpk"),
                "models/actr/d20240309/model.mpk",
            ),
            (
                l.model_manifest(ModelKind::Actr, &v),
                "models/actr/d20240309/manifest.json",
            ),
            (l.model_latest(ModelKind::Actr), "models/actr/LATEST"),
            (l.embeddings_root().to_string(), "embeddings/tpm/"),
            (
                l.embeddings_table(&v, EmbeddingTable::Users),
                "embeddings/tpm/d20240309/users.parquet",
            ),
            (
                l.embeddings_table(&v, EmbeddingTable::Items),
                "embeddings/tpm/d20240309/items.parquet",
            ),
            (
                l.embeddings_manifest(&v),
                "embeddings/tpm/d20240309/manifest.json",
            ),
            (l.report(d), "reports/2024-03-09/report.html"),
            (l.report_metrics(d), "reports/2024-03-09/metrics.json"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn landing_keys_parse_back() {
        let l = KeyLayout;
        let d: EventDate = "2024-03-09".parse().expect("date");
        let part = PartName::Batch {
            source: "gen".into(),
            seq: 0,
        };
        let key = l.landing_file(Domain::Ad, d, &part);
        assert_eq!(l.parse_landing_file(&key), Some((Domain::Ad, d)));
        assert_eq!(l.parse_landing_file(&l.day_success(Domain::Ad, d)), None);
        assert_eq!(l.parse_landing_file(&l.epoch_manifest(Epoch(1))), None);
        assert_eq!(
            l.parse_landing_file("landing/other/date=2024-03-09/part-x.parquet"),
            None
        );
        assert_eq!(l.date_of("reports/x/date=2024-02-30/"), None);
    }

    #[test]
    fn offsets_are_zero_padded_so_keys_sort_by_offset() {
        let name = |first, last| {
            PartName::Kafka {
                topic: "t".into(),
                partition: 0,
                first_offset: first,
                last_offset: last,
            }
            .to_string()
        };
        assert!(name(9, 9) < name(10, 10));
    }
}
