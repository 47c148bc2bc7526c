//! TODO: geoparquet
