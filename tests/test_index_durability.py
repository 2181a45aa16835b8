"""kill -9 during indexing loses no acknowledged image, duplicates nothing, and half-adds nothing,
on both backends.

A real writer process (tests/support_index.py) adds images and prints an ACK after each add
returns; the test SIGKILLs it at varying moments (FAISS: snapshots are written every few adds,
so some kills land inside a checkpoint; Milvus Lite runs inside the writer and dies with it,
its write-ahead log is all it leaves), then reopens the index and checks it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support_index import BACKENDS, DIM, image_id, location, region_set

from regiond.index import RegionIndex, SearchFilter, open_index

SUPPORT = Path(__file__).with_name("support_index.py")


def run_and_kill(where: str, start: int, acks_before_kill: int, extra_delay: float) -> list[str]:
    p = subprocess.Popen(
        [sys.executable, str(SUPPORT), where, str(start), "100000", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked = []
    try:
        for line in p.stdout:
            if line.startswith("ACK "):
                acked.append(line.split()[1])
                if len(acked) >= acks_before_kill:
                    break
        time.sleep(extra_delay)  # let it get somewhere inside the next add or checkpoint
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        # ACKs printed before the kill landed were acknowledged too
        acked += [ln.split()[1] for ln in p.stdout.read().splitlines() if ln.startswith("ACK ")]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == -signal.SIGKILL, p.stderr.read()
    return acked


def check_consistent(where: str, acked: list[str], kills: int) -> int:
    with open_index(where, dim=DIM) as idx:
        n = len(idx)
        ids = [image_id(i) for i in range(n + kills + 5) if image_id(i) in idx]
        assert len(ids) == n, "an image counted twice, or one out of sequence"
        missing = set(acked) - set(ids)
        assert not missing, f"acknowledged images lost: {sorted(missing)[:5]}"
        # at most the one add in flight at each kill may be there without its ACK
        assert len(ids) - len(set(acked)) <= kills
        # no half-written image: every image has all its regions, vectors and masks
        for iid in ids:
            rs = region_set(int(iid[3:]))
            np.testing.assert_array_equal(idx._raw_features(iid), rs.features)
            hit = idx.search(rs.features[-1], k=1, regions_per_image=len(rs), filter=SearchFilter(image_id_prefix=iid))
            assert hit[0].image_id == iid and len(hit[0].regions) == len(rs)
            np.testing.assert_array_equal(sorted(hit[0].regions, key=lambda r: r.region_id)[-1].counts, rs.counts[-1])
        assert idx.num_regions == sum(len(region_set(int(i[3:]))) for i in ids)
        if isinstance(idx, RegionIndex):
            assert idx.vectors.ntotal == idx.num_regions  # FAISS caught up, nothing twice
        for iid in ids[-3:]:
            assert idx.search(region_set(int(iid[3:])).features[0], k=1)[0].image_id == iid
    return n


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_during_indexing_loses_no_acknowledged_image(tmp_path, backend):
    where = location(tmp_path, backend)
    acked_all: list[str] = []
    start = 0
    for round_, (acks, delay) in enumerate([(15, 0.0), (10, 0.013), (12, 0.031), (8, 0.002)]):
        acked = run_and_kill(where, start, acks, delay)
        acked_all += acked
        n = check_consistent(where, acked_all, kills=round_ + 1)
        start = n  # the writer skips ids already there and continues after them
    assert len(set(acked_all)) >= 45


def _start_daemon(data_dir: Path, port: int, index: str | None = None) -> subprocess.Popen:
    from support_service import wait_serving

    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "regiond",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(data_dir),
            "--profile",
            "lite",
            "--torch-threads",
            "1",
            *(["--index", index] if index else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        wait_serving(f"127.0.0.1:{port}")
    except AssertionError as e:
        p.kill()
        raise AssertionError(f"daemon did not start: {p.stderr.read()[-2000:]}") from e
    return p


@pytest.mark.timeout(400)
@pytest.mark.parametrize("backend", BACKENDS)
def test_daemon_killed_mid_stream_keeps_what_it_acknowledged(tmp_path, backend):
    """`regiond serve` SIGKILLed while an IndexImages stream is running: the images of an
    earlier, acknowledged stream are all there after a restart, and nothing is doubled."""
    import threading

    import grpc
    from support_service import free_port

    from regiond.api.v1 import regions_pb2 as pb
    from regiond.api.v1 import regions_pb2_grpc as pb_grpc
    from regiond.scenes.annotated_images import make_synthetic_collection

    root = make_synthetic_collection(tmp_path / "coll", 24, seed=2, size=(96, 96))
    files = sorted(root.glob("*.png"))
    reqs = lambda fs: (pb.IndexRequest(image_id=f.name, image=pb.Image(data=f.read_bytes())) for f in fs)  # noqa: E731
    port = free_port()
    index = None if backend == "faiss" else location(tmp_path, backend)
    daemon = _start_daemon(tmp_path / "data", port, index)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.RegionServiceStub(ch)
            first = stub.IndexImages(reqs(files[:8]))
            assert first.indexed == 8  # acknowledged

            def slow():  # a second stream, cut by the kill
                for r in reqs(files[8:]):
                    time.sleep(0.05)
                    yield r

            outcome = {}

            def cut():  # the outcome is asserted here, in the test's thread, not inside this one
                try:
                    outcome["reply"] = stub.IndexImages(slow())
                except grpc.RpcError as e:
                    outcome["error"] = e

            t = threading.Thread(target=cut, daemon=True)
            t.start()
            time.sleep(0.4)
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(timeout=30)
            t.join(timeout=30)
            assert not t.is_alive(), "the cut stream's call never returned"
            assert "reply" not in outcome, f"the cut stream was answered: {outcome.get('reply')}"
            assert outcome["error"].code() == grpc.StatusCode.UNAVAILABLE, outcome["error"]
    finally:
        if daemon.poll() is None:
            daemon.kill()
    daemon = _start_daemon(tmp_path / "data", port, index)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.RegionServiceStub(ch)
            again = stub.IndexImages(reqs(files))
            assert again.skipped >= 8 and again.indexed + again.skipped == len(files) and not again.errors
            assert again.indexed > 0  # the kill did cut the second stream short
            assert again.total_images == len(files)  # nothing doubled, nothing half there
            hit = stub.Search(pb.SearchRequest(top_k=1, region=pb.RegionRef(image_id=files[3].name, region_id=0)))
            assert hit.hits[0].image_id == files[3].name
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
