//! palisade-audit

pub mod checkpoint;
pub mod merkle;
