//! `chaos`: run fault cases against the origin binary, print each verdict, write the figures to
//! `<out>/chaos.json`; exit 0 when every case passed, 1 when one failed, 2 when none could run.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use chaos::cases::{self, Case, Context};
use chaos::report::Summary;
use clap::Parser;

fn main() -> ExitCode {
    let mut ctx = Context::parse();
    let selected = if ctx.cases.is_empty() {
        Case::selected(ctx.fast)
    } else {
        ctx.cases.clone()
    };
    if !ctx.origin_binary.is_file() {
        eprintln!(
            "chaos: no origin binary at {} (cargo build -p counter-origin)",
            ctx.origin_binary.display()
        );
        return ExitCode::from(2);
    }
    if let Err(e) = std::fs::create_dir_all(&ctx.out) {
        eprintln!("chaos: {}: {e}", ctx.out.display());
        return ExitCode::from(2);
    }
    // Absolute: cases hand these to processes that run in other directories.
    let absolute = |path: &Path| std::fs::canonicalize(path).unwrap_or(path.to_path_buf());
    ctx.origin_binary = absolute(&ctx.origin_binary);
    ctx.out = absolute(&ctx.out);
    ctx.fuzz_dir = absolute(&ctx.fuzz_dir);
    let started = SystemTime::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let reports = runtime.block_on(async {
        let mut reports = Vec::new();
        for case in selected {
            eprintln!("--- chaos: {}", case.name());
            let report = cases::run(case, &ctx).await;
            eprint!("{}", report.summary());
            reports.push(report);
        }
        reports
    });
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let summary = Summary::new(
        started,
        if ctx.fast { "fast" } else { "full" },
        command,
        reports,
    );
    let path = ctx.out.join("chaos.json");
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises") + "\n";
    if let Err(e) = std::fs::write(&path, json) {
        eprintln!("chaos: {}: {e}", path.display());
        return ExitCode::from(2);
    }
    let failed: Vec<&str> = summary
        .cases
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.case.as_str())
        .collect();
    eprintln!(
        "chaos: {} of {} cases passed; figures in {}",
        summary.cases.len() - failed.len(),
        summary.cases.len(),
        path.display()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("chaos: FAILED: {}", failed.join(", "));
        ExitCode::from(1)
    }
}
