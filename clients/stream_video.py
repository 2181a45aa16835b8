"""Stream a video file or a camera through regiond and print results as they come.

    python clients/stream_video.py clip.mp4 --server 127.0.0.1:50051
    python clients/stream_video.py --camera 0 --window-step 4

Frames are sent at the source's own rate (a file's fps; a camera's pace), or as fast as the
daemon takes them with --fast. Live mode (--live; on by default for --camera) sends the newest
frame whenever the daemon can take one and drops the rest, so the latency stays bounded
however fast the source is; its activity windows span --window-seconds of time (docs/live.md).
Without it every frame is processed, in order. With an activity head on the daemon, every window of frames
prints its best classes; otherwise the client says so at the start (and how to serve one)
and a line per second says how the regions are flowing.
If the daemon restarts mid-stream, the client reconnects (with backoff) and goes on from the
first frame that had no answer. --rerun FILE.rrd (or --rerun-connect) also records the frames,
their regions and every window's activity scores as time series for the Rerun viewer.
Exit status: 0 done, 1 bad input, 2 daemon unreachable or failed.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

from regiond import scenes
from regiond.client import common
from regiond.client.connection import InputReadError, RegionError, Unreachable
from regiond.client.live import LatestFrame, LiveFeed, in_flight_for
from regiond.client.messages import frame_encoding
from regiond.client.recording import VideoRecording, add_rerun_args
from regiond.client.replies import VideoUpdate

PROG = "stream_video"
MAX_AHEAD = 8
LATENCIES_KEPT = 100_000  # round trips the p50/p99 are taken over (the latest; memory stays flat)
NO_ACTIVITY_HEAD = (
    "{prog}: the daemon at {server} serves no activity head, so no activity windows will come back "
    "(regions only). To score activities, start it with one: `regiond serve --heads DIR` (DIR/activity/ "
    "as `regiond train activity --cache CACHE --out DIR/activity` writes it), or `regiond serve --heads bundled` for "
    "the heads that ship with the lite profile."
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=common.DefaultsHelpFormatter
    )
    p.add_argument("video", nargs="?", metavar="VIDEO", help="a video file (or any source `regiond scene` reads)")
    p.add_argument("--camera", type=int, default=None, metavar="N", help="stream OpenCV camera N instead")
    common.add_connection_args(p)
    p.add_argument("--fast", action="store_true", help="do not pace frames at the source's rate")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--every", type=int, default=1, metavar="K", help="send every K-th frame")
    p.add_argument("--size", default=None, metavar="WxH", help="resample frames to this size before sending")
    common.add_encoding_arg(p, "frames")
    p.add_argument(
        "--window-step",
        type=int,
        default=0,
        metavar="K",
        help="frames between activity windows (0: the daemon's default)",
    )
    p.add_argument(
        "--window-span",
        type=int,
        default=0,
        metavar="N",
        help="frames one activity window spans; the head samples its 8 evenly from them (0: 8 consecutive frames)",
    )
    common.add_carry_args(p, "by optical flow")
    add_live_args(p)
    p.add_argument("--top", type=int, default=3, metavar="K", help="classes printed per window")
    p.add_argument(
        "--jsonl",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write one JSON line per frame and per window here",
    )
    p.add_argument(
        "--skip-bad-frames",
        action="store_true",
        help="report and skip frames the source cannot give (a corrupt .sens or folder frame) "
        "instead of ending the stream (default: strict)",
    )
    add_rerun_args(p)
    return p


def add_live_args(p) -> None:
    """--live/--no-live, --window-seconds, --in-flight."""
    p.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="live mode: the newest frame wins, frames that would wait are dropped, activity windows span "
        "--window-seconds (default: on for --camera, off for a file, which then gets every frame in order)",
    )
    p.add_argument(
        "--window-seconds",
        type=float,
        default=0.0,
        metavar="S",
        help="live: seconds one activity window spans; the head gets 8 frames sampled evenly in time "
        "from the frames processed in them (0: the daemon's default, 2 s)",
    )
    p.add_argument(
        "--in-flight",
        type=int,
        default=0,
        metavar="N",
        help="live: frames sent and not yet answered at most (0: the daemon's workers + 1)",
    )


def live_mode(args) -> str | None:
    """Resolves args.live (default: on for a camera); an error message for contradicting options."""
    if args.live is None:
        args.live = args.camera is not None
    if args.live and args.fast:
        return "--fast contradicts --live (a live source plays at its own rate; add --no-live)"
    if not args.live and (args.window_seconds or args.in_flight):
        return "--window-seconds and --in-flight are for live mode (--live)"
    return None


def live_options(args) -> dict:
    """RegionClient.stream_video's keywords of live mode."""
    return {"live": True, "window_seconds": args.window_seconds} if args.live else {}


