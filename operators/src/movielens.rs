//! Import of MovieLens (100k or 1M) in RecBole's atomic-file format into event-schema Parquet.
//!
//! Files (tab-separated, first line is a typed header such as `user_id:token`):
//! - `NAME.inter`: `user_id`, `item_id`, `rating`, `timestamp` (seconds);
//! - `NAME.item`: `item_id` and a genre column (`genre` or `class`, space-separated genres).
//!
//! Mapping: label = rating >= the like threshold (default 4); domain = ad when the movie has one of
//! the ad genres (default `Children's`, `Animation`), else natural; category = the movie's first
//! listed genre; behaviour sequence = the user's earlier rated movies (both domains), most recent
//! first, up to the schema maximum (or, with [`MovielensHistory::Liked`], only the earlier liked
//! ones from strictly earlier seconds); event date = the UTC day of the timestamp. Numeric ids are
//! kept; textual ids (ML-1M uses titles and `1m_`-prefixed users) become a stable 64-bit FNV-1a
//! hash of the text. Every day between the first and the last event is closed for both domains,
//! including days without events, so the archive has no gaps.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ctrflow_schemas::{
    CategoryId, Device, Domain, Event, EventDate, EventSchema, EventTime, ItemId, UserId,
};
use ctrflow_storage::Storage;

use crate::OperatorError;
use crate::archive::{ArchiveSummary, ArchiveWriter};

/// Rows per Parquet file of an import (sequences are long, so parts stay moderate in memory).
const ROWS_PER_FILE: usize = 16_384;

/// How MovieLens ratings become events.
#[derive(Debug, Clone, PartialEq)]
pub struct MovielensOptions {
    /// Genres that make a movie an ad.
    pub ad_genres: Vec<String>,
    /// Ratings at or above this are clicks.
    pub like_threshold: f64,
    /// Maximum behaviour-sequence length.
    pub max_seq_len: usize,
    /// Which earlier ratings form the behaviour sequence.
    pub history: MovielensHistory,
    /// Whether the sequence holds ratings of both domains or only of the event's own.
    pub history_domains: HistoryDomains,
    /// What the events' `item_content` vectors hold.
    pub content: MovielensContent,
}

/// The content vector (`item_content`) of a MovieLens event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MovielensContent {
    /// No content vector.
    #[default]
    None,
    /// The movie's genres, multi-hot: position `i` is 1 when the movie has the `i`-th genre of
    /// the dataset (sorted by name), the rest of the schema's `content-dim` is 0. Needs
    /// `content-dim` >= the number of genres (18 in ML-1M, 19 in ML-100k).
    Genres,
}

/// The domains a behaviour sequence draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HistoryDomains {
    /// Natural and ad ratings alike (a cross-domain sequence).
    #[default]
    All,
    /// Only ratings of the event's own domain: an ad event sees only earlier ads (no
    /// natural-domain information reaches the ad model through its features).
    Same,
}

/// Which of a user's earlier ratings make up an event's behaviour sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MovielensHistory {
    /// Every earlier rated movie, whatever its rating (ids only: no label enters a feature).
    #[default]
    Rated,
    /// Only earlier *liked* movies (rating >= the like threshold) with a strictly earlier
    /// timestamp: the analogue of a click sequence. An event's own label, and the labels of
    /// ratings made in the same second, never enter its sequence.
    Liked,
    /// Every earlier rating with a strictly earlier timestamp, liked ones as the movie's id and
    /// disliked ones as a separate "disliked" token of it ([`disliked_token`]): the sequence
    /// carries the feedback as well as the items, as click-and-skip sequences do.
    Signed,
}

/// The behaviour-sequence id of a disliked movie in [`MovielensHistory::Signed`] sequences: the
/// movie's id with a fixed salt, so it has its own embedding row.
pub fn disliked_token(item: ItemId) -> ItemId {
    ItemId(item.0 ^ 0x5bd1_e995_0000_0001)
}

