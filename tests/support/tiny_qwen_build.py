"""Build a tiny Qwen2-architecture causal LM (random weights) and a small byte-level BPE tokenizer
trained on a few sentences, saved the way the hub holds Qwen checkpoints. Run in the mt env:

    .duplex/envs/mt/bin/python tests/support/tiny_qwen_build.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SENTENCES = [
    "hello world this is a test of speech recognition",
    "please turn on the lights in the kitchen",
    "the weather today is sunny and warm",
    "open the door and close the window",
    "Translate the following English text into German. Answer with the translation only.",
    "hallo welt das ist ein test der spracherkennung",
    "bitte schalte das licht in der kueche ein",
]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen's ChatML, shortened: the server's chat path (apply_chat_template) runs as with the real model.
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def build(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(SENTENCES * 4, trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIAL[1:],
                                   model_input_names=["input_ids", "attention_mask"])  # as Qwen2Tokenizer
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                         bos_token_id=None, tie_word_embeddings=False,
                         initializer_range=0.5)  # large random weights: varied words, not one token repeated
    Qwen2ForCausalLM(config).save_pretrained(out, safe_serialization=True)
    for path in out.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; the images read the cache as another user


if __name__ == "__main__":
    build(Path(sys.argv[1]))
