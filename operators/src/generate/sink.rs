//! Where generated events go: a Parquet archive in the landing layout ([`generate_archive`]) or
//! wire-format JSON lines ([`write_jsonl`]). Both produce the same events for a configuration.

use std::io::Write;

use ctrflow_schemas::{Domain, Event, EventDate};
use ctrflow_storage::Storage;
use tokio::task::JoinHandle;

use super::{DayChunk, Generator, GeneratorConfig};
use crate::OperatorError;
use crate::archive::{ArchiveWriter, DEFAULT_ROWS_PER_FILE};

/// Producer name recorded in the day manifests of a generated archive.
pub const PRODUCER: &str = "generate";
/// Source tag of generated part files (`part-gen-00000.parquet`).
pub const SOURCE_TAG: &str = "gen";
/// Events generated per step: the unit handed from the generating thread to the writer.
pub const CHUNK_EVENTS: usize = 4096;

/// Upper bound of the Arrow bytes one open partition buffers before its file is written.
const MAX_FILE_BYTES: usize = 512 << 20;

/// Rows per Parquet file such that a file of full-length sequences stays under
/// [`MAX_FILE_BYTES`] in memory (two `u64` lists, the content vector and the scalar columns).
fn rows_per_file(cfg: &GeneratorConfig) -> usize {
    let row_bytes = 16 * cfg.max_seq_len as usize + 4 * cfg.content_dim as usize + 96;
    (MAX_FILE_BYTES / row_bytes).clamp(4096, DEFAULT_ROWS_PER_FILE)
}

/// Reported after each generated day is complete (closed, for an archive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateProgress {
    /// The day just completed.
    pub date: EventDate,
    /// Days completed so far, this one included.
    pub days_done: u32,
    /// Days to generate in total.
    pub days_total: u32,
    /// Natural events of this day.
    pub natural_events: u64,
    /// Ad events of this day.
    pub ad_events: u64,
    /// Events of every day so far.
    pub events_so_far: u64,
}

/// Totals of a generation run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateSummary {
    /// First generated day.
    pub first_date: EventDate,
    /// Last generated day.
    pub last_date: EventDate,
    /// Days generated.
    pub days: u32,
    /// Natural events.
    pub natural_events: u64,
    /// Ad events.
    pub ad_events: u64,
    /// Clicked natural events.
    pub natural_clicks: u64,
    /// Clicked ad events.
    pub ad_clicks: u64,
    /// Data files written (0 for JSON lines).
    pub files: u64,
    /// Bytes of data written (Parquet files, or JSON lines including newlines).
    pub bytes: u64,
}

impl GenerateSummary {
    /// Events of both domains.
    pub fn events(&self) -> u64 {
        self.natural_events + self.ad_events
    }

    /// Click-through rate of natural events (0 when there are none).
    pub fn natural_ctr(&self) -> f64 {
        ratio(self.natural_clicks, self.natural_events)
    }