impl Default for MovielensOptions {
    fn default() -> Self {
        MovielensOptions {
            ad_genres: vec!["Children's".into(), "Animation".into()],
            like_threshold: 4.0,
            max_seq_len: ctrflow_schemas::DEFAULT_MAX_SEQ_LEN,
            history: MovielensHistory::Rated,
            history_domains: HistoryDomains::All,
            content: MovielensContent::None,
        }
    }
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Dataset name (file stem, e.g. `ml-100k`).
    pub dataset: String,
    /// Ratings read.
    pub ratings: u64,
    /// Ratings that became clicks.
    pub likes: u64,
    /// First and last event date.
    pub dates: (EventDate, EventDate),
    /// Archive totals (rows per domain, files, bytes, closed days).
    pub archive: ArchiveSummary,
}

struct Movie {
    id: ItemId,
    category: CategoryId,
    is_ad: bool,
    /// Indices (0-based, in sorted genre order) of the movie's genres.
    genres: Vec<usize>,
}

struct Rating {
    user: UserId,
    movie: u32,
    rating: f64,
    timestamp: i64,
}

/// A stable 64-bit id for a token: the number itself when it is one, else FNV-1a of its bytes.
pub fn token_id(token: &str) -> u64 {
    if let Ok(n) = token.parse::<u64>() {
        return n;
    }
    token.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Finds `NAME.inter` and `NAME.item` in `dir`.
fn dataset_files(dir: &Path) -> Result<(String, PathBuf, PathBuf), OperatorError> {
    let io = |source| OperatorError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut inter = None;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "inter") {
            inter = Some(path);
        }
    }
    let inter = inter.ok_or_else(|| OperatorError::Input {
        file: dir.display().to_string(),
        line: 0,
        reason: "no *.inter file (expected RecBole atomic files NAME.inter and NAME.item)".into(),
    })?;
    let name = inter
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let item = inter.with_extension("item");
    if !item.exists() {
        return Err(OperatorError::Input {
            file: item.display().to_string(),
            line: 0,
            reason: "missing (every NAME.inter needs its NAME.item)".into(),
        });
    }
    Ok((name, inter, item))
}

/// The column index of each requested field, and the data lines with their 1-based line numbers.
type AtomicFile = (Vec<usize>, Vec<(usize, String)>);

/// Reads a tab-separated atomic file: returns the column index of each requested field and the
/// data lines (1-based line numbers). Tolerates CRLF endings.
fn read_atomic(path: &Path, wanted: &[&[&str]]) -> Result<AtomicFile, OperatorError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| OperatorError::Io {
        path: file.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| OperatorError::Input {
        file: file.clone(),
        line: 0,
        reason: format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()),
    })?;
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    let header = lines.next().ok_or_else(|| OperatorError::Input {
        file: file.clone(),
        line: 1,
        reason: "empty file, expected a header line".into(),
    })?;
    let names: Vec<&str> = header
        .split('\t')
        .map(|h| h.split(':').next().unwrap_or(h))
        .collect();
    let mut indices = Vec::with_capacity(wanted.len());
    for alternatives in wanted {
        let idx = names
            .iter()
            .position(|n| alternatives.contains(n))
            .ok_or_else(|| OperatorError::Input {
                file: file.clone(),
                line: 1,
                reason: format!(
                    "header has no `{}` column (found: {})",
                    alternatives.join("` or `"),
                    names.join(", ")
                ),
            })?;
        indices.push(idx);
    }
    let width = names.len();
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields = line.split('\t').count();
        if fields != width {
            return Err(OperatorError::Input {
                file: file.clone(),
                line: i + 2,
                reason: format!("{fields} tab-separated fields, the header has {width}"),
            });
        }
        rows.push((i + 2, line.to_string()));
    }
    Ok((indices, rows))
}

