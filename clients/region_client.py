"""RegionClient: regiond from Python, one method per RPC, the project's own types in and out.

    from regiond.client import RegionClient

    with RegionClient("127.0.0.1:50051", token=None) as client:
        regions = client.extract("photo.jpg")                 # a regiond.core RegionSet
        for update in client.stream_video("clip.mp4"):        # VideoUpdate per frame
            print(update.frame_index, len(update.regions), update.windows)
        client.index("photos/")                               # IndexSummary
        hits = client.search("cup.jpg", box=(40, 30, 180, 200))  # SearchHit list, best first

The client handles the connection (TLS, bearer token, message size), per-call timeouts and a
daemon that restarts: unary calls (extract, search, info) that find it gone (UNAVAILABLE) are
tried again for up to `retry_for` seconds, as soon as the channel is ready again; a stream that
loses it raises RegionError(UNAVAILABLE), and `reconnect()` waits for the daemon's return.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from regiond.api.v1 import regions_pb2 as pb
from regiond.client import messages
from regiond.client.connection import Connection
from regiond.client.messages import ImageLike
from regiond.client.replies import (
    IndexSummary,
    SceneUpdate,
    SearchHits,
    ServerInfo,
    VideoUpdate,
    from_message,
)
from regiond.core.frames import Camera, Frame
from regiond.core.regionset import RegionSet
from regiond.core.rle import encode as rle_encode

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
MATCHES = {"pooled": pb.QUERY_MATCH_POOLED, "regions": pb.QUERY_MATCH_REGIONS}


def image_files(folder: str | Path) -> list[Path]:
    """Every PNG/JPEG under `folder` (recursively), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class RegionClient(Connection):
    """A connection to a regiond daemon.

    Arguments:
      address (str): HOST:PORT of the daemon; None: $REGIOND_SERVER, else 127.0.0.1:50051.
      token (str): bearer token; None: $REGIOND_TOKEN (no token when that is unset too).
      tls_ca (str, Path or bytes): connect with TLS, trusting this PEM CA or self-signed
        certificate (a file, or its bytes); None: plain connection.
      tls_name (str): the server name expected in its certificate (default: the address's host).
      timeout (float): default seconds each unary call may take (None: no limit); every method
        takes its own `timeout` too.
      connect_timeout (float): seconds to wait for the daemon when the client is made; it
        raises Unreachable when the daemon does not answer in time.
      retry_for (float): how long a unary call that finds the daemon gone keeps trying (0: no
        retries), and how long `reconnect()` waits.
      encoding (str): how pixels travel: "raw" (no coding cost), "jpeg", "png", or "auto":
        raw to a daemon on this machine (a loopback address), else jpeg. Files and encoded
        bytes always travel as they are.
      on_starting (callable): a daemon still starting (its port open, its models warming up or
        its search normaliser being fitted) is waited for, when the client is made and when a
        call meets one that restarted; this gets a line saying what it is doing, every 10 s
        (None: it waits quietly).

    Use it as a context manager, or call `close()`. One client may serve several threads.
    """

    # --- the RPCs -----------------------------------------------------------------------------

    def info(self, *, timeout: float | None = None) -> ServerInfo:
        """The daemon's version, profile, models, heads, limits and index size."""
        return from_message(ServerInfo, self.unary("GetInfo", pb.InfoRequest(), timeout))

    def extract(
        self,
        image: ImageLike,
        *,
        depth: np.ndarray | None = None,
        intrinsics: Camera | np.ndarray | None = None,
        pose: np.ndarray | None = None,
        features: str | None = "float32",
        masks: bool = True,
        labels: bool = True,
        timeout: float | None = None,
    ) -> RegionSet:
        """The region tokens of one image.

        Arguments:
          image: a PNG/JPEG file (str or Path), its bytes, or H×W×3 uint8 RGB pixels.
          depth: H×W metres (0 or NaN: none); with intrinsics, the regions get 3D statistics
            (centroids, extents, valid_depth, point_count), in world coordinates when a pose is
            given (meta["world"]), else the camera's.
          intrinsics: a regiond.core Camera, or a 3×3 matrix K for the image's own size.
          pose: 4×4 camera-to-world, metres.
          features: "float32", "float16" (half the bytes) or None (no features).
          masks: False leaves the masks out (boxes and areas remain; see messages.region_set).
          labels: False: no labels even when the daemon serves a scene labeller (else the
            RegionSet's `labels` hold NYU40 ids, meta["label_names"] their names; docs/heads.md).

        Returns a RegionSet (masks as RLE counts: `.mask(i)`, `.masks()`); its meta holds the
        profile, masker, backbone and seconds per stage. Bad input raises RegionError
        INVALID_ARGUMENT naming the field.
        """
        req = pb.ExtractRequest(
            image=messages.any_image_pb(image, self.encoding),
            output=messages.output_pb(features, masks),
            skip_labels=not labels,
        )
        if depth is not None:
            req.depth.CopyFrom(messages.depth_pb(depth))
        if intrinsics is not None:
            req.intrinsics.CopyFrom(messages.intrinsics_pb(intrinsics))
        if pose is not None:
            req.pose.CopyFrom(messages.pose_pb(pose))
        return messages.region_set(self.unary("ExtractRegions", req, timeout))

    def stream_video(
        self,
        frames: Iterable[Frame | np.ndarray] | str | Path,
        *,
        window_step: int = 0,
        window_span: int = 0,
        keyframe_every: int = 0,
        min_coverage: float = 0.0,
        features: str | None = None,
        masks: bool | Callable[[int], bool] = True,
        stop: threading.Event | None = None,
        timeout: float | None = None,
        live: bool = False,
        window_seconds: float = 0.0,
    ) -> Iterator[VideoUpdate]:
        """Video frames in, one VideoUpdate per frame out, in order.

        Arguments:
          frames: regiond.core Frames (or H×W×3 uint8 arrays), or a source to open with
            regiond.scenes.open_source (a video file, "camera:0", a folder of frames, ...).
          window_step, window_span: frames between activity windows and frames one spans (0:
            the daemon's defaults); windows come back with an activity head only.
          keyframe_every, min_coverage: generate masks on every K-th frame only and carry them
            to the frames between by optical flow (0 or 1: every frame); see CarryOptions.
          features, masks: what each frame's RegionSet carries, as for extract (default: no
            features); masks may also be a function of a frame's position in the stream
            (0, 1, ...) saying whether that frame's masks come back: a client that draws a few
            frames need not receive (and decode) the others' masks.
          stop: an Event your frames iterator watches while it waits (pacing, flow control):
            the client sets it when the stream ends, so a pull blocked there returns.
          timeout: seconds for the whole stream (None: no limit).
          live, window_seconds: live mode (docs/live.md): frames still queued in the daemon when
            a newer one comes are dropped (listed in the next update's `skipped`), and activity
            windows span window_seconds of the stream's clock (0: the daemon's default, 2 s).
            regiond.client.live.LiveFeed sends a live source's frames.

        Iterating raises RegionError when the call fails (UNAVAILABLE: the daemon went away;
        see reconnect) and InputReadError when reading the frames failed. Closing the iterator
        (or leaving it early) cancels the stream.
        """
        carry = self._carry(keyframe_every, min_coverage)
        first = {
            "options": pb.VideoOptions(
                window_step=window_step, window_span=window_span, carry=carry, live=live, window_seconds=window_seconds
            ),
        }
        return self._frame_stream(
            "StreamVideo", frames, messages.video_frame_pb, first, VideoUpdate, stop, timeout, features, masks
        )

    def stream_scene(
        self,
        frames: Iterable[Frame | np.ndarray] | str | Path,
        *,
        scene_id: str = "",
        voxel_size: float = 0.0,
        max_depth: float = 0.0,
        ply: bool = False,
        label_maps: bool = False,
        keyframe_every: int = 0,
        min_coverage: float = 0.0,
        features: str | None = None,
        masks: bool | Callable[[int], bool] = True,
        objects: bool = False,
        stop: threading.Event | None = None,
        timeout: float | None = None,
    ) -> Iterator[SceneUpdate]:
        """RGB-D frames in; one SceneUpdate per frame out (regions with 3D positions, label maps
        with a scene head), then, after the last frame, one per frame with the scene head's
        refined labels (when loaded) and a last one with the SceneSummary.

        Arguments:
          frames: regiond.core Frames (depth, camera and pose when they have them), or a
            source to open with regiond.scenes.open_source (.sens, a ScanNet or 7-Scenes
            folder, "synthetic:SEED").
          scene_id: the scene's name in the summary.
          voxel_size: voxel edge of the fused point cloud, metres (0: 0.02).
          max_depth: depth beyond this is ignored (0: the daemon's default).
          ply: the fused (labelled) cloud as binary PLY in the summary.
          label_maps: per-frame label maps (scene head only).
          keyframe_every, min_coverage: carry masks between keyframes by reprojection with
            depth and poses; see stream_video.
          objects: the object map (docs/objects.md): each update's object_ids (its regions' 3D
            objects; objects_reason says why a frame has none), the refined updates' final
            ids, the summary's objects, the PLY's instance property.
          features, masks, stop, timeout: as for stream_video.

        Raises as stream_video does.
        """
        options = pb.SceneOptions(
            scene_id=scene_id,
            voxel_size=voxel_size,
            max_depth=max_depth,
            return_ply=ply,
            return_label_maps=label_maps,
            carry=self._carry(keyframe_every, min_coverage),
            objects=objects,
        )
        return self._frame_stream(
            "StreamScene",
            frames,
            messages.scene_frame_pb,
            {"options": options},
            SceneUpdate,
            stop,
            timeout,
            features,
            masks,
        )

    def index(
        self,
        images: str | Path | Mapping[str, ImageLike] | Iterable[tuple],
        *,
        metadata: Mapping[str, str] | None = None,
        replace: bool = False,
        timeout: float | None = None,
    ) -> IndexSummary:
        """Add images to the daemon's region index.

        Arguments:
          images: a folder (every PNG/JPEG under it; the image id is its path relative to the
            folder, and metadata "path" its absolute path); image files (the id is the path as
            given); a mapping image id → image; or (image_id, image) or (image_id, image,
            metadata) tuples. An image is a file, its bytes or H×W×3 uint8 pixels.
          metadata: stored with every image (searchable with search(where=...)).
          replace: index again the ids already in the index (else the daemon skips them before
            any work, so indexing a grown folder again costs only the new images).

        Per-image problems are listed in the summary's errors; the others are indexed. Not
        retried after the daemon went away (the images may be a one-time iterator): call again,
        what was acknowledged is kept and skipped.
        """
        if isinstance(images, (str, Path)):
            folder = Path(images)
            images = ((p.relative_to(folder).as_posix(), p, {"path": str(p.resolve())}) for p in image_files(folder))
        elif isinstance(images, Mapping):
            images = images.items()
        shared = dict(metadata or {})

        def requests():
            for item in images:
                if isinstance(item, (str, Path)):  # a file: its path is its id
                    item = (str(item), item, {"path": str(Path(item).resolve())})
                image_id, image, *own = item
                req = pb.IndexRequest(image_id=image_id, image=messages.any_image_pb(image, self.encoding))
                req.replace = replace
                req.metadata.update({**shared, **(own[0] if own else {})})
                yield req

        return from_message(IndexSummary, self.upload("IndexImages", requests(), timeout))

    def remove(self, image_ids: Iterable[str], *, timeout: float | None = None) -> IndexSummary:
        """Remove images from the index (ids it does not hold are no error)."""
        removals = (pb.IndexRequest(image_id=i, remove=True) for i in image_ids)
        return from_message(IndexSummary, self.upload("IndexImages", removals, timeout))

    def search(
        self,
        image: ImageLike,
        *,
        mask: np.ndarray | str | Path | bytes | None = None,
        box: tuple[float, float, float, float] | None = None,
        match: str | None = None,
        top_k: int = 10,
        regions_per_image: int = 1,
        expand: int | None = None,
        prefix: str = "",
        where: Mapping[str, str] | None = None,
        exclude: Iterable[str] = (),
        masks: bool = False,
        timeout: float | None = None,
    ) -> SearchHits:
        """The indexed images holding something like the object under `mask` or in `box`.

        Arguments:
          image: the query image (a file, its bytes or H×W×3 uint8 pixels).
          mask: the object: an H×W bool array, or a PNG (file or bytes) whose non-zero pixels
            are the object; or
          box: (x0, y0, x1, y1) pixels around it, x1 and y1 exclusive.
          match: "pooled" (one feature pooled over the mask or box: finds the object) or
            "regions" (the image's own regions inside it, each matched: finds images holding
            every part of what it shows); None: the daemon's default for the query's kind.
          top_k: images to return; regions_per_image: best regions returned per image.
          expand: query expansion with the best regions of the first N images (None: the
            daemon's default; 0: exact nearest regions only).
          prefix, where, exclude: only image ids starting with prefix, only images whose
            metadata holds every where pair, never the excluded ids.
          masks: return each hit region's mask (RegionHit.mask).

        Returns the hits, best first (a list; .searched_images, .searched_regions and .seconds
        say what was searched and how long it took).
        """
        if (mask is None) == (box is None):
            raise ValueError("give a mask or a box (one of them)")
        if match is not None and match not in MATCHES:
            raise ValueError(f"match {match!r}: expected one of {', '.join(MATCHES)}")
        req = pb.SearchRequest(top_k=top_k, regions_per_image=regions_per_image, include_masks=masks)
        if expand is not None:
            req.query_expansion = expand
        image_msg = messages.any_image_pb(image, self.encoding)
        if mask is not None:
            query = req.mask
            query.image.CopyFrom(image_msg)
            if isinstance(mask, (str, Path, bytes)):
                query.mask_image.data = Path(mask).read_bytes() if isinstance(mask, (str, Path)) else mask
            else:
                m = np.asarray(mask, dtype=bool)
                query.mask.CopyFrom(pb.Mask(height=m.shape[0], width=m.shape[1], counts=rle_encode(m).tolist()))
        else:
            query = req.box
            query.image.CopyFrom(image_msg)
            x0, y0, x1, y1 = (float(v) for v in box)
            query.box.CopyFrom(pb.Box(x0=x0, y0=y0, x1=x1, y1=y1))
        if match is not None:
            query.match = MATCHES[match]
        req.filter.image_id_prefix = prefix
        req.filter.metadata.update(dict(where or {}))
        req.filter.exclude_image_ids.extend(exclude)
        return SearchHits.from_message(self.unary("Search", req, timeout))

    # --- helpers --------------------------------------------------------------------------------

    def _frame_stream(
        self, method: str, frames, encode, first: dict, update, stop, timeout, features, masks
    ) -> Iterator:
        """`update`s of a frame stream: each frame (Frame, array, or the frames of a source
        spec) made a message by `encode`, the first with the `first` fields (options), and the
        OutputOptions of `features` and `masks`: on the first frame for the whole stream, or,
        when masks is a function of the frame's position, on every frame for itself."""
        if isinstance(frames, (str, Path)):
            from regiond import scenes  # the sources (and OpenCV) only when a spec is given

            frames = scenes.open_source(str(frames))
        if callable(masks):
            with_masks, without_masks = messages.output_pb(features, True), messages.output_pb(features, False)

            def output(k: int) -> dict:
                return {"output": with_masks if masks(k) else without_masks}
        else:
            stream_output = messages.output_pb(features, bool(masks))

            def output(k: int) -> dict:
                return {"output": stream_output} if k == 0 else {}

        def requests():
            for k, item in enumerate(frames):
                yield encode(messages.as_frame(item, k), self.encoding, **(first if k == 0 else {}), **output(k))

        with contextlib.closing(self.stream(method, requests(), stop, timeout)) as replies:
            for reply in replies:
                yield update.from_message(reply)

    @staticmethod
    def _carry(keyframe_every: int, min_coverage: float) -> pb.CarryOptions | None:
        if keyframe_every <= 1:
            return None
        return pb.CarryOptions(keyframe_every=keyframe_every, min_coverage=min_coverage)
