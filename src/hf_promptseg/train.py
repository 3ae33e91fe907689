"""Moved to `hf_promptseg.commands.train`; `python -m hf_promptseg.train` still runs it, with a warning.

The new spellings are `hf-promptseg train ...` and `accelerate launch -m hf_promptseg train ...`.
"""

import sys
import warnings

from hf_promptseg.utils.deprecation import moved_names

_NAMES = ("ARGUMENT_CLASSES", "main", "parse_train_arguments", "read_config_file")
__getattr__ = moved_names(__name__, {name: "hf_promptseg.commands.train" for name in _NAMES})

if __name__ == "__main__":
    warnings.warn(
        "`python -m hf_promptseg.train` moved to `python -m hf_promptseg train` (or `hf-promptseg train`)",
        FutureWarning,
        stacklevel=1,
    )
    from hf_promptseg.commands.train import main

    sys.exit(main())
