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
    /// An argument (a command-line flag or a request parameter) is invalid; `arg` names it.
    #[error("{arg}: {reason}")]
    InvalidArgument {
        /// The flag or parameter, e.g. `--datetime` or `datetime`.
        arg: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Something the operation needs does not exist (e.g. a mistyped catalog path).
    #[error("{what} {location} does not exist{hint}")]
    NotFound {
        /// What is missing, e.g. `catalog`.
        what: String,
        /// Where it was looked for.
        location: String,
        /// A hint starting with `; `, or empty.
        hint: String,
    },
    /// The operation refused to run because it could lose or hide data; the message says what
    /// to do instead.
    #[error("refusing to {action}: {reason}")]
    Refused {
        /// What was refused.
        action: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// A worker task (decode, merge, encode) panicked or was cancelled.
    #[error("{context}: a worker task failed: {reason}")]
    Task {
        /// What the task was doing.
        context: String,
        /// The panic or cancellation message.
        reason: String,
    },
    /// A table or file is not in the state every earthcatalog writer leaves it in (a corrupt or
    /// foreign catalog, or a bug).
    #[error("{0}")]
    Inconsistent(String),
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

/// What kind of failure an [`Error`] is; the command line turns it into an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Category {
    /// The run failed (I/O, catalog, corrupt input, a failed worker): exit 1.
    Failure,
    /// A usage or configuration error, or a refusal the user must resolve: exit 2.
    Usage,
    /// The catalog lock is held by someone else: exit 4.
    Locked,
}

/// The class of an [`Error`] a caller can act on. The Python package raises the exception class
/// named by [`Kind::name`] (`earthcatalog.errors.<name>`), and [`Error::category`] (the exit
/// code) follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A bad argument, location, geometry or configuration: fix the call.
    InvalidArgument,
    /// Something named does not exist (a catalog, a snapshot, a file).
    NotFound,
    /// The operation refused to run because it could lose or hide data.
    Refused,
    /// The catalog lock is held by someone else.
    LockHeld,
    /// The lock was lost while the operation held it.
    LockLost,
    /// Someone else committed between our read and our write; retrying may succeed.
    CommitConflict,
    /// Object store or local file I/O failed.
    Storage,
    /// The Iceberg catalog or its database failed, or is not as earthcatalog leaves it.
    Catalog,
    /// An input (inventory, Parquet, Arrow, JSON or YAML) could not be read or written.
    Data,
    /// A worker task failed, or a test injected a fault.
    Task,
}

impl Kind {
    /// The kind's name, which is also the Python exception class name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::InvalidArgument => "InvalidArgument",
            Kind::NotFound => "NotFound",
            Kind::Refused => "Refused",
            Kind::LockHeld => "LockHeld",
            Kind::LockLost => "LockLost",
            Kind::CommitConflict => "CommitConflict",
            Kind::Storage => "StorageError",
            Kind::Catalog => "CatalogError",
            Kind::Data => "DataError",
            Kind::Task => "TaskError",
        }
    }
}

impl Error {
    /// The class of the failure, decided by the variant alone.
    pub fn kind(&self) -> Kind {
        match self {
            Error::InvalidLocation { .. }
            | Error::Config(_)
            | Error::InvalidArgument { .. }
            | Error::Geometry { .. } => Kind::InvalidArgument,
            Error::NotFound { .. } => Kind::NotFound,
            Error::Refused { .. } => Kind::Refused,
            Error::Locked { .. } => Kind::LockHeld,
            Error::LockLost { .. } => Kind::LockLost,
            Error::CommitConflict { .. } => Kind::CommitConflict,
            Error::Store { .. } | Error::Io { .. } => Kind::Storage,
            Error::Iceberg { .. }
            | Error::Sql { .. }
            | Error::NotLive { .. }
            | Error::Inconsistent(_) => Kind::Catalog,
            Error::Inventory { .. }
            | Error::Parquet { .. }
            | Error::Arrow { .. }
            | Error::Parse { .. } => Kind::Data,
            Error::Task { .. } | Error::InjectedFault(_) => Kind::Task,
        }
    }

    /// The kind of failure (the exit code's class), decided by [`Error::kind`].
    pub fn category(&self) -> Category {
        match self.kind() {
            Kind::LockHeld => Category::Locked,
            Kind::InvalidArgument | Kind::NotFound | Kind::Refused => Category::Usage,
            _ => Category::Failure,
        }
    }

    /// A worker task's join failure (a panic or a cancellation) while doing `context`.
    pub fn task(context: impl Into<String>, err: tokio::task::JoinError) -> Self {
        if err.is_panic() {
            return Error::panicked(context, err.into_panic());
        }
        Error::Task {
            context: context.into(),
            reason: "cancelled".to_string(),
        }
    }

    /// A worker's panic (its payload) while doing `context`.
    pub fn panicked(context: impl Into<String>, payload: Box<dyn std::any::Any + Send>) -> Self {
        let reason = payload
            .downcast_ref::<&str>()
            .map(|s| format!("panicked: {s}"))
            .or_else(|| {
                payload
                    .downcast_ref::<String>()
                    .map(|s| format!("panicked: {s}"))
            })
            .unwrap_or_else(|| "panicked".to_string());
        Error::Task {
            context: context.into(),
            reason,
        }
    }

    /// Shorthand for an invalid argument.
    pub fn invalid_argument(arg: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            arg: arg.into(),
            reason: reason.into(),
        }
    }

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

/// Whether an object store error is transient, decided by its variant: `Generic` (throttling,
/// 5xx, timeouts, dropped connections — which the store's client has already retried as its
/// [`RetryConfig`](object_store::RetryConfig) allows) and `JoinError` may succeed on a later
/// try; every specific variant (not found, permission denied, precondition, ...) will not.
pub fn store_error_retryable(err: &object_store::Error) -> bool {
    matches!(
        err,
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_decide_categories_and_name_the_python_classes() {
        let cases = [
            (
                Error::invalid_argument("--x", "bad"),
                "InvalidArgument",
                Category::Usage,
            ),
            (
                Error::Config("c".into()),
                "InvalidArgument",
                Category::Usage,
            ),
            (
                Error::NotFound {
                    what: "catalog".into(),
                    location: "c.db".into(),
                    hint: String::new(),
                },
                "NotFound",
                Category::Usage,
            ),
            (
                Error::Locked {
                    key: "k".into(),
                    owner: "o".into(),
                    hostname: "h".into(),
                    pid: 1,
                    acquired: "a".into(),
                    remaining: "r".into(),
                },
                "LockHeld",
                Category::Locked,
            ),
            (
                Error::CommitConflict { table: "t".into() },
                "CommitConflict",
                Category::Failure,
            ),
            (
                Error::Inconsistent("x".into()),
                "CatalogError",
                Category::Failure,
            ),
            (Error::inventory("i", "bad"), "DataError", Category::Failure),
            (
                Error::io("/p", std::io::Error::other("x")),
                "StorageError",
                Category::Failure,
            ),
        ];
        for (err, class, category) in cases {
            assert_eq!(err.kind().name(), class, "{err}");
            assert_eq!(err.category(), category, "{err}");
        }
    }
}
