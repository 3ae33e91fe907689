import torch
from transformers import SamConfig, SamModel

from hf_promptseg.utils.random_weights import variance_preserving_init

TINY = SamConfig(
    vision_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 64,
                   "global_attn_indexes": [0], "output_channels": 32, "mlp_dim": 64, "num_pos_feats": 16},
    prompt_encoder_config={"hidden_size": 32, "image_size": 64, "mask_input_channels": 4},
    mask_decoder_config={"hidden_size": 32, "mlp_dim": 64, "num_attention_heads": 4},
)  # fmt: skip


def test_weights_scale_with_fan_in_and_the_seed_reproduces_them():
    model = variance_preserving_init(SamModel(TINY), seed=3)
    weight = model.vision_encoder.layers[0].mlp.lin1.weight
    assert abs(weight.std().item() * weight.shape[1] ** 0.5 - 1.0) < 0.1
    assert 0.5 < model.shared_image_embedding.positional_embedding.std().item() < 1.5  # 32 draws of N(0, 1)
    again = variance_preserving_init(SamModel(TINY), seed=3)
    assert torch.equal(weight, again.vision_encoder.layers[0].mlp.lin1.weight)
    assert not model.training
