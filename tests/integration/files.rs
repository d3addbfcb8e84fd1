//! The result file (schema, h5dump), shard files, --x0, config files.

use crate::util::*;
use std::process::Command;

/// The /metrics datasets the README documents.
fn documented_columns() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- metrics-schema -->").expect("README has the schema table");
    readme[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.contains("<!-- /metrics-schema -->"))
        .filter_map(|l| l.strip_prefix("| `").and_then(|r| r.split('`').next()).map(str::to_string))
        .collect()
}

#[test]
fn hdf5_file_has_the_documented_schema() {
    let dir = TempDir::new("schema");
    let out = dir.path("run.h5");
    let test = embedded("agaricus.txt.test");
    let rest = [
        "--method",
        "ef21",
        "--compressor",
        "top-k:k=8",
        "--iters",
        "25",
        "--test",
        test.to_str().unwrap(),
        "--test-every",
        "10",
    ];
    mpirun(2, &strs(&train_args(out.to_str().unwrap(), &rest))).expect_ok();

    let f = hdf5::File::open(&out).unwrap();
    let metrics = f.group("metrics").unwrap();
    let mut names = metrics.member_names().unwrap();
    names.sort();
    let mut documented = documented_columns();
    documented.sort();
    assert_eq!(names, documented, "datasets vs README schema table");
    for name in &names {
        let ds = metrics.dataset(name).unwrap();
        assert_eq!(ds.shape(), vec![26], "{name}");
        assert!(ds.is_chunked() && ds.is_resizable(), "{name} must be chunked and resizable");
    }
    let iters = column::<u64>(&out, "iter");
    assert_eq!(iters, (0..=25).collect::<Vec<u64>>());
    for attr in [
        "method",
        "compressor",
        "objective",
        "dataset",
        "dataset_sha256",
        "mpi_library",
        "git_commit",
        "status",
        "step_rule",
    ] {
        assert!(!attr_str(&out, attr).is_empty(), "attribute {attr}");
    }
    for attr in ["ranks", "workers", "seed", "iters", "rows", "features"] {
        let v: u64 = f.attr(attr).unwrap().read_scalar().unwrap();
        assert!(attr == "seed" || v > 0, "{attr}");
    }
    assert_eq!(attr_str(&out, "method"), "ef21");
    assert!(attr_f64(&out, "L") > attr_f64(&out, "lambda"));
    let acc = f.dataset("test/accuracy").unwrap().read_raw::<f64>().unwrap();
    let acc_iters = f.dataset("test/iter").unwrap().read_raw::<u64>().unwrap();
    assert_eq!(acc_iters, vec![0, 10, 20, 25]);
    assert!(acc.iter().all(|a| (0.0..=1.0).contains(a)) && *acc.last().unwrap() > 0.8, "{acc:?}");
    assert_eq!(final_x(&out).len(), 126);
    let rows = f.dataset("workers/rows").unwrap().read_raw::<u64>().unwrap();
    assert_eq!(rows, vec![3257, 3256]);
    // L_i = λ_max(A_iᵀA_i)/(4m_i) + λ (§0.2) of each worker's contiguous block, computed
    // here by a dense power iteration of its own; L_max is the larger.
    let l_i = f.dataset("workers/L").unwrap().read_raw::<f64>().unwrap();
    let (dense, _) = read_dense(&embedded("agaricus.txt.train"));
    let independent: Vec<f64> = [&dense[..3257], &dense[3257..]]
        .iter()
        .map(|block| gram_lambda_max(block) / (4.0 * block.len() as f64) + attr_f64(&out, "lambda"))
        .collect();
    for (got, want) in l_i.iter().zip(&independent) {
        assert!((got - want).abs() <= 1e-6 * want, "L_i = {got}, independent {want}");
    }
    let l_max = independent.iter().copied().fold(0.0, f64::max);
    assert!((attr_f64(&out, "L_max") - l_max).abs() <= 1e-6 * l_max);

    // The checksum is the one sha256sum prints.
    let sha = Command::new("sha256sum").arg(embedded("agaricus.txt.train")).output().unwrap();
    let expected = String::from_utf8_lossy(&sha.stdout).split_whitespace().next().unwrap().to_string();
    assert_eq!(attr_str(&out, "dataset_sha256"), expected);

    // h5dump, the HDF5 reference tool, reads it.
    let dump = Command::new("h5dump").args(["-H", out.to_str().unwrap()]).output().unwrap();
    assert!(dump.status.success());
    assert!(String::from_utf8_lossy(&dump.stdout).contains("DATASET \"grad_norm_sq\""));
}

