//! Authenticated backups on the command line: the signing key made at the
//! first backup, the signature check every command that reads a backup goes
//! through, and the public keys that rescue media carry.

use super::Ctx;
use anyhow::{bail, Context};
use lifeboat_archive::read::Backup;
use lifeboat_archive::sign::{KeyOrigin, SignError, SigningKey, TrustedKeys, PUBLIC_KEY_FILE};
use lifeboat_archive::trust::{self, Policy, Verdict};
use std::path::{Path, PathBuf};

/// Where the rescue system keeps the public keys (its `paths.key_dir`).
pub const RESCUE_KEY_DIR: &str = "/etc/lifeboat";

/// The key that signs this host's backups; made, and announced on stderr,
/// when there is none yet.
pub fn signing_key(ctx: &Ctx, host: &str) -> anyhow::Result<SigningKey> {
    let dir = &ctx.config.paths.key_dir;
    let (key, origin) = SigningKey::load_or_create(dir, host)
        .with_context(|| format!("cannot use the backup signing key in {} (paths.key_dir)", dir.display()))?;
    if let KeyOrigin::Created { retired } = origin {
        announce(&key, retired.as_deref());
    }
    Ok(key)
}

/// Say once, when a key is made, what it is and where to keep its public half.
fn announce(key: &SigningKey, retired: Option<&Path>) {
    let public = key.public_key_text().unwrap_or_default();
    eprintln!(
        "lifeboat: made a new backup signing key {id}; every backup is signed with it from now on.\n\
         \x20 secret key {secret}: root-only, no password (backups run unattended), never put into a backup.\n\
         \x20 public key {pubfile}:\n{indented}\
         \x20 Keep a copy of the public key OFF this machine (with the rescue media, in the admin password store\n\
         \x20 or inventory): verifying and recovering need only the public key, and a backup target or medium\n\
         \x20 whose signature does not match it is refused. Rescue media made from now on carry it: make them\n\
         \x20 again (lifeboat mkrescue or mkbackup). Without lifeboat: minisign -Vm backup.json -p signing.pub",
        id = key.id(),
        secret = key.secret_key_file().display(),
        pubfile = key.public_key_file().display(),
        indented = public.lines().map(|l| format!("      {l}\n")).collect::<String>(),
    );
    if let Some(r) = retired {
        eprintln!(
            "  The secret key of the previous key was missing; its public key is kept as {}, so the backups signed with it still verify.",
            r.display()
        );
    }
}

/// What to do about a refused backup.
fn fix(e: &SignError, key_dir: &Path) -> String {
    let anyway = "--insecure-unsigned uses it all the same (never in unattended recovery)";
    match e {
        SignError::Missing { .. } => format!(
            "every backup this host's lifeboat makes is signed: trust this one only if you know where it came from; {anyway}"
        ),
        SignError::OtherKey { signed_by, .. } => format!(
            "if an older key of this host signed it, put that public key into {} as signing-{signed_by}.pub; if it is another machine's backup, use that machine's public key (paths.key_dir in --config); else it is not this host's backup: {anyway}",
            key_dir.display()
        ),
        SignError::Mismatch { .. } | SignError::Malformed { .. } => format!(
            "this is not the catalog this host signed: do not use this backup; take another one (lifeboat backup list, --from file:///DIR); {anyway}"
        ),
        SignError::NoTrustedKey { .. } => format!(
            "copy the public key of the machine that made the backup (its {PUBLIC_KEY_FILE}, kept with its rescue media and printed at its first backup) to {}, or set paths.key_dir; {anyway}",
            key_dir.join(PUBLIC_KEY_FILE).display()
        ),
        SignError::BadKey { .. } | SignError::Unsafe { .. } | SignError::Io { .. } | SignError::Crypto(_) => {
            format!("repair the key files in {} (paths.key_dir)", key_dir.display())
        }
    }
}

/// Open a backup only when its catalog is signed by a key trusted here
/// (`paths.key_dir`); with `insecure` (`--insecure-unsigned`), a missing or
/// wrong signature is a warning instead.
pub fn open(ctx: &Ctx, dir: &Path, insecure: bool) -> anyhow::Result<(Backup, Verdict)> {
    checked(ctx, dir, insecure, trust::open)
}

/// Run `f` (`lifeboat_archive::trust::open`, or `trust::verified_catalog`
/// for a restore from the tar stream alone when the manifest is damaged)
/// with the policy the trusted keys and `insecure` give; say what it found.
pub fn checked<T>(
    ctx: &Ctx,
    dir: &Path,
    insecure: bool,
    f: impl FnOnce(&Path, Policy) -> Result<(T, Verdict), trust::TrustError>,
) -> anyhow::Result<(T, Verdict)> {
    let key_dir = &ctx.config.paths.key_dir;
    let keys = TrustedKeys::load(key_dir);
    let policy = match (&keys, insecure) {
        (Ok(k), false) => Policy::Require(k),
        (Err(e), false) => bail!("refusing the backup {}: {e}\n  fix: {}", dir.display(), fix(e, key_dir)),
        (Ok(k), true) => Policy::Warn(Some(k)),
        (Err(_), true) => Policy::Warn(None),
    };
    match f(dir, policy) {
        Ok((b, v)) => {
            match &v {
                Verdict::Unverified(why) => eprintln!(
                    "lifeboat: WARNING: the backup {} is NOT authenticated ({why}); using it because of --insecure-unsigned: it may not be a backup this host made",
                    dir.display()
                ),
                Verdict::Signed(id) => log::info!("{}: catalog signed by trusted key {id}", dir.display()),
            }
            Ok((b, v))
        }
        Err(e) => match e.sign_error() {
            Some(se) => bail!("{e}\n  fix: {}", fix(se, key_dir)),
            None => Err(e.into()),
        },
    }
}

