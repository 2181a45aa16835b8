"""SAM's image encoder at the precision FastOptions.encoder names.

"fp32" is the model as loaded (exact). The others trade exactness for speed and are measured
by bench/amg.py (--encoder): "int8" quantises the encoder's linear layers dynamically (int8
weights, activations quantised per batch; CPU), "bf16" and "fp16" run it under autocast
(fp16 on CUDA only). The mask decoder always runs in float32.
"""

from __future__ import annotations

import copy
from collections.abc import Callable


def build_encoder(sam, mode: str = "fp32") -> Callable:
    """A callable: preprocessed 1×3×1024×1024 image → float32 image embedding."""
    import torch  # heavy: with the model

    encoder = sam.image_encoder
    if mode == "fp32":
        return encoder
    if mode == "int8":
        if sam.device.type != "cpu":
            raise ValueError("encoder int8 (dynamic quantisation) runs on the CPU only")
        from torch.ao.quantization import quantize_dynamic  # heavy: only for this mode

        return quantize_dynamic(copy.deepcopy(encoder), {torch.nn.Linear}, dtype=torch.qint8)
    if mode in ("bf16", "fp16"):
        device = sam.device.type
        if mode == "fp16" and device != "cuda":
            raise ValueError("encoder fp16 needs a CUDA device; on the CPU use bf16")
        dtype = torch.bfloat16 if mode == "bf16" else torch.float16

        def run(x):
            with torch.autocast(device, dtype=dtype):
                return encoder(x).float()

        return run
    raise ValueError(f"unknown encoder mode {mode!r}")
