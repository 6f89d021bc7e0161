//! A foreach whose body is itself a foreach split: the inner join closes the inner foreach, the
//! outer join the outer one.

use blooming_flowers::prelude::*;
use blooming_flowers::Transition;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Grid {
    rows: Vec<u32>,
    cols: Vec<String>,
    row: u32,
    cell: String,
    cells: Vec<String>,
}

#[flow]
impl Grid {
    #[step(foreach = rows, next = row)]
    fn start(&mut self) {
        self.rows = vec![1, 2];
        self.cols = vec!["a".into(), "b".into()];
    }

    #[step(foreach = cols, next = cell)]
    fn row(&mut self, row: u32) {
        self.row = row;
    }

    #[step(next = join_cols)]
    fn cell(&mut self, col: String) {
        self.cell = format!("{}{col}", self.row);
    }

    #[step(join, next = join_rows)]
    fn join_cols(&mut self, inputs: Inputs<Self>) {
        self.cells = inputs.iter().map(|i| i.cell.clone()).collect();
    }

    #[step(join, next = end)]
    fn join_rows(&mut self, inputs: Inputs<Self>) {
        self.cells = inputs.iter().flat_map(|i| i.cells.clone()).collect();
    }

    #[step]
    fn end(&mut self) {}
}

fn main() {
    let g = Grid::GRAPH;
    let idx = |name| g.step_index(name).unwrap();
    assert_eq!(g.steps[idx("start")].transition, Transition::Foreach { field: "rows", body: idx("row") });
    assert_eq!(g.steps[idx("row")].transition, Transition::Foreach { field: "cols", body: idx("cell") });
    assert_eq!(g.steps[idx("join_cols")].join, Some(idx("row")));
    assert_eq!(g.steps[idx("join_rows")].join, Some(idx("start")));
    assert!(g.is_foreach_body(idx("row")) && g.is_foreach_body(idx("cell")));

    let mut state = Grid::default();
    state.__run_step(idx("start"), blooming_flowers::StepInput::Plain).unwrap();
    assert_eq!(state.__foreach_items(idx("start")).unwrap().len(), 2);
    assert_eq!(state.__foreach_items(idx("row")).unwrap().len(), 2);
}
