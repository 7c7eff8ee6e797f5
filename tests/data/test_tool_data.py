"""The data `llmos teach-tools` trains on: what is held out never reaches training, every call
validates against its tool's schema, a seed gives the same data, and a user's tool becomes a family
whose example requests get new argument values."""

from __future__ import annotations

import json
import random
import re

import pytest

from llmos.apps.builtin_tools import calculate
from llmos.data.jsonl import DataError
from llmos.data.tool_catalogue import CATALOGUE, SLOT, family_for_function, load_catalogue
from llmos.data.tool_conversations import CANNOT, ToolData, ToolDataSpec

jsonschema = pytest.importorskip("jsonschema")

ANSWERS = {"What is the capital of Italy?": "The capital of Italy is Rome.", "Hi there!": "Hello! How can I help?"}


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def tool_data(catalogue, seed=0, conversations=300, **spec):
    return ToolData(catalogue.families, catalogue.pools, catalogue.chat,
                    ToolDataSpec(seed=seed, conversations=conversations, **spec), calculate)


def pattern(text: str) -> re.Pattern:
    """A request template as a regex matching every text drawn from it."""
    parts = SLOT.split(text)
    return re.compile("".join(re.escape(part) if i % 2 == 0 else ".+?" for i, part in enumerate(parts)) + "$")


def user_texts(records):
    return [m["content"] for r in records for m in r["messages"] if m["role"] == "user"]


def test_held_out_tools_and_phrasings_never_appear_in_training(catalogue):
    data = tool_data(catalogue)
    records = data.training_records(ANSWERS)
    assert len(records) == 300 and data.new and all(data.test_requests[f.name] for f in data.trained[:5])
    listed = {t["name"] for r in records for t in r.get("tools", [])}
    new_names = {f.name for f in data.new} | {a for f in data.new for a in f.aliases}
    assert listed and not listed & new_names
    texts = user_texts(records)
    held = [pattern(r.text) for f in catalogue.families for r in data.test_requests[f.name]]
    assert len(held) > 40
    assert not [t for t in texts for p in held if p.match(t)]
    assert not set(data.test_chat) & set(texts) and set(ANSWERS) & set(texts)
    items = data.test_items(6)
    other = data.test_items(6, draw="calibration")
    assert {i["split"] for i in items} == {"new phrasings", "new tools"} and other != items
    for item in items + other:  # every test request, of either draw, comes from a held-out phrasing or tool
        text = item["messages"][0]["content"]
        assert text in data.test_chat or any(p.match(text) for p in held)


def test_only_conversations_without_tools_are_learnt_as_the_base_models_distribution(catalogue):
    records = tool_data(catalogue).training_records(ANSWERS)
    plain = [r for r in records if "tools" not in r]
    assert plain and all(r["distill"] is True and r["messages"][-1]["content"] in ANSWERS.values() for r in plain)
    assert not any("distill" in r for r in records if "tools" in r)

def test_every_call_in_the_data_validates_against_its_tool_schema(catalogue):
    data = tool_data(catalogue)
    calls = 0
    for record in data.training_records(ANSWERS):
        schemas = {t["name"]: t["parameters"] for t in record.get("tools", [])}
        for message in record["messages"]:
            for call in message.get("tool_calls") or []:
                jsonschema.validate(json.loads(call["function"]["arguments"]), schemas[call["function"]["name"]])
                calls += 1
    for item in data.test_items(6):
        if item["expected"] is not None:
            schemas = {t["name"]: t["parameters"] for t in item["tools"]}
            jsonschema.validate(item["expected"]["arguments"], schemas[item["expected"]["name"]])
            calls += 1
    assert calls > 250


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data(catalogue):
    first = tool_data(catalogue, seed=3, conversations=40)
    again = tool_data(catalogue, seed=3, conversations=40)
    other = tool_data(catalogue, seed=4, conversations=40)
    assert first.training_records(ANSWERS) == again.training_records(ANSWERS)
    assert first.test_items(2) == again.test_items(2)
    assert first.training_records(ANSWERS) != other.training_records(ANSWERS)


