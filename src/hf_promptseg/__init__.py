"""hf_promptseg: promptable segmentation (SAM, SAM-Adapter, DINOv) on the Hugging Face stack.

Importing the package registers its classes with transformers' Auto classes and pipelines (and with PEFT), so that
directories and Hub repos written by hf_promptseg load through the standard `from_pretrained` / `pipeline` entry
points.
"""

from hf_promptseg._registration import register_all

__version__ = "0.1.0.dev0"

register_all()

from hf_promptseg.tuners import SamAdapterConfig  # noqa: E402

__all__ = ["SamAdapterConfig", "__version__", "register_all"]
