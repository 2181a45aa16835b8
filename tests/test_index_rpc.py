"""IndexImages and Search through a real daemon (gRPC on a loopback port, lite profile), and
clients/search.py against it, on both index backends (FAISS over SQLite; Milvus Lite)."""

from __future__ import annotations

import itertools
import re

import grpc
import numpy as np
import pytest
from support_index import BACKENDS, location
from support_service import lite_extractor, png_bytes, running_server, stub_for

from regiond.api.v1 import regions_pb2 as pb
from regiond.core import rle
from regiond.index.searching import SERVED_EXPANSION
from regiond.scenes.annotated_images import load_coco, make_synthetic_collection

N_IMAGES = 14
backends = pytest.mark.parametrize("backend", BACKENDS)


def serving(ex, tmp_path, backend: str, **kw):
    """A daemon whose index is of `backend` (in tmp_path/index either way)."""
    return running_server(ex, tmp_path, index=True, index_location=location(tmp_path, backend), **kw)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = make_synthetic_collection(tmp_path_factory.mktemp("coll"), N_IMAGES, seed=5, size=(96, 96))
    return load_coco(root)


def split_of(image_id: str) -> str:
    return "a" if int(image_id[6:11]) % 2 else "b"


def index_requests(collection, **kw):
    for ci in collection.images:
        req = pb.IndexRequest(image_id=ci.image_id, image=pb.Image(data=ci.path.read_bytes()), **kw)
        req.metadata["split"] = split_of(ci.image_id)
        yield req


def mask_query(ci, inst, **kw) -> pb.SearchRequest:
    req = pb.SearchRequest(top_k=5, regions_per_image=2, include_masks=True, **kw)
    req.mask.image.data = ci.path.read_bytes()
    req.mask.mask.CopyFrom(pb.Mask(height=ci.height, width=ci.width, counts=rle.encode(inst.mask).tolist()))
    return req


def call_error(fn, req) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        fn(req)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    return e.value


