//! A flow run on a schedule: a `CronWorkflow` around the flow's workflow.
//!
//! Argo (3.6 and later) starts a workflow from the CronWorkflow's `workflowSpec` at every time
//! one of its `schedules` names, in its `timezone`; `concurrencyPolicy` says what happens when
//! the previous run has not ended (`Allow`, `Forbid`, `Replace`). The schedules are checked here
//! as far as they can be without Argo's parser: five fields of cron characters, or one of the
//! `@` shorthands.

use super::builder::ArgoError;
use super::manifest::{API_VERSION, CronWorkflow, CronWorkflowSpec, ObjectMeta, Workflow};

/// When and how a flow runs on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Cron expressions (`0 3 * * *`) or shorthands (`@daily`, `@every 6h`).
    pub schedules: Vec<String>,
    /// The IANA time zone they are read in (`Europe/Paris`); Argo's default is the controller's.
    pub timezone: Option<String>,
    /// `Allow`, `Forbid` or `Replace`: what to do when the previous run is still going.
    pub concurrency_policy: Option<String>,
}

/// The concurrency policies Argo knows.
pub const CONCURRENCY_POLICIES: [&str; 3] = ["Allow", "Forbid", "Replace"];

const SHORTHANDS: [&str; 7] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Checks one schedule, saying what is wrong with it.
///
/// # Errors
///
/// A message naming the schedule and the field at fault.
pub fn check_schedule(schedule: &str) -> Result<(), String> {
    let trimmed = schedule.trim();
    if let Some(every) = trimmed.strip_prefix("@every ") {
        return humantime::parse_duration(every.trim())
            .map(|_| ())
            .map_err(|e| {
                format!("schedule `{schedule}`: `@every` takes a duration such as `6h`: {e}")
            });
    }
    if trimmed.starts_with('@') {
        return if SHORTHANDS.contains(&trimmed) {
            Ok(())
        } else {
            Err(format!(
                "schedule `{schedule}`: unknown shorthand; use one of {} or `@every DURATION`",
                SHORTHANDS.join(", ")
            ))
        };
    }
    const FIELDS: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    if fields.len() != FIELDS.len() {
        return Err(format!(
            "schedule `{schedule}` has {} fields; a cron schedule has five: minute, hour, day of \
             month, month, day of week (`0 3 * * *` is every day at 03:00)",
            fields.len()
        ));
    }
    for (field, name) in fields.iter().zip(FIELDS) {
        if let Some(bad) = field
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '*' | '/' | ',' | '-' | '?')))
        {
            return Err(format!(
                "schedule `{schedule}`: the {name} field `{field}` has `{bad}`, which cron does \
                 not use"
            ));
        }
    }
    Ok(())
}

/// Checks a time zone's spelling (`UTC`, `Europe/Paris`); whether it exists is Argo's to say.
fn check_timezone(zone: &str) -> Result<(), String> {
    let well_formed = !zone.is_empty()
        && !zone.starts_with('/')
        && !zone.ends_with('/')
        && zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'));
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "time zone `{zone}` is not an IANA name such as `UTC` or `Europe/Paris`"
        ))
    }
}

