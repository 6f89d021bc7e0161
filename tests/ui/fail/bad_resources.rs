#![allow(unused)]

use blooming_flowers::prelude::*;

#[derive(Clone, Default, Serialize, Deserialize)]
struct F { n: u64 }

// One mistake per step, each reported on its own token; the others are still read.
#[flow]
impl F {
    #[step(next = b, resources(cpu = 8))]
    fn start(&mut self) {}
    #[step(next = c, resources(mem = "1 GiB"))]
    fn b(&mut self) {}
    #[step(next = d, resources(cpus = 2, cpus = 4))]
    fn c(&mut self) {}
    #[step(next = e, resources(cpus = 0))]
    fn d(&mut self) {}
    #[step(next = f, resources(cpus = 0.5))]
    fn e(&mut self) {}
    #[step(next = g, resources(memory = "64 Gb"))]
    fn f(&mut self) {}
    #[step(next = h, resources(memory = "64G"))]
    fn g(&mut self) {}
    #[step(next = i, resources(memory = 64))]
    fn h(&mut self) {}
    #[step(next = j, resources(memory = "0 MiB"))]
    fn i(&mut self) {}
    #[step(next = k, resources(memory = "lots"))]
    fn j(&mut self) {}
    #[step(next = l, resources(gpus = "1"))]
    fn k(&mut self) {}
    #[step(next = m, resources())]
    fn l(&mut self) {}
    #[step(next = end, resources = 8)]
    fn m(&mut self) {}
    #[step(resources(cpus = 1, memory = "1 GiB", gpus = 1))]
    fn end(&mut self) {}
}

fn main() {}
