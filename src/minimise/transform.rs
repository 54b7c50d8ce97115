//! Field specs as polars expressions. Date and age transforms are native
//! expressions; postcode levels and pseudonyms are element-wise functions
//! over a whole column (no row loop over the frame).

use std::path::Path;

use polars::prelude::*;
use ring::hmac;
use zeroize::Zeroizing;

use super::{FieldSpec, Transform};

/// The per-agreement key behind `pseudonym`. Kept in the agreement's work
/// directory (mode 0600), created on first use, so the same person gets the
/// same pseudonym in every release of one agreement and different ones
/// across agreements.
pub struct PseudonymKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(<secret>)")
    }
}

impl PseudonymKey {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// Loads `path`, or creates it with 32 random bytes (mode 0600). A key
    /// that group or others can read is refused, as the signing key is:
    /// whoever holds it can recompute every pseudonym of the agreement.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::File::open(path) {
            Ok(file) => {
                use std::io::Read;
                use std::os::unix::fs::PermissionsExt;
                // The mode of the open file, not of the path, so that the
                // mode checked is the mode of the bytes read.
                let metadata = file.metadata()?;
                let mode = metadata.permissions().mode() & 0o777;
                if !metadata.is_file() {
                    return Err(std::io::Error::other(format!(
                        "pseudonym key {} is not a regular file; restore the key file from backup",
                        path.display()
                    )));
                }
                if mode & 0o077 != 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!(
                            "pseudonym key {} is readable by group or others (mode {mode:04o}): run `chmod 600 {}`, and if anyone else could have copied it, treat this agreement's pseudonyms as exposed",
                            path.display(),
                            path.display()
                        ),
                    ));
                }
                let mut bytes = Zeroizing::new(Vec::with_capacity(32));
                file.take(33).read_to_end(&mut bytes)?;
                if bytes.len() != 32 {
                    return Err(std::io::Error::other(format!(
                        "pseudonym key {} is not 32 bytes; restore it from backup (a new key would change every pseudonym)",
                        path.display()
                    )));
                }
                Ok(Self::from_bytes(&bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), bytes.as_mut())
                    .map_err(|_| {
                        std::io::Error::other("no system randomness for the pseudonym key")
                    })?;
                crate::workdir::write_private(path, bytes.as_ref())?;
                Ok(Self::from_bytes(bytes.as_ref()))
            }
            Err(e) => Err(e),
        }
    }

    /// Hex HMAC-SHA-256 of `value`.
    pub fn pseudonym(&self, value: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        hex::encode(hmac::sign(&key, value.as_bytes()).as_ref())
    }
}

/// The expression that releases `field`, named by its output name.
pub fn field_expr(field: &FieldSpec, pseudonym: &PseudonymKey) -> Expr {
    let c = col(field.column.as_str());
    let e = match field.transform {
        None => c,
        Some(Transform::Year) => c.dt().year(),
        Some(Transform::Month) => c.dt().strftime("%Y-%m"),
        Some(Transform::Band5) => band(c, 5),
        Some(Transform::Band10) => band(c, 10),
        Some(Transform::District) => postcode_level(c, |p| p.district().to_string()),
        Some(Transform::Sector) => postcode_level(c, |p| p.sector().to_string()),
        Some(Transform::Pseudonym) => {
            let key = PseudonymKey::from_bytes(&pseudonym.0);
            string_map(c.cast(DataType::String), move |s| Some(key.pseudonym(s)))
        }
    };
    e.alias(field.output_name())
}

/// The oldest age a band accepts, in years.
pub const MAX_AGE: i64 = 150;

/// Lower bound of the `width`-year band: 37 -> 35 for band5.
///
/// Bands are for ages (issue #12): the band of a ten-digit NHS number or of
/// a date of birth written as a number (19610312) is still identifying, so a
/// column that is not a number, or holds a value outside 0 to
/// [`MAX_AGE`], fails the output (the message counts, never quotes).
fn band(c: Expr, width: i64) -> Expr {
    c.map(
        move |column: Column| {
            let dtype = column.dtype().clone();
            if !(dtype.is_integer() || dtype.is_float() || dtype.is_decimal()) {
                polars_bail!(InvalidOperation:
                    "band{} bands ages in years, and column '{}' is of type {}, not a number",
                    width, column.name(), dtype
                );
            }
            let ages = column.cast(&DataType::Int64)?;
            let ca = ages.i64()?;
            let outside = ca
                .iter()
                .flatten()
                .filter(|v| !(0..=MAX_AGE).contains(v))
                .count();
            if outside > 0 {
                polars_bail!(InvalidOperation:
                    "band{} bands ages in years, and column '{}' holds {} value{} outside 0 to {}: it is not an age",
                    width, column.name(), outside, if outside == 1 { "" } else { "s" }, MAX_AGE
                );
            }
            // Ages are never negative, so subtracting the remainder is the floor.
            let out: Int64Chunked = ca.apply_values(|v| v - v % width);
            Ok(out.with_name(column.name().clone()).into_column())
        },
        |_, field| Ok(Field::new(field.name().clone(), DataType::Int64)),
    )
}

fn postcode_level(c: Expr, level: fn(&crate::domain::Postcode) -> String) -> Expr {
    string_map(c, move |s| {
        crate::domain::Postcode::parse(s).map(|p| level(&p))
    })
}

/// Applies `f` to every non-null string of a column; `None` becomes null.
fn string_map<F>(c: Expr, f: F) -> Expr
where
    F: Fn(&str) -> Option<String> + Send + Sync + 'static,
{
    c.map(
        move |column: Column| {
            let ca = column.str()?;
            let out: StringChunked = ca.iter().map(|v| v.and_then(&f)).collect();
            Ok(out.with_name(column.name().clone()).into_column())
        },
        |_, field| Ok(Field::new(field.name().clone(), DataType::String)),
    )
}
