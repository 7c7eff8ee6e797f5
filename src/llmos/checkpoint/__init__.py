"""Layer 3: checkpoint directories: safetensors save/load, Hugging Face import and export."""

from llmos.checkpoint.hf_config import HF_FAMILIES, HFConversionError, config_from_hf, config_to_hf
from llmos.checkpoint.hf_export import export_hf
from llmos.checkpoint.pretrained import LoadingInfo, load_pretrained, read_config, save_pretrained
from llmos.checkpoint.safetensors_io import CheckpointError, LazyStateDict, write_state_dict

__all__ = [
    "HF_FAMILIES",
    "CheckpointError",
    "HFConversionError",
    "LazyStateDict",
    "LoadingInfo",
    "config_from_hf",
    "config_to_hf",
    "export_hf",
    "load_pretrained",
    "read_config",
    "save_pretrained",
    "write_state_dict",
]
