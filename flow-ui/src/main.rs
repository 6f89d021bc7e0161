//! `blooming`: tools over a blooming-flowers datastore that need no flow's code.

fn main() -> std::process::ExitCode {
    flow_ui::cli::main()
}
