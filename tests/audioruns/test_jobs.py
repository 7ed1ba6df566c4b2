"""audioruns.jobs: skip complete jobs, dependencies first, parallel slots, failures isolated and retried."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from audioruns.jobs import Job, cpu_slots, device_slots, read_state, run_jobs

#: A job: appends its name to ``runs.txt`` (how many times it ran), records its time span and environment,
#: sleeps, then writes its output (or exits 3 when ``fail`` exists in the folder).
WORKER = textwrap.dedent("""
    import json, os, sys, time
    folder, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with open(os.path.join(folder, "runs.txt"), "a") as handle:
        handle.write(name + "\\n")
    start = time.time()
    time.sleep(seconds)
    if os.path.exists(os.path.join(folder, "fail_" + name)):
        print("boom: " + name, flush=True)
        sys.exit(3)
    info = {"start": start, "end": time.time(), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "omp": os.environ.get("OMP_NUM_THREADS"),
            "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}
    if name != "no_output":
        with open(os.path.join(folder, name + ".json"), "w") as handle:
            json.dump(info, handle)
""")


@pytest.fixture
def work(tmp_path):
    (tmp_path / "worker.py").write_text(WORKER)
    return tmp_path


def job(work, name, seconds=0.0, after=()):
    return Job(name, [sys.executable, str(work / "worker.py"), str(work), name, str(seconds)],
               [work / f"{name}.json"], after=after)


def runs(work):
    path = work / "runs.txt"
    return path.read_text().split() if path.is_file() else []


def run(jobs, work, slots=None, **kwargs):
    messages = []
    summary = run_jobs(jobs, slots=slots or cpu_slots(1), state_dir=work / "state", progress=False,
                       poll_seconds=0.05, log=messages.append, **kwargs)
    return summary, messages


def test_dependencies_run_first_and_complete_jobs_are_skipped(work):
    jobs = [job(work, "c", after=("a", "b")), job(work, "a"), job(work, "b", after=("a",))]
    summary, _ = run(jobs, work)
    assert runs(work) == ["a", "b", "c"]
    assert (summary["done"], summary["skipped"], summary["failed"]) == (3, 0, 0)
    c = json.loads((work / "c.json").read_text())
    b = json.loads((work / "b.json").read_text())
    assert c["start"] >= b["end"]
    assert read_state(work / "state", "c")["status"] == "done"
    assert (work / "state" / "logs" / "c.log").is_file()
    summary, _ = run(jobs, work)  # everything complete: nothing runs
    assert runs(work) == ["a", "b", "c"] and (summary["skipped"], summary["done"]) == (3, 0)


def test_two_slots_run_two_jobs_at_once(work):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPU cores")
    summary, _ = run([job(work, "a", 1.5), job(work, "b", 1.5)], work, slots=cpu_slots(2))
    a, b = (json.loads((work / f"{n}.json").read_text()) for n in "ab")
    assert a["start"] < b["end"] and b["start"] < a["end"], "the two jobs did not overlap"
    assert summary["done"] == 2
    # each on its own cores, one thread each, no GPU
    assert not set(a["cpus"]) & set(b["cpus"]) and a["omp"] == b["omp"] == "1"
    assert a["cuda"] == b["cuda"] == ""
    assert {read_state(work / "state", n)["slot"] for n in "ab"} == {s.name for s in cpu_slots(2)}


def test_a_failure_blocks_its_dependents_only_and_a_rerun_retries_it(work):
    (work / "fail_b").touch()
    jobs = [job(work, "a"), job(work, "b"), job(work, "c", after=("b",)), job(work, "d", after=("a",))]
    summary, messages = run(jobs, work)
    assert (summary["done"], summary["failed"], summary["blocked"]) == (2, 1, 1)
    assert summary["blocked_ids"] == ["c"] and summary["failures"][0]["id"] == "b"
    assert summary["failures"][0]["reason"] == "exit status 3"
    failed = next(m for m in messages if m.startswith("FAILED: b"))
    assert "boom: b" in failed  # the end of its log is shown
    assert read_state(work / "state", "b")["returncode"] == 3
    assert read_state(work / "state", "c")["status"] == "blocked"
    assert sorted(runs(work)) == ["a", "b", "d"]
    (work / "fail_b").unlink()
    summary, _ = run(jobs, work)  # retries b, then runs c; a and d are not run again
    assert (summary["skipped"], summary["done"], summary["failed"]) == (2, 2, 0)
    assert sorted(runs(work)) == ["a", "b", "b", "c", "d"]


def test_exit_0_without_the_output_is_a_failure(work):
    summary, _ = run([job(work, "no_output")], work)
    assert summary["failed"] == 1
    assert summary["failures"][0]["reason"].startswith("exit status 0 but") and "no_output.json" in \
        summary["failures"][0]["reason"]


def test_bad_plans_are_refused(work):
    with pytest.raises(ValueError, match="twice"):
        run([job(work, "a"), job(work, "a")], work)
    with pytest.raises(ValueError, match="not in the plan"):
        run([job(work, "a", after=("zzz",))], work)
    with pytest.raises(ValueError, match="cycle"):
        run([job(work, "a", after=("b",)), job(work, "b", after=("a",))], work)
    with pytest.raises(ValueError, match="file-name safe"):
        Job("../x", ["true"], [work / "x"])
    with pytest.raises(ValueError, match="no output"):
        Job("x", ["true"], [])
    with pytest.raises(ValueError, match="at least 1"):
        cpu_slots(0)
    with pytest.raises(ValueError, match="twice"):
        device_slots(["0", "0"])


def test_device_slots_pin_one_gpu_each(work):
    slots = device_slots(["0", "3"])
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "3"] and [s.name for s in slots] == ["gpu0", "gpu3"]
    run([job(work, "a"), job(work, "b")], work, slots=slots)
    seen = sorted(json.loads((work / f"{n}.json").read_text())["cuda"] for n in "ab")
    assert set(seen) <= {"0", "3"}


def test_more_jobs_than_cores_share_them():
    slots = cpu_slots(5, cpus=[0, 1])
    assert len(slots) == 5 and all(len(s.cpus or {0}) == 1 for s in slots)
    assert len({s.name for s in slots}) == 5
    assert [sorted(s.cpus) for s in cpu_slots(2, cpus=[0, 1, 2, 3])] == [[0, 2], [1, 3]]


def test_an_interrupted_plan_stops_its_jobs_and_resumes(work):
    """SIGTERM to the launcher stops the running job (its process group) and marks it interrupted; the
    next call runs it again."""
    script = work / "launch.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from audioruns.jobs import Job, cpu_slots, run_jobs
        work = {str(work)!r}
        jobs = [Job("slow", [sys.executable, work + "/worker.py", work, "slow", "30"], [work + "/slow.json"])]
        run_jobs(jobs, slots=cpu_slots(1), state_dir=work + "/state", progress=False, poll_seconds=0.05)
    """))
    launcher = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not runs(work) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runs(work) == ["slow"], "the job never started"
    pid = read_state(work / "state", "slow")["pid"]
    launcher.send_signal(signal.SIGTERM)
    launcher.wait(timeout=60)
    assert launcher.returncode != 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the job is gone, not orphaned
    assert read_state(work / "state", "slow")["status"] == "interrupted"
    assert not (work / "slow.json").exists()
