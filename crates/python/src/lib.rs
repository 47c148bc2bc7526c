//! `earthcatalog._native`: the Python package's native module.
//!
//! Glue only: every function hands its arguments to the library (or to the command line, for
//! the commands the Python API runs by name) and converts the result. The Python package
//! (`python/earthcatalog`) wraps these in the documented API; nothing here is public API.
//!
//! - Every call releases the GIL while Rust works ([`Python::detach`]) and runs its futures on
//!   one multi-threaded tokio runtime shared by the process ([`runtime`]).
//! - A library error becomes the exception class `earthcatalog.errors.<Kind::name>` with the
//!   library's message ([`raise`]).
//! - Search results cross as JSON text a page at a time (parsed by Python's C JSON parser), or
//!   as Arrow record batches through the Arrow PyCapsule stream interface (no copy).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{RecordBatch, RecordBatchIterator};
use earthcatalog::cli::Progress;
use earthcatalog::clock::SystemClock;
use earthcatalog::error::Kind;
use earthcatalog::lock::{CatalogLock, DEFAULT_TTL_HOURS, LockOptions, RenewingLock, lock_url};
use earthcatalog::query::{
    ArgStyle, DEFAULT_BATCH_ROWS, Found, SearchParams, SearchRequest, SearchStats,
    Warehouse as Reader, parse_datetime, parse_geometry,
};
use earthcatalog::report::Reporter;
use earthcatalog::store::{Location, S3Options};
use futures::StreamExt;
use futures::stream::BoxStream;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule, PyDict};
use std::sync::Arc;

