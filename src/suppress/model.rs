//! The release seen as one system of cells and sums, across all its tables.
//!
//! A cell that appears in two tables of one release (the same universe and
//! the same dimension values, e.g. the London margin of region × sex and
//! the London cell of region alone) is one [`Node`], so it gets one
//! treatment. Every margin cell is tied to the cells one dimension finer
//! by a [`Relation`]: their sum for records, or (for persons, where one
//! person can fall in several cells) their sum whenever the true counts
//! add up, else the weaker `max ≤ margin ≤ sum`.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Profile, ReleaseTable};
use crate::counts::{CellLevel, TOTAL};

/// One distinct cell of the release.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub value: u64,
    /// (table, cell) where it appears.
    pub occurrences: Vec<(usize, usize)>,
    pub status: Status,
    /// The table whose rule masked it (for primary).
    pub masked_by: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Published,
    Primary,
    Secondary,
}

impl Status {
    pub fn suppressed(self) -> bool {
        self != Status::Published
    }
}

/// `total` relates to `parts`: equal to their sum when `additive`, else
/// between their largest and their sum.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Relation {
    pub total: usize,
    pub parts: Vec<usize>,
    pub additive: bool,
    /// Counts of persons: a reader cannot know that the margin is a sum.
    pub persons: bool,
}

impl Relation {
    pub fn members(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.total).chain(self.parts.iter().copied())
    }
}

pub(crate) struct Model<'a> {
    pub tables: &'a [&'a ReleaseTable],
    pub nodes: Vec<Node>,
    pub relations: Vec<Relation>,
    /// Node → the relations it is a member of.
    pub member_of: Vec<Vec<usize>>,
    /// Table → cell → node.
    pub place: Vec<Vec<usize>>,
    /// Whether any rule of the release uses complementary suppression, so
    /// that a reader must allow any `*` to be a complementary cell.
    pub secondary_possible: bool,
}

