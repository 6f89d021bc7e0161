//! `gc`: deletes runs by rules, then the blobs no kept run references (the run store's
//! [`collect`](crate::run::gc::collect)), and says what went and what was freed.

use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};

use super::CliResult;
use crate::cli::args::{parse_tag, strings};
use crate::cli::context::Ctx;
use crate::cli::error::{CliError, chain};
use crate::cli::table::{human_size, short_time};
use crate::cli::terminal::escape_controls;
use crate::flow::Flow;
use crate::run::gc::{DEFAULT_GRACE, GcError, GcOptions, GcReport, GcRules, collect};

pub(crate) fn cli() -> Command {
    Command::new("gc")
        .about("Deletes old runs by rules, then the blobs no kept run references")
        .long_about(
            "Deletes old runs by rules, then the blobs no kept run references.\n\n\
             A run goes when no rule keeps it. Always kept: runs still running (or whose \
             process died without recording an end), the runs `latest` names (the last run and \
             the last successful one), and runs whose record cannot be read. Give at least one \
             of --keep-last and --older-than.\n\n\
             Blobs are shared by every run and flow of the datastore: a blob goes when no kept \
             run references it and it was last written more than --grace ago, so runs going on \
             while gc works lose nothing. Interrupted, gc leaves every kept run whole; run it \
             again to finish.",
        )
        .arg(
            Arg::new("keep-last")
                .long("keep-last")
                .value_name("N")
                .value_parser(value_parser!(usize))
                .help("Keeps the N newest runs of each flow, whatever their status"),
        )
        .arg(
            Arg::new("older-than")
                .long("older-than")
                .value_name("AGE")
                .value_parser(parse_age)
                .help("Deletes only runs started longer ago than AGE (`30d`, `12h`)"),
        )
        .arg(
            Arg::new("keep-tagged")
                .long("keep-tagged")
                .value_name("TAG")
                .action(ArgAction::Append)
                .value_parser(parse_tag)
                .help("Keeps runs tagged TAG (repeatable)"),
        )
        .arg(
            Arg::new("keep-promoted")
                .long("keep-promoted")
                .action(ArgAction::SetTrue)
                .help("Keeps the runs promotion labels name (`production`, …)"),
        )
        .arg(
            Arg::new("grace")
                .long("grace")
                .value_name("AGE")
                .value_parser(parse_age)
                .help("Keeps unreferenced blobs written within AGE [default: 1d]"),
        )
        .arg(
            Arg::new("all-flows")
                .long("all-flows")
                .action(ArgAction::SetTrue)
                .help("Applies the rules to the runs of every flow of the datastore, not only this one"),
        )
        .arg(
            Arg::new("dry-run")
                .long("dry-run")
                .action(ArgAction::SetTrue)
                .help("Prints what would go and the bytes it would free; deletes nothing"),
        )
}

/// A duration such as `30d`, `12h`, `90s` (humantime's syntax).
fn parse_age(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration such as `30d`, `12h` or `90s`: {e}"))
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let flow = F::GRAPH.name;
    let rules = GcRules {
        keep_last: args.get_one::<usize>("keep-last").copied(),
        older_than: args.get_one::<Duration>("older-than").copied(),
        keep_tagged: strings(args, "keep-tagged"),
        keep_promoted: args.get_flag("keep-promoted"),
    };
    if !rules.selects() {
        return Err(CliError::usage(GcError::NoRule.to_string()));
    }
    let options = GcOptions {
        rules,
        flows: (!args.get_flag("all-flows")).then(|| vec![flow.to_string()]),
        grace: args
            .get_one::<Duration>("grace")
            .copied()
            .unwrap_or(DEFAULT_GRACE),
        dry_run: args.get_flag("dry-run"),
    };
    let store = ctx.open_existing()?;
    let verb = if options.dry_run {
        "Would delete"
    } else {
        "Deleted"
    };
    // Each run is printed as it goes: a collection of 10,000 runs shows its progress, and its
    // memory does not hold them.
    let mut printed: std::io::Result<()> = Ok(());
    let result = collect(&store, &options, &mut |run| {
        if printed.is_ok() {
            printed = writeln!(
                ctx.out,
                "{verb} run {}/{} ({}, started {})",
                escape_controls(&run.flow),
                run.run_id,
                if run.finished_earlier_collection {
                    "being deleted".to_string()
                } else {
                    run.status.to_string()
                },
                escape_controls(&short_time(&run.started))
            );
        }
    });
    printed?;
    let report = result.map_err(|e| match e {
        GcError::NoRule => CliError::usage(e.to_string()),
        other => CliError::failure(chain(&other)),
    })?;
    print_report(ctx, &report, &options)
}

fn print_report(ctx: &mut Ctx<'_>, report: &GcReport, options: &GcOptions) -> CliResult {
    let dry = report.dry_run;
    let run_bytes = report.deleted_run_objects.bytes;
    if report.deleted_runs == 0 {
        writeln!(
            ctx.out,
            "No run {}.",
            if dry { "would go" } else { "deleted" }
        )?;
    } else {
        writeln!(
            ctx.out,
            "{} {} run{} ({} of records and logs).",
            if dry { "Would delete" } else { "Deleted" },
            report.deleted_runs,
            plural(report.deleted_runs),
            human_size(run_bytes)
        )?;
    }
    if !report.kept.is_empty() {
        let total: usize = report.kept.iter().map(|(_, n)| n).sum();
        let reasons: Vec<String> = report
            .kept
            .iter()
            .map(|(reason, n)| format!("{n} {}", escape_controls(&reason.to_string())))
            .collect();
        writeln!(
            ctx.out,
            "Kept {total} run{}: {}.",
            plural(total),
            reasons.join(", ")
        )?;
    }
    for unreadable in &report.unreadable {
        writeln!(
            ctx.out,
            "Kept run {} of {}: its record cannot be read ({}).",
            unreadable.run_id,
            unreadable.flow,
            escape_controls(&chain(&unreadable.error))
        )?;
    }
    let blobs = &report.blobs;
    writeln!(
        ctx.out,
        "Blobs: {} {} ({}); kept {} referenced by the {} runs left ({}){}.",
        if dry { "would delete" } else { "deleted" },
        blobs.deleted.objects,
        human_size(blobs.deleted.bytes),
        blobs.live.objects,
        report.marked_runs,
        human_size(blobs.live.bytes),
        if blobs.young.objects > 0 {
            format!(
                ", and {} unreferenced but written within the last {} ({})",
                blobs.young.objects,
                humantime::format_duration(options.grace),
                human_size(blobs.young.bytes)
            )
        } else {
            String::new()
        }
    )?;
    if report.temporaries > 0 {
        writeln!(
            ctx.out,
            "Removed {} temporary file{} that crashed writers left.",
            report.temporaries,
            plural(report.temporaries)
        )?;
    }
    writeln!(
        ctx.out,
        "{} {} in all.",
        if dry { "Would free" } else { "Freed" },
        human_size(run_bytes + blobs.deleted.bytes)
    )?;
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
