"""experiments/reproduce.py: the runs of every table, and a reduced table end to end on real clips."""
import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "reproduce.py"


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("reproduce_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def listed(reproduce, capsys, *args):
    """The commands ``--dry-run`` prints (comment lines left out), as argv lists."""
    assert reproduce.main(["--output", "R", "--dry-run", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    return [shlex.split(line) for line in lines if line and not line.startswith("#")], lines


def options(argv):
    """``{--option: value or [values]}`` of a command line."""
    out, key = {}, None
    for token in argv[2:]:
        if token.startswith("--"):
            key = token
            out[key] = True
        elif key is not None:
            out[key] = token if out[key] is True else ([*out[key], token] if isinstance(out[key], list)
                                                       else [out[key], token])
    return out


def scripts(commands):
    return [Path(c[1]).name for c in commands]


def runs_of(commands):
    """The commands that are runs (not the feature extractions before them)."""
    return [c for c in commands if Path(c[1]).name != "extract_features.py"]


def check_order(reproduce, table, commands):
    """Every command comes after the commands it needs; runs need the extraction of the features they read."""
    args = reproduce.parse_args(["--table", table, "--output", "R", "--dry-run"])
    jobs = {job.id: job for job in reproduce.Planner(args).plan([table])}
    position = {shlex.join(c): i for i, c in enumerate(commands)}
    line = {job_id: position[shlex.join(job.argv)] for job_id, job in jobs.items()}
    assert all(line[need] < line[job_id] for job_id, job in jobs.items() for need in job.after)
    extracted = {}
    for job in jobs.values():
        opts = options(job.argv)
        if Path(job.argv[1]).name == "extract_features.py":
            assert job.repeat and not job.after
            extracted[job.id] = (opts["--dataset"], opts["--features"])
        elif not job.after or Path(job.argv[1]).name in ("train.py", "train_classifier.py", "learn_dictionary.py"):
            sets = {extracted.get(a) or jobs[a].id for a in job.after}
            assert {d for d, _ in sets} == {opts["--dataset"]}, job.id
    return jobs


def test_apnet_table3_lists_every_model_dataset_and_fold(reproduce, capsys):
    commands, lines = listed(reproduce, capsys, "--table", "apnet-3")
    assert lines[0].startswith("# 48 runs and 12 feature extractions in 2 stage(s)")
    jobs = check_order(reproduce, "apnet-3", commands)
    from apnet.training import feature_set

    for job in jobs.values():  # each model's feature set of the dataset's config is extracted before it
        if job.id.startswith("train."):
            o = options(job.argv)
            config = yaml.safe_load((REPO / "apnet" / "configs" / f"{o['--dataset']}.yaml").read_text())
            assert job.after == (f"features.{o['--dataset']}.{feature_set(o['--model'], config)}",)
    commands = runs_of(commands)
    cells = {(o["--model"], o["--dataset"], int(o["--fold"])) for o in map(options, commands)}
    expected = {(m, "urbansound8k", f) for m in ("apnet", "sb_cnn", "att_crnn", "openl3_mlp") for f in range(1, 11)}
    expected |= {(m, d, 1) for m in ("apnet", "sb_cnn", "att_crnn", "openl3_mlp")
                 for d in ("medley_solos_db", "speech_commands")}
    assert cells == expected and len(commands) == 48
    assert set(scripts(commands)) == {"train.py"}
    first = options(commands[0])
    assert first["--data-dir"] == "$AUDIO_DATA_DIR" and first["--output"] == "R" and first["--seed"] == "0"
    assert '--data-dir "$AUDIO_DATA_DIR"' in lines[2]  # left for the shell to expand


def test_apnet_table4_refines_prototypes_then_channels(reproduce, capsys):
    commands, lines = listed(reproduce, capsys, "--table", "apnet-4")
    assert [line for line in lines if line.startswith("# stage")] == [
        "# stage 1: 2 commands", "# stage 2: 2 commands", "# stage 3: 1 commands", "# stage 4: 1 commands"]
    check_order(reproduce, "apnet-4", commands)
    commands = runs_of(commands)
    assert scripts(commands) == ["train.py", "train.py", "refine.py", "refine.py"]
    prototypes, channels = map(options, commands[2:])
    assert prototypes["--method"] == "prototypes"
    assert prototypes["--model"] == "R/apnet/medley_solos_db/fold1/seed0/model.keras"
    assert (channels["--method"], channels["--n-channels"]) == ("channels", "8")
    assert channels["--model"] == "R/apnet/medley_solos_db/fold1/seed0/refine_prototypes/model.keras"


@pytest.mark.parametrize("table, n_runs, n_extractions", [
    # per (dataset, fold, seed): ESC-50 5 folds x 3 seeds, SONYC-UST and OpenMIC-2018 1 fold x 3 seeds = 21 cells
    ("l2i-1", 21 + 3 * 3, 6),       # f everywhere; OpenMIC's f score comes from evaluate.py: W, g, evaluation
    ("l2i-4", 21 * 8, 6),          # f, W, g_ATT, g_MAX, two evaluations, FLINT, VIBI
    ("l2i-5", 15 * 4, 2),          # ESC-50: f, W, g_ATT, evaluation
    ("l2i-6", 2 + 6 * 2, 2),       # ESC-50 fold 1, one run: f, W, six hidden-layer choices and their evaluations
    ("l2i-7", 2 + 5 * 2, 2),       # SONYC-UST fold 1, one run: five (alpha, beta)
    ("l2i-8", 21 * 11 + 15, 7),       # f, W, 3 interpreters + evaluations, NMF and TD-NMF sweeps, FLINT-BD; APNet (ESC)
])
def test_l2i_tables_list_their_runs(reproduce, capsys, table, n_runs, n_extractions):
    """Feature extractions: mel and logmag of each dataset (l2i.training.load_fold), and APNet's set for ESC-50."""
    commands, lines = listed(reproduce, capsys, "--table", table)
    jobs = check_order(reproduce, table, commands)
    assert len(commands) - len(runs_of(commands)) == n_extractions
    commands = runs_of(commands)
    assert len(commands) == n_runs, lines[0]
    assert len({shlex.join(c) for c in commands}) == n_runs  # no run twice
    for job in jobs.values():
        if Path(job.argv[1]).name == "evaluate.py":
            (need,) = job.after
            assert Path(options(job.argv)["--model"]) / "results.json" == jobs[need].outputs[0]
    if table == "l2i-6":
        evaluated = sorted(Path(options(c)["--model"]).name for c in commands if scripts([c])[0] == "evaluate.py")
        assert evaluated[0] == "posthoc_att" and len(evaluated) == 6
        assert {name.split("-")[1] for name in evaluated[1:]} == {"B3", "B6", "B2+B3", "B5+B6", "Input"}
    if table == "l2i-8":
        sweeps = [options(c) for c in commands if options(c).get("--baseline") in ("nmf", "tdl_nmf")]
        assert all(o["--k"] == ["64", "128", "256", "512"] and o["--features"] == ["logmag", "sqrt_mel"]
                   for o in sweeps)
        apnet = [options(c) for c in commands if scripts([c])[0] == "train.py"]
        assert len(apnet) == 15 and {o["--n-prototypes"] for o in apnet} == {"100"}


def test_stage_lists_bare_commands_of_one_stage(reproduce, capsys):
    commands, lines = listed(reproduce, capsys, "--table", "l2i-5", "--stage", "4")
    assert lines and not any(line.startswith("#") for line in lines)
    assert set(scripts(commands)) == {"evaluate.py"} and len(commands) == 15


def test_all_tables_together_share_runs(reproduce, capsys):
    commands, lines = listed(reproduce, capsys, "--table", "all")
    each = sum(len(listed(reproduce, capsys, "--table", t)[0]) for t in reproduce.TABLES)
    assert len(commands) < each  # f, W and the main interpreters are shared between tables
    assert len({shlex.join(c) for c in commands}) == len(commands)


def test_bad_options_are_refused(reproduce, capsys, tmp_path):
    for argv, message in ((["--table", "apnet-9"], "invalid choice"),
                          (["--table", "apnet-3", "--jobs", "0", "--dry-run"], "argument --jobs: must be"),
                          (["--table", "apnet-3", "--jobs", "2", "--devices", "0"], "not allowed with"),
                          (["--table", "apnet-3", "--stage", "1"], "use it with --dry-run"),
                          (["--table", "apnet-3", "--data-dir", str(tmp_path / "none")], "no such folder")):
        with pytest.raises(SystemExit):
            reproduce.parse_args(["--output", "R", *argv])
        assert message in capsys.readouterr().err


def test_an_empty_selection_is_an_error(reproduce, capsys):
    assert reproduce.main(["--table", "l2i-7", "--datasets", "esc50", "--output", "R", "--dry-run"]) == 2
    assert "select no run of these tables" in capsys.readouterr().err
    commands, _ = listed(reproduce, capsys, "--table", "l2i-5", "--datasets", "sonyc_ust", "esc10", "--folds", "2")
    assert {options(c)["--dataset"] for c in commands} == {"esc10"}  # Table V is ESC only


def test_planned_ablation_folder_is_the_one_train_interpreter_writes(reproduce, tmp_path):
    """The hashed folder of a Table VI run, planned without running anything, is where train_interpreter.py
    puts it: given a classifier and a dictionary of the main configuration, the script writes the run's
    identity.json before it reads any audio (here it then stops: there is no data)."""
    from l2i.runs import classifier_identity, default_config, dictionary_identity, write_identity

    config = default_config("esc10")
    base = tmp_path / "R" / "l2i" / "esc10" / "fold1" / "seed0"
    write_identity(base / "classifier", classifier_identity(config["classifier"]))
    (base / "classifier" / "classifier.keras").write_bytes(b"")
    write_identity(base / "dictionary", dictionary_identity("esc10", config["dictionary"]))
    (base / "dictionary" / "W.npy").write_bytes(b"")
    args = reproduce.parse_args(["--table", "l2i-6", "--output", str(tmp_path / "R"), "--dry-run"])
    planned = reproduce.Planner(args).interpreter_folder("esc10", "posthoc", "att", hidden_layers=["block3"])
    assert planned.startswith("posthoc_att-B3-")
    subprocess.run([sys.executable, str(REPO / "experiments" / "l2i" / "train_interpreter.py"), "--dataset", "esc10",
                    "--fold", "1", "--mode", "posthoc", "--theta", "att", "--hidden-layers", "block3",
                    "--data-dir", str(tmp_path / "no_data"), "--output", str(tmp_path / "R")],
                   capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    written = [p.name for p in base.iterdir() if p.name.startswith("posthoc_att")]
    assert written == [planned]


# ----------------------------------------------------------------------------- end to end
def run_script(args, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    env.pop("AUDIO_DATA_DIR", None)
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--no-progress"], capture_output=True, text=True,
                          timeout=900, env=env, cwd=tmp_path)


@pytest.fixture(scope="module")
def fsdd_table(tmp_path_factory, shared_data, feature_cache):
    """Table 3 reduced to FSDD fold 1, seeds 0 and 1, one epoch, two runs at once: APNet (M = 10, C = 8) and
    SB-CNN, whose config asks for a batch size of 0, so its two runs fail (exit status 2)."""
    tmp = tmp_path_factory.mktemp("reproduce")
    config = yaml.safe_load((REPO / "apnet" / "configs" / "fsdd.yaml").read_text())
    config.update(n_prototypes=10, n_filters=8, baseline_batch_size={"sb_cnn": 0})
    (tmp / "configs" / "apnet").mkdir(parents=True)
    (tmp / "configs" / "apnet" / "fsdd.yaml").write_text(yaml.safe_dump(config))
    args = ["--table", "apnet-3", "--datasets", "fsdd", "--models", "apnet", "sb_cnn", "--folds", "1", "--seeds", "0",
            "1", "--epochs", "1", "--jobs", "2", "--data-dir", str(shared_data), "--cache-dir", str(feature_cache),
            "--config-dir", str(tmp / "configs"), "--output", str(tmp / "R")]
    return tmp, args, run_script(args, tmp)


def test_reduced_table_runs_end_to_end_with_two_jobs(fsdd_table):
    tmp, _, done = fsdd_table
    R = tmp / "R"
    assert done.returncode == 1, done.stderr[-3000:]  # SB-CNN failed
    # 2 feature extractions, 2 APNet runs done; the 2 SB-CNN runs failed, and nothing else stopped
    assert "commands: 6 planned, 0 complete before, 4 done now, 2 failed" in done.stderr, done.stderr[-3000:]
    for seed in (0, 1):
        assert f"failed: train.sb_cnn.fsdd.fold1.seed{seed}: exit status 2" in done.stderr
        log = (R / "reproduce" / "logs" / f"train.sb_cnn.fsdd.fold1.seed{seed}.log").read_text()
        assert "sb_cnn: the batch size" in log
    states = {p.stem: json.loads(p.read_text()) for p in (R / "reproduce" / "jobs").glob("*.json")}
    first, second = states["train.apnet.fsdd.fold1.seed0"], states["train.apnet.fsdd.fold1.seed1"]
    assert first["status"] == second["status"] == "done"
    assert first["slot"] != second["slot"]  # two slots: the two APNet runs at once
    assert first["started"] < second["finished"] and second["started"] < first["finished"]
    # the table: the paper's rows, and our FSDD row: the mean of the two runs' results.json
    table = pd.read_csv(R / "tables" / "table3.csv")
    accuracies = []
    for seed in (0, 1):
        results = json.loads((R / "apnet" / "fsdd" / "fold1" / f"seed{seed}" / "results.json").read_text())
        assert results["epochs"] == 1 and 0 < results["n_params"] < 1e5 and results["seed"] == seed
        accuracies.append(100 * results["test_accuracy"])
    row = table[(table["model"] == "apnet") & (table["dataset"] == "fsdd")].iloc[0]
    assert row["accuracy_mean"] == pytest.approx(sum(accuracies) / 2)
    assert row["n_runs"] == 2 and "--epochs 1" in row["command"]
    assert table[(table["model"] == "sb_cnn") & (table["dataset"] == "fsdd")].empty  # not run: no row
    paper = table[(table["model"] == "apnet") & (table["dataset"] == "urbansound8k")].iloc[0]
    assert paper["paper_accuracy"] == 76.2 and paper["status"] == "not run"
    assert "| APNet | FSDD (not in paper) |" in (R / "tables" / "table3.md").read_text()


def test_rerun_skips_complete_runs_and_retries_failed_ones(fsdd_table):
    tmp, args, _ = fsdd_table
    R = tmp / "R"
    runs = [R / "apnet" / "fsdd" / "fold1" / f"seed{seed}" / "results.json" for seed in (0, 1)]
    before = [path.stat().st_mtime_ns for path in runs]
    again = run_script(args, tmp)
    # the extractions run again (they read the cache back), APNet's runs are skipped, SB-CNN's retried
    assert "commands: 6 planned, 2 complete before, 2 done now, 2 failed" in again.stderr, again.stderr[-2000:]
    for seed in (0, 1):
        log = (R / "reproduce" / "logs" / f"train.sb_cnn.fsdd.fold1.seed{seed}.log").read_text()
        assert log.count("=== ") == 2  # tried again
        assert (R / "reproduce" / "logs" / f"train.apnet.fsdd.fold1.seed{seed}.log").read_text().count("=== ") == 1
    assert [path.stat().st_mtime_ns for path in runs] == before
    listing = run_script([*args, "--dry-run"], tmp)
    assert listing.stdout.count("# complete: ") == 2 and listing.returncode == 0


@pytest.mark.slow
def test_reduced_l2i_table_runs_end_to_end(tmp_path, shared_data):
    """Table V on ESC-10 fold 1, one seed, one epoch of f and g, two jobs: f and W at once, then g, then
    evaluate.py; the table holds FF_median per tau from the evaluation."""
    args = ["--table", "l2i-5", "--datasets", "esc10", "--folds", "1", "--seeds", "0", "--epochs", "1", "--jobs", "2",
            "--data-dir", str(shared_data), "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "R")]
    done = run_script(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "commands: 6 planned, 0 complete before, 6 done now, 0 failed" in done.stderr
    evaluation = json.loads((tmp_path / "R" / "l2i" / "esc10" / "fold1" / "seed0" / "posthoc_att" / "evaluation_none"
                             / "results.json").read_text())
    table = pd.read_csv(tmp_path / "R" / "tables" / "table_V.csv")
    row = table[table["metric"] == "FF_median, tau = 0.1"].iloc[0]
    tau = [float(t) for t in evaluation["taus"]].index(0.1)
    assert row["ours"].startswith(f"{evaluation['ff_median'][tau]:.3f}"[:4]) and "[ESC-10]" in row["ours"]
