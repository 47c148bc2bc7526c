//! Inventory readers.
