//! heatsql's SQL surface.
//!
//! * [`convert`]: a rank's stream of Arrow batches → a row-split [`engine::DNDarray`]
//!   (rows × columns, split 0), and a DNDarray's local rows → Arrow batches with pass-through
//!   ("keep") columns.
//!
//! The table functions (`pca`, `kmeans`, …) and the MPI exchange operators for plain SQL come
//! with issues #6 and #4.

pub mod convert;
