"""Index an image folder in regiond's region index, and find the images holding an object.

    python clients/search.py index photos/                      # every PNG/JPEG under photos/
    python clients/search.py query cup.jpg --mask cup_mask.png  # images with something like it
    python clients/search.py query cup.jpg --box 40,30,180,200 --out hits.html

`index` streams the images to IndexImages with their path relative to FOLDER as the image id
(and the file's absolute path as metadata "path"); ids already in the index are skipped by
the daemon before any work, so re-running on a grown folder only indexes the new images.
Per-image problems are listed; the others are indexed regardless.

`query` asks Search for the top images holding something like the object under the mask (a
PNG whose non-zero pixels are the object) or inside the box, prints them, and writes an HTML
page showing the query and each hit with its matched regions outlined (hits are drawn from
the indexed files when this machine can read them). --match says how the mask or box is
compared: pooled (one feature pooled over it: finds the object) or regions (the query image's
own regions inside it, each matched: finds images showing what it shows); by default the
daemon chooses (regions for a box, pooled for a mask; docs/search.md says why).
Exit status: 0 done, 1 bad input (or some images failed), 2 daemon unreachable or failed.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import sys
from pathlib import Path

import grpc
import numpy as np
from PIL import Image
from tqdm import tqdm

from regiond.client import common
from regiond.client.connection import RegionError, Unreachable
from regiond.client.region_client import MATCHES, RegionClient, image_files
from regiond.client.replies import SearchHit, SearchHits
from regiond.core.viz import outline

PROG = "search"
HIT_COLOURS = np.array([(255, 40, 40), (40, 220, 40), (60, 120, 255), (255, 200, 0), (255, 0, 255)], np.uint8)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=common.DefaultsHelpFormatter
    )
    common.add_connection_args(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ix = sub.add_parser(
        "index",
        help="index every PNG/JPEG under FOLDER",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ix.add_argument("folder", type=Path, metavar="FOLDER", help="folder of images (searched recursively)")
    ix.add_argument("--prefix", default="", help="prepend this to every image id (e.g. 'holiday/')")
    ix.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="metadata stored with every image (repeatable); searchable with query --where",
    )
    ix.add_argument("--replace", action="store_true", help="re-index images already in the index")
    ix.add_argument("--no-progress", action="store_true", help="no progress bar")
    common.add_connection_args(ix, subcommand=True)

    q = sub.add_parser(
        "query",
        help="find images holding the object under a mask or in a box",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("image", type=Path, metavar="IMAGE", help="the query image (PNG/JPEG)")
    how = q.add_mutually_exclusive_group(required=True)
    how.add_argument("--mask", type=Path, metavar="MASK.png", help="PNG the size of IMAGE, object = non-zero pixels")
    how.add_argument("--box", metavar="x0,y0,x1,y1", help="box around the object, pixels (x1, y1 exclusive)")
    q.add_argument(
        "--match",
        choices=tuple(MATCHES),
        default=None,
        help="how the mask or box is compared: pooled (one feature over it: finds the object) or regions "
        "(its regions one by one: finds images showing what it shows) (default: the daemon's: regions "
        "for a box, pooled for a mask)",
    )
    q.add_argument("-k", "--top-k", type=int, default=10, help="images to return")
    q.add_argument("--regions-per-image", type=int, default=3, help="matched regions shown per image")
    q.add_argument("--prefix", default="", help="only images whose id starts with this")
    q.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only images whose metadata has KEY=VALUE (repeatable)",
    )
    q.add_argument("--exclude", action="append", default=[], metavar="IMAGE_ID", help="leave this image out")
    q.add_argument(
        "--expand",
        type=int,
        default=None,
        metavar="N",
        help="query expansion: search again with the best regions of the first N images "
        "(default: the daemon's, 5; 0: exact nearest regions only)",
    )
    q.add_argument(
        "--out",
        type=Path,
        default=Path("search_results.html"),
        help="HTML page with the query and the hits, matched regions outlined",
    )
    common.add_connection_args(q, subcommand=True)
    return p


def pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for s in items:
        k, sep, v = s.partition("=")
        if not sep or not k:
            raise ValueError(f"{flag} {s!r}: expected KEY=VALUE")
        out[k] = v
    return out


# --- index -------------------------------------------------------------------------------------


def run_index(args, client: RegionClient) -> int:
    meta = pairs(args.meta, "--meta")
    files = image_files(args.folder)
    if not files:
        print(f"{PROG}: no PNG/JPEG files under {args.folder}", file=sys.stderr)
        return 1
    bar = tqdm(total=len(files), unit="image", desc="indexing", disable=args.no_progress, file=sys.stderr)

    def images():
        for path in files:
            yield args.prefix + path.relative_to(args.folder).as_posix(), path, {"path": str(path.resolve())}
            bar.update(1)  # gRPC pulls the next image once this one is on its way

    try:
        summary = client.index(images(), metadata=meta, replace=args.replace)
    finally:
        bar.close()
    print(
        f"{summary.indexed} indexed ({summary.regions} regions), {summary.skipped} already indexed, "
        f"{len(summary.errors)} failed; the index holds {summary.total_images} images, "
        f"{summary.total_regions} regions"
    )
    for e in summary.errors:
        print(f"  {e.image_id}: {e.message}", file=sys.stderr)
    return 1 if summary.errors else 0


# --- query -------------------------------------------------------------------------------------


def parse_box(s: str) -> list[float]:
    try:
        b = [float(v) for v in s.split(",")]
    except ValueError:
        b = []
    if len(b) != 4:
        raise ValueError(f"--box {s!r}: expected x0,y0,x1,y1")
    return b


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def run_query(args, client: RegionClient) -> int:
    if args.expand is not None and args.expand < 0:
        raise ValueError(f"--expand {args.expand}: must be 0 or more images")
    hits = client.search(
        args.image,
        mask=args.mask,
        box=None if args.mask is not None else parse_box(args.box),
        match=args.match,
        top_k=args.top_k,
        regions_per_image=args.regions_per_image,
        expand=args.expand,
        prefix=args.prefix,
        where=pairs(args.where, "--where"),
        exclude=args.exclude,
        masks=True,
    )
    print(
        f"{len(hits)} hits among {hits.searched_images} images ({hits.searched_regions} regions) "
        f"in {hits.seconds * 1000:.0f} ms"
    )
    for rank, h in enumerate(hits, 1):
        regs = ", ".join(
            f"#{r.region_id} {r.score:.3f} [{r.box[0]:.0f},{r.box[1]:.0f},{r.box[2]:.0f},{r.box[3]:.0f}]"
            for r in h.regions
        )
        print(f"{rank:>3}. {h.image_id}  score {h.score:.3f}  regions: {regs}")
    write_html(args.out, args, hits)
    print(f"wrote {args.out}")
    return 0


def draw_outlines(rgb: np.ndarray, masks: list[np.ndarray], width: int = 2) -> np.ndarray:
    out = rgb.copy()
    for i, m in enumerate(masks):
        out[outline(m, width)] = HIT_COLOURS[i % len(HIT_COLOURS)]
    return out


def png_data_uri(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def hit_picture(h: SearchHit) -> np.ndarray:
    """The hit's image (from its metadata path, when readable here) with its regions outlined."""
    path = Path(h.metadata.get("path", ""))
    rgb = None
    if path.is_file():
        try:
            rgb = read_rgb(path)
        except OSError:
            rgb = None
    if rgb is None or rgb.shape[:2] != (h.height, h.width):
        rgb = np.full((h.height, h.width, 3), 235, np.uint8)  # not readable here: outlines only
    return draw_outlines(rgb, [r.mask for r in h.regions if r.mask is not None])


