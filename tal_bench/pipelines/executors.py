"""Where the cells of a grid run: in this process, in fresh local processes, on Ray, on Slurm.

Every executor runs the same picklable :class:`Task` through :func:`execute_task` and yields
one :class:`Outcome` per task, in completion order. Executors never write records: the grid
runner in the parent process turns outcomes into rows, so the records are identical whichever
executor ran them (only ``executor`` and the timing columns differ).

* ``local`` (default): one fresh process per cell, at most ``jobs`` at a time, forked from a
  ``forkserver`` that imported torch and tal_bench once (Linux; ``spawn`` elsewhere): a new
  interpreter importing torch again cost each cell seconds of CPU. A cell
  whose function runs past ``timeout_s`` (counted from when the worker has started up and
  begins the cell, so start-up on a loaded machine does not count) is killed
  (``status="timeout"``); a cell whose process dies (segfault, OOM killer) is a ``"failed"``
  outcome. Workers die with the grid process (a thread watching the parent's sentinel, and
  ``PR_SET_PDEATHSIG`` on Linux), so ``kill -9`` of the grid leaves no orphans.
* ``ray``: Ray core tasks (``max_retries=0``) on a local ``ray.init`` or an existing cluster.
* ``slurm``: submitit ``AutoExecutor`` (Slurm; ``cluster="local"`` runs the same code in local
  subprocesses, which is how it is tested).
* ``inline``: this process, one cell after another; for debugging (no isolation, no timeouts).

Ray and submitit are optional extras (``pip install "tal-bench[ray]"`` / ``"tal-bench[slurm]"``)
and are imported only when their executor is used.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_ready
from pathlib import Path
from typing import Any, Protocol

from tal_bench.errors import TalBenchError
from tal_bench.runtime import keep_freed_memory

EXECUTORS = ("local", "ray", "slurm", "inline")
_POLL_S = 0.5  # how often remote executors are polled for finished cells
_TRACEBACK_CHARS = 4000  # tail of a failed cell's traceback kept in its row
_STARTUP_LIMIT_S = 300.0  # a local worker must start its cell within this (imports, spawn)
_STARTED = "started"  # what a local worker sends once its cell function begins
# Imported once by the local executor's fork server, so that workers start with them loaded
# (torch.use_deterministic_algorithms, which every cell calls, imports the inductor config).
PRELOAD = ("tal_bench.pipelines.train", "torch._inductor.config")


@dataclass(frozen=True)
class Task:
    """One cell to run: ``fn(payload)`` in a worker with ``threads`` torch threads."""

    key: str  # the cell's run key
    fn: Callable[[dict[str, Any]], dict[str, Any]]  # importable, top-level (pickled by name)
    payload: dict[str, Any]  # picklable arguments of fn
    threads: int | None = 1  # torch intra-op threads in the worker; None = leave as is


@dataclass
class Outcome:
    """What came back from one task."""

    key: str
    status: str  # "ok" | "failed" | "timeout"
    summary: dict[str, Any] | None = None  # fn's return value when ok
    error: str | None = None  # one line when not ok
    traceback: str | None = None  # tail of the worker traceback when fn raised
    wall_time_s: float | None = None  # fn's duration in the worker; parent-side on timeouts
    extra: dict[str, Any] = field(default_factory=dict)  # executor-specific info (job ids)


class Executor(Protocol):
    """Runs tasks and yields their outcomes as they finish."""

    name: str

    def run(self, tasks: Sequence[Task], on_start: Callable[[str], None]) -> Iterator[Outcome]:
        """Run ``tasks``; call ``on_start(key)`` when a task is launched; yield outcomes."""
        ...


# ------------------------------------------------------------------------------------------
# The worker side, identical for every executor.
# ------------------------------------------------------------------------------------------


def set_worker_threads(threads: int | None) -> None:
    """Limit BLAS/OpenMP and torch intra-op threads of this worker process."""
    if threads is None:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:  # never import torch just for this (light cells stay light)
        torch = sys.modules["torch"]
        torch.set_num_threads(threads)


def one_line(exc: BaseException, limit: int = 500) -> str:
    """``"TypeName: first line of the message"``, at most ``limit`` characters."""
    text = str(exc).strip().splitlines()
    msg = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def execute_task(task: Task) -> Outcome:
    """Run one task in the current process; exceptions become a ``"failed"`` outcome.

    Args:
        task: the cell to run.

    Returns:
        ``status="ok"`` with fn's summary dict, or ``"failed"`` with the error line and the
        traceback tail. ``wall_time_s`` is fn's duration.
    """
    set_worker_threads(task.threads)
    t0 = time.perf_counter()
    try:
        summary = task.fn(task.payload)
        if not isinstance(summary, dict):
            raise TypeError(f"the cell function returned {type(summary).__name__}, not a dict")
    except Exception as exc:  # a failed cell is a row, never the end of the grid
        tb = traceback.format_exc()[-_TRACEBACK_CHARS:]
        return Outcome(task.key, "failed", None, one_line(exc), tb, time.perf_counter() - t0)
    return Outcome(task.key, "ok", summary, None, None, time.perf_counter() - t0)


def worker_task(task: Task) -> Outcome:
    """:func:`execute_task` in a worker process (spawned, Ray, submitit), which does not come
    through the CLI's ``main()``: first the allocator setting every talbench process uses."""
    keep_freed_memory()
    return execute_task(task)


