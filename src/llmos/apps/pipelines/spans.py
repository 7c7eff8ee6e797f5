"""Layer 8: the short spans of a text that an answer may be: what keeps QA and quiz answers in the text.

Question answering and quiz answers are decoded under a grammar built from
these spans, so an answer is always a literal piece of the given text (as an
extractive reader's is), never an invention. A span is 1..`max_words`
consecutive words inside one clause (no span runs past a full stop, comma,
colon or semicolon, so "Leeds, and I work in York" is not an answer),
copied with the text's own spacing, with the punctuation at its edges trimmed. Spans that begin or end with a
function word ("the", "of", "is"...) are left out: they are never better
answers than the span without that word, and leaving them out cuts the choices
by more than half, so a small model cannot stop at "the".
"""

from __future__ import annotations

import re

EDGE_WORDS = frozenset(
    "a an the and or but of to in on at by for with from as into than that this these those which who whom whose "
    "is are was were be been being it its has have had do does did not no so if then there their they he she we "
    "you i his her our your my me him them us".split())
MAX_SPANS = 4000  # past this many choices the grammar takes longer to build than the answer to decode
# a clause: up to . ! ? ; : , or a line end, except inside numbers and words (6,400  3.5  10:30  U.S.)
_CLAUSE = re.compile(r"(?:[^.!?;:,\n]|[.,:](?=\S))+")
_WORD = re.compile(r"\S+")
_TRIM = "\"'()[]{},.;:!?“”‘’«»"


def text_spans(text: str, max_words: int = 6) -> list[str]:
    """The distinct candidate spans of `text` (see the module docstring), in the order they first occur."""
    spans: dict[str, None] = {}
    for clause in _CLAUSE.finditer(text):
        words = [(m.start() + clause.start(), m.end() + clause.start(), m.group().strip(_TRIM))
                 for m in _WORD.finditer(clause.group())]
        for i, (start, _, first) in enumerate(words):
            if not first or first.lower() in EDGE_WORDS:
                continue
            for end_word in words[i:i + max_words]:
                last = end_word[2]
                if not last or last.lower() in EDGE_WORDS:
                    continue
                span = text[start:end_word[1]].strip(_TRIM)
                if span:
                    spans.setdefault(span)
    return list(spans)