/// One line about a backup's signature, for `verify` and `backup info`.
pub fn describe(v: &Verdict) -> String {
    match v {
        Verdict::Signed(id) => format!("signed by trusted key {id}"),
        Verdict::Unverified(why) => format!("NOT AUTHENTICATED ({why})"),
    }
}

/// The same, for JSON output.
pub fn to_json(v: &Verdict) -> serde_json::Value {
    match v {
        Verdict::Signed(id) => serde_json::json!({"verified": true, "key_id": id.to_string()}),
        Verdict::Unverified(why) => serde_json::json!({"verified": false, "reason": why}),
    }
}

/// What a rescue medium needs to verify backups: the public keys (made now
/// when this host has none, so that the backups made later verify), as files
/// for its `/etc/lifeboat`, and its configuration, which looks for them there.
pub fn for_rescue(
    ctx: &Ctx,
    host: &str,
    etc_files: &mut Vec<(String, String)>,
) -> anyhow::Result<lifeboat_config::Config> {
    signing_key(ctx, host)?;
    let dir = &ctx.config.paths.key_dir;
    let keys = TrustedKeys::load(dir)
        .with_context(|| format!("cannot read the public keys in {} (paths.key_dir)", dir.display()))?;
    for k in &keys.keys {
        let name = k.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        etc_files.push((name, k.text.clone()));
    }
    let mut cfg = ctx.config.clone();
    cfg.paths.key_dir = PathBuf::from(RESCUE_KEY_DIR);
    Ok(cfg)
}

/// The lines `config show` adds (as TOML comments): the trusted keys.
pub fn show(ctx: &Ctx) -> String {
    let dir = &ctx.config.paths.key_dir;
    match TrustedKeys::load(dir) {
        Ok(keys) => keys
            .keys
            .iter()
            .map(|k| {
                let body: String = k.text.lines().map(|l| format!("#   {l}\n")).collect();
                format!("# backup signing key {} (trusted public key {}):\n{body}", k.id, k.file.display())
            })
            .collect(),
        Err(SignError::NoTrustedKey { .. }) => {
            format!("# no backup signing key yet: the first backup makes one in {}\n", dir.display())
        }
        Err(e) => format!("# backup signing keys: {e}\n"),
    }
}

/// The trusted keys, for `config show --json`.
pub fn show_json(ctx: &Ctx) -> serde_json::Value {
    match TrustedKeys::load(&ctx.config.paths.key_dir) {
        Ok(keys) => keys
            .keys
            .iter()
            .map(|k| serde_json::json!({"key_id": k.id.to_string(), "file": k.file, "public_key": k.text}))
            .collect(),
        Err(_) => serde_json::Value::Array(Vec::new()),
    }
}

/// Exclude patterns that keep the secret signing key (and its temporary
/// files) out of a backup of `root`: whoever reads the backup target could
/// sign backups with it.
pub fn secret_key_excludes(root: &Path, key_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let canonical = std::fs::canonicalize(key_dir).ok();
    for dir in std::iter::once(key_dir).chain(canonical.as_deref()) {
        if let Ok(rel) = dir.strip_prefix(root) {
            let rel = rel.to_string_lossy();
            let pattern = if rel.is_empty() {
                format!("{}*", lifeboat_archive::sign::SECRET_KEY_FILE)
            } else {
                format!("{rel}/{}*", lifeboat_archive::sign::SECRET_KEY_FILE)
            };
            if !out.contains(&pattern) {
                out.push(pattern);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_key_is_left_out_of_backups_of_trees_that_hold_it() {
        assert_eq!(secret_key_excludes(Path::new("/"), Path::new("/etc/lifeboat")), vec!["etc/lifeboat/signing.key*"]);
        assert_eq!(secret_key_excludes(Path::new("/etc/lifeboat"), Path::new("/etc/lifeboat")), vec!["signing.key*"]);
        assert!(secret_key_excludes(Path::new("/srv"), Path::new("/nonexistent/keys")).is_empty());
        let key = "etc/lifeboat/signing.key";
        assert!(lifeboat_archive::backup::glob_match(b"etc/lifeboat/signing.key*", key.as_bytes()));
        assert!(lifeboat_archive::backup::glob_match(
            b"etc/lifeboat/signing.key*",
            b"etc/lifeboat/signing.key.new-1-0"
        ));
        assert!(!lifeboat_archive::backup::glob_match(b"etc/lifeboat/signing.key*", b"etc/lifeboat/signing.pub"));
    }
}
