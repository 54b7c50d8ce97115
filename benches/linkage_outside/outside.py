"""An outside generator: a master person index and a cohort with named
kinds of error, written for this bench without reading dars's linker or its
rules (nor `dars synth`). Deterministic for a seed.

**The index.** People live in households (one to five) at a UK-format
postcode; a unit postcode holds several households. A household is one or
two adults (partners usually share a surname) and children born 18-42 years
after the first adult; about 2% of births are twins (same date of birth,
surname and postcode, different forename and NHS number). Names are drawn
from built-in lists with a steep (Zipf-like) frequency, so Smith and Jones
are common and the tail is long. NHS numbers are random, valid (modulus 11)
and unique. About 1% of postcodes are null, 0.5% of genders are `9`.

**The cohort** (kinds and shares; `truth.csv` gives each row's kind and
person, blank for absent people):

| kind | share | the row |
|---|---|---|
| clean | 40% | the person's index values (layouts vary) |
| name_typo | 5% | one letter substituted, dropped, doubled or two neighbours swapped in forename or surname |
| moved | 5% | a different postcode (same district, same area or anywhere) |
| dob_swap | 5% | day and month swapped (a real, different date) |
| nhs_missing | 5% | a blank NHS number |
| names_swapped | 5% | forename and surname exchanged |
| hyphenated | 5% | surname double-barrelled with another surname (either order) |
| twin | 5% | one of a pair of twins in the index, no NHS number |
| nickname_no_nhs | 5% | a familiar form of the forename (Bob for Robert), no NHS number |
| married_moved_no_nhs | 5% | a new surname, a new postcode, no NHS number |
| wrong_nhs | 5% | a valid NHS number of someone else in the index (a relative in the household, else a random person), all else right |
| multi_error | 5% | an NHS number with one wrong digit, a surname typo, a new postcode |
| absent_lookalike | 5% | someone not in the index who resembles a person in it (an unregistered relative at the same address, a namesake elsewhere, or same surname and date of birth) with a valid NHS number nobody in the index holds, or none |

Layouts vary as applicants send them: dates `DD/MM/YYYY`, `YYYY-MM-DD` or
`YYYYMMDD`; NHS numbers with or without spaces; gender as a code or a word;
postcodes with or without the space, now and then in lower case.
"""
import datetime as dt
import itertools
import random

from common import check_digit

MALE = """James John Robert Michael William David Richard Joseph Thomas Charles
Christopher Daniel Matthew Anthony Mark Donald Steven Paul Andrew Joshua Kenneth
Kevin Brian George Timothy Ronald Edward Jason Jeffrey Ryan Jacob Gary Nicholas
Eric Jonathan Stephen Larry Justin Scott Brandon Benjamin Samuel Gregory
Alexander Frank Patrick Raymond Jack Dennis Jerry Tyler Aaron Jose Adam Nathan
Henry Douglas Zachary Peter Kyle Noah Ethan Jeremy Walter Christian Keith Roger
Terry Austin Sean Gerald Carl Harold Dylan Arthur Lawrence Jordan Jesse Bryan
Billy Bruce Gabriel Joe Logan Alan Juan Albert Willie Elijah Wayne Randy
Vincent Mason Roy Ralph Bobby Russell Bradley Philip Eugene Oliver Harry
Oscar Leo Archie Alfie Freddie Theo Arlo Reuben Callum Declan Rhys Owen Gareth
Dafydd Hamish Angus Fraser Ewan Alistair Mohammed Ahmed Ali Omar Hassan Ibrahim
Yusuf Imran Tariq Rajesh Sanjay Arjun Vikram Ravi Deepak Kwame Kofi Chinedu
Emeka Tomasz Piotr Krzysztof Marek Andrei Ionut Luca Matteo Giovanni Stanley
Clifford Reginald Cyril Leonard Dennis Malcolm Nigel Trevor Colin Graham Derek""".split()

