//! The systems frameworks' compressors on qtrain's terms (issue 12): each reaches its
//! documented accuracy on real data, through the same protocol and metrics as the papers'
//! methods. (random-block, a summable sparsifier, is in summable.rs.)

use crate::util::*;

/// fp16 and bf16 (what DDP's communication hooks and Horovod ship) with error feedback —
/// EF21 — reach f − f* ≤ 1e-6 on a9a at 2 and 4 ranks (the casts' error is relative, so
/// nothing stalls), at 16d paper bits per worker and round and 2d wire bytes per message.
#[test]
fn half_precision_casts_reach_1e_6_on_a9a() {
    let Some(data) = shared_data("a9a.txt") else { return };
    let dir = TempDir::new("half");
    for &ranks in convergence_rank_counts() {
        for compressor in ["fp16", "bf16"] {
            let out = dir.path(&format!("{compressor}-{ranks}.h5"));
            let args = to_1e_6_on_a9a(&data, &out, "ef21", compressor, &["--workers", "4"]);
            let run = mpirun(ranks, &strs(&args)).expect_ok();
            assert_eq!(attr_str(&out, "status"), "converged", "{compressor} on {ranks} ranks:\n{}", run.stderr);
            let gap = *column::<f64>(&out, "f_gap").last().unwrap();
            assert!(gap <= 1e-6, "{compressor} on {ranks} ranks: f − f* = {gap:e}");
            let d = final_x(&out).len() as u64;
            let (bits, wire) = (column::<u64>(&out, "bits_up_round"), column::<u64>(&out, "wire_bytes_round"));
            assert_eq!(bits[2], 4 * 16 * d, "{compressor}: 16d bits per worker");
            // The allgather: 2d bytes and an 8-byte length per message.
            assert_eq!(wire[2], 4 * (2 * d + 8), "{compressor}: 2d bytes per message");
        }
    }
}