# ------------------------------------------------------------------------------------------
# inline and local executors
# ------------------------------------------------------------------------------------------


class InlineExecutor:
    """Runs each task in this process, in order (debugging: pdb works, nothing is isolated)."""

    name = "inline"

    def run(self, tasks: Sequence[Task], on_start: Callable[[str], None]) -> Iterator[Outcome]:
        """Yield ``execute_task(task)`` for each task in order."""
        for task in tasks:
            on_start(task.key)
            yield execute_task(task)


def _die_with_parent() -> None:
    """End this worker as soon as the grid process that launched it dies (no orphans after
    ``kill -9``).

    A thread waits on the parent's sentinel (multiprocessing's pipe that reaches end-of-file
    when the parent dies); on Linux ``PR_SET_PDEATHSIG`` also asks the kernel to SIGKILL the
    worker when the process that forked it dies (the grid under ``spawn``, the fork server
    under ``forkserver``, which exits with the grid once its workers are gone).
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    parent = mp.parent_process()
    if parent is None:
        return
    if not parent.is_alive():  # the parent died before this worker began
        os._exit(1)

    def watch() -> None:
        wait_ready([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _local_worker(conn: Any, task: Task, env: dict[str, str]) -> None:
    """Entry point of a local worker: run the task, send the outcome, exit.

    ``env`` is the grid process's environment at launch: a fork server's children would
    otherwise see the environment of when the server started.
    """
    _die_with_parent()
    os.environ.clear()
    os.environ.update(env)
    conn.send(_STARTED)  # the parent starts the timeout clock now, not at process launch
    outcome = worker_task(task)
    try:
        conn.send(outcome)
    except Exception as exc:  # e.g. an unpicklable summary: report it instead of hanging
        conn.send(Outcome(task.key, "failed", None, one_line(exc), None, outcome.wall_time_s))
    conn.close()


@dataclass
class _Running:
    task: Task
    proc: Any  # multiprocessing.Process
    conn: Any  # parent end of the pipe
    t0: float  # perf_counter at launch
    t_start: float | None = None  # perf_counter when the worker began the cell function

    def deadline(self, timeout_s: float | None) -> float:
        """When this worker is overdue (start-up limit until it reports started)."""
        if self.t_start is None:
            return self.t0 + _STARTUP_LIMIT_S
        return self.t_start + (math.inf if timeout_s is None else timeout_s)


class LocalExecutor:
    """One fresh process per task, ``jobs`` at a time, with per-task timeouts."""

    name = "local"

    def __init__(self, jobs: int = 1, timeout_s: float | None = None) -> None:
        self.jobs = _check_jobs(jobs)
        self.timeout_s = _check_timeout(timeout_s)
        self._ctx = _worker_context()

    def run(self, tasks: Sequence[Task], on_start: Callable[[str], None]) -> Iterator[Outcome]:
        """Launch up to ``jobs`` workers, yield outcomes as they finish; kill all on exit."""
        pending: deque[Task] = deque(tasks)
        running: dict[str, _Running] = {}
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    task = pending.popleft()
                    running[task.key] = self._launch(task)
                    on_start(task.key)
                wait_ready(
                    [r.conn for r in running.values()]
                    + [r.proc.sentinel for r in running.values()],
                    timeout=self._wait_s(running),
                )
                for key in list(running):
                    outcome = self._check(running[key])
                    if outcome is not None:
                        self._reap(running.pop(key))
                        yield outcome
        finally:
            for r in running.values():  # interrupted (Ctrl-C, error in the consumer)
                self._reap(r, kill=True)

    def _launch(self, task: Task) -> _Running:
        parent_conn, child_conn = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=_local_worker, args=(child_conn, task, dict(os.environ)), name=f"cell-{task.key}"
        )
        proc.start()
        child_conn.close()  # so that the parent sees EOF if the child dies
        return _Running(task, proc, parent_conn, time.perf_counter())

    def _wait_s(self, running: dict[str, _Running]) -> float:
        now = time.perf_counter()
        left = min(r.deadline(self.timeout_s) - now for r in running.values())
        return max(0.0, min(5.0, left))

    def _check(self, r: _Running) -> Outcome | None:
        while r.conn.poll():
            try:
                msg = r.conn.recv()
            except (EOFError, OSError):
                return self._died(r, time.perf_counter() - (r.t_start or r.t0))
            if msg != _STARTED:
                return msg
            r.t_start = time.perf_counter()
        now = time.perf_counter()
        elapsed_s = now - (r.t_start or r.t0)
        if not r.proc.is_alive():
            return self._died(r, elapsed_s)
        if now >= r.deadline(self.timeout_s):
            r.proc.kill()
            if r.t_start is None:
                msg = f"the worker did not start within {_STARTUP_LIMIT_S:g} s; it was killed"
                return Outcome(r.task.key, "failed", None, msg, None, elapsed_s)
            msg = f"timed out after {self.timeout_s:g} s (--timeout-s); the worker was killed"
            return Outcome(r.task.key, "timeout", None, msg, None, elapsed_s)
        return None

    def _died(self, r: _Running, elapsed_s: float) -> Outcome:
        r.proc.join(timeout=5)
        code = r.proc.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        msg = f"the worker process died ({how}) before reporting a result"
        return Outcome(r.task.key, "failed", None, msg, None, elapsed_s)

    @staticmethod
    def _reap(r: _Running, kill: bool = False) -> None:
        if kill and r.proc.is_alive():
            r.proc.kill()
        r.proc.join(timeout=10)
        r.conn.close()


def _worker_context() -> Any:
    """``forkserver`` preloading :data:`PRELOAD` on Linux, else ``spawn``.

    The server is a fresh interpreter that only imports modules (it never runs torch ops, so
    forking it is safe); each worker is forked from it and starts with torch imported. macOS
    keeps ``spawn``: forking a process that loaded its system frameworks is not safe there.
    """
    if not sys.platform.startswith("linux") or "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


# ------------------------------------------------------------------------------------------
# Ray
# ------------------------------------------------------------------------------------------


def _import_optional(module: str, extra: str, executor: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise TalBenchError(
            f"--executor {executor} needs {module}, which is not installed; "
            f'run: pip install "tal-bench[{extra}]"'
        ) from None


class RayExecutor:
    """Ray core tasks, ``jobs`` in flight; connects to ``address`` or starts a local Ray."""

    name = "ray"

    def __init__(
        self,
        jobs: int = 1,
        timeout_s: float | None = None,
        threads: int | None = 1,
        address: str | None = None,
    ) -> None:
        self.ray = _import_optional("ray", "ray", "ray")
        self.jobs = _check_jobs(jobs)
        self.timeout_s = _check_timeout(timeout_s)
        self.threads = threads or 1
        self.address = address

    def run(self, tasks: Sequence[Task], on_start: Callable[[str], None]) -> Iterator[Outcome]:
        """Submit tasks as Ray remote calls; a task running past the timeout is cancelled."""
        ray = self.ray
        started_here = self._init()
        remote = ray.remote(worker_task).options(num_cpus=self.threads, max_retries=0)
        pending: deque[Task] = deque(tasks)
        running: dict[Any, tuple[Task, float]] = {}  # ObjectRef -> (task, launch time)
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    task = pending.popleft()
                    running[remote.remote(task)] = (task, time.perf_counter())
                    on_start(task.key)
                done, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
                for ref in done:
                    task, t0 = running.pop(ref)
                    yield self._result(ref, task, t0)
                yield from self._expire(running)
        finally:
            for ref in running:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()

    def _init(self) -> bool:
        ray = self.ray
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address:
            kwargs["address"] = self.address
        else:
            kwargs["num_cpus"] = self.jobs * self.threads
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError) as exc:
            raise TalBenchError(
                f"cannot start or reach Ray ({one_line(exc)}); check --ray-address"
            ) from None
        return True

    def _result(self, ref: Any, task: Task, t0: float) -> Outcome:
        try:
            return self.ray.get(ref)
        except Exception as exc:  # worker crashed, node lost, ...: a failed row
            return Outcome(task.key, "failed", None, one_line(exc), None, time.perf_counter() - t0)

    def _expire(self, running: dict[Any, tuple[Task, float]]) -> Iterator[Outcome]:
        if self.timeout_s is None:
            return
        now = time.perf_counter()
        for ref, (task, t0) in list(running.items()):
            if now - t0 >= self.timeout_s:
                del running[ref]
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref, force=True)
                msg = f"timed out after {self.timeout_s:g} s (--timeout-s); the task was cancelled"
                yield Outcome(task.key, "timeout", None, msg, None, now - t0)


# ------------------------------------------------------------------------------------------
# Slurm through submitit
# ------------------------------------------------------------------------------------------


@dataclass
class _Job:
    job: Any  # submitit.Job
    task: Task
    t_submit: float  # time.time() at submission
    t_run: float | None = None  # first time submitit reported the job RUNNING


class SubmititExecutor:
    """submitit jobs (Slurm, or ``cluster="local"`` subprocesses), ``jobs`` in flight.

    The timeout clock of a job starts when submitit first reports it RUNNING, so queue time
    on a busy cluster does not count; Slurm's own ``timeout_min`` is set one minute longer.
    """

    name = "slurm"

    def __init__(
        self,
        folder: str | Path,
        jobs: int = 1,
        timeout_s: float | None = None,
        threads: int | None = 1,
        cluster: str = "slurm",
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.submitit = _import_optional("submitit", "slurm", "slurm")
        self.jobs = _check_jobs(jobs)
        self.timeout_s = _check_timeout(timeout_s)
        self.threads = threads or 1
        self.folder = Path(folder)
        self.cluster = cluster
        self.parameters = dict(parameters or {})

    def _make(self) -> Any:
        if self.cluster == "slurm" and not _has_srun():
            raise TalBenchError(
                "--executor slurm found no Slurm here (no srun on PATH); run on a Slurm login "
                "node, or pass --slurm-cluster local to test with local subprocesses"
            )
        ex = self.submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
        # Slurm kills one minute after our own timeout, so ours normally fires first.
        timeout_min = 7 * 24 * 60 if self.timeout_s is None else math.ceil(self.timeout_s / 60) + 1
        params = {"timeout_min": timeout_min, "cpus_per_task": self.threads, "name": "talbench"}
        params.update(self.parameters)
        try:
            ex.update_parameters(**params)
        except (AssertionError, ValueError, TypeError) as exc:
            raise TalBenchError(f"bad Slurm/submitit parameter ({one_line(exc)})") from None
        return ex

    def run(self, tasks: Sequence[Task], on_start: Callable[[str], None]) -> Iterator[Outcome]:
        """Submit up to ``jobs`` jobs at a time and poll them until all have finished."""
        ex = self._make()
        pending: deque[Task] = deque(tasks)
        running: dict[str, _Job] = {}
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    task = pending.popleft()
                    running[task.key] = _Job(ex.submit(worker_task, task), task, time.time())
                    on_start(task.key)
                time.sleep(_POLL_S)
                for key in list(running):
                    outcome = self._poll(running[key])
                    if outcome is not None:
                        del running[key]
                        yield outcome
        finally:
            for j in running.values():
                with contextlib.suppress(Exception):
                    j.job.cancel(check=False)

    def _poll(self, j: _Job) -> Outcome | None:
        now = time.time()
        if j.job.done():
            return self._result(j.job, j.task, now - (j.t_run or j.t_submit))
        if j.t_run is None:
            if j.job.state in ("RUNNING", "COMPLETING"):
                j.t_run = now
            return None
        if self.timeout_s is not None and now - j.t_run >= self.timeout_s:
            with contextlib.suppress(Exception):
                j.job.cancel(check=False)
            msg = (
                f"timed out after {self.timeout_s:g} s (--timeout-s); job {j.job.job_id} cancelled"
            )
            extra = {"job_id": str(j.job.job_id)}
            return Outcome(j.task.key, "timeout", None, msg, None, now - j.t_run, extra)
        return None

    def _result(self, job: Any, task: Task, elapsed_s: float) -> Outcome:
        extra = {"job_id": str(job.job_id)}
        try:
            outcome = job.result()
        except Exception as exc:  # the job itself failed (killed, preempted, Slurm TIMEOUT)
            status = "timeout" if "TIMEOUT" in str(exc) else "failed"
            return Outcome(task.key, status, None, one_line(exc), None, elapsed_s, extra)
        outcome.extra.update(extra)
        return outcome


def _has_srun() -> bool:
    import shutil

    return shutil.which("srun") is not None


# ------------------------------------------------------------------------------------------


def _check_jobs(jobs: int) -> int:
    if jobs < 1:
        raise TalBenchError(f"--jobs must be >= 1, got {jobs}")
    return jobs


def _check_timeout(timeout_s: float | None) -> float | None:
    if timeout_s is not None and not timeout_s > 0:
        raise TalBenchError(f"--timeout-s must be > 0 seconds, got {timeout_s}")
    return timeout_s


def check_executor_options(
    name: str, jobs: int = 1, timeout_s: float | None = None, slurm_cluster: str = "slurm"
) -> None:
    """Validate executor options before anything is created (run directory, Ray, jobs).

    Raises:
        TalBenchError: unknown executor, jobs < 1, timeout <= 0, a timeout with ``inline``,
            an unknown submitit cluster, or the executor's optional extra is not installed.
    """
    if name not in EXECUTORS:
        raise TalBenchError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    _check_jobs(jobs)
    _check_timeout(timeout_s)
    if name == "inline" and timeout_s is not None:
        raise TalBenchError("--executor inline cannot enforce --timeout-s; use --executor local")
    if name == "slurm" and slurm_cluster not in ("slurm", "local"):
        raise TalBenchError(f"--slurm-cluster must be slurm or local, got {slurm_cluster!r}")
    if name in ("ray", "slurm"):
        _import_optional(*{"ray": ("ray", "ray"), "slurm": ("submitit", "slurm")}[name], name)


def make_executor(
    name: str,
    jobs: int = 1,
    timeout_s: float | None = None,
    threads: int | None = 1,
    folder: str | Path | None = None,
    ray_address: str | None = None,
    slurm_cluster: str = "slurm",
    slurm_parameters: dict[str, Any] | None = None,
) -> Executor:
    """Build an executor by name.

    Args:
        name: ``local`` | ``ray`` | ``slurm`` | ``inline``.
        jobs: cells running at the same time.
        timeout_s: per-cell wall-clock limit; ``None`` = none.
        threads: torch threads per cell (also CPUs requested from Ray/Slurm).
        folder: where submitit keeps job pickles and logs (``slurm`` only; required there).
        ray_address: an existing Ray cluster (``ray`` only); ``None`` = start a local one.
        slurm_cluster: submitit cluster, ``slurm`` or ``local`` (local subprocesses).
        slurm_parameters: extra ``AutoExecutor.update_parameters`` keys (``slurm_partition``...).

    Raises:
        TalBenchError: see :func:`check_executor_options`; ``slurm`` without ``folder``.
    """
    check_executor_options(name, jobs, timeout_s, slurm_cluster)
    if name == "local":
        return LocalExecutor(jobs, timeout_s)
    if name == "inline":
        return InlineExecutor()
    if name == "ray":
        return RayExecutor(jobs, timeout_s, threads, ray_address)
    if folder is None:
        raise TalBenchError("--executor slurm needs a run directory for submitit's files")
    return SubmititExecutor(folder, jobs, timeout_s, threads, slurm_cluster, slurm_parameters)
