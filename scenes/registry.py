"""`open_source(spec)`: one entry point for every kind of frame source.

Each kind registers a matcher and an opener; the first match wins, in registration order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from regiond.core.errors import InputError
from regiond.scenes.source import Sampling, Source, SourceError


@dataclass(frozen=True)
class SourceKind:
    name: str
    matches: Callable[[str], bool]  # spec → is it this kind?
    open: Callable[..., Source]  # (spec, sampling, **opts) → Source
    help: str


KINDS: list[SourceKind] = []


def register(kind: SourceKind) -> None:
    KINDS.append(kind)


def _prefixed(prefix: str):
    return lambda spec: spec.startswith(prefix)


def _suffix(*suffixes: str):
    return lambda spec: Path(spec).suffix.lower() in suffixes


def _folder_with(test: Callable[[Path], bool]):
    return lambda spec: Path(spec).is_dir() and test(Path(spec))


def _int_after(spec: str, prefix: str, what: str) -> int:
    tail = spec[len(prefix) :]
    try:
        return int(tail)
    except ValueError:
        raise InputError("source", f"{spec!r}: expected {prefix}{what} with an integer {what}") from None


def _open_sens(spec, sampling, **opts):
    from regiond.scenes.sens import SensSource  # lazy: only when this kind of source is opened

    return SensSource(spec, sampling, **opts)


def _open_scannet(spec, sampling, **opts):
    from regiond.scenes.folders import ScanNetFolderSource  # lazy: only when this kind of source is opened

    return ScanNetFolderSource(spec, sampling, **opts)


def _open_7scenes(spec, sampling, **opts):
    from regiond.scenes.folders import SevenScenesSource  # lazy: only when this kind of source is opened

    return SevenScenesSource(spec, sampling, **opts)


def _open_video(spec, sampling, **opts):
    from regiond.scenes.video import VideoSource  # lazy: only when this kind of source is opened

    return VideoSource(spec, sampling, **opts)


def _open_camera(spec, sampling, **opts):
    from regiond.scenes.video import CameraSource  # lazy: only when this kind of source is opened

    return CameraSource(_int_after(spec, "camera:", "N"), sampling, **opts)


def _open_synthetic(spec, sampling, **opts):
    from regiond.scenes.synthetic.rgbd import SyntheticSource  # lazy: only when this kind of source is opened

    return SyntheticSource(_int_after(spec, "synthetic:", "SEED"), sampling, **opts)


def _video_suffixes():
    from regiond.scenes.video import VIDEO_SUFFIXES  # lazy: only when a spec is matched against the video kind

    return VIDEO_SUFFIXES


register(
    SourceKind(
        "synthetic",
        _prefixed("synthetic:"),
        _open_synthetic,
        "synthetic:SEED — a generated room rendered on the fly (options: frames, width, height)",
    )
)
register(SourceKind("camera", _prefixed("camera:"), _open_camera, "camera:N — OpenCV capture device N"))
register(SourceKind("sens", _suffix(".sens"), _open_sens, "a ScanNet .sens file (version 4)"))
register(
    SourceKind(
        "scannet-folder",
        _folder_with(lambda p: (p / "depth").is_dir() and (p / "color").is_dir()),
        _open_scannet,
        "a ScanNet exported folder (color/ depth/ pose/ intrinsic/ [label-filt/]); option labels_tsv",
    )
)
register(
    SourceKind(
        "7scenes-folder",
        _folder_with(lambda p: any(p.glob("frame-*.depth.png")) or any(p.glob("seq-*"))),
        _open_7scenes,
        "a 7-Scenes-style folder (frame-NNNNNN.color.png/.depth.png/.pose.txt)",
    )
)
register(
    SourceKind(
        "video", lambda spec: _suffix(*_video_suffixes())(spec), _open_video, "a video file (.mp4 .avi .mov .mkv ...)"
    )
)


def open_source(
    spec,
    every: int = 1,
    count: int | None = None,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    skip_bad_frames: bool = False,
    instances: bool = True,
    **opts,
) -> Source:
    """Open a frame source.

    spec        a .sens file, a ScanNet exported folder, a 7-Scenes-style folder, a video
                file, `camera:N` or `synthetic:SEED`
    every, count, max_frames, size  sampling (see regiond.scenes.source.Sampling)
    skip_bad_frames  report (source.skipped) and leave out frames that cannot be read, instead
                of raising SourceError at the first
    instances   False: frames without object instance maps (meta["instances"]), which are
                then not read (see Sampling)
    opts        options of that kind (labels_tsv, depth_shift for folders; frames, width,
                height for synthetic)

    Returns a Source: iterate it for Frames; len() when the length is known; describe().
    Raises InputError (SourceError) naming what is wrong.
    """
    spec = str(spec)
    sampling = Sampling(
        every=every,
        count=count,
        max_frames=max_frames,
        size=tuple(size) if size else None,
        skip_bad=bool(skip_bad_frames),
        instances=bool(instances),
    )
    for kind in KINDS:
        if kind.matches(spec):
            try:
                return kind.open(spec, sampling, **opts)
            except TypeError as e:
                if "unexpected keyword" in str(e):
                    raise InputError("options", f"{kind.name} source does not take {sorted(opts)}: {e}") from None
                raise
    if Path(spec).exists():
        raise SourceError(f"{spec}: not a known source kind (expected {', '.join(k.name for k in KINDS)})")
    raise SourceError(f"{spec}: no such file or folder (and not camera:N or synthetic:SEED)")


def kinds_help() -> str:
    """One line per source kind, for --help texts."""
    return "\n".join(f"  {k.help}" for k in KINDS)


def is_generated(spec) -> bool | None:
    """Whether a source (as a token cache records it) is data regiond's generator made:
    `synthetic:SEED`, a folder or .sens file `regiond synth scene` wrote (its regiond-scene.json,
    or FILE.sens.json), a video of a folder `regiond synth clips` wrote (regiond-clips.json
    beside its labels.csv). None when it cannot be told: the path is gone."""
    import json

    from regiond.scenes.folders import SCENE_META
    from regiond.scenes.synthetic.clips import CLIPS_FORMAT, CLIPS_META
    from regiond.scenes.synthetic.rgbd import SCENE_FORMAT

    spec = str(spec)
    if spec.startswith("synthetic:"):
        return True
    p = Path(spec)
    if not p.exists():
        return None
    marks = [p / SCENE_META, p.with_name(p.name + ".json"), p.parent / CLIPS_META, p.parent.parent / CLIPS_META]
    for m in marks:
        if m.is_file():
            try:
                doc = json.loads(m.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("format") in (SCENE_FORMAT, CLIPS_FORMAT):
                return True
    return False
