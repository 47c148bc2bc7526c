//! TODO: partition
