//! The error type of the schemas crate.

use thiserror::Error;

/// Everything that can go wrong while interpreting ctrflow data. Every variant names what failed
/// (field, column, key) so that an operator can find it.
#[derive(Debug, Error)]
pub enum SchemaError {
    /// A JSON event could not be parsed (syntax, missing field, wrong type).
    #[error("malformed event JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A wire message or file declares a schema version this build does not understand.
    #[error("unsupported event schema version {found} (this build reads version {supported})")]
    UnsupportedSchemaVersion {
        /// The version found in the input.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A field holds a value outside its domain (e.g. label 7, an unknown domain name).
    #[error("invalid value for field `{field}`: {reason}")]
    InvalidField {
        /// The offending field.
        field: &'static str,
        /// Why the value is invalid.
        reason: String,
    },
    /// A record batch lacks a column or has it with the wrong type.
    #[error("column `{column}`: {reason}")]
    Column {
        /// The column name.
        column: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Arrow refused to build a batch.
    #[error("arrow error while {context}: {source}")]
    Arrow {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        source: arrow::error::ArrowError,
    },
    /// A manifest could not be read.
    #[error("manifest `{key}`: {reason}")]
    Manifest {
        /// The object key of the manifest (or a description of its origin).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A string could not be parsed into a typed id.
    #[error("cannot parse {what} from `{input}`: {reason}")]
    Parse {
        /// Which type was being parsed.
        what: &'static str,
        /// The input text.
        input: String,
        /// Why it failed.
        reason: String,
    },
}
