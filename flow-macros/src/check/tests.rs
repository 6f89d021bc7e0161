//! The checks on `syn::parse_quote!` input, without rustc: every rule's message, span target and
//! error count, and the resolved graph of valid flows.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ItemImpl;

use super::CheckedGraph;
use crate::errors::{Errors, messages};
use crate::flow_macro::{expand_flow, expand_stray_step};
use crate::parse::parse_flow;

/// An impl block written inline, as the tokens `#[flow]` receives.
// The expansion benchmark compiles this crate's modules in test mode without running the tests.
#[allow(unused_macros)]
macro_rules! flow {
    ($($t:tt)*) => {{
        let item: ItemImpl = syn::parse_quote!($($t)*);
        item.into_token_stream()
    }};
}

/// Parses and checks `item` as `#[flow(attr)]` does.
fn run_with(attr: TokenStream, item: TokenStream) -> (Option<CheckedGraph>, Vec<String>) {
    let mut errors = Errors::new();
    let graph = match parse_flow(attr, item, &mut errors) {
        Some(flow) if flow.kind.is_checked() => super::check(&flow, &mut errors),
        _ => None,
    };
    (graph, messages(errors.check()))
}

fn run(item: TokenStream) -> (Option<CheckedGraph>, Vec<String>) {
    run_with(TokenStream::new(), item)
}

/// The graph of a flow that must be valid.
fn valid(item: TokenStream) -> CheckedGraph {
    let (graph, messages) = run(item);
    assert_eq!(messages, Vec::<String>::new(), "a valid flow was rejected");
    graph.expect("a valid flow without errors has a graph")
}

/// The one error of a flow with one mistake; it must contain every part of `expected`. (The
/// graph may still resolve: `expand_flow` expands only when there is no error at all.)
fn one_error(item: TokenStream, expected: &[&str]) -> String {
    let (_, messages) = run(item);
    assert_eq!(
        messages.len(),
        1,
        "expected exactly one error, got {messages:#?}"
    );
    for part in expected {
        assert!(
            messages[0].contains(part),
            "error {:?} does not contain {part:?}",
            messages[0]
        );
    }
    messages.into_iter().next().unwrap_or_default()
}

/// How many `compile_error!`s `tokens` holds.
fn compile_errors(tokens: &TokenStream) -> usize {
    tokens.to_string().matches("compile_error").count()
}

/// Whether `tokens` implement `Flow`.
fn implements_flow(tokens: &TokenStream) -> bool {
    tokens.to_string().contains(":: Flow for")
}

// ---------------------------------------------------------------------------------------------
// Valid graphs: what the checker resolves.

