from hf_promptseg.utils.checkpoint_io import load_checkpoint_state_dict
from hf_promptseg.utils.files import atomic_output_dir, read_json

__all__ = ["atomic_output_dir", "load_checkpoint_state_dict", "read_json"]
