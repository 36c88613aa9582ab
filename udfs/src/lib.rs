//! heatsql's SQL surface.
//!
//! * [`convert`]: a rank's stream of Arrow batches → a row-split [`engine::DNDarray`]
//!   (rows × columns, split 0), and a DNDarray's local rows → Arrow batches with pass-through
//!   ("keep") columns.
//!
//! * [`exchange`]: MPI exchanges for plain SQL (shuffle, gather) and the stage-wise execution of
//!   a distributed plan.
//!
//! * [`settings`]: the `heatsql.` session settings (`SET heatsql.progress = false`).
//!
//! * [`functions`]: the table functions (`pca`, `pca_project`, `kmeans`, `kmeans_predict`,
//!   `svd`, `matmul`, `dmd`): their registry, planning, arguments and collective physical node.
//!
//! * [`agree`]: errors agreed over the ranks with their kind ([`agree::AgreedError`]).

pub mod agree;
pub mod convert;
pub mod exchange;
pub mod functions;
pub mod settings;
