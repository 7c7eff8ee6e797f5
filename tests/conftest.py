"""Make the shared test helpers in tests/ (e.g. `gguf_tokenizers`) importable from every test folder
(pytest runs in importlib mode, which does not put test directories on sys.path)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
