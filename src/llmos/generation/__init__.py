"""Layer 5: decoding (greedy, sampling, beam search, streaming, stop strings, constraints, fill-mask), the one
generation service (`Generator`; its local backend) and the one loader (`load_model`)."""

from llmos.generation.constrained import ConstraintError
from llmos.generation.decode import GenerateOutput
from llmos.generation.fill_mask import fill_mask
from llmos.generation.generate import generate
from llmos.generation.loading import LoadedModel, load_model
from llmos.generation.local import LocalGenerator
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
from llmos.generation.service import Completion, GenerationParams, Generator, StreamEvent
from llmos.generation.stopping import StopStringCriteria
from llmos.generation.streamers import TextIteratorStreamer, TextStreamer
from llmos.generation_config import DEFAULT_MAX_NEW_TOKENS, GenerationConfig, GenerationError

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "Completion",
    "ConstraintError",
    "GenerateOutput",
    "GenerationConfig",
    "GenerationError",
    "GenerationParams",
    "Generator",
    "LoadedModel",
    "LocalGenerator",
    "MinNewTokensProcessor",
    "MinPWarper",
    "NoRepeatNGramProcessor",
    "RepetitionPenaltyProcessor",
    "StopStringCriteria",
    "StreamEvent",
    "TemperatureWarper",
    "TextIteratorStreamer",
    "TextStreamer",
    "TopKWarper",
    "TopPWarper",
    "apply_processors",
    "build_logits_processors",
    "fill_mask",
    "generate",
    "load_model",
]
