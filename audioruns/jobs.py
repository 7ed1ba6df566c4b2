"""Run many command-line jobs at once, each on its own device or CPU share, resumably.

:func:`run_jobs` is what ``experiments/reproduce.py`` uses to train the runs of a whole table:

* a :class:`Job` is one command (``argv``) with the files that exist once it is complete
  (``outputs``) and the jobs it needs first (``after``);
* a job whose outputs all exist is **skipped**: rerunning a plan runs only what is missing;
* a job interrupted half-way is simply started again: every training command of this
  repository resumes from its own backup (``backup/``);
* up to ``len(slots)`` jobs run at once; a :class:`Slot` is what pins a job to its share of the
  machine -- ``CUDA_VISIBLE_DEVICES`` for one GPU, or a set of CPU cores (affinity) and the
  thread counts of BLAS and TensorFlow for a CPU share (:func:`device_slots`, :func:`cpu_slots`);
* a failed job (non-zero exit, or outputs missing after exit 0) is reported with the end of its
  log; the jobs that need it are **blocked**, every other job goes on; the next call retries it;
* one overall progress bar (jobs done / total, elapsed, ETA), one log per job
  (``<state_dir>/logs/<job id>.log``) and one state file per job (``<state_dir>/jobs/<job id>.json``:
  status, exit code, seconds, command, slot).

Nothing here imports Keras: the launcher starts in a fraction of a second and never holds a device.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

__all__ = ["Job", "Slot", "device_slots", "cpu_slots", "run_jobs", "read_state", "JOB_ID"]

#: Job ids: file-name safe (they name the state file and the log).
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


@dataclass(frozen=True)
class Job:
    """One command of a plan.

    Attributes
    ----------
    id : str
        Unique, file-name safe (:data:`JOB_ID`), e.g. ``apnet.urbansound8k.fold3.seed0``.
    argv : tuple of str
        The command, run with the plan's working directory.
    outputs : tuple of Path
        Files that all exist once the job is complete (e.g. its ``results.json``). Must not be empty
        (it is how a rerun knows what is done) unless ``repeat``.
    after : tuple of str
        Ids of the jobs that must be complete before this one starts.
    repeat : bool
        Run it on every call, before the jobs that need it (e.g. extracting features into the cache, which
        reads them back when they are there): it is complete once it has succeeded in this call.
    """

    id: str
    argv: tuple
    outputs: tuple = ()
    after: tuple = ()
    repeat: bool = False

    def __post_init__(self):
        if not JOB_ID.match(self.id):
            raise ValueError(f"job id {self.id!r} is not file-name safe (letters, digits, _ . + = -)")
        if not self.outputs and not self.repeat:
            raise ValueError(f"job {self.id} names no output file: a rerun could not tell whether it is done")
        object.__setattr__(self, "argv", tuple(str(a) for a in self.argv))
        object.__setattr__(self, "outputs", tuple(Path(p) for p in self.outputs))
        object.__setattr__(self, "after", tuple(self.after))

    def complete(self):
        """Whether every output file exists (never, for a ``repeat`` job: it runs on every call)."""
        return not self.repeat and all(path.is_file() for path in self.outputs)


@dataclass(frozen=True)
class Slot:
    """A share of the machine one job at a time runs on.

    Attributes
    ----------
    name : str
        ``gpu0``, ``cpu0-1``, ... (recorded in the job's state).
    env : dict
        Environment variables set for the job (e.g. ``CUDA_VISIBLE_DEVICES``).
    cpus : frozenset of int or None
        CPU cores the job may run on (Linux affinity); None: all.
    """

    name: str
    env: dict = field(default_factory=dict)
    cpus: frozenset = None


def device_slots(devices):
    """One slot per accelerator: ``CUDA_VISIBLE_DEVICES`` (and ``ROCR``/``TPU`` equivalents left alone).

    Parameters
    ----------
    devices : sequence of str
        Device indices or UUIDs as ``nvidia-smi -L`` lists them, e.g. ``["0", "1"]``.

    Returns
    -------
    list of Slot
    """
    devices = [str(d).strip() for d in devices]
    if not devices or any(not d for d in devices):
        raise ValueError(f"--devices needs device indices separated by commas (e.g. 0,1), got {devices!r}")
    if len(set(devices)) != len(devices):
        raise ValueError(f"--devices names a device twice: {','.join(devices)}")
    return [Slot(name=f"gpu{d}", env={"CUDA_VISIBLE_DEVICES": d}) for d in devices]


def _available_cpus():
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def cpu_slots(n_jobs, cpus=None):
    """``n_jobs`` slots sharing the CPU cores evenly (no accelerator: ``CUDA_VISIBLE_DEVICES=""``).

    Each slot gets its cores (affinity, where the system has it) and the thread counts of OpenMP/BLAS,
    TensorFlow (intra-op) set to its number of cores, so two jobs do not fight over every core (on the JAX
    backend only the affinity applies).

    Parameters
    ----------
    n_jobs : int
        Jobs at once, at least 1. More jobs than cores: cores are shared round-robin.
    cpus : sequence of int, optional
        The cores to share (default: those this process may use).

    Returns
    -------
    list of Slot
    """
    if int(n_jobs) < 1:
        raise ValueError(f"--jobs must be at least 1, got {n_jobs}")
    cpus = list(cpus) if cpus is not None else _available_cpus()
    n_jobs = int(n_jobs)
    shares = [cpus[i::n_jobs] for i in range(n_jobs)] if n_jobs <= len(cpus) else \
        [[cpus[i % len(cpus)]] for i in range(n_jobs)]
    slots = []
    for i, share in enumerate(shares):
        threads = str(len(share))
        env = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "OPENBLAS_NUM_THREADS": threads, "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": "1"}
        name = f"cpu{share[0]}" if len(share) == 1 else f"cpu{share[0]}-{share[-1]}"
        slots.append(Slot(name=f"{name}#{i}" if n_jobs > len(cpus) else name, env=env,
                          cpus=frozenset(share) if hasattr(os, "sched_setaffinity") else None))
    return slots


# ----------------------------------------------------------------------------- state files
def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _state_path(state_dir, job_id):
    return Path(state_dir) / "jobs" / f"{job_id}.json"


def _write_state(state_dir, job_id, state):
    path = _state_path(state_dir, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


def read_state(state_dir, job_id):
    """The state file of a job (``{"status", "returncode", "seconds", ...}``), or None.

    A corrupt state file reads as None: the job's outputs, not this file, say whether it is done.
    """
    path = _state_path(state_dir, job_id)
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _tail(path, n_lines=15):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n_lines:])


def _check_plan(jobs):
    ids = [job.id for job in jobs]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"the plan holds job ids twice: {duplicates}")
    known = set(ids)
    for job in jobs:
        unknown = [a for a in job.after if a not in known]
        if unknown:
            raise ValueError(f"job {job.id} waits for jobs not in the plan: {unknown}")
    # cycles: a job must come after everything it waits for, in some order
    order, placed, pending = [], set(), list(jobs)
    while pending:
        ready = [job for job in pending if set(job.after) <= placed]
        if not ready:
            raise ValueError(f"the plan's dependencies form a cycle among {[job.id for job in pending]}")
        for job in ready:
            order.append(job)
            placed.add(job.id)
        pending = [job for job in pending if job.id not in placed]
    return order


# ----------------------------------------------------------------------------- running
class _Running:
    def __init__(self, job, slot, process, log, started):
        self.job, self.slot, self.process, self.log, self.started = job, slot, process, log, started
        self.started_at = _now()


def _start(job, slot, *, cwd, env, log_path):
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    log.write(f"\n=== {_now()} slot {slot.name}: {' '.join(job.argv)}\n".encode())
    log.flush()
    cpus = slot.cpus

    def pin():  # runs in the child before exec
        if cpus:
            os.sched_setaffinity(0, cpus)

    process = subprocess.Popen(job.argv, cwd=cwd, env={**env, **slot.env}, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, preexec_fn=pin if cpus else None,
                               start_new_session=True)
    return _Running(job, slot, process, log, time.monotonic())


def _stop(running, timeout=30.0):
    """SIGTERM to the job's process group, then SIGKILL after ``timeout`` seconds."""
    for item in running:
        try:
            os.killpg(item.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for item in running:
        try:
            item.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(item.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            item.process.wait()
        item.log.close()


def run_jobs(jobs, *, slots, state_dir, cwd=None, env=None, progress=True, poll_seconds=0.5, log=None):
    """Run the jobs not complete yet, at most one per slot at a time, dependencies first.

    Parameters
    ----------
    jobs : sequence of Job
        The plan (ids unique, ``after`` naming jobs of the plan, no cycle).
    slots : sequence of Slot
        :func:`device_slots` or :func:`cpu_slots`; as many jobs run at once.
    state_dir : str or Path
        Where ``jobs/<id>.json`` and ``logs/<id>.log`` go.
    cwd : str or Path, optional
        Working directory of the commands.
    env : dict, optional
        Their environment (default: this process's); each slot's variables are added.
    progress : bool
        Draw the overall progress bar (stderr).
    poll_seconds : float
    log : callable, optional
        ``log(message)`` for one line per event (start, done, failed, blocked); default: stderr.

    Returns
    -------
    dict
        ``{"total", "skipped", "done", "failed", "blocked", "failures": [{"id", "returncode", "log",
        "reason"}], "blocked_ids", "seconds"}``. ``skipped``: complete before the call.

    Notes
    -----
    Ctrl-C (or SIGTERM to this process) stops the running jobs (SIGTERM to their process groups: the
    training commands keep their last completed epoch) and re-raises: the next call resumes them.
    """
    if not slots:
        raise ValueError("no slot to run jobs on: give --jobs N (N >= 1) or --devices")
    order = _check_plan(jobs)
    state_dir = Path(state_dir)
    env = dict(os.environ if env is None else env)
    say = log or (lambda message: tqdm.write(message, file=sys.stderr))
    start_time = time.monotonic()

    complete = {job.id for job in order if job.complete()}
    pending = [job for job in order if job.id not in complete]
    summary = {"total": len(order), "skipped": len(complete), "done": 0, "failed": 0, "blocked": 0,
               "failures": [], "blocked_ids": []}
    failed = set()
    free = list(slots)
    running = []
    bar = tqdm(total=len(order), initial=len(complete), desc="runs", unit="run", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)

    def block_dependents():
        changed = True
        while changed:
            changed = False
            for job in list(pending):
                if any(a in failed for a in job.after):
                    pending.remove(job)
                    failed.add(job.id)
                    summary["blocked"] += 1
                    summary["blocked_ids"].append(job.id)
                    reason = [a for a in job.after if a in failed]
                    _write_state(state_dir, job.id, {"status": "blocked", "after_failed": reason,
                                                     "command": list(job.argv)})
                    say(f"blocked: {job.id} (needs {', '.join(reason)})")
                    bar.update(1)
                    changed = True

    def refresh():
        bar.set_postfix_str(f"running {len(running)}, failed {summary['failed']}, blocked {summary['blocked']}")

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        while pending or running:
            for item in list(running):
                code = item.process.poll()
                if code is None:
                    continue
                running.remove(item)
                item.log.close()
                free.append(item.slot)
                seconds = time.monotonic() - item.started
                job = item.job
                missing = [str(p) for p in job.outputs if not p.is_file()]
                state = {"command": list(job.argv), "slot": item.slot.name, "returncode": code,
                         "seconds": round(seconds, 1), "log": str(_log_path(state_dir, job.id)),
                         "started": item.started_at, "finished": _now()}
                if code == 0 and not missing:
                    complete.add(job.id)
                    summary["done"] += 1
                    _write_state(state_dir, job.id, {"status": "done", **state})
                    say(f"done: {job.id} ({seconds:.0f} s, {item.slot.name})")
                else:
                    reason = f"exit status {code}" if code != 0 else f"exit status 0 but {missing[0]} is missing"
                    failed.add(job.id)
                    summary["failed"] += 1
                    summary["failures"].append({"id": job.id, "returncode": code, "log": state["log"],
                                                "reason": reason})
                    _write_state(state_dir, job.id, {"status": "failed", "reason": reason, **state})
                    say(f"FAILED: {job.id} ({reason}; log {state['log']})\n{_tail(state['log'])}")
                    block_dependents()
                bar.update(1)
                refresh()
            while free:
                ready = next((job for job in pending if set(job.after) <= complete), None)
                if ready is None:
                    break
                pending.remove(ready)
                slot = free.pop(0)
                item = _start(ready, slot, cwd=cwd, env=env, log_path=_log_path(state_dir, ready.id))
                running.append(item)
                _write_state(state_dir, ready.id, {"status": "running", "command": list(ready.argv),
                                                   "slot": slot.name, "pid": item.process.pid,
                                                   "started": item.started_at})
                say(f"start: {ready.id} on {slot.name}")
                refresh()
            if pending and not running:  # nothing could start: what is left waits for failed jobs
                block_dependents()
                if pending:
                    raise RuntimeError(f"jobs wait for jobs that never ran: {[job.id for job in pending]}")
            time.sleep(poll_seconds if running else 0)
    except BaseException:
        if running:
            say(f"stopping {len(running)} running job(s); run the same command again to resume them")
            _stop(running)
            for item in running:
                _write_state(state_dir, item.job.id, {"status": "interrupted", "command": list(item.job.argv),
                                                      "slot": item.slot.name})
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
    summary["seconds"] = round(time.monotonic() - start_time, 1)
    return summary


def _log_path(state_dir, job_id):
    return Path(state_dir) / "logs" / f"{job_id}.log"
