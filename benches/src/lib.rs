//! heatsql's benchmarks and scaling report (ratios against baselines measured in the same run).
//!
//! Not built yet: issue #10 adds the one-command report; each function's issue adds its bench.
