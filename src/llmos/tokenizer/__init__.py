"""Layer 3 (formats): tokenizers with the Hugging Face API, chat templates, and tokenizer training.

`Tokenizer` loads and saves the Hugging Face directory layout (tokenizer.json +
tokenizer_config.json) on top of the `tokenizers` library; `train_tokenizer`
builds a new byte-level BPE, WordPiece or character tokenizer from text.
"""

from llmos.tokenizer.chat_template import CHATML_TEMPLATE, ChatTemplateError
from llmos.tokenizer.encoding import BatchEncoding
from llmos.tokenizer.files import TokenizerFilesError, TokenizerSettings
from llmos.tokenizer.tokenizer import Tokenizer
from llmos.tokenizer.training import (
    TOKENIZER_KINDS,
    TokenizerTrainingError,
    train_tokenizer,
    train_tokenizer_from_files,
)

__all__ = [
    "CHATML_TEMPLATE",
    "TOKENIZER_KINDS",
    "BatchEncoding",
    "ChatTemplateError",
    "Tokenizer",
    "TokenizerFilesError",
    "TokenizerSettings",
    "TokenizerTrainingError",
    "train_tokenizer",
    "train_tokenizer_from_files",
]
