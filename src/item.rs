//! TODO: item
