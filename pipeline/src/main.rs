//! The `ctrflow` binary. See `ctrflow --help`.

fn main() -> std::process::ExitCode {
    ctrflow_pipeline::main_entry()
}
