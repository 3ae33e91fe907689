"""`SamAdapterConfig`: the PEFT configuration of SAM-Adapter (per-block prompts over a frozen SAM / SAM2 encoder)."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field

from peft.config import PeftConfig

from hf_promptseg.utils.validation import check_positive_int, check_threshold

EMBEDDING_LAYOUTS = ("reference", "bhwc")
INIT_WEIGHTS = ("reference", "zero_up")
ENCODER_TYPES = ("sam_vit", "sam2_hiera")


def _strings(value: object) -> bool:
    return isinstance(value, (list, tuple, set)) and all(isinstance(item, str) for item in value)


class SamPeftType(str, enum.Enum):
    """Our own PEFT type: peft's `PeftType` enum is closed, and transformers needs `peft_type.value`."""

    SAM_ADAPTER = "SAM_ADAPTER"


@dataclass
class SamAdapterConfig(PeftConfig):
    """Configuration of a SAM-Adapter (Chen et al., 2023) on transformers' SAM, SAM-HQ or SAM2 models.

    Before every encoder block the adapter adds a prompt `MLP_up(GELU(MLP_tune_i(F_hfc + F_pe)))`, where `F_hfc` is a
    strided conv over the FFT high-pass of the image and `F_pe` a projection of the patch embeddings. The encoder
    stays frozen; `modules_to_save` train with the adapter. The encoder kind is detected when the adapter is injected
    and recorded here (`encoder_type`, widths, block counts), so a saved adapter refuses a base it was not made for.

    - `"sam_vit"` (`SamModel`, `SamHQModel`): one task feature of width `C // scale_factor` at the ViT's token grid,
      one `MLP_tune_i` per layer and one `MLP_up` shared by all layers.
    - `"sam2_hiera"` (`Sam2Model`): Hiera halves the grid and doubles the width from stage to stage, so each block
      gets its prompt at the width and grid of the tokens *entering* it (a stage-opening, q-pooling block still
      consumes the previous stage's tokens). Per input stage `g` (width `C_g`, adapter width `c_g = C_g //
      scale_factor`) there is one task feature `F_g`: a conv with the patch embedding's kernel/stride/padding over
      the high-pass image plus a linear projection of the patch tokens, average-pooled with Hiera's query strides
      down to stage `g`'s grid; one `MLP_up` (`c_g -> C_g`) is shared by the blocks of that stage, each block has
      its own `MLP_tune_i` (`c_g -> c_g`). See `layer_hiera.Sam2HieraAdapterLayer`.

    Args:
        scale_factor: adapter width is `width // scale_factor` (32 in the paper); per stage for SAM2.
        freq_nums: fraction of the spectrum *area* removed as low frequency (a centred square), 0.25 in the paper.
        embedding_layout: `"bhwc"` projects each patch token (new adapters), `"reference"` reproduces the token
            scramble of the released SAM (ViT) checkpoints (see the docs); SAM2 accepts only `"bhwc"`.
        init_weights: `"reference"` (truncated-normal linears, He-normal conv: prompts are non-zero at step 0) or
            `"zero_up"` (zero up-projections: the adapted model equals the base model at init).
        target_modules: the vision encoder the prompts are injected into.
        modules_to_save: trained and saved with the adapter. `None` picks the base's default at injection: SAM
            `["mask_decoder", "no_mask_embed"]`; SAM2 adds `"not_a_point_embed"` (prompt-free SAM2 decodes from two
            not-a-point sparse tokens). SAM2's `no_memory_embedding` stays frozen: it is a constant per-channel
            offset on the same feature map that `no_mask_embed` offsets, so training the latter covers it. Pass
            `[]` for none.
        encoder_type, encoder_hidden_size, encoder_depth, encoder_stage_widths, encoder_stage_depths: recorded at
            injection (`None` before), checked when the adapter is loaded onto a base.

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
    modules_to_save: list[str] | None = field(default=None, metadata={"help": "None: the base's defaults"})
    encoder_type: str | None = field(default=None, metadata={"help": "'sam_vit' or 'sam2_hiera'; set at injection"})
    encoder_hidden_size: int | None = field(default=None, metadata={"help": "recorded at injection; checked on load"})
    encoder_depth: int | None = field(default=None, metadata={"help": "recorded at injection; checked on load"})
    encoder_stage_widths: list[int] | None = field(default=None, metadata={"help": "recorded at injection"})
    encoder_stage_depths: list[int] | None = field(default=None, metadata={"help": "recorded at injection"})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = SamPeftType.SAM_ADAPTER
        if self.embedding_layout not in EMBEDDING_LAYOUTS:
            raise ValueError(f"`embedding_layout` must be one of {EMBEDDING_LAYOUTS}, got {self.embedding_layout!r}")
        if self.init_weights not in INIT_WEIGHTS:
            raise ValueError(f"`init_weights` must be one of {INIT_WEIGHTS}, got {self.init_weights!r}")
        check_positive_int(self.scale_factor, "scale_factor")
        check_threshold(self.freq_nums, "freq_nums", 0.0, 1.0, high_inclusive=False)
        for name in ("target_modules", "exclude_modules"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str) and not _strings(value):
                raise TypeError(f"`{name}` must be a module name, a list of names or None, got {value!r}")
        if self.modules_to_save is not None and (
            isinstance(self.modules_to_save, str) or not _strings(self.modules_to_save)
        ):
            raise TypeError(f"`modules_to_save` must be a list of module names or None, got {self.modules_to_save!r}")
        for name in ("encoder_hidden_size", "encoder_depth"):
            check_positive_int(getattr(self, name), name, allow_none=True)
        if self.encoder_type is not None and self.encoder_type not in ENCODER_TYPES:
            raise ValueError(f"`encoder_type` must be one of {ENCODER_TYPES} or None, got {self.encoder_type!r}")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str, subfolder: str | None = None, **kwargs):
        """PEFT's loader, after checking a local adapter directory's files (`check_adapter_dir`).

        `PeftModel.from_pretrained` and `PeftModel.load_adapter` read a SAM-Adapter's config through this method,
        so a missing, truncated or foreign weights file is reported by name before PEFT opens it; the directory is
        kept on the config for the tuner, which compares the weights' shapes with the base model.
        """
        from hf_promptseg.models.sam_adapter.loading import SOURCE_ATTRIBUTE, check_adapter_dir

        path = os.path.join(pretrained_model_name_or_path, subfolder or "")
        if not os.path.isdir(path):
            return super().from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)
        check_adapter_dir(path)
        config = super().from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)
        setattr(config, SOURCE_ATTRIBUTE, path)  # the tuner compares these weights with the base (not a field)
        return config