FEMALE = """Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen
Lisa Nancy Betty Margaret Sandra Ashley Kimberly Emily Donna Michelle Carol
Amanda Dorothy Melissa Deborah Stephanie Rebecca Sharon Laura Cynthia Kathleen
Amy Angela Shirley Anna Brenda Pamela Emma Nicola Katherine Christine Samantha
Debra Rachel Carolyn Janet Catherine Maria Heather Diane Ruth Julie Olivia
Joyce Virginia Victoria Kelly Lauren Christina Joan Evelyn Judith Megan Andrea
Cheryl Hannah Jacqueline Martha Gloria Teresa Ann Sara Madison Frances Kathryn
Janice Jean Abigail Alice Judy Sophia Grace Denise Amber Doris Marilyn Danielle
Beverly Isabella Theresa Diana Natalie Brittany Charlotte Marie Kayla Alexis
Lori Amelia Isla Ava Mia Poppy Ella Lily Freya Ivy Florence Willow Rosie Evie
Sienna Esme Imogen Phoebe Harriet Niamh Siobhan Aoife Caitlin Bethan Cerys
Eilidh Morag Fiona Kirsty Fatima Aisha Zainab Maryam Amina Priya Anjali Sunita
Deepa Kavita Ngozi Adaeze Chioma Agnieszka Katarzyna Magdalena Ioana Elena
Giulia Francesca Edith Mabel Gladys Vera Doreen Brenda Maureen Gwendolyn""".split()

SURNAMES = """Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson
Roberts Robinson Thompson Wright Walker White Edwards Hughes Green Hall Lewis
Harris Clarke Patel Jackson Wood Turner Martin Cooper Hill Ward Morris Moore
Clark Lee King Baker Harrison Morgan Allen James Scott Phillips Watson Davis
Parker Price Bennett Young Griffiths Mitchell Kelly Cook Carter Richardson
Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan Marshall Anderson
Simpson Ellis Adams Singh Begum Wilkinson Foster Chapman Powell Webb Rogers Gray
Mason Ali Hunt Hussain Campbell Matthews Owen Palmer Holmes Mills Barnes Knight
Lloyd Butler Russell Barker Fisher Stevens Jenkins Murray Dixon Harvey Graham
Pearson Ahmed Fletcher Walsh Kaur Gibson Howard Andrews Stewart Elliott Reynolds
Saunders Payne Fox Ford Pearce Day Brooks West Lawrence Cole Atkinson Bradley
Spencer Gill Dawson Ball Burton O'Brien Watts Rose Booth Perry Ryan Grant Wells
Armstrong Francis Rees Hayes Hart Hudson Newman Barrett Webster Hunter Gregory
Carr Lowe Page Marsh Riley Dunn Woods Parsons Berry Stone Reid Holland Hawkins
Harding Porter Robertson Newton Oliver Reed Kennedy Williamson Bird Gardner
Shah Dean Lane Cooke Bates Henderson Parry Burgess Bishop Walton Burns Nicholson
Shepherd Ross Cross Long Freeman Warren Nicholls Hamilton Byrne Sutton McDonald
Yates Hodgson Robson Curtis Hopkins O'Connor Harper Coleman Watkins Moss McCarthy
Chambers O'Neill Griffin Sharp Hardy Wheeler Potter Osborne Johnston Gordon Doyle
Wallace George Jordan Hutchinson Rowe Burke May Pritchard Gilbert Willis Higgins
Read Miles Stevenson Stephenson Hammond Arnold Buckley Walters Hewitt Barber
Nelson Slater Austin Sullivan Whitehead Mann Frost Lambert Stephens Blake Akhtar
Lynch Goodwin Barton Woodward Thomson Cunningham Quinn Barnett Baxter Bibi Clayton
Nash Greenwood Jennings Holt Kemp Poole Gallagher Bond Stokes Tucker Davidson
Fowler Heath Norman Middleton Lawson Banks French Stanley Jarvis Gibbs Ferguson
Hayward Carroll Douglas Dickinson Todd Barlow Peters Lucas Knowles Hartley Miah
Simmons Morton Alexander Field Morrison Norris Townsend Preston Hancock
Thornton Baldwin Burrows Briggs Storey Pugh Mahmood Kowalski Nowak Wisniewski
Popescu Rossi Okafor Mensah Nguyen Chen Wang Zhang Kaminski Lewandowski Adeyemi
Balogun Ogunleye Choudhury Rahman Islam Uddin Chowdhury Siddiqui Qureshi
Fitzgerald MacDonald MacLeod Mackenzie Fraser Sinclair Drummond Buchanan
Llewellyn Pritchard Vaughan Prosser Ellwood Ashworth Entwistle Ramsbottom
Featherstone Winterbottom Higginbottom Sowerby Thwaite Postlethwaite Braithwaite
Oyelaran Ekwueme Achterberg Vanderbilt Szymanski Zielinski Wojcik Kowalczyk""".split()

