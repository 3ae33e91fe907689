from hf_promptseg.utils.checkpoint_io import load_checkpoint_state_dict
from hf_promptseg.utils.files import (
    CorruptFileError,
    MissingFileError,
    atomic_output_dir,
    read_json,
    recover_output_dir,
)

__all__ = [
    "CorruptFileError",
    "MissingFileError",
    "atomic_output_dir",
    "load_checkpoint_state_dict",
    "read_json",
    "recover_output_dir",
]
