"""``chatanyone prepare ... --ray [ADDRESS]``: the per-clip work of :mod:`motion.prepare` as Ray tasks.

Install with ``pip install -e '.[scale]'`` (the ``ray`` wheel, no extra torch). The local path
(:func:`motion.prepare.run` with ``--workers``) stays the default and never imports Ray.

How it runs: :func:`motion.prepare.run` does everything it does locally (find the inputs, skip clips that
are already complete, write ``dataset.json``) and hands each remaining clip to :class:`RayExecutor`, a
``concurrent.futures``-style executor whose ``submit`` starts one Ray task (:data:`TASK_RESOURCES`: one CPU
per clip, retried when a worker or node dies) running :func:`motion.prepare._worker`, the same function the
local process pool runs. Each task writes its clip's ``NAME.npz``, ``NAME.wav`` and ``NAME.png`` itself,
all-or-nothing (:func:`motion.fileio.atomic_output`); only the driver writes ``dataset.json``, after each
clip, atomically. So the output folder is the same as the local path's (same files, same manifest entries),
a failed clip is reported and skipped without stopping the others, nothing is half-written, and an
interrupted run restarts where it stopped.

Where things must live on a cluster: every node needs this package installed (same version) and sees the
inputs, the output folder and the MediaPipe models at the same paths (a shared filesystem, e.g. NFS or a
mounted bucket); each task changes into the driver's working directory first, so relative paths mean on the
workers what they mean to the driver.

Addresses (``--ray ADDRESS``): none or ``local`` starts a private Ray instance on this machine with
``--workers`` CPUs (shut down at the end); ``auto`` joins the cluster started on this machine by
``ray start --head``; ``HOST:PORT`` (the GCS address ``ray start --head`` prints) or ``ray://HOST:10001``
(Ray Client) joins a remote cluster, whose CPUs decide the parallelism.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
import re
from pathlib import Path
from typing import Any, Callable

from .errors import ChatAnyoneError

#: Ray resources and retry policy of one clip's task: one CPU (MediaPipe Tasks runs each landmarker
#: single-threaded in VIDEO mode), retried twice if its worker process or node dies (a clip that raises
#: is not retried: :func:`motion.prepare._worker` returns its error as a result).
TASK_RESOURCES: dict[str, Any] = {"num_cpus": 1, "max_retries": 2}

#: What ``--ray`` accepts as an address; any other word after a bare ``--ray`` is an input path
#: (:class:`motion.prepare.cli._RayAddress`).
ADDRESS_RE = re.compile(r"^(local|auto|ray://\S+|[A-Za-z0-9_.\-\[\]:]+:\d{1,5})$")

#: Object store of a private local instance (bytes): tasks return small manifest entries only.
LOCAL_OBJECT_STORE_BYTES = 100 * 2**20


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ChatAnyoneError("--ray needs Ray: pip install -e '.[scale]' (or pip install ray)") from None
    return ray


def _run_in(cwd: str, fn: Callable, args: tuple, kwargs: dict) -> Any:
    """Body of each Ray task: run ``fn`` in the driver's working directory (the same path on a shared FS)."""
    if os.path.isdir(cwd):
        os.chdir(cwd)
    return fn(*args, **kwargs)


class RayExecutor:
    """A ``concurrent.futures``-style executor that runs each submitted call as one Ray task.

    Ray is imported and connected on the first :meth:`submit` (an executor that is never used never starts
    Ray). ``with RayExecutor(...) as ex:`` shuts down what it started.

    Args:
        address: ``None``/``"local"`` (a new local instance with ``workers`` CPUs), ``"auto"``,
            ``"HOST:PORT"`` or ``"ray://HOST:PORT"`` (an existing cluster).
        workers: CPUs of a new local instance (ignored for a cluster: its resources decide).
        resources: per-task Ray options (default :data:`TASK_RESOURCES`).
    Raises:
        ChatAnyoneError: Ray is not installed (at construction, before anything is written), or the
            cluster cannot be reached (at the first submit).
    """

    def __init__(self, address: str | None = None, workers: int = 1,
                 resources: dict[str, Any] | None = None) -> None:
        self.ray = _import_ray()
        self.address = address or "local"
        if not ADDRESS_RE.match(self.address):
            raise ChatAnyoneError(f"--ray {self.address!r} is not an address (local, auto, HOST:PORT or ray://HOST:PORT)")
        if workers < 1:
            raise ChatAnyoneError("--workers must be >= 1")
        self.workers = workers
        self.resources = dict(TASK_RESOURCES if resources is None else resources)
        self._remote = None
        self._started = False
        self._refs: list[Any] = []
        self.cluster: dict[str, float] = {}

    def _connect(self) -> None:
        import logging

        ray = self.ray
        if ray.is_initialized():
            pass
        elif self.address == "local":
            ray.init(address="local", num_cpus=self.workers, include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, log_to_driver=False,
                     logging_level=logging.ERROR, configure_logging=False)
            self._started = True
        else:
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR,
                         configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ChatAnyoneError(f"cannot reach the Ray cluster at {self.address}: "
                                      f"{str(e).splitlines()[0] if str(e) else e.__class__.__name__}") from None
            self._started = True
        self.cluster = dict(ray.cluster_resources())
        self._remote = ray.remote(_run_in)

    def submit(self, fn: Callable, *args: Any, **kwargs: Any) -> cf.Future:
        """Start ``fn(*args, **kwargs)`` as a Ray task; ``fn`` must be importable on the workers (a module
        function). Returns a :class:`concurrent.futures.Future` of its result."""
        if self._remote is None:
            self._connect()
        ref = self._remote.options(**self.resources).remote(os.getcwd(), fn, args, kwargs)
        self._refs.append(ref)
        return ref.future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Cancel unfinished tasks when ``cancel_futures`` (or on an exception), then disconnect from (and,
        for a local instance, stop) Ray if this executor connected."""
        if self._remote is not None and cancel_futures:
            for ref in self._refs:
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:  # already finished, or the cluster is gone
                    pass
        self._refs.clear()
        if self._started:
            self.ray.shutdown()
            self._started = False
        self._remote = None

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.shutdown(cancel_futures=exc_type is not None)

    def describe(self) -> str:
        """One line: where the tasks ran (after the first submit)."""
        where = "a local Ray instance" if self.address == "local" else f"the Ray cluster at {self.address}"
        cpus = self.cluster.get("CPU")
        nodes = sum(1 for k in self.cluster if k.startswith("node:") and k != "node:__internal_head__")
        return f"ray: {where}, {nodes} node(s), {cpus:g} CPU(s)" if cpus else f"ray: {where}"


def run(inputs: list[str | os.PathLike], out_dir: str | os.PathLike, *, address: str | None = None,
        workers: int = 1, **kwargs: Any):
    """:func:`motion.prepare.run` with each clip as a Ray task (same arguments, plus ``address``).

    Returns:
        :class:`motion.prepare.Report`, as the local path.
    Raises:
        ChatAnyoneError: Ray missing, cluster unreachable, or what :func:`motion.prepare.run` raises.
    """
    from . import prepare

    ex = RayExecutor(address, workers=workers)
    rep = prepare.run(inputs, Path(out_dir), workers=workers, executor=ex, **kwargs)
    return rep