/// `qtrain shard` writes the blocks a training run uses, so a {rank} pattern over the
/// shards gives exactly the iterates of the single file.
#[test]
fn shard_files_reproduce_the_single_file_run() {
    let dir = TempDir::new("shard");
    let parts = dir.path("parts");
    let data = embedded("agaricus.txt.train");
    let run =
        mpirun(1, &["shard", "--data", data.to_str().unwrap(), "--parts", "2", "--out-dir", parts.to_str().unwrap()])
            .expect_ok();
    assert!(run.stdout.contains("part-1.svm\t3256 rows"), "{}", run.stdout);
    let whole = dir.path("whole.h5");
    let sharded = dir.path("sharded.h5");
    let common = [
        "--objective",
        "logistic",
        "--method",
        "ef21",
        "--compressor",
        "rand-k:k=9",
        "--iters",
        "30",
        "--features",
        "126",
    ];
    let pattern = format!("{}/part-{{rank}}.svm", parts.display());
    for (src, out) in [(data.to_str().unwrap().to_string(), &whole), (pattern, &sharded)] {
        let mut args = vec!["train", "--data", src.as_str(), "--out", out.to_str().unwrap()];
        args.extend_from_slice(&common);
        mpirun(2, &args).expect_ok();
    }
    assert_eq!(attr_str(&whole, "x_digest"), attr_str(&sharded, "x_digest"));
    // What was read: the file, or the two parts together (each rank reads its own).
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    assert_eq!(attr_u64(&whole, "data_bytes"), size(&data));
    assert_eq!(attr_u64(&sharded, "data_bytes"), size(&parts.join("part-0.svm")) + size(&parts.join("part-1.svm")));
}

/// --x0 from `qtrain solve --out`: starting at x*, GD stays at ‖∇f‖ ≈ 0.
#[test]
fn solve_output_is_a_valid_starting_point() {
    let dir = TempDir::new("x0");
    let xstar = dir.path("xstar.txt");
    let data = embedded("agaricus.txt.train");
    mpirun(2, &["solve", "--data", data.to_str().unwrap(), "--lambda", "0.1", "--out", xstar.to_str().unwrap()])
        .expect_ok();
    let out = dir.path("run.h5");
    mpirun(2, &strs(&train_args(out.to_str().unwrap(), &["--iters", "3", "--x0", xstar.to_str().unwrap()])))
        .expect_ok();
    let g = column::<f64>(&out, "grad_norm_sq");
    assert!(g[0] <= 1e-20, "‖∇f(x*)‖² = {}", g[0]);
}

/// A config file supplies flags; the command line overrides them.
#[test]
fn config_file_sets_flags_and_command_line_wins() {
    let dir = TempDir::new("config");
    let out = dir.path("run.h5");
    let data = embedded("agaricus.txt.train");
    let conf = dir.write(
        "run.conf",
        &format!(
            "data = {}\nmethod = diana\ncompressor = qsgd:s=2\niters = 50\nout = {}\n",
            data.display(),
            out.display()
        ),
    );
    mpirun(1, &["train", "--config", conf.to_str().unwrap(), "--iters", "7"]).expect_ok();
    assert_eq!(attr_str(&out, "method"), "diana");
    assert_eq!(column::<u64>(&out, "iter").len(), 8);
}

/// `qtrain demo` trains on the embedded data, with test accuracy and f*, and names its
/// result file.
#[test]
fn demo_subcommand_trains_on_the_embedded_data() {
    let dir = TempDir::new("demo");
    let out = dir.path("demo.h5");
    let run = mpirun(2, &["demo", "--iters", "200", "--out", out.to_str().unwrap()]).expect_ok();
    assert!(run.stdout.contains("test accuracy"), "{}", run.stdout);
    assert!(run.stdout.contains(out.to_str().unwrap()));
    assert!(attr_f64(&out, "fstar").is_finite());
}

/// Bare `qtrain` (no arguments at all) is the demo: its default rounds, a result under
/// results/ in the current folder, the path printed.
#[test]
fn demo_runs_without_arguments() {
    let dir = TempDir::new("bare");
    let run = mpirun_in(&dir.0, 2, &[]).expect_ok();
    let line = run.stdout.lines().find(|l| l.starts_with("metrics")).expect("the result path is printed");
    let path = dir.0.join(line.split_whitespace().nth(1).unwrap());
    assert!(path.starts_with(dir.0.join("results")) && path.exists(), "{}", path.display());
    assert_eq!(column::<u64>(&path, "iter").last(), Some(&2000));
    assert!(run.stdout.contains("test accuracy") && attr_f64(&path, "fstar").is_finite());
    assert_eq!(attr_str(&path, "method"), "ef21");
}

