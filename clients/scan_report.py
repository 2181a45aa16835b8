"""scan_scene's report page: `index.html` beside the outputs it shows.

The summary (frames, regions, points, time), the mIoU and per-class IoU when the scene has
ground truth, a strip of overlays with their colour label pictures, and the confusion matrix.
Pictures are linked by relative paths, styles are inline: the folder can be moved, zipped or
opened offline (no external scripts, fonts or styles).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from regiond.api.v1 import regions_pb2 as pb
from regiond.client.scan_outputs import OVERLAY_SUFFIX
from regiond.core.confusion import Confusion
from regiond.core.label_spaces import BENCHMARK_NAMES, BENCHMARK_NYU40
from regiond.core.viz import label_colours

STRIP_FRAMES = 12  # frames shown in the strip (evenly spread over the pictured ones)

STYLE = """body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}
td.num{text-align:right;font-variant-numeric:tabular-nums}.sw{display:inline-block;width:.9em;height:.9em;
border:1px solid #666;vertical-align:middle;margin-right:.4em}.strip{display:flex;gap:10px;overflow-x:auto;
padding-bottom:8px}figure{margin:0;flex:none}figure img{display:block;width:320px;margin-bottom:4px}
figcaption{font-size:12px;color:#555}code{background:#f3f3f3;padding:1px 4px}
.note{background:#fff4d6;border-left:4px solid #e0a800;padding:.5em .8em;max-width:60em}"""


def confusion_picture(out: Path, conf: Confusion) -> Path:
    """confusion.png of ScanNet-20 counts (truth × prediction, last column "not a class")."""
    title = "ScanNet 20-class confusion (row-normalised)"
    return conf.save_png(out / "confusion.png", title, colours=label_colours()[list(conf.class_ids)])


def strip_frames(out: Path, count: int = STRIP_FRAMES) -> list[str]:
    """Frame numbers (NNNNNN) of up to `count` pictured frames, evenly spread."""
    names = sorted(p.stem for p in (out / "overlays").glob(f"*{OVERLAY_SUFFIX}")) if (out / "overlays").is_dir() else []
    if len(names) <= count:
        return names
    return [names[i] for i in np.round(np.linspace(0, len(names) - 1, count)).astype(int)]


def _rows(pairs) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td class=num>{html.escape(str(v))}</td></tr>" for k, v in pairs)


def _source(source: dict) -> str:
    """The scene's spec in a line, every detail of the source folded under it."""
    spec = source.get("spec") or source.get("path") or source.get("kind") or "the scene"
    details = html.escape(json.dumps(source, indent=1, default=str))
    return f"<details><summary>source: <code>{html.escape(str(spec))}</code></summary><pre>{details}</pre></details>"


def _iou_table(scores: dict) -> str:
    colours = label_colours()
    rows = []
    for name, nyu in zip(BENCHMARK_NAMES, BENCHMARK_NYU40):
        v = scores["iou"].get(name)
        if v is None:
            continue
        r, g, b = (int(c) for c in colours[nyu])
        rows.append(
            f'<tr><td><span class=sw style="background:rgb({r},{g},{b})"></span>{html.escape(name)}</td>'
            f"<td class=num>{100 * v:.1f}</td></tr>"
        )
    return f"<table><tr><th>class</th><th>IoU (%)</th></tr>{''.join(rows)}</table>"


def labeller_heads(info) -> list[dict]:
    """What the daemon's scene labeller learnt from (GetInfo's HeadInfo.trained_on), one entry
    per head directory: {"head", "origin" (generated, own, mixed, unknown), "summary"}."""
    out = []
    for h in info.heads:
        if h.kind == "scene":
            out += [
                {
                    "head": t.head,
                    "origin": pb.DataOrigin.Name(t.origin).lower().removeprefix("data_origin_"),
                    "summary": t.summary,
                }
                for t in h.trained_on
            ]
    return out


DEMO_LABELS = (
    "These labels come from heads trained on generated rooms only: they demonstrate the pipeline and "
    "are not a model of real rooms. On real frames train heads on your own labelled scans, with DINOv2 "
    "weights (docs/own-labels.md)."
)


def heads_note(heads: list[dict]) -> str:
    """The page's word on the labeller: a demonstration when its heads learnt from generated data only."""
    if not heads:
        return ""
    demo = all(h["origin"] == "generated" for h in heads)
    lines = "".join(f"<li><code>{html.escape(h['head'])}</code>: {html.escape(h['summary'])}</li>" for h in heads)
    lead = f"<p class=note><b>{html.escape(DEMO_LABELS)}</b></p>" if demo else ""
    return f"{lead}<details><summary>what the heads were trained on</summary><ul>{lines}</ul></details>"


def write_report(
    out: Path, summary: dict, confusion: Confusion | None = None, recording: Path | None = None, sections=()
) -> Path:
    """Write out/index.html (and out/confusion.png when there are confusion counts); `sections`:
    more HTML after the labels (e.g. the objects' table)."""
    scene = summary.get("scene_id", "")
    facts = [
        ("frames", summary.get("frames", 0)),
        ("frames rejected", summary.get("frames_failed", 0)),
        ("frames without pose", summary.get("frames_without_pose", 0)),
        ("regions", summary.get("regions", 0)),
        ("fused points", summary.get("fused_points", 0)),
        ("seconds", summary.get("client_seconds", "")),
        ("frames per second", summary.get("frames_per_second", "")),
    ]
    scores = summary.get("miou")
    parts = [
        f"<!doctype html><html lang=en><meta charset=utf-8><title>regiond scan: {html.escape(scene)}</title>",
        f"<style>{STYLE}</style><h1>Scan of {html.escape(scene)}</h1>",
        _source(summary.get("source") or {}),
        f"<table>{_rows(facts)}</table>",
    ]
    note = heads_note(summary.get("heads") or [])
    if scores and scores.get("miou") is not None:
        parts.append(
            f"<h2>Labels: mIoU {100 * scores['miou']:.1f}%</h2>{note}<p>ScanNet's 20-class protocol at 640×480, "
            f"{scores['classes_present']} classes present in {scores['frames']} frames with ground truth.</p>"
            + _iou_table(scores)
        )
    elif note:
        parts.append(f"<h2>Labels</h2>{note}")
    parts.extend(s for s in sections if s)
    frames = strip_frames(out)
    if frames:
        figs = []
        for name in frames:
            imgs = f'<img src="overlays/{name}{OVERLAY_SUFFIX}" alt="regions of frame {name}">'
            if (out / "labels_color" / f"{name}.png").is_file():
                imgs += f'<img src="labels_color/{name}.png" alt="labels of frame {name}">'
            figs.append(f"<figure>{imgs}<figcaption>frame {int(name)}</figcaption></figure>")
        parts.append(
            f"<h2>Frames</h2><p>Regions over each frame (above; SAM masks filled, SLIC pieces hatched) "
            f"and the predicted labels (below).</p><div class=strip>{''.join(figs)}</div>"
        )
    if confusion is not None and confusion.counts.sum() > 0:
        confusion_picture(out, confusion)
        parts.append('<h2>Confusion matrix</h2><img src="confusion.png" alt="confusion matrix">')
    if recording is not None:
        parts.append(
            f"<h2>In 3D</h2><p>The Rerun recording <code>{html.escape(recording.name)}</code> holds the "
            f"frames, cameras, regions, labels and the fused cloud: <code>rerun {html.escape(str(recording))}"
            f"</code></p>"
        )
    page = out / "index.html"
    page.write_text("\n".join(parts) + "\n</html>\n", encoding="utf-8")
    return page
