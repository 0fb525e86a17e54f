//! Parquet helpers: write-once Parquet objects and streaming reads over the object store.
//!
//! A file is encoded completely in memory ([`encode_parquet`], or batch by batch with a
//! [`ParquetEncoder`]) and then stored with
//! [`Storage::put_once`], so it is either fully visible or absent, never half-written, and a
//! replay of the same batches is idempotent. Callers bound memory and file size by rolling to a
//! new file every N rows / bytes (the landing sink does this on barriers).
//!
//! Reads go through a small [`AsyncFileReader`] over the store that fetches the footer and then
//! only the column chunks it needs, so large files are never loaded whole.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::{Ctx, Result};
use crate::open::Storage;
use crate::ops::{PutOutcome, object_path};

/// Key used in errors from [`encode_parquet`], which has no object key.
const IN_MEMORY: &str = "<in-memory>";

/// Footer bytes fetched in the first request when reading metadata.
const FOOTER_PREFETCH: usize = 64 * 1024;

/// Values a column writer takes between its page-size checks: 8x the parquet crate's default,
/// for 3-4% less encode time on landing files (`operators/benches/landing_encode.rs`); a page
/// can then pass its size limit by at most this many values.
const WRITE_BATCH_VALUES: usize = 8 * 1024;

/// Compression codec for written Parquet files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCompression {
    /// Zstandard at the given level (1..=22). The default, at level 3.
    Zstd(i32),
    /// Snappy.
    Snappy,
    /// No compression.
    Uncompressed,
}

/// How [`encode_parquet`] and [`Storage::write_parquet`] encode a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetWriteOptions {
    /// Compression codec. Default zstd level 3.
    pub compression: ParquetCompression,
    /// Maximum rows per row group. Default 65,536.
    pub max_row_group_rows: usize,
    /// Dictionary encoding. Default on.
    pub dictionary: bool,
    /// Parquet leaf columns written without a dictionary even when `dictionary` is on, as
    /// dot-separated paths (`event_id`; a list's values are `<column>.list.item`): columns
    /// whose values are (nearly) all distinct, where building a dictionary costs a hash probe
    /// per value and is then abandoned once it outgrows its page, or values that compress as
    /// well without one. Default none.
    pub plain_columns: Vec<String>,
    /// Page-level statistics (min/max, null counts) for pruning. Default on.
    pub statistics: bool,
    /// Parquet leaf columns (dot-separated paths, as in `plain_columns`) written without
    /// statistics even when `statistics` is on: values no reader prunes by, where the min/max
    /// per page only costs time. Default none.
    pub unindexed_columns: Vec<String>,
    /// Key-value pairs stored in the file footer (e.g. schema hash, writer version).
    pub key_value_metadata: Vec<(String, String)>,
}

impl Default for ParquetWriteOptions {
    fn default() -> Self {
        ParquetWriteOptions {
            compression: ParquetCompression::Zstd(3),
            max_row_group_rows: 64 * 1024,
            dictionary: true,
            plain_columns: Vec::new(),
            statistics: true,
            unindexed_columns: Vec::new(),
            key_value_metadata: Vec::new(),
        }
    }
}

impl ParquetWriteOptions {
    /// The parquet writer's properties for these options (what [`encode_parquet`] writes with).
    pub fn writer_properties(&self) -> Result<WriterProperties, ParquetError> {
        let compression = match self.compression {
            ParquetCompression::Zstd(level) => Compression::ZSTD(ZstdLevel::try_new(level)?),
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
        };
        let statistics = if self.statistics {
            EnabledStatistics::Page
        } else {
            EnabledStatistics::None
        };
        let kv = (!self.key_value_metadata.is_empty()).then(|| {
            self.key_value_metadata
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .collect()
        });
        let mut builder = WriterProperties::builder()
            .set_write_batch_size(WRITE_BATCH_VALUES)
            .set_compression(compression)
            .set_max_row_group_row_count(Some(self.max_row_group_rows.max(1)))
            .set_dictionary_enabled(self.dictionary)
            .set_statistics_enabled(statistics)
            .set_key_value_metadata(kv);
        for column in &self.plain_columns {
            builder = builder.set_column_dictionary_enabled(leaf_path(column), false);
        }
        for column in &self.unindexed_columns {
            builder =
                builder.set_column_statistics_enabled(leaf_path(column), EnabledStatistics::None);
        }
        Ok(builder.build())
    }
}

/// The Parquet column path of a dot-separated leaf name (`item_content.list.item`).
fn leaf_path(dotted: &str) -> ColumnPath {
    ColumnPath::new(dotted.split('.').map(str::to_string).collect())
}

/// A Parquet file written by [`Storage::write_parquet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Key relative to the store root.
    pub key: String,
    /// Rows in the file.
    pub rows: u64,
    /// Encoded size in bytes.
    pub bytes: u64,
    /// Whether the file was created now or already existed with identical bytes.
    pub outcome: PutOutcome,
}

