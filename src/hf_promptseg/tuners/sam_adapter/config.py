"""`SamAdapterConfig`: the PEFT configuration of SAM-Adapter (per-layer prompts over a frozen SAM image encoder)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from peft.config import PeftConfig

EMBEDDING_LAYOUTS = ("reference", "bhwc")
INIT_WEIGHTS = ("reference", "zero_up")


class SamPeftType(str, enum.Enum):
    """Our own PEFT type: peft's `PeftType` enum is closed, and transformers needs `peft_type.value`."""

    SAM_ADAPTER = "SAM_ADAPTER"


@dataclass
class SamAdapterConfig(PeftConfig):
    """Configuration of a SAM-Adapter (Chen et al., 2023) on transformers' `SamModel` / `SamHQModel`.

    Before every ViT block the adapter adds a prompt `MLP_up(GELU(MLP_tune_i(F_hfc + F_pe)))`, where `F_hfc` is a
    strided conv over the FFT high-pass of the image and `F_pe` a projection of the patch embeddings, both of width
    `C // scale_factor`. The encoder stays frozen; `modules_to_save` (mask decoder and no-mask embedding) train.

    Args:
        scale_factor: adapter width is `hidden_size // scale_factor` (32 in the paper).
        freq_nums: fraction of the spectrum *area* removed as low frequency (a centred square), 0.25 in the paper.
        embedding_layout: `"bhwc"` projects each patch token (new adapters), `"reference"` reproduces the token
            scramble of the released checkpoints (see the docs).
        init_weights: `"reference"` (truncated-normal linears, He-normal conv: prompts are non-zero at step 0) or
            `"zero_up"` (zero up-projection: the adapted model equals the base model at init).
        target_modules: the vision encoder the prompts are injected into.
        modules_to_save: trained and saved with the adapter.

    Example:
        >>> import hf_promptseg
        >>> from peft import get_peft_model
        >>> from transformers import SamConfig, SamModel
        >>> sam = SamModel(SamConfig(vision_config={"hidden_size": 64, "num_hidden_layers": 2,
        ...     "num_attention_heads": 2, "global_attn_indexes": [1]}))
        >>> model = get_peft_model(sam, hf_promptseg.SamAdapterConfig())
    """

    scale_factor: int = field(default=32, metadata={"help": "adapter width = hidden_size // scale_factor"})
    freq_nums: float = field(default=0.25, metadata={"help": "fraction of spectrum area removed (low-pass square)"})
    embedding_layout: str = field(default="bhwc", metadata={"help": "'bhwc' or 'reference' (released checkpoints)"})
    init_weights: str = field(default="reference", metadata={"help": "'reference' or 'zero_up'"})
    target_modules: list[str] | str | None = field(default_factory=lambda: ["vision_encoder"])
    exclude_modules: list[str] | str | None = field(default=None)
    modules_to_save: list[str] | None = field(default_factory=lambda: ["mask_decoder", "no_mask_embed"])
    encoder_hidden_size: int | None = field(default=None, metadata={"help": "recorded at injection; checked on load"})
    encoder_depth: int | None = field(default=None, metadata={"help": "recorded at injection; checked on load"})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = SamPeftType.SAM_ADAPTER
        if self.embedding_layout not in EMBEDDING_LAYOUTS:
            raise ValueError(f"`embedding_layout` must be one of {EMBEDDING_LAYOUTS}, got {self.embedding_layout!r}")
        if self.init_weights not in INIT_WEIGHTS:
            raise ValueError(f"`init_weights` must be one of {INIT_WEIGHTS}, got {self.init_weights!r}")
        if not isinstance(self.scale_factor, int) or self.scale_factor < 1:
            raise ValueError(f"`scale_factor` must be a positive integer, got {self.scale_factor!r}")
        if not 0.0 <= self.freq_nums < 1.0:
            raise ValueError(f"`freq_nums` must be in [0, 1), got {self.freq_nums!r}")
