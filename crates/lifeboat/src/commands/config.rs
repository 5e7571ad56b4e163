//! `lifeboat config show|init`: the configuration in effect, and a
//! commented file to start from (the one the Debian package ships).

use super::Ctx;
use crate::cli::ConfigCmd;
use anyhow::{bail, Context};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// The commented configuration file: every key with its default. The
/// Debian package installs this text as `/etc/lifeboat/lifeboat.toml`, and
/// `lifeboat.toml(5)` is rendered from it.
pub const COMMENTED: &str = include_str!("../../../../packaging/lifeboat.toml");

/// Dispatch a config subcommand.
pub fn run(ctx: &Ctx, cmd: ConfigCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCmd::Show => show(ctx),
        ConfigCmd::Init { file, force } => init(ctx, file.as_deref(), force),
    }
}

/// Print the configuration in effect, every default filled in.
fn show(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    if ctx.json {
        let mut v = serde_json::to_value(&ctx.config)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("signing_keys".into(), super::trust::show_json(ctx));
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("# effective configuration (file: {})", ctx.config_path.display());
        print!("{}", super::trust::show(ctx));
        print!("{}", ctx.config.to_toml());
    }
    Ok(ExitCode::SUCCESS)
}

/// Write [`COMMENTED`] to `file` (default: the configuration path), never
/// over an existing file unless `force`; `-` prints it.
fn init(ctx: &Ctx, file: Option<&Path>, force: bool) -> anyhow::Result<ExitCode> {
    let path = file.unwrap_or(&ctx.config_path);
    if path == Path::new("-") {
        std::io::stdout().write_all(COMMENTED.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    if path.exists() && !force {
        bail!(
            "{} exists: not replacing it (give --force to replace it, or another FILE; `lifeboat config init -` prints the file)",
            path.display()
        );
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Root-only: the file may come to hold S3 keys.
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(COMMENTED.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    if !ctx.quiet {
        println!("wrote {}: every key with its default, commented out", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commented_file_is_a_valid_configuration_of_defaults() {
        let c = lifeboat_config::Config::parse(COMMENTED, Path::new("lifeboat.toml")).expect("parses");
        assert_eq!(c, lifeboat_config::Config::default());
    }
}