impl<'a> Model<'a> {
    pub fn build(tables: &'a [&'a ReleaseTable]) -> Self {
        // (universe, the non-total dimension values, the count) → node.
        type Identity = (String, Vec<(String, String)>, u64);
        let mut ids: HashMap<Identity, usize> = HashMap::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut place = Vec::with_capacity(tables.len());
        for (t, rt) in tables.iter().enumerate() {
            // A table without a universe shares no cell with another table.
            let universe = if rt.table.universe.is_empty() {
                format!("#table{t}")
            } else {
                rt.table.universe.clone()
            };
            let mut row = Vec::with_capacity(rt.table.cells.len());
            for (c, cell) in rt.table.cells.iter().enumerate() {
                let mut coords: Vec<(String, String)> = rt
                    .table
                    .dims
                    .iter()
                    .zip(&cell.key)
                    .filter(|(_, v)| *v != TOTAL)
                    .map(|(d, v)| (d.clone(), v.clone()))
                    .collect();
                coords.sort();
                // The count is in the identity: two cells that differ in
                // value are not the same cell, whatever their labels say.
                let id = *ids
                    .entry((universe.clone(), coords, cell.count))
                    .or_insert_with(|| {
                        nodes.push(Node {
                            value: cell.count,
                            occurrences: Vec::new(),
                            status: Status::Published,
                            masked_by: None,
                        });
                        nodes.len() - 1
                    });
                nodes[id].occurrences.push((t, c));
                row.push(id);
            }
            place.push(row);
        }

        let mut relations = Vec::new();
        let mut seen = HashSet::new();
        for (t, rt) in tables.iter().enumerate() {
            let table = &rt.table;
            let index: HashMap<&[String], usize> = table.index_by_key();
            for j in 0..table.dims.len() {
                let mut children: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
                for (i, c) in table.cells.iter().enumerate() {
                    if c.key[j] != TOTAL {
                        let mut parent = c.key.clone();
                        parent[j] = TOTAL.to_string();
                        children.entry(parent).or_default().push(i);
                    }
                }
                for (parent, kids) in children {
                    let Some(&p) = index.get(parent.as_slice()) else {
                        continue;
                    };
                    let sum: u64 = kids.iter().map(|&k| table.cells[k].count).sum();
                    let mut parts: Vec<usize> = kids.iter().map(|&k| place[t][k]).collect();
                    parts.sort_unstable();
                    let rel = Relation {
                        total: place[t][p],
                        parts,
                        additive: sum == table.cells[p].count,
                        persons: table.persons,
                    };
                    if seen.insert(rel.clone()) {
                        relations.push(rel);
                    }
                }
            }
        }
        let mut member_of = vec![Vec::new(); nodes.len()];
        for (r, rel) in relations.iter().enumerate() {
            for m in rel.members() {
                member_of[m].push(r);
            }
        }
        Model {
            tables,
            secondary_possible: tables.iter().any(|t| t.profile.secondary),
            nodes,
            relations,
            member_of,
            place,
        }
    }

    pub fn profile(&self, table: usize) -> &Profile {
        &self.tables[table].profile
    }

    pub fn level(&self, table: usize, cell: usize) -> CellLevel {
        self.tables[table].table.cells[cell].level
    }

    /// Whether any table releases this node as computed (exempt).
    pub fn exempt(&self, node: usize) -> bool {
        self.nodes[node]
            .occurrences
            .iter()
            .any(|&(t, c)| self.profile(t).exempts(self.level(t, c)))
    }

    /// Primary suppression: a node is masked if any rule of a table it is
    /// in masks it (and that table does not exempt it).
    pub fn primary(&mut self) {
        for n in 0..self.nodes.len() {
            let by = self.nodes[n].occurrences.iter().find_map(|&(t, c)| {
                let p = self.profile(t);
                (!p.exempts(self.level(t, c)) && p.masks(self.nodes[n].value)).then_some(t)
            });
            if let Some(t) = by {
                self.nodes[n].status = Status::Primary;
                self.nodes[n].masked_by = Some(t);
            }
        }
    }

    /// Whether the node's suppression must be protected by complementary
    /// cells (a rule of one of its tables asks for it).
    pub fn wants_secondary(&self, node: usize) -> bool {
        self.nodes[node]
            .occurrences
            .iter()
            .any(|&(t, _)| self.profile(t).secondary)
    }

    /// Whether the node's suppression is audited, and the width it needs.
    pub fn required_width(&self, node: usize) -> Option<u64> {
        self.nodes[node]
            .occurrences
            .iter()
            .filter(|&&(t, _)| self.profile(t).audit)
            .map(|&(t, _)| self.profile(t).protection)
            .max()
    }

    /// Whether the node may become a complementary cell: published, not a
    /// national total released as computed, and not a true zero (a zero
    /// stays distinguishable from `*`).
    pub fn eligible(&self, node: usize) -> bool {
        let n = &self.nodes[node];
        n.status == Status::Published && n.value > 0 && !self.exempt(node)
    }

    /// Whether a reader knows the node's true value exactly.
    pub fn exact(&self, node: usize) -> bool {
        let n = &self.nodes[node];
        n.status == Status::Published
            && n.occurrences.iter().any(|&(t, c)| {
                let p = self.profile(t);
                p.exempts(self.level(t, c)) || p.round_to == 1
            })
    }

    /// The cost of suppressing a node: its count (information lost), then
    /// margins after interior cells, then order, for a stable choice.
    pub fn cost(&self, node: usize) -> (u64, CellLevel, usize) {
        let level = self.nodes[node]
            .occurrences
            .iter()
            .map(|&(t, c)| self.level(t, c))
            .max()
            .unwrap_or(CellLevel::Interior);
        (self.nodes[node].value, level, node)
    }

    /// The bounds a reader can put on the node from the rules alone and
    /// what is published of it. `None` above means unbounded.
    pub fn bounds(&self, node: usize) -> (u64, Option<u64>) {
        let n = &self.nodes[node];
        if n.status.suppressed() {
            let mut low = u64::MAX;
            let mut high = Some(0u64);
            for &(t, _) in &n.occurrences {
                let (l, h) = self.profile(t).masked_hull();
                low = low.min(l);
                high = high.map(|x| x.max(h));
            }
            if self.secondary_possible {
                low = low.min(1);
                high = None;
            }
            return (low, high);
        }
        let mut low = 0;
        let mut high = u64::MAX;
        for &(t, c) in &n.occurrences {
            let p = self.profile(t);
            let (l, h) = if p.exempts(self.level(t, c)) || p.round_to == 1 {
                (n.value, n.value)
            } else {
                let released = p.round(n.value);
                // The true value is always in its own range; fall back to it
                // exactly if the rule's arithmetic says otherwise.
                p.published_range(released).unwrap_or((n.value, n.value))
            };
            low = low.max(l);
            high = high.min(h);
        }
        (low, Some(high))
    }
}
