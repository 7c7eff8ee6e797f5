"""Layer 5: decoding: greedy, sampling, beam search, streaming, stop strings, constraints, fill-mask."""

from llmos.generation.constrained import ConstraintError
from llmos.generation.decode import GenerateOutput
from llmos.generation.fill_mask import fill_mask
from llmos.generation.generate import generate
from llmos.generation.logits_process import (
    MinNewTokensProcessor,
    MinPWarper,
    NoRepeatNGramProcessor,
    RepetitionPenaltyProcessor,
    TemperatureWarper,
    TopKWarper,
    TopPWarper,
    apply_processors,
    build_logits_processors,
)
from llmos.generation.stopping import StopStringCriteria
from llmos.generation.streamers import TextIteratorStreamer, TextStreamer
from llmos.generation_config import DEFAULT_MAX_NEW_TOKENS, GenerationConfig, GenerationError

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "ConstraintError",
    "GenerateOutput",
    "GenerationConfig",
    "GenerationError",
    "MinNewTokensProcessor",
    "MinPWarper",
    "NoRepeatNGramProcessor",
    "RepetitionPenaltyProcessor",
    "StopStringCriteria",
    "TemperatureWarper",
    "TextIteratorStreamer",
    "TextStreamer",
    "TopKWarper",
    "TopPWarper",
    "apply_processors",
    "build_logits_processors",
    "fill_mask",
    "generate",
]