@backends
def test_index_and_search_over_grpc(tmp_path, collection, backend):
    ex = lite_extractor()
    with serving(ex, tmp_path, backend) as server:
        ch, stub = stub_for(server)
        bad = [
            pb.IndexRequest(image_id="broken.png", image=pb.Image(data=b"not an image")),
            pb.IndexRequest(image_id="", image=pb.Image(data=collection.images[0].path.read_bytes())),
        ]
        reqs = list(index_requests(collection))
        summary = stub.IndexImages(iter(reqs[:3] + bad + reqs[3:]))
        assert (summary.received, summary.indexed, summary.skipped) == (N_IMAGES + 2, N_IMAGES, 0)
        assert sorted(e.field for e in summary.errors) == ["image", "image_id"]
        assert all(e.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] for e in summary.errors)
        assert summary.total_images == N_IMAGES and summary.regions == summary.total_regions > N_IMAGES * 10

        again = stub.IndexImages(index_requests(collection))  # already there: skipped, nothing re-extracted
        assert (again.indexed, again.skipped, again.total_images) == (0, N_IMAGES, N_IMAGES)

        # mask query (RLE) with an instance of image 0: image 0 itself comes first, through that region
        ci = collection.images[0]
        inst = ci.instances[0]
        resp = stub.Search(mask_query(ci, inst))
        assert resp.hits[0].image_id == ci.image_id and resp.searched_images == N_IMAGES
        top = resp.hits[0].regions[0]
        m = rle.decode(top.mask.counts, top.mask.height, top.mask.width)
        assert (m & inst.mask).sum() / m.sum() > 0.5  # the matched region lies on the object
        assert [h.score for h in resp.hits] == sorted([h.score for h in resp.hits], reverse=True)
        assert [h.metadata["split"] for h in resp.hits] == [split_of(h.image_id) for h in resp.hits]
        assert {split_of(h.image_id) for h in resp.hits} == {"a", "b"}  # both kinds came back

        # the same object as a PNG mask, and as a box; filters and exclusion
        req = pb.SearchRequest(top_k=3)
        req.mask.image.data = ci.path.read_bytes()
        req.mask.mask_image.data = png_bytes(inst.mask.astype(np.uint8) * 255)
        assert stub.Search(req).hits[0].image_id == ci.image_id
        ys, xs = np.nonzero(inst.mask)
        req = pb.SearchRequest(top_k=3, include_masks=True)
        req.box.image.data = ci.path.read_bytes()
        req.box.box.CopyFrom(pb.Box(x0=xs.min(), y0=ys.min(), x1=xs.max() + 1, y1=ys.max() + 1))
        box_hits = stub.Search(req).hits
        assert len(box_hits) == 3 and box_hits[0].image_id == ci.image_id
        r = box_hits[0].regions[0]
        m = rle.decode(r.mask.counts, r.mask.height, r.mask.width)
        inside = m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].sum() / m.sum()
        assert inside > 0.5, f"the box query's best region lies {inside:.0%} in the box"
        req = mask_query(ci, inst)
        req.filter.exclude_image_ids.append(ci.image_id)
        req.filter.metadata["split"] = "a"
        hits = stub.Search(req).hits
        assert hits and all(h.image_id != ci.image_id and h.metadata["split"] == "a" for h in hits)

        # an indexed region, its raw vector, and a probe trained from examples
        ref = pb.RegionRef(image_id=ci.image_id, region_id=top.region_id)
        r = stub.Search(pb.SearchRequest(top_k=1, region=ref, query_expansion=0))  # the exact nearest
        assert r.hits[0].image_id == ci.image_id and r.hits[0].score == pytest.approx(1.0, abs=1e-4)
        r = stub.Search(pb.SearchRequest(top_k=1, region=ref))  # expanded by default: still itself first
        assert r.hits[0].image_id == ci.image_id and 0.5 < r.hits[0].score < 1.0
        cls = inst.category
        same = [(c.image_id, c) for c in collection.images if any(i.category == cls for i in c.instances)]
        positives = []
        for image_id, c in same[:3]:
            q = stub.Search(
                mask_query(
                    c,
                    next(i for i in c.instances if i.category == cls),
                    filter=pb.SearchFilter(image_id_prefix=image_id),
                )
            )
            positives.append(pb.RegionRef(image_id=image_id, region_id=q.hits[0].regions[0].region_id))
        resp = stub.Search(
            pb.SearchRequest(top_k=len(same), examples=pb.ExamplesQuery(positives=positives, negatives=200))
        )
        found = {h.image_id for h in resp.hits}
        assert len(found & {i for i, _ in same}) >= len(same) - 1

        # a vector is a raw feature, mapped as the indexed ones; linear weights act on the
        # index's vectors z (normalised), so weights 2·z(v) score twice the vector query's
        dim = ex.dim
        v = stub.Search(pb.SearchRequest(top_k=2, vector=pb.VectorQuery(values=[1.0] * dim), query_expansion=0))
        assert len(v.hits) == 2
        z = server.search.index.prepare(np.ones((1, dim), np.float32))[0]
        lin = stub.Search(pb.SearchRequest(top_k=2, linear=pb.LinearQuery(weights=(2 * z).tolist(), bias=3.0)))
        assert [h.image_id for h in lin.hits] == [h.image_id for h in v.hits]
        assert lin.hits[0].score == pytest.approx(v.hits[0].score * 2 + 3.0, rel=1e-4)

        # every bad input: INVALID_ARGUMENT naming the field, and the index is unharmed
        cases = []
        req = mask_query(ci, inst)
        req.mask.image.data = b"garbage"
        cases.append((req, "mask.image"))
        req = mask_query(ci, inst)
        req.mask.mask.CopyFrom(pb.Mask(height=10, width=10, counts=[100]))
        cases.append((req, "mask.mask"))
        req = mask_query(ci, inst)
        req.mask.mask.CopyFrom(pb.Mask(height=ci.height, width=ci.width, counts=[ci.height * ci.width]))
        cases.append((req, "mask.mask"))  # empty
        req = pb.SearchRequest()
        req.mask.image.data = ci.path.read_bytes()
        req.mask.mask_image.data = png_bytes(np.zeros((7, 7), np.uint8))
        cases.append((req, "mask.mask_image"))
        cases.append((pb.SearchRequest(vector=pb.VectorQuery(values=[1.0] * (dim + 1))), "vector"))
        cases.append((pb.SearchRequest(region=pb.RegionRef(image_id="nope.png", region_id=0)), "image_id"))
        cases.append((pb.SearchRequest(region=pb.RegionRef(image_id=ci.image_id, region_id=100000)), "region_id"))
        cases.append((pb.SearchRequest(linear=pb.LinearQuery(weights=[1.0] * 3)), "linear.weights"))
        req = pb.SearchRequest()
        req.box.image.data = ci.path.read_bytes()
        req.box.box.CopyFrom(pb.Box(x0=500, y0=500, x1=600, y1=600))
        cases.append((req, "box.box"))
        cases.append((pb.SearchRequest(), "query"))
        cases.append(
            (pb.SearchRequest(examples=pb.ExamplesQuery(positives=positives, negatives=10**6)), "examples.negatives")
        )
        cases.append((pb.SearchRequest(examples=pb.ExamplesQuery()), "positives"))
        cases.append((pb.SearchRequest(top_k=5000, vector=pb.VectorQuery(values=[1.0] * dim)), "top_k"))
        cases.append(
            (pb.SearchRequest(regions_per_image=500, vector=pb.VectorQuery(values=[1.0] * dim)), "regions_per_image")
        )
        cases.append(
            (pb.SearchRequest(query_expansion=101, vector=pb.VectorQuery(values=[1.0] * dim)), "query_expansion")
        )
        for req, field in cases:
            err = call_error(stub.Search, req)
            assert err.details().startswith(field + ":"), (field, err.details())

        # remove through the stream
        rm = stub.IndexImages(iter([pb.IndexRequest(image_id=ci.image_id, remove=True)]))
        assert rm.removed == 1 and rm.total_images == N_IMAGES - 1
        ch.close()

    # a restarted daemon has everything it acknowledged (and not the removed image)
    with serving(ex, tmp_path, backend) as server:
        ch, stub = stub_for(server)
        other = collection.images[1]
        resp = stub.Search(mask_query(other, other.instances[0]))
        assert resp.searched_images == N_IMAGES - 1 and resp.hits[0].image_id == other.image_id
        ch.close()


