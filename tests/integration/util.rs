//! Running `mpirun … qtrain` from tests, in a fresh temporary folder, under a timeout.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The release or debug binary cargo built for this test run.
pub fn qtrain() -> &'static str {
    env!("CARGO_BIN_EXE_qtrain")
}

/// The embedded demo data (committed under data/).
pub fn embedded(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(name)
}

/// Whether `QTRAIN_REQUIRE` (a comma-separated list: `data`, `slurm`, `cluster`, as
/// `.ci/run` sets it) forbids skipping the tests that need `what`.
pub fn required(what: &str) -> bool {
    std::env::var("QTRAIN_REQUIRE").is_ok_and(|v| v.split(',').any(|r| r.trim() == what))
}

/// A test that cannot run here: a message, or a failure where `QTRAIN_REQUIRE` names
/// `what`.
pub fn skip(what: &str, why: &str) {
    assert!(!required(what), "QTRAIN_REQUIRE={what} but this test cannot run: {why}");
    eprintln!("skipped: {why}");
}

/// The folder of the real data sets: `QTRAIN_DATA_DIR`, or `shared/data` beside the
/// checkout or beside one of its parent folders (`../shared/data` in the usual layout).
fn shared_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("QTRAIN_DATA_DIR") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .skip(1)
        .map(|a| a.join("shared/data"))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| manifest.join("../shared/data"))
}

/// A file of ../shared/data, or None (and a message) when it is absent.
pub fn shared_data(name: &str) -> Option<PathBuf> {
    let path = shared_data_dir().join(name);
    if path.exists() {
        return Some(path);
    }
    skip(
        "data",
        &format!("{} is absent (tests on real shared data need ../shared/data or QTRAIN_DATA_DIR)", path.display()),
    );
    None
}

