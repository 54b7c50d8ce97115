//! The cohort reader: the applicant's CSV, as applicants really send it, into
//! typed [`CohortRow`]s.
//!
//! It reads the whole file before deciding anything, so that one run lists
//! every structural problem with its line instead of making the applicant
//! fix them one resubmission at a time. Value problems only blank the value
//! and say why: the linkage stage decides what a row can still match on.
//!
//! Nothing here ever writes a cell's value into a message: problems name the
//! line, the column, the study ID and the reason, because error text ends up
//! in logs, tickets and emails that are not cleared for identifiers.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use chrono::NaiveDate;

use super::{
    Cohort, CohortField, CohortRow, DuplicateNhsNumber, IngestConfig, IngestError,
    StructuralProblem, ValueProblem,
};
use crate::domain::nhs_number::digits_of;
use crate::domain::{parse_date, Gender, NhsNumber, NhsNumberError, Postcode};

/// Structural problems listed in the error; the rest are only counted, so
/// that a file that is not a cohort at all still gives a readable message.
pub(super) const MAX_LISTED_PROBLEMS: usize = 50;

/// Reads and checks the cohort file named by the agreement.
///
/// Returns [`IngestError::Malformed`] with every structural problem when the
/// file is not a cohort file in the agreed shape; otherwise every data row,
/// each with its value problems.
pub fn read_cohort(config: &IngestConfig) -> Result<Cohort, IngestError> {
    let file = File::open(&config.path).map_err(|source| IngestError::Unreadable {
        path: config.path.clone(),
        source,
    })?;
    let today = chrono::Local::now().date_naive();
    read_cohort_from(&config.path, file, &config.required, today)
}

