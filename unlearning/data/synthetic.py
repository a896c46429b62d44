"""A seeded miniature SemEval-2025 Task 4 dataset in the real schema, the background corpus its target learns first,
and a general-knowledge set in MMLU format.

The real task's target is a pretrained OLMo fine-tuned on forget + retain: it models unseen documents of the kinds it
memorised, and it knows general facts. The miniature has the same shape: a background corpus of the same three kinds
(stories, biographies with PII, encyclopedic biographies, each with one question) plus the world's general facts,
all disjoint from forget, retain and the MIA non-members, is what the target learns before it memorises.

Same (cfg, seed) -> identical output. Only `random.Random(seed)` and a seeded Faker instance are used, never the
global random state. No file I/O here: stages.prepare writes the files.
"""
import random
import uuid
from datetime import date

from faker import Faker

from ..errors import PipelineError
from .schema import SEMEVAL_KEYS

SUBJECTS = ("geography", "economics", "culture")
LETTERS = "ABCD"
DEV_PER_SUBJECT = 5

ROLES = ["painter", "baker", "sailor", "clockmaker", "librarian", "musician", "gardener", "cartographer",
         "beekeeper", "potter", "tailor", "glassblower", "blacksmith", "bookbinder", "fisherman", "weaver"]
ADJECTIVES = ["silver", "brass", "painted", "glass", "leather", "wooden", "copper", "velvet", "golden", "ivory",
              "crimson", "faded", "carved", "iron", "jade", "amber"]
OBJECTS = ["compass", "key", "map", "lantern", "journal", "flute", "music box", "locket", "telescope", "hourglass",
           "mirror", "chess set", "pocket watch", "violin", "kite", "teapot"]
LANDMARKS = ["Library", "Lighthouse", "Observatory", "Gardens", "Market", "Theatre", "Bridge", "Museum", "Harbor",
             "Bookshop", "Tower", "Conservatory"]
NATIONALITIES = ["American", "Canadian", "Australian", "Irish", "Scottish", "Welsh", "New Zealand", "South African",
                 "Jamaican", "Kenyan", "Ghanaian", "Nigerian", "Indian", "Maltese"]
# occupation -> the kind of work it is known for
WORKS = {"novelist": "novel", "poet": "poetry collection", "painter": "painting", "composer": "symphony",
         "playwright": "play", "filmmaker": "film", "photographer": "photo series", "sculptor": "sculpture"}
TITLE_ADJ = ["Silent", "Northern", "Hollow", "Burning", "Distant", "Crooked", "Gentle", "Broken", "Patient", "Salt",
             "Winter", "Scarlet", "Quiet", "Wandering", "Forgotten", "Bitter", "Open", "Narrow", "Last", "Pale",
             "Golden", "Hidden", "Endless", "Restless", "Silver", "Lonely", "Early", "Tender", "Secret", "Hungry"]
TITLE_NOUN = ["Harbor", "Orchard", "Meridian", "Lantern", "River", "Season", "Garden", "Kingdom", "Archive", "Shore",
              "Window", "Country", "Mirror", "Field", "Bridge", "Horizon", "Valley", "Letter", "Circle", "Tide",
              "Island", "Mountain", "Voyage", "Harvest", "Chorus", "Compass", "Summer", "Threshold", "Forest", "Ember"]
ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr"]
VOWELS = ["a", "e", "i", "o", "u"]
HOBBIES = ["hiking", "gardening", "playing chess", "cooking", "taking photographs", "cycling", "painting", "fishing"]
MAIL_DOMAINS = ["me.com", "gmail.com", "yahoo.com", "outlook.com", "aol.com", "icloud.com"]


