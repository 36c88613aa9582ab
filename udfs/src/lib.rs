//! heatsql's SQL surface: table functions (`pca`, `kmeans`, `svd`, `dmd`, `matmul`, …) as plan
//! nodes, and the MPI exchange operators for plain SQL.
//!
//! Not built yet: issues #4 (exchanges) and #6 (the table-function framework) fill this crate.
