"""The committed generated code matches regions.proto, and the API keeps DESIGN.md's fixed names."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load_generator():
    spec = importlib.util.spec_from_file_location("protos_generate", REPO / "protos" / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_code_is_current():
    gen = _load_generator()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = gen.generate(Path(tmp))
    stale = [name for name, data in fresh.items() if (REPO / "protos" / name).read_bytes() != data]
    assert not stale, f"stale generated code {stale}: run `.venv/bin/python protos/generate.py`"


def test_fixed_names_and_numbers():
    from regiond.api.v1 import regions_pb2 as pb

    svc = pb.DESCRIPTOR.services_by_name["RegionService"]
    assert pb.DESCRIPTOR.package == "regions.v1"
    methods = {
        m.name: (m.input_type.name, m.output_type.name, m.client_streaming, m.server_streaming) for m in svc.methods
    }
    assert methods == {
        "ExtractRegions": ("ExtractRequest", "RegionSet", False, False),
        "StreamVideo": ("VideoFrame", "VideoUpdate", True, True),
        "StreamScene": ("SceneFrame", "SceneUpdate", True, True),
        "IndexImages": ("IndexRequest", "IndexSummary", True, False),
        "Search": ("SearchRequest", "SearchResponse", False, False),
        "GetInfo": ("InfoRequest", "ServerInfo", False, False),
    }

    def num(msg, field):
        return pb.DESCRIPTOR.message_types_by_name[msg].fields_by_name[field].number

    fixed = [
        ("Image", "data", 1),
        ("ExtractRequest", "image", 1),
        ("RegionSet", "width", 1),
        ("RegionSet", "height", 2),
        ("RegionSet", "regions", 3),
        ("Region", "id", 1),
        ("Region", "mask", 2),
        ("Mask", "height", 1),
        ("Mask", "width", 2),
        ("Mask", "counts", 3),
        ("VideoFrame", "image", 1),
        ("SceneFrame", "color", 1),
    ]
    assert [(m, f, num(m, f)) for m, f, _ in fixed] == fixed
