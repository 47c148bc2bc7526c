//! TODO: synth
