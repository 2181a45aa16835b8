"""How the daemon runs: ServeConfig, every field a `regiond serve` option. Light to import
(no models), so the CLI can build its parser without loading torch."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from regiond.core.flags import flag
from regiond.core.frames import DEFAULT_MAX_PIXELS
from regiond.core.net import is_loopback

DEFAULT_LISTEN = "127.0.0.1:50051"
TOKEN_ENV = "REGIOND_TOKEN"  # the token when --token is not given
#: handler threads kept out of the concurrent-call limit (grpc's maximum_concurrent_rpcs)
RESERVED_RPC_THREADS = 4
MIB = 1024 * 1024
#: the reply limit without --max-message-mb (a scene's fused PLY is thinned to fit in it)
DEFAULT_REPLY_MB = 64
#: a request's bytes per pixel at most: raw RGB8 (3) plus float32 depth (4)
REQUEST_BYTES_PER_PIXEL = 7


def request_limit(max_pixels: int) -> int:
    """The gRPC receive limit matched to --max-pixels: the largest valid request (a raw RGB8
    image with float32 depth at max_pixels) plus 1 MiB for the rest of the message. Anything
    bigger cannot be valid, so gRPC refuses it (RESOURCE_EXHAUSTED) before it is parsed."""
    return REQUEST_BYTES_PER_PIXEL * int(max_pixels) + MIB


class ConfigError(ValueError):
    """A serve configuration the daemon refuses (e.g. an open address without a token)."""


PROFILE_CHOICES = ("auto", "paper", "balanced", "lite")


@dataclass
class ServeConfig:
    """How the daemon runs. Every field is a `regiond serve` option, generated from the field
    (regiond.core.flags): its help is the field's metadata, `regiond serve --help` lists them.
    `profile`, `weights` and `sam_generator` are also the model options of the commands that
    build an extractor (commands.regions.add_model_options)."""

    listen: str = field(
        default=DEFAULT_LISTEN,
        metadata=flag(
            "address to listen on (port 0 = any free port); a non-loopback host needs a token or --insecure",
            metavar="HOST:PORT",
        ),
    )
    data_dir: Path = field(
        default_factory=lambda: Path.home() / ".local" / "share" / "regiond",
        metadata=flag("where the daemon keeps what it must keep: its region index", metavar="DIR"),
    )
    profile: str = field(
        default="auto",
        metadata=flag(
            "paper: SAM ViT-H + SLIC, DINOv2 ViT-L/14; balanced: SAM ViT-B + SLIC, DINOv2 ViT-B/14; lite: SLIC + "
            "classic features, no weights; auto (default): the best profile whose weights are present, else lite "
            "(and it says so)",
            choices=PROFILE_CHOICES,
        ),
    )
    weights: Path | None = field(
        default=None,
        metadata=flag(
            "directory of model checkpoints under their official names (default: $REGIOND_WEIGHTS, else "
            "~/.cache/regiond/weights); see `regiond models`",
            metavar="DIR",
        ),
    )
    sam_generator: str = field(
        default="fast",
        metadata=flag(
            "SAM profiles' mask generator: fast (default; segment-anything's masks several times faster, "
            "bench/amg.py) or reference (segment-anything's own SamAutomaticMaskGenerator)",
            choices=("fast", "reference"),
        ),
    )
    token: str | None = field(
        default=None,
        metadata=flag(
            "bearer token every call must carry as 'authorization: Bearer T' metadata "
            f"(default: ${TOKEN_ENV}; none = no authentication)"
        ),
    )
    tls_cert: Path | None = field(default=None, metadata=flag("PEM certificate chain (enables TLS)", metavar="FILE"))
    tls_key: Path | None = field(default=None, metadata=flag("PEM private key for --tls-cert", metavar="FILE"))
    insecure: bool = field(default=False, metadata=flag("allow a non-loopback --listen address without a token"))
    metrics_port: int | None = field(
        default=None,
        metadata=flag(
            "serve Prometheus metrics on this port of the listen host (0 = any free port; default: off)", metavar="P"
        ),
    )
    max_message_mb: int | None = field(
        default=None,
        metadata=flag(
            "largest request and reply message, in MiB (default: requests up to a raw RGB8 image with float32 "
            "depth at --max-pixels plus 1 MiB, i.e. 7 bytes a pixel + 1 MiB = 113 MiB at 4096×4096; replies up "
            "to 64 MiB)",
            metavar="N",
        ),
    )
    queue: int = field(
        default=32,
        metadata=flag(
            "work-queue capacity (jobs waiting): streams wait (backpressure) and unary calls get "
            "RESOURCE_EXHAUSTED when it stays full",
            metavar="N",
        ),
    )
    workers: int = field(
        default=1, metadata=flag("threads running the models, each with its own extractor", metavar="N")
    )
    torch_threads: int | None = field(
        default=None,
        metadata=flag(
            "torch intra-op threads (default: 1 for lite, whose ops are too small to split; all cores for "
            "network backbones); 1 suits --workers > 1 on a small CPU",
            metavar="N",
        ),
    )
    max_batch: int = field(
        default=8,
        metadata=flag("extraction jobs a worker takes together when its extractor batches them", metavar="N"),
    )
    unary_wait: float = field(
        default=0.5,
        metadata=flag("seconds a unary call waits for room in a full queue before RESOURCE_EXHAUSTED", metavar="S"),
    )
    inflight: int = field(default=4, metadata=flag("frames of one stream between decoding and the reply", metavar="N"))
    max_pixels: int = field(
        default=DEFAULT_MAX_PIXELS,
        metadata=flag("largest image accepted, in pixels (default: 4096×4096 = 16777216)", metavar="N"),
    )
    window_step: int = field(
        default=4,
        metadata=flag("default frames between activity windows (clients may set their own)", metavar="K"),
    )
    heads: Path | None = field(
        default=None,
        metadata=flag(
            "directory of trained heads (scene labeler, activity scorer) to serve: segment/, scene/, activity/ as "
            "`regiond train` writes them (a head trained on another profile's features is refused); 'bundled': the "
            "demonstration heads that ship for the lite profile (classic-32), trained on generated rooms and clips "
            "only, not a model of real rooms (docs/heads.md; your own: docs/own-labels.md); the start-up log says "
            "what each head was trained on; default: none, regions only",
            metavar="DIR|bundled",
        ),
    )
    index: bool = field(
        default=True, metadata=flag("keep no region index (IndexImages and Search answer UNIMPLEMENTED)")
    )
    index_location: str | None = field(
        default=None,
        metadata=flag(
            "where the region index is: a directory (FAISS over SQLite; default DATA_DIR/index), "
            "milvus://HOST:PORT[/COLLECTION][?index=auto|flat|hnsw|ivfpq&expected_regions=N] (a Milvus server or "
            "cluster; several daemons may share one collection), or milvus-lite:PATH (Milvus Lite in this process)",
            name="--index",
            metavar="LOCATION",
        ),
    )
    grace: float = field(default=10.0, metadata=flag("seconds in-flight calls get to finish on shutdown", metavar="S"))
    idle_timeout: float = field(
        default=300.0,
        metadata=flag(
            "close a stream (StreamVideo, StreamScene, IndexImages) whose client sent nothing for S seconds with "
            "DEADLINE_EXCEEDED (0: never)",
            metavar="S",
        ),
    )
    exit_with_parent: int = field(
        default=0,
        metadata=flag(
            "stop as on SIGTERM once the process PID, which started the daemon, is gone (spawn_daemon passes "
            "its own: a daemon it starts does not outlive it; 0: never)",
            metavar="PID",
        ),
    )
    warmup: bool = field(
        default=True,
        metadata=flag(
            "report SERVING without running each extractor once first (the first calls then pay the models' "
            "lazy initialisation, and the first scene the fusion's compiled loops)"
        ),
    )
    rpc_threads: int = field(
        default=64,
        metadata=flag(
            f"gRPC handler threads; each open stream holds one, and calls beyond N - {RESERVED_RPC_THREADS} at "
            "once are refused (RESOURCE_EXHAUSTED)",
            metavar="N",
        ),
    )
    max_streams: int = field(
        default=0,
        metadata=flag(
            "serve at most N streams (StreamVideo, StreamScene) at once; one more is refused with "
            "RESOURCE_EXHAUSTED and trailing metadata retry-after-ms, which the clients wait and retry within "
            "their --retry-for (default 0: no cap but --rpc-threads)",
            metavar="N",
        ),
    )
    max_side: int | None = field(
        default=None,
        metadata=flag(
            "working size: frames with a longer side are processed (masks, features) with their long side at N, "
            "their masks returned at their own size (default: the profile's: lite 640, balanced 896, paper none, "
            "the paper's native resolution; 0: every frame at its own size; docs/live.md)",
            metavar="N",
        ),
    )

    @property
    def index_at(self) -> str | Path:
        """Where the region index is (index_location, or <data_dir>/index)."""
        return self.index_location or Path(self.data_dir) / "index"

    @property
    def max_message_bytes(self) -> int:
        """gRPC's send limit: the largest reply."""
        return int(self.max_message_mb or DEFAULT_REPLY_MB) * MIB

    @property
    def receive_message_bytes(self) -> int:
        """gRPC's receive limit: --max-message-mb when given, else matched to max_pixels."""
        return int(self.max_message_mb) * MIB if self.max_message_mb else request_limit(self.max_pixels)

    def host_port(self) -> tuple[str, int]:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"--listen {self.listen!r}: expected HOST:PORT")
        return host.strip("[]") or "0.0.0.0", int(port)

    def check(self) -> None:
        host, _ = self.host_port()
        if not self.token and not self.insecure and not is_loopback(host):
            raise ConfigError(
                f"refusing to listen on non-loopback address {host!r} without a token: "
                f"set --token (or REGIOND_TOKEN), or pass --insecure"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
        for name in ("queue", "workers", "max_batch", "inflight", "max_message_mb", "max_pixels", "window_step"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_side is not None and self.max_side != 0 and self.max_side < 32:
            raise ConfigError("--max-side must be 0 (every frame at its own size) or at least 32 pixels")
        if self.max_streams < 0:
            raise ConfigError("--max-streams must be 0 (no cap) or a positive number of streams")
        if self.rpc_threads <= RESERVED_RPC_THREADS:
            raise ConfigError(f"--rpc-threads must be more than {RESERVED_RPC_THREADS}")
        if not self.idle_timeout >= 0:
            raise ConfigError("--idle-timeout must be 0 (never) or a positive number of seconds")
        if self.exit_with_parent and self.exit_with_parent != os.getppid():
            raise ConfigError(
                f"--exit-with-parent {self.exit_with_parent}: the daemon was started by process {os.getppid()}"
            )
