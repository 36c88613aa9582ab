//! `engine-mpi-checks fail-matmul` and `fail-pieces`: one rank fails inside an operation; every
//! rank must report the same error and exit with status 3.

use engine::{Comm, DNDarray};
use tch::{Device, Kind, Tensor};

use super::F64;

/// One rank fails inside an operation; every rank reports the same error and exits with 3.
pub fn run(comm: &Comm, what: &str) -> ! {
    let (p, me) = (comm.size(), comm.rank());
    let fail = p - 1;
    let result: engine::Result<()> = match what {
        "fail-matmul" => {
            let x = DNDarray::randn(&[40, 6], Some(0), 1, F64).expect("randn");
            // Every rank should hold the same 6 × 2 operand; the failing rank's is 5 × 2.
            let b = Tensor::ones([if me == fail { 5 } else { 6 }, 2], F64);
            x.matmul(&b).map(|_| ())
        }
        _ => {
            // The failing rank's piece has another dtype.
            let kind = if me == fail { Kind::Float } else { Kind::Double };
            DNDarray::from_pieces(Tensor::zeros([3, 2], (kind, Device::Cpu)), 0)
                .and_then(|a| a.balance())
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => {
            println!("rank {me}/{p}: no error");
            std::process::exit(0)
        }
        Err(e) => {
            // One write per line, so mpirun does not interleave ranks' lines.
            let line = format!("rank {me}/{p}: error: {e}\n");
            std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes()).ok();
            std::process::exit(3)
        }
    }
}