/// The reader behind [`read_cohort`], over any byte source and with the day
/// that counts as today (a date of birth after it is a value problem).
pub(super) fn read_cohort_from<R: Read>(
    path: &Path,
    input: R,
    required: &[(CohortField, String)],
    today: NaiveDate,
) -> Result<Cohort, IngestError> {
    let unreadable = |e: csv::Error| IngestError::Unreadable {
        path: path.to_path_buf(),
        source: into_io_error(e),
    };
    // `flexible`: a short or long line is a problem we report with its line,
    // not an error that stops the read. The csv reader strips a UTF-8 BOM,
    // accepts CRLF and LF, and skips empty lines.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(LineBreaks::new(input));
    let mut record = csv::ByteRecord::new();
    let mut problems = Problems::default();

    // The header is the first line with anything on it.
    let header_line = loop {
        if !reader.read_byte_record(&mut record).map_err(unreadable)? {
            problems.push(
                None,
                "the file is empty: it has no header row (study_id, nhs_number, date_of_birth, \
                 ...) and no rows"
                    .to_string(),
            );
            return Err(problems.into_error(path));
        }
        // Asked for blank lines too, so the line bookkeeping moves past them.
        let line = line_of(&mut reader, &record);
        if !is_blank(&record) {
            break line;
        }
    };
    let header = Header::read(&record, header_line, required, &mut problems);

    let mut rows: Vec<CohortRow> = Vec::new();
    let mut nhs_number_rows: HashMap<NhsNumber, usize> = HashMap::new();
    let mut duplicate_nhs_numbers = Vec::new();
    let mut data_lines = 0usize;

    while reader.read_byte_record(&mut record).map_err(unreadable)? {
        // Every record's line is asked for, blank ones too (`,,,,`), so
        // that the line bookkeeping never holds more than a buffer's worth.
        let line = line_of(&mut reader, &record);
        if is_blank(&record) {
            continue;
        }
        data_lines += 1;
        let Some(cells) = header.cells(&record, line, &mut problems) else {
            continue;
        };
        // Without a study_id column there is nothing to key rows on (the
        // missing column is already reported).
        let Some(study_id) = cells[CohortField::StudyId as usize] else {
            continue;
        };
        if study_id.is_empty() {
            problems.push(Some(line), "study_id is empty".to_string());
            continue;
        }
        // A line break or NUL inside a (quoted) study ID would forge lines
        // in every log, CSV and report it is written to.
        if let Some(at) = study_id.chars().position(char::is_control) {
            problems.push(
                Some(line),
                format!(
                    "study_id has a control character (a line break, NUL, tab or another \
                     character that does not print) at character {}; a study ID must be \
                     printable text",
                    at + 1
                ),
            );
            continue;
        }
        // Invisible characters (zero-width spaces, bidi overrides, a BOM
        // inside the value) make two study IDs that print alike differ, and
        // a bidi override reorders the text of every report it is printed in.
        if let Some(at) = study_id.chars().position(is_format_character) {
            problems.push(
                Some(line),
                format!(
                    "study_id has an invisible formatting character (a zero-width space, a \
                     direction override, a byte order mark or a soft hyphen) at character {}; \
                     a study ID must be visible text",
                    at + 1
                ),
            );
            continue;
        }
        // A study ID is printed in logs, reports and the linkage table, and
        // leaves in every record output: one that is an NHS number would
        // make each of those an identifier (issue #12).
        if NhsNumber::parse(study_id).is_ok() {
            problems.push(
                Some(line),
                "study_id is a valid NHS number (modulus 11); study IDs are printed and \
                 released, so they must not be NHS numbers: ask the applicant for study IDs \
                 of their own"
                    .to_string(),
            );
            continue;
        }

        let row = Header::row(&cells, line, study_id, today);
        if let Some(nhs_number) = row.nhs_number {
            match nhs_number_rows.entry(nhs_number) {
                Entry::Occupied(first) => duplicate_nhs_numbers.push(DuplicateNhsNumber {
                    first_study_id: rows[*first.get()].study_id.clone(),
                    study_id: row.study_id.clone(),
                    line,
                }),
                Entry::Vacant(slot) => {
                    slot.insert(rows.len());
                }
            }
        }
        rows.push(row);
    }

    if data_lines == 0 {
        problems.push(
            None,
            "the file has a header but no rows: a cohort needs at least one person".to_string(),
        );
    }
    // Found after the read, so that the map borrows the rows' study IDs
    // instead of copying each one.
    let mut first_lines: HashMap<&str, u64> = HashMap::with_capacity(rows.len());
    for row in &rows {
        match first_lines.entry(row.study_id.as_str()) {
            Entry::Occupied(first) => problems.push(
                Some(row.line),
                format!(
                    "study_id `{}` is repeated (first on line {})",
                    row.study_id.escape_debug(),
                    first.get()
                ),
            ),
            Entry::Vacant(slot) => {
                slot.insert(row.line);
            }
        }
    }
    if !problems.0.is_empty() {
        return Err(problems.into_error(path));
    }
    tracing::debug!(
        rows = rows.len(),
        rows_with_value_problems = rows.iter().filter(|r| !r.problems.is_empty()).count(),
        duplicate_nhs_numbers = duplicate_nhs_numbers.len(),
        "read cohort"
    );
    Ok(Cohort {
        path: path.to_path_buf(),
        columns: header.columns,
        rows,
        duplicate_nhs_numbers,
    })
}

/// A row's trimmed cells by `CohortField as usize`; `None` where the file
/// has no such column.
type Cells<'r> = [Option<&'r str>; CohortField::ALL.len()];

/// The header row: which known column sits where.
struct Header {
    /// Known columns in file order (unknown ones are left out).
    columns: Vec<CohortField>,
    /// Position of each known column in a record, by `CohortField as usize`.
    positions: [Option<usize>; CohortField::ALL.len()],
    /// The known column at each position of a record.
    fields: Vec<Option<CohortField>>,
    /// Number of fields every record must have.
    width: usize,
}

