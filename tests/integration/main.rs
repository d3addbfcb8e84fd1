//! Integration tests: the real binary under real `mpirun` (OpenMPI), real HDF5 files,
//! real LIBSVM data. One test crate (faster to link than one per file).

mod asylpg;
mod cluster;
mod errors;
mod faults;
mod files;
mod lazy;
mod marina;
mod peers;
mod protocol;
mod reporting;
mod resume;
mod slurm;
mod smoothness_aware;
mod summable;
mod sweep;
mod three_point;
mod training;
mod util;
