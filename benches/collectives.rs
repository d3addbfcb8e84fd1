//! qtrain's collectives against raw MPI of the same bytes (issue 13, "Collectives"): the
//! dense allreduce of `Comm::sum` (GD's and the summable compressors' path) and the
//! variable-size allgather of `Comm::all_gather_messages` (top-k messages: u64 lengths,
//! then the bytes), each timed against the plain rsmpi call a hand-written MPI program
//! would make. Built as an example so that it runs under mpirun:
//!
//!   cargo build --release --example collectives
//!   mpirun -n 2 target/release/examples/collectives [REPS]      (benches/collectives.sh)
//!
//! Each sample is one call between barriers, the median over REPS (default 200) after
//! 20 warm-up calls; both sides alternate call by call so that the machine's noise falls
//! on both. Rank 0 prints a Markdown table; the ratio is qtrain ÷ raw.

use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::traits::*;
use qtrain::comm::Comm;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Median seconds of `qtrain_call` and of `raw_call`, alternated, each between barriers.
fn alternate(
    world: &mpi::topology::SimpleCommunicator,
    reps: usize,
    mut qtrain_call: impl FnMut(),
    mut raw_call: impl FnMut(),
) -> (f64, f64) {
    let time = |call: &mut dyn FnMut()| {
        world.barrier();
        let start = mpi::time();
        call();
        mpi::time() - start
    };
    for _ in 0..20 {
        time(&mut qtrain_call);
        time(&mut raw_call);
    }
    let (mut ours, mut raw) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps {
        ours.push(time(&mut qtrain_call));
        raw.push(time(&mut raw_call));
    }
    // The slowest rank sets a collective's time: the max over ranks of each median.
    let mut medians = [median(ours), median(raw)];
    let local = medians;
    world.all_reduce_into(&local[..], &mut medians[..], SystemOperation::max());
    (medians[0], medians[1])
}

fn main() {
    let reps = std::env::args().nth(1).map_or(200, |s| s.parse().expect("REPS: a count of calls"));
    let universe = mpi::initialize().expect("MPI initialises once");
    let world = universe.world();
    let raw_world = world.duplicate();
    let mut comm = Comm::new(world.duplicate());
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    let mut rows = Vec::new();

    for bytes in [4 << 10, 4 << 20] {
        let n = bytes / 8;
        let mut ours = vec![1.0 + rank as f64; n];
        let send = vec![1.0 + rank as f64; n];
        let mut recv = vec![0.0; n];
        let (q, r) = alternate(
            &world,
            reps,
            || comm.sum(&mut ours),
            || raw_world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum()),
        );
        rows.push((format!("allreduce of {n} f64 ({bytes} bytes)"), q, r));
    }

    // Top-k messages as EF21 sends them at d = 10⁶, k = 1 %: 10⁴ (u32 index, f32 value)
    // pairs per worker, one worker per rank.
    for k in [100, 10_000] {
        let message: Vec<u8> = (0..8 * k).map(|i| (i * 31 + rank) as u8).collect();
        let local = [message.clone()];
        let counts = vec![message.len() as i32; ranks];
        let displs: Vec<i32> = (0..ranks as i32).map(|r| r * message.len() as i32).collect();
        let mut gathered = vec![0u8; message.len() * ranks];
        let (q, r) = alternate(
            &world,
            reps,
            || {
                comm.all_gather_messages(&local).expect("messages fit MPI's counts");
            },
            || {
                let mut partition = PartitionMut::new(&mut gathered[..], &counts[..], &displs[..]);
                raw_world.all_gather_varcount_into(&message[..], &mut partition);
            },
        );
        rows.push((format!("allgatherv of top-k messages, k = {k} ({} bytes per rank)", message.len()), q, r));
    }

    if rank == 0 {
        println!("{ranks} ranks, median of {reps} calls (max over ranks)\n");
        println!("| collective | qtrain µs | raw MPI µs | qtrain ÷ raw |");
        println!("|---|---:|---:|---:|");
        for (name, q, r) in rows {
            println!("| {name} | {:.1} | {:.1} | {:.2} |", q * 1e6, r * 1e6, q / r);
        }
    }
}
