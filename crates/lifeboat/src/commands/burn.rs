//! `lifeboat burn`.

use super::Ctx;
use crate::cli::BurnArgs;
use anyhow::{bail, Context};
use lifeboat_rescue::burn::{burn, check, newest_image, Burn};
use lifeboat_runner::{Mode, SystemRunner};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

/// Write an image to a device after showing what will be erased and asking.
pub fn run(ctx: &Ctx, a: BurnArgs) -> anyhow::Result<ExitCode> {
    let device = match a.device {
        Some(d) => d,
        None if !ctx.config.burn.device.is_empty() => ctx.config.burn.device.clone().into(),
        None => bail!("no device: give --device DEV (or set burn.device in the config)"),
    };
    let image = match a.image {
        Some(i) => i,
        None => newest_image(&ctx.config.paths.output_dir).with_context(|| {
            format!(
                "no rescue image in {}: run `lifeboat mkrescue` first, or name the image",
                ctx.config.paths.output_dir.display()
            )
        })?,
    };
    let b = Burn {
        device,
        image,
        speed: ctx.config.burn.speed,
        blank: ctx.config.burn.blank,
        verify: ctx.config.burn.verify,
        eject: ctx.config.burn.eject,
    };
    let what = check(&b)?;
    // -q or --json with --yes: nothing to show; without --yes the plan comes
    // before the question (on stderr with --json, which keeps stdout JSON).
    let plan = format!("plan: erase {what} and write {}", b.image.display());
    if !a.yes && ctx.json {
        eprintln!("{plan}");
    } else if !(a.yes && (ctx.quiet || ctx.json)) {
        println!("{plan}");
    }
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to erase {} without confirmation: run with --yes", b.device.display());
        }
        let question = format!("Everything on {} will be lost. Type yes to go on: ", b.device.display());
        if ctx.json {
            eprint!("{question}");
            std::io::stderr().flush()?;
        } else {
            print!("{question}");
            std::io::stdout().flush()?;
        }
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            if ctx.json {
                println!("{}", serde_json::json!({"device": b.device, "image": b.image, "written": false}));
            } else {
                println!("nothing written");
            }
            return Ok(ExitCode::from(1));
        }
    }
    let tty = std::io::stderr().is_terminal() && !ctx.quiet && !ctx.json;
    let start = std::time::Instant::now();
    let mut last = 0u64;
    let mut progress = |done: u64, total: u64| {
        if tty && (done - last >= 16 << 20 || done == total) {
            last = done;
            let rate = done as f64 / start.elapsed().as_secs_f64().max(0.001) / 1048576.0;
            eprint!(
                "\r{:>5.1}%  {} / {} MiB  {rate:.0} MiB/s ",
                done as f64 * 100.0 / total as f64,
                done >> 20,
                total >> 20
            );
        }
    };
    let res = burn(&SystemRunner::new(Mode::Run), &b, &mut progress).context("cannot write the rescue medium")?;
    if tty {
        eprintln!();
    }
    if ctx.json {
        let v = serde_json::json!({
            "device": b.device,
            "image": b.image,
            "written": true,
            "kind": res.kind.to_string(),
            "bytes": res.bytes,
            "seconds": start.elapsed().as_secs_f64(),
            "verified": res.verified,
            "sha256": res.sha256,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if ctx.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "wrote {} MiB to {} ({}) in {:.1} s; {}",
        res.bytes >> 20,
        b.device.display(),
        res.kind,
        start.elapsed().as_secs_f64(),
        if res.verified {
            format!("read back and verified (SHA-256 {})", &res.sha256[..16])
        } else {
            "not verified (burn.verify = false)".into()
        }
    );
    Ok(ExitCode::SUCCESS)
}