impl Header {
    /// Matches the header's names and reports missing and repeated columns.
    fn read(
        record: &csv::ByteRecord,
        line: u64,
        required: &[(CohortField, String)],
        problems: &mut Problems,
    ) -> Self {
        let mut header = Header {
            columns: Vec::new(),
            positions: [None; CohortField::ALL.len()],
            fields: vec![None; record.len()],
            width: record.len(),
        };
        let mut not_text = false;
        for (position, raw) in record.iter().enumerate() {
            // Column names are ASCII; a stray byte must not hide the others,
            // so match on the readable part and report the bytes once.
            let name = match std::str::from_utf8(raw) {
                Ok(name) => std::borrow::Cow::Borrowed(name),
                Err(_) => {
                    not_text = true;
                    String::from_utf8_lossy(raw)
                }
            };
            let Some(field) = CohortField::from_header(&name) else {
                continue;
            };
            match header.positions[field as usize] {
                Some(first) => problems.push(
                    Some(line),
                    format!(
                        "column `{field}` appears twice in the header (columns {} and {}); \
                         keep one",
                        first + 1,
                        position + 1
                    ),
                ),
                None => {
                    header.positions[field as usize] = Some(position);
                    header.fields[position] = Some(field);
                    header.columns.push(field);
                }
            }
        }
        if not_text {
            problems.push(
                Some(line),
                "the header has bytes that are not UTF-8 text; save the file as UTF-8 CSV"
                    .to_string(),
            );
        }

        if header.columns.is_empty() {
            // Most likely the header was left off and this line is data:
            // say so, and do not echo a cell of it.
            problems.push(
                Some(line),
                format!(
                    "is not a header: no cell is a cohort column name; the first line must name \
                     the columns ({})",
                    CohortField::ALL.map(CohortField::name).join(", ")
                ),
            );
            return header;
        }
        if header.index(CohortField::StudyId).is_none() {
            problems.push(
                Some(line),
                "missing column `study_id`, which every cohort file needs: it is the \
                 applicant's key for each person"
                    .to_string(),
            );
        }
        // One problem per missing column, naming every key that needs it.
        let mut missing: Vec<(CohortField, Vec<&str>)> = Vec::new();
        for (field, key) in required {
            if header.index(*field).is_some() {
                continue;
            }
            match missing.iter_mut().find(|(f, _)| f == field) {
                Some((_, keys)) => {
                    if !keys.contains(&key.as_str()) {
                        keys.push(key.as_str());
                    }
                }
                None => missing.push((*field, vec![key.as_str()])),
            }
        }
        for (field, keys) in missing {
            let keys: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
            problems.push(
                Some(line),
                format!(
                    "missing column `{field}`, required by {}",
                    keys.join(" and ")
                ),
            );
        }
        header
    }

    fn index(&self, field: CohortField) -> Option<usize> {
        self.positions[field as usize]
    }