@backends
def test_search_client_index_and_query(tmp_path, collection, capsys, backend):
    from regiond.client import search as client

    ex = lite_extractor()
    with serving(ex, tmp_path, backend) as server:
        base = ["--server", server.address, "--connect-timeout", "20"]
        folder = tmp_path / "photos"
        folder.mkdir()
        for ci in collection.images[:6]:
            (folder / ci.image_id).write_bytes(ci.path.read_bytes())
        (folder / "bad.png").write_bytes(b"nope")
        assert client.main(base + ["index", str(folder), "--no-progress", "--meta", "set=one"]) == 1  # bad.png
        out = capsys.readouterr()
        assert "6 indexed" in out.out and "bad.png" in out.err
        (folder / "bad.png").unlink()
        assert client.main(base + ["index", str(folder), "--no-progress"]) == 0
        assert "0 indexed" in capsys.readouterr().out  # everything skipped

        ci = collection.images[2]
        mask_png = tmp_path / "mask.png"
        mask_png.write_bytes(png_bytes(ci.instances[0].mask.astype(np.uint8) * 255))
        html = tmp_path / "hits.html"
        assert (
            client.main(
                base
                + ["query", str(ci.path), "--mask", str(mask_png), "-k", "3", "--out", str(html), "--where", "set=one"]
            )
            == 0
        )
        out = capsys.readouterr().out
        assert f"1. {ci.image_id}" in out and html.read_text().count("<figure>") == 4
        ys, xs = np.nonzero(ci.instances[0].mask)
        assert (
            client.main(
                base
                + [
                    "query",
                    str(ci.path),
                    "--box",
                    f"{xs.min()},{ys.min()},{xs.max() + 1},{ys.max() + 1}",
                    "--out",
                    str(html),
                ]
            )
            == 0
        )
        # --match: a box left to the daemon is matched by its regions; pooled is another ranking
        box_q = base + ["query", str(ci.path), "--box", f"{xs.min()},{ys.min()},{xs.max() + 1},{ys.max() + 1}"]
        ranked, _ = {}, capsys.readouterr()
        for name, extra in (("default", []), ("regions", ["--match", "regions"]), ("pooled", ["--match", "pooled"])):
            assert client.main(box_q + ["--out", str(html), "--expand", "0", *extra]) == 0
            ranked[name] = [line for line in capsys.readouterr().out.splitlines() if ". " in line and "score" in line]
        assert ranked["default"] == ranked["regions"] and ranked["pooled"] != ranked["regions"]
        with pytest.raises(SystemExit):  # argparse refuses it
            client.main(box_q + ["--out", str(html), "--match", "both"])
        assert "invalid choice: 'both'" in capsys.readouterr().err
        wrong = tmp_path / "wrong.png"
        wrong.write_bytes(png_bytes(np.ones((5, 5), np.uint8)))
        assert client.main(base + ["query", str(ci.path), "--mask", str(wrong), "--out", str(html)]) == 1
        assert "mask.mask_image" in capsys.readouterr().err

        # query expansion: the daemon's default, none, and a bad count refused with a message
        q = base + ["query", str(ci.path), "--mask", str(mask_png), "-k", "1", "--out", str(html)]
        top = {}
        for name, extra in (("default", []), ("none", ["--expand", "0"])):
            assert client.main(q + extra) == 0
            m = re.search(r"1\. (\S+) +score ([\d.]+)", capsys.readouterr().out)
            assert m and m.group(1) == ci.image_id
            top[name] = float(m.group(2))
        assert top["default"] != top["none"]  # the expansion moved the query
        assert client.main(q + ["--expand", "-1"]) == 1  # bad input, as a bad mask
        assert "--expand -1: must be 0 or more images" in capsys.readouterr().err


