"""How the daemon runs: ServeConfig, every field a `regiond serve` option. Light to import
(no models), so the CLI can build its parser without loading torch."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from regiond.core.frames import DEFAULT_MAX_PIXELS

DEFAULT_LISTEN = "127.0.0.1:50051"
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


@dataclass
class ServeConfig:
    """How the daemon runs. Every field is a `regiond serve` option.

    listen          HOST:PORT to serve on (port 0 = any free port)
    data_dir        where the daemon keeps what it must keep (the region index)
    profile         extractor profile, "auto" = best one whose weights are present
    weights         weights directory (None: $REGIOND_WEIGHTS or the default)
    sam_generator   SAM profiles' mask generator: "fast" (default) or "reference"
                    (segment-anything's own SamAutomaticMaskGenerator)
    token           bearer token every call must carry (None: no authentication)
    tls_cert/key    PEM files; both or neither
    insecure        allow a non-loopback address without a token
    metrics_port    Prometheus exporter port on the listen host (None: off; 0: any free port)
    max_message_mb  largest request and reply message, in MiB (None: the limits below)
    queue           work-queue capacity (jobs waiting)
    workers         threads running the models, each with its own extractor
    torch_threads   torch intra-op threads (None: 1 for lite, all cores for network backbones); with several
                    workers on a small CPU, 1 avoids threads spinning against each other
    max_batch       extraction jobs batched together (extractors with extract_batch)
    unary_wait      seconds a unary call waits for room in a full queue before RESOURCE_EXHAUSTED
    inflight        frames of one stream between decoding and the reply
    max_pixels      largest image accepted (pixels)
    window_step     default frames between activity windows
    heads           directory of trained heads to serve, or "bundled": the ones shipped for the
                    profile (None: regions only)
    index           keep a region index (IndexImages/Search); False: UNIMPLEMENTED
    index_location  where: None = <data_dir>/index (FAISS over SQLite); another directory;
                    milvus://HOST:PORT[/COLLECTION][?index=auto|flat|hnsw|ivfpq&expected_regions=N]
                    (a Milvus server or cluster, shared by any number of daemons); or
                    milvus-lite:PATH (Milvus Lite in the daemon's process)
    grace           seconds in-flight calls get to finish on shutdown
    idle_timeout    seconds a stream (or IndexImages) may wait for the client's next message before
                    it is closed with DEADLINE_EXCEEDED (0: never)
    warmup          run each extractor once before reporting SERVING (first calls pay no
                    lazy initialisation)
    rpc_threads     gRPC handler threads (each open stream holds one)
    max_side        the working size: frames with a longer side are processed at this long side, their
                    masks returned at their own size (None: the profile's working size; 0: every frame
                    at its own size)
    max_streams     concurrent streams (StreamVideo, StreamScene) at most; one more is refused with
                    RESOURCE_EXHAUSTED and trailing metadata retry-after-ms (0: no cap but rpc_threads)
    """

    listen: str = DEFAULT_LISTEN
    data_dir: Path = field(default_factory=lambda: Path.home() / ".local" / "share" / "regiond")
    profile: str = "auto"
    weights: Path | None = None
    sam_generator: str = "fast"
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    metrics_port: int | None = None
    max_message_mb: int | None = None
    queue: int = 32
    workers: int = 1
    torch_threads: int | None = None
    max_batch: int = 8
    unary_wait: float = 0.5
    inflight: int = 4
    max_pixels: int = DEFAULT_MAX_PIXELS
    window_step: int = 4
    heads: Path | None = None
    index: bool = True
    index_location: str | None = None
    grace: float = 10.0
    idle_timeout: float = 300.0
    warmup: bool = True
    rpc_threads: int = 64
    max_streams: int = 0
    max_side: int | None = None

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
        if not self.idle_timeout >= 0:
            raise ConfigError("--idle-timeout must be 0 (never) or a positive number of seconds")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
