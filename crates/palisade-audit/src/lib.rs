//! The tamper-evident audit log: events become canonical leaves of an RFC 6962
//! Merkle tree, stored append-only with every subtree hash and a signed checkpoint
//! per append, so inclusion and consistency proofs are O(log n) reads and any change
//! to stored data is detected by `Verifier`.

pub mod checkpoint;
pub mod event;
pub mod export;
pub mod forward;
pub mod log;
pub mod merkle;
pub mod pii;
pub mod spool;
pub mod store;
pub mod verify;
