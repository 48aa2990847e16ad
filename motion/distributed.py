"""``chatanyone train CONFIG --nproc N`` and ``torchrun ... -m motion.train CONFIG``: data-parallel training
with PyTorch DistributedDataParallel (DDP).

Everything here plugs into :func:`motion.train.train` through its ``distributed=`` argument (a
:class:`DistContext`; ``None``, the default, is the single-process path, unchanged). The same config file
trains either way:

* **Process group**: from the variables ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), or from :func:`launch`, which starts ``N`` local
  processes (``torch.multiprocessing``, spawn) with the same variables on a free loopback port. Backend
  ``nccl`` with one GPU per process (``cuda:LOCAL_RANK``) when CUDA is available, else ``gloo`` on CPU
  (override: ``CHATANYONE_DDP_BACKEND=gloo``).
* **Each rank its own shard of windows**: every rank builds the same training items from the same data and
  draws the same *global* batch of ``batch_size`` windows from the same seeded generator (cheap: index
  draws and array crops); rank ``r`` keeps rows ``[r*B/N, (r+1)*B/N)`` and runs the model only on those.
  DDP averages the gradients, so one step sees exactly the windows one process would have seen with the
  same config and seed, and follows the same loss curve within the diffusion noise (``batch_size`` must be
  divisible by the number of ranks). Diffusion noise, timesteps and dropout are drawn per rank (the torch
  generator is re-seeded with ``seed + rank`` at each stage).
* **Checks**: the first global batch of each stage is hashed on every rank and compared (ranks that read
  different data, e.g. a data path that is not on a shared filesystem, stop with an error); after each
  stage the parameters are hashed on every rank and must be identical (recorded in ``train_log.json``).
* **Logging**: the logged loss, mse and velocity terms are averaged over ranks (``all_reduce``); progress
  bars only on rank 0.
* **Writing**: only rank 0 writes the checkpoint, ``train_log.json`` and the body variance compensation.

Not sharded (each rank repeats it): loading the clips and their audio features, and the face stage's pass
over the body data between the two stages.
"""
from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from .errors import ChatAnyoneError

#: environment variables ``torchrun`` sets for every process
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """True inside a process started by ``torchrun`` (or any launcher setting :data:`TORCHRUN_ENV`) with
    more than one process in the world."""
    return all(k in os.environ for k in TORCHRUN_ENV) and int(os.environ["WORLD_SIZE"]) > 1


def default_backend() -> str:
    """``nccl`` when CUDA is available, else ``gloo``; ``$CHATANYONE_DDP_BACKEND`` overrides."""
    b = os.environ.get("CHATANYONE_DDP_BACKEND")
    if b:
        return b
    return "nccl" if torch.cuda.is_available() else "gloo"


def check_batch_size(batch_size: int, world_size: int) -> None:
    """Raises ChatAnyoneError unless the global batch splits evenly over the ranks."""
    if batch_size % world_size:
        raise ChatAnyoneError(f"batch_size {batch_size} does not split over {world_size} processes: use a "
                              f"multiple of {world_size} (it is the global batch, shared by all ranks)")


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = a.detach().cpu().contiguous().numpy() if isinstance(a, torch.Tensor) else np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _flat(batch) -> list:
    out = []
    for x in batch:
        if isinstance(x, (tuple, list)):
            out += _flat(x)
        else:
            out.append(x)
    return out


def parameter_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's parameters (names, dtypes, shapes and bytes, in ``named_parameters`` order)."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(_digest([p]).encode())
    return h.hexdigest()


class _DDP(torch.nn.parallel.DistributedDataParallel):
    """DDP that forwards unknown attributes to the wrapped model (``encode_style`` is called directly by
    :func:`motion.diffusion.diffusion_loss`; its parameters still get their gradients all-reduced, since
    they take part in the same backward pass)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


@dataclass
class DistContext:
    """This process's place in the process group (see the module docstring).

    Attributes:
        rank, world_size, local_rank, local_world_size: as ``torchrun`` defines them.
        backend: ``gloo`` or ``nccl``. device: where the model trains (``cpu`` or ``cuda:LOCAL_RANK``).
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that shows progress and writes files."""
        return self.rank == 0

    # -- per stage -------------------------------------------------------------------------------------
    def stage(self, model: torch.nn.Module, batch_fn: Callable[[], tuple]) -> tuple[torch.nn.Module, Callable]:
        """Start a training stage: threads (CPU cores shared by the local ranks), per-rank torch seed, the
        model on this rank's device wrapped in DDP (parameters broadcast from rank 0), and a batch
        function that draws the global batch and returns this rank's rows on its device."""
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.local_world_size))
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())  # the same on every rank here
        torch.manual_seed(seed + 1_000_003 * self.rank)
        model.to(self.device)
        ddp = _DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        first = [True]

        def shard():
            batch = batch_fn()
            if first[0]:  # every rank must have drawn the same global batch
                first[0] = False
                self._agree(_digest(_flat(batch)), "drew different training windows: every machine must read the "
                            "same data (a shared filesystem path) with the same config")
            B = batch[0].shape[0]
            check_batch_size(B, self.world_size)
            n = B // self.world_size
            lo, hi = self.rank * n, (self.rank + 1) * n

            def cut(x):
                if isinstance(x, (tuple, list)):
                    return type(x)(cut(v) for v in x)
                if isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[0] == B:
                    return x[lo:hi].to(self.device, non_blocking=True)
                return x
            return cut(batch)
        return ddp, shard

    def logged(self, out: dict[str, torch.Tensor]) -> tuple[float, dict[str, torch.Tensor]]:
        """Average ``loss``, ``mse`` and ``vel`` over the ranks (one ``all_reduce``); returns the mean loss
        and the averaged (detached) terms for the log."""
        keys = [k for k in ("loss", "mse", "vel") if k in out]
        v = torch.stack([out[k].detach().float().reshape(()) for k in keys])
        dist.all_reduce(v, op=dist.ReduceOp.SUM)
        v = (v / self.world_size).cpu()
        avg = dict(zip(keys, v))
        return float(avg["loss"]), avg

    def finish_stage(self, model: torch.nn.Module, desc: str, log: list) -> torch.nn.Module:
        """End a stage: back to CPU, the parameter hash of every rank gathered and compared, a log entry
        ``{"stage", "ddp": {world_size, backend, param_sha256_by_rank, replicas_identical}}``.

        Raises:
            RuntimeError: the ranks' weights differ (they must not: DDP keeps them in lockstep).
        """
        inner = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
        inner.to("cpu")
        digests = [None] * self.world_size
        dist.all_gather_object(digests, parameter_digest(inner))
        same = len(set(digests)) == 1
        log.append({"stage": desc, "ddp": {"world_size": self.world_size, "backend": self.backend,
                                           "param_sha256_by_rank": digests, "replicas_identical": same}})
        if not same:
            raise RuntimeError(f"{desc}: the ranks' weights differ after training ({digests})")
        return inner

    def _agree(self, value: str, what: str) -> None:
        values = [None] * self.world_size
        dist.all_gather_object(values, value)
        if len(set(values)) != 1:
            raise ChatAnyoneError(f"the {self.world_size} training processes {what}")

    def close(self, wait: bool = False) -> None:
        """Leave the process group; ``wait``: first wait until every rank is here (after a successful run:
        rank 0 writes the checkpoint after the others finished training, and a rank that tore its gloo group
        down meanwhile was aborted with "terminate called without an active exception" in a loaded CI run;
        never after a failure, where the other ranks may not come)."""
        if dist.is_initialized():
            if wait:
                dist.barrier()
            dist.destroy_process_group()


