//! `heatsql-function-checks FIXTURES SCRATCH [--only PREFIX] [-v]`: the multi-rank checks of the
//! table functions through SQL ([`checks::functions`]), run under `mpirun -n P` by
//! `checks/tests/functions.rs`.

use checks::cli::{Args, usage_error};
use checks::functions;
use heatsql::HeatContext;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::from_env().unwrap_or_else(|e| usage_error(&e));
    args.list(&functions::SUBJECTS);
    let [fixtures, scratch] = args.positional()[..] else {
        usage_error("usage: heatsql-function-checks FIXTURES SCRATCH [--only PREFIX] [-v] [--list]");
    };
    let ctx = HeatContext::new();
    let mut c = args.checker(&functions::SUBJECTS);
    functions::setup(&mut c, &ctx, fixtures, scratch).await;
    functions::run(&mut c, &ctx, scratch).await;
    args.finish(&c, "function checks");
}
