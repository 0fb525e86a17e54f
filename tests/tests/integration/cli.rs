//! The command-line contract: exit codes (0 ok, 1 failure, 2 usage/config) and config checking,
//! driven through the same entry point the binary uses.

use std::process::ExitCode;

use ctrflow_pipeline::run;

fn code(args: &[&str]) -> ExitCode {
    run(std::iter::once("ctrflow").chain(args.iter().copied()))
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

#[test]
fn config_check_accepts_the_shipped_configs() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs");
    for name in ["demo.toml", "production.example.toml"] {
        let path = format!("{root}/{name}");
        assert_eq!(
            code(&["config", "check", "--quiet-ok", &path]),
            ExitCode::SUCCESS,
            "{name}"
        );
    }
}

#[test]
fn config_check_rejects_bad_files_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in [
        ("unknown.toml", "[generator]\nuserz = 3\n"),
        ("type.toml", "[generator]\nusers = \"x\"\n"),
        ("range.toml", "[schema]\nmax-seq-len = 0\n"),
        ("syntax.toml", "[generator\n"),
    ] {
        let path = write(&dir, name, text);
        assert_eq!(
            code(&["config", "check", &path]),
            ExitCode::from(2),
            "{name}"
        );
    }
    assert_eq!(
        code(&["config", "check", "/nonexistent.toml"]),
        ExitCode::from(2)
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    assert_eq!(code(&["no-such-command"]), ExitCode::from(2));
    assert_eq!(code(&["generate", "--days", "many"]), ExitCode::from(2));
    assert_eq!(
        code(&["generate", "--format", "jsonl"]),
        ExitCode::from(2),
        "jsonl needs --out"
    );
    assert_eq!(code(&["--help"]), ExitCode::SUCCESS);
    assert_eq!(code(&["sql", "--help"]), ExitCode::SUCCESS);
}

#[test]
fn failures_exit_1_and_bad_stores_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().display().to_string();
    assert_eq!(
        code(&["sql", "--store", &store, "SELECT nonsense FROM nowhere"]),
        ExitCode::from(1)
    );
    assert_eq!(
        code(&["sql", "--store", "ftp://host/x", "SELECT 1"]),
        ExitCode::from(2)
    );
    let missing = dir.path().join("no-dataset").display().to_string();
    assert_eq!(
        code(&["import", "movielens", &missing, "--store", &store]),
        ExitCode::from(1)
    );
}

#[test]
fn device_flag_is_checked_before_any_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().display().to_string();
    let daily = |device: &str| {
        code(&[
            "daily",
            "--store",
            &store,
            "--date",
            "2024-01-02",
            "--dry-run",
            "--device",
            device,
        ])
    };
    assert_eq!(daily("tpu"), ExitCode::from(2), "not a device");
    assert_eq!(daily("cuda:x"), ExitCode::from(2), "not a device index");
    // A libtorch device in a build without the `tch` feature is a usage error, not a fall-back.
    let libtorch = daily("libtorch");
    if ctrflow_models::ComputeDevice::LibTorchCpu.is_compiled_in() {
        assert_ne!(libtorch, ExitCode::from(2));
    } else {
        assert_eq!(libtorch, ExitCode::from(2));
    }
    assert_ne!(daily("flex"), ExitCode::from(2));
}

#[test]
fn training_commands_run_with_tuned_malloc_and_others_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().display().to_string();
    let allocator = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ctrflow-under-test"));
        command.arg("-v").args(args);
        command.env_remove(ctrflow_models::malloc::TUNED_MARKER);
        command.env_remove("CTRFLOW_MALLOC_TUNING");
        for (key, _) in ctrflow_models::malloc::TRAINING_MALLOC_ENV {
            command.env_remove(key);
        }
        let output = command.output().expect("run ctrflow");
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        stderr
            .lines()
            .find(|l| l.contains("allocator"))
            .unwrap_or_else(|| panic!("no allocator log line in {stderr}"))
            .to_string()
    };
    let daily = [
        "daily",
        "--store",
        &store,
        "--date",
        "2024-01-02",
        "--dry-run",
    ];
    let tuned = allocator(&daily);
    assert!(tuned.contains("training settings"), "{tuned}");
    // Every setting reaches the re-executed process, huge pages for malloc's memory included.
    for (key, value) in ctrflow_models::malloc::TRAINING_MALLOC_ENV {
        assert!(
            tuned.contains(&format!("{key}={value}")),
            "{key} in {tuned}"
        );
    }
    assert!(allocator(&["sql", "--store", &store, "SELECT 1"]).contains("glibc defaults"));
}
