//! `heatsql-table-checks gen BASE | check BASE OUT [--only PREFIX] [-v]`: the multi-rank checks
//! of distributed tables ([`checks::tables`]), run under `mpirun -n P` by
//! `checks/tests/tables.rs`.

use checks::cli::{Args, usage_error};
use checks::tables;
use heatsql::HeatContext;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::from_env().unwrap_or_else(|e| usage_error(&e));
    args.list(&tables::SUBJECTS);
    let ctx = HeatContext::new();
    match args.positional()[..] {
        ["gen", base] => {
            if ctx.comm().rank() == 0 {
                tables::fixtures::write(&ctx, base.trim_end_matches('/')).await;
            }
            ctx.comm().barrier();
        }
        ["check", base, out] => {
            let (base, out) = (base.trim_end_matches('/'), out.trim_end_matches('/'));
            let mut c = args.checker(&tables::SUBJECTS);
            tables::setup(&mut c, &ctx, base).await;
            tables::run(&mut c, &ctx, base, out).await;
            args.finish(&c, "table checks");
        }
        _ => usage_error("usage: heatsql-table-checks gen BASE | check BASE OUT [--only PREFIX] [-v] [--list]"),
    }
}
