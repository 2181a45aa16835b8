"""Reading the small JSON documents regiond writes beside its data (head configs, token-cache
manifests): bytes that are not what was written give an InputError naming the file and the
key, never a KeyError or a TypeError from deep inside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from regiond.core.errors import InputError


def read_json_object(path: str | Path, field: str) -> dict:
    """The JSON object in `path`; InputError(field, ...) when it is not one."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(field, f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except (json.JSONDecodeError, RecursionError) as e:
        raise InputError(field, f"{path}: not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise InputError(field, f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc


def need(doc: dict, key: str, kind: type | tuple[type, ...], where: str | Path, field: str) -> Any:
    """doc[key], which must be of `kind`; InputError(field, ...) naming the file and key."""
    value = doc.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InputError(field, f"{where}: {key!r} must be a {want}, got {type(value).__name__}")
    return value
