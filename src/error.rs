//! The library's error type.
//!
//! Every variant names the object, key, partition or table that failed so a user can act on it,
//! and [`Error::is_retryable`] tells callers whether trying again can help.

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in earthcatalog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A location string could not be turned into an object store.
    #[error("invalid location {location:?}: {reason}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An object store operation failed.
    #[error("object store error on {location}: {source}")]
    Store {
        /// The URL or key involved.
        location: String,
        /// The underlying error.
        #[source]
        source: object_store::Error,
    },
    /// A local file operation failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The local path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An inventory file could not be read.
    #[error("inventory {location}: {reason}")]
    Inventory {
        /// The inventory file or manifest.
        location: String,
        /// What was wrong.
        reason: String,
    },
    /// A Parquet file could not be read or written.
    #[error("parquet error on {location}: {source}")]
    Parquet {
        /// The file involved.
        location: String,
        /// The underlying error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// An Arrow operation failed while building or reading a batch.
    #[error("arrow error on {context}: {source}")]
    Arrow {
        /// What was being built or read.
        context: String,
        /// The underlying error.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// An Iceberg catalog operation failed.
    #[error("iceberg catalog error ({context}): {source}")]
    Iceberg {
        /// The table or operation involved.
        context: String,
        /// The underlying error.
        #[source]
        source: iceberg::Error,
    },
    /// A SQL operation on the catalog database failed.
    #[error("catalog database {location}: {source}")]
    Sql {
        /// The catalog database.
        location: String,
        /// The underlying error.
        #[source]
        source: sqlx::Error,
    },
    /// The catalog lock is held by someone else.
    #[error(
        "catalog is locked by {owner} on {hostname} (pid {pid}) since {acquired}; the lock at {key} expires in {remaining}"
    )]
    Locked {
        /// Lock object key.
        key: String,
        /// Owner string of the holder.
        owner: String,
        /// Host of the holder.
        hostname: String,
        /// Process id of the holder.
        pid: i64,
        /// When the holder acquired it (ISO-8601).
        acquired: String,
        /// Human readable time until the lock becomes stale.
        remaining: String,
    },
    /// We lost the lock (it was taken over or deleted while we held it).
    #[error("lost the catalog lock at {key}: {reason}")]
    LockLost {
        /// Lock object key.
        key: String,
        /// What happened.
        reason: String,
    },
    /// Someone else committed to the table between our read and our write.
    #[error("commit conflict on table {table}: the catalog changed underneath us")]
    CommitConflict {
        /// Table identifier.
        table: String,
    },
    /// A file to be replaced is not a live data file of the table's current snapshot.
    #[error("cannot replace files in table {table}: not live in the current snapshot: {}", paths.join(", "))]
    NotLive {
        /// Table identifier.
        table: String,
        /// The paths that are not live.
        paths: Vec<String>,
    },
    /// Configuration is invalid or contradicts the existing catalog.
    #[error("configuration error: {0}")]
    Config(String),
    /// A geometry given by the user (query or boundaries file) is invalid.
    #[error("invalid geometry in {context}: {reason}")]
    Geometry {
        /// Where the geometry came from.
        context: String,
        /// What was wrong.
        reason: String,
    },
    /// A JSON or YAML document could not be parsed.
    #[error("cannot parse {location}: {reason}")]
    Parse {
        /// The document.
        location: String,
        /// The parser's message.
        reason: String,
    },
    /// A fault injected by a test (see `EARTHCATALOG_FAULT`).
    #[error("injected fault at {0}")]
    InjectedFault(String),
}

impl Error {
    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Store { source, .. } => store_error_retryable(source),
            Error::Iceberg { source, .. } => source.retryable(),
            Error::CommitConflict { .. } => true,
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut
            ),
            _ => false,
        }
    }

    /// Shorthand for a store error on `location`.
    pub fn store(location: impl Into<String>, source: object_store::Error) -> Self {
        Error::Store {
            location: location.into(),
            source,
        }
    }

    /// Shorthand for an iceberg error with context.
    pub fn iceberg(context: impl Into<String>, source: iceberg::Error) -> Self {
        Error::Iceberg {
            context: context.into(),
            source,
        }
    }

    /// Shorthand for a parquet error on `location`.
    pub fn parquet(location: impl Into<String>, source: parquet::errors::ParquetError) -> Self {
        Error::Parquet {
            location: location.into(),
            source,
        }
    }

    /// Shorthand for an arrow error with context.
    pub fn arrow(context: impl Into<String>, source: arrow_schema::ArrowError) -> Self {
        Error::Arrow {
            context: context.into(),
            source,
        }
    }

    /// Shorthand for an inventory error.
    pub fn inventory(location: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Inventory {
            location: location.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for a local I/O error.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Whether an object store error is worth retrying (throttling, 5xx, timeouts, connection resets).
pub fn store_error_retryable(err: &object_store::Error) -> bool {
    use object_store::Error as E;
    match err {
        E::NotFound { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. }
        | E::NotModified { .. }
        | E::NotImplemented { .. }
        | E::NotSupported { .. }
        | E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::InvalidPath { .. }
        | E::UnknownConfigurationKey { .. } => false,
        E::Generic { source, .. } => {
            let msg = source.to_string().to_ascii_lowercase();
            !(msg.contains("403") || msg.contains("forbidden") || msg.contains("404"))
        }
        _ => true,
    }
}
