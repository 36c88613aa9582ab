//! How a truncated SVD ([`mod@crate::linalg::svd`]) or a PCA ([`crate::ml::pca`]) computes its
//! singular triplets: one [`Solver`] type for both, the defaults of its knobs, and the choice
//! [`Solver::Auto`] stands for ([`auto_svd`], [`auto_pca`]).

/// Extra random directions (randomized) or kept triplets (hierarchical) beyond k, unless given.
pub const DEFAULT_OVERSAMPLES: i64 = 10;

/// Power iterations of the randomized solver, unless given.
pub const DEFAULT_POWER_ITER: i64 = 4;

/// The seed of the randomized solver's test matrix, unless given.
pub const DEFAULT_SEED: u64 = 0;

/// How the singular triplets (or principal components) are computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Solver {
    /// Chosen from the shape: [`auto_svd`] for the SVD, [`auto_pca`] for PCA.
    Auto,
    /// Eigendecomposition of the centred Gram matrix (PCA only; the SVD refuses it).
    Covariance,
    /// SVD of the TSQR R factor (exact).
    Tsqr,
    /// Randomized SVD (Halko, Martinsson and Tropp's range finder).
    Randomized {
        /// Extra random directions beyond k.
        oversamples: i64,
        /// Power iterations (each re-orthonormalised).
        power_iter: i64,
        /// Seed of the random test matrix (the same numbers at every P).
        seed: u64,
    },
    /// Merged local truncated SVDs (Heat's `hsvd`).
    Hierarchical {
        /// Extra singular triplets kept by each local truncation beyond k.
        oversamples: i64,
    },
}

impl Solver {
    /// The randomized solver with the default oversamples and power iterations.
    pub fn randomized_default(seed: u64) -> Solver {
        Solver::Randomized {
            oversamples: DEFAULT_OVERSAMPLES,
            power_iter: DEFAULT_POWER_ITER,
            seed,
        }
    }

    /// The hierarchical solver with the default oversamples.
    pub fn hierarchical_default() -> Solver {
        Solver::Hierarchical {
            oversamples: DEFAULT_OVERSAMPLES,
        }
    }

    /// The solver's name, lower case: `auto`, `covariance`, `tsqr`, `randomized` or
    /// `hierarchical`.
    pub fn name(&self) -> &'static str {
        match self {
            Solver::Auto => "auto",
            Solver::Covariance => "covariance",
            Solver::Tsqr => "tsqr",
            Solver::Randomized { .. } => "randomized",
            Solver::Hierarchical { .. } => "hierarchical",
        }
    }
}

/// The solver [`Solver::Auto`] stands for in a truncated SVD of d columns and k triplets:
/// TSQR when d ≤ 1024 or k > d / 10, randomized (default knobs, seed 0) otherwise.
pub fn auto_svd(d: i64, k: i64) -> Solver {
    if d <= 1024 || k > d / 10 {
        Solver::Tsqr
    } else {
        Solver::randomized_default(DEFAULT_SEED)
    }
}

/// The solver [`Solver::Auto`] stands for in a PCA of d columns and k components (`None`: a
/// fraction of the variance, which needs every component): covariance when d ≤ 1024;
/// otherwise randomized (default knobs, seed 0) when k ≤ d / 10 and TSQR when not.
pub fn auto_pca(d: i64, k: Option<i64>) -> Solver {
    match k {
        _ if d <= 1024 => Solver::Covariance,
        Some(k) if k <= d / 10 => Solver::randomized_default(DEFAULT_SEED),
        _ => Solver::Tsqr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_defaults() {
        let names: Vec<&str> = [
            Solver::Auto,
            Solver::Covariance,
            Solver::Tsqr,
            Solver::randomized_default(5),
            Solver::hierarchical_default(),
        ]
        .iter()
        .map(|s| s.name())
        .collect();
        assert_eq!(names, ["auto", "covariance", "tsqr", "randomized", "hierarchical"]);
        assert_eq!(
            Solver::randomized_default(5),
            Solver::Randomized {
                oversamples: 10,
                power_iter: 4,
                seed: 5
            }
        );
        assert_eq!(Solver::hierarchical_default(), Solver::Hierarchical { oversamples: 10 });
    }

    #[test]
    fn auto_choices() {
        assert_eq!(auto_svd(100, 5), Solver::Tsqr);
        assert_eq!(auto_svd(2000, 300), Solver::Tsqr);
        assert_eq!(auto_svd(2000, 10), Solver::randomized_default(0));
        assert_eq!(auto_pca(100, Some(5)), Solver::Covariance);
        assert_eq!(auto_pca(2000, Some(10)), Solver::randomized_default(0));
        assert_eq!(auto_pca(2000, Some(300)), Solver::Tsqr);
        assert_eq!(auto_pca(2000, None), Solver::Tsqr);
    }
}
