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
         .SH SEE ALSO\n\\fBlifeboat\\fR(1), \\fBlifeboat\\-config\\-show\\fR(1), \\fBlifeboat\\-config\\-init\\fR(1)\n",
    );
    page
}
