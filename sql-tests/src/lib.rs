//! heatsql's SQL tests: `.slt` files run under `mpirun` at P = 1..4 with identical results.
//!
//! Not built yet: issue #4 adds the runner and the `.slt` suite.
