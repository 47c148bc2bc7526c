//! Spatial grids: footprint → partition keys.
