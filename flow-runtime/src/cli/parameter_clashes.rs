//! Flow parameters that would take the name of an option `run` has already: found before clap
//! builds the command, which it would otherwise refuse with a panic.

use clap::{Arg, Command};

use super::commands::run;
use crate::flow::Flow;

/// Every flow parameter that `run` already has an option of that name for, as one message each;
/// clap would otherwise panic on the duplicate when it builds the command.
///
/// The built-in options are read from `run` itself, as clap completes it (the global
/// `--datastore`, the generated `--help`), so an option added to `run` later is covered too.
pub(crate) fn parameter_clashes<F: Flow>() -> Vec<String> {
    let params = F::__params_command(Command::new("run"));
    if params.get_arguments().next().is_none() {
        return Vec::new();
    }
    let mut built = super::command_with_run::<F>(run::cli_without_params());
    built.build();
    let Some(run) = built.find_subcommand("run") else {
        return Vec::new();
    };
    params
        .get_arguments()
        .filter_map(|param| {
            run.get_arguments()
                .find_map(|builtin| clash(param, builtin))
        })
        .collect()
}

/// How `param` and `builtin` collide, if they do, said with the spelling clap would refuse.
fn clash(param: &Arg, builtin: &Arg) -> Option<String> {
    let longs = |arg: &Arg| -> Vec<String> {
        arg.get_long()
            .into_iter()
            .chain(arg.get_all_aliases().unwrap_or_default())
            .map(|long| format!("--{long}"))
            .collect()
    };
    let shorts = |arg: &Arg| -> Vec<String> {
        arg.get_short()
            .into_iter()
            .chain(arg.get_all_short_aliases().unwrap_or_default())
            .map(|short| format!("-{short}"))
            .collect()
    };
    let builtin_names = [longs(builtin), shorts(builtin)].concat();
    if let Some(name) = [longs(param), shorts(param)]
        .concat()
        .into_iter()
        .find(|name| builtin_names.contains(name))
    {
        return Some(format!(
            "flow parameter `{name}` clashes with the built-in option `{name}` of `run`; rename it"
        ));
    }
    // Two arguments with one id are refused as well, whatever they are spelt like.
    (param.get_id() == builtin.get_id()).then(|| {
        format!(
            "flow parameter `{}` has the id `{}` of the built-in option `{}` of `run`; rename it",
            display_name(param),
            param.get_id(),
            display_name(builtin)
        )
    })
}

/// How an argument is written on the command line: `--long`, `-s`, or `<ID>` when positional.
fn display_name(arg: &Arg) -> String {
    match (arg.get_long(), arg.get_short()) {
        (Some(long), _) => format!("--{long}"),
        (None, Some(short)) => format!("-{short}"),
        (None, None) => format!("<{}>", arg.get_id().as_str().to_uppercase()),
    }
}