def live_record(feed: LiveFeed, u: VideoUpdate) -> dict:
    """What a live update adds to its JSON line: the frames the daemon skipped and those the
    client dropped since the previous update."""
    dropped = feed.latest.dropped
    rec = {"skipped": list(u.skipped), "dropped": dropped[feed.reported :]}
    feed.reported = len(dropped)
    return rec


class Stream:
    """Frames from the source, re-sendable after a reconnect, and what came back. In live mode
    (`feed`), the frames come from a LiveFeed and are never re-sent."""

    def __init__(self, args, source, recording: VideoRecording | None = None, feed: LiveFeed | None = None):
        self.args = args
        self.recording = recording
        self.feed = feed
        self.frames_left = iter(source)
        self.unanswered: collections.OrderedDict = collections.OrderedDict()  # index → frame
        self.ahead = threading.Semaphore(MAX_AHEAD)
        self.lock = threading.Lock()
        self.answered = 0
        self.errors = 0
        self.windows = 0
        self.latencies: collections.deque = collections.deque(maxlen=LATENCIES_KEPT)
        self.t_start = None
        self.src_t0 = None
        self.last_print = 0.0
        self.jsonl = open(args.jsonl, "w") if args.jsonl else None
        self.carry = common.KeyframeCount()

    def _pace(self, frame) -> None:
        if self.args.fast or frame.time is None:
            return
        if self.src_t0 is None:
            self.src_t0, self.t_start = frame.time, time.monotonic()
            return
        delay = (frame.time - self.src_t0) - (time.monotonic() - self.t_start)
        if delay > 0:
            time.sleep(delay)

    def frames(self, stop: threading.Event):
        """The frames to send: live, the source's newest whenever an in-flight slot is free
        (after a reconnect too: what was in flight is lost, not re-sent); else first those sent
        before a reconnect and never answered, then the source's, at most MAX_AHEAD unanswered,
        paced at the source's rate."""
        if self.feed is not None:
            self.feed.reconnected()
            yield from self.feed.frames(stop)
            return
        with self.lock:
            resend = list(self.unanswered.values())
        self.ahead = threading.Semaphore(MAX_AHEAD)

        def frames():
            yield from resend
            for f in self.frames_left:
                with self.lock:
                    self.unanswered[int(f.index)] = f
                yield f

        for f in frames():
            while not self.ahead.acquire(timeout=0.1):
                if stop.is_set():
                    return
            if stop.is_set():
                return
            self._pace(f)
            f.meta["sent"] = time.perf_counter()
            yield f

    def answered_frame(self, u: VideoUpdate):
        """The frame an update answers (None when it was answered before a reconnect)."""
        if self.feed is not None:
            return self.feed.answered(u.frame_index, u.skipped, u.queue_seconds, u.server_seconds)
        with self.lock:
            f = self.unanswered.pop(u.frame_index, None)
        self.ahead.release()
        return f

    def handle(self, u: VideoUpdate) -> None:
        idx = u.frame_index
        f = self.answered_frame(u)
        if f is None:  # answered before a reconnect already
            return
        self.answered += 1
        start = f.meta.get("captured", f.meta.get("sent"))  # live: since the frame became current
        if start is not None:
            self.latencies.append(time.perf_counter() - start)
        rec = {"frame": idx}
        if self.feed is not None:
            rec.update(live_record(self.feed, u))
        if u.error is not None:
            self.errors += 1
            rec["error"] = {"field": u.error.field, "message": u.error.message}
            print(f"frame {idx}: rejected: {u.error.message}", flush=True)
        else:
            rec["regions"] = len(u.regions)
            self.carry.add(u.regions)
            if u.regions.meta.get("carry"):
                rec["keyframe"] = u.regions.meta["carry"]["keyframe"]
        if self.recording:
            self.recording.frame(f, u.regions)
        for w in u.windows:
            self.windows += 1
            if self.recording:
                self.recording.window(w)
            top = ", ".join(f"{s.name or s.id} {s.score:.2f}" for s in list(w.scores)[: self.args.top])
            span = f" ({w.start_time:.2f}-{w.end_time:.2f} s)" if self.feed is not None else ""
            print(f"frames {w.start_frame}-{w.end_frame}{span}: {top}", flush=True)
            if self.jsonl:
                rec_w = {
                    "window": [w.start_frame, w.end_frame],
                    "scores": {s.name or str(s.id): round(s.score, 4) for s in w.scores},
                }
                if self.feed is not None:
                    rec_w.update(frames=list(w.frame_indices), span=[round(w.start_time, 4), round(w.end_time, 4)])
                self.jsonl.write(json.dumps(rec_w) + "\n")
        now = time.monotonic()
        if not u.windows and now - self.last_print >= 1.0 and "regions" in rec:
            self.last_print = now
            lat = self.latencies[-1] * 1000 if self.latencies else float("nan")
            print(f"frame {idx}: {rec['regions']} regions, {lat:.0f} ms round trip", flush=True)
        if self.jsonl:
            self.jsonl.write(json.dumps(rec) + "\n")