    /// Click-through rate of ad events (0 when there are none).
    pub fn ad_ctr(&self) -> f64 {
        ratio(self.ad_clicks, self.ad_events)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Counts events as they pass, per day and in total.
struct Tally {
    summary: GenerateSummary,
    day: [u64; 2],
}

impl Tally {
    fn new(cfg: &GeneratorConfig) -> Self {
        Tally {
            summary: GenerateSummary {
                first_date: cfg.start_date,
                last_date: cfg.last_date(),
                days: 0,
                natural_events: 0,
                ad_events: 0,
                natural_clicks: 0,
                ad_clicks: 0,
                files: 0,
                bytes: 0,
            },
            day: [0, 0],
        }
    }

    fn add(&mut self, e: &Event) {
        let s = &mut self.summary;
        let clicked = u64::from(e.label);
        match e.domain {
            Domain::Natural => {
                self.day[0] += 1;
                s.natural_events += 1;
                s.natural_clicks += clicked;
            }
            Domain::Ad => {
                self.day[1] += 1;
                s.ad_events += 1;
                s.ad_clicks += clicked;
            }
        }
    }

    fn day_done(&mut self, date: EventDate, days_total: u32) -> GenerateProgress {
        self.summary.days += 1;
        let [natural_events, ad_events] = std::mem::take(&mut self.day);
        GenerateProgress {
            date,
            days_done: self.summary.days,
            days_total,
            natural_events,
            ad_events,
            events_so_far: self.summary.events(),
        }
    }
}

fn join_error(e: tokio::task::JoinError) -> OperatorError {
    OperatorError::Internal(format!("the generator thread failed: {e}"))
}

/// Generates the next chunk on a blocking thread, handing the generator back with it.
fn next_chunk_blocking(mut generator: Generator) -> JoinHandle<(Generator, Option<DayChunk>)> {
    tokio::task::spawn_blocking(move || {
        let chunk = generator.next_chunk(CHUNK_EVENTS);
        (generator, chunk)
    })
}

/// Generates the configured days into `storage` in the landing layout, through an
/// [`ArchiveWriter`] (producer [`PRODUCER`], part files `part-gen-*.parquet`).
///
/// Days are written in order; after a day's events, both its partitions (natural and ad, even one
/// that got no events) are closed with their `_SUCCESS` manifest and `progress` is called.
/// A partition rolls to a new file before its buffered rows could exceed about 512 MiB.
/// Generation runs on blocking threads, one [`CHUNK_EVENTS`] chunk ahead of the writer, so it
/// overlaps with writing and never blocks tokio workers; memory holds the world, one chunk being
/// generated, one being written and the writer's open files.
///
/// Data file keys and bytes depend only on `cfg`, so a rerun rewrites identical files.
pub async fn generate_archive(
    storage: &Storage,
    cfg: &GeneratorConfig,
    mut progress: impl FnMut(GenerateProgress),
) -> Result<GenerateSummary, OperatorError> {
    cfg.validate()?;
    let owned = cfg.clone();
    let generator = tokio::task::spawn_blocking(move || Generator::new(&owned))
        .await
        .map_err(join_error)??;
    let mut writer = ArchiveWriter::new(
        storage.clone(),
        generator.schema().clone(),
        PRODUCER,
        SOURCE_TAG,
    )
    .with_rows_per_file(rows_per_file(cfg));
    let mut tally = Tally::new(cfg);
    let mut pending = Some(next_chunk_blocking(generator));
    while let Some(handle) = pending.take() {
        let (generator, chunk) = handle.await.map_err(join_error)?;
        let Some(chunk) = chunk else { break };
        if !generator.is_done() {
            pending = Some(next_chunk_blocking(generator));
        }
        for event in &chunk.events {
            writer.push(event).await?;
            tally.add(event);
        }
        if chunk.ends_day {
            for domain in Domain::ALL {
                writer.close_day(domain, chunk.date).await?;
            }
            progress(tally.day_done(chunk.date, cfg.days));
        }
    }
    let archive = writer.finish().await?;
    tally.summary.files = archive.files;
    tally.summary.bytes = archive.bytes;
    Ok(tally.summary)
}

/// Writes the same events as [`generate_archive`] to `writer` as wire-format JSON lines
/// ([`Event::to_json`], one event per line, days in order, each in time order), calling
/// `progress` after each day. Runs on the calling thread.
pub fn write_jsonl(
    cfg: &GeneratorConfig,
    writer: impl Write,
    mut progress: impl FnMut(GenerateProgress),
) -> Result<GenerateSummary, OperatorError> {
    let io_error = |source| OperatorError::Io {
        path: "<json lines output>".into(),
        source,
    };
    let mut generator = Generator::new(cfg)?;
    let mut out = std::io::BufWriter::new(writer);
    let mut tally = Tally::new(cfg);
    let mut bytes = 0u64;
    while let Some(chunk) = generator.next_chunk(CHUNK_EVENTS) {
        for event in &chunk.events {
            let line = event.to_json();
            out.write_all(&line).map_err(io_error)?;
            out.write_all(b"\n").map_err(io_error)?;
            bytes += line.len() as u64 + 1;
            tally.add(event);
        }
        if chunk.ends_day {
            progress(tally.day_done(chunk.date, cfg.days));
        }
    }
    out.flush().map_err(io_error)?;
    tally.summary.bytes = bytes;
    Ok(tally.summary)
}