/// The runtime every call's futures run on (started on first use, kept for the process).
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("earthcatalog")
                .build()
                .map_err(|e| format!("cannot start the async runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| PyRuntimeError::new_err(e.clone()))
}

/// The S3 settings given by `configure_s3` (`None`: from the environment).
static S3: Mutex<Option<S3Options>> = Mutex::new(None);

fn s3_settings() -> Option<S3Options> {
    match S3.lock() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// The exception of class `earthcatalog.errors.<class>` carrying `message`.
fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    let built = py
        .import("earthcatalog.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|cls| cls.call1((message.clone(),)));
    match built {
        Ok(exc) => PyErr::from_value(exc),
        Err(_) => PyRuntimeError::new_err(message),
    }
}

/// A library error as its Python exception.
fn to_py(py: Python<'_>, err: earthcatalog::Error) -> PyErr {
    raise(py, err.kind().name(), err.to_string())
}

/// Run a future to completion with the GIL released.
fn block_on<T: Send>(
    py: Python<'_>,
    fut: impl std::future::Future<Output = earthcatalog::Result<T>> + Send,
) -> PyResult<T> {
    let rt = runtime()?;
    py.detach(|| rt.block_on(fut)).map_err(|e| to_py(py, e))
}

/// Run the `earthcatalog` command line on `argv` (without the program name) as the binary
/// does, printing to stdout/stderr; returns its exit code.
#[pyfunction]
fn main(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| {
        earthcatalog::cli::main_from(std::iter::once("earthcatalog".to_string()).chain(argv))
    })
}

/// Progress events handed to a Python object's `phase(name, total)`, `advance(n)`,
/// `message(text)` and `finish_phase()` (the package's notebook bars). Advances are summed and
/// handed over at most every [`PyReporter::EVERY`], so a fast loop does not take the GIL per item.
struct PyReporter {
    target: Py<PyAny>,
    pending: AtomicU64,
    last: Mutex<Instant>,
}

impl PyReporter {
    const EVERY: Duration = Duration::from_millis(100);

    fn call<A>(&self, method: &str, args: A)
    where
        A: for<'py> pyo3::call::PyCallArgs<'py>,
    {
        Python::attach(|py| {
            if let Err(e) = self.target.call_method1(py, method, args) {
                // A failing display must not fail the work; Python reports it as unraisable.
                e.write_unraisable(py, Some(self.target.bind(py)));
            }
        });
    }

    fn flush(&self) {
        let n = self.pending.swap(0, Ordering::Relaxed);
        if n > 0 {
            self.call("advance", (n,));
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Instant::now();
        }
    }
}

impl Reporter for PyReporter {
    fn phase(&self, name: &str, total: Option<u64>) {
        self.flush();
        self.call("phase", (name.to_string(), total));
    }

    fn advance(&self, n: u64) {
        self.pending.fetch_add(n, Ordering::Relaxed);
        let due = self
            .last
            .lock()
            .map(|l| l.elapsed() >= Self::EVERY)
            .unwrap_or(true);
        if due {
            self.flush();
        }
    }

    fn message(&self, msg: &str) {
        self.call("message", (msg.to_string(),));
    }

    fn finish_phase(&self) {
        self.flush();
        self.call("finish_phase", ());
    }
}

/// Run one command (`argv` without the program name, usually with `--json`) and return
/// `(exit_code, stdout)`; a failure raises its `earthcatalog.errors` class. `progress`: `False`,
/// `True` (bars on stderr) or an object receiving the events (see [`PyReporter`]).
#[pyfunction]
#[pyo3(signature = (argv, progress=None))]
fn run_command(
    py: Python<'_>,
    argv: Vec<String>,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<(u8, String)> {
    let progress = match progress {
        None => Progress::Hidden,
        Some(p) => match p.extract::<bool>() {
            Ok(true) => Progress::Bars,
            Ok(false) => Progress::Hidden,
            Err(_) => Progress::To(Arc::new(PyReporter {
                target: p.unbind(),
                pending: AtomicU64::new(0),
                last: Mutex::new(Instant::now()),
            })),
        },
    };
    let s3 = s3_settings();
    let args = std::iter::once("earthcatalog".to_string()).chain(argv);
    let result = py.detach(move || earthcatalog::cli::run_captured(args, progress, s3));
    result.map_err(|e| {
        let class = match e.kind {
            Some(kind) => kind.name(),
            None if e.exit_code == 2 => Kind::InvalidArgument.name(),
            None if e.exit_code == 4 => Kind::LockHeld.name(),
            None => "EarthCatalogError",
        };
        raise(py, class, e.message)
    })
}

/// Use these S3 settings (object_store keys, e.g. `region`, `endpoint`, `anonymous`) for every
/// S3 location opened from now on in this process; `None` or `{}` returns to the environment.
#[pyfunction]
#[pyo3(signature = (options=None))]
fn configure_s3(py: Python<'_>, options: Option<Bound<'_, PyDict>>) -> PyResult<()> {
    let mut settings = S3Options::from_env().map_err(|e| to_py(py, e))?;
    let mut any = false;
    if let Some(options) = options {
        for (key, value) in options.iter() {
            let key: String = key.extract()?;
            let value: String = match value.extract::<bool>() {
                Ok(b) => b.to_string(),
                Err(_) => value.str()?.extract()?,
            };
            settings = settings
                .with_setting("storage_options", &key, &value)
                .map_err(|e| to_py(py, e))?;
            any = true;
        }
    }
    let chosen = any.then_some(settings.clone());
    match S3.lock() {
        Ok(mut g) => *g = chosen,
        Err(poisoned) => *poisoned.into_inner() = chosen,
    }
    earthcatalog::store::set_s3_options(settings);
    Ok(())
}

/// A read-only handle on a catalog and its warehouse (search, files, info, stats).
#[pyclass(module = "earthcatalog._native", frozen)]
struct Warehouse {
    inner: Reader,
}

/// The search parameters of the Python API's keyword arguments (already checked by
/// `earthcatalog.search.search_arguments`), and the one of `extra` (page or batch size).
fn search_params(
    py: Python<'_>,
    kwargs: Option<&Bound<'_, PyDict>>,
    extra: &str,
) -> PyResult<(SearchParams, Option<usize>)> {
    let mut p = SearchParams::default();
    let mut size = None;
    let Some(kwargs) = kwargs else {
        return Ok((p, size));
    };
    for (key, value) in kwargs.iter() {
        let key: String = key.extract()?;
        if value.is_none() {
            continue;
        }
        match key.as_str() {
            "intersects" => p.intersects = Some(value.extract()?),
            "bbox" => {
                let v: Vec<f64> = value.extract()?;
                let text: Vec<String> = v.iter().map(f64::to_string).collect();
                p.bbox = Some(text.join(","));
            }
            "datetime" => p.datetime = Some(value.extract()?),
            "ids" => p.ids = value.extract()?,
            "collections" => p.collections = value.extract()?,
            "filter" => p.filter = Some(value.extract()?),
            "filter_lang" => p.filter_lang = Some(value.extract()?),
            "sortby" => p.sortby = Some(value.extract()?),
            "max_items" => p.max_items = Some(value.extract()?),
            "limit" => p.limit = Some(value.extract()?),
            "fields" => p.fields = Some(value.extract()?),
            "with_grid_partition" => p.with_grid_partition = value.extract()?,
            k if k == extra => size = Some(value.extract()?),
            other => {
                return Err(to_py(
                    py,
                    earthcatalog::Error::invalid_argument(other, "not a search parameter"),
                ));
            }
        }
    }
    Ok((p, size))
}

/// One search's items, a page of JSON text at a time.
#[pyclass(module = "earthcatalog._native")]
struct SearchPages {
    items: Mutex<Option<BoxStream<'static, earthcatalog::Result<Found>>>>,
    stats: std::sync::Arc<SearchStats>,
    page_size: usize,
}

#[pymethods]
impl SearchPages {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next page: a JSON array of up to `page_size` items (bytes), or `StopIteration`.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        let taken = match self.items.lock() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(mut items) = taken else {
            return Ok(None);
        };
        let size = self.page_size;
        let page = block_on(py, async move {
            let mut out = Vec::with_capacity(64 << 10);
            out.push(b'[');
            let mut n = 0usize;
            while n < size {
                match items.next().await {
                    Some(found) => {
                        if n > 0 {
                            out.push(b',');
                        }
                        found?.write_json(&mut out, None);
                        n += 1;
                    }
                    None => break,
                }
            }
            out.push(b']');
            let more = n == size;
            Ok((out, n, more.then_some(items)))
        })?;
        let (bytes, n, rest) = page;
        match self.items.lock() {
            Ok(mut g) => *g = rest,
            Err(poisoned) => *poisoned.into_inner() = rest,
        }
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(PyBytes::new(py, &bytes).unbind()))
    }

    /// The search's counters so far (files, row groups, rows scanned and matched, ...).
    fn stats(&self) -> PyResult<String> {
        serde_json::to_string(&self.stats.snapshot())
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }
}

