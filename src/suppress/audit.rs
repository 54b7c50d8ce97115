//! The audit: for a suppressed cell, the smallest and largest value a
//! reader could give it that is consistent with everything the release
//! publishes (every released cell, every margin, every rounding interval,
//! every percentage, and the rules themselves), found by linear
//! programming.
//!
//! The solver is `microlp`, a pure-Rust revised simplex (the maintained
//! fork of `minilp`): no C or C++ library to build or ship on a locked-down
//! release machine, no unsafe code of its own, sparse LU factorisation
//! that handles the thousands of cells of a three-way table with margins,
//! and only `sprs` and `log` as dependencies. `good_lp` would add a
//! modelling layer over the same solver and nothing we need.
//!
//! The interval is the LP relaxation, rounded inwards to whole counts. For
//! tables of one or two dimensions the sums form a network, whose
//! relaxation has whole-number corners, so the interval is exactly what a
//! reader can deduce. For three or more dimensions a reader who solves in
//! whole numbers can occasionally do better than the relaxation; the audit
//! states what linear programming (the standard attack) recovers.

use std::panic::{catch_unwind, AssertUnwindSafe};

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use super::model::{Model, PercentLink};

/// The values a reader could give a suppressed cell: `low..=high`, or
/// `low..` when nothing bounds it above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Interval {
    pub low: u64,
    pub high: Option<u64>,
    /// The width the rule needs (`high - low` at least).
    pub required: u64,
}

impl Interval {
    pub fn width(&self) -> Option<u64> {
        self.high.map(|h| h.saturating_sub(self.low))
    }

    pub fn passes(&self) -> bool {
        self.width().is_none_or(|w| w >= self.required)
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.high {
            Some(h) => write!(f, "{}–{}", self.low, h),
            None => write!(f, "{}–∞", self.low),
        }
    }
}

#[derive(Debug, Clone)]
struct Row {
    terms: Vec<(usize, f64)>,
    op: ComparisonOp,
    rhs: f64,
}

/// The linear system of one state of the release.
pub(crate) struct Lp {
    /// Node → variable, or the node's exactly known value.
    var_of: Vec<Result<usize, f64>>,
    bounds: Vec<(f64, f64)>,
    rows: Vec<Row>,
    /// Variable → its connected component.
    component: Vec<usize>,
    /// Component → its rows.
    component_rows: Vec<Vec<usize>>,
    /// Component → its variables.
    component_vars: Vec<Vec<usize>>,
    /// The smallest and largest value each variable has taken in a
    /// feasible point so far (the true values, then every LP optimum): a
    /// variable seen at its own bound needs no programme for that side.
    seen: Vec<(f64, f64)>,
}

#[derive(Debug, thiserror::Error)]
#[error("the linear programme of the audit failed ({0})")]
pub struct SolverError(pub String);

/// Counts are far below 2^53: f64 holds them exactly.
fn f(n: u64) -> f64 {
    n as f64
}

