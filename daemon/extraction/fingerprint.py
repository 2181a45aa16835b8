"""Which weights a model was loaded from, by content, and the user's cache directory.

A checkpoint is identified by the sha256 of the whole file, computed once and memoised per
path by size and modification time (<user cache>/checkpoints.json). Hashing only the first
and last megabyte plus size and mtime would be cheaper on the first start, but it cannot tell
two fine-tuned checkpoints of the same size apart once the mtime is restored (a copy with
`cp -p`, an rsync, an unpacked archive); the full hash costs about a second per 350 MB once
(the first start of a profile, beside a minute of normaliser fitting) and nothing after.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from regiond.core.atomic_files import write_atomic

log = logging.getLogger(__name__)

MEMO_NAME = "checkpoints.json"
CHUNK = 1 << 20


def user_cache_dir() -> Path:
    """Where regiond keeps what it can recompute: $XDG_CACHE_HOME/regiond, else ~/.cache/regiond."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "regiond"


def file_sha256(path: str | Path, cache_dir: Path | None = None) -> str:
    """ "sha256:<hex>" of the file's bytes, memoised in cache_dir (default user_cache_dir())
    under its resolved path, size and mtime: a file that changed in any of them is hashed
    again. A memo that cannot be read or written only costs the hash."""
    path = Path(path).resolve()
    st = path.stat()
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    memo_path = (cache_dir or user_cache_dir()) / MEMO_NAME
    memo = _read_memo(memo_path)
    known = memo.get(str(path))
    if isinstance(known, dict) and all(known.get(k) == v for k, v in stamp.items()) and "sha256" in known:
        return str(known["sha256"])
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    digest = "sha256:" + h.hexdigest()
    memo[str(path)] = {**stamp, "sha256": digest}
    try:
        write_atomic(memo_path, json.dumps(memo, indent=1, sort_keys=True).encode())
    except OSError as e:
        log.warning("cannot remember the checkpoint digest in %s (%s); it is computed again next time", memo_path, e)
    return digest


def _read_memo(path: Path) -> dict:
    try:
        memo = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("%s is unreadable (%s); hashing the checkpoint again", path, e)
        return {}
    return memo if isinstance(memo, dict) else {}