/// The accepted LIBSVM variants (CRLF, comments, blank lines, trailing spaces, rows
/// without features, labels 1/2) load identically whatever the byte ranges: 1 and 3
/// ranks with 3 logical workers give the same iterates.
#[test]
fn messy_but_valid_files_load_the_same_on_any_rank_count() {
    let dir = TempDir::new("messy");
    let mut text = String::from("# generated\r\n\r\n");
    for i in 0..60u32 {
        let label = 1 + i % 2;
        match i % 5 {
            0 => text.push_str(&format!("{label} 1:{}.5 4:-1   \r\n", i % 7)),
            1 => text.push_str(&format!("{label}\n")),
            2 => text.push_str(&format!("{label} 2:1 3:{} # note\n\n", i)),
            3 => text.push_str(&format!("  {label}\t1:0.25\t5:2\n# between rows\n")),
            _ => text.push_str(&format!("{label} 5:{}e-1\n", i)),
        }
    }
    let data = dir.write("messy.svm", &text);
    let mut digests = Vec::new();
    for ranks in [1, 3] {
        let out = dir.path(&format!("r{ranks}.h5"));
        let args = ["train", "--data", data.to_str().unwrap(), "--workers", "3", "--method", "ef21"];
        let run = mpirun(
            ranks,
            &[&args[..], &["--compressor", "top-k:k=2", "--iters", "20", "--out", out.to_str().unwrap()]].concat(),
        )
        .expect_ok();
        assert!(run.stderr.contains("labels 1 -> -1, 2 -> +1"), "{}", run.stderr);
        let f = hdf5::File::open(&out).unwrap();
        assert_eq!(f.attr("rows").unwrap().read_scalar::<u64>().unwrap(), 60);
        assert_eq!(f.attr("features").unwrap().read_scalar::<u64>().unwrap(), 5);
        digests.push(attr_str(&out, "x_digest"));
    }
    assert_eq!(digests[0], digests[1]);
}

/// `--split drop-remainder` (the 3PC reference code's split, §G.4a) is the balanced split
/// of the file without its last N mod W rows: the same model bit for bit, on 1 and 2
/// ranks (6513 rows, W = 4: the last row is left out).
#[test]
fn drop_remainder_leaves_out_the_last_rows() {
    let dir = TempDir::new("drop-remainder");
    let text = std::fs::read_to_string(embedded("agaricus.txt.train")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() % 4, 1, "the fixture must leave a remainder");
    let cut = dir.path("cut.svm");
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let common = ["--method", "ef21", "--compressor", "top-k:k=5", "--iters", "20", "--workers", "4"];
    for ranks in [1, 2] {
        let dropped = dir.path(&format!("dropped-{ranks}.h5"));
        let mut rest = common.to_vec();
        rest.extend(["--split", "drop-remainder"]);
        mpirun(ranks, &strs(&train_args(dropped.to_str().unwrap(), &rest))).expect_ok();
        let balanced = dir.path(&format!("balanced-{ranks}.h5"));
        let args = [
            &["train", "--data", cut.to_str().unwrap()][..],
            &common,
            &["--objective", "logistic", "--lambda", "0.1", "--out", balanced.to_str().unwrap()],
        ]
        .concat();
        mpirun(ranks, &args).expect_ok();
        assert_eq!(attr_str(&dropped, "x_digest"), attr_str(&balanced, "x_digest"), "{ranks} ranks");
    }
}

/// The LIBSVM text with a constant feature `1:1` in front of every row and the other
/// indices shifted up by one.
fn with_constant_first_feature(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            let label = fields.next().unwrap();
            let features: Vec<String> = fields
                .map(|f| {
                    let (j, v) = f.split_once(':').unwrap();
                    format!("{}:{v}", j.parse::<u32>().unwrap() + 1)
                })
                .collect();
            format!("{label} 1:1 {}\n", features.join(" "))
        })
        .collect()
}

/// `--bias` is the data with a constant first feature: the same model, losses and test
/// accuracies bit for bit as files (training and held-out) whose rows start with `1:1`
/// and whose other indices are shifted up by one.
#[test]
fn bias_prepends_a_constant_feature() {
    let dir = TempDir::new("bias");
    let shifted = |name: &str| {
        let path = dir.path(&format!("shifted-{name}"));
        std::fs::write(&path, with_constant_first_feature(&std::fs::read_to_string(embedded(name)).unwrap())).unwrap();
        path
    };
    let (train, test) = (shifted("agaricus.txt.train"), shifted("agaricus.txt.test"));
    let common = ["--method", "ef21", "--compressor", "top-k:k=5", "--iters", "20", "--test-every", "5"];
    let biased = dir.path("bias.h5");
    let mut rest = common.to_vec();
    let original_test = embedded("agaricus.txt.test");
    rest.extend(["--bias", "--test", original_test.to_str().unwrap()]);
    mpirun(2, &strs(&train_args(biased.to_str().unwrap(), &rest))).expect_ok();
    let plain = dir.path("plain.h5");
    let args = [
        &["train", "--data", train.to_str().unwrap(), "--test", test.to_str().unwrap()][..],
        &common,
        &["--objective", "logistic", "--lambda", "0.1", "--out", plain.to_str().unwrap()],
    ]
    .concat();
    mpirun(2, &args).expect_ok();
    assert_eq!(attr_str(&biased, "x_digest"), attr_str(&plain, "x_digest"));
    assert_eq!(column::<f64>(&biased, "loss"), column::<f64>(&plain, "loss"));
    let accuracy = |file: &std::path::Path| -> Vec<f64> {
        hdf5::File::open(file).unwrap().dataset("test/accuracy").unwrap().read_raw().unwrap()
    };
    assert_eq!(accuracy(&biased), accuracy(&plain));
    assert!(accuracy(&biased).iter().any(|a| *a > 0.8), "{:?}", accuracy(&biased));
}