@backends
def test_searches_run_while_a_stream_indexes(tmp_path, collection, backend):
    import threading

    ex = lite_extractor()
    with serving(ex, tmp_path, backend, workers=2) as server:
        ch, stub = stub_for(server)
        first = collection.images[0]
        stub.IndexImages(iter([next(index_requests(collection))]))
        summary = {}
        t = threading.Thread(target=lambda: summary.update(s=stub.IndexImages(index_requests(collection))))
        t.start()
        seen = []
        query = pb.SearchRequest(top_k=3, region=pb.RegionRef(image_id=first.image_id, region_id=0))
        while t.is_alive() or len(seen) < 3:
            resp = stub.Search(query)
            assert resp.hits[0].image_id == first.image_id
            seen.append(resp.searched_images)
        t.join()
        seen.append(stub.Search(query).searched_images)  # the loop's last search may predate the final commit
        assert seen == sorted(seen) and seen[-1] == N_IMAGES and len(set(seen)) > 1
        assert summary["s"].indexed == N_IMAGES - 1 and summary["s"].skipped == 1
        ch.close()


@backends
def test_normalised_search_is_the_same_through_the_daemon_and_in_process(tmp_path, collection, backend):
    """Every query kind, through a real daemon (its index of `backend`) and against a FAISS
    index built in this process with the same extractor and normaliser: the same hits, the
    same scores."""
    from regiond.index import RegionIndex
    from regiond.index.normalising.corpus import normaliser_for
    from regiond.index.query.queries import box_mask, probe_from_examples, region_set_query

    ex = lite_extractor()
    norm = normaliser_for(ex)
    assert norm.kind == "whiten"
    local = RegionIndex(tmp_path / "local", dim=ex.dim, features=ex.features_name, normaliser=norm)
    for ci in collection.images:
        local.add(ci.image_id, ex.extract(ci.load()))
    ci = collection.images[3]
    rgb, inst = ci.load(), ci.instances[0]
    ys, xs = np.nonzero(inst.mask)
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    raw = ex.extract(rgb).features[0]
    with serving(ex, tmp_path, backend) as server:
        ch, stub = stub_for(server)
        stub.IndexImages(index_requests(collection))
        assert stub.GetInfo(pb.InfoRequest()).index_normaliser == norm.describe()
        positives = [pb.RegionRef(image_id=c.image_id, region_id=1) for c in collection.images[:2]]
        # the daemon's own index draws the random negatives (each backend samples its own way)
        probe = probe_from_examples(server.search.index, [(p.image_id, 1) for p in positives], negatives=200)
        set_q, set_w = region_set_query(ex, rgb, box_mask(box, rgb.shape[:2]))
        assert len(set_q) > 1
        cases = {
            "mask": (mask_query(ci, inst), dict(query=ex.pool(rgb, inst.mask[None])[0])),
            "box pooled": (
                pb.SearchRequest(
                    box=pb.BoxQuery(
                        image=pb.Image(data=ci.path.read_bytes()),
                        box=pb.Box(x0=box[0], y0=box[1], x1=box[2], y1=box[3]),
                        match=pb.QUERY_MATCH_POOLED,
                    )
                ),
                dict(query=ex.pool(rgb, box_mask(box, rgb.shape[:2])[None])[0]),
            ),
            "box, match unset: by its regions": (
                pb.SearchRequest(
                    box=pb.BoxQuery(
                        image=pb.Image(data=ci.path.read_bytes()),
                        box=pb.Box(x0=box[0], y0=box[1], x1=box[2], y1=box[3]),
                    )
                ),
                dict(query=set_q, weights=set_w),
            ),
            "box by regions": (
                pb.SearchRequest(
                    box=pb.BoxQuery(
                        image=pb.Image(data=ci.path.read_bytes()),
                        box=pb.Box(x0=box[0], y0=box[1], x1=box[2], y1=box[3]),
                        match=pb.QUERY_MATCH_REGIONS,
                    )
                ),
                dict(query=set_q, weights=set_w),
            ),
            "vector": (pb.SearchRequest(vector=pb.VectorQuery(values=raw.tolist())), dict(query=raw)),
            "region": (
                pb.SearchRequest(region=pb.RegionRef(image_id=ci.image_id, region_id=2)),
                dict(query=local.region_vector(ci.image_id, 2)),
            ),
            "examples": (
                pb.SearchRequest(examples=pb.ExamplesQuery(positives=positives, negatives=200)),
                dict(query=probe.weights, bias=probe.bias, normalize=False),
            ),
        }
        for (name, (req, kw)), n in itertools.product(cases.items(), (None, 0, 3)):
            req.top_k, req.regions_per_image = 6, 2
            if n is not None:
                req.query_expansion = n
            # one region's feature is expanded (unset: the daemon's default); sets and probes never
            single = "regions" not in name and name != "examples"
            expand = (SERVED_EXPANSION if n is None else n) if single else 0
            got = stub.Search(req).hits
            want = local.search(k=6, regions_per_image=2, expand=expand, **kw)
            assert [h.image_id for h in got] == [h.image_id for h in want], (name, n)
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-4), (name, n)
            assert [[r.region_id for r in h.regions] for h in got] == [
                [r.region_id for r in h.regions] for h in want
            ], (name, n)
        bad = pb.SearchRequest(
            box=pb.BoxQuery(image=pb.Image(data=ci.path.read_bytes()), box=pb.Box(x0=0, y0=0, x1=9, y1=9), match=7)
        )
        assert call_error(stub.Search, bad).details().startswith("box.match:")
        ch.close()
    local.close()
