"""Build a tiny moshi checkpoint of the real architecture (run inside the moshi env, not by pytest).

    PYTHONPATH=third_party/moshi .duplex/envs/moshi/bin/python tests/support/tiny_moshi_build.py OUT

Writes what a Kyutai moshi repo holds, under the names moshi's loaders look for, plus the
config.json newer repos carry (moshi.models.loaders.CheckpointInfo.from_hf_repo reads it):

    config.json                                    the LM config (small), and the file names below
    model.safetensors                              LMModel weights (random, bf16)
    tokenizer-e351c8d8-checkpoint125.safetensors   Mimi weights (random, small Mimi config)
    mimi_config.json                               that Mimi config (24 kHz, 12.5 Hz frames)
    tokenizer_spm_32k_3.model                      a SentencePiece tokenizer trained on a few sentences

Only the sizes are small: the SEANet ratios, the 24 kHz / 12.5 Hz framing, the split residual
quantizer, the streaming transformers, the depformer and the 8 + 8 audio codebooks with their
delays are moshi's own, so the server streams exactly as it does with the 7B weights.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SENTENCES = [
    "hello how are you today",
    "i am fine thank you and you",
    "what would you like to talk about",
    "the weather is sunny and warm",
    "please turn on the lights in the kitchen",
    "open the door and close the window",
    "this is a test of a speech to speech model",
    "moshi listens and speaks at the same time",
    "one two three four five six seven eight nine ten",
    "good morning good evening good night",
]

CARD = 64  # audio codebook size (Mimi bins); the LM's `card`
MIMI = {
    "sample_rate": 24000, "channels": 1, "frame_rate": 12.5,
    "seanet": {"channels": 1, "dimension": 32, "causal": True, "n_filters": 4, "n_residual_layers": 1,
               "activation": "ELU", "compress": 2, "dilation_base": 2, "disable_norm_outer_blocks": 0,
               "kernel_size": 7, "residual_kernel_size": 3, "last_kernel_size": 3, "norm": "none",
               "pad_mode": "constant", "ratios": [8, 6, 5, 4], "true_skip": True},
    "quantizer": {"dimension": 16, "n_q": 8, "bins": CARD, "input_dimension": 32, "output_dimension": 32},
    "transformer": {"d_model": 32, "num_heads": 2, "num_layers": 1, "causal": True, "layer_scale": 0.01,
                    "context": 250, "conv_layout": True, "max_period": 10000, "gating": "none",
                    "norm": "layer_norm", "positional_embedding": "rope", "dim_feedforward": 64,
                    "input_dimension": 32, "output_dimensions": [32]},
}
LM = {
    "dim": 64, "existing_text_padding_id": 3, "n_q": 16, "dep_q": 8, "card": CARD,
    "num_heads": 4, "num_layers": 2, "hidden_scale": 2, "causal": True, "layer_scale": None,
    "context": 250, "max_period": 10000, "gating": "silu", "norm": "rms_norm_f32",
    "positional_embedding": "rope", "depformer_dim": 32, "depformer_dim_feedforward": 64,
    "depformer_num_heads": 2, "depformer_num_layers": 1, "depformer_layer_scale": None,
    "depformer_multi_linear": True, "depformer_context": 8, "depformer_max_period": 10000,
    "depformer_gating": "silu", "depformer_pos_emb": "none", "depformer_weights_per_step": True,
    "delays": [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
}


def build(out: Path) -> None:
    import sentencepiece as spm
    import torch
    from moshi.models import loaders
    from moshi.models.lm import LMModel
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1234)
    # Text tokenizer: moshi treats id 0 as end-padding and 3 as padding (never shown as text).
    prefix = out / "tokenizer_spm_32k_3"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES), model_prefix=str(prefix), vocab_size=80,
        model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
        unk_id=0, bos_id=1, eos_id=2, pad_id=3, minloglevel=2, num_threads=1)
    (out / "tokenizer_spm_32k_3.vocab").unlink()
    text_card = spm.SentencePieceProcessor(str(prefix) + ".model").get_piece_size()

    mimi = loaders.get_mimi(None, MIMI, device="cpu", num_codebooks=8)
    save_file({k: v.detach().clone().contiguous() for k, v in mimi.state_dict().items()},
              str(out / loaders.MIMI_NAME))
    (out / "mimi_config.json").write_text(json.dumps(MIMI, indent=1))

    lm = LMModel(device="cpu", dtype=torch.bfloat16, text_card=text_card, **LM)
    save_file({k: v.detach().clone().contiguous() for k, v in lm.state_dict().items()},
              str(out / loaders.MOSHI_NAME))
    config = {**LM, "text_card": text_card, "model_type": "moshi",
              "moshi_name": loaders.MOSHI_NAME, "mimi_name": loaders.MIMI_NAME,
              "mimi_config_name": "mimi_config.json", "tokenizer_name": loaders.TEXT_TOKENIZER_NAME}
    (out / "config.json").write_text(json.dumps(config, indent=1))


if __name__ == "__main__":
    build(Path(sys.argv[1]))