fn read_movies(
    path: &Path,
    options: &MovielensOptions,
) -> Result<(HashMap<String, u32>, Vec<Movie>), OperatorError> {
    let (idx, rows) = read_atomic(path, &[&["item_id"], &["genre", "class"]])?;
    let mut genres_of = Vec::with_capacity(rows.len());
    let mut all_genres = BTreeSet::new();
    for (line, text) in &rows {
        let fields: Vec<&str> = text.split('\t').collect();
        let genres: Vec<String> = fields[idx[1]]
            .split_whitespace()
            .map(str::to_string)
            .collect();
        all_genres.extend(genres.iter().cloned());
        genres_of.push((*line, fields[idx[0]].to_string(), genres));
    }
    let genre_ids: HashMap<&String, u64> = all_genres
        .iter()
        .enumerate()
        .map(|(i, g)| (g, i as u64 + 1))
        .collect();
    let mut index = HashMap::with_capacity(rows.len());
    let mut movies = Vec::with_capacity(rows.len());
    for (line, token, genres) in &genres_of {
        if index.insert(token.clone(), movies.len() as u32).is_some() {
            return Err(OperatorError::Input {
                file: path.display().to_string(),
                line: *line,
                reason: format!("duplicate item_id `{token}`"),
            });
        }
        movies.push(Movie {
            id: ItemId(token_id(token)),
            // Movies without a genre get category 0.
            category: CategoryId(genres.first().map_or(0, |g| genre_ids[g])),
            is_ad: genres.iter().any(|g| options.ad_genres.contains(g)),
            genres: genres.iter().map(|g| genre_ids[g] as usize - 1).collect(),
        });
    }
    Ok((index, movies))
}

fn read_ratings(path: &Path, movies: &HashMap<String, u32>) -> Result<Vec<Rating>, OperatorError> {
    let file = path.display().to_string();
    let (idx, rows) = read_atomic(
        path,
        &[&["user_id"], &["item_id"], &["rating"], &["timestamp"]],
    )?;
    let bad = |line: usize, reason: String| OperatorError::Input {
        file: file.clone(),
        line,
        reason,
    };
    let mut out = Vec::with_capacity(rows.len());
    for (line, text) in rows {
        let f: Vec<&str> = text.split('\t').collect();
        let movie = *movies.get(f[idx[1]]).ok_or_else(|| {
            bad(
                line,
                format!("item_id `{}` is not in the .item file", f[idx[1]]),
            )
        })?;
        let rating: f64 = f[idx[2]]
            .parse()
            .map_err(|_| bad(line, format!("rating `{}` is not a number", f[idx[2]])))?;
        let ts: f64 = f[idx[3]]
            .parse()
            .map_err(|_| bad(line, format!("timestamp `{}` is not a number", f[idx[3]])))?;
        if !rating.is_finite() || !(0.0..=1e11).contains(&ts) {
            return Err(bad(line, "rating or timestamp out of range".into()));
        }
        out.push(Rating {
            user: UserId(token_id(f[idx[0]])),
            movie,
            rating,
            timestamp: ts as i64,
        });
    }
    Ok(out)
}