def init_from_env(backend: str | None = None) -> DistContext:
    """Join the process group described by the ``torchrun`` variables (:data:`TORCHRUN_ENV`).

    Raises:
        ChatAnyoneError: a variable is missing, or the backend needs a GPU per local rank that is not there.
    """
    missing = [k for k in TORCHRUN_ENV if k not in os.environ]
    if missing:
        raise ChatAnyoneError(f"not started by torchrun (missing {', '.join(missing)})")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    backend = backend or default_backend()
    if backend == "nccl":
        if torch.cuda.device_count() <= local_rank:
            raise ChatAnyoneError(f"NCCL needs one GPU per process: local rank {local_rank} but "
                                  f"{torch.cuda.device_count()} GPU(s) (CHATANYONE_DDP_BACKEND=gloo for CPU)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world,
                                **({"device_id": device} if device.type == "cuda" else {}))
    return DistContext(rank, world, local_rank, local_world, backend, device)


def free_port() -> int:
    """A TCP port free on the loopback interface now (for the local launcher's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawned(local_rank: int, nproc: int, port: int, fn: Callable, args: tuple) -> None:
    os.environ.update({"RANK": str(local_rank), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(local_rank),
                       "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    fn(*args)


def launch(nproc: int, fn: Callable, *args: Any) -> None:
    """Run ``fn(*args)`` in ``nproc`` new local processes that form one process group (the variables of
    :data:`TORCHRUN_ENV` set as ``torchrun --standalone --nproc-per-node N`` would). ``fn`` must be a
    module-level function; it calls :func:`init_from_env`. Returns when all are done.

    Raises:
        ChatAnyoneError: a process failed (its error's last line; the others are stopped).
    """
    import torch.multiprocessing as tmp

    port = free_port()
    try:
        tmp.start_processes(_spawned, args=(nproc, port, fn, args), nprocs=nproc, join=True, start_method="spawn")
    except tmp.ProcessRaisedException as e:
        lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
        raise ChatAnyoneError(f"training process {e.error_index} failed: {lines[-1] if lines else e}") from None
    except tmp.ProcessExitedException as e:
        raise ChatAnyoneError(f"training process {e.error_index} exited with code {e.exit_code}") from None


def _train_rank(cfg) -> None:
    from .train import train

    ctx = init_from_env()
    ok = False
    try:
        train(cfg, distributed=ctx)
        ok = True
    finally:
        ctx.close(wait=ok)


def train_distributed(cfg, nproc: int = 1):
    """Train ``cfg`` (a :class:`motion.train.TrainConfig`) with DDP.

    Under ``torchrun`` (``nproc`` must be 1 then): join the group and train; returns the checkpoint path on
    rank 0 and ``None`` on the other ranks. Otherwise start ``nproc`` local processes (:func:`launch`) and
    return the checkpoint path rank 0 wrote.

    Raises:
        ChatAnyoneError: both torchrun and ``nproc`` > 1, ``batch_size`` not divisible by the number of
            processes, or a training process failed.
    """
    from pathlib import Path

    from .train import train

    if launched_by_torchrun():
        if nproc > 1:
            raise ChatAnyoneError("--nproc starts its own processes: leave it out under torchrun")
        world = int(os.environ["WORLD_SIZE"])
        check_batch_size(cfg.batch_size, world)
        ctx = init_from_env()
        path = None
        try:
            path = train(cfg, distributed=ctx)
        finally:
            ctx.close(wait=path is not None)
        return path if ctx.is_main else None
    if nproc < 1:
        raise ChatAnyoneError("--nproc must be >= 1")
    check_batch_size(cfg.batch_size, nproc)
    launch(nproc, _train_rank, cfg)
    return Path(cfg.out_dir) / "model.safetensors"