def run(args) -> int:
    if (args.video is None) == (args.camera is None):
        return common.fail(PROG, "give a VIDEO or --camera N (one of them)", 1)
    contradiction = live_mode(args)
    if contradiction:
        return common.fail(PROG, contradiction, 1)
    spec = f"camera:{args.camera}" if args.camera is not None else args.video
    size = None
    if args.size:
        try:
            size = tuple(int(v) for v in args.size.lower().split("x"))
        except ValueError:
            return common.fail(PROG, f"--size {args.size!r}: expected WxH", 1)
    try:
        source = scenes.open_source(
            spec, every=args.every, max_frames=args.max_frames, size=size, skip_bad_frames=args.skip_bad_frames
        )
    except ValueError as e:
        return common.fail(PROG, str(e), 1)
    source.on_skip = lambda s: print(f"{PROG}: frame {s['frame']} skipped: {s['reason']}", file=sys.stderr, flush=True)
    args.encoding = frame_encoding(args.encoding, args.server)
    try:
        client = common.client_from_args(args, args.encoding)
    except Unreachable as e:
        return common.fail(PROG, str(e))
    try:
        info = client.info(timeout=args.connect_timeout)
    except RegionError as e:
        client.close()
        return common.fail(PROG, common.describe(e))
    scorer = any(h.kind == "activity" for h in info.heads)
    if not scorer:
        print(NO_ACTIVITY_HEAD.format(prog=PROG, server=args.server), file=sys.stderr, flush=True)
    recording = VideoRecording(args.rerun, args.rerun_connect) if args.rerun or args.rerun_connect else None
    live = LiveFeed(LatestFrame(source), in_flight_for(info, args.in_flight)) if args.live else None
    stream = Stream(args, source, recording, live)
    t0 = time.perf_counter()
    try:
        while True:
            stop = threading.Event()
            updates = client.stream_video(
                stream.frames(stop),
                window_step=args.window_step,
                window_span=args.window_span,
                stop=stop,
                **common.carry_args(args),
                **live_options(args),
            )
            try:
                for update in updates:
                    stream.handle(update)
                break
            except InputReadError as e:  # a bad frame of a strict source
                client.close()
                raise common.ClientExit(common.fail(PROG, str(e), 1)) from None
            except RegionError as e:
                common.wait_for_return(e, client, PROG)
            finally:
                updates.close()
        if recording:
            recording.close()
    finally:
        if recording:
            recording.close(ok=False)
        if live is not None:
            live.latest.close()
    client.close()
    seconds = time.perf_counter() - t0
    lat = np.array(stream.latencies) * 1000 if stream.latencies else np.array([np.nan])
    windows = f"{stream.windows} windows" if scorer else "no activity windows (the daemon serves no activity head)"
    skipped = f", {len(source.skipped)} skipped (unreadable)" if source.skipped else ""
    print(
        f"{PROG}: {stream.answered} frames ({stream.errors} rejected{skipped}), {windows} in {seconds:.1f} s "
        f"= {stream.answered / seconds:.1f} frames/s; {'latency since capture' if live else 'round trip'} "
        f"p50 {np.percentile(lat, 50):.0f} ms, p99 {np.percentile(lat, 99):.0f} ms"
    )
    if stream.carry.line():
        print(f"{PROG}: {stream.carry.line()}")
    if live is not None:
        print(f"{PROG}: {live.drop_line(stream.answered)}")
    if stream.jsonl:
        stream.jsonl.close()
    if recording and recording.path:
        print(f"{PROG}: Rerun recording {recording.path}; open it with `rerun {recording.path}`")
    return 0


def main(argv=None) -> int:
    return common.run_main(PROG, build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
