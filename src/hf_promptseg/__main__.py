"""`python -m hf_promptseg COMMAND ...` (and `accelerate launch -m hf_promptseg train ...`): the `hf-promptseg` CLI."""

import sys

from hf_promptseg.cli import main

sys.exit(main())
