"""Heads over region tokens: classifiers and transformers, their training, evaluation and serving.

catalogue.py, registry.py   heads registered by name with a config; built, saved as safetensors
                            + JSON and loaded back (registry imports architectures.py, the
                            built-in heads, first)
batch.py                    RegionSets → padded token batches with 2D / 3D / time embeddings
config.py, training.py      training settings (light: `regiond train`'s flags) and the loop
cache_jobs.py, scores.py    training and evaluation on token caches
label_maps.py, predict.py   region scores → per-pixel labels; inference with a loaded head
interface.py, serving.py, windows.py, label_job.py   what the daemon serves: scene labels,
                            activity scores; labelling many scenes

Nothing heavy loads with the package itself (the CLI reads config.py to build its parser): the
names below come from registry.py on first use.
"""

from __future__ import annotations

__all__ = ["LoadedHead", "create_head", "list_heads", "load_head", "save_head"]


def __getattr__(name: str):
    if name in __all__:
        from regiond.heads import registry  # torch: only when a head is built or loaded

        return getattr(registry, name)
    raise AttributeError(f"module 'regiond.heads' has no attribute {name!r}")