/// Record batches exported through the Arrow PyCapsule stream interface.
#[pyclass(module = "earthcatalog._native")]
struct ArrowBatches {
    schema: arrow_schema::SchemaRef,
    batches: Mutex<Option<Vec<RecordBatch>>>,
}

#[pymethods]
impl ArrowBatches {
    /// Export the batches as an `ArrowArrayStream` capsule (once; the consumer takes them).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let batches = match self.batches.lock() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
        .ok_or_else(|| PyRuntimeError::new_err("the Arrow stream was already consumed"))?;
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), self.schema.clone());
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, c"arrow_array_stream")
    }

    /// Rows in all batches.
    fn num_rows(&self) -> usize {
        match self.batches.lock() {
            Ok(g) => g
                .as_ref()
                .map_or(0, |b| b.iter().map(|b| b.num_rows()).sum()),
            Err(_) => 0,
        }
    }
}

#[pymethods]
impl Warehouse {
    /// Open the catalog at `catalog` read-only (`warehouse`: default from the table location).
    #[staticmethod]
    #[pyo3(signature = (catalog, warehouse=None))]
    fn open(py: Python<'_>, catalog: String, warehouse: Option<String>) -> PyResult<Self> {
        let inner = block_on(py, async move {
            Reader::open(&catalog, warehouse.as_deref()).await
        })?;
        Ok(Self { inner })
    }

    /// The catalog report (`info`) as JSON text.
    fn info(&self, py: Python<'_>) -> PyResult<String> {
        let wh = self.inner.clone();
        let info = block_on(py, async move { wh.info().await })?;
        json_text(&info)
    }

    /// Rows, files and bytes per (cell, year) as JSON text.
    fn stats(&self, py: Python<'_>) -> PyResult<String> {
        let wh = self.inner.clone();
        let stats = block_on(py, async move { wh.stats().await })?;
        json_text(&stats)
    }

    /// The table's grid: `("h3", resolution)` or `("geojson", None)`, from its properties.
    fn grid(&self) -> (String, Option<u8>) {
        match self.inner.grid() {
            earthcatalog::grid::GridConfig::H3 { resolution } => ("h3".into(), Some(*resolution)),
            earthcatalog::grid::GridConfig::GeoJson { .. } => ("geojson".into(), None),
        }
    }

    /// The warehouse root URL (`None` when no table exists yet).
    fn warehouse(&self) -> Option<String> {
        self.inner.warehouse().map(str::to_string)
    }

    /// The cells (partition keys) a geometry (GeoJSON or WKT text) touches.
    fn cells(&self, py: Python<'_>, geometry: String) -> PyResult<Vec<String>> {
        let wh = self.inner.clone();
        let cells = block_on(py, async move {
            let g = parse_geometry(&geometry, "geometry")?;
            wh.cells_for_geometry(&g).await
        })?;
        Ok(cells.into_iter().collect())
    }