impl Lp {
    pub fn build(model: &Model, percents: &[PercentLink]) -> Self {
        let mut var_of = Vec::with_capacity(model.nodes.len());
        let mut bounds = Vec::new();
        let mut seen = Vec::new();
        for n in 0..model.nodes.len() {
            let (low, high) = model.bounds(n);
            if high == Some(low) {
                var_of.push(Err(f(low)));
            } else {
                var_of.push(Ok(bounds.len()));
                bounds.push((f(low), high.map_or(f64::INFINITY, f)));
                // The truth is a feasible point of the reader's system.
                seen.push((f(model.nodes[n].value), f(model.nodes[n].value)));
            }
        }
        let mut rows = Vec::new();
        let mut push = |terms: &[(usize, f64)], op: ComparisonOp, rhs: f64| {
            let mut vars = Vec::new();
            let mut rhs = rhs;
            for &(node, coef) in terms {
                match var_of[node] {
                    Ok(v) => vars.push((v, coef)),
                    Err(value) => rhs -= coef * value,
                }
            }
            merge_terms(&mut vars);
            if !vars.is_empty() {
                rows.push(Row {
                    terms: vars,
                    op,
                    rhs,
                });
            }
        };
        // One sum per margin cell is enough when sums add up: every margin
        // is then the sum of its interior cells, which implies the sums over
        // its other dimensions. Redundant rows only slow the simplex.
        let mut summed = vec![false; model.nodes.len()];
        for rel in &model.relations {
            let mut terms = vec![(rel.total, 1.0)];
            terms.extend(rel.parts.iter().map(|&p| (p, -1.0)));
            if rel.additive {
                if std::mem::replace(&mut summed[rel.total], true) {
                    continue;
                }
                push(&terms, ComparisonOp::Eq, 0.0);
            } else {
                push(&terms, ComparisonOp::Le, 0.0);
                for &p in &rel.parts {
                    push(&[(rel.total, 1.0), (p, -1.0)], ComparisonOp::Ge, 0.0);
                }
            }
        }
        for l in percents {
            // scaled/10^k - 1/2 10^-k <= 100 n / d < scaled/10^k + 1/2 10^-k,
            // times 2 10^k d, all whole numbers.
            let scale = 2.0 * 10f64.powi(l.decimals as i32) * 100.0;
            let s = 2.0 * f(l.scaled);
            push(
                &[(l.numerator, scale), (l.denominator, -(s - 1.0))],
                ComparisonOp::Ge,
                0.0,
            );
            push(
                &[(l.numerator, scale), (l.denominator, -(s + 1.0))],
                ComparisonOp::Le,
                0.0,
            );
        }

        // Components, so that each cell's programme holds only what can
        // move with it.
        let mut parent: Vec<usize> = (0..bounds.len()).collect();
        fn find(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        for row in &rows {
            let first = find(&mut parent, row.terms[0].0);
            for &(v, _) in &row.terms[1..] {
                let r = find(&mut parent, v);
                parent[r] = first;
            }
        }
        let mut id = vec![usize::MAX; bounds.len()];
        let mut component = vec![0; bounds.len()];
        let mut component_vars: Vec<Vec<usize>> = Vec::new();
        for (v, slot) in component.iter_mut().enumerate() {
            let r = find(&mut parent, v);
            if id[r] == usize::MAX {
                id[r] = component_vars.len();
                component_vars.push(Vec::new());
            }
            *slot = id[r];
            component_vars[id[r]].push(v);
        }
        let mut component_rows = vec![Vec::new(); component_vars.len()];
        for (i, row) in rows.iter().enumerate() {
            component_rows[component[row.terms[0].0]].push(i);
        }
        Lp {
            var_of,
            bounds,
            rows,
            component,
            component_rows,
            component_vars,
            seen,
        }
    }

    /// The values a reader could give `node`, rounded inwards to counts.
    pub fn interval(&mut self, node: usize, required: u64) -> Result<Interval, SolverError> {
        let var = match self.var_of[node] {
            Err(value) => {
                let v = value as u64;
                return Ok(Interval {
                    low: v,
                    high: Some(v),
                    required,
                });
            }
            Ok(v) => v,
        };
        let (lower, upper) = self.bounds[var];
        let low = if self.seen[var].0 <= lower + 1e-9 {
            Some(lower)
        } else {
            self.optimise(var, OptimizationDirection::Minimize)?
        };
        let high = if self.seen[var].1 >= upper - 1e-9 {
            Some(upper)
        } else {
            self.optimise(var, OptimizationDirection::Maximize)?
        };
        let low = low.map_or(0, |x| (x - 1e-6).ceil().max(0.0) as u64);
        let high = high.map(|x| (x + 1e-6).floor().max(0.0) as u64);
        Ok(Interval {
            low,
            high: high.map(|h| h.max(low)),
            required,
        })
    }

    /// Pushes all of `nodes` down together, then up together: two
    /// programmes per component whose optima put many cells at their own
    /// bounds at once, so that most cells then need none of their own.
    pub fn seed(&mut self, nodes: &[usize]) -> Result<(), SolverError> {
        let mut by_component: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for &n in nodes {
            if let Ok(v) = self.var_of[n] {
                by_component.entry(self.component[v]).or_default().push(v);
            }
        }
        for vars in by_component.values() {
            if vars.len() < 2 {
                continue;
            }
            for direction in [
                OptimizationDirection::Minimize,
                OptimizationDirection::Maximize,
            ] {
                self.solve(vars, direction)?;
            }
        }
        Ok(())
    }

    /// The optimum of `var` over its component; `None` when unbounded.
    fn optimise(
        &mut self,
        var: usize,
        direction: OptimizationDirection,
    ) -> Result<Option<f64>, SolverError> {
        self.solve(&[var], direction)
    }

    /// The optimum of the sum of `targets` (all in one component).
    fn solve(
        &mut self,
        targets: &[usize],
        direction: OptimizationDirection,
    ) -> Result<Option<f64>, SolverError> {
        let var = targets[0];
        let c = self.component[var];
        let vars = &self.component_vars[c];
        if direction == OptimizationDirection::Maximize
            && targets.iter().any(|&t| self.bounds[t].1.is_infinite())
            && self.component_rows[c].is_empty()
        {
            return Ok(None);
        }
        let mut problem = Problem::new(direction);
        let mut local = std::collections::HashMap::with_capacity(vars.len());
        let mut handles = Vec::with_capacity(vars.len());
        for &v in vars {
            let objective = if targets.contains(&v) { 1.0 } else { 0.0 };
            let h = problem.add_var(objective, self.bounds[v]);
            local.insert(v, h);
            handles.push((v, h));
        }
        for &r in &self.component_rows[c] {
            let row = &self.rows[r];
            let terms: Vec<(microlp::Variable, f64)> = row
                .terms
                .iter()
                .map(|&(v, coef)| (local[&v], coef))
                .collect();
            problem.add_constraint(terms.as_slice(), row.op, row.rhs);
        }
        // The solver asserts on states it thinks impossible; an audit that
        // cannot finish must fail the release, not the process.
        match catch_unwind(AssertUnwindSafe(|| problem.solve())) {
            Ok(Ok(solution)) => {
                for (v, h) in handles {
                    let x = *solution.var_value(h);
                    let s = &mut self.seen[v];
                    *s = (s.0.min(x), s.1.max(x));
                }
                Ok(Some(solution.objective()))
            }
            Ok(Err(microlp::Error::Unbounded)) => Ok(None),
            Ok(Err(e)) => Err(SolverError(e.to_string())),
            Err(_) => Err(SolverError(
                "the solver stopped on an internal check".into(),
            )),
        }
    }
}

/// Adds up repeated variables of one row (a node that is both the total and
/// a part cannot occur, but a percentage of a cell over itself can).
fn merge_terms(terms: &mut Vec<(usize, f64)>) {
    terms.sort_by_key(|t| t.0);
    let mut out: Vec<(usize, f64)> = Vec::with_capacity(terms.len());
    for &(v, c) in terms.iter() {
        match out.last_mut() {
            Some(last) if last.0 == v => last.1 += c,
            _ => out.push((v, c)),
        }
    }
    out.retain(|t| t.1 != 0.0);
    *terms = out;
}