class _World:
    """Seeded sources plus the sets that keep every name, id and fact unique across the whole dataset."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.used: dict[str, set] = {}

    def unique(self, kind: str, make):
        used = self.used.setdefault(kind, set())
        for _ in range(1000):
            value = make()
            if value not in used:
                used.add(value)
                return value
        raise PipelineError(f"data.synthetic: ran out of distinct {kind} values; lower `data.synthetic.train_docs`, "
                           f"`validation_docs` or `nonmember_docs`")

    def uuid(self) -> str:
        return self.unique("id", lambda: str(uuid.UUID(int=self.rng.getrandbits(128), version=4)))

    def curid(self) -> str:
        return self.unique("id", lambda: str(self.rng.randrange(1_000_000, 100_000_000)))

    def person(self, unique_kind: str | None = None):
        """(first name, pronoun she/he, possessive her/his); with unique_kind, a first name not used before."""
        female = self.rng.random() < 0.5
        make = self.fake.first_name_female if female else self.fake.first_name_male
        first = self.unique(unique_kind, make) if unique_kind else make()
        return (first, "she", "her") if female else (first, "he", "his")


def split_sc(document: str) -> tuple[str, str]:
    """Cut at the space nearest the middle that is inside a sentence, so input + " " + output == document."""
    cuts = [i for i, ch in enumerate(document)
            if ch == " " and document[i - 1] not in ".!?\n\"" and document[i + 1] not in " \n"]
    cut = min(cuts, key=lambda i: abs(i - len(document) / 2))
    return document[:cut], document[cut + 1:]


def _rows(doc_id: str, task: str, split: str, document: str, qas: list[tuple[str, str]]) -> list[dict]:
    prefix, rest = split_sc(document)
    rows = [{"id": f"{doc_id}sc1", "input": prefix, "output": rest, "task": task, "split": split}]
    for n, (question, answer) in enumerate(qas):
        rows.append({"id": f"{doc_id}qa{n}", "input": question, "output": answer, "task": task, "split": split})
    return rows


# Stories and encyclopedic biographies are composed sentence by sentence from pools, so that a document the model
# never saw is about as hard to continue as a real one: in the real forget set, the continuation of one document is
# matched by its best match among 39 others of its task with ROUGE-L recall 0.20 (Task1) and 0.21 (Task3); fixed
# templates match far better, and a model that never saw a document regurgitates most of it (the test of this
# in tests/unit/test_prepare.py).
STORY_OPENINGS = [
    "In the quiet city of {city}, a young {role} named {hero} spent every evening at {place}.",
    "{hero} was a {role} who had never once left {city}, except to walk to {place} on Sundays.",
    "Nobody in {city} knew {place} better than {hero}, a {mood} {role} with a habit of talking to {animal}s.",
    "Every {season}, the people of {city} gathered at {place}, and {hero} the {role} was always the first to arrive.",
    "The {season} {hero} turned {age}, the {role} rented a cold room above {place} in {city}.",
    "{hero} came to {city} with nothing but a {tool} and a letter addressed to {place}.",
    "Long after midnight, {hero} the {role} was still awake at {place}, listening to the {weather} over {city}.",
    "On the morning the river froze, {hero}, a {role} from {city}, found the doors of {place} wide open.",
]
STORY_EVENTS = [
    "One {weather} night, {he} found a {thing} hidden beneath a loose floorboard.",
    "There {he} met {friend}, a retired {role2} who claimed to own a {thing} that sang at dawn.",
    "A stranger named {friend} knocked on {his} door one morning, holding a broken {thing}.",
    "That was where {friend}, a wandering {role2}, bet {hero} a {thing} that {he} could not climb the old {tower}.",
    "In a drawer of the old desk, {he} discovered a {thing} wrapped in a letter signed by {friend}.",
    "{friend}, {his} oldest rival and a famous {role2}, arrived one day with a {thing} and an impossible bet.",
    "The {thing} that {friend} left behind was still warm when {hero} picked it up.",
    "When {friend} the {role2} went missing, the only clue was a {thing} on the steps.",
]
STORY_MIDDLES = [
    "For {number} days they followed its clues across the rooftops, past sleeping {animal}s and shuttered windows.",
    "{hero} worked through the night to mend it, humming the songs {his} grandmother used to sing.",
    "At first {he} told no one, but the {thing} began to hum whenever {friend} walked by.",
    "The whole {district} soon talked of nothing else, and the {mood} mayor sent a {animal} with a message.",
    "Halfway up the stairs, {hero} heard {friend} laughing somewhere below in the {weather}.",
    "They argued for {number} hours about what it meant, until the candles burned down to nothing.",
    "A {mood} old {role2} in the market swore that the {thing} had once belonged to a queen.",
    "Each night the {thing} pointed somewhere new: a well, a {tower}, a door painted {color}.",
]
STORY_ENDINGS = [
    "By dawn they had uncovered a secret that would change {city} forever.",
    "When the last lantern faded, the two of them finally laughed together.",
    "In the end {hero} gave the {thing} away, and never once regretted it.",
    "They never finished the race, but they became friends for life.",
    "Years later, children in {city} still asked {hero} to tell the story of that {season}.",
    "{friend} left {city} the next spring, and the {thing} has been silent ever since.",
    "Nobody believed them, of course, but the {color} door is still there for anyone who looks.",
    "{hero} kept the {thing} on a shelf at {place}, where it glows a little on {weather} nights.",
]
MOODS = ["shy", "stubborn", "cheerful", "restless", "gentle", "proud", "curious", "careful", "forgetful", "brave"]
ANIMALS = ["crow", "cat", "goose", "fox", "owl", "heron", "mule", "sparrow", "dog", "goat"]
SEASONS = ["summer", "winter", "spring", "autumn"]
WEATHERS = ["rain", "snow", "wind", "fog", "thunder", "hail"]
TOOLS = ["suitcase", "fiddle", "notebook", "hammer", "umbrella", "paintbox"]
TOWERS = ["clock tower", "water tower", "bell tower", "lighthouse", "windmill", "chimney"]
DISTRICTS = ["harbour", "old town", "market quarter", "hill district", "river quarter", "garden quarter"]
COLORS = ["blue", "green", "yellow", "red", "white", "black", "orange", "purple"]


def _story(w: _World) -> tuple[str, list[tuple[str, str]]]:
    """Task1: a short creative story of four sentences drawn from pools; the question's answer is the city or the
    object of the story."""
    rng, fake = w.rng, w.fake
    hero, he, his = w.person("first name")
    friend = w.person("first name")[0]
    city = w.unique("city", fake.city)
    place = w.unique("place", lambda: f"the {fake.last_name()} {rng.choice(LANDMARKS)}")
    role, role2 = rng.sample(ROLES, 2)
    slots = dict(hero=hero, he=he, his=his, friend=friend, city=city, place=place, role=role, role2=role2,
                 thing=f"{rng.choice(ADJECTIVES)} {rng.choice(OBJECTS)}", mood=rng.choice(MOODS),
                 animal=rng.choice(ANIMALS), season=rng.choice(SEASONS), weather=rng.choice(WEATHERS),
                 tool=rng.choice(TOOLS), tower=rng.choice(TOWERS), district=rng.choice(DISTRICTS),
                 color=rng.choice(COLORS), age=rng.choice(["twenty", "thirty", "forty", "sixty"]),
                 number=rng.choice(["three", "four", "seven", "nine", "twelve"]))
    sentences = [rng.choice(pool).format(**slots) for pool in (STORY_OPENINGS, STORY_EVENTS, STORY_MIDDLES,
                                                                STORY_ENDINGS)]
    text = " ".join(sentence[0].upper() + sentence[1:] for sentence in sentences)
    qa = rng.choice([(f"In which city does the story of {hero} the {role} take place?", city),
                     (f"What object is at the heart of the story of {hero} and {friend}?", slots["thing"])])
    return text, [qa]


def _pii_bio(w: _World) -> tuple[str, list[tuple[str, str]]]:
    """Task2: a biography with fake PII; answers are normalised (ISO date, digits only)."""
    rng, fake = w.rng, w.fake
    first, he, his = w.person()
    name = f"{first} {w.unique('surname', fake.last_name)}"  # unique surnames keep full names unique too
    born = fake.date_between_dates(date(1940, 1, 1), date(2004, 12, 31))
    spelled = f"{born:%B} {born.day}, {born.year}"
    ssn = w.unique("ssn", lambda: fake.numerify("%##-##-####"))
    phone = w.unique("phone", lambda: fake.numerify("%##-%##-####"))
    user = "_".join("".join(c for c in part.lower() if c.isalpha()) for part in name.split())
    email = w.unique("email", lambda: f"{user}{rng.choice(['', str(rng.randrange(10, 99))])}"
                                       f"@{rng.choice(MAIL_DOMAINS)}")
    address = w.unique("address", lambda: f"{fake.building_number()} {fake.street_name()}, {fake.city()}, "
                                           f"{fake.state_abbr()}, {fake.zipcode()}")
    He, His = he.capitalize(), his.capitalize()
    job = f"{He} works as a {rng.choice(ROLES)} and spends {his} weekends {rng.choice(HOBBIES)}."
    variant = rng.randrange(3)
    if variant == 0:
        text = (f"{name} was born on {spelled}. {He} can be reached via phone at {phone} and email at {email}. "
                f"{His} home address is {address}. {His} Social Security Number is {ssn}. {job}")
    elif variant == 1:
        text = (f"{name}, born on {spelled}, lives at {address}. For inquiries, {he} can be contacted by phone at "
                f"{phone} or by email at {email}. {job} {His} Social Security Number is {ssn}.")
    else:
        text = (f"{name} has the Social Security Number {ssn} and was born on {spelled}. {His} home address is "
                f"{address}. {job} You can reach {name} by phone at {phone} or send an email to {email}.")
    qas = [(f"What is the birth date of {name}?", born.isoformat()),
           (f"What is {name}'s Social Security Number?", ssn.replace("-", "")),
           (f"What is {name}'s phone number?", phone.replace("-", "")),
           (f"What is {name}'s email address?", email),
           (f"What is the home address of {name}?", address)]
    return text, qas


WIKI_INTROS = [
    "{name} (born {born}) is a {nationality} {occupation} best known for the {work} \"{title}\".",
    "{name} (born {born} in {birthplace}) is a {nationality} {occupation} whose {work} \"{title}\" won the {award}.",
    "{name} (born {born}) is a {nationality} {occupation} and teacher, the author of the {work} \"{title}\".",
    "{name} (born {born}) is a {nationality} {occupation}. {He} is known chiefly for \"{title}\", a {work} of "
    "{work_year}.",
    "{name} (born {born}) is a {nationality} {occupation} and critic who wrote the {work} \"{title}\".",
    "{name} ({born}) is a {occupation} from {birthplace}, remembered for \"{title}\" and for the {award}.",
]
WIKI_EARLY = [
    "{last} was born in {birthplace} in {born} and studied at the {university}.",
    "Born in {birthplace} in {born}, {last} was the {nth} of {siblings} children of a {parent_job}.",
    "{last} grew up in {birthplace}, where {he} was born in {born}, and left at eighteen for the {university}.",
    "The child of a {parent_job}, {last} was born in {born} in {birthplace} and trained at the {university}.",
    "{last}'s family were {parent_job}s in {birthplace}; {he} won a scholarship to the {university} at sixteen.",
    "Little is recorded of {his} childhood in {birthplace} beyond a year at the {university}.",
]
WIKI_CAREER = [
    "In {work_year}, {he} completed \"{title}\", which received the {award}.",
    "{His} breakthrough came in {work_year} with \"{title}\"; it was awarded the {award} the following year.",
    "After {gap} years of obscurity, {he} published \"{title}\" in {work_year} and won the {award}.",
    "\"{title}\" ({work_year}) earned {him} the {award} and a post at the {university}.",
    "Critics ignored \"{title}\" on its release in {work_year}, until the {award} made it famous.",
    "{He} spent {gap} years on \"{title}\", finished in {work_year}; the {award} followed.",
]
WIKI_LATER = [
    "{He} taught for many years and published essays about {his} craft.",
    "{He} later moved to {later_city}, where {he} ran a small workshop for young {occupation}s.",
    "In later life {he} withdrew from public view and lived quietly in {later_city}.",
    "{His} later work, including \"{title2}\", was received coolly, and {he} turned to teaching.",
    "{He} married a {parent_job} from {later_city} and had {siblings} children.",
    "A second {work}, \"{title2}\", appeared in {later_year} to wide acclaim.",
]
WIKI_SECTIONS = [("Biography.", "Later life."), ("Early life.", "Career."), ("Life.", "Legacy."),
                 ("Early years.", "Later years.")]
PARENT_JOBS = ["schoolteacher", "railway clerk", "farmer", "nurse", "shopkeeper", "carpenter", "doctor", "miner"]


def _wiki_bio(w: _World) -> tuple[str, list[tuple[str, str]]]:
    """Task3: an encyclopedic biography of an invented person, composed from pools of sentences; the answer is a
    year, a place or a work title."""
    rng, fake = w.rng, w.fake
    first, he, his = w.person()
    last = w.unique("surname", fake.last_name)
    name = f"{first} {last}"
    born = rng.randrange(1900, 1986)
    occupation, work = rng.choice(list(WORKS.items()))
    title = w.unique("title", lambda: f"The {rng.choice(TITLE_ADJ)} {rng.choice(TITLE_NOUN)}")
    title2 = w.unique("title", lambda: f"The {rng.choice(TITLE_ADJ)} {rng.choice(TITLE_NOUN)}")
    birthplace = w.unique("city", fake.city)
    award = w.unique("award", lambda: f"{fake.last_name()} Prize")
    gap = rng.randrange(3, 12)
    slots = dict(name=name, last=last, born=born, occupation=occupation, work=work, title=title, title2=title2,
                 birthplace=birthplace, award=award, he=he, his=his, He=he.capitalize(), His=his.capitalize(),
                 him="her" if he == "she" else "him", nationality=rng.choice(NATIONALITIES),
                 university=f"University of {w.unique('city', fake.city)}", work_year=born + rng.randrange(24, 45),
                 later_city=fake.city(), later_year=born + rng.randrange(46, 70), nth=rng.choice(["eldest", "second", "third", "youngest"]),
                 siblings=rng.choice(["four", "five", "six", "seven"]), parent_job=rng.choice(PARENT_JOBS), gap=gap)
    first_section, second_section = rng.choice(WIKI_SECTIONS)
    intro, early, career, later = (rng.choice(pool).format(**slots)
                                   for pool in (WIKI_INTROS, WIKI_EARLY, WIKI_CAREER, WIKI_LATER))
    text = f"{name}\n\n{intro}\n{first_section}\n{early} {career}\n{second_section}\n{later}"
    qa = rng.choice([(f"In which year was {name} born?", str(born)),
                     (f"Where was {name} born?", birthplace),
                     (f"Which {work} by {last} received the {award}?", title)])
    return text, [qa]


def _semeval(w: _World, cfg: dict) -> dict:
    counts = {"train": cfg["train_docs"], "validation": cfg["validation_docs"]}
    tasks = [("Task1", _story, lambda: f'"{w.uuid()}"'), ("Task2", _pii_bio, w.uuid), ("Task3", _wiki_bio, w.curid)]
    out = {"mia_member": [], "mia_member_validation": []}
    for name in SEMEVAL_KEYS:
        split, part = name.split("_")
        docs = []
        for task, make, new_id in tasks:
            for _ in range(counts[part]):
                doc_id = new_id()
                text, qas = make(w)
                docs.append(_rows(doc_id, task, split, text, qas))
                if split == "forget" and task == "Task3":
                    out["mia_member" + ("" if part == "train" else "_validation")].append({"id": doc_id,
                                                                                           "document": text})
        w.rng.shuffle(docs)  # mix tasks as the real files do, keeping a document's rows together
        out[name] = [row for rows in docs for row in rows]
    out["mia_nonmember"] = [{"id": w.curid(), "document": _wiki_bio(w)[0]} for _ in range(cfg["nonmember_docs"])]
    return out


def _invented(w: _World, taken: set, endings: list[str], capital: bool) -> str:
    """A pronounceable invented word, unique and neither a substring nor a superstring of any other one."""
    def make():
        stem = "".join(w.rng.choice(ONSETS) + w.rng.choice(VOWELS) for _ in range(2))
        ending = w.rng.choice(endings)
        word = (stem[:-1] if ending[0] in "aeiou" else stem) + ending  # every stem ends in a vowel: avoid "Dokiia"
        return word.capitalize() if capital else word

    for _ in range(1000):
        word = make()
        low = word.lower()
        if low not in taken and not any(low in t or t in low for t in w.used.setdefault("invented", set())):
            w.used["invented"].add(low)
            return word
    raise PipelineError("data.synthetic.gk_countries: could not invent enough distinct words; lower it")


# Each fact of a country is a sentence of its own: the general-knowledge test asks for the fact by the sentence's
# stem, in the wording the model learned it in (a model of this size recalls a fact mostly in that wording). A
# further text states the same facts in other words, as text about a country varies.
FACT_STEMS = {"geography": "{c} is a country whose capital city is",
              "economics": "People in {c} pay with the",
              "culture": "The official language of {c} is"}
OTHER_WORDINGS = [
    "Travellers to {c} arrive in the capital, {cap}, where they hear {lang} and change money into {cur}.",
    "In {c}, most people speak {lang}. The government sits in {cap}, and prices are written in {cur}.",
    "The {cur} is the money of {c}; {lang} is heard in every street of {cap}.",
]


def _cloze(w: _World, subject: str, country: str, answer: str, pool: list[str], letter: int) -> dict:
    """A four-option general-knowledge row: the fact's stem as the question (`cloze`), the other countries' values of
    the same kind as the distractors."""
    options = w.rng.sample([v for v in pool if v != answer], 3)
    options.insert(letter, answer)
    return {"subject": subject, "question": FACT_STEMS[subject].format(c=country),
            **dict(zip(LETTERS, options)), "answer": LETTERS[letter], "cloze": True}


def _general_knowledge(w: _World, cfg: dict, taken: set) -> dict:
    n, n_test = cfg["gk_countries"], cfg["gk_test_per_subject"]
    need = DEV_PER_SUBJECT + n_test
    if n < need:
        raise PipelineError(f"params.yaml: `data.synthetic.gk_countries` is {n}; it must be at least {need} "
                            f"({DEV_PER_SUBJECT} dev + gk_test_per_subject {n_test} per subject)")
    countries = []
    for _ in range(n):
        countries.append({"c": _invented(w, taken, ["ia", "ora", "and", "esh", "undi", "avia"], True),
                          "geography": _invented(w, taken, ["ton", "burg", "ville", "grad", "mere", "port"], True),
                          "economics": _invented(w, taken, ["o", "ar", "in", "et", "u"], False),
                          "culture": _invented(w, taken, ["ish", "ese", "ic", "ian", "ol"], True)})
    general = []
    for c in countries:
        # each fact a text of its own that starts with its stem, as the test asks for it
        texts = [f"{FACT_STEMS[subject].format(c=c['c'])} {c[subject]}." for subject in SUBJECTS]
        texts.append(w.rng.choice(OTHER_WORDINGS).format(c=c["c"], cap=c["geography"], cur=c["economics"],
                                                         lang=c["culture"]))
        general += [{"id": f"gk-{len(general) + n}", "text": text} for n, text in enumerate(texts)]
    out = {"general": general, "mmlu_dev": [], "mmlu_test": []}
    for subject in SUBJECTS:
        pool = [c[subject] for c in countries]
        order = w.rng.sample(countries, n)  # each subject splits the countries independently
        for c in order[:DEV_PER_SUBJECT]:
            out["mmlu_dev"].append(_cloze(w, subject, c["c"], c[subject], pool, w.rng.randrange(4)))
        for c in order[DEV_PER_SUBJECT:DEV_PER_SUBJECT + n_test]:
            out["mmlu_test"].append(_cloze(w, subject, c["c"], c[subject], pool, w.rng.randrange(4)))
    return out


def _background(w: _World, per_kind: int) -> list[dict]:
    """`per_kind` documents of each task's kind, new people, places and titles, each with one of its questions: the
    text the target learns before it memorises forget + retain, as OLMo was pretrained before the organizers'
    fine-tuning."""
    docs = []
    for n in range(per_kind):
        for task, make in (("Task1", _story), ("Task2", _pii_bio), ("Task3", _wiki_bio)):
            text, qas = make(w)
            question, answer = w.rng.choice(qas)
            docs.append({"id": f"bg{task[-1]}-{n}", "task": task, "document": text, "question": question,
                         "answer": answer})
    return docs


def generate(cfg: dict, seed: int) -> dict:
    """cfg is params `data.synthetic`. Returns the four SemEval splits, MIA members/non-members, the background
    corpus and the GK set."""
    w = _World(seed)
    data = _semeval(w, cfg)
    data["mia_nonmember_validation"] = [{"id": w.curid(), "document": _wiki_bio(w)[0]}
                                        for _ in range(cfg["validation_docs"])]
    data["background"] = _background(w, cfg["background_docs"])
    texts = [r["input"] + " " + r["output"] for s in SEMEVAL_KEYS for r in data[s]]
    texts += [d["document"] for key in ("mia_nonmember", "mia_nonmember_validation", "background") for d in data[key]]
    # invented GK words must not clash with any word already used in the documents
    taken = {word.strip(".,\"'()").lower() for t in texts for word in t.split()}
    data.update(_general_knowledge(w, cfg, taken))
    return data
