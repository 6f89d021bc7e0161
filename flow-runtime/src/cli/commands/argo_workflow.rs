//! `argo-workflow`: prints an Argo Workflows manifest that runs the flow, one container per
//! task, each running this binary's `step` command.

use clap::{Arg, ArgAction, ArgMatches, Command};

use super::CliResult;
use crate::argo::{self, ArgoOptions};
use crate::cli::DATASTORE_ENV;
use crate::cli::args::{strings, tag_arg, tags};
use crate::cli::context::{Ctx, datastore_as_given};
use crate::cli::error::CliError;
use crate::flow::Flow;

pub(crate) fn cli() -> Command {
    let text = |id: &'static str, value: &'static str, help: &'static str| {
        Arg::new(id).long(id).value_name(value).help(help)
    };
    Command::new("argo-workflow")
        .about("Prints an Argo Workflows manifest that runs the flow, one container per task")
        .long_about(
            "Prints an Argo Workflows manifest (JSON, which kubectl and argo read as YAML) that \
             runs the flow on Kubernetes: a task `init` creates the run with the workflow's \
             parameters, every task of the flow is a container running this binary's `step` \
             command, foreach steps fan out with `withParam`, switches choose with `when`, and an \
             exit handler records how the run ended. Every container uses the datastore given \
             with --datastore (or BLOOMING_DATASTORE), which must be the same for all of them: \
             an absolute path on a volume mounted in every pod (see --volume-claim), or object \
             storage.",
        )
        .arg(text("image", "IMAGE", "The container image with the flow binary").required(true))
        .arg(text(
            "binary",
            "PATH",
            "The flow binary's path in the image [default: the image's entrypoint]",
        ))
        .arg(text(
            "name",
            "NAME",
            "The resource's name [default: generateName FLOW- for a Workflow, FLOW for a template]",
        ))
        .arg(text("namespace", "NS", "The namespace to create it in"))
        .arg(text(
            "service-account",
            "SA",
            "The service account the pods run as",
        ))
        .arg(text(
            "volume-claim",
            "CLAIM",
            "A persistent volume claim to mount at the datastore's path in every pod",
        ))
        .arg(
            text(
                "env-secret",
                "SECRET",
                "A secret whose keys become environment variables of every container, such as \
                 an object store's credentials (repeatable)",
            )
            .action(ArgAction::Append),
        )
        .arg(
            Arg::new("template")
                .long("template")
                .action(ArgAction::SetTrue)
                .help("A WorkflowTemplate (stored, submitted later) instead of a Workflow"),
        )
        .arg(tag_arg(
            "Records TAG with every run of the manifest (repeatable)",
        ))
        .arg(
            text(
                "schedule",
                "CRON",
                "Runs the flow on a schedule: a CronWorkflow (Argo 3.6 or later) starting the \
                 workflow at every time CRON names, e.g. \"0 3 * * *\" (every day at 03:00) or \
                 @daily (repeatable)",
            )
            .action(ArgAction::Append)
            .conflicts_with("template"),
        )
        .arg(
            text(
                "timezone",
                "TZ",
                "The time zone the schedules are read in, e.g. Europe/Paris [default: the Argo \
                 controller's]",
            )
            .requires("schedule"),
        )
        .arg(
            text(
                "concurrency-policy",
                "POLICY",
                "What a scheduled start does while the previous run still goes on",
            )
            .value_parser(argo::CONCURRENCY_POLICIES)
            .requires("schedule"),
        )
}

pub(crate) fn exec<F: Flow>(ctx: &mut Ctx<'_>, args: &ArgMatches) -> CliResult {
    let get = |id: &str| args.get_one::<String>(id).cloned();
    let datastore = datastore_as_given(args).ok_or_else(|| {
        CliError::usage(format!(
            "argo-workflow needs the datastore every container uses: pass --datastore LOCATION \
             (an absolute path on a volume mounted in every pod, or object storage) or set \
             {DATASTORE_ENV}"
        ))
    })?;
    let options = ArgoOptions {
        image: get("image").unwrap_or_default(),
        datastore,
        binary: get("binary"),
        name: get("name"),
        namespace: get("namespace"),
        service_account: get("service-account"),
        template: args.get_flag("template"),
        volume_claim: get("volume-claim"),
        env_secrets: strings(args, "env-secret"),
        tags: tags(args),
    };
    let refused = |e: argo::ArgoError| match e {
        argo::ArgoError::Invalid(m) => CliError::usage(m),
        other => CliError::failure(other.to_string()),
    };
    let schedules = strings(args, "schedule");
    let workflow = argo::workflow::<F>(&options).map_err(refused)?;
    let text = if schedules.is_empty() {
        serde_json::to_string_pretty(&workflow)
    } else {
        let schedule = argo::Schedule {
            schedules,
            timezone: get("timezone"),
            concurrency_policy: get("concurrency-policy"),
        };
        serde_json::to_string_pretty(&argo::cron_workflow(workflow, &schedule).map_err(refused)?)
    }
    .map_err(|e| CliError::failure(format!("cannot write the manifest: {e}")))?;
    writeln!(ctx.out, "{text}")?;
    Ok(())
}