    /// Data files that can hold items of a region (GeoJSON or WKT text) and time range.
    #[pyo3(signature = (geometry=None, start=None, end=None))]
    fn files(
        &self,
        py: Python<'_>,
        geometry: Option<String>,
        start: Option<String>,
        end: Option<String>,
    ) -> PyResult<Vec<String>> {
        let wh = self.inner.clone();
        block_on(py, async move {
            let g = geometry
                .map(|g| parse_geometry(&g, "geometry"))
                .transpose()?;
            let start = start
                .map(|s| parse_datetime(&s, "start_datetime"))
                .transpose()?;
            let end = end
                .map(|s| parse_datetime(&s, "end_datetime"))
                .transpose()?;
            wh.file_paths(g.as_ref(), start, end).await
        })
    }

    /// Search with the keyword arguments of `ItemSearch`; items come a page (a JSON array of
    /// up to `page_size` items, default 1000) at a time.
    #[pyo3(signature = (**kwargs))]
    fn search(&self, py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<SearchPages> {
        let (params, page_size) = search_params(py, kwargs, "page_size")?;
        let wh = self.inner.clone();
        let (items, stats) = block_on(py, async move {
            let req = SearchRequest {
                json_text_members: true,
                ..params.request(ArgStyle::Keywords)?
            };
            wh.search_found(&req).await
        })?;
        Ok(SearchPages {
            items: Mutex::new(Some(items)),
            stats,
            page_size: page_size.unwrap_or(1000).max(1),
        })
    }

    /// Search; every item as a row of the table's columns in Arrow record batches of up to
    /// `batch_rows` rows (default 10,000).
    #[pyo3(signature = (**kwargs))]
    fn search_arrow(
        &self,
        py: Python<'_>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<ArrowBatches> {
        let (params, batch_rows) = search_params(py, kwargs, "batch_rows")?;
        let wh = self.inner.clone();
        let (schema, batches) = block_on(py, async move {
            let req = params.request(ArgStyle::Keywords)?;
            let (schema, stream) = wh
                .search_batches(&req, batch_rows.unwrap_or(DEFAULT_BATCH_ROWS))
                .await?;
            let batches: Vec<RecordBatch> = stream
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<earthcatalog::Result<_>>()?;
            Ok((schema, batches))
        })?;
        Ok(ArrowBatches {
            schema,
            batches: Mutex::new(Some(batches)),
        })
    }
}

/// A catalog lock this process holds, renewed in the background until released.
#[pyclass(module = "earthcatalog._native")]
struct HeldLock {
    lock: Mutex<Option<RenewingLock>>,
    url: String,
    payload: String,
}

#[pymethods]
impl HeldLock {
    /// Take the lock of `catalog` (`.lock` beside it) or the object `lock_key`; a fresh lock
    /// of someone else raises `LockHeld`.
    #[staticmethod]
    #[pyo3(signature = (catalog, owner, ttl_hours=DEFAULT_TTL_HOURS, lock_key=None))]
    fn acquire(
        py: Python<'_>,
        catalog: String,
        owner: String,
        ttl_hours: f64,
        lock_key: Option<String>,
    ) -> PyResult<Self> {
        let (held, url, payload) = block_on(py, async move {
            let url = lock_url(&catalog, lock_key.as_deref())?;
            let location = Location::parse(&url)?;
            let options = LockOptions::new(owner).with_ttl_hours(ttl_hours);
            let lock = CatalogLock::acquire(&location, options, Arc::new(SystemClock)).await?;
            let payload = lock.payload().to_json();
            let every = lock.renewal_interval();
            Ok((lock.spawn_renewal(every), url, payload))
        })?;
        Ok(Self {
            lock: Mutex::new(Some(held)),
            url,
            payload,
        })
    }

    /// Release the lock (only if it is still ours); a second call does nothing.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let taken = match self.lock.lock() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        match taken {
            Some(lock) => block_on(py, async move { lock.release().await }),
            None => Ok(()),
        }
    }

    /// Whether this handle still holds the lock (not released).
    fn held(&self) -> bool {
        self.lock.lock().map(|g| g.is_some()).unwrap_or(false)
    }

    /// The lock object's URL.
    #[getter]
    fn url(&self) -> String {
        self.url.clone()
    }

    /// The payload written when the lock was taken (JSON text).
    #[getter]
    fn payload(&self) -> String {
        self.payload.clone()
    }
}

fn json_text<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(main, m)?)?;
    m.add_function(wrap_pyfunction!(run_command, m)?)?;
    m.add_function(wrap_pyfunction!(configure_s3, m)?)?;
    m.add_class::<Warehouse>()?;
    m.add_class::<SearchPages>()?;
    m.add_class::<ArrowBatches>()?;
    m.add_class::<HeldLock>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