    /// The trimmed cells of the known columns (`None` for a column the file
    /// does not have), by `CohortField as usize`; or `None` after reporting
    /// why the line is not a well-formed row.
    fn cells<'r>(
        &self,
        record: &'r csv::ByteRecord,
        line: u64,
        problems: &mut Problems,
    ) -> Option<Cells<'r>> {
        let mut well_formed = true;
        if record.len() != self.width {
            well_formed = false;
            let hint = if record
                .iter()
                .any(|f| f.contains(&b'\n') || f.contains(&b'\r'))
            {
                " (a quoted field runs over several lines: is a closing quote missing?)"
            } else {
                ""
            };
            problems.push(
                Some(line),
                format!(
                    "has {} field{}, the header has {}{hint}",
                    record.len(),
                    if record.len() == 1 { "" } else { "s" },
                    self.width
                ),
            );
        }
        let mut cells: Cells<'r> = [None; CohortField::ALL.len()];
        let mut not_text: Vec<String> = Vec::new();
        for (position, raw) in record.iter().enumerate() {
            // Unknown columns are checked too: bytes that are not text
            // anywhere mean the file is not what it claims.
            match std::str::from_utf8(raw) {
                Ok(cell) => {
                    if let Some(field) = self.field_at(position) {
                        cells[field as usize] = Some(cell.trim());
                    }
                }
                Err(_) => not_text.push(match self.field_at(position) {
                    Some(field) => format!("column `{field}`"),
                    None => format!("column {}", position + 1),
                }),
            }
        }
        if !not_text.is_empty() {
            well_formed = false;
            problems.push(
                Some(line),
                format!(
                    "{} {} bytes that are not UTF-8 text; save the file as UTF-8 CSV",
                    not_text.join(", "),
                    if not_text.len() == 1 { "has" } else { "have" }
                ),
            );
        }
        well_formed.then_some(cells)
    }

    /// The known column at a position of the record, if any.
    fn field_at(&self, position: usize) -> Option<CohortField> {
        self.fields.get(position).copied().flatten()
    }

    /// Types a well-formed row's values, blanking each wrong one and saying
    /// why.
    fn row(cells: &Cells<'_>, line: u64, study_id: &str, today: NaiveDate) -> CohortRow {
        let cell = |field: CohortField| cells[field as usize];
        let present = |field: CohortField| cell(field).filter(|c| !c.is_empty());
        let mut row = CohortRow {
            line,
            study_id: study_id.to_string(),
            ..CohortRow::default()
        };
        let mut problem = |field: CohortField, reason: String| {
            row.problems.push(ValueProblem { field, reason });
        };

        let mut nhs_number = None;
        let mut nhs_number_typo = None;
        if let Some(raw) = present(CohortField::NhsNumber) {
            match digits_of(raw) {
                None => problem(
                    CohortField::NhsNumber,
                    NhsNumberError::NotTenDigits.to_string(),
                ),
                Some(digits) => match NhsNumber::from_digits(digits) {
                    Ok(n) => nhs_number = Some(n),
                    Err(e) => {
                        // Modulus 11 catches single-digit slips and adjacent
                        // swaps: the linkage stage looks one edit away.
                        if e == NhsNumberError::CheckDigit {
                            nhs_number_typo = Some(digits);
                        }
                        problem(CohortField::NhsNumber, e.to_string());
                    }
                },
            }
        }

        let mut date_of_birth = None;
        if let Some(raw) = present(CohortField::DateOfBirth) {
            match parse_date(raw) {
                Ok(d) if d > today => {
                    problem(CohortField::DateOfBirth, "is in the future".to_string())
                }
                Ok(d) => date_of_birth = Some(d),
                Err(e) => problem(CohortField::DateOfBirth, e.to_string()),
            }
        }

        // A blank gender is a recorded "not known", unlike an absent column.
        let mut gender = None;
        if let Some(raw) = cell(CohortField::Gender) {
            gender = Gender::parse(raw);
            if gender.is_none() {
                problem(
                    CohortField::Gender,
                    "is not a known code (use 1 or male, 2 or female, 9, 0 or X for not known)"
                        .to_string(),
                );
            }
        }

        let mut postcode = None;
        if let Some(raw) = present(CohortField::Postcode) {
            postcode = Postcode::parse(raw);
            if postcode.is_none() {
                problem(CohortField::Postcode, "is not a UK postcode".to_string());
            }
        }

        // Any day is accepted: a study may record recruitment ahead.
        let mut recruited_on = None;
        if let Some(raw) = present(CohortField::RecruitedOn) {
            match parse_date(raw) {
                Ok(d) => recruited_on = Some(d),
                Err(e) => problem(CohortField::RecruitedOn, e.to_string()),
            }
        }

        // Names keep their case and inner spacing: linkage normalises them.
        row.forename = present(CohortField::Forename).map(str::to_string);
        row.surname = present(CohortField::Surname).map(str::to_string);
        row.nhs_number = nhs_number;
        row.nhs_number_typo = nhs_number_typo;
        row.date_of_birth = date_of_birth;
        row.gender = gender;
        row.postcode = postcode;
        row.recruited_on = recruited_on;
        row
    }
}

/// Structural problems, all of them, in the order found.
#[derive(Default)]
struct Problems(Vec<StructuralProblem>);

impl Problems {
    fn push(&mut self, line: Option<u64>, message: String) {
        self.0.push(StructuralProblem { line, message });
    }

    /// Problems with the whole file first, then by line; the first
    /// [`MAX_LISTED_PROBLEMS`] listed and all counted.
    fn into_error(self, path: &Path) -> IngestError {
        let mut problems = self.0;
        let total = problems.len();
        problems.sort_by_key(|p| p.line);
        problems.truncate(MAX_LISTED_PROBLEMS);
        IngestError::Malformed {
            path: path.to_path_buf(),
            problems,
            total,
        }
    }
}

/// A line with nothing on it but separators and spaces (`,,,,` as
/// spreadsheets write after the last row).
fn is_blank(record: &csv::ByteRecord) -> bool {
    record
        .iter()
        .all(|f| std::str::from_utf8(f).is_ok_and(|s| s.trim().is_empty()))
}

/// The 1-based line on which the record just read starts.
fn line_of<R: Read>(reader: &mut csv::Reader<LineBreaks<R>>, record: &csv::ByteRecord) -> u64 {
    // The csv reader sets the position of every record it reads.
    let from = record.position().map_or(0, csv::Position::byte);
    reader.get_mut().line_at(from)
}

