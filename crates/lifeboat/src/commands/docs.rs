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

/// Write lifeboat.1, one page per subcommand (lifeboat-layout-save.1, ...)
/// and lifeboat.toml.5.
pub fn manpages(ctx: &super::Ctx, a: ManpageArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("cannot create {}", a.dir.display()))?;
    let mut written = Vec::new();
    fn walk(cmd: &clap::Command, prefix: &str, dir: &std::path::Path, written: &mut Vec<String>) -> anyhow::Result<()> {
        let name = if prefix.is_empty() { cmd.get_name().to_string() } else { format!("{prefix}-{}", cmd.get_name()) };
        let page = cmd.clone().name(name.clone());
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf)?;
        let subs: Vec<String> = cmd
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .map(|s| format!("{name}-{}", s.get_name()))
            .collect();
        buf.extend_from_slice(closing_sections(&name, prefix, &subs).as_bytes());
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
    let file = a.dir.join("lifeboat.toml.5");
    std::fs::write(&file, config_page()).with_context(|| format!("cannot write {}", file.display()))?;
    written.push(file.display().to_string());
    if !ctx.quiet {
        println!("wrote {} man pages to {}", written.len(), a.dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Examples for a page (`lifeboat-backup-prune`), as (command line, what it does).
fn examples(page: &str) -> &'static [(&'static str, &'static str)] {
    match page {
        "lifeboat" => &[
            ("lifeboat check", "can this machine make rescue media? one line per check, with fixes"),
            ("lifeboat mkbackup", "rescue medium and backup in one go (mkbackup.mode)"),
            ("lifeboat \\-q layout diff || lifeboat \\-q mkrescue", "new rescue media when the layout changed"),
            ("lifeboat status", "what ran when, and what is overdue"),
        ],
        "lifeboat-check" => &[("lifeboat check \\-\\-json", "the preflight for scripts")],
        "lifeboat-layout" | "lifeboat-layout-save" => {
            &[("lifeboat layout save", "capture the layout into paths.layout_file")]
        }
        "lifeboat-layout-show" => &[("lifeboat layout show \\-", "the live system's layout as a tree, without saving")],
        "lifeboat-layout-diff" => {
            &[("lifeboat layout diff || echo changed", "exit 1 when something that matters for recovery changed")]
        }
        "lifeboat-backup" => &[
            ("lifeboat backup \\-\\-target file:///mnt/backup", "every local filesystem mounted now, signed"),
            ("lifeboat backup \\-\\-root /srv/data \\-\\-target sftp://backup@vault/srv/backup .", "one tree over SSH"),
        ],
        "lifeboat-backup-list" => &[("lifeboat backup list \\-\\-json", "the backups on backup.target, for scripts")],
        "lifeboat-backup-info" => &[(
            "lifeboat backup info \\-\\-from file:///mnt/backup/web1/2026\\-12\\-01T101010.123Z",
            "one backup in detail",
        )],
        "lifeboat-backup-prune" => &[
            (
                "lifeboat backup prune \\-\\-keep\\-daily 7 \\-\\-keep\\-weekly 5 \\-\\-dry\\-run",
                "what a policy would remove",
            ),
            ("lifeboat \\-q backup prune", "apply [backup.retention] (what lifeboat\\-prune.timer runs)"),
        ],
        "lifeboat-restore" => &[(
            "lifeboat restore \\-\\-from file:///mnt/backup \\-\\-to /mnt/x etc/ssh",
            "one directory of the newest backup",
        )],
        "lifeboat-verify" => {
            &[("lifeboat verify \\-\\-from file:///mnt/backup", "every volume, checksum and the signature")]
        }
        "lifeboat-compare" => {
            &[("lifeboat compare \\-\\-root /", "the live system against its newest backup: an intrusion check")]
        }
        "lifeboat-mkrescue" => &[("lifeboat mkrescue \\-\\-format raw", "a disk image for a USB stick")],
        "lifeboat-burn" => {
            &[("lifeboat burn \\-\\-device /dev/sdX", "the newest image to a stick, read back and verified")]
        }
        "lifeboat-mkbackup" => {
            &[("lifeboat mkbackup \\-\\-mode media", "the backup on the rescue media, as many as it needs")]
        }
        "lifeboat-recover" => &[
            ("lifeboat recover \\-\\-plan", "what recovery would do, without writing anything"),
            ("lifeboat recover \\-\\-map /dev/sda=/dev/nvme0n1", "onto another disk"),
        ],
        "lifeboat-drill" => {
            &[("lifeboat drill", "boot the rescue medium in a VM, recover, boot the result, write a report")]
        }
        "lifeboat-status" => &[
            ("lifeboat \\-q status", "nothing when all is well (exit 0), else the table and exit 1 or 2"),
            (
                "lifeboat status \\-\\-prometheus /var/lib/prometheus/node\\-exporter/lifeboat.prom",
                "metrics for node_exporter",
            ),
        ],
        "lifeboat-serve" => &[("lifeboat serve", "serve the rescue system, a golden backup and clone files to a farm")],
        "lifeboat-config" | "lifeboat-config-show" => &[("lifeboat config show", "the configuration in effect")],
        "lifeboat-config-init" => {
            &[("lifeboat config init /etc/lifeboat/lifeboat.toml", "every key with its default, commented out")]
        }
        "lifeboat-completions" => &[("lifeboat completions bash > /etc/bash_completion.d/lifeboat", "bash completion")],
        "lifeboat-manpage" => &[("lifeboat manpage \\-\\-dir /usr/local/share/man/man1", "these pages")],
        _ => &[],
    }
}

/// The sections every page ends with: EXIT STATUS, FILES, EXAMPLES and SEE
/// ALSO (lifeboat(1), the parent page, the subcommands' pages and
/// lifeboat.toml(5), all written by the same run).
fn closing_sections(page: &str, parent: &str, subs: &[String]) -> String {
    let mut t = String::from(
        ".SH \"EXIT STATUS\"\n.TP\n0\nSuccess.\n.TP\n1\nSomething is not right, and the output says what: a failed preflight check, a \
         changed layout, a damaged backup, a difference found, a backup that could not store every file as it was, a failed \
         drill, an overdue job (status).\n.TP\n2\nAn error (bad input, a missing file, an unreachable target), with one message \
         naming the thing and the fix; \\fBstatus\\fR: a job's last run failed.\n\
         .SH FILES\n.TP\n/etc/lifeboat/lifeboat.toml\nThe configuration (\\fBlifeboat.toml\\fR(5)); \\fB\\-\\-config\\fR or \
         \\fBLIFEBOAT_CONFIG\\fR name another.\n.TP\n/etc/lifeboat/signing.key, /etc/lifeboat/signing.pub\nThe backup signing \
         keys (\\fBpaths.key_dir\\fR).\n.TP\n/var/lib/lifeboat/layout.toml\nThe saved layout (\\fBpaths.layout_file\\fR).\n\
         .TP\n/var/lib/lifeboat/output/\nRescue media (\\fBpaths.output_dir\\fR).\n.TP\n/var/lib/lifeboat/log/\nThe debug log \
         of every run; the newest 100 are kept.\n.TP\n/var/lib/lifeboat/status/\nThe last run of each job, for \\fBlifeboat status\\fR.\n",
    );
    let ex = examples(page);
    if !ex.is_empty() {
        t.push_str(".SH EXAMPLES\n");
        for (cmd, what) in ex {
            t.push_str(&format!(".TP\n\\fB{cmd}\\fR\n{what}\n"));
        }
    }
    let mut refs: Vec<String> = Vec::new();
    if page != "lifeboat" {
        refs.push("lifeboat".into());
    }
    if !parent.is_empty() && parent != "lifeboat" {
        refs.push(parent.into());
    }
    refs.extend(subs.iter().cloned());
    let mut see: Vec<String> = refs.iter().map(|r| format!("\\fB{}\\fR(1)", r.replace('-', "\\-"))).collect();
    see.push("\\fBlifeboat.toml\\fR(5)".into());
    t.push_str(&format!(".SH \"SEE ALSO\"\n{}\n", see.join(", ")));
    t
}

/// Text for a roff line: backslashes escaped, a leading `.` or `'` made literal.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// lifeboat.toml(5), rendered from the commented configuration file the
/// package ships ([`super::config::COMMENTED`]): its opening comment is the
/// description, each `[section]` a subsection, each `#key = value` line an
/// entry with the comment lines before it as its meaning.
pub fn config_page() -> String {
    let mut page = format!(
        ".TH LIFEBOAT.TOML 5 \"\" \"lifeboat {}\" \"File Formats\"\n.SH NAME\nlifeboat.toml \\- lifeboat's configuration file\n\
         .SH SYNOPSIS\n/etc/lifeboat/lifeboat.toml\n.SH DESCRIPTION\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut lines = super::config::COMMENTED.lines().peekable();
    // The opening comment, paragraph by paragraph.
    while let Some(l) = lines.next_if(|l| l.starts_with('#')) {
        let text = l.trim_start_matches('#').trim();
        page.push_str(&if text.is_empty() { ".PP\n".to_string() } else { format!("{}\n", roff(text)) });
    }
    page.push_str(".SH KEYS\n");
    let mut pending: Vec<&str> = Vec::new();
    for l in lines {
        if let Some(section) = l.strip_prefix('[') {
            page.push_str(&format!(".SS [{}\n", roff(section)));
            if !pending.is_empty() {
                page.push_str(&format!("{}\n", roff(&pending.join(" "))));
                pending.clear();
            }
        } else if let Some(entry) = l.strip_prefix('#').filter(|e| e.starts_with(|c: char| c.is_ascii_lowercase())) {
            let (entry, example) = match entry.strip_suffix("# example") {
                Some(e) => (e.trim_end(), true),
                None => (entry, false),
            };
            page.push_str(&format!(".TP\n\\fB{}\\fR\n", roff(entry)));
            if example {
                page.push_str("(unset by default; the value is an example)\n.br\n");
            } else {
                page.push_str("(the default)\n.br\n");
            }
            page.push_str(&format!("{}\n", roff(&pending.join(" "))));
            pending.clear();
        } else if let Some(text) = l.strip_prefix('#') {
            pending.push(text.trim());
        }
    }
    page.push_str(
        ".SH FILES\n.TP\n/etc/lifeboat/lifeboat.toml\nThis file (\\fB\\-\\-config\\fR or \\fBLIFEBOAT_CONFIG\\fR name another).\n\
         .TP\n/etc/lifeboat/signing.key, signing.pub\nThe backup signing keys (\\fBpaths.key_dir\\fR).\n\
         .TP\n/var/lib/lifeboat/log/\nThe debug log of every run; the newest 100 are kept.\n\
         .TP\n/usr/share/doc/lifeboat/configuration.md\nEvery key in full.\n\
         .SH \"SEE ALSO\"\n\\fBlifeboat\\fR(1), \\fBlifeboat\\-config\\-show\\fR(1), \\fBlifeboat\\-config\\-init\\fR(1)\n",
    );
    page
}