def write_html(path: Path, args, hits: SearchHits) -> None:
    query = read_rgb(args.image)
    if args.mask is not None:
        m = read_rgb(args.mask).any(axis=2) if args.mask.is_file() else np.zeros(query.shape[:2], bool)
    else:
        x0, y0, x1, y1 = (int(round(v)) for v in parse_box(args.box))
        m = np.zeros(query.shape[:2], bool)
        m[max(0, y0) : y1, max(0, x0) : x1] = True
    qpic = query.copy()
    if m.shape == query.shape[:2]:
        qpic[outline(m, 2)] = (255, 255, 0)
    cells = []
    for rank, h in enumerate(hits, 1):
        regs = "<br>".join(f"region {r.region_id}: {r.score:.3f}" for r in h.regions)
        cells.append(
            f'<figure><img src="{png_data_uri(hit_picture(h))}"><figcaption><b>{rank}. '
            f"{html.escape(h.image_id)}</b><br>score {h.score:.3f}<br>{regs}</figcaption></figure>"
        )
    page = f"""<!doctype html><meta charset="utf-8"><title>regiond search: {html.escape(args.image.name)}</title>
<style>body{{font-family:sans-serif}} figure{{display:inline-block;margin:6px;vertical-align:top}}
img{{max-width:320px;max-height:320px;image-rendering:pixelated}} figcaption{{font-size:12px}}</style>
<h2>Query: {html.escape(str(args.image))}</h2>
<figure><img src="{png_data_uri(qpic)}"><figcaption>query object outlined</figcaption></figure>
<h2>{len(hits)} hits of {hits.searched_images} images ({hits.seconds * 1000:.0f} ms)</h2>
{"".join(cells)}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)


def run(args) -> int:
    try:
        client = common.client_from_args(args)
    except Unreachable as e:
        return common.fail(PROG, str(e), 2)
    try:
        return run_index(args, client) if args.command == "index" else run_query(args, client)
    except RegionError as e:
        code = 1 if e.code == grpc.StatusCode.INVALID_ARGUMENT else 2
        return common.fail(PROG, common.describe(e), code)
    except (ValueError, OSError) as e:
        return common.fail(PROG, str(e), 1)
    finally:
        client.close()


def main(argv=None) -> int:
    return common.run_main(PROG, build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
