"""Running a batch job's items: one after the other in this process, or on Ray, where a Ray
Data pipeline's map stage is a pool of actors, each building its worker once (one model
load per actor) and then running items one at a time.

    with ray_cluster(RayOptions(address="local")):          # only for Ray
        run_items(rows, make_worker, on_result, ray=opts)   # ray=None: in this process

A row is (key, payload); a worker is a callable `payload (str) → result (str)` made by
`make_worker()` (in each actor, so it must pickle: a module-level class or a partial of one);
rows and results are strings (JSON) so that Arrow never guesses a schema. on_result(key, ok,
result, error) runs in this process as each item finishes.

Failures:
  - the worker raises: the item comes back as an error (the caller reports it; never
    retried: a bad source stays bad);
  - an actor dies (killed, out of memory, a crash in native code): Ray restarts it and runs
    its item again (Ray Data's actor pools restart actors and retry their tasks without
    limit: a worker fails an item that keeps killing its actors itself, as
    jobs.ExtractWorker does after `max_tries`); an item whose block still errors is dropped
    (Ray Data's max_errored_blocks) and reported as lost.
Each item is its own block, so one item's failure never takes another with it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from regiond.core.flags import flag, not_a_flag

log = logging.getLogger(__name__)

LOCAL = "local"
#: on_result(key, ok, result, error)
OnResult = Callable[[str, bool, str, str], None]
MakeWorker = Callable[[], Callable[[str], str]]


@dataclass(frozen=True)
class RayOptions:
    """Where and how a job runs on Ray. `actors` and `cpus_per_actor` are the --actors and
    --cpus-per-actor flags of `regiond extract` and `regiond label` (regiond.core.flags); --ray
    [ADDRESS] and --gpus-per-actor are flags of their own there, which say more than the field
    (whether to use Ray at all; a default that follows --device)."""

    address: str = field(
        default=LOCAL,
        metadata=not_a_flag(
            '"local": start a Ray instance on this machine for the job (stopped after it); else a cluster\'s '
            'address (`ray start --head` prints it; "auto" finds the one this machine belongs to)'
        ),
    )
    actors: int | None = field(
        default=None,
        metadata=flag(
            "actors, each loading the models once (default: as many as the cluster's CPUs, or GPUs, allow)",
            metavar="N",
        ),
    )
    cpus_per_actor: float = field(
        default=1.0,
        metadata=flag("CPUs each actor reserves (fractions share a small machine)", metavar="C"),
    )
    gpus_per_actor: float = field(
        default=0.0, metadata=not_a_flag("GPUs each actor reserves (the models run on CUDA when > 0)")
    )
    object_store_mb: int = field(
        default=128, metadata=not_a_flag("object store of a local instance (the rows and results are tiny)")
    )
    max_tries: int = field(
        default=3, metadata=not_a_flag("tries of an item whose actor dies under it before it is failed")
    )

    def __post_init__(self):
        if self.actors is not None and self.actors < 1:
            raise ValueError(f"actors must be at least 1, got {self.actors}")
        if self.cpus_per_actor <= 0 or self.gpus_per_actor < 0:
            raise ValueError("cpus_per_actor must be positive and gpus_per_actor not negative")

    @property
    def threads(self) -> int:
        """Torch threads an actor's models use."""
        return max(1, int(self.cpus_per_actor))


#: seconds a local Ray start waits for its GCS server's port file (Ray's default 30 ran out on a
#: cold 2-core machine, while Ray's binaries were first read from disk; Ray itself waits 120 where
#: its GCS is known to be slow to start). The environment variable, when set, decides.
GCS_WAIT_S = 120
GCS_WAIT_ENV = "RAY_gcs_server_port_wait_time_s"


def _ray():
    """The ray module, imported on first use (heavy: only jobs run on Ray need it)."""
    # Ray reads these when a cluster starts: our jobs never report usage statistics
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault(GCS_WAIT_ENV, str(GCS_WAIT_S))
    import ray  # heavy, optional: only for jobs on Ray
    import ray.data  # noqa: F401

    return ray


@contextmanager
def ray_cluster(opts: RayOptions) -> Iterator[None]:
    """Connected to Ray for the block: a Ray instance already initialised in this process (a
    test session's) is used as it is; "local" starts one and stops it afterwards; an address
    joins that cluster and leaves it afterwards."""
    ray = _ray()
    if ray.is_initialized():
        yield
        return
    if opts.address == LOCAL:
        ray.init(object_store_memory=opts.object_store_mb << 20, include_dashboard=False, logging_level=logging.WARNING)
    else:
        ray.init(address=opts.address, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


def run_items(
    rows: list[tuple[str, str]], make_worker: MakeWorker, on_result: OnResult, ray: RayOptions | None = None
) -> None:
    """Every (key, payload) row through a worker: here, one after the other (ray None), or on
    a pool of actors of the connected Ray cluster (ray_cluster)."""
    if ray is not None:
        lost = {k for k, _ in rows} - run_pool(rows, make_worker, ray, on_result)
        for key in sorted(lost):
            on_result(key, False, "", "lost: no actor could run it")
        return
    work = make_worker() if rows else None
    for key, payload in rows:
        result, error = _attempt(work, payload)
        on_result(key, not error, result, error)


def _attempt(work: Callable[[str], str], payload: str) -> tuple[str, str]:
    try:
        return work(payload), ""
    except Exception as e:  # a bad item: reported, not retried
        log.debug("item failed", exc_info=True)
        return "", f"{type(e).__name__}: {e}"


class PoolActor:
    """One actor of the pool: builds its worker once, then runs the items it is given."""

    def __init__(self, make_worker: MakeWorker):
        self.work = make_worker()

    def __call__(self, batch: dict) -> dict:
        out: dict[str, list] = {"key": [], "ok": [], "result": [], "error": []}
        for key, payload in zip(batch["key"], batch["payload"]):
            result, error = _attempt(self.work, str(payload))
            out["key"].append(str(key))
            out["ok"].append(not error)
            out["result"].append(result)
            out["error"].append(error)
        return out


def pool_size(opts: RayOptions, items: int) -> int:
    """Actors for `items` items on the connected cluster."""
    if opts.actors is not None:
        return max(1, min(opts.actors, items))
    res = _ray().cluster_resources()
    n = int(res.get("CPU", 1) // opts.cpus_per_actor)
    if opts.gpus_per_actor:
        n = min(n, int(res.get("GPU", 0) // opts.gpus_per_actor))
    return max(1, min(n, items))


def run_pool(rows: list[tuple[str, str]], make_worker: MakeWorker, opts: RayOptions, on_result: OnResult) -> set[str]:
    """run_items on Ray; returns the keys that came back (the others' blocks were dropped)."""
    if not rows:
        return set()
    ray = _ray()
    ctx = ray.data.DataContext.get_current()
    saved = ctx.max_errored_blocks
    ctx.max_errored_blocks = -1  # a block that still fails is dropped (and reported), not the job
    try:
        ds = ray.data.from_items([{"key": k, "payload": p} for k, p in rows], override_num_blocks=len(rows))
        out = ds.map_batches(
            PoolActor,
            fn_constructor_args=(make_worker,),
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=pool_size(opts, len(rows))),
            num_cpus=opts.cpus_per_actor,
            num_gpus=opts.gpus_per_actor or None,
        )
        seen = set()
        for row in out.iter_rows():
            seen.add(str(row["key"]))
            on_result(str(row["key"]), bool(row["ok"]), str(row["result"]), str(row["error"]))
        return seen
    finally:
        ctx.max_errored_blocks = saved
