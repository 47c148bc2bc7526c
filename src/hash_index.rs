//! TODO: hash_index