/// Encode `batches` (all with schema `schema`) as one Parquet file in memory.
///
/// CPU-heavy for large inputs: call it from a blocking thread (as [`Storage::write_parquet`]
/// does). The whole file is held in memory; callers bound its size by rolling to a new file.
/// An empty `batches` gives a valid file with zero rows. Encoding is deterministic, so a replay of
/// the same batches yields the same bytes (and [`Storage::put_once`] treats it as idempotent).
pub fn encode_parquet(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    opts: &ParquetWriteOptions,
) -> Result<Bytes> {
    encode(schema, batches, opts).map_err(encoding_error)
}

/// [`encode_parquet`] with the parquet error left for the caller to put in context.
fn encode(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    opts: &ParquetWriteOptions,
) -> Result<Bytes, ParquetError> {
    let mut encoder = ParquetEncoder::try_new(schema, opts)?;
    for batch in batches {
        encoder.try_write(batch)?;
    }
    encoder.try_finish()
}

/// One Parquet file encoded in memory a batch at a time: the streaming form of
/// [`encode_parquet`], for writers that receive rows over time (the ingest landing sink encodes
/// each part while its epoch is open instead of all at the epoch's end).
///
/// Pages are encoded and compressed as they fill and row groups are flushed at
/// [`ParquetWriteOptions::max_row_group_rows`], so the encoder holds the compressed file so far
/// plus one open page per column, not the rows it was given. Writing the same batches in the
/// same order gives the same bytes as [`encode_parquet`]. CPU-heavy: call it from a blocking
/// thread. Nothing is stored until the caller puts [`ParquetEncoder::finish`]'s bytes.
pub struct ParquetEncoder {
    writer: ArrowWriter<Vec<u8>>,
    rows: u64,
}

impl std::fmt::Debug for ParquetEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetEncoder")
            .field("rows", &self.rows)
            .field("bytes_written", &self.writer.bytes_written())
            .finish()
    }
}

fn encoding_error(e: ParquetError) -> crate::StorageError {
    Ctx {
        op: "encode_parquet",
        key: IN_MEMORY,
    }
    .parquet(e)
}

impl ParquetEncoder {
    /// Starts an empty file of `schema` encoded with `opts`.
    pub fn new(schema: &SchemaRef, opts: &ParquetWriteOptions) -> Result<Self> {
        Self::try_new(schema, opts).map_err(encoding_error)
    }

    /// Appends the rows of `batch` (which must have the file's schema).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.try_write(batch).map_err(encoding_error)
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes the open row group, writes the footer and returns the whole file.
    pub fn finish(self) -> Result<Bytes> {
        self.try_finish().map_err(encoding_error)
    }

    fn try_new(schema: &SchemaRef, opts: &ParquetWriteOptions) -> Result<Self, ParquetError> {
        let props = opts.writer_properties()?;
        let writer = ArrowWriter::try_new(Vec::new(), Arc::clone(schema), Some(props))?;
        Ok(ParquetEncoder { writer, rows: 0 })
    }

    fn try_write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        self.writer.write(batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn try_finish(self) -> Result<Bytes, ParquetError> {
        Ok(Bytes::from(self.writer.into_inner()?))
    }
}

/// An [`AsyncFileReader`] over one object of known size.
#[derive(Debug, Clone)]
struct StoreReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some(FOOTER_PREFETCH))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

impl Storage {
    /// Encode `batches` on a blocking thread and store them under the write-once key `key`.
    ///
    /// See [`encode_parquet`] and [`Storage::put_once`]: the file is never half-visible, an
    /// identical replay is `PutOutcome::AlreadyExisted`, different content under an existing key
    /// is a `WriteOnceViolation`.
    pub async fn write_parquet(
        &self,
        key: &str,
        schema: &SchemaRef,
        batches: &[RecordBatch],
        opts: &ParquetWriteOptions,
    ) -> Result<WrittenFile> {
        let ctx = Ctx {
            op: "write_parquet",
            key,
        };
        object_path(ctx, key)?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let (schema, batches, opts) = (Arc::clone(schema), batches.to_vec(), opts.clone());
        let bytes = tokio::task::spawn_blocking(move || encode(&schema, &batches, &opts))
            .await
            .map_err(|e| ctx.internal(format!("parquet encoding task failed: {e}")))?
            .map_err(|e| ctx.parquet(e))?;
        let size = bytes.len() as u64;
        let outcome = self.put_once(key, bytes).await?;
        Ok(WrittenFile {
            key: key.to_string(),
            rows,
            bytes: size,
            outcome,
        })
    }

    /// Read a whole Parquet object into memory (for small files; see
    /// [`Storage::parquet_stream`] for large ones).
    pub async fn read_parquet(&self, key: &str) -> Result<Vec<RecordBatch>> {
        self.parquet_stream(key, 8192).await?.try_collect().await
    }

    /// Stream the record batches of a Parquet object, `batch_size` rows at a time, fetching
    /// only the byte ranges it needs. A missing key is [`crate::StorageError::NotFound`].
    pub async fn parquet_stream(
        &self,
        key: &str,
        batch_size: usize,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let ctx = Ctx {
            op: "parquet_stream",
            key,
        };
        let reader = self.parquet_reader(ctx).await?;
        let stream = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(|e| ctx.parquet(e))?
            .with_batch_size(batch_size.max(1))
            .build()
            .map_err(|e| ctx.parquet(e))?;
        let owned = key.to_string();
        Ok(stream
            .map_err(move |e| {
                Ctx {
                    op: "parquet_stream",
                    key: &owned,
                }
                .parquet(e)
            })
            .boxed())
    }

