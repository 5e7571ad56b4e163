//! `lifeboat serve`.

use super::Ctx;
use crate::cli::ServeArgs;
use anyhow::Context;
use lifeboat_deploy::{ClonePlan, Config, Server};
use std::process::ExitCode;

/// Serve a farm's deployment until interrupted, or (`--status`) show a
/// running server's clients: exit 0 when every planned box is done, 1 otherwise.
pub fn run(ctx: &Ctx, a: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(url) = &a.fetch {
        print!("{}", lifeboat_deploy::fetch_text(url)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let (Some(url), Some(text)) = (&a.report, &a.text) {
        lifeboat_deploy::send_report(url, text)?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.status {
        let url = a.url.unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let st = lifeboat_deploy::fetch_status(&url)?;
        if ctx.json {
            println!("{}", serde_json::to_string_pretty(&st)?);
        } else {
            print!("{}", st.table());
        }
        let all_done = st.clients.iter().filter(|c| !c.hostname.is_empty()).all(|c| c.phase == "done");
        return Ok(if all_done { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    let (Some(dir), Some(plan)) = (a.dir, a.plan) else {
        anyhow::bail!("give --dir DIR (the rescue system's PXE files) and --plan FILE (the clone plan)");
    };
    let plan = ClonePlan::load(&plan)?;
    let url = a.url.unwrap_or_else(|| format!("http://{}", a.listen)).trim_end_matches('/').to_string();
    let backup = a.backup.unwrap_or_else(|| dir.join("backup"));
    let n = plan.clients.len();
    let state = a.state.unwrap_or_else(|| ctx.config.paths.work_dir.join("serve-state.json"));
    if let Some(parent) = state.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot make {}", parent.display()))?;
    }
    let config = Config {
        dir,
        backup,
        plan,
        url: url.clone(),
        kernel_args: a.kernel_args,
        done: a.done,
        max_per_peer: usize::from(a.max_per_peer),
        state: Some(state.clone()),
    };
    let server = Server::bind(&a.listen, config).context("cannot start the deployment server")?;
    if !ctx.quiet {
        println!("serving {n} box(es) on {} as {url}: point DHCP's iPXE boot file at {url}/boot.ipxe", a.listen);
        if server.restored_done() > 0 {
            println!(
                "{} box(es) are deployed already ({}): they boot from their disks; remove that file to deploy them again",
                server.restored_done(),
                state.display()
            );
        }
        println!("status: lifeboat serve --status --url {url}  (or {url}/status)");
    }
    server.run();
    Ok(ExitCode::SUCCESS)
}