NICKNAMES = {
    "Robert": ["Bob", "Rob", "Bobby", "Robbie"], "William": ["Bill", "Will", "Billy"],
    "James": ["Jim", "Jimmy", "Jamie"], "John": ["Jack", "Johnny"],
    "Richard": ["Dick", "Rich", "Ricky"], "Thomas": ["Tom", "Tommy"],
    "Michael": ["Mike", "Mick"], "Christopher": ["Chris", "Kit"],
    "Anthony": ["Tony"], "Edward": ["Ted", "Ed", "Eddie", "Ned"],
    "Daniel": ["Dan", "Danny"], "Matthew": ["Matt"], "Joseph": ["Joe", "Joey"],
    "Samuel": ["Sam", "Sammy"], "Alexander": ["Alex", "Sandy", "Xander"],
    "Benjamin": ["Ben", "Benny"], "Jonathan": ["Jon", "Jonny"],
    "Nicholas": ["Nick", "Nicky"], "Stephen": ["Steve"], "Steven": ["Steve"],
    "David": ["Dave", "Davy"], "Andrew": ["Andy", "Drew"], "Peter": ["Pete"],
    "Charles": ["Charlie", "Chuck"], "Henry": ["Harry", "Hal"],
    "Kenneth": ["Ken", "Kenny"], "Timothy": ["Tim"], "Ronald": ["Ron", "Ronnie"],
    "Gregory": ["Greg"], "Patrick": ["Pat", "Paddy"], "Frederick": ["Fred"],
    "Lawrence": ["Larry"], "Leonard": ["Len", "Lenny"], "Reginald": ["Reg"],
    "Zachary": ["Zach"], "Nathan": ["Nate"], "Jeffrey": ["Jeff"],
    "Douglas": ["Doug"], "Raymond": ["Ray"], "Gerald": ["Gerry"],
    "Elizabeth": ["Liz", "Beth", "Lizzie", "Betty"], "Margaret": ["Maggie", "Peggy", "Meg"],
    "Katherine": ["Kate", "Katie", "Kath"], "Catherine": ["Cathy", "Kate"],
    "Jennifer": ["Jenny", "Jen"], "Susan": ["Sue", "Susie"],
    "Patricia": ["Pat", "Trish"], "Deborah": ["Debbie", "Deb"],
    "Rebecca": ["Becky", "Becca"], "Victoria": ["Vicky", "Tori"],
    "Samantha": ["Sam", "Sammy"], "Jessica": ["Jess", "Jessie"],
    "Abigail": ["Abby", "Gail"], "Kimberly": ["Kim"], "Christine": ["Chris", "Chrissie"],
    "Christina": ["Tina", "Chris"], "Pamela": ["Pam"], "Barbara": ["Barb", "Babs"],
    "Dorothy": ["Dot", "Dottie"], "Judith": ["Judy", "Jude"], "Kathleen": ["Kathy", "Kath"],
    "Amanda": ["Mandy"], "Melissa": ["Mel", "Missy"], "Stephanie": ["Steph"],
    "Nicola": ["Nicky", "Nikki"], "Jacqueline": ["Jackie"], "Theresa": ["Tess", "Terri"],
    "Teresa": ["Tess", "Terri"], "Frances": ["Fran", "Frankie"], "Virginia": ["Ginny"],
    "Florence": ["Flo", "Florrie"], "Harriet": ["Hattie"], "Isabella": ["Bella", "Izzy"],
    "Gwendolyn": ["Gwen"], "Alexandra": ["Alex", "Sandra"], "Danielle": ["Dani"],
    "Natalie": ["Nat"], "Charlotte": ["Lottie", "Charlie"], "Madison": ["Maddie"],
    "Eleanor": ["Ellie", "Nell"], "Imogen": ["Immy"], "Evelyn": ["Evie"],
}

