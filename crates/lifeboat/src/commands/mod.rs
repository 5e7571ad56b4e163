//! One function per subcommand; each returns the process exit code.

mod backup;
mod burn;
mod check;
mod config;
mod docs;
mod drill;
mod feedback;
mod layout;
mod list;
mod mkbackup;
mod mkrescue;
mod recover;
mod restore;
mod serve;
mod status;
mod trust;
mod verify;

use crate::cli::{Cli, Command, ConfigCmd, FromArgs};
use anyhow::Context;
use lifeboat_config::{Config, DEFAULT_PATH};
use std::path::PathBuf;
use std::process::ExitCode;

/// What every command gets: the parsed configuration and output flags.
#[derive(Debug)]
pub struct Ctx {
    /// The configuration in effect.
    pub config: Config,
    /// Where it came from.
    pub config_path: PathBuf,
    /// JSON output requested.
    pub json: bool,
    /// `-q`: print nothing on success but what the command is asked to show
    /// (a list, a tree, `--json`); errors and questions still appear.
    pub quiet: bool,
}

/// The backup a `--from` names (else `backup.target`; a target's newest
/// backup of this host), with the trust `--insecure-unsigned` asks for.
fn find_of(ctx: &Ctx, from: &FromArgs) -> anyhow::Result<lifeboat_backup::find::Find> {
    Ok(lifeboat_backup::find::Find {
        source: lifeboat_backup::find::Source::from_arg(from.from.as_deref(), &ctx.config)?,
        host: lifeboat_backup::this_host(),
        trust: lifeboat_backup::keys::Trust {
            key_dir: ctx.config.paths.key_dir.clone(),
            insecure: from.insecure_unsigned,
        },
        unattended: false,
        identity: from.identity.clone().or_else(|| {
            let f = &ctx.config.backup.identity_file;
            (!f.as_os_str().is_empty()).then(|| f.clone())
        }),
        settings: lifeboat_backup::job::target_settings(&ctx.config),
    })
}

/// On SIGINT, SIGTERM or SIGHUP, remove the snapshots a `--snapshot`
/// backup holds before exiting (128 + the signal), so none is left behind.
pub fn remove_snapshots_on_signal() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("cannot set up the removal of snapshots on SIGINT/SIGTERM")?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            for l in lifeboat_backup::snapshot::release_all() {
                eprintln!("lifeboat: cannot remove {} ({}); remove it with: {}", l.what, l.why, l.fix);
            }
            eprintln!("lifeboat: interrupted by signal {sig}: the snapshots are removed, the backup was not completed");
            std::process::exit(128 + sig);
        }
    });
    Ok(())
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let explicit = cli.config.is_some();
    let config_path = cli.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    let level = crate::logging::level(cli.verbose, cli.quiet);
    // The configuration decides where the log file goes, so read it first;
    // if it is broken, log to the console only and report the error.
    // `config init` writes the file, so it needs none (and replaces a broken one with --force).
    let init = matches!(cli.command, Command::Config(ConfigCmd::Init { .. }));
    let config = Config::load(&config_path, explicit && !init);
    // Commands that only print what lifeboat knows leave no run log (a
    // monitoring system's `status` every few minutes would push out the others).
    let logged =
        !matches!(cli.command, Command::Config(_) | Command::Completions(_) | Command::Manpage(_) | Command::Status(_));
    let work_dir = config.as_ref().ok().filter(|_| logged).map(|c| c.paths.work_dir.clone());
    crate::logging::init(level, work_dir.as_deref());
    feedback::set_quiet(cli.quiet);
    let config = match config {
        Err(_) if init => Config::default(),
        c => c.context("cannot use the configuration")?,
    };
    let ctx = Ctx { config, config_path, json: cli.json, quiet: cli.quiet };
    let jobs = status::jobs_of(&cli.command, &ctx.config);
    let outcome = match cli.command {
        Command::Check => check::run(&ctx),
        Command::Layout(c) => layout::run(&ctx, c),
        Command::Mkrescue(a) => mkrescue::run(&ctx, a),
        Command::Burn(a) => burn::run(&ctx, a),
        Command::Mkbackup(a) => mkbackup::run(&ctx, a),
        Command::Recover(a) => recover::run(&ctx, a),
        Command::Drill(a) => drill::run(&ctx, a),
        Command::Serve(a) => serve::run(&ctx, a),
        Command::Backup(a) => backup::run(&ctx, a),
        Command::Restore(a) => restore::run(&ctx, a),
        Command::Verify(a) => verify::verify(&ctx, a),
        Command::Compare(a) => verify::compare(&ctx, a),
        Command::Config(c) => config::run(&ctx, c),
        Command::Completions(a) => docs::completions(a),
        Command::Manpage(a) => docs::manpages(&ctx, a),
        Command::Status(a) => status::run(&ctx, a),
    };
    status::record(&ctx.config, &jobs, &outcome);
    outcome
}
