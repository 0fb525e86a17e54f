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
mod tests {
    use super::*;

    fn write_dataset(dir: &Path, inter: &str, item: &str) {
        std::fs::write(dir.join("tiny.inter"), inter).expect("write inter");
        std::fs::write(dir.join("tiny.item"), item).expect("write item");
    }

    const ITEMS: &str = "item_id:token\tmovie_title:token_seq\tclass:token_seq\n\
                         1\tToy Story\tAnimation Children's Comedy\n\
                         2\tHeat\tAction Crime\n\
                         3\tFargo\tCrime Drama\n";

    #[test]
    fn token_ids_are_numeric_or_stable_hashes() {
        assert_eq!(token_id("242"), 242);
        assert_eq!(token_id("1m_1"), token_id("1m_1"));
        assert_ne!(token_id("1m_1"), token_id("1m_2"));
    }

    #[tokio::test]
    async fn converts_ratings_to_events_with_causal_sequences() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Day 0: user 7 rates 2 then 3; day 2: user 7 rates 1 (ad). CRLF endings tolerated.
        write_dataset(
            dir.path(),
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n\
             7\t3\t5\t200\r\n7\t2\t2\t100\r\n7\t1\t4\t172900\r\n",
            ITEMS,
        );
        let storage = Storage::open("memory://movielens-unit-1").expect("store");
        let schema = EventSchema::default();
        let s = import_movielens(
            dir.path(),
            &storage,
            &schema,
            &MovielensOptions::default(),
            |_, _| {},
        )
        .await
        .expect("import");
        assert_eq!(s.ratings, 3);
        assert_eq!(s.likes, 2);
        assert_eq!(s.archive.rows.get(&Domain::Ad), Some(&1));
        assert_eq!(s.archive.rows.get(&Domain::Natural), Some(&2));
        // Three days (one empty in the middle) closed for both domains.
        assert_eq!(s.archive.days.len(), 6);
        let key = ctrflow_schemas::KeyLayout.day_success(Domain::Ad, s.dates.1);
        let bytes = storage.get(&key).await.expect("manifest");
        let day: ctrflow_schemas::DayManifest =
            ctrflow_schemas::decode_manifest(&key, &bytes).expect("decode");
        let batches = storage.read_parquet(&day.files[0].key).await.expect("read");
        let events = ctrflow_schemas::events_from_batch(&batches[0]).expect("events");
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].hist_item_ids,
            vec![ItemId(3), ItemId(2)],
            "most recent first"
        );
        assert_eq!(events[0].label, 1);
        assert_eq!(
            events[0].category_id,
            CategoryId(2),
            "Animation is genre #2 of the 6 sorted genres"
        );
    }

    #[tokio::test]
    async fn genre_content_is_multi_hot_over_the_sorted_genres() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_dataset(
            dir.path(),
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
             7\t1\t5\t100\n7\t3\t2\t200\n",
            ITEMS,
        );
        let options = MovielensOptions {
            content: MovielensContent::Genres,
            ..MovielensOptions::default()
        };
        let events = import_first_day_as(dir.path(), options.clone(), &EventSchema::new(8)).await;
        // Sorted genres: Action, Animation, Children's, Comedy, Crime, Drama; two zero pads.
        let toy_story = [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        let fargo = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        assert_eq!(events[0].item_content.as_deref(), Some(&toy_story[..]));
        assert_eq!(events[1].item_content.as_deref(), Some(&fargo[..]));

        // Six genres do not fit a 4-wide content vector: an error that names the setting.
        let storage = Storage::open("memory://movielens-unit-content").expect("store");
        let err = import_movielens(
            dir.path(),
            &storage,
            &EventSchema::new(4),
            &options,
            |_, _| {},
        )
        .await
        .expect_err("too narrow");
        assert!(err.to_string().contains("content-dim"), "{err}");
    }

    #[tokio::test]
    async fn malformed_files_name_file_and_line() {
        let storage = Storage::open("memory://movielens-unit-2").expect("store");
        let schema = EventSchema::default();
        let cases = [
            (
                "user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t9\t5\t1\n",
                "line 2",
                "not in the .item",
            ),
            (
                "user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t1\t5\t1\n7\t1\tfive\t2\n",
                ":3",
                "rating",
            ),
            (
                "user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\t1\t5\n",
                ":2",
                "fields",
            ),
            (
                "user_id:token\trating:float\ttimestamp:float\n",
                ":1",
                "item_id",
            ),
        ];
        for (inter, place, what) in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            write_dataset(dir.path(), inter, ITEMS);
            let err = import_movielens(
                dir.path(),
                &storage,
                &schema,
                &MovielensOptions::default(),
                |_, _| {},
            )
            .await
            .expect_err("malformed");
            let text = err.to_string();
            let place = place.replace("line ", ":");
            assert!(
                text.contains("tiny.inter") && text.contains(&place) && text.contains(what),
                "{text}"
            );
        }
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(
            import_movielens(
                empty.path(),
                &storage,
                &schema,
                &MovielensOptions::default(),
                |_, _| {}
            )
            .await
            .is_err()
        );
    }

    /// Imports `dir` with `options` into a fresh in-memory store and returns the events of its
    /// first day (every test dataset fits in one day), in time order.
    async fn import_first_day(dir: &Path, options: MovielensOptions) -> Vec<Event> {
        import_first_day_as(dir, options, &EventSchema::default()).await
    }

    /// [`import_first_day`] with the event schema `schema`.
    async fn import_first_day_as(
        dir: &Path,
        options: MovielensOptions,
        schema: &EventSchema,
    ) -> Vec<Event> {
        let storage = Storage::open(&format!(
            "memory://{}",
            ctrflow_test_support::unique_name("movielens-unit")
        ))
        .expect("store");
        let s = import_movielens(dir, &storage, schema, &options, |_, _| {})
            .await
            .expect("import");
        let mut events = Vec::new();
        for domain in Domain::ALL {
            let key = ctrflow_schemas::KeyLayout.day_success(domain, s.dates.0);
            let bytes = storage.get(&key).await.expect("manifest");
            let day: ctrflow_schemas::DayManifest =
                ctrflow_schemas::decode_manifest(&key, &bytes).expect("decode");
            for file in &day.files {
                for batch in storage.read_parquet(&file.key).await.expect("read") {
                    events.extend(ctrflow_schemas::events_from_batch(&batch).expect("events"));
                }
            }
        }
        events.sort_by_key(|e| (e.event_time.0, e.item_id.0));
        events
    }

    fn histories(events: &[Event]) -> Vec<Vec<ItemId>> {
        events.iter().map(|e| e.hist_item_ids.clone()).collect()
    }

    #[tokio::test]
    async fn liked_and_signed_histories_use_feedback_from_earlier_seconds_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        // User 7: likes 3 at t=100, dislikes 2 at t=150, likes 1 at t=300 and, in the same
        // second, rates 2 again (a second rating row of the same user).
        write_dataset(
            dir.path(),
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
             7\t3\t5\t100\n7\t2\t1\t150\n7\t1\t4\t300\n7\t2\t2\t300\n",
            ITEMS,
        );
        let liked = import_first_day(
            dir.path(),
            MovielensOptions {
                history: MovielensHistory::Liked,
                ..MovielensOptions::default()
            },
        )
        .await;
        // t=100: nothing before; t=150: the like of 3; t=300 (both rows): still only 3 - the
        // dislike of 2 is not a behaviour and the like of 1 in the same second is not seen.
        let (i2, i3) = (ItemId(2), ItemId(3));
        assert_eq!(
            histories(&liked),
            vec![vec![], vec![i3], vec![i3], vec![i3]]
        );

        // Signed: every rating from earlier seconds, the dislike as its own token.
        let signed = import_first_day(
            dir.path(),
            MovielensOptions {
                history: MovielensHistory::Signed,
                ..MovielensOptions::default()
            },
        )
        .await;
        let disliked_2 = disliked_token(i2);
        assert_ne!(disliked_2, i2);
        assert_eq!(
            histories(&signed),
            vec![vec![], vec![i3], vec![disliked_2, i3], vec![disliked_2, i3]]
        );
    }

    #[tokio::test]
    async fn same_domain_history_keeps_natural_ratings_out_of_ad_sequences() {
        let dir = tempfile::tempdir().expect("tempdir");
        // User 7 rates 3 and 2 (natural), then 1 (ad), then 3 again.
        write_dataset(
            dir.path(),
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
             7\t3\t5\t100\n7\t2\t2\t200\n7\t1\t4\t300\n7\t3\t4\t400\n",
            ITEMS,
        );
        let events = import_first_day(
            dir.path(),
            MovielensOptions {
                history_domains: HistoryDomains::Same,
                ..MovielensOptions::default()
            },
        )
        .await;
        // The ad event (t=300) sees no natural rating; the last natural one skips the ad.
        assert_eq!(
            histories(&events),
            vec![vec![], vec![ItemId(3)], vec![], vec![ItemId(2), ItemId(3)]]
        );
        assert_eq!(events[2].domain, Domain::Ad);
    }
}
