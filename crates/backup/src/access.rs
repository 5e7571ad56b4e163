//! What a rescue medium carries to reach a remote backup target (`s3://`,
//! `sftp://`) from the rescue system: the target's address always, its
//! secrets only when `rescue.target_credentials` says so.
//!
//! - `s3://`: the endpoint and region (also when the host took them from
//!   `AWS_ENDPOINT_URL`/`AWS_REGION`, which the rescue system does not
//!   have); with `target_credentials`, the resolved credentials as an AWS
//!   credentials file. Inline keys never go into the medium's configuration.
//! - `sftp://`: an ssh configuration for that host (what `ssh -G` resolves
//!   here: host name, port, user), the host's known keys from the known
//!   hosts files ssh reads (host keys stay verified: `StrictHostKeyChecking
//!   yes`), and with `target_credentials` the identity ssh would offer.

use crate::{Error, Feedback, Notice};
use lifeboat_archive::target::{s3, sftp};
use lifeboat_config::Config;
use lifeboat_runner::{Cmd, Runner};
use std::path::{Path, PathBuf};

/// The S3 credentials file in the rescue system's `/etc/lifeboat`.
pub const RESCUE_S3_CREDENTIALS: &str = "s3-credentials";
/// The ssh configuration for an `sftp://` target in the rescue system's `/etc/lifeboat`
/// (the rescue system exports `LIFEBOAT_SSH_CONFIG` naming it).
pub const RESCUE_SSH_CONFIG: &str = "ssh_config";
/// The known host keys of the `sftp://` target's host.
pub const RESCUE_KNOWN_HOSTS: &str = "ssh_known_hosts";
/// The ssh identity (private key) for the `sftp://` target.
pub const RESCUE_SSH_IDENTITY: &str = "ssh_identity";
/// Where the rescue system keeps lifeboat's files.
const RESCUE_ETC: &str = "/etc/lifeboat";

/// Known-hosts and identity files larger than this are refused.
const MAX_SSH_FILE: u64 = 1 << 20;

/// Adapt `cfg` (the rescue system's configuration, a copy of `config`) and
/// add to `files` what reaches the backup target `url` from the rescue
/// system. Targets other than `s3://` and `sftp://` need nothing, but the
/// S3 keys are taken out of `cfg` whatever the target (and with `url`
/// empty): a medium never carries them in its configuration.
pub fn for_rescue(
    config: &Config,
    url: &str,
    cfg: &mut Config,
    files: &mut Vec<(String, String)>,
    runner: &dyn Runner,
    feedback: &mut dyn Feedback,
) -> Result<(), Error> {
    let s = &mut cfg.backup.s3;
    s.access_key_id.clear();
    s.secret_access_key.clear();
    s.credentials_file = PathBuf::new();
    s.profile.clear();
    if url.starts_with("s3://") {
        s3_for_rescue(config, url, cfg, files, feedback)
    } else if url.starts_with("sftp://") {
        sftp_for_rescue(config, url, files, runner, feedback)
    } else {
        Ok(())
    }
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

fn s3_for_rescue(
    config: &Config,
    url: &str,
    cfg: &mut Config,
    files: &mut Vec<(String, String)>,
    feedback: &mut dyn Feedback,
) -> Result<(), Error> {
    let s = &mut cfg.backup.s3;
    // What the host took from its environment, the rescue system must be told.
    if s.endpoint.is_empty() {
        s.endpoint = env("AWS_ENDPOINT_URL").unwrap_or_default();
    }
    if s.region.is_empty() {
        s.region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or_default();
    }
    if !config.rescue.target_credentials {
        feedback.notice(Notice::NoCredentialsOnMedium {
            url: url.into(),
            how: "recovery needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the rescue shell (an unattended \
                  recovery stops before touching a disk); rescue.target_credentials = true puts them on the medium"
                .into(),
        });
        return Ok(());
    }
    let text = s3::credentials_file_text(url, &crate::job::target_settings(config).s3)?;
    files.push((RESCUE_S3_CREDENTIALS.into(), text));
    s.credentials_file = Path::new(RESCUE_ETC).join(RESCUE_S3_CREDENTIALS);
    s.profile = "default".into();
    feedback.notice(Notice::CredentialsOnMedium {
        url: url.into(),
        warning: format!(
            "the rescue medium carries the S3 credentials of {url} (rescue.target_credentials): whoever has the \
             medium can read the backups, and delete them if the key may; keep the medium as safe as the key, or \
             use a read-only key for it"
        ),
    });
    Ok(())
}

/// What `ssh -G` resolves for a host: the options a rescue system's ssh needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// `hostname`.
    pub hostname: String,
    /// `port`.
    pub port: Option<u16>,
    /// `user`.
    pub user: Option<String>,
    /// `identityfile` entries, in order (`~` expanded against `home`).
    pub identity_files: Vec<PathBuf>,
    /// `userknownhostsfile` and `globalknownhostsfile` entries.
    pub known_hosts_files: Vec<PathBuf>,
    /// `proxyjump`, when set (the rescue system cannot follow it by itself).
    pub proxy_jump: Option<String>,
}