/// A fresh folder removed when dropped.
/// The name a result file has until its run finishes (OUT.partial).
pub fn partial_of(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial");
    s.into()
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("qtrain-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Result of one launch.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the whole output when the run failed.
    pub fn expect_ok(self) -> Run {
        assert!(
            self.ok(),
            "qtrain failed ({:?}):\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// The launcher of the MPI that qtrain was built with: `QTRAIN_MPIRUN`, which
/// scripts/mpi-env.sh sets from `QTRAIN_MPI` (mpirun.openmpi, mpiexec.mpich), else
/// `mpirun`. The OpenMPI variables below do nothing under MPICH.
pub fn launcher() -> String {
    std::env::var("QTRAIN_MPIRUN").unwrap_or_else(|_| "mpirun".to_string())
}

/// `mpirun -n ranks qtrain args…` with a 180 s timeout (a hang fails the test).
pub fn mpirun(ranks: usize, args: &[&str]) -> Run {
    run_command(ranks, args, None, &[])
}

/// `mpirun` with extra environment variables for the ranks (e.g. `QTRAIN_FAULT`).
pub fn mpirun_env(ranks: usize, args: &[&str], env: &[(&str, &str)]) -> Run {
    run_command(ranks, args, None, env)
}

fn run_command(ranks: usize, args: &[&str], cwd: Option<&Path>, env: &[(&str, &str)]) -> Run {
    let mut cmd = mpirun_command(ranks, args, env);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let session = session_dir();
    cmd.env("OMPI_MCA_orte_tmpdir_base", &session);
    let output = cmd.output();
    let _ = std::fs::remove_dir_all(&session);
    let Output { status, stdout, stderr } = output.expect("mpirun and timeout must be installed (scripts/setup.sh)");
    assert_ne!(status.code(), Some(124), "qtrain hung: killed by the timeout\n{}", String::from_utf8_lossy(&stderr));
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `mpirun` started in the background, its output piped (for a test that acts on the
/// running job, e.g. kills one of its ranks).
pub fn spawn_mpirun(ranks: usize, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    use std::process::Stdio;
    let mut cmd = mpirun_command(ranks, args, env);
    cmd.env("OMPI_MCA_orte_tmpdir_base", session_dir()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().expect("mpirun and timeout must be installed (scripts/setup.sh)")
}

/// A fresh directory for one launch's OpenMPI session files. OpenMPI 4 keeps every
/// launch's session under one shared /tmp/ompi.HOST.UID and the launch that ends last
/// removes it, racing a launch that is starting ("A call to mkdir was unable to create
/// the desired directory", seen once with two tests launching at a time); a directory
/// of its own per launch has nothing to race for. MPICH ignores the variable.
fn session_dir() -> PathBuf {
    static LAUNCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = LAUNCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("qtrain-ompi-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a session directory under the temporary directory");
    dir
}

/// The command line of a launch under a 180 s timeout, with the environment every test
/// launch has.
fn mpirun_command(ranks: usize, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("timeout");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.args(["--kill-after=5", "180", &launcher(), "-n", &ranks.to_string()])
        .arg(qtrain())
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        // When a rank exits non-zero, mpirun waits this long (1 s by default) before it
        // SIGKILLs the others; the ranks of an agreed error have all exited already.
        .env("OMPI_MCA_odls_base_sigkill_timeout", "0")
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG");
    cmd
}

/// A metrics dataset of a result file.
pub fn column<T: hdf5::H5Type>(file: &Path, name: &str) -> Vec<T> {
    let f = hdf5::File::open(file).unwrap();
    f.dataset(&format!("metrics/{name}")).unwrap().read_raw::<T>().unwrap()
}

pub fn final_x(file: &Path) -> Vec<f64> {
    let f = hdf5::File::open(file).unwrap();
    f.dataset("model/x").unwrap().read_raw::<f64>().unwrap()
}

pub fn attr_str(file: &Path, name: &str) -> String {
    let f = hdf5::File::open(file).unwrap();
    let v: hdf5::types::VarLenUnicode = f.attr(name).unwrap().read_scalar().unwrap();
    v.as_str().to_string()
}

pub fn attr_u64(file: &Path, name: &str) -> u64 {
    hdf5::File::open(file).unwrap().attr(name).unwrap().read_scalar().unwrap()
}

pub fn attr_f64(file: &Path, name: &str) -> f64 {
    hdf5::File::open(file).unwrap().attr(name).unwrap().read_scalar().unwrap()
}

/// Common training arguments on the embedded data, one metrics row per round (`rest`
/// may give another `--eval-every`).
pub fn train_args<'a>(out: &'a str, rest: &[&'a str]) -> Vec<String> {
    let data = embedded("agaricus.txt.train");
    let head = ["train", "--data", data.to_str().unwrap(), "--objective", "logistic", "--lambda", "0.1"];
    let mut v: Vec<String> = head.iter().chain(&["--eval-every", "1", "--out", out]).map(|s| s.to_string()).collect();
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A LIBSVM file as dense rows and ±1 labels (the smaller label becomes −1), read
/// independently of qtrain's parser; d is the largest feature index.
pub fn read_dense(path: &Path) -> (Vec<Vec<f64>>, Vec<f64>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut rows: Vec<(f64, Vec<(usize, f64)>)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        let label: f64 = it.next().unwrap().parse().unwrap();
        let feats = it.map(|t| {
            let (j, v) = t.split_once(':').unwrap();
            (j.parse::<usize>().unwrap() - 1, v.parse::<f64>().unwrap())
        });
        rows.push((label, feats.collect()));
    }
    let lo = rows.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
    let d = rows.iter().flat_map(|r| r.1.iter().map(|f| f.0 + 1)).max().unwrap();
    let dense = rows
        .iter()
        .map(|(_, f)| {
            let mut v = vec![0.0; d];
            f.iter().for_each(|&(j, x)| v[j] = x);
            v
        })
        .collect();
    (dense, rows.iter().map(|r| if r.0 == lo { -1.0 } else { 1.0 }).collect())
}

/// λ_max(AᵀA) of dense rows by 500 power iterations from the all-ones vector.
pub fn gram_lambda_max(rows: &[Vec<f64>]) -> f64 {
    let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(a, c)| a * c).sum::<f64>();
    let mut v = vec![1.0; rows[0].len()];
    let mut lmax = 0.0;
    for _ in 0..500 {
        let mut w = vec![0.0; v.len()];
        for a in rows {
            let t = dot(a, &v);
            w.iter_mut().zip(a).for_each(|(wj, aj)| *wj += t * aj);
        }
        lmax = dot(&v, &w) / dot(&v, &v);
        let n = dot(&w, &w).sqrt();
        v = w.iter().map(|x| x / n).collect();
    }
    lmax
}

/// `mpirun -n ranks qtrain args…` in `cwd` (for runs that write relative paths).
pub fn mpirun_in(cwd: &Path, ranks: usize, args: &[&str]) -> Run {
    run_command(ranks, args, Some(cwd), &[])
}

/// `train` arguments for the 3PC papers' setup on real data (ALGORITHMS.md §G.4):
/// non-convex logistic, λ = 0.1, up to 20 000 rounds to ‖∇f‖² ≤ 1e-8, evaluated every
/// 10 rounds; `extra` appended.
pub fn paper_setup_args(data: &Path, out: &Path, method: &str, compressor: &str, extra: &[&str]) -> Vec<String> {
    paper_setup_args_to("1e-8", data, out, method, compressor, extra)
}

/// [`paper_setup_args`] to ‖∇f‖² ≤ `tol`.
pub fn paper_setup_args_to(
    tol: &str,
    data: &Path,
    out: &Path,
    method: &str,
    compressor: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut v: Vec<String> = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--objective",
        "logistic-nonconvex",
        "--lambda",
        "0.1",
        "--method",
        method,
        "--compressor",
        compressor,
        "--iters",
        "20000",
        "--tol",
        tol,
        "--eval-every",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Training on a9a (logistic, λ = 0.1) until ‖∇f‖² ≤ 1e-7, which for this λ-strongly convex
/// f gives f − f* ≤ ‖∇f‖²/(2λ) ≤ 5e-7, with f* solved first for the f_gap column.
pub fn to_1e_6_on_a9a(data: &Path, out: &Path, method: &str, compressor: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["train", "--data", data.to_str().unwrap(), "--lambda", "0.1", "--method", method]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rest = ["--compressor", compressor, "--iters", "20000", "--tol", "1e-7", "--fstar", "auto"];
    args.extend(rest.iter().chain(&["--eval-every", "10", "--out", out.to_str().unwrap()]).map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The rank counts of the layout-invariance suites: 1, 2 and 4, or 1 and 2 under MPICH
/// (oversubscribed ranks busy-poll there, see below; the property is qtrain's, which the
/// OpenMPI pass checks at 4 ranks).
pub fn layout_rank_counts() -> &'static [usize] {
    if std::env::var("QTRAIN_MPI").is_ok_and(|m| m == "mpich") {
        &[1, 2]
    } else {
        &[1, 2, 4]
    }
}

/// The rank counts of the real-data convergence tests: 2 and 4, or 2 alone under MPICH,
/// whose ranks busy-poll when oversubscribed (4 ranks on 2 cores: 22 ms a round against
/// 0.1 ms at 2 ranks, README "MPI"), which would make these tests the slowest part of CI
/// while the 4-rank protocol suites already cover MPICH's collectives.
pub fn convergence_rank_counts() -> &'static [usize] {
    if std::env::var("QTRAIN_MPI").is_ok_and(|m| m == "mpich") {
        &[2]
    } else {
        &[2, 4]
    }
}

/// L2-regularised logistic regression on the embedded data as dense rows, computed
/// independently of qtrain (labels ±1 as `read_dense` gives them).
pub struct Reference {
    pub rows: Vec<Vec<f64>>,
    pub labels: Vec<f64>,
    pub lambda: f64,
}

impl Reference {
    pub fn embedded(lambda: f64) -> Reference {
        let (rows, labels) = read_dense(&embedded("agaricus.txt.train"));
        Reference { rows, labels, lambda }
    }

    /// (1/|I|) Σ_{r∈I} ∇log(1 + exp(−b_r a_rᵀx)) + ridge·x over `rows` (global indices).
    pub fn gradient(&self, x: &[f64], rows: impl ExactSizeIterator<Item = usize>, ridge: f64) -> Vec<f64> {
        let n = rows.len() as f64;
        let mut g: Vec<f64> = x.iter().map(|v| ridge * v).collect();
        for r in rows {
            let (a, b) = (&self.rows[r], self.labels[r]);
            let z = -b * a.iter().zip(x).map(|(p, q)| p * q).sum::<f64>();
            let s = 1.0 / (1.0 + (-z).exp());
            g.iter_mut().zip(a).for_each(|(gj, aj)| *gj -= b * s * aj / n);
        }
        g
    }
}
