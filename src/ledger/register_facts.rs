//! What the public register says of a release (`dars register`), as
//! recorded in the release's ledger entry: facts of the agreement at the
//! time of the release, and the persons released, already protected. Here,
//! with the entry that carries them, so that the register reads the ledger
//! without the ledger importing the register.

use serde::{Deserialize, Serialize};

/// What the register says of a release, recorded in its ledger entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegisterFacts {
    pub organisation: String,
    /// `consent`, `section-251` or `statutory`.
    pub legal_basis: String,
    pub identifiable: bool,
    /// In agreement order.
    pub outputs: Vec<RegisterOutput>,
    /// Persons released, protected ([`protect`]).
    pub persons: String,
}

/// One output of a release, as the register names it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegisterOutput {
    pub name: String,
    pub dataset: String,
    /// `records` or `aggregate`.
    pub kind: String,
    /// `FROM..TO` of the output's period, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

/// A count as the register may publish it: the `hes` rule (1–7 → `*`,
/// every other count to the nearest 5, 0 stays 0).
pub fn protect(count: u64) -> String {
    match count {
        0 => "0".to_string(),
        1..=7 => "*".to_string(),
        n => ((n + 2) / 5 * 5).to_string(),
    }
}
