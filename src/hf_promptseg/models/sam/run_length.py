"""Moved to `hf_promptseg.utils.run_length` (run-length encoding serves every family)."""

from hf_promptseg.utils.deprecation import moved_names

__getattr__ = moved_names(
    __name__,
    {
        name: "hf_promptseg.utils.run_length"
        for name in ("encode_run_lengths", "decode_run_lengths", "run_lengths_as_lists")
    },
)
