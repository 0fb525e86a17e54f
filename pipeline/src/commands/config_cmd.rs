//! `ctrflow config check|show`.

use crate::cli::ConfigCommand;
use crate::config::CtrflowConfig;

pub fn run(cmd: ConfigCommand, config: &CtrflowConfig) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Check { file, quiet_ok } => {
            // Loading already validated the file; reaching here means it is valid.
            if !quiet_ok {
                println!("# {} is valid; effective configuration:", file.display());
                print!("{}", config.to_toml());
            }
        }
        ConfigCommand::Show => print!("{}", config.to_toml()),
    }
    Ok(())
}
