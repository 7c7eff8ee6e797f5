"""Layer 8: the `translation` task: text in one language -> the same text in another.

The prompt names both languages in words, so the template knows only the
languages in LANGUAGES (codes as transformers' `translation_en_to_fr` task
names use them, or the names themselves, any case). Another language is an
error naming these, not a prompt the model cannot read. The reply is one line
(the decoding stops at a newline): a small model that has translated tends to
go on explaining. No repetition penalty: names and numbers must be copied.
"""

from __future__ import annotations

from typing import Any

from llmos.apps.pipelines.base import Pipeline, PipelineError, Reply

LANGUAGES = {
    "en": "English",
    "fr": "French",
    "es": "Spanish",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "zh": "Chinese",
    "ja": "Japanese",
    "ru": "Russian",
}


def language_code(value: str, role: str) -> str:
    """'fr', 'FR' or 'French' -> 'fr'; anything else is an error naming the languages known."""
    key = str(value).strip().lower()
    by_name = {name.lower(): code for code, name in LANGUAGES.items()}
    code = key if key in LANGUAGES else by_name.get(key)
    if code is None:
        known = ", ".join(f"{code} ({name})" for code, name in LANGUAGES.items())
        raise PipelineError(f"translation: the template does not know the {role} language {value!r}; "
                            f"it knows {known}", param="options.src_lang" if role == "source" else "options.tgt_lang")
    return code


class TranslationPipeline(Pipeline):
    """`pipe("The cat sleeps.", src_lang="en", tgt_lang="fr")` -> [{"translation_text": str}]
    (or the task name "translation_en_to_fr"). Languages: see LANGUAGES."""

    task = "translation"
    summary = "translate between the languages of LANGUAGES (src_lang, tgt_lang)"
    output = '[{"translation_text": str}]'
    template = "Translate this {{ source }} text into {{ target }}.\n\n{{ source }}: {{ text }}\n{{ target }}:"
    defaults = {"max_new_tokens": 128, "do_sample": False, "stop_strings": ["\n"]}
    options = {"src_lang": "en", "tgt_lang": None}
    shape = "listed"

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        if options["tgt_lang"] is None:
            raise PipelineError("translation needs a target language: tgt_lang='fr' (or the task "
                                f"'translation_en_to_fr'); known: {', '.join(LANGUAGES)}", param="options.tgt_lang")
        source, target = language_code(options["src_lang"], "source"), language_code(options["tgt_lang"], "target")
        if source == target:
            raise PipelineError(f"translation: the source and target languages are both {LANGUAGES[source]}",
                                param="options.tgt_lang")
        return {**options, "src_lang": source, "tgt_lang": target}

    def variables(self, item: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        return {**options, **item, "source": LANGUAGES[options["src_lang"]], "target": LANGUAGES[options["tgt_lang"]]}

    def parse(self, reply: Reply, item: dict[str, Any], options: dict[str, Any]) -> dict[str, str]:
        lines = [line.strip() for line in reply.text.splitlines() if line.strip()]
        return {"translation_text": lines[0].strip('"“”') if lines else ""}
