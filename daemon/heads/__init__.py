"""Heads over region tokens: classifiers and transformers, their training, evaluation and serving.

registry.py   heads built from a name and a config; saved as safetensors + JSON
models.py     the heads themselves (registered on import, below)
batch.py      RegionSets → padded token batches with 2D / 3D / time embeddings
train.py, jobs.py, metrics.py   training and evaluation on token caches
interface.py, serving.py, windows.py   what the daemon serves: scene labels, activity scores
"""

from regiond.heads import architectures  # noqa: F401  (registers the built-in heads before any is built or loaded)
from regiond.heads.registry import LoadedHead, create_head, list_heads, load_head, save_head

__all__ = ["LoadedHead", "create_head", "list_heads", "load_head", "save_head"]
