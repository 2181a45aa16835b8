"""How heads are trained: TrainConfig, whose fields are `regiond train`'s optimisation flags
(generated from them, regiond.core.flags). Light to import (no torch), so the CLI builds its
parser without loading the models."""

from __future__ import annotations

from dataclasses import dataclass, field

from regiond.core.flags import flag


@dataclass
class TrainConfig:
    """Optimisation settings: AdamW with linear warm-up then cosine decay to 0, early stopping
    on validation loss."""

    epochs: int = field(default=60, metadata=flag("upper bound on passes over the training samples", metavar="N"))
    lr: float = field(default=1e-3, metadata=flag("peak AdamW learning rate (reached after --warmup steps)"))
    weight_decay: float = field(default=0.05, metadata=flag("AdamW weight decay"))
    warmup: int = field(
        default=20, metadata=flag("linear warm-up steps; then cosine decay to 0 over the remaining steps", metavar="N")
    )
    batch_size: int = field(default=8, metadata=flag("samples per step", metavar="N"))
    patience: int = field(
        default=10, metadata=flag("stop after this many epochs without a lower validation loss", metavar="N")
    )
    seed: int = field(default=0, metadata=flag("seeds data order, views and initialisation"))
    max_seconds: float = field(
        default=0.0,
        metadata=flag("stop after the epoch that passes this much training time (0 = no limit)", metavar="S"),
    )
