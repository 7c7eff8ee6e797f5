"""Data for the instruction-tuning benchmark: sentences about a meeting and the JSON they stand for.

Each example is one English sentence built from a phrasing template, the people
(1-4 names), a date written one of several ways and a time written one of
several ways; the answer follows fixed conventions a model cannot guess zero-shot:

- `date`: "MM-DD" (no year; a weekday in the sentence is decoration and ignored);
- `time`: 24-hour "HH:MM" (times in words say morning / afternoon / evening, so
  every sentence has exactly one answer);
- `people`: the named people other than the speaker ("I" is never listed), sorted
  alphabetically;
- compact JSON, keys in the order date, time, people:
  `{"date":"03-03","time":"14:30","people":["Ana","Bo"]}`.

Records are chat JSONL, as `llmos finetune` and `llmos.evaluation.generation_tasks` read them:
`{"messages": [{"role": "user", "content": "Extract the meeting as JSON: ..."},
{"role": "assistant", "content": "<json>"}], "template": "t03", "held_out": false}`.
No test sentence is in the training set, and the test set also uses phrasings
(`HELD_OUT_TEMPLATES`) that never occur in training, marked `"held_out": true`,
so part of the score is generalization to new wording, not recall.

    python benchmarks/make_meeting_data.py --out DIR [--train 400] [--test 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

INSTRUCTION = "Extract the meeting as JSON: "

NAMES = [
    "Ana", "Bo", "Carlos", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jade", "Kofi", "Lena",
    "Marco", "Nina", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Vera", "Wei", "Xavi",
    "Yara", "Zoe", "Ben", "Chloe", "Diego", "Emma", "Hugo", "Ines", "Jonas", "Leo", "Maya", "Noah",
]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
HOUR_WORDS = ["twelve", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
              "eleven"]

# {people} {date} {time}; "date" and "time" are bare phrases ("March 3rd", "3pm").
# {verb_s} is "s" after one person ("Ana wants"), "" after several ("Ana and Bo want");
# {people_and_me} lists the people and the speaker ("Ana, Bo and I").
TEMPLATES = {
    "t00": "Let's meet with {people} on {date} at {time}.",
    "t01": "{people_and_me} will sync on {date} at {time}.",
    "t02": "Set up a call with {people} for {time} on {date}.",
    "t03": "Can you book a meeting with {people} on {date} at {time}?",
    "t04": "Reminder: catch-up with {people}, {date}, {time}.",
    "t05": "{people} want{verb_s} to meet on {date} at {time}.",
    "t06": "Please schedule a review with {people} at {time} on {date}.",
    "t07": "I'm meeting {people} on {date} at {time} to go over the budget.",
    "t08": "On {date} at {time}, {people_and_me} have a planning session.",
    "t09": "Lunch with {people} on {date} at {time}.",
    "t10": "Block {time} on {date} for a chat with {people}.",
    "t11": "Team sync with {people} at {time}, {date}.",
    "t12": "Could we get {people} together on {date}? {time} works for me.",
    "t13": "Invite {people} to the design review on {date} at {time}.",
    "t14": "At {time} on {date} I have a quick call with {people}.",
    "t15": "Put a meeting in the calendar: me and {people}, {date} at {time}.",
}
HELD_OUT_TEMPLATES = ("t12", "t13", "t14", "t15")  # test only


def ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def date_phrase(rng: random.Random, month: int, day: int) -> str:
    """A way of writing month (1-12) and day; none is ambiguous between day-first and month-first."""
    name = MONTHS[month - 1]
    forms = [
        f"{name} {ordinal(day)}",
        f"{name} {day}",
        f"{day} {name}",
        f"the {ordinal(day)} of {name}",
        f"{name[:3]} {day}",
        f"{ordinal(day)} {name}",
        f"{rng.choice(WEEKDAYS)}, {name} {ordinal(day)}",
        f"{rng.choice(WEEKDAYS)} the {ordinal(day)} of {name}",
    ]
    return rng.choice(forms)


def part_of_day(hour: int) -> str:
    return "in the morning" if hour < 12 else "in the afternoon" if hour < 18 else "in the evening"


def time_phrase(rng: random.Random, hour: int, minute: int) -> str:
    """A way of writing hour (0-23) and minute; word forms carry morning / afternoon / evening."""
    h12 = hour % 12 or 12
    ampm = "am" if hour < 12 else "pm"
    forms = [f"{hour:02d}:{minute:02d}", f"{hour}h{minute:02d}"]  # digits without am/pm are 24-hour
    if minute == 0:
        forms += [f"{h12}{ampm}", f"{h12} {ampm}", f"{h12} {ampm[0]}.m.",
                  f"{HOUR_WORDS[h12 % 12]} o'clock {part_of_day(hour)}"]
        if hour == 12:
            forms += ["noon", "midday"]
    else:
        forms += [f"{h12}:{minute:02d}{ampm}", f"{h12}:{minute:02d} {ampm}"]
        words = {15: "quarter past", 30: "half past"}.get(minute)
        if words:
            forms.append(f"{words} {HOUR_WORDS[h12 % 12]} {part_of_day(hour)}")
        if minute == 45:
            forms.append(f"quarter to {HOUR_WORDS[(hour + 1) % 12]} {part_of_day(hour)}")
    return rng.choice(forms)


def people_phrase(rng: random.Random, people: list[str]) -> str:
    if len(people) == 1:
        return people[0]
    comma = "," if len(people) > 2 and rng.random() < 0.3 else ""  # the Oxford comma, sometimes
    return ", ".join(people[:-1]) + f"{comma} and {people[-1]}"


def answer(month: int, day: int, hour: int, minute: int, people: list[str]) -> str:
    record = {"date": f"{month:02d}-{day:02d}", "time": f"{hour:02d}:{minute:02d}", "people": sorted(people)}
    return json.dumps(record, separators=(",", ":"))


def example(rng: random.Random, template_ids: list[str]) -> dict:
    template_id = rng.choice(template_ids)
    month = rng.randint(1, 12)
    day = rng.randint(1, DAYS_IN_MONTH[month - 1])
    hour = rng.randint(7, 19)
    minute = rng.choice([0, 0, 0, 15, 30, 30, 45, 10, 20, 40, 50])
    people = rng.sample(NAMES, rng.choice([1, 1, 2, 2, 2, 3, 3, 4]))  # in sentence order, not sorted
    text = TEMPLATES[template_id].format(people=people_phrase(rng, people), date=date_phrase(rng, month, day),
                                         time=time_phrase(rng, hour, minute),
                                         people_and_me=", ".join(people) + " and I",
                                         verb_s="s" if len(people) == 1 else "")
    text = text[0].upper() + text[1:]
    return {
        "messages": [{"role": "user", "content": INSTRUCTION + text},
                     {"role": "assistant", "content": answer(month, day, hour, minute, people)}],
        "template": template_id,
        "held_out": template_id in HELD_OUT_TEMPLATES,
    }


def make_split(rng: random.Random, n: int, template_ids: list[str], exclude: set[str]) -> list[dict]:
    """`n` examples whose sentences are distinct and not in `exclude`."""
    out, seen = [], set(exclude)
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise RuntimeError(f"could not draw {n} distinct sentences")
        record = example(rng, template_ids)
        sentence = record["messages"][0]["content"]
        if sentence not in seen:
            seen.add(sentence)
            out.append(record)
    return out


def make_meeting_data(out: str | Path, n_train: int = 400, n_test: int = 50, seed: int = 0) -> tuple[Path, Path]:
    """Write out/train.jsonl and out/test.jsonl; return their paths.

    Training uses the templates not in HELD_OUT_TEMPLATES; the test set draws half of its
    examples from those and half from the held-out templates."""
    rng = random.Random(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seen_templates = [t for t in TEMPLATES if t not in HELD_OUT_TEMPLATES]
    train = make_split(rng, n_train, seen_templates, set())
    train_sentences = {r["messages"][0]["content"] for r in train}
    n_seen = (n_test + 1) // 2
    test = make_split(rng, n_seen, seen_templates, train_sentences)
    test += make_split(rng, n_test - n_seen, list(HELD_OUT_TEMPLATES), train_sentences)
    rng.shuffle(test)
    paths = out / "train.jsonl", out / "test.jsonl"
    for path, records in zip(paths, (train, test), strict=True):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for train.jsonl and test.jsonl")
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--test", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train, test = make_meeting_data(args.out, args.train, args.test, args.seed)
    print(f"wrote {args.train} examples to {train} and {args.test} to {test}")
    for line in test.read_text(encoding="utf-8").splitlines()[:3]:
        record = json.loads(line)
        print(f"  {record['messages'][0]['content'][len(INSTRUCTION):]}\n    -> {record['messages'][1]['content']}")


if __name__ == "__main__":
    main()
