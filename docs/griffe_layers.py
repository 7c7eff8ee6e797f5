"""A griffe extension for the API pages (mkdocs.yml names it): module docstrings open with the
module's layer ("Layer 4: the Auto* API: ..."), a note for developers that says where the module sits
in docs/architecture (layers import only downward; `lint-imports` checks them). Readers of the
reference do not need it, so the rendered page starts at the module's job ("The Auto* API: ...").
The source keeps the note; only the rendered docstring loses it.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

LAYER_NOTE = re.compile(r"\ALayer \d+[a-z]?(?: \([^)]*\))?: ")


def without_layer_note(text: str) -> str:
    """`text` without a leading "Layer N: " (or "Layer 8b: ", "Layer 9 (cli): "), its first letter raised."""
    rest = LAYER_NOTE.sub("", text, count=1)
    if rest is text or not rest:
        return text
    return rest[0].upper() + rest[1:]


class DropLayerNotes(griffe.Extension):
    def on_module_instance(self, *, mod: griffe.Module, **kwargs: Any) -> None:
        if mod.docstring is not None:
            mod.docstring.value = without_layer_note(mod.docstring.value)
