"""scan_scene's progress journal (scan-progress.jsonl in the output folder): the scan's
settings, then one line per frame whose outputs are written (appended by the background writer
after that frame's files), then a line when the scan completed. `--resume` reads it to go on
from there; without --resume or --force a folder that holds a scan's outputs is refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from regiond.client.scan_objects import OUTPUTS as OBJECT_OUTPUTS

JOURNAL = "scan-progress.jsonl"
#: what a scan writes into its folder (removed by --force; nothing else is touched)
OUTPUTS = (
    "overlays",
    "labels",
    "labels_color",
    "scene.ply",
    "summary.json",
    "index.html",
    "confusion.png",
    *OBJECT_OUTPUTS,
    JOURNAL,
)


class ProgressError(ValueError):
    """The output folder cannot be used as asked (message says why and what to pass)."""


class Progress:
    """The journal of one scan. `done`: frames whose outputs an earlier run wrote (--resume);
    `complete`: that run finished."""

    def __init__(self, out: Path, settings: dict, done: set[int], complete: bool):
        self.out, self.settings, self.done, self.complete = out, settings, done, complete
        self._fh = None

    @classmethod
    def prepare(cls, out: Path, settings: dict, resume: bool = False, force: bool = False) -> Progress:
        """Check (and with force, clear) the output folder; read the journal when resuming."""
        existing = [n for n in OUTPUTS if (out / n).exists()]
        if existing and not (resume or force):
            raise ProgressError(
                f"{out} already holds a scan's outputs ({', '.join(existing)}): pass --resume to go "
                f"on from the last frame written, or --force to scan again from scratch"
            )
        if force:
            for name in existing:
                p = out / name
                shutil.rmtree(p) if p.is_dir() else p.unlink()
            return cls(out, settings, set(), False)
        journal = out / JOURNAL
        if not resume or not journal.is_file():
            return cls(out, settings, set(), False)
        records = _read(journal)
        before = records[0].get("scan") if records else None
        if before != settings:
            diff = sorted(k for k in set(settings) | set(before or {}) if (before or {}).get(k) != settings.get(k))
            raise ProgressError(
                f"{out} holds a scan with other settings ({', '.join(diff) or 'unreadable journal'}): "
                f"run it with the same ones to resume, or pass --force to scan again"
            )
        done = {int(r["frame"]) for r in records[1:] if isinstance(r.get("frame"), int)}
        return cls(out, settings, done, any(r.get("complete") for r in records[1:]))

    def start(self) -> None:
        """Open the journal for this run (a new one unless resuming an earlier run's)."""
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / JOURNAL
        resuming = bool(self.done) and path.is_file()
        self._fh = open(path, "a" if resuming else "w", encoding="utf-8")
        if not resuming:
            self._write({"scan": self.settings})

    def frame_done(self, idx: int) -> None:
        """Frame idx's outputs are on disk (called on the writer thread, after its files)."""
        if idx not in self.done:
            self.done.add(idx)
            self._write({"frame": int(idx)})

    def finish(self) -> None:
        """The scan's final outputs (labels, cloud, summary) are written."""
        self._write({"complete": True})
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _write(self, record: dict) -> None:
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()


def _read(path: Path) -> list[dict]:
    """The journal's records; a last line cut short by a kill is ignored."""
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out
