//! Shell completions and man pages, generated from the CLI definition.

use crate::cli::{Cli, CompletionsArgs, ManpageArgs};
use anyhow::Context;
use clap::CommandFactory;
use std::process::ExitCode;

/// Print a completion script for a shell.
pub fn completions(a: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "lifeboat", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Write lifeboat.1 and one page per subcommand (lifeboat-layout-save.1, ...).
pub fn manpages(a: ManpageArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("cannot create {}", a.dir.display()))?;
    let mut written = Vec::new();
    fn walk(cmd: &clap::Command, prefix: &str, dir: &std::path::Path, written: &mut Vec<String>) -> anyhow::Result<()> {
        let name = if prefix.is_empty() { cmd.get_name().to_string() } else { format!("{prefix}-{}", cmd.get_name()) };
        let page = cmd.clone().name(name.clone());
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf)?;
        let file = dir.join(format!("{name}.1"));
        std::fs::write(&file, buf).with_context(|| format!("cannot write {}", file.display()))?;
        written.push(file.display().to_string());
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub, &name, dir, written)?;
        }
        Ok(())
    }
    let mut cmd = Cli::command();
    cmd.build();
    walk(&cmd, "", &a.dir, &mut written)?;
    println!("wrote {} man pages to {}", written.len(), a.dir.display());
    Ok(ExitCode::SUCCESS)
}