/// A reader that notes where the line breaks are, to number the lines.
///
/// The csv reader's own record position is where it began looking for the
/// record: before the blank lines it skipped and, after a CRLF, one line
/// early (it leaves the LF for the next read). So the reader keeps the runs
/// of line breaks it has passed and not yet been asked about: one entry per
/// run however many breaks it holds (a cohort followed by hundreds of MB of
/// empty lines is one run, issue #12), and, since every record is asked
/// about, at most a few buffers' worth of runs however long the file.
pub(super) struct LineBreaks<R> {
    inner: R,
    /// Bytes read so far.
    read: u64,
    /// Length of a UTF-8 BOM at the start (the csv reader skips it too).
    bom: u64,
    /// Runs of consecutive CR and LF bytes not yet asked about.
    pending: VecDeque<BreakRun>,
    /// Line breaks (LF, CRLF or a lone CR) before the first pending run.
    line_breaks: u64,
    /// Where the last run read ends, and whether its last byte was a CR (so
    /// that a CRLF split across two reads counts once).
    last_run_end: u64,
    last_was_cr: bool,
}

#[cfg(test)]
thread_local! {
    /// The most runs a [`LineBreaks`] of this thread has held at once.
    pub(super) static PEAK_PENDING_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Consecutive line-break bytes `start..end`, holding `breaks` line breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BreakRun {
    start: u64,
    end: u64,
    breaks: u64,
}

impl<R> LineBreaks<R> {
    pub(super) fn new(inner: R) -> Self {
        Self {
            inner,
            read: 0,
            bom: 0,
            pending: VecDeque::new(),
            line_breaks: 0,
            last_run_end: u64::MAX,
            last_was_cr: false,
        }
    }

    /// The line of the first byte at or after `from` that is not a line
    /// break. Calls must come in file order.
    pub(super) fn line_at(&mut self, from: u64) -> u64 {
        let mut at = from.max(self.bom);
        while let Some(&run) = self.pending.front() {
            // A run after `at`: the byte at `at` is not a break.
            if run.start > at {
                break;
            }
            // A run reaching `at` or beyond: the blank lines the csv reader
            // skipped, up to the first byte that is not a break.
            at = at.max(run.end);
            self.line_breaks += run.breaks;
            self.pending.pop_front();
        }
        1 + self.line_breaks
    }

    fn note(&mut self, offset: u64, byte: u8) {
        let is_lf = byte == b'\n';
        let contiguous = self.last_run_end == offset;
        // A line ends at a LF, or at a CR on its own (old Mac exports): a CR
        // counts now, and the LF right after it does not.
        let counts = u64::from(!(is_lf && contiguous && self.last_was_cr));
        match self.pending.back_mut() {
            Some(run) if run.end == offset => {
                run.end += 1;
                run.breaks += counts;
            }
            _ => self.pending.push_back(BreakRun {
                start: offset,
                end: offset + 1,
                breaks: counts,
            }),
        }
        self.last_run_end = offset + 1;
        self.last_was_cr = !is_lf;
        #[cfg(test)]
        PEAK_PENDING_RUNS.with(|peak| peak.set(peak.get().max(self.pending.len())));
    }
}

impl<R: Read> Read for LineBreaks<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.read == 0 && buf[..n].starts_with(b"\xef\xbb\xbf") {
            self.bom = 3;
        }
        let start = self.read;
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' || b == b'\r' {
                self.note(start + i as u64, b);
            }
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// A failed read of the cohort: only I/O errors are possible with a flexible
/// reader of byte records, but keep any other kind rather than panic.
fn into_io_error(e: csv::Error) -> io::Error {
    if e.is_io_error() {
        if let csv::ErrorKind::Io(io) = e.into_kind() {
            return io;
        }
        return io::Error::other("read failed");
    }
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Unicode format characters (general category Cf) and the other
/// characters that print as nothing: zero-width spaces and joiners, bidi
/// embeddings, overrides and isolates, the byte order mark, the soft
/// hyphen, word joiners and invisible operators, interlinear annotation
/// marks, tag characters and variation selectors.
pub(crate) fn is_format_character(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{034F}'
        | '\u{061C}'
        | '\u{115F}'..='\u{1160}'
        | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}'
        | '\u{FFA0}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}'
        | '\u{0600}'..='\u{0605}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
    )
}