/// Parse `ssh -G` output (lowercase `key value` lines).
pub fn parse_ssh_g(text: &str, home: &Path) -> Resolved {
    let expand = |p: &str| match p.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(p),
    };
    let mut r = Resolved::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(' ') else { continue };
        let v = v.trim();
        match k {
            "hostname" => r.hostname = v.to_string(),
            "port" => r.port = v.parse().ok(),
            "user" => r.user = Some(v.to_string()),
            "identityfile" => r.identity_files.push(expand(v)),
            "userknownhostsfile" | "globalknownhostsfile" => {
                r.known_hosts_files.extend(v.split_whitespace().map(expand));
            }
            "proxyjump" if v != "none" => r.proxy_jump = Some(v.to_string()),
            _ => {}
        }
    }
    r
}

/// The rescue system's ssh configuration for the target's `host`.
pub fn rescue_ssh_config(host: &str, r: &Resolved, identity: bool) -> String {
    let mut out = format!(
        "# Made by lifeboat mkbackup: how the rescue system reaches the backup target.\nHost {host}\n  HostName {}\n",
        r.hostname
    );
    if let Some(p) = r.port {
        out.push_str(&format!("  Port {p}\n"));
    }
    if let Some(u) = &r.user {
        out.push_str(&format!("  User {u}\n"));
    }
    out.push_str(&format!(
        "  UserKnownHostsFile {RESCUE_ETC}/{RESCUE_KNOWN_HOSTS}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
    ));
    if identity {
        out.push_str(&format!("  IdentityFile {RESCUE_ETC}/{RESCUE_SSH_IDENTITY}\n  IdentitiesOnly yes\n"));
    }
    out
}

/// A small text file, or None when it is not there.
fn small_file(p: &Path) -> Result<Option<String>, Error> {
    match std::fs::metadata(p) {
        Err(_) => Ok(None),
        Ok(m) if !m.is_file() => Ok(None),
        Ok(m) if m.len() > MAX_SSH_FILE => Err(Error::Io {
            what: format!("{} is larger than {} KiB: not put on the rescue medium", p.display(), MAX_SSH_FILE >> 10),
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        }),
        Ok(_) => std::fs::read_to_string(p).map(Some).map_err(Error::io(format!("cannot read {}", p.display()))),
    }
}

