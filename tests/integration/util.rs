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

/// A file of ../shared/data, or None (and a message) when it is absent.
pub fn shared_data(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: {} is absent (tests on real shared data need ../shared/data)", path.display());
        None
    }
}

/// A fresh folder removed when dropped.
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

/// `mpirun -n ranks qtrain args…` with a 180 s timeout (a hang fails the test).
pub fn mpirun(ranks: usize, args: &[&str]) -> Run {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", "180", "mpirun", "-n", &ranks.to_string()])
        .arg(qtrain())
        .args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG");
    let Output { status, stdout, stderr } =
        cmd.output().expect("mpirun and timeout must be installed (scripts/setup.sh)");
    assert_ne!(status.code(), Some(124), "qtrain hung: killed by the timeout\n{}", String::from_utf8_lossy(&stderr));
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
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

pub fn attr_f64(file: &Path, name: &str) -> f64 {
    hdf5::File::open(file).unwrap().attr(name).unwrap().read_scalar().unwrap()
}

/// Common training arguments on the embedded data.
pub fn train_args<'a>(out: &'a str, rest: &[&'a str]) -> Vec<String> {
    let data = embedded("agaricus.txt.train");
    let mut v: Vec<String> =
        ["train", "--data", data.to_str().unwrap(), "--objective", "logistic", "--lambda", "0.1", "--out", out]
            .iter()
            .map(|s| s.to_string())
            .collect();
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
