//! Per-iteration metrics: the row type and its column table (the HDF5 schema), the
//! HDF5 writer of rank 0, and the terminal summary.

pub mod hdf5_file;
pub mod summary;

/// One row of `/metrics`: the state after t rounds. Per-round columns (`*_round`,
/// `t_*`) describe round t − 1, the one that produced x^t; row 0 has zeros there. Plain
/// old data (8-byte fields only), so a checkpoint stores it as its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Row {
    pub iter: u64,
    pub loss: f64,
    pub grad_norm_sq: f64,
    pub f_gap: f64,
    pub bits_up: u64,
    pub bits_down: u64,
    pub wire_bytes: u64,
    pub bits_up_round: u64,
    pub bits_down_round: u64,
    pub wire_bytes_round: u64,
    pub recv_bytes_round: u64,
    pub allgather_calls_round: u64,
    pub allgather_bytes_round: u64,
    pub allreduce_calls_round: u64,
    pub allreduce_bytes_round: u64,
    pub bcast_calls_round: u64,
    pub bcast_bytes_round: u64,
    pub gather_calls_round: u64,
    pub gather_bytes_round: u64,
    pub reduce_calls_round: u64,
    pub reduce_bytes_round: u64,
    pub time: f64,
    pub t_compute: f64,
    pub t_compress: f64,
    pub t_comm: f64,
    pub t_decode: f64,
    pub skipped: u64,
    pub skipped_total: u64,
}

/// A column's type and how to read it from a row.
#[derive(Clone, Copy)]
pub enum Getter {
    U64(fn(&Row) -> u64),
    F64(fn(&Row) -> f64),
}

/// Name, getter and meaning of every `/metrics` dataset. The README's schema table is
/// this list; a test checks that a written file has exactly these datasets.
pub const COLUMNS: &[(&str, Getter, &str)] = &[
    ("iter", Getter::U64(|r| r.iter), "round t (x^t is the model after t rounds)"),
    ("loss", Getter::F64(|r| r.loss), "f(x^t) = Σ_i w_i f_i(x^t)"),
    ("grad_norm_sq", Getter::F64(|r| r.grad_norm_sq), "‖∇f(x^t)‖²"),
    ("f_gap", Getter::F64(|r| r.f_gap), "f(x^t) − f* (NaN when f* is unknown)"),
    (
        "bits_up",
        Getter::U64(|r| r.bits_up),
        "paper-convention bits sent by all workers, cumulative (ALGORITHMS.md §0.4)",
    ),
    (
        "bits_down",
        Getter::U64(|r| r.bits_down),
        "paper-convention bits sent to the workers, cumulative (README \"Topologies and the downlink\")",
    ),
    ("wire_bytes", Getter::U64(|r| r.wire_bytes), "bytes put into method collectives by all ranks, cumulative"),
    ("bits_up_round", Getter::U64(|r| r.bits_up_round), "bits_up of round t − 1 alone"),
    ("bits_down_round", Getter::U64(|r| r.bits_down_round), "bits_down of round t − 1 alone"),
    ("wire_bytes_round", Getter::U64(|r| r.wire_bytes_round), "wire_bytes of round t − 1 alone"),
    (
        "recv_bytes_round",
        Getter::U64(|r| r.recv_bytes_round),
        "bytes rank 0 received from method collectives in round t − 1 (allgather: the other ranks' messages; allreduce: the reduced vector)",
    ),
    (
        "allgather_calls_round",
        Getter::U64(|r| r.allgather_calls_round),
        "allgather calls in round t − 1 (a message exchange is two: u64 lengths, then bytes)",
    ),
    (
        "allgather_bytes_round",
        Getter::U64(|r| r.allgather_bytes_round),
        "mean bytes one rank contributed to allgathers in round t − 1",
    ),
    ("allreduce_calls_round", Getter::U64(|r| r.allreduce_calls_round), "allreduce calls in round t − 1"),
    (
        "allreduce_bytes_round",
        Getter::U64(|r| r.allreduce_bytes_round),
        "bytes of the vectors allreduced in round t − 1",
    ),
    ("bcast_calls_round", Getter::U64(|r| r.bcast_calls_round), "broadcasts in round t − 1"),
    ("bcast_bytes_round", Getter::U64(|r| r.bcast_bytes_round), "bytes broadcast in round t − 1"),
    (
        "gather_calls_round",
        Getter::U64(|r| r.gather_calls_round),
        "gathers to rank 0 in round t − 1 (--topology server)",
    ),
    (
        "gather_bytes_round",
        Getter::U64(|r| r.gather_bytes_round),
        "mean bytes one rank contributed to gathers in round t − 1",
    ),
    (
        "reduce_calls_round",
        Getter::U64(|r| r.reduce_calls_round),
        "reduces to rank 0 in round t − 1 (--topology server)",
    ),
    ("reduce_bytes_round", Getter::U64(|r| r.reduce_bytes_round), "bytes of the vectors reduced in round t − 1"),
    ("time", Getter::F64(|r| r.time), "seconds of training (rounds only, not metrics), cumulative"),
    ("t_compute", Getter::F64(|r| r.t_compute), "seconds computing local gradients in round t − 1 (rank 0)"),
    ("t_compress", Getter::F64(|r| r.t_compress), "seconds in the worker roles (preparing, encoding) in round t − 1 (rank 0)"),
    ("t_comm", Getter::F64(|r| r.t_comm), "seconds in method collectives in round t − 1 (rank 0)"),
    ("t_decode", Getter::F64(|r| r.t_decode), "seconds in the server role, the downlink and the update in round t − 1 (rank 0)"),
    ("skipped", Getter::U64(|r| r.skipped), "workers that sent nothing in round t − 1 (lazy methods)"),
    ("skipped_total", Getter::U64(|r| r.skipped_total), "uploads skipped in rounds 0 … t − 1, cumulative"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's schema table is generated from COLUMNS; this keeps them equal.
    #[test]
    fn readme_schema_table_is_the_column_list() {
        let readme = include_str!("../../README.md");
        let (start, end) =
            (readme.find("<!-- metrics-schema -->\n").unwrap(), readme.find("<!-- /metrics-schema -->").unwrap());
        let table = &readme[start + "<!-- metrics-schema -->\n".len()..end];
        let want: String = COLUMNS
            .iter()
            .map(|(name, getter, doc)| {
                let ty = match getter {
                    Getter::U64(_) => "u64",
                    Getter::F64(_) => "f64",
                };
                format!("| `{name}` | {ty} | {doc} |\n")
            })
            .collect();
        assert_eq!(table, want, "regenerate the README table from metrics::COLUMNS");
    }
}
