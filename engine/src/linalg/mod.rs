//! Distributed linear algebra on row-split DNDarrays.
//!
//! * [`tsqr`]: QR of a tall-skinny (n × d, rows split) array: R replicated, Q row-split.
//! * [`sign`]: the project's sign convention for singular and principal vectors.

pub mod sign;
pub mod tsqr;

pub use sign::flip_signs;
pub use tsqr::{tsqr, tsqr_r};
