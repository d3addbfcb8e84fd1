//! A binary started by another MPI's launcher (MPICH's `mpiexec` for an OpenMPI build, or
//! the reverse, or `srun` with the wrong `--mpi` plugin) does not fail: every process
//! initialises as a one-rank job of its own, and N copies of the run race for one result
//! file. The launcher still says in the environment how many processes it started; when
//! that disagrees with MPI's world size, qtrain stops before any work (README "MPI").

/// The variables launchers set to the job's size and this process's index in it.
const LAUNCHERS: [(&str, &str, &str); 3] = [
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "Open MPI's mpirun"),
    ("PMI_SIZE", "PMI_RANK", "MPICH's mpiexec (Hydra) or a PMI launcher"),
    ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "srun"),
];

/// The launcher that started more processes than MPI sees.
#[derive(Debug, PartialEq)]
pub struct Mismatch {
    pub launcher: &'static str,
    pub variable: &'static str,
    pub started: usize,
    /// This process's index among them (only the first prints the message).
    pub index: usize,
}

/// Compares MPI's world size with what the launcher's environment (`var`) says. The
/// innermost launcher sets its variable; the first one present in LAUNCHERS' order
/// decides (an `mpirun -n 1` inside an `srun` step of 4 tasks is one rank on purpose).
pub fn mismatch(world_size: usize, var: impl Fn(&str) -> Option<String>) -> Option<Mismatch> {
    let (size_var, rank_var, launcher) = *LAUNCHERS.iter().find(|(size_var, _, _)| var(size_var).is_some())?;
    let started: usize = var(size_var)?.trim().parse().ok()?;
    let index = var(rank_var).and_then(|r| r.trim().parse().ok()).unwrap_or(0);
    (started > 1 && world_size == 1).then_some(Mismatch { launcher, variable: size_var, started, index })
}

impl Mismatch {
    /// The message, naming the library this binary was built against and the fix.
    pub fn explain(&self, library: &str) -> String {
        format!(
            "{} started {} processes ({}={}) but MPI sees each as a job of 1 rank: this qtrain is \
             built against {library}, and the launcher belongs to another MPI (or srun uses the \
             wrong --mpi plugin). Launch with the matching MPI: Open MPI's mpirun for a build in \
             target/, mpiexec.mpich for QTRAIN_MPI=mpich (target-mpich/); under srun, --mpi=pmix \
             for Open MPI, --mpi=pmi2 for MPICH (README \"MPI\")",
            self.launcher, self.started, self.variable, self.started
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn a_launcher_that_started_more_processes_than_mpi_sees_is_named() {
        let hydra = env(&[("PMI_SIZE", "4"), ("PMI_RANK", "2")]);
        let m = mismatch(1, hydra).unwrap();
        assert_eq!((m.variable, m.started, m.index), ("PMI_SIZE", 4, 2));
        assert!(m.explain("Open MPI v4.1.4").contains("built against Open MPI v4.1.4"));
        let m = mismatch(1, env(&[("OMPI_COMM_WORLD_SIZE", "2"), ("OMPI_COMM_WORLD_RANK", "0")])).unwrap();
        assert_eq!((m.launcher, m.index), ("Open MPI's mpirun", 0));
        let srun = env(&[("SLURM_STEP_NUM_TASKS", "3"), ("SLURM_PROCID", "1")]);
        assert_eq!(mismatch(1, srun).unwrap().started, 3);
    }

    #[test]
    fn matching_launches_and_single_processes_pass() {
        assert_eq!(mismatch(4, env(&[("PMI_SIZE", "4")])), None);
        assert_eq!(mismatch(1, env(&[("OMPI_COMM_WORLD_SIZE", "1")])), None);
        assert_eq!(mismatch(1, env(&[])), None);
        assert_eq!(mismatch(1, env(&[("PMI_SIZE", "x")])), None);
        // A 1-task srun inside a larger allocation is one rank on purpose, and so is a
        // 1-rank mpirun inside a larger srun step.
        assert_eq!(mismatch(1, env(&[("SLURM_NTASKS", "4"), ("SLURM_STEP_NUM_TASKS", "1")])), None);
        assert_eq!(mismatch(1, env(&[("OMPI_COMM_WORLD_SIZE", "1"), ("SLURM_STEP_NUM_TASKS", "4")])), None);
    }
}