/// `workflow` (a `Workflow`, not a template) run on `schedule`: a `CronWorkflow` named `name`
/// (the workflow's given name, else the flow's), whose runs carry the flow's labels and
/// annotations.
///
/// # Errors
///
/// [`ArgoError::Invalid`] for a schedule, time zone or policy that cannot be used, or no
/// schedule at all.
pub fn cron_workflow(workflow: Workflow, schedule: &Schedule) -> Result<CronWorkflow, ArgoError> {
    if schedule.schedules.is_empty() {
        return Err(ArgoError::Invalid(
            "a CronWorkflow needs at least one schedule".into(),
        ));
    }
    for one in &schedule.schedules {
        check_schedule(one).map_err(ArgoError::Invalid)?;
    }
    if let Some(zone) = &schedule.timezone {
        check_timezone(zone).map_err(ArgoError::Invalid)?;
    }
    if let Some(policy) = &schedule.concurrency_policy
        && !CONCURRENCY_POLICIES.contains(&policy.as_str())
    {
        return Err(ArgoError::Invalid(format!(
            "concurrency policy `{policy}` is not one of {}",
            CONCURRENCY_POLICIES.join(", ")
        )));
    }
    let Workflow { metadata, spec, .. } = workflow;
    let name = metadata
        .name
        .clone()
        .or_else(|| {
            metadata
                .generate_name
                .as_deref()
                .map(|prefix| prefix.trim_end_matches('-').to_string())
        })
        .ok_or_else(|| ArgoError::Invalid("a CronWorkflow needs a name".into()))?;
    Ok(CronWorkflow {
        api_version: API_VERSION.to_string(),
        kind: "CronWorkflow".to_string(),
        metadata: ObjectMeta {
            name: Some(name),
            generate_name: None,
            namespace: metadata.namespace.clone(),
            labels: metadata.labels.clone(),
            annotations: metadata.annotations.clone(),
        },
        spec: CronWorkflowSpec {
            schedules: schedule
                .schedules
                .iter()
                .map(|s| s.trim().to_string())
                .collect(),
            timezone: schedule.timezone.clone(),
            concurrency_policy: schedule.concurrency_policy.clone(),
            workflow_metadata: Some(ObjectMeta {
                labels: metadata.labels,
                annotations: metadata.annotations,
                ..ObjectMeta::default()
            }),
            workflow_spec: spec,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn cron_schedules_and_shorthands_are_accepted() {
        for ok in [
            "0 3 * * *",
            "*/15 * * * *",
            "0 9-17 * * MON-FRI",
            "30 2 1,15 * ?",
            "@daily",
            "@every 6h",
            " 0 3 * * * ",
        ] {
            check_schedule(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn a_bad_schedule_says_which_field_and_why() {
        let cases = [
            ("0 3 * *", "has 4 fields"),
            ("0 3 * * * *", "has 6 fields"),
            ("0 3 * * Mon;", "the day of week field `Mon;` has `;`"),
            ("@sometimes", "unknown shorthand"),
            ("@every soon", "`@every` takes a duration"),
        ];
        for (bad, expected) in cases {
            let error = check_schedule(bad).expect_err(bad);
            assert!(error.contains(expected), "{bad}: {error}");
            assert!(error.contains(&format!("`{bad}`")), "{bad}: {error}");
        }
    }

    #[test]
    fn time_zones_are_spelled_as_iana_names() {
        check_timezone("UTC").expect("UTC");
        check_timezone("America/Argentina/Buenos_Aires").expect("nested");
        check_timezone("Etc/GMT+3").expect("offset");
        for bad in ["", "/UTC", "Europe/", "Paris time", "UTC;rm"] {
            assert!(check_timezone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_go_to_the_cron_workflow_and_its_runs() {
        let workflow = Workflow {
            api_version: API_VERSION.into(),
            kind: "Workflow".into(),
            metadata: ObjectMeta {
                generate_name: Some("squares-".into()),
                labels: BTreeMap::from([("blooming-flowers/flow".into(), "squares".into())]),
                ..ObjectMeta::default()
            },
            spec: Default::default(),
        };
        let schedule = Schedule {
            schedules: vec!["0 3 * * *".into()],
            timezone: Some("Europe/Paris".into()),
            concurrency_policy: Some("Forbid".into()),
        };
        let cron = cron_workflow(workflow.clone(), &schedule).expect("cron");
        assert_eq!(cron.metadata.name.as_deref(), Some("squares"));
        assert_eq!(cron.spec.schedules, ["0 3 * * *"]);
        assert_eq!(
            cron.spec
                .workflow_metadata
                .as_ref()
                .map(|m| m.labels.clone()),
            Some(workflow.metadata.labels.clone())
        );
        let bad = Schedule {
            concurrency_policy: Some("forbid".into()),
            ..schedule
        };
        let error = cron_workflow(workflow, &bad).expect_err("lower case");
        assert!(
            error.to_string().contains("Allow, Forbid, Replace"),
            "{error}"
        );
    }
}
