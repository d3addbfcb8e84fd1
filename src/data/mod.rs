//! Data: LIBSVM parsing, CSR storage, row splitting and sharded loading over MPI.

pub mod checksum;
pub mod csr;
pub mod generate;
pub mod labels;
pub mod libsvm;
pub mod shard;
pub mod split;
pub mod write_shards;

pub use csr::Csr;
pub use labels::LabelMap;
pub use shard::{Dataset, Source, WorkerData};
pub use split::SplitRule;