#[test]
fn linear_graph_resolves_in_declaration_order() {
    let g = valid(flow! {
        impl F {
            #[step(next = middle)] fn start(&mut self) {}
            #[step(next = end)] fn middle(&mut self) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!((g.start, g.end), (0, 2));
    assert_eq!(g.targets, vec![vec![1], vec![2], vec![]]);
    assert_eq!(g.join_of, vec![None, None, None]);
}

#[test]
fn start_and_end_are_found_by_name_anywhere() {
    let g = valid(flow! {
        impl F {
            #[step] fn end(&mut self) {}
            #[step(next = end)] fn middle(&mut self) {}
            fn helper(&self) {}
            #[step(next = middle)] fn start(&mut self) {}
        }
    });
    assert_eq!((g.start, g.end), (2, 0));
    assert_eq!(g.targets, vec![vec![], vec![0], vec![1]]);
}

#[test]
fn branch_targets_keep_their_order_and_the_join_its_split() {
    let g = valid(flow! {
        impl F {
            #[step(next = [c, a, b])] fn start(&mut self) {}
            #[step(next = j)] fn a(&mut self) {}
            #[step(next = j)] fn b(&mut self) {}
            #[step(next = j)] fn c(&mut self) {}
            #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(g.targets[0], vec![3, 1, 2]);
    assert_eq!(g.join_of, vec![None, None, None, None, Some(0), None]);
}

#[test]
fn foreach_join_closes_the_foreach() {
    let g = valid(flow! {
        impl F {
            #[step(foreach = xs, next = body)] fn start(&mut self) {}
            #[step(next = j)] fn body(&mut self, x: u64) {}
            #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(g.targets, vec![vec![1], vec![2], vec![3], vec![]]);
    assert_eq!(g.join_of[2], Some(0));
}

#[test]
fn nested_foreach_joins_inner_first() {
    let g = valid(flow! {
        impl F {
            #[step(foreach = rows, next = row)] fn start(&mut self) {}
            #[step(foreach = cols, next = cell)] fn row(&mut self, r: u32) {}
            #[step(next = inner)] fn cell(&mut self, c: u32) {}
            #[step(join, next = outer)] fn inner(&mut self, inputs: Inputs<Self>) {}
            #[step(join, next = end)] fn outer(&mut self, inputs: Inputs<Self>) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(g.join_of, vec![None, None, None, Some(1), Some(0), None]);
}

#[test]
fn branch_inside_foreach_body() {
    let g = valid(flow! {
        impl F {
            #[step(foreach = xs, next = body)] fn start(&mut self) {}
            #[step(next = [p, q])] fn body(&mut self, x: u64) {}
            #[step(next = jb)] fn p(&mut self) {}
            #[step(next = jb)] fn q(&mut self) {}
            #[step(join, next = jf)] fn jb(&mut self, inputs: Inputs<Self>) {}
            #[step(join, next = end)] fn jf(&mut self, inputs: Inputs<Self>) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(g.join_of[4], Some(1));
    assert_eq!(g.join_of[5], Some(0));
}

#[test]
fn switch_inside_branch_and_arms_reconverging() {
    let g = valid(flow! {
        impl F {
            #[step(next = [decide, other])] fn start(&mut self) {}
            #[step(switch(Route::A => a, Route::B | Route::C => b))]
            fn decide(&mut self) -> Route { Route::A }
            #[step(next = merge)] fn a(&mut self) {}
            #[step(next = merge)] fn b(&mut self) {}
            #[step(next = j)] fn merge(&mut self) {}
            #[step(next = j)] fn other(&mut self) {}
            #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(g.targets[1], vec![2, 3]);
    assert_eq!(g.join_of[6], Some(0));
    assert_eq!(g.join_of[4], None);
}

#[test]
fn switch_arms_may_go_straight_to_end() {
    let g = valid(flow! {
        impl F {
            #[step(switch(true => end, false => more))]
            fn start(&mut self) -> Result<bool, String> { Ok(true) }
            #[step(next = end)] fn more(&mut self) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(g.targets[0], vec![2, 1]);
}

#[test]
fn join_followed_by_new_splits() {
    let g = valid(flow! {
        impl F {
            #[step(next = [a, b])] fn start(&mut self) {}
            #[step(next = j1)] fn a(&mut self) {}
            #[step(next = j1)] fn b(&mut self) {}
            #[step(join, foreach = xs, next = each)] fn j1(&mut self, inputs: Inputs<Self>) {}
            #[step(next = j2)] fn each(&mut self, x: u8) {}
            #[step(join, next = [c, d])] fn j2(&mut self, inputs: Inputs<Self>) {}
            #[step(next = j3)] fn c(&mut self) {}
            #[step(next = j3)] fn d(&mut self) {}
            #[step(join, next = end)] fn j3(&mut self, inputs: Inputs<Self>) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(g.join_of[3], Some(0));
    assert_eq!(g.join_of[5], Some(3));
    assert_eq!(g.join_of[8], Some(5));
}

#[test]
fn nested_branches_join_innermost_first() {
    let g = valid(flow! {
        impl F {
            #[step(next = [a, b])] fn start(&mut self) {}
            #[step(next = [a1, a2])] fn a(&mut self) {}
            #[step(next = ja)] fn a1(&mut self) {}
            #[step(next = ja)] fn a2(&mut self) {}
            #[step(join, next = j)] fn ja(&mut self, inputs: Inputs<Self>) {}
            #[step(next = j)] fn b(&mut self) {}
            #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(g.join_of[4], Some(1));
    assert_eq!(g.join_of[6], Some(0));
}

#[test]
fn raw_identifiers_resolve_by_their_plain_name() {
    let g = valid(flow! {
        impl F {
            #[step(next = r#match)] fn start(&mut self) {}
            #[step(next = r#end)] fn r#match(&mut self) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(g.targets, vec![vec![1], vec![2], vec![]]);
}

#[test]
fn options_are_accepted_in_any_order() {
    valid(flow! {
        impl F {
            #[step(retries = 3, timeout = "1h 30m", catch, next = b)] fn start(&mut self) {}
            #[step(catch = error, timeout = 10, next = end)] fn b(&mut self) -> Result<(), String> { Ok(()) }
            #[step(retries = 100)] fn end(&mut self) {}
        }
    });
}

#[test]
fn full_path_step_attribute_is_a_step() {
    let g = valid(flow! {
        impl F {
            #[blooming_flowers::step(next = end)] fn start(&mut self) {}
            #[::blooming_flowers::step] fn end(&mut self) {}
        }
    });
    assert_eq!(g.targets, vec![vec![1], vec![]]);
}

#[test]
fn a_large_generated_flow_is_valid() {
    // start → s0 → … → s199 → a 3-way branch per 10 steps joined again → end.
    let n = 200;
    let names: Vec<syn::Ident> = (0..n).map(|i| quote::format_ident!("s{i}")).collect();
    let mut steps = Vec::new();
    steps.push(quote!(
        #[step(next = s0)]
        fn start(&mut self) {}
    ));
    for i in 0..n {
        let me = &names[i];
        let next = if i + 1 < n {
            names[i + 1].clone()
        } else {
            quote::format_ident!("end")
        };
        steps.push(quote!(#[step(next = #next)] fn #me(&mut self) {}));
    }
    steps.push(quote!(
        #[step]
        fn end(&mut self) {}
    ));
    let g = valid(quote!(impl Big { #(#steps)* }));
    assert_eq!(g.targets.len(), n + 2);
}

// ---------------------------------------------------------------------------------------------
// Names, start and end.

#[test]
fn unknown_target_suggests_the_near_name() {
    one_error(
        flow! {
            impl F {
                #[step(next = gahter)] fn start(&mut self) {}
                #[step(next = end)] fn gather(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["no step named `gahter` in this flow; did you mean `gather`?"],
    );
}

#[test]
fn unknown_target_far_from_every_name_has_no_suggestion() {
    let message = one_error(
        flow! {
            impl F {
                #[step(next = zzzzzz)] fn start(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["no step named `zzzzzz`"],
    );
    assert!(!message.contains("did you mean"));
}

#[test]
fn unknown_targets_in_every_transition_kind_are_each_reported() {
    let (_, messages) = run(flow! {
        impl F {
            #[step(next = [a, bb])] fn start(&mut self) {}
            #[step(foreach = xs, next = bdy)] fn a(&mut self) {}
            #[step(next = j)] fn body(&mut self, x: u8) {}
            #[step(switch(true => end, false => jj))] fn b(&mut self) -> bool { true }
            #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert!(messages[0].contains("`bb`") && messages[0].contains("did you mean `b`"));
    assert!(messages[1].contains("`bdy`") && messages[1].contains("did you mean `body`"));
    assert!(messages[2].contains("`jj`") && messages[2].contains("did you mean `j`?"));
}

#[test]
fn target_that_is_a_plain_method_says_add_step_once() {
    one_error(
        flow! {
            impl F {
                #[step(next = [a, b])] fn start(&mut self) {}
                #[step(next = helper)] fn a(&mut self) {}
                #[step(next = helper)] fn b(&mut self) {}
                fn helper(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["`helper` is a method of this impl but not a step: add `#[step(…)]` to it"],
    );
}

#[test]
fn missing_start_points_at_the_only_root() {
    one_error(
        flow! {
            impl F {
                #[step(next = end)] fn begin(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &[
            "flow `F` has no `start` step; `begin` is the only step that no transition leads to: name it `start`",
        ],
    );
}

#[test]
fn missing_start_without_a_single_candidate_points_at_the_type() {
    one_error(
        flow! {
            impl F {
                #[step(next = end)] fn one(&mut self) {}
                #[step(next = end)] fn two(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["flow `F` has no `start` step: add `#[step(next = …)] fn start(&mut self) { … }`"],
    );
}

#[test]
fn missing_end_points_at_the_only_leaf() {
    one_error(
        flow! {
            impl F {
                #[step(next = finish)] fn start(&mut self) {}
                #[step] fn finish(&mut self) {}
            }
        },
        &[
            "flow `F` has no `end` step; `finish` is the only step without a transition: name it `end`",
        ],
    );
}

#[test]
fn missing_end_without_any_leaf_points_at_the_type() {
    let (_, messages) = run(flow! {
        impl F {
            #[step(next = a)] fn start(&mut self) {}
            #[step(next = start)] fn a(&mut self) {}
        }
    });
    assert_eq!(
        messages,
        ["flow `F` has no `end` step: add `#[step] fn end(&mut self) { … }`"]
    );
}

#[test]
fn empty_impl_lacks_start_and_end() {
    let (_, messages) = run(flow! { impl F {} });
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages[0].contains("no `start` step"));
    assert!(messages[1].contains("no `end` step"));
}

#[test]
fn start_and_end_without_step_attribute() {
    one_error(
        flow! {
            impl F {
                #[step(next = end)] fn start(&mut self) {}
                fn end(&mut self) {}
            }
        },
        &["`end` must be a step: add `#[step]` to it"],
    );
    one_error(
        flow! {
            impl F {
                fn start(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["`start` must be a step: add `#[step(next = …)]` to it"],
    );
}

#[test]
fn edge_into_start() {
    one_error(
        flow! {
            impl F {
                #[step(next = a)] fn start(&mut self) {}
                #[step(next = start)] fn a(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["no step can lead to `start`"],
    );
}

#[test]
fn end_with_a_transition_is_one_error_even_into_start() {
    for item in [
        flow! { impl F { #[step(next = end)] fn start(&mut self) {} #[step(next = start)] fn end(&mut self) {} } },
        flow! { impl F { #[step(next = end)] fn start(&mut self) {} #[step(next = [start, end])] fn end(&mut self) {} } },
        flow! {
            impl F {
                #[step(next = end)] fn start(&mut self) {}
                #[step(switch(true => start, false => start))] fn end(&mut self) -> bool { true }
            }
        },
    ] {
        one_error(item, &["`end` finishes the flow and has no transition"]);
    }
}

#[test]
fn end_and_start_cannot_be_joins() {
    one_error(
        flow! {
            impl F {
                #[step(next = [a, b])] fn start(&mut self) {}
                #[step(next = end)] fn a(&mut self) {}
                #[step(next = end)] fn b(&mut self) {}
                #[step(join)] fn end(&mut self, inputs: Inputs<Self>) {}
            }
        },
        &["`end` cannot be a join"],
    );
    one_error(
        flow! {
            impl F {
                #[step(join, next = end)] fn start(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["`start` cannot be a join"],
    );
}

#[test]
fn step_without_transition() {
    one_error(
        flow! {
            impl F {
                #[step(next = a)] fn start(&mut self) {}
                #[step] fn a(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["step `a` has no transition", "only `end` has none"],
    );
}

#[test]
fn step_names_cannot_start_with_underscore() {
    one_error(
        flow! {
            impl F {
                #[step(next = _x)] fn start(&mut self) {}
                #[step(next = end)] fn _x(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["step names cannot start with `_`"],
    );
}

#[test]
fn step_names_differing_only_by_case_are_one_error_on_the_later_name() {
    let message = one_error(
        flow! {
            impl F {
                #[step(next = [train, Train])] fn start(&mut self) {}
                #[step(next = j)] fn train(&mut self) {}
                #[step(next = j)] fn Train(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["step `Train` differs from step `train` only by case"],
    );
    assert!(
        message.contains("case-insensitive file system"),
        "{message}"
    );
}

#[test]
fn each_step_colliding_by_case_is_its_own_error() {
    let (graph, messages) = run(flow! {
        impl F {
            #[step(next = [train, Train, TRAIN])] fn start(&mut self) {}
            #[step(next = j)] fn train(&mut self) {}
            #[step(next = j)] fn Train(&mut self) {}
            #[step(next = j)] fn TRAIN(&mut self) {}
            #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages[0].contains("step `Train` differs from step `train`"));
    assert!(messages[1].contains("step `TRAIN` differs from step `train`"));
    // The graph itself is sound: the names' mistakes do not also break it.
    assert!(graph.is_some());
}

#[test]
fn non_ascii_step_name_is_one_error_and_still_resolves_as_a_target() {
    let (graph, messages) = run(flow! {
        impl F {
            #[step(next = entraîner)] fn start(&mut self) {}
            #[step(next = end)] fn entraîner(&mut self) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(
        messages,
        [
            "step name `entraîner` contains `î`; the datastore allows only ASCII letters, digits and `_` in a name"
        ]
    );
    assert!(graph.is_some());
}

#[test]
fn non_ascii_flow_name_is_an_error_on_the_type() {
    one_error(
        flow! {
            impl Blümchen { #[step(next = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} }
        },
        &["flow name `Blümchen` contains `ü`", "rename the type"],
    );
    // Under a path, only the type's own name counts.
    let (_, messages) = run(flow! {
        impl crate::grüne::F { #[step(next = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} }
    });
    assert!(messages.is_empty(), "{messages:#?}");
}

#[test]
fn names_longer_than_a_file_name_are_errors() {
    let long = quote::format_ident!("{}", "s".repeat(256));
    let longest = quote::format_ident!("{}", "s".repeat(255));
    one_error(
        flow! {
            impl F {
                #[step(next = #long)] fn start(&mut self) {}
                #[step(next = end)] fn #long(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["is 256 bytes long; the datastore allows at most 255"],
    );
    valid(flow! {
        impl F {
            #[step(next = #longest)] fn start(&mut self) {}
            #[step(next = end)] fn #longest(&mut self) {}
            #[step] fn end(&mut self) {}
        }
    });
    one_error(
        flow! { impl #long { #[step(next = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
        &["flow name `sss", "is 256 bytes long"],
    );
}

/// The macro accepts exactly the names the runtime can store: its rules and the datastore's key
/// rules (`flow_runtime::datastore::validate_segment`) agree on every name a Rust identifier (raw
/// or not, ASCII or not) can spell, and on the characters only other strings contain.
#[test]
fn name_rules_agree_with_the_datastore_key_rules() {
    let long = "n".repeat(255);
    let too_long = "n".repeat(256);
    let wide = "é".repeat(128);
    let candidates = [
        "start",
        "Train",
        "TRAIN",
        "_x",
        "x_1",
        "match",
        "r#match",
        "entraîner",
        "Blümchen",
        "步骤",
        "ǅ",
        "ﬁ",
        "a\u{200b}b",
        "Ⅸ",
        "x.y",
        "x-y",
        ".x",
        ".",
        "..",
        "",
        "a/b",
        "a b",
        &long,
        &too_long,
        &wide,
    ];
    for name in candidates {
        let runtime = flow_runtime::datastore::validate_segment(name);
        let macro_rules = super::names::key_segment_problem(name);
        assert_eq!(
            macro_rules.is_none(),
            runtime.is_ok(),
            "{name:?}: the macro says {macro_rules:?}, the runtime {runtime:?}"
        );
    }
}

#[test]
fn duplicate_step_names_are_left_to_rustc() {
    let (graph, messages) = run(flow! {
        impl F {
            #[step(next = end)] fn start(&mut self) {}
            #[step(next = end)] fn start(&mut self) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert!(graph.is_none());
    assert!(messages.is_empty(), "{messages:#?}");
}

// ---------------------------------------------------------------------------------------------
// Reachability and cycles.

#[test]
fn cycle_is_one_error_on_the_closing_edge() {
    let message = one_error(
        flow! {
            impl F {
                #[step(next = a)] fn start(&mut self) {}
                #[step(next = b)] fn a(&mut self) {}
                #[step(next = a)] fn b(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["this transition closes a cycle (a → b → a)"],
    );
    assert!(message.contains("only a switch arm may go back to an earlier step"));
}

// ---------------------------------------------------------------------------------------------
// Loops: a switch arm back to a step every path to the switch passes through.

#[test]
fn a_switch_arm_back_to_an_earlier_step_is_a_loop() {
    let graph = valid(flow! {
        impl F {
            #[step(next = train)] fn start(&mut self) {}
            #[step(next = check)] fn train(&mut self) {}
            #[step(switch(true => train, false => end), max_iterations = 5)]
            fn check(&mut self) -> bool { true }
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(graph.targets[2], vec![1, 3]);
}

#[test]
fn a_switch_arm_back_to_its_own_step_is_a_loop() {
    valid(flow! {
        impl F {
            #[step(next = again)] fn start(&mut self) {}
            #[step(switch(true => again, false => end))] fn again(&mut self) -> bool { true }
            #[step] fn end(&mut self) {}
        }
    });
}

#[test]
fn loops_inside_a_foreach_around_a_split_and_nested_are_valid() {
    valid(flow! {
        impl F {
            #[step(foreach = xs, next = body)] fn start(&mut self) {}
            #[step(next = train)] fn body(&mut self, x: u32) {}
            #[step(next = check)] fn train(&mut self) {}
            #[step(switch(true => train, false => done))] fn check(&mut self) -> bool { true }
            #[step(next = collect)] fn done(&mut self) {}
            #[step(join, next = outer)] fn collect(&mut self, inputs: Inputs<Self>) {}
            #[step(next = [a, b])] fn outer(&mut self) {}
            #[step(next = j)] fn a(&mut self) {}
            #[step(next = j)] fn b(&mut self) {}
            #[step(join, next = inner)] fn j(&mut self, inputs: Inputs<Self>) {}
            #[step(switch(true => inner, false => decide))] fn inner(&mut self) -> bool { true }
            #[step(switch(true => outer, false => end))] fn decide(&mut self) -> bool { true }
            #[step] fn end(&mut self) {}
        }
    });
}

#[test]
fn a_loop_that_never_ends_is_an_error_on_its_arm() {
    one_error(
        flow! {
            impl F {
                #[step(next = train)] fn start(&mut self) {}
                #[step(next = check)] fn train(&mut self) {}
                #[step(switch(true => train, false => check))] fn check(&mut self) -> bool { true }
                #[step] fn end(&mut self) {}
            }
        },
        &["this loop never ends: no step from `train` to `check` leads out of it"],
    );
}

#[test]
fn a_loop_back_to_a_foreach_body_is_an_error() {
    one_error(
        flow! {
            impl F {
                #[step(foreach = xs, next = body)] fn start(&mut self) {}
                #[step(switch(true => body, false => done))] fn body(&mut self, x: u32) -> bool { true }
                #[step(next = collect)] fn done(&mut self) {}
                #[step(join, next = end)] fn collect(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["a loop cannot go back to `body`, the body of the foreach at `start`"],
    );
}

#[test]
fn max_iterations_without_a_loop_is_an_error() {
    one_error(
        flow! {
            impl F {
                #[step(switch(true => a, false => end), max_iterations = 3)]
                fn start(&mut self) -> bool { true }
                #[step(next = end)] fn a(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["`max_iterations` limits a loop, but no switch arm of `start` goes back"],
    );
    one_error(
        flow! {
            impl F {
                #[step(next = again)] fn start(&mut self) {}
                #[step(switch(true => again, false => end), max_iterations = 0)]
                fn again(&mut self) -> bool { true }
                #[step] fn end(&mut self) {}
            }
        },
        &["`max_iterations` takes a whole number of passes, at least 1"],
    );
}

#[test]
fn a_loop_out_of_a_split_is_an_error() {
    one_error(
        flow! {
            impl F {
                #[step(next = head)] fn start(&mut self) {}
                #[step(next = [a, b])] fn head(&mut self) {}
                #[step(switch(true => head, false => j))] fn a(&mut self) -> bool { true }
                #[step(next = j)] fn b(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["a switch arm cannot go straight into the join `j`"],
    );
    one_error(
        flow! {
            impl F {
                #[step(next = head)] fn start(&mut self) {}
                #[step(next = [a, b])] fn head(&mut self) {}
                #[step(switch(true => head, false => c))] fn a(&mut self) -> bool { true }
                #[step(next = j)] fn c(&mut self) {}
                #[step(next = j)] fn b(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &[
            "this loop leaves a split open: `a` runs inside the split at `head` and `head` outside it",
        ],
    );
    one_error(
        flow! {
            impl F {
                #[step(foreach = xs, next = body)] fn start(&mut self) {}
                #[step(next = j)] fn body(&mut self, x: u32) {}
                #[step(join, next = check)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step(switch(true => body, false => end))] fn check(&mut self) -> bool { true }
                #[step] fn end(&mut self) {}
            }
        },
        &["a loop cannot go back to `body`"],
    );
}

#[test]
fn a_switch_arm_into_the_middle_of_a_path_is_a_cycle() {
    // `b` is reached without `a`, so the arm back to `a` has two ways into its loop.
    one_error(
        flow! {
            impl F {
                #[step(switch(true => a, false => b))] fn start(&mut self) -> bool { true }
                #[step(next = b)] fn a(&mut self) {}
                #[step(switch(true => a, false => end))] fn b(&mut self) -> bool { true }
                #[step] fn end(&mut self) {}
            }
        },
        &[
            "closes a cycle (a → b → a): a switch arm may go back only to a step that every path to `b` passes through",
        ],
    );
}

#[test]
fn self_loop_is_a_cycle() {
    one_error(
        flow! {
            impl F {
                #[step(next = a)] fn start(&mut self) {}
                #[step(next = a)] fn a(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["closes a cycle (a → a)"],
    );
}

#[test]
fn cycle_through_a_branch_is_found() {
    let (_, messages) = run(flow! {
        impl F {
            #[step(next = [a, b])] fn start(&mut self) {}
            #[step(next = j)] fn a(&mut self) {}
            #[step(next = j)] fn b(&mut self) {}
            #[step(join, next = c)] fn j(&mut self, inputs: Inputs<Self>) {}
            #[step(switch(true => end, false => b))] fn c(&mut self) -> bool { true }
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(
        messages[0].contains("closes a cycle (j → c → b → j)"),
        "{messages:#?}"
    );
}

#[test]
fn orphan_chain_is_reported_at_its_first_step() {
    one_error(
        flow! {
            impl F {
                #[step(next = end)] fn start(&mut self) {}
                #[step(next = lonely2)] fn lonely(&mut self) {}
                #[step(next = end)] fn lonely2(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["step `lonely` is never reached from `start`"],
    );
}

#[test]
fn unreachable_loop_is_reported_once() {
    one_error(
        flow! {
            impl F {
                #[step(next = end)] fn start(&mut self) {}
                #[step(next = y)] fn x(&mut self) {}
                #[step(next = x)] fn y(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["step `x` is never reached"],
    );
}

#[test]
fn two_independent_orphans_are_two_errors() {
    let (_, messages) = run(flow! {
        impl F {
            #[step(next = end)] fn start(&mut self) {}
            #[step(next = end)] fn one(&mut self) {}
            #[step(next = end)] fn two(&mut self) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(messages.len(), 2, "{messages:#?}");
}

// ---------------------------------------------------------------------------------------------
// Splits and joins.

#[test]
fn branch_never_joined_reaches_end() {
    one_error(
        flow! {
            impl F {
                #[step(next = [a, b])] fn start(&mut self) {}
                #[step(next = end)] fn a(&mut self) {}
                #[step(next = end)] fn b(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &[
            "`end` is reached by branches `a` and `b` of the split at `start`: join them in a step before `end`",
        ],
    );
}

#[test]
fn foreach_never_joined_reaches_end() {
    one_error(
        flow! {
            impl F {
                #[step(foreach = xs, next = body)] fn start(&mut self) {}
                #[step(next = end)] fn body(&mut self, x: u8) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["`end` is reached while the split at `start` is still open"],
    );
}

#[test]
fn branches_meeting_in_a_non_join() {
    one_error(
        flow! {
            impl F {
                #[step(next = [a, b])] fn start(&mut self) {}
                #[step(next = meet)] fn a(&mut self) {}
                #[step(next = meet)] fn b(&mut self) {}
                #[step(next = end)] fn meet(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &[
            "step `meet` is reached by branches `a` and `b` of the split at `start` but is not a join",
        ],
    );
}

#[test]
fn join_of_unrelated_splits() {
    one_error(
        flow! {
            impl F {
                #[step(next = [a, b])] fn start(&mut self) {}
                #[step(next = [a1, a2])] fn a(&mut self) {}
                #[step(next = j)] fn a1(&mut self) {}
                #[step(next = j)] fn a2(&mut self) {}
                #[step(next = j)] fn b(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &[
            "join `j` mixes unrelated splits",
            "`b` comes from a branch of the split at `start`, the others from the split at `a`",
            "; join the branches of `a` in a step of their own first",
        ],
    );
}

#[test]
fn join_without_split() {
    one_error(
        flow! {
            impl F {
                #[step(next = j)] fn start(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["`j` is a join, but no split is open where it is reached"],
    );
}

#[test]
fn join_missing_a_branch() {
    one_error(
        flow! {
            impl F {
                #[step(next = [a, b, c])] fn start(&mut self) {}
                #[step(next = j)] fn a(&mut self) {}
                #[step(next = j)] fn b(&mut self) {}
                #[step(next = end)] fn c(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["join `j` does not receive the branch `c` of the split at `start`"],
    );
}

#[test]
fn straight_into_a_join() {
    one_error(
        flow! {
            impl F {
                #[step(foreach = xs, next = j)] fn start(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["a foreach cannot go straight into the join `j`"],
    );
    one_error(
        flow! {
            impl F {
                #[step(next = [a, j])] fn start(&mut self) {}
                #[step(next = j)] fn a(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["a branch cannot go straight into the join `j`"],
    );
    one_error(
        flow! {
            impl F {
                #[step(next = [x, y])] fn start(&mut self) {}
                #[step(switch(true => a, false => j))] fn x(&mut self) -> bool { true }
                #[step(next = j)] fn a(&mut self) {}
                #[step(next = j)] fn y(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["a switch arm cannot go straight into the join `j`"],
    );
}

#[test]
fn straight_to_end() {
    one_error(
        flow! {
            impl F {
                #[step(foreach = xs, next = end)] fn start(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["a foreach cannot go straight to `end`"],
    );
    one_error(
        flow! {
            impl F {
                #[step(next = [a, end])] fn start(&mut self) {}
                #[step(next = end)] fn a(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["a branch cannot go straight to `end`"],
    );
}

#[test]
fn inputs_without_join_flag_is_one_error_wherever_it_is() {
    one_error(
        flow! {
            impl F {
                #[step(foreach = xs, next = body)] fn start(&mut self) {}
                #[step(next = end)] fn body(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["only a join step takes `Inputs`"],
    );
}

#[test]
fn branch_naming_a_step_twice() {
    one_error(
        flow! {
            impl F {
                #[step(next = [a, a])] fn start(&mut self) {}
                #[step(next = j)] fn a(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["`a` is already a branch of this split"],
    );
}

#[test]
fn switch_with_one_arm() {
    one_error(
        flow! {
            impl F {
                #[step(switch(Route::Only => end))] fn start(&mut self) -> Route { Route::Only }
                #[step] fn end(&mut self) {}
            }
        },
        &["a switch needs at least two arms; for a single successor write `next = …`"],
    );
}

// ---------------------------------------------------------------------------------------------
// Signatures.

#[test]
fn receivers_other_than_mut_ref_self() {
    for (item, expected) in [
        (
            flow! { impl F { #[step(next = end)] fn start(&self) {} #[step] fn end(&mut self) {} } },
            "must take `&mut self`",
        ),
        (
            flow! { impl F { #[step(next = end)] fn start(self) {} #[step] fn end(&mut self) {} } },
            "must take `&mut self`",
        ),
        (
            flow! { impl F { #[step(next = end)] fn start(mut self) {} #[step] fn end(&mut self) {} } },
            "must take `&mut self`",
        ),
        (
            flow! { impl F { #[step(next = end)] fn start(self: Box<Self>) {} #[step] fn end(&mut self) {} } },
            "must take `&mut self`",
        ),
        (
            flow! { impl F { #[step(next = end)] fn start() {} #[step] fn end(&mut self) {} } },
            "as its first parameter",
        ),
    ] {
        one_error(item, &["step `start`", expected]);
    }
}

#[test]
fn join_and_inputs_must_agree() {
    one_error(
        flow! {
            impl F {
                #[step(next = [a, b])] fn start(&mut self) {}
                #[step(next = j)] fn a(&mut self) {}
                #[step(next = j)] fn b(&mut self) {}
                #[step(join, next = end)] fn j(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["join step `j` must take the branches' states: `fn j(&mut self, inputs: Inputs<Self>)`"],
    );
    one_error(
        flow! {
            impl F {
                #[step(next = [a, b])] fn start(&mut self) {}
                #[step(next = j)] fn a(&mut self) {}
                #[step(next = j)] fn b(&mut self) {}
                #[step(next = end)] fn j(&mut self, inputs: blooming_flowers::Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["only a join step takes `Inputs`; if `j` joins branches, write `#[step(join, …)]`"],
    );
    one_error(
        flow! {
            impl F {
                #[step(next = [a, b])] fn start(&mut self) {}
                #[step(next = j)] fn a(&mut self) {}
                #[step(next = j)] fn b(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, x: Inputs<Self>, y: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["a join step takes one `inputs: Inputs<Self>`"],
    );
}

#[test]
fn foreach_body_parameters() {
    one_error(
        flow! {
            impl F {
                #[step(foreach = xs, next = body)] fn start(&mut self) {}
                #[step(next = j)] fn body(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &[
            "step `body` is the body of a foreach and takes the element: `fn body(&mut self, item: T)`",
        ],
    );
    one_error(
        flow! {
            impl F {
                #[step(foreach = xs, next = body)] fn start(&mut self) {}
                #[step(next = j)] fn body(&mut self, x: u8, y: u8) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["a foreach body takes exactly one parameter, the element"],
    );
    one_error(
        flow! {
            impl F {
                #[step(next = end)] fn start(&mut self, n: u64) {}
                #[step] fn end(&mut self) {}
            }
        },
        &[
            "step `start` is not the body of a foreach, so it takes no parameter besides `&mut self`",
        ],
    );
    one_error(
        flow! {
            impl F {
                #[step(next = [a, b])] fn start(&mut self) {}
                #[step(next = j)] fn a(&mut self) {}
                #[step(next = j)] fn b(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>, n: u8) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["takes no parameter besides `&mut self` and `inputs: Inputs<Self>`"],
    );
}

#[test]
fn foreach_body_typo_is_not_also_a_parameter_error() {
    one_error(
        flow! {
            impl F {
                #[step(foreach = xs, next = bdy)] fn start(&mut self) {}
                #[step(next = j)] fn body(&mut self, x: u64) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["no step named `bdy`", "did you mean `body`"],
    );
}

#[test]
fn switch_must_return_its_value() {
    one_error(
        flow! {
            impl F {
                #[step(switch(true => a, false => end))] fn start(&mut self) {}
                #[step(next = end)] fn a(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["switch step `start` must return the value its arms match"],
    );
    one_error(
        flow! {
            impl F {
                #[step(switch(true => a, false => end))] fn start(&mut self) -> () {}
                #[step(next = end)] fn a(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["must return the value its arms match"],
    );
}

#[test]
fn forbidden_method_shapes() {
    for (item, expected) in [
        (
            flow! { impl F { #[step(next = end)] async fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "cannot be `async`",
        ),
        (
            flow! { impl F { #[step(next = end)] const fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "cannot be a `const fn`",
        ),
        (
            flow! { impl F { #[step(next = end)] unsafe fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "cannot be `unsafe`",
        ),
        (
            flow! { impl F { #[step(next = end)] extern "C" fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "`extern` ABI",
        ),
        (
            flow! { impl F { #[step(next = end)] fn start<T>(&mut self) {} #[step] fn end(&mut self) {} } },
            "step `start` cannot be generic",
        ),
        (
            flow! { impl F { #[step(next = end)] fn start(&mut self) where Self: Sized {} #[step] fn end(&mut self) {} } },
            "cannot be generic",
        ),
        (
            flow! { impl F { #[step(next = end)] fn start(&mut self) -> impl Sized {} #[step] fn end(&mut self) {} } },
            "cannot return `impl Trait`",
        ),
    ] {
        one_error(item, &[expected]);
    }
}

#[test]
fn cfg_on_a_step_is_rejected() {
    for item in [
        flow! { impl F { #[step(next = end)] fn start(&mut self) {} #[cfg(test)] #[step] fn end(&mut self) {} } },
        flow! { impl F { #[step(next = end)] #[cfg_attr(test, inline)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
    ] {
        one_error(item, &["`#[cfg]` on a step is not supported"]);
    }
}

#[test]
fn cfg_on_a_plain_method_is_fine() {
    valid(flow! {
        impl F {
            #[step(next = end)] fn start(&mut self) {}
            #[cfg(test)] fn helper(&self) {}
            #[step] fn end(&mut self) {}
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Attribute syntax.

#[test]
fn unknown_option_suggests_the_near_one() {
    one_error(
        flow! { impl F { #[step(next = end, retry = 3)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
        &["unknown step option `retry`", "did you mean `retries`?"],
    );
    one_error(
        flow! { impl F { #[step(nxt = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
        &["unknown step option `nxt`", "did you mean `next`?"],
    );
    one_error(
        flow! { impl F { #[step(next = end, timout(3))] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
        &["unknown step option `timout`", "did you mean `timeout`?"],
    );
}

#[test]
fn misspelt_transition_is_not_also_a_graph_error() {
    // Without its transition, `start` leads nowhere: `a`, `j` and `end` look unreachable, but the
    // one mistake is the misspelt key.
    for item in [
        flow! {
            impl F {
                #[step(nxt = [a, b])] fn start(&mut self) {}
                #[step(next = j)] fn a(&mut self) {}
                #[step(next = j)] fn b(&mut self) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        flow! {
            impl F {
                #[step(forech = xs, next = body)] fn start(&mut self) {}
                #[step(next = j)] fn body(&mut self, x: u8) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        flow! {
            impl F {
                #[step(foreach = xs)] fn start(&mut self) {}
                #[step(next = j)] fn body(&mut self, x: u8) {}
                #[step(join, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        flow! {
            impl F {
                #[step(next = [a])] fn start(&mut self) {}
                #[step(next = end)] fn a(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        flow! {
            impl F {
                #[step(next = 3)] fn start(&mut self) {}
                #[step(next = end)] fn a(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        flow! {
            impl F {
                #[step(next = [a, , b])] fn start(&mut self) {}
                #[step(next = end)] fn a(&mut self) {}
                #[step(next = end)] fn b(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
        flow! {
            impl F {
                #[step(next = [a, b])] fn start(&mut self) {}
                #[step(next = j)] fn a(&mut self) {}
                #[step(next = j)] fn b(&mut self) {}
                #[step(jion, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        flow! {
            impl F {
                #[step(switch(true -> a, false => end))] fn start(&mut self) -> bool { true }
                #[step(next = end)] fn a(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
    ] {
        let (_, messages) = run(item);
        assert_eq!(messages.len(), 1, "{messages:#?}");
    }
}

#[test]
fn unknown_option_beside_a_transition_does_not_hide_graph_errors() {
    let (_, messages) = run(flow! {
        impl F {
            #[step(next = end, retry = 3)] fn start(&mut self) {}
            #[step(next = end)] fn lonely(&mut self) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages[0].contains("unknown step option `retry`"));
    assert!(messages[1].contains("`lonely` is never reached"));
}

#[test]
fn duplicate_options() {
    one_error(
        flow! { impl F { #[step(next = end, retries = 2, retries = 3)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
        &["duplicate step option `retries`"],
    );
    one_error(
        flow! { impl F { #[step(next = end, next = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
        &["duplicate step option `next`"],
    );
    one_error(
        flow! { impl F { #[step(next = end)] #[step(next = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
        &["duplicate #[step] attribute"],
    );
}

/// The resources of each step of `item`, which must parse without errors.
fn resources(item: TokenStream) -> Vec<(Option<u32>, Option<u64>, Option<u32>)> {
    let mut errors = Errors::new();
    let flow = parse_flow(TokenStream::new(), item, &mut errors);
    assert_eq!(messages(errors.check()), Vec::<String>::new());
    flow.map(|f| {
        f.steps
            .iter()
            .map(|s| {
                let r = &s.options.resources;
                (r.cpus, r.memory_bytes, r.gpus)
            })
            .collect()
    })
    .unwrap_or_default()
}

#[test]
fn resources_are_read_and_emitted() {
    let item = flow! {
        impl F {
            #[step(resources(cpus = 8, memory = "64 GiB", gpus = 1), next = a)] fn start(&mut self) {}
            #[step(next = end, resources(memory = "1.5 GB"))] fn a(&mut self) {}
            #[step(resources(gpus = 0))] fn end(&mut self) {}
        }
    };
    assert_eq!(
        resources(item.clone()),
        vec![
            (Some(8), Some(64 << 30), Some(1)),
            (None, Some(1_500_000_000), None),
            (None, None, Some(0)),
        ]
    );
    let text = expand_flow(TokenStream::new(), item).to_string();
    assert!(
        text.contains("Resources { cpus : :: core :: option :: Option :: Some (8u32)"),
        "{text}"
    );
    assert!(text.contains("memory_bytes : :: core :: option :: Option :: Some (68719476736u64)"));
}

#[test]
fn each_bad_resource_is_one_error_on_its_token() {
    let cases: [(TokenStream, &[&str]); 10] = [
        (
            quote!(resources(cpu = 8)),
            &[
                "unknown resource `cpu`; the resources are `cpus`, `memory`, `gpus`; did you mean `cpus`?",
            ],
        ),
        (
            quote!(resources(mem = "1 GiB")),
            &["unknown resource `mem`", "did you mean `memory`?"],
        ),
        (
            quote!(resources(cpus = 2, cpus = 4)),
            &["duplicate resource `cpus`"],
        ),
        (quote!(resources(cpus = 0)), &["`cpus` is at least 1"]),
        (
            quote!(resources(cpus = 0.5)),
            &[
                "`cpus` takes a whole number",
                "a fraction of a cpu cannot be reserved",
            ],
        ),
        (
            quote!(resources(memory = "64 Gb")),
            &[
                "unknown memory unit `Gb`; the units are B, KiB, MiB, GiB, TiB, KB, MB, GB, TB; did you mean `GB`?",
            ],
        ),
        (
            quote!(resources(memory = 64)),
            &["`memory` takes a string with a unit"],
        ),
        (quote!(resources()), &["`resources()` asks for nothing"]),
        (
            quote!(resources = 8),
            &["`resources` takes its values in parentheses"],
        ),
        (
            quote!(resources(gpus = "1")),
            &["`gpus` takes a whole number"],
        ),
    ];
    for (option, expected) in cases {
        let item = flow! {
            impl F { #[step(next = end, #option)] fn start(&mut self) {} #[step] fn end(&mut self) {} }
        };
        one_error(item.clone(), expected);
        let out = expand_flow(TokenStream::new(), item);
        assert!(implements_flow(&out), "the fallback still implements Flow");
    }
}

#[test]
fn bad_resources_do_not_hide_each_other_nor_the_other_options() {
    let (_, messages) = run(flow! {
        impl F {
            #[step(resources(cpu = 1, memory = "1 parsec", gpus = 1), retry = 2, next = end)]
            fn start(&mut self) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert!(messages[0].contains("unknown resource `cpu`"));
    assert!(messages[1].contains("unknown memory unit `parsec`"));
    assert!(messages[2].contains("unknown step option `retry`"));
}

/// The timeout of each step of `item`, which must parse without errors.
fn timeouts(item: TokenStream) -> Vec<Option<std::time::Duration>> {
    let mut errors = Errors::new();
    let flow = parse_flow(TokenStream::new(), item, &mut errors);
    assert_eq!(messages(errors.check()), Vec::<String>::new());
    flow.map(|f| f.steps.iter().map(|s| s.options.timeout).collect())
        .unwrap_or_default()
}

#[test]
fn timeouts_are_read_to_the_nanosecond_and_emitted_exactly() {
    use std::time::Duration;
    let item = flow! {
        impl F {
            #[step(next = a, timeout = 45)] fn start(&mut self) {}
            #[step(next = b, timeout = "1h 30m")] fn a(&mut self) {}
            #[step(next = c, timeout = "1.5s")] fn b(&mut self) {}
            #[step(next = end, timeout = "2min 250us")] fn c(&mut self) {}
            #[step] fn end(&mut self) {}
        }
    };
    assert_eq!(
        timeouts(item.clone()),
        [
            Some(Duration::from_secs(45)),
            Some(Duration::from_secs(5400)),
            Some(Duration::from_millis(1500)),
            Some(Duration::new(120, 250_000)),
            None,
        ]
    );
    let text = expand_flow(TokenStream::new(), item).to_string();
    assert!(
        text.contains("Duration :: new (1u64 , 500000000u32)"),
        "{text}"
    );
    assert!(
        text.contains("Duration :: new (120u64 , 250000u32)"),
        "{text}"
    );
}

#[test]
fn out_of_range_timeouts_are_the_timeout_error() {
    // At most `u64::MAX` milliseconds, as before humantime; the last one makes humantime 2.4.0
    // panic, which must still be this error and not the macro's "internal error".
    for timeout in [
        quote!(18446744073709552),
        quote!("18446744073709552s"),
        quote!("18446744073709551615s 500ms 500ms"),
        quote!("0s"),
        quote!("30"),
    ] {
        one_error(
            flow! { impl F { #[step(next = end, timeout = #timeout)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            &[
                "`timeout` takes seconds or a duration with units",
                "more than zero",
            ],
        );
    }
    assert_eq!(
        timeouts(flow! {
            impl F { #[step(next = end, timeout = 18446744073709551)] fn start(&mut self) {} #[step] fn end(&mut self) {} }
        })[0],
        Some(std::time::Duration::from_secs(18_446_744_073_709_551))
    );
}

#[test]
fn option_values() {
    for (item, expected) in [
        (
            flow! { impl F { #[step(next = end, timeout = "10 parsecs")] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "`timeout` takes seconds or a duration",
        ),
        (
            flow! { impl F { #[step(next = end, timeout = 0)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "it must be more than zero",
        ),
        (
            flow! { impl F { #[step(next = end, timeout = "")] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "`timeout` takes seconds",
        ),
        (
            flow! { impl F { #[step(next = end, timeout = 1.5)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "`timeout` takes seconds",
        ),
        (
            flow! { impl F { #[step(next = end, retries = 1000)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "`retries` is at most 100",
        ),
        (
            flow! { impl F { #[step(next = end, retries = 99999999999)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "`retries` takes a whole number",
        ),
        (
            flow! { impl F { #[step(next = end, retries = "3")] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "expected integer literal",
        ),
        (
            flow! { impl F { #[step(next = end, catch = "field")] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "expected ident",
        ),
        (
            flow! { impl F { #[step(next = end, catch(x))] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "`catch` is a flag",
        ),
    ] {
        one_error(item, &[expected]);
    }
}

#[test]
fn join_with_a_value_is_still_taken_as_a_join() {
    one_error(
        flow! {
            impl F {
                #[step(next = [a, b])] fn start(&mut self) {}
                #[step(next = j)] fn a(&mut self) {}
                #[step(next = j)] fn b(&mut self) {}
                #[step(join = x, next = end)] fn j(&mut self, inputs: Inputs<Self>) {}
                #[step] fn end(&mut self) {}
            }
        },
        &["`join` is a flag and takes no value: write `join`"],
    );
}

#[test]
fn transition_shapes() {
    for (item, expected) in [
        (
            flow! { impl F { #[step(next = [a])] fn start(&mut self) {} #[step(next = end)] fn a(&mut self) {} #[step] fn end(&mut self) {} } },
            "a branch needs at least two steps; for one step write `next = a`",
        ),
        (
            flow! { impl F { #[step(next = [])] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "a branch needs at least two steps",
        ),
        (
            flow! { impl F { #[step(foreach = xs)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "`foreach` needs its body step: `foreach = field, next = body`",
        ),
        (
            flow! { impl F { #[step(foreach = xs, next = [a, b])] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "a foreach has one body step",
        ),
        (
            flow! { impl F { #[step(next = end, switch(true => end, false => end))] fn start(&mut self) -> bool { true } #[step] fn end(&mut self) {} } },
            "`next` cannot be combined with `switch`",
        ),
        (
            flow! { impl F { #[step(foreach = xs, switch(true => end, false => end))] fn start(&mut self) -> bool { true } #[step] fn end(&mut self) {} } },
            "`foreach` cannot be combined with `switch`",
        ),
        (
            flow! { impl F { #[step(switch)] fn start(&mut self) -> bool { true } #[step] fn end(&mut self) {} } },
            "expected arms in parentheses",
        ),
        (
            flow! { impl F { #[step(next = "end")] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "expected a step name or a list of step names",
        ),
        (
            flow! { impl F { #[step = "next"] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "write the step's options in parentheses",
        ),
        (
            flow! { impl F { #[step(a::b = 1, next = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
            "expected one of `next`",
        ),
    ] {
        one_error(item, &[expected]);
    }
}

#[test]
fn two_independent_mistakes_are_two_errors() {
    let (_, messages) = run(flow! {
        impl F {
            #[step(next = gahter)] fn start(&mut self) {}
            #[step(next = end, retry = 3)] fn gather(&mut self) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages[0].contains("unknown step option `retry`"));
    assert!(messages[1].contains("no step named `gahter`"));
}

#[test]
fn signature_and_graph_mistakes_are_both_reported() {
    let (_, messages) = run(flow! {
        impl F {
            #[step(next = a)] async fn start(&mut self) {}
            #[step(next = a)] fn a(&mut self) {}
            #[step] fn end(&mut self) {}
        }
    });
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages[0].contains("async"));
    assert!(messages[1].contains("cycle"));
}

// ---------------------------------------------------------------------------------------------
// The impl block itself, and `#[flow(...)]`.

#[test]
fn flow_options() {
    let (_, messages) = run_with(
        quote!(crat = x),
        flow! {
            impl F { #[step(next = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} }
        },
    );
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(messages[0].contains("unknown #[flow] option `crat`"));
    assert!(messages[0].contains("did you mean `crate`?"));
    let (graph, messages) = run_with(
        quote!(crate = ::my::reexport),
        flow! {
            impl F { #[step(next = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} }
        },
    );
    assert!(graph.is_some() && messages.is_empty(), "{messages:#?}");
}

#[test]
fn flow_on_something_else_than_an_impl() {
    let item = quote!(
        struct F {
            n: u64,
        }
    );
    let (graph, messages) = run(item.clone());
    assert!(graph.is_none());
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("#[flow] goes on the `impl` block of the flow's struct"));
    let out = expand_flow(TokenStream::new(), item);
    assert_eq!(compile_errors(&out), 1);
    assert!(!implements_flow(&out), "no fallback for a non-impl");
    assert!(out.to_string().contains("struct F"));
}

#[test]
fn flow_on_a_trait_impl() {
    let item = flow! { impl Default for F { fn default() -> Self { F } } };
    let (_, messages) = run(item.clone());
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(messages[0].contains("not on a trait impl"));
    let out = expand_flow(TokenStream::new(), item);
    assert_eq!(compile_errors(&out), 1);
    assert!(
        !implements_flow(&out),
        "no fallback when the block holds no steps"
    );
    assert!(out.to_string().contains("impl Default for F"));

    // Steps in a trait impl are read as the inherent impl that was meant: one error.
    let item = flow! {
        impl Flow for F { #[step(next = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} }
    };
    let (_, messages) = run(item.clone());
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let out = expand_flow(TokenStream::new(), item);
    assert_eq!(compile_errors(&out), 1);
    assert!(implements_flow(&out));
    assert!(
        out.to_string().contains("impl F {"),
        "the steps stay in an inherent impl"
    );
}

#[test]
fn generic_flow_type() {
    let item = flow! {
        impl<T> G<T> { #[step(next = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} }
    };
    one_error(item.clone(), &["a flow type cannot be generic"]);
    let out = expand_flow(TokenStream::new(), item);
    assert_eq!(compile_errors(&out), 1);
    assert!(
        !implements_flow(&out),
        "no fallback that names undeclared parameters"
    );
    let item = flow! {
        impl G where G: Sized { #[step(next = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} }
    };
    one_error(item, &["a flow type cannot be generic"]);
}

#[test]
fn flow_type_must_be_a_path() {
    one_error(
        flow! { impl (F, G) { #[step(next = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
        &["#[flow] needs the flow's struct as the impl's type"],
    );
}

// ---------------------------------------------------------------------------------------------
// Expansion as a whole.

#[test]
fn valid_flow_expands_without_errors() {
    let out = expand_flow(
        TokenStream::new(),
        flow! {
            impl F {
                /// Doc.
                #[step(next = end, retries = 2)] fn start(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
    );
    let text = out.to_string();
    assert_eq!(compile_errors(&out), 0);
    assert!(implements_flow(&out));
    assert!(text.contains("const GRAPH"));
    assert!(
        !text.contains("# [step"),
        "the #[step] attributes are consumed"
    );
    assert!(text.contains(":: blooming_flowers :: __private"));
}

#[test]
fn invalid_flow_expands_to_its_errors_and_a_fallback() {
    let out = expand_flow(
        TokenStream::new(),
        flow! {
            impl F {
                #[step(next = gahter)] fn start(&mut self) {}
                #[step(next = end, retry = 1)] fn gather(&mut self) {}
                #[step] fn end(&mut self) {}
            }
        },
    );
    assert_eq!(compile_errors(&out), 2);
    assert!(implements_flow(&out), "a fallback keeps use sites quiet");
    assert!(
        !out.to_string().contains("# [step"),
        "the #[step] attributes are consumed"
    );
    assert!(
        out.to_string().contains("fn gather"),
        "the user's methods are kept"
    );
}

#[test]
fn crate_override_is_used_in_expansion() {
    let out = expand_flow(
        quote!(crate = ::my::reexport),
        flow! { impl F { #[step(next = end)] fn start(&mut self) {} #[step] fn end(&mut self) {} } },
    );
    let text = out.to_string();
    assert!(text.contains(":: my :: reexport :: __private"));
    assert!(!text.contains("blooming_flowers"));
}

#[test]
fn stray_step_is_an_error_that_keeps_the_item() {
    let out = expand_stray_step(quote!(
        fn start(&mut self) {}
    ));
    assert_eq!(compile_errors(&out), 1);
    assert!(
        out.to_string()
            .contains("only works on methods of an `impl` block marked #[flow]")
    );
    assert!(out.to_string().contains("fn start"));
}

#[test]
fn garbage_never_panics() {
    for item in [
        quote!(),
        quote!(impl),
        quote!(impl F),
        quote!(impl F { #[step(next = )] fn start(&mut self) {} }),
        quote!(impl F { #[step(switch())] fn start(&mut self) -> u8 { 0 } #[step] fn end(&mut self) {} }),
        quote!(impl F { #[step(,,)] fn start(&mut self) {} }),
        quote!(impl F { #[step()] fn start(&mut self) {} #[step()] fn end(&mut self) {} }),
        quote!(impl F { #[step(next = [a, , b])] fn start(&mut self) {} }),
        quote!(impl F { #[step] const X: u8 = 0; #[step] type T = u8; }),
        quote!(
            fn main() {}
        ),
    ] {
        let out = expand_flow(TokenStream::new(), item);
        assert!(compile_errors(&out) >= 1, "{out}");
    }
    let out = expand_flow(quote!(crate), flow! { impl F {} });
    assert!(compile_errors(&out) >= 1);
}
