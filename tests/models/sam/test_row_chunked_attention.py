import pytest
import torch
from transformers import SamConfig, SamModel

from hf_promptseg.models.sam.row_chunked_attention import row_chunked_vision_attention


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_row_chunked_global_attention_gives_the_same_embeddings(implementation):
    torch.manual_seed(0)
    config = SamConfig(vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                      "mlp_dim": 64, "image_size": 512, "patch_size": 16, "window_size": 7,
                                      "global_attn_indexes": [1], "output_channels": 32, "num_pos_feats": 16})  # fmt: skip
    config._attn_implementation = implementation
    model = SamModel(config).eval()
    with torch.no_grad():
        for name, param in model.vision_encoder.named_parameters():
            if "rel_pos" in name:
                param.normal_(0, 0.5)  # zero-initialised tables would hide a wrong relative-position bias
        pixel_values = torch.randn(1, 3, 512, 512)
        reference = model.get_image_embeddings(pixel_values)
        with row_chunked_vision_attention(model, rows=5):  # 32 rows in chunks of 5: uneven last chunk
            chunked = model.get_image_embeddings(pixel_values)
        restored = model.get_image_embeddings(pixel_values)
    torch.testing.assert_close(chunked, reference, atol=1e-5, rtol=1e-5)
    assert torch.equal(restored, reference)  # the patch is undone on exit
