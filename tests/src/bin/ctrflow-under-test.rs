//! The `ctrflow` command line, built inside the integration-test package so that `cargo test`
//! builds it with the tests and they find it through `CARGO_BIN_EXE_ctrflow-under-test`. It is
//! the same entry point as `pipeline/src/main.rs`.

fn main() -> std::process::ExitCode {
    ctrflow_pipeline::main_entry()
}