AREAS = """AB AL B BA BB BD BH BL BN BR BS CA CB CF CH CM CO CR CT CV CW DA DD DE DH
DL DN DT DY E EC EH EN EX FK FY G GL GU HA HD HG HP HR HU HX IG IP KT KY L LA LD
LE LL LN LS LU M ME MK N NE NG NN NP NR NW OL OX PE PL PO PR RG RH RM S SA SE SG
SK SL SM SN SO SP SR SS ST SW SY TA TF TN TQ TR TS TW UB W WA WD WF WN WR WS WV YO""".split()
UNIT = "ABDEFGHJLNPQRSTUWXYZ"
ALPHA = "abcdefghijklmnopqrstuvwxyz"


def zipf_weights(n, s=1.05):
    return [1.0 / (i + 1) ** s for i in range(n)]


class Names:
    def __init__(self, rng):
        # Shuffle forename popularity away from list order a little, keep
        # surnames in (British) frequency order.
        self.male = list(dict.fromkeys(MALE))
        self.female = list(dict.fromkeys(FEMALE))
        rng.shuffle(self.male)
        rng.shuffle(self.female)
        # Names with familiar forms are common in real populations: lift
        # them toward the head so nicknames have people to apply to.
        self.male.sort(key=lambda n: 0 if n in NICKNAMES and rng.random() < 0.6 else 1)
        self.female.sort(key=lambda n: 0 if n in NICKNAMES and rng.random() < 0.6 else 1)
        self.surnames = list(dict.fromkeys(SURNAMES))
        # Cumulative weights, computed once (the same draws as weights=).
        self.wm = list(itertools.accumulate(zipf_weights(len(self.male), 0.9)))
        self.wf = list(itertools.accumulate(zipf_weights(len(self.female), 0.9)))
        self.ws = list(itertools.accumulate(zipf_weights(len(self.surnames), 1.0)))

    def _pick(self, rng, items, cum):
        return rng.choices(items, cum_weights=cum, k=1)[0]

    def forename(self, rng, male):
        return self._pick(rng, self.male, self.wm) if male else self._pick(rng, self.female, self.wf)

    def surname(self, rng):
        # A long tail beyond the list: about 15% of people carry a rarer
        # surname made of two list surnames' parts.
        if rng.random() < 0.15:
            a, b = rng.sample(self.surnames, 2)
            return a[: max(3, len(a) // 2 + 1)] + b[len(b) // 2:].lower()
        return self._pick(rng, self.surnames, self.ws)


def nhs_number(rng, taken):
    while True:
        first = rng.choice("45678")
        stem = first + "".join(rng.choice("0123456789") for _ in range(8))
        c = check_digit(stem)
        if c is None:
            continue
        n = stem + str(c)
        if n not in taken and len(set(n)) > 1:
            taken.add(n)
            return n


class Places:
    def __init__(self, rng, households):
        units = max(50, households // 8)
        self.units = []
        seen = set()
        while len(self.units) < units:
            area = rng.choice(AREAS)
            district = rng.randint(1, 30)
            sector = rng.randint(0, 9)
            pc = f"{area}{district} {sector}{rng.choice(UNIT)}{rng.choice(UNIT)}"
            if pc not in seen:
                seen.add(pc)
                self.units.append(pc)
        self.by_district = {}
        self.by_area = {}
        for pc in self.units:
            out = pc.split(" ")[0]
            area = out.rstrip("0123456789")
            self.by_district.setdefault(out, []).append(pc)
            self.by_area.setdefault(area, []).append(pc)

    def home(self, rng):
        return rng.choice(self.units)

    def moved(self, rng, pc):
        out = pc.split(" ")[0]
        area = out.rstrip("0123456789")
        r = rng.random()
        pool = (self.by_district.get(out) if r < 0.4 else
                self.by_area.get(area) if r < 0.7 else self.units)
        for _ in range(20):
            new = rng.choice(pool)
            if new != pc:
                return new
        while True:
            new = rng.choice(self.units)
            if new != pc:
                return new


def random_date(rng, y0, y1):
    start = dt.date(y0, 1, 1).toordinal()
    end = dt.date(y1, 12, 31).toordinal()
    return dt.date.fromordinal(rng.randint(start, end))


def make_index(rng, n_people):
    names = Names(rng)
    households_est = max(1, n_people // 2)
    places = Places(rng, households_est)
    taken = set()
    people = []
    households = []

    def add(dob, male, forename, surname, pc, hh):
        pid = len(people) + 1
        people.append({
            "person_id": pid,
            "nhs_number": nhs_number(rng, taken),
            "date_of_birth": dob,
            "gender": ("1" if male else "2") if rng.random() > 0.005 else "9",
            "postcode": pc if rng.random() > 0.01 else None,
            "forename": forename,
            "surname": surname,
            "date_of_death": None,
            "_male": male,
            "_household": hh,
            "_home": pc,
            "_twin": None,
        })
        households[hh].append(pid)
        return pid

    while len(people) < n_people:
        hh = len(households)
        households.append([])
        pc = places.home(rng)
        surname = names.surname(rng)
        male = rng.random() < 0.5
        a1 = random_date(rng, 1930, 2003)
        add(a1, male, names.forename(rng, male), surname, pc, hh)
        if rng.random() < 0.55 and len(people) < n_people:
            m2 = not male if rng.random() < 0.95 else male
            d2 = dt.date.fromordinal(min(max(a1.toordinal() + rng.randint(-3000, 3000),
                                             dt.date(1925, 1, 1).toordinal()),
                                         dt.date(2005, 12, 31).toordinal()))
            s2 = surname if rng.random() < 0.8 else names.surname(rng)
            add(d2, m2, names.forename(rng, m2), s2, pc, hh)
        if a1.year <= 1995 and rng.random() < 0.5:
            kids = rng.choice([1, 1, 2, 2, 3])
            for _ in range(kids):
                if len(people) >= n_people:
                    break
                y = min(2024, a1.year + rng.randint(18, 42))
                dob = random_date(rng, y, y)
                mk = rng.random() < 0.5
                f1 = names.forename(rng, mk)
                k1 = add(dob, mk, f1, surname, pc, hh)
                if rng.random() < 0.04 and len(people) < n_people:
                    mt = mk if rng.random() < 0.5 else not mk
                    f2 = names.forename(rng, mt)
                    while f2 == f1:
                        f2 = names.forename(rng, mt)
                    k2 = add(dob, mt, f2, surname, pc, hh)
                    people[k1 - 1]["_twin"] = k2
                    people[k2 - 1]["_twin"] = k1
    return names, places, people, households, taken


# ------------------------------------------------------------ errors

def typo(rng, s):
    if len(s) < 2:
        return s + rng.choice(ALPHA)
    for _ in range(50):
        i = rng.randint(1, len(s) - 1)  # first letter is usually right
        op = rng.random()
        c = s[i]
        if op < 0.45:
            new = s[:i] + rng.choice(ALPHA.replace(c.lower(), "")) + s[i + 1:]
        elif op < 0.65 and len(s) > 3:
            new = s[:i] + s[i + 1:]
        elif op < 0.8:
            new = s[:i] + c.lower() + s[i:]
        elif i < len(s) - 1 and s[i] != s[i + 1]:
            new = s[:i] + s[i + 1] + s[i] + s[i + 2:]
        else:
            continue
        if new != s and new.lower() != s.lower():
            return new
    return s + rng.choice(ALPHA)


def one_wrong_digit(rng, n):
    i = rng.randint(0, 9)
    d = str((int(n[i]) + rng.randint(1, 9)) % 10)
    return n[:i] + d + n[i + 1:]


def fmt_date(rng, d):
    r = rng.random()
    if r < 0.5:
        return d.strftime("%d/%m/%Y")
    if r < 0.9:
        return d.isoformat()
    return d.strftime("%Y%m%d")


def fmt_nhs(rng, n):
    if not n:
        return ""
    return f"{n[:3]} {n[3:6]} {n[6:]}" if rng.random() < 0.3 else n


def fmt_gender(rng, g):
    if g == "1":
        return rng.choice(["1", "1", "M", "Male"])
    if g == "2":
        return rng.choice(["2", "2", "F", "Female"])
    return g


def fmt_postcode(rng, pc):
    if not pc:
        return ""
    r = rng.random()
    if r < 0.85:
        return pc
    if r < 0.95:
        return pc.replace(" ", "")
    return pc.lower()


SHARES = [
    ("clean", 0.40), ("name_typo", 0.05), ("moved", 0.05), ("dob_swap", 0.05),
    ("nhs_missing", 0.05), ("names_swapped", 0.05), ("hyphenated", 0.05),
    ("twin", 0.05), ("nickname_no_nhs", 0.05), ("married_moved_no_nhs", 0.05),
    ("wrong_nhs", 0.05), ("multi_error", 0.05), ("absent_lookalike", 0.05),
]


def fits(kind, p):
    d = p["date_of_birth"]
    if kind == "dob_swap":
        return d.day <= 12 and d.day != d.month
    if kind == "twin":
        return p["_twin"] is not None
    if kind == "nickname_no_nhs":
        return p["forename"] in NICKNAMES
    if kind == "married_moved_no_nhs":
        return d.year <= 2006
    if kind == "names_swapped":
        return p["forename"] != p["surname"]
    return True


def make(n_people, n_cohort, seed):
    """Returns (people, cohort_rows, truth)."""
    rng = random.Random(seed)
    names, places, people, households, taken = make_index(rng, n_people)
    counts = [(k, int(round(s * n_cohort))) for k, s in SHARES]
    counts[0] = ("clean", n_cohort - sum(c for _, c in counts[1:]))
    kinds = [k for k, c in counts for _ in range(c)]
    rng.shuffle(kinds)

    order = list(range(len(people)))
    rng.shuffle(order)
    # Pools per kind: each person at most once in the cohort.
    used = set()
    pools = {}
    cursor = {"i": 0}

    def draw(kind):
        pool = pools.setdefault(kind, [])
        # scan the shuffled population lazily for someone who fits
        while True:
            while pool:
                pid = pool.pop()
                if pid not in used:
                    used.add(pid)
                    return people[pid - 1]
            if cursor["i"] >= len(order):
                return None
            # refill every pool from the next slice of the (shuffled)
            # population, newest first
            for idx in reversed(order[cursor["i"]: cursor["i"] + 2000]):
                p = people[idx]
                for k, _ in SHARES:
                    if k != "absent_lookalike" and fits(k, p):
                        pools.setdefault(k, []).append(p["person_id"])
            cursor["i"] += 2000

    rows, truth = [], []
    for i, kind in enumerate(kinds):
        sid = f"X{i + 1:07d}"
        if kind == "absent_lookalike":
            base = people[rng.randrange(len(people))]
            row = absent_row(rng, names, places, base, taken)
            rows.append([sid] + row)
            truth.append((sid, None, kind))
            continue
        p = draw(kind)
        if p is None:
            raise SystemExit(f"outside generator: cohort of {n_cohort} is too large for "
                             f"{n_people} people (kind {kind}); raise --people")
        row = known_row(rng, names, places, people, households, p, kind)
        rows.append([sid] + row)
        truth.append((sid, p["person_id"], kind))
    return ([{k: v for k, v in p.items() if not k.startswith("_")} for p in people],
            rows, truth)


def known_row(rng, names, places, people, households, p, kind):
    nhs = p["nhs_number"]
    dob = p["date_of_birth"]
    gender = p["gender"]
    pc = p["postcode"] or ""
    fn, sn = p["forename"], p["surname"]
    if kind == "name_typo":
        if rng.random() < 0.5:
            fn = typo(rng, fn)
        else:
            sn = typo(rng, sn)
    elif kind == "moved":
        pc = places.moved(rng, p["_home"])
    elif kind == "dob_swap":
        dob = dt.date(dob.year, dob.day, dob.month)
    elif kind == "nhs_missing":
        nhs = ""
    elif kind == "names_swapped":
        fn, sn = sn, fn
    elif kind == "hyphenated":
        other = names.surname(rng)
        while other == sn:
            other = names.surname(rng)
        sn = f"{sn}-{other}" if rng.random() < 0.5 else f"{other}-{sn}"
    elif kind == "twin":
        nhs = ""
    elif kind == "nickname_no_nhs":
        fn = rng.choice(NICKNAMES[fn])
        nhs = ""
    elif kind == "married_moved_no_nhs":
        new = names.surname(rng)
        while new == sn:
            new = names.surname(rng)
        sn = new
        pc = places.moved(rng, p["_home"])
        nhs = ""
    elif kind == "wrong_nhs":
        rel = [q for q in households[p["_household"]] if q != p["person_id"]]
        other = rng.choice(rel) if rel else rng.randint(1, len(people))
        while other == p["person_id"]:
            other = rng.randint(1, len(people))
        nhs = people[other - 1]["nhs_number"]
    elif kind == "multi_error":
        nhs = one_wrong_digit(rng, nhs)
        sn = typo(rng, sn)
        pc = places.moved(rng, p["_home"])
    if rng.random() < 0.05:
        sn = sn.upper()
    return [fmt_nhs(rng, nhs), fmt_date(rng, dob), fmt_gender(rng, gender),
            fmt_postcode(rng, pc), fn, sn]


def absent_row(rng, names, places, base, taken):
    male = rng.random() < 0.5
    r = rng.random()
    if r < 0.4:
        # an unregistered relative at the same address
        sn, pc = base["surname"], base["_home"]
        fn = names.forename(rng, male)
        while fn == base["forename"]:
            fn = names.forename(rng, male)
        dob = random_date(rng, 1930, 2024)
    elif r < 0.7:
        # a namesake elsewhere
        male = base["_male"]
        fn, sn = base["forename"], base["surname"]
        pc = places.moved(rng, base["_home"])
        dob = random_date(rng, 1930, 2024)
    else:
        # same surname and date of birth, someone else
        sn, dob = base["surname"], base["date_of_birth"]
        fn = names.forename(rng, male)
        while fn == base["forename"]:
            fn = names.forename(rng, male)
        pc = places.moved(rng, base["_home"])
    nhs = nhs_number(rng, taken) if rng.random() < 0.5 else ""
    gender = "1" if male else "2"
    return [fmt_nhs(rng, nhs), fmt_date(rng, dob), fmt_gender(rng, gender),
            fmt_postcode(rng, pc), fn, sn]
