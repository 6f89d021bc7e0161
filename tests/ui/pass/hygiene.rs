//! Nothing generated depends on the user's names: shadowed std names, fields and methods named
//! like generated items, and steps named like the runtime's items all compile. (Primitive types
//! are not shadowed: serde's derive itself names them unqualified.)
#![allow(dead_code, non_camel_case_types)]

use blooming_flowers::prelude::*;
use blooming_flowers::{StepInput, StepOutcome};

mod core {}
mod std {}
struct Ok;
struct Err;
struct Some;
struct None;
struct Vec;
struct String;
trait Iterator {}
trait IntoIterator {}

#[derive(Clone, Default, Serialize, Deserialize)]
struct Clashing {
    __step: ::std::vec::Vec<u32>,
    __input: u32,
    __item: u32,
    __value: bool,
    __field: Option<::std::string::String>,
    __returned: u32,
}

#[flow]
impl Clashing {
    #[step(foreach = __step, next = decode_item)]
    fn start(&mut self) {
        self.__step = vec![1, 2];
    }

    #[step(next = foreach_iter)]
    fn decode_item(&mut self, __item: u32) {
        self.__item = __item;
    }

    #[step(join, next = record_caught)]
    fn foreach_iter(&mut self, __inputs: Inputs<Self>) {
        self.__input = __inputs.len() as u32;
    }

    #[step(switch(true => foreach_items, false => run_step), catch = __field)]
    fn record_caught(&mut self) -> bool {
        self.__value
    }

    #[step(next = end)]
    fn foreach_items(&mut self) {}

    #[step(next = end)]
    fn run_step(&mut self) {}

    #[step]
    fn end(&mut self) {}
}

fn main() {
    let g = <Clashing as Flow>::GRAPH;
    assert_eq!(g.steps.len(), 7);
    let mut state = Clashing::default();
    state.__value = true;
    let outcome = <Clashing as Flow>::__run_step(&mut state, 3, StepInput::Plain);
    assert_eq!(outcome, ::core::result::Result::Ok(StepOutcome::Arm(0)));
    <Clashing as Flow>::__record_caught(&mut state, 3, "caught".into());
    assert_eq!(state.__field.as_deref(), ::core::option::Option::Some("caught"));
}