/// Imports the dataset in `dir` into the landing tables of `storage`. `progress` is called with
/// the number of ratings converted so far.
pub async fn import_movielens(
    dir: &Path,
    storage: &Storage,
    schema: &EventSchema,
    options: &MovielensOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<ImportSummary, OperatorError> {
    let (dataset, inter_path, item_path) = dataset_files(dir)?;
    let opts = options.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        let (index, movies) = read_movies(&item_path, &opts)?;
        let mut ratings = read_ratings(&inter_path, &index)?;
        // Time order; ties keep file order (stable sort), so earlier lines come first.
        ratings.sort_by_key(|r| r.timestamp);
        Ok::<_, OperatorError>((movies, ratings))
    })
    .await
    .map_err(|e| OperatorError::Internal(format!("parsing task failed: {e}")))??;
    let (movies, ratings) = parsed;
    let content_of = |movie: &Movie| -> Option<Vec<f32>> {
        match options.content {
            MovielensContent::None => None,
            MovielensContent::Genres => {
                let mut v = vec![0.0; schema.content_dim()];
                for &g in &movie.genres {
                    v[g] = 1.0;
                }
                Some(v)
            }
        }
    };
    if options.content == MovielensContent::Genres {
        let genres = movies
            .iter()
            .flat_map(|m| m.genres.iter().map(|g| g + 1))
            .max()
            .unwrap_or(0);
        if genres > schema.content_dim() {
            return Err(OperatorError::Input {
                file: dir.display().to_string(),
                line: 0,
                reason: format!(
                    "{genres} genres do not fit the schema's content-dim {}: set [schema] \
                     content-dim (and [generator] content-dim) to at least {genres}",
                    schema.content_dim()
                ),
            });
        }
    }
    let (Some(first), Some(last)) = (ratings.first(), ratings.last()) else {
        return Err(OperatorError::Input {
            file: dir.display().to_string(),
            line: 0,
            reason: "no ratings".into(),
        });
    };
    let day = |ts: i64| {
        EventDate::from_timestamp_ms(ts * 1000).ok_or_else(|| OperatorError::Input {
            file: dataset.clone(),
            line: 0,
            reason: format!("timestamp {ts} is not a representable date"),
        })
    };
    let (first_day, last_day) = (day(first.timestamp)?, day(last.timestamp)?);

    let mut writer = ArchiveWriter::new(storage.clone(), schema.clone(), "import-movielens", "ml")
        .with_rows_per_file(ROWS_PER_FILE);
    let same_domain_only = options.history_domains == HistoryDomains::Same;
    // Per user, every earlier rating: (movie, timestamp, liked).
    let mut history: HashMap<UserId, Vec<(u32, i64, bool)>> = HashMap::new();
    let total = ratings.len() as u64;
    let mut likes = 0;
    let mut current_day = first_day;
    for (n, r) in ratings.iter().enumerate() {
        let date = day(r.timestamp)?;
        if date > current_day {
            // Close every day that ended, for both domains (empty days included).
            for d in current_day.range_inclusive(date.offset(-1)) {
                for domain in Domain::ALL {
                    writer.close_day(domain, d).await?;
                }
            }
            current_day = date;
        }
        let movie = &movies[r.movie as usize];
        let past = history.entry(r.user).or_default();
        let label = u8::from(r.rating >= options.like_threshold);
        let recent = past
            .iter()
            .rev()
            .filter(|&&(m, _, _)| !same_domain_only || movies[m as usize].is_ad == movie.is_ad)
            .filter(|&&(_, ts, liked)| match options.history {
                MovielensHistory::Rated => true,
                MovielensHistory::Liked => liked && ts < r.timestamp,
                MovielensHistory::Signed => ts < r.timestamp,
            })
            .take(options.max_seq_len);
        likes += u64::from(label);
        let event = Event {
            event_id: format!("ml-{}-{}", r.user, movie.id),
            event_time: EventTime(r.timestamp * 1000),
            domain: if movie.is_ad {
                Domain::Ad
            } else {
                Domain::Natural
            },
            user_id: r.user,
            item_id: movie.id,
            category_id: movie.category,
            position: 0,
            hour: ((r.timestamp.rem_euclid(86_400)) / 3600) as u8,
            device: Device::Unknown,
            hist_item_ids: recent
                .clone()
                .map(|&(m, _, liked)| {
                    let id = movies[m as usize].id;
                    match options.history {
                        MovielensHistory::Signed if !liked => disliked_token(id),
                        _ => id,
                    }
                })
                .collect(),
            hist_category_ids: recent
                .map(|&(m, _, _)| movies[m as usize].category)
                .collect(),
            item_content: content_of(movie),
            label,
        };
        past.push((r.movie, r.timestamp, label == 1));
        writer.push(&event).await?;
        if n % 10_000 == 0 {
            progress(n as u64, total);
        }
    }
    for d in current_day.range_inclusive(last_day) {
        for domain in Domain::ALL {
            writer.close_day(domain, d).await?;
        }
    }
    progress(total, total);
    Ok(ImportSummary {
        dataset,
        ratings: total,
        likes,
        dates: (first_day, last_day),
        archive: writer.finish().await?,
    })
}

#[cfg(test)]
mod tests;