def test_an_example_request_becomes_a_template_with_new_argument_values():
    function = {"name": "book_flight", "description": "Book a flight.", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "description": "where to fly"},
                                         "seats": {"type": "integer", "minimum": 1, "maximum": 9}},
        "required": ["city", "seats"]}}
    family = family_for_function(function, [{"request": "Fly 2 of us to Oslo", "arguments": {"city": "Oslo",
                                                                                            "seats": 2}}])
    assert family.requests[0].text == "Fly {seats} of us to {city}"
    catalogue = load_catalogue()
    drawn = {family.draw(family.requests[0], catalogue.pools, random.Random(seed))[0] for seed in range(8)}
    assert len(drawn) > 4 and all(re.fullmatch(r"Fly [1-9] of us to \w[\w ]*", text) for text in drawn)
    bare = family_for_function(function)  # no examples: requests written from the descriptions
    text, arguments, _ = bare.draw(bare.requests[0], catalogue.pools, random.Random(0))
    assert str(arguments["seats"]) in text and arguments["city"] in text and "where to fly" in text


def test_a_catalogue_parameter_that_yaml_split_at_a_comma_is_refused(tmp_path):
    bad = tmp_path / "tools.yaml"
    bad.write_text("pools: {city: [Oslo]}\nfamilies:\n  - name: f\n    description: d\n    params:\n"
                   "      - {name: city, type: string, description: the city, e.g. Oslo, pool: city}\n"
                   "    requests: [\"In {city}\"]\n")
    with pytest.raises(DataError, match="quote a description that holds a comma"):
        load_catalogue(bad)


def test_the_catalogue_lists_calculate_exactly_as_the_agent_and_server_do(catalogue):
    from llmos.apps.tool_schema import function_schema

    family = next(f for f in catalogue.families if f.name == "calculate")
    assert family.function() == function_schema(calculate)["function"]


def test_a_heavier_family_is_the_needed_tool_more_often(catalogue):
    import dataclasses

    def calls_of(name, families):
        data = ToolData(families, catalogue.pools, catalogue.chat, ToolDataSpec(seed=0, conversations=300), calculate)
        return sum(call["function"]["name"] == name for r in data.training_records(ANSWERS)
                   for m in r["messages"] for call in m.get("tool_calls") or [])

    plain = [dataclasses.replace(f, weight=1) for f in catalogue.families]
    heavy = [dataclasses.replace(f, weight=6 if f.name == "calculate" else 1) for f in catalogue.families]
    assert next(f for f in catalogue.families if f.name == "calculate").weight > 1
    assert calls_of("calculate", heavy) > 3 * calls_of("calculate", plain)


@pytest.mark.parametrize("weight", ["heavy", 2.5, 0])
def test_a_weight_that_is_not_a_whole_number_of_at_least_one_is_refused(tmp_path, weight):
    bad = tmp_path / "tools.yaml"
    bad.write_text("pools: {city: [Oslo]}\nfamilies:\n  - name: f\n    description: d\n    params:\n"
                   "      - {name: city, type: string, pool: city}\n"
                   f"    requests: [\"In {{city}}\"]\n    weight: {weight}\n")
    with pytest.raises(DataError, match=r"family 'f': weight must be a whole number of at least 1"):
        load_catalogue(bad)


REFUSAL = re.compile("|".join(pattern(text.replace("{cannot}", "{x}")).pattern for text in CANNOT))


def refusals(record):
    """[(the refused request, its index)] in a record."""
    messages = record["messages"]
    return [(messages[i - 1]["content"], i) for i, m in enumerate(messages)
            if m["role"] == "assistant" and REFUSAL.match(m.get("content") or "")]