    /// Number of rows of a Parquet object, read from its footer only.
    pub async fn parquet_row_count(&self, key: &str) -> Result<u64> {
        let ctx = Ctx {
            op: "parquet_row_count",
            key,
        };
        let mut reader = self.parquet_reader(ctx).await?;
        let metadata = reader
            .get_metadata(None)
            .await
            .map_err(|e| ctx.parquet(e))?;
        let rows = metadata.file_metadata().num_rows();
        u64::try_from(rows)
            .map_err(|_| ctx.internal(format!("negative row count {rows} in footer")))
    }

    async fn parquet_reader(&self, ctx: Ctx<'_>) -> Result<StoreReader> {
        let path = object_path(ctx, ctx.key)?;
        let meta = self.store.head(&path).await.map_err(|e| ctx.store(e))?;
        Ok(StoreReader {
            store: Arc::clone(&self.store),
            path,
            size: meta.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, ListArray, RecordBatch};
    use arrow::buffer::OffsetBuffer;
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    /// Rows handed to a `ParquetEncoder` over several writes come back whole and in order,
    /// across row groups, and the file equals `encode_parquet` of the same batches.
    #[test]
    fn an_encoder_fed_batch_by_batch_writes_the_same_file_as_encode_parquet() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batches: Vec<RecordBatch> = (0..5)
            .map(|b| {
                let values = Int64Array::from_iter_values(b * 300..(b + 1) * 300);
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(values)]).expect("batch")
            })
            .collect();
        let opts = ParquetWriteOptions {
            max_row_group_rows: 700,
            ..ParquetWriteOptions::default()
        };
        let mut encoder = ParquetEncoder::new(&schema, &opts).expect("encoder");
        for batch in &batches {
            encoder.write(batch).expect("write");
        }
        assert_eq!(encoder.rows(), 1500);
        let streamed = encoder.finish().expect("finish");
        assert_eq!(
            streamed,
            encode_parquet(&schema, &batches, &opts).expect("encode")
        );
        let reader = SerializedFileReader::new(streamed.clone()).expect("read");
        assert_eq!(
            reader.metadata().num_row_groups(),
            3,
            "row groups of 700 rows"
        );
        let back: Vec<i64> =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(streamed, 1024)
                .expect("reader")
                .flat_map(|b| {
                    let b = b.expect("batch");
                    b.column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("i64")
                        .values()
                        .to_vec()
                })
                .collect();
        assert_eq!(back, (0..1500).collect::<Vec<i64>>());
    }

    /// `plain_columns` turns the dictionary off and `unindexed_columns` the statistics for the
    /// named leaves only, a list's values included (`<column>.list.item`).
    #[test]
    fn plain_and_unindexed_columns_apply_to_the_named_leaves_only() {
        let item = Arc::new(Field::new("item", DataType::Int64, false));
        let schema = Arc::new(Schema::new(vec![
            Field::new("unique", DataType::Int64, false),
            Field::new("repeated", DataType::Int64, false),
            Field::new("ids", DataType::List(Arc::clone(&item)), false),
        ]));
        let ids = ListArray::new(
            item,
            OffsetBuffer::from_lengths(std::iter::repeat_n(3, 1000)),
            Arc::new(Int64Array::from_iter_values((0..3000).map(|i| i % 11))),
            None,
        );
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..1000)),
                Arc::new(Int64Array::from_iter_values((0..1000).map(|i| i % 7))),
                Arc::new(ids),
            ],
        )
        .expect("batch");
        // Per leaf: (dictionary-encoded, has min/max statistics).
        let leaves_of = |opts: &ParquetWriteOptions| -> Vec<(bool, bool)> {
            let bytes =
                encode_parquet(&schema, std::slice::from_ref(&batch), opts).expect("encode");
            let reader = SerializedFileReader::new(bytes).expect("read");
            let row_group = reader.metadata().row_group(0);
            row_group
                .columns()
                .iter()
                .map(|c| {
                    (
                        c.encodings().any(|e| e == Encoding::RLE_DICTIONARY),
                        c.statistics().is_some_and(|s| s.min_bytes_opt().is_some()),
                    )
                })
                .collect()
        };
        assert_eq!(
            leaves_of(&ParquetWriteOptions::default()),
            vec![(true, true), (true, true), (true, true)]
        );
        let plain = ParquetWriteOptions {
            plain_columns: vec!["unique".into(), "ids.list.item".into()],
            ..Default::default()
        };
        assert_eq!(
            leaves_of(&plain),
            vec![(false, true), (true, true), (false, true)]
        );
        let unindexed = ParquetWriteOptions {
            unindexed_columns: vec!["ids.list.item".into()],
            ..Default::default()
        };
        assert_eq!(
            leaves_of(&unindexed),
            vec![(true, true), (true, true), (true, false)]
        );
    }
}
