//! How authenticated backups look on the command line: a backup's
//! signature in one line or as JSON, and the trusted keys `config show` lists.

use super::Ctx;
use lifeboat_archive::sign::{SignError, TrustedKeys};
use lifeboat_archive::trust::Verdict;

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