def test_each_refusal_is_followed_by_its_twin_that_lists_the_tool_and_calls_it(catalogue):
    records = tool_data(catalogue, contrast=1.0).training_records(ANSWERS)
    assert len(records) == 300
    twins = 0
    for i, record in enumerate(records[:-3]):
        refused = refusals(record)
        for offset, (request, _) in enumerate(refused, start=1):
            twin = records[i + offset]
            listed, twin_listed = [t["name"] for t in record["tools"]], [t["name"] for t in twin["tools"]]
            (added,) = [name for name in twin_listed if name not in listed]
            assert [name for name in twin_listed if name != added] == listed
            assert twin["messages"][0] == {"role": "user", "content": request}
            assert twin["messages"][1]["tool_calls"][0]["function"]["name"] == added
            twins += 1
    assert twins > 50
    without = tool_data(catalogue).training_records(ANSWERS)
    paired = sum(len(refusals(r)) for r in without[:-3]) and [
        r for i, r in enumerate(without[:-3]) for request, _ in refusals(r)
        if without[i + 1]["messages"][0]["content"] == request]
    assert not paired  # contrast 0 (the default): no twins


def test_a_refused_request_a_general_tool_serves_is_also_trained_as_its_search(catalogue):
    names = {alias: f.name for f in catalogue.families for alias in (f.name, *f.aliases)}
    searched = {f.name: f for f in catalogue.families if f.search}
    phrasings = [(f, pattern(r.text)) for f in searched.values() for r in f.requests]
    assert set(searched) >= {"get_news", "country_info", "define_word"}

    def served(records):
        """[(the refused family, the record that follows its refusal)] where that record repeats the request."""
        found = []
        for i, record in enumerate(records[:-3]):
            following = records[i + 1:i + 4]
            for request, _ in refusals(record):
                family = next((f for f, p in phrasings if p.match(request)), None)
                again = [r for r in following if r["messages"][0]["content"] == request]
                if family is not None and again:
                    found.append((family, again[0]))
        return found

    pairs = served(tool_data(catalogue, served=1.0).training_records(ANSWERS))
    assert len(pairs) > 3
    for family, record in pairs:
        listed = {names[t["name"]] for t in record["tools"]}
        (call,) = record["messages"][1]["tool_calls"]
        assert names[call["function"]["name"]] == "search_web" and "search_web" in listed
        assert not listed & ({family.name, *family.related} - {"search_web"})  # nothing else could serve it
        query = json.loads(call["function"]["arguments"])["query"]
        assert pattern(family.search).match(query)
        fixed = SLOT.sub("", family.search).strip()  # " news": the rest is the request's own words
        assert (query.replace(fixed, "").strip() if fixed else query) in record["messages"][0]["content"]
    assert not served(tool_data(catalogue).training_records(ANSWERS))  # served 0 (the default): none


def test_a_search_that_names_no_parameter_of_its_tool_is_one_clear_error(tmp_path):
    document = CATALOGUE.read_text(encoding="utf-8").replace('search: "{topic} news"', 'search: "{subject} news"')
    path = tmp_path / "catalogue.yaml"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(DataError, match=r"family 'get_news'.*search '\{subject\} news' names \['subject'\]"):
        load_catalogue(path)


def test_related_tools_are_listed_beside_calls_when_asked_and_never_beside_refusals(catalogue):
    names = {alias: f.name for f in catalogue.families for alias in (f.name, *f.aliases)}
    phrasings = [(f, pattern(r.text)) for f in catalogue.families for r in f.requests if isinstance(r.text, str)]

    def related_listed(data, records):
        """(calls listed beside a tool related to theirs, refusals listed beside such a tool)."""
        beside_calls = beside_refusals = 0
        for record in records:
            listed = {names[t["name"]] for t in record.get("tools", [])}
            called = {names[c["function"]["name"]] for m in record["messages"] for c in m.get("tool_calls") or []}
            for name in called:
                family = next(f for f in catalogue.families if f.name == name)
                beside_calls += bool(listed & data._unrelated(family) - called)
            for request, _ in refusals(record):
                families = [f for f, p in phrasings if p.match(request)]
                beside_refusals += all(listed & data._unrelated(f) for f in families)
        return beside_calls, beside_refusals

    data = tool_data(catalogue)
    assert related_listed(data, data.training_records(ANSWERS)) == (0, 0)
    data = tool_data(catalogue, related_beside_calls=1.0)
    beside_calls, beside_refusals = related_listed(data, data.training_records(ANSWERS))
    assert beside_calls > 20 and beside_refusals == 0
