"""Build a tiny NeMo ASR model of a real family (run inside the asr-nemo env, not by pytest).

    .duplex/envs/asr-nemo/bin/python tests/support/tiny_nemo_build.py OUT

A FastConformer-CTC model (NeMo's EncDecCTCModel with the ConformerEncoder in its FastConformer
shape: depth-wise striding subsampling by 8, relative-position attention, the Parakeet encoder's
family) over a character vocabulary, random weights, made from a config the way NeMo's own
configs build it, then written with `save_to` as one .nemo archive (config + weights), which is
what `ASRModel.restore_from` and the asr server's nemo backend load. Untrained: it transcribes
noise, but it loads, runs and answers exactly like a real checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
CONFIG = {
    "sample_rate": 16000,
    "labels": LABELS,
    "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                     "sample_rate": 16000, "normalize": "per_feature", "window_size": 0.025,
                     "window_stride": 0.01, "window": "hann", "features": 80, "n_fft": 512,
                     "frame_splicing": 1, "dither": 0.0, "pad_to": 0},
    "encoder": {"_target_": "nemo.collections.asr.modules.ConformerEncoder", "feat_in": 80,
                "n_layers": 2, "d_model": 64, "subsampling": "dw_striding", "subsampling_factor": 8,
                "subsampling_conv_channels": 64, "ff_expansion_factor": 2,
                "self_attention_model": "rel_pos", "n_heads": 4, "conv_kernel_size": 9,
                "dropout": 0.0, "dropout_pre_encoder": 0.0, "dropout_emb": 0.0, "dropout_att": 0.0},
    "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": 64,
                "num_classes": len(LABELS), "vocabulary": LABELS},
}


def build(out: Path) -> Path:
    import torch
    from nemo.collections.asr.models import EncDecCTCModel
    from omegaconf import OmegaConf

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1234)
    model = EncDecCTCModel(cfg=OmegaConf.create(CONFIG))
    path = out / "tiny-fastconformer-ctc.nemo"
    model.save_to(str(path))
    return path


if __name__ == "__main__":
    build(Path(sys.argv[1]))
