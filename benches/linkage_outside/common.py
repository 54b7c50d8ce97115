"""Shared helpers for the outside linkage bench: NHS numbers, the two files
both linkers read (DESIGN.md schemas), and the truth file (never given to a
linker).

Nothing here prints an identifier; only counts and study IDs leave a run.
"""
import csv
import datetime as dt
import os

import pyarrow as pa
import pyarrow.parquet as pq

WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def check_digit(nine):
    """Modulus-11 check digit of a 9-digit string, or None where it would be
    10 (no valid number has that stem)."""
    total = sum(int(c) * w for c, w in zip(nine, WEIGHTS))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def is_valid_nhs(number):
    digits = "".join(c for c in number if c.isdigit())
    if len(digits) != 10 or len(set(digits)) == 1:
        return False
    return check_digit(digits[:9]) == int(digits[9])


DEMOGRAPHICS_SCHEMA = pa.schema([
    ("person_id", pa.int64()),
    ("nhs_number", pa.string()),
    ("date_of_birth", pa.date32()),
    ("gender", pa.string()),
    ("postcode", pa.string()),
    ("forename", pa.string()),
    ("surname", pa.string()),
    ("date_of_death", pa.date32()),
])

COHORT_HEADER = ["study_id", "nhs_number", "date_of_birth", "gender", "postcode",
                 "forename", "surname"]


def write_demographics(path, people):
    """people: iterable of dicts with the DESIGN.md columns (date_of_birth a
    datetime.date or None)."""
    cols = {f.name: [] for f in DEMOGRAPHICS_SCHEMA}
    for p in people:
        for name in cols:
            cols[name].append(p.get(name))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    table = pa.table(cols, schema=DEMOGRAPHICS_SCHEMA)
    pq.write_table(table, path)
    return table.num_rows


def write_cohort(path, rows):
    """rows: lists in COHORT_HEADER order, all strings."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(COHORT_HEADER)
        n = 0
        for r in rows:
            w.writerow(r)
            n += 1
    return n


def write_truth(path, truth):
    """truth: list of (study_id, person_id or None, kind)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["study_id", "person_id", "kind"])
        for s, p, k in truth:
            w.writerow([s, "" if p is None else str(p), k])


def read_truth(path):
    out = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            out[r["study_id"]] = (r["person_id"] or None, r["kind"])
    return out


def parse_yyyymmdd(s):
    try:
        return dt.date(int(s[0:4]), int(s[4:6]), int(s[6:8])) if len(s) == 8 else None
    except ValueError:
        return None