fn sftp_for_rescue(
    config: &Config,
    url: &str,
    files: &mut Vec<(String, String)>,
    runner: &dyn Runner,
    feedback: &mut dyn Feedback,
) -> Result<(), Error> {
    let a = sftp::Address::parse(url)?;
    let mut cmd = Cmd::new("ssh").arg("-G");
    if let Some(f) = env("LIFEBOAT_SSH_CONFIG") {
        cmd = cmd.args(["-F", &f]);
    }
    if let Some(p) = a.port {
        cmd = cmd.args(["-p", &p.to_string()]);
    }
    if let Some(u) = &a.user {
        cmd = cmd.args(["-l", u]);
    }
    let out = runner.probe(&cmd.args(["--", &a.host])).map_err(|e| Error::TargetAccess {
        url: url.into(),
        why: format!("`ssh -G {}` failed: {}", a.host, e.reason()),
    })?;
    let home = env("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    let r = parse_ssh_g(&out.text(), &home);
    if let Some(j) = &r.proxy_jump {
        feedback.notice(Notice::NoCredentialsOnMedium {
            url: url.into(),
            how: format!(
                "ssh reaches {} through ProxyJump {j}, which the rescue system's ssh configuration does not repeat: \
                 recover from the rescue shell with your own ssh configuration (LIFEBOAT_SSH_CONFIG=FILE)",
                a.host
            ),
        });
    }
    let mut known = String::new();
    for f in &r.known_hosts_files {
        if let Some(t) = small_file(f)? {
            known.push_str(&t);
            if !known.ends_with('\n') {
                known.push('\n');
            }
        }
    }
    if known.is_empty() {
        return Err(Error::TargetAccess {
            url: url.into(),
            why: format!(
                "no known host key of {} in {}: the rescue system could not verify the server; connect once with \
                 `ssh {}` to record its key",
                a.host,
                r.known_hosts_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                a.host
            ),
        });
    }
    files.push((RESCUE_KNOWN_HOSTS.into(), known));
    let mut identity = false;
    if config.rescue.target_credentials {
        let key = r
            .identity_files
            .iter()
            .find_map(|f| small_file(f).map(|t| t.map(|t| (f.clone(), t))).transpose())
            .transpose()?;
        let Some((key_file, key)) = key else {
            return Err(Error::TargetAccess {
                url: url.into(),
                why: format!(
                    "rescue.target_credentials is set, but none of the identity files ssh uses for {} exists ({}); \
                     an agent's key cannot be put on a medium",
                    a.host,
                    r.identity_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                ),
            });
        };
        files.push((RESCUE_SSH_IDENTITY.into(), key));
        identity = true;
        feedback.notice(Notice::CredentialsOnMedium {
            url: url.into(),
            warning: format!(
                "the rescue medium carries the SSH identity {} that logs into {} (rescue.target_credentials): \
                 whoever has the medium can log in there with it; give the target a key of its own (IdentityFile \
                 in ~/.ssh/config for that host), restrict it on the server (e.g. `restrict,command=\"internal-sftp\"` \
                 in authorized_keys), and keep the medium safe",
                key_file.display(),
                a.host
            ),
        });
    } else {
        feedback.notice(Notice::NoCredentialsOnMedium {
            url: url.into(),
            how: "the rescue medium carries no SSH identity: recovery needs one (an agent forwarded into the rescue \
                  shell, or a key given with LIFEBOAT_SSH_CONFIG); rescue.target_credentials = true puts it on the medium"
                .into(),
        });
    }
    files.push((RESCUE_SSH_CONFIG.into(), rescue_ssh_config(&a.host, &r, identity)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_g_output_is_read_with_home_expanded() {
        let text = "user backup\nhostname vault.example.net\nport 2222\nidentityfile ~/.ssh/id_ed25519\n\
                    identityfile /etc/keys/k\nuserknownhostsfile ~/.ssh/known_hosts ~/.ssh/known_hosts2\n\
                    globalknownhostsfile /etc/ssh/ssh_known_hosts\nproxyjump none\n";
        let r = parse_ssh_g(text, Path::new("/root"));
        assert_eq!(r.hostname, "vault.example.net");
        assert_eq!(r.port, Some(2222));
        assert_eq!(r.user.as_deref(), Some("backup"));
        assert_eq!(r.identity_files, vec![PathBuf::from("/root/.ssh/id_ed25519"), PathBuf::from("/etc/keys/k")]);
        assert_eq!(r.known_hosts_files.len(), 3);
        assert_eq!(r.proxy_jump, None);
        assert_eq!(parse_ssh_g("proxyjump bastion\n", Path::new("/")).proxy_jump.as_deref(), Some("bastion"));
    }

    #[test]
    fn the_rescue_ssh_config_verifies_host_keys_and_names_the_identity_only_when_carried() {
        let r =
            Resolved { hostname: "10.0.0.5".into(), port: Some(2222), user: Some("b".into()), ..Resolved::default() };
        let with = rescue_ssh_config("vault", &r, true);
        assert!(with.contains("Host vault\n  HostName 10.0.0.5\n  Port 2222\n  User b\n"), "{with}");
        assert!(with.contains("StrictHostKeyChecking yes") && with.contains("GlobalKnownHostsFile /dev/null"));
        assert!(with.contains("IdentityFile /etc/lifeboat/ssh_identity"));
        assert!(!rescue_ssh_config("vault", &r, false).contains("IdentityFile"));
    }

    fn s3_config(credentials: bool) -> Config {
        let mut c = Config::default();
        c.backup.target = "s3://bucket/fleet".into();
        c.backup.s3.endpoint = "http://10.0.2.100".into();
        c.backup.s3.access_key_id = "GKexample".into();
        c.backup.s3.secret_access_key = "s3cret".into();
        c.rescue.target_credentials = credentials;
        c
    }

    #[test]
    fn s3_secrets_stay_off_the_medium_unless_asked() {
        let runner = lifeboat_runner::SystemRunner::new(lifeboat_runner::Mode::Plan);
        let c = s3_config(false);
        let (mut cfg, mut files, mut notes) = (c.clone(), Vec::new(), Vec::<Notice>::new());
        for_rescue(&c, "s3://bucket/fleet", &mut cfg, &mut files, &runner, &mut notes).expect("rescue");
        assert!(files.is_empty());
        assert!(!cfg.to_toml().contains("s3cret") && !cfg.to_toml().contains("GKexample"));
        assert_eq!(cfg.backup.s3.endpoint, "http://10.0.2.100");
        assert!(notes.iter().any(|n| matches!(n, Notice::NoCredentialsOnMedium { .. })));

        let c = s3_config(true);
        let (mut cfg, mut files, mut notes) = (c.clone(), Vec::new(), Vec::<Notice>::new());
        for_rescue(&c, "s3://bucket/fleet", &mut cfg, &mut files, &runner, &mut notes).expect("rescue");
        assert!(!cfg.to_toml().contains("s3cret"), "the secret is in the credentials file, not the config");
        assert_eq!(cfg.backup.s3.credentials_file, Path::new("/etc/lifeboat/s3-credentials"));
        let (name, text) = &files[0];
        assert_eq!(name, RESCUE_S3_CREDENTIALS);
        assert!(text.contains("aws_access_key_id = GKexample\naws_secret_access_key = s3cret\n"), "{text}");
        assert!(notes.iter().any(|n| matches!(n, Notice::CredentialsOnMedium { .. })));
    }

    #[test]
    fn other_targets_need_nothing_and_never_carry_s3_keys() {
        let runner = lifeboat_runner::SystemRunner::new(lifeboat_runner::Mode::Plan);
        let c = Config::default();
        let (mut cfg, mut files, mut notes) = (c.clone(), Vec::new(), Vec::<Notice>::new());
        for_rescue(&c, "file:///mnt/backup", &mut cfg, &mut files, &runner, &mut notes).expect("rescue");
        assert!(files.is_empty() && notes.is_empty() && cfg == c);
        // Keys configured for another use of S3 stay off a medium of a file://, tape or media backup.
        let c = s3_config(true);
        for url in ["file:///mnt/backup", "tape:///dev/nst0", ""] {
            let (mut cfg, mut files, mut notes) = (c.clone(), Vec::new(), Vec::<Notice>::new());
            for_rescue(&c, url, &mut cfg, &mut files, &runner, &mut notes).expect("rescue");
            let text = cfg.to_toml();
            assert!(files.is_empty() && !text.contains("s3cret") && !text.contains("GKexample"), "{url}: {text}");
        }
    }
}
