//! Runs SQL statements given as arguments on every rank and prints, on rank 0, each result
//! (`mpirun -n 2 target/debug/examples/query "CREATE EXTERNAL TABLE …" "SELECT …"`).

use datafusion::arrow::util::pretty::pretty_format_batches;
use heatsql::HeatContext;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let ctx = HeatContext::new();
    let me = ctx.comm().rank();
    for sql in std::env::args().skip(1) {
        let result = match ctx.sql(&sql).await {
            Ok(frame) => frame.collect_on_root().await,
            Err(e) => Err(e),
        };
        if me == 0 {
            match result {
                Ok(batches) => println!("{sql}\n{}", pretty_format_batches(&batches).expect("format")),
                Err(e) => println!("{sql}\nerror: {e}"),
            }
        }
    }
}
