//! What the rescue system's console says about the recovery: the phases
//! `lifeboat recover` reports (`phases: partitioning 1.4 s, filesystems
//! 7.3 s, ...`), its summary line, and whether a booted system reached
//! multi-user.

/// Remove terminal escape sequences (colours, cursor moves) from a console line.
pub fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates up to the final byte (@ to ~).
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The phases of the first `phases:` line on the console, in order:
/// (name, seconds). Malformed items are left out.
pub fn recovery_phases(console: &str) -> Vec<(String, f64)> {
    let Some(line) = console.lines().map(strip_escapes).find(|l| l.trim_start().starts_with("phases:")) else {
        return Vec::new();
    };
    let rest = line.trim_start().trim_start_matches("phases:");
    rest.split(',')
        .filter_map(|item| {
            let item = item.trim().strip_suffix(" s")?;
            let (name, secs) = item.rsplit_once(' ')?;
            let secs: f64 = secs.parse().ok()?;
            (secs.is_finite() && secs >= 0.0 && !name.trim().is_empty()).then(|| (name.trim().to_string(), secs))
        })
        .collect()
}

/// The console lines that say a booted system reached multi-user: systemd's
/// status message (current and older wording), or a login prompt on the
/// serial console.
pub const MULTI_USER: &[&str] =
    &["Reached target multi-user.target", "Reached target Multi-User System", "Reached target Graphical Interface"];

/// The login prompt of a getty on the serial console (`host login: `).
pub const LOGIN_PROMPT: &str = " login: ";

/// The line of `console` that shows multi-user was reached, if any.
pub fn multi_user_evidence(console: &str) -> Option<String> {
    console
        .lines()
        .map(strip_escapes)
        .find(|l| MULTI_USER.iter().any(|m| l.contains(m)) || l.trim_end().ends_with(LOGIN_PROMPT.trim_end()))
        .map(|l| l.trim().to_string())
}

/// The reason the rescue system gave for a failed recovery
/// (`lifeboat: recovery failed: REASON`).
pub fn failure_reason(console: &str) -> Option<String> {
    console
        .lines()
        .map(strip_escapes)
        .find_map(|l| l.split_once("lifeboat: recovery failed:").map(|(_, r)| r.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_read_from_recovers_line_once_though_every_console_repeats_it() {
        let console =
            "Booting\nphases: partitioning 1.4 s, filesystems 7.3 s, restore 47.7 s, fix 3.2 s, bootloader 6.5 s\n\
                       phases: partitioning 1.4 s, filesystems 7.3 s, restore 47.7 s, fix 3.2 s, bootloader 6.5 s\n";
        let p = recovery_phases(console);
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["partitioning", "filesystems", "restore", "fix", "bootloader"]);
        assert_eq!(p[2].1, 47.7);
    }

    #[test]
    fn malformed_phase_items_and_escape_sequences_do_not_confuse_the_parser() {
        let console = "\u{1b}[0mphases: partitioning 1.4 s, garbage, restore -3 s, fix NaN s, bootloader 2 s\n";
        assert_eq!(recovery_phases(console), vec![("partitioning".to_string(), 1.4), ("bootloader".to_string(), 2.0)]);
        assert!(recovery_phases("no phases here\n").is_empty());
    }

    #[test]
    fn multi_user_is_systemds_message_or_a_login_prompt() {
        let s = "[  OK  ] Started foo.\n[\u{1b}[0;32m  OK  \u{1b}[0m] Reached target \u{1b}[0;1;39mmulti-user.target\u{1b}[0m - Multi-User System.\n";
        assert_eq!(
            multi_user_evidence(s).as_deref(),
            Some("[  OK  ] Reached target multi-user.target - Multi-User System.")
        );
        assert!(multi_user_evidence("Debian GNU/Linux 12 source ttyS0\n\nsource login: ").is_some());
        assert!(multi_user_evidence("[  OK  ] Reached target basic.target - Basic System.\n").is_none());
    }

    #[test]
    fn the_rescue_systems_failure_reason_is_found() {
        let s = "lifeboat: recovery failed: volume 3 of the backup is missing\n";
        assert_eq!(failure_reason(s).as_deref(), Some("volume 3 of the backup is missing"));
        assert_eq!(failure_reason("lifeboat: recovery succeeded\n"), None);
    }
}
