"""Reproduce whole tables of both papers in one command: plan every run, run them in parallel, write the tables.

    python experiments/reproduce.py --table apnet-3 --data-dir D --output R --devices 0,1,2,3
    python experiments/reproduce.py --table l2i-4 --table l2i-8 --data-dir D --output R --jobs 2
    python experiments/reproduce.py --table all --output R --dry-run          # the commands, nothing run
    python experiments/reproduce.py --table apnet-3 --output R --dry-run --stage 1   # one stage, for a job array

Tables: apnet-3, apnet-4 (Zinemanas et al. 2021, Tables 3-4), l2i-1, l2i-4, l2i-5, l2i-6, l2i-7, l2i-8
(Parekh et al. 2024, Tables I, IV-VIII), or all. Each table is planned as the runs of its cells (dataset x
model or system x fold x seed, with the refinements and evaluations after them) using the training commands
of experiments/apnet and experiments/l2i, exactly as a user would type them; `--dry-run` prints them.

Running: the feature sets the runs read are extracted first (or read back from the cache), one command per
dataset and set; runs already complete (their results.json exists) are skipped; a run interrupted earlier is
started again and resumes from its last completed epoch; up to --jobs runs at once, each pinned to a share
of the CPU cores, or with --devices one run per GPU (CUDA_VISIBLE_DEVICES); a progress bar counts runs done /
total with an ETA. A run that fails is reported (with the end of its log) and the others go on; the runs
that need it are skipped. Rerunning the command retries only what failed or is missing. Logs and per-run
state: R/reproduce/logs/, R/reproduce/jobs/. At the end the tables are written to R/tables/ (Markdown and
CSV, the paper's numbers beside ours; by experiments/apnet/tables.py and experiments/l2i/tables.py) and the
exit status is 1 when a run failed.

Smaller plans: --datasets, --models (APNet models or L2I systems), --folds, --seeds; --epochs E overrides
every training budget (epochs, and learn_dictionary's NMF iterations) for a quick check, --config-dir DIR
replaces the shipped config of a dataset by DIR/apnet/<dataset>.yaml or DIR/l2i/<dataset>.yaml when the file
exists. See docs/reproduce.md (also: submitting the --dry-run commands as a SLURM job array).
"""
import argparse
import dataclasses
import importlib.util
import json
import os
import shlex
import sys
from pathlib import Path

import yaml

# Python puts this script's folder first on sys.path, where the folders of scripts experiments/apnet and
# experiments/l2i would shadow the packages apnet and l2i (as namespace packages): take it off.
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

from audiodata import cli as argtypes  # noqa: E402
from audioruns.cli import shipped_config  # noqa: E402
from audioruns.jobs import Job, cpu_slots, device_slots, run_jobs  # noqa: E402

HERE = Path(__file__).resolve().parent
PYTHON = "python"  # how a listed command starts; run with sys.executable

APNET_TABLES = {"apnet-3": "Table 3: accuracy of APNet and the baselines (UrbanSound8K, Medley-solos-DB, "
                           "Speech Commands)",
                "apnet-4": "Table 4: Medley-solos-DB, APNet refined (prototypes, then channels), OpenL3"}
L2I_TABLES = {"l2i-1": "Table I: the classifier f", "l2i-4": "Table IV: fidelity", "l2i-5": "Table V: faithfulness",
              "l2i-6": "Table VI: hidden-layer ablation (ESC-50 fold 1)",
              "l2i-7": "Table VII: loss-weight ablation (SONYC-UST)",
              "l2i-8": "Table VIII: by-design interpretation"}
TABLES = {**APNET_TABLES, **L2I_TABLES}

APNET_MODELS = ("apnet", "sb_cnn", "att_crnn", "openl3_mlp")
APNET_PAPER_DATASETS = ("urbansound8k", "medley_solos_db", "speech_commands")
APNET_DATASETS = APNET_PAPER_DATASETS + ("fsdd", "esc10", "esc50")
L2I_PAPER_DATASETS = ("esc50", "sonyc_ust", "openmic")
L2I_DATASETS = L2I_PAPER_DATASETS + ("esc10",)
L2I_FOLDS = {"esc50": (1, 2, 3, 4, 5), "esc10": (1, 2, 3, 4, 5), "sonyc_ust": (1,), "openmic": (1,)}
L2I_SEEDS = (0, 1, 2)  # "mean and variance over three runs" (Tables IV, VIII)
L2I_SYSTEMS = ("classifier", "posthoc_att", "posthoc_max", "bydesign_att", "bydesign_nopred_att", "baseline_flint",
               "baseline_vibi", "baseline_flint_bydesign", "baseline_nmf", "baseline_tdl_nmf", "apnet")
SWEEP = ("--k", "64", "128", "256", "512", "--features", "logmag", "sqrt_mel")  # Table VIII's NMF sweeps
SWEEP_K, SWEEP_FEATURES = (64, 128, 256, 512), ("logmag", "sqrt_mel")
#: Table VI rows: hidden layers (B4+B5+B6 is the main configuration).
TABLE6_LAYERS = (("block3",), ("block6",), ("block2", "block3"), ("block5", "block6"),
                 ("block4", "block5", "block6"), ("input",))
#: Table VII rows: (alpha, beta); (10, 0.8) is the main configuration.
TABLE7_WEIGHTS = ((10.0, 0.8), (10.0, 8.0), (10.0, 0.08), (1.0, 0.8), (100.0, 0.8))


def _load_script(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- planning
class Planner:
    """Builds the jobs of the tables asked for; the same run wanted by two tables is one job."""

    def __init__(self, args):
        self.args = args
        self.output = Path(args.output)
        self.jobs = {}

    # options shared by the commands ------------------------------------------------------------
    def _config(self, paper, dataset):
        if self.args.config_dir:
            path = Path(self.args.config_dir) / paper / f"{dataset}.yaml"
            if path.is_file():
                return path
        return None

    def _data(self):
        flags = ["--data-dir", self.args.data_dir]
        if self.args.cache_dir:
            flags += ["--cache-dir", self.args.cache_dir]
        return flags

    def _epochs(self):
        return ["--epochs", str(self.args.epochs)] if self.args.epochs else []

    def add(self, job):
        known = self.jobs.get(job.id)
        if known is not None and known.argv != job.argv:
            raise SystemExit(f"error: two tables need different runs in one folder ({job.id}):\n  "
                             f"{shlex.join(known.argv)}\n  {shlex.join(job.argv)}")
        if known is None:
            self.jobs[job.id] = job
        return job.id

    def wanted(self, name):
        return not self.args.models or name in self.args.models

    def folds(self, available):
        return [f for f in available if not self.args.folds or f in self.args.folds]

    # APNet -------------------------------------------------------------------------------------
    def apnet_config(self, dataset):
        path = self._config("apnet", dataset) or shipped_config("apnet", dataset)
        return path, yaml.safe_load(Path(path).read_text())

    def features(self, dataset, name):
        """Extract (or check) one feature set of a whole dataset before the runs that read it: two runs
        starting at once would otherwise both extract it, and the feature cache lets only one of them."""
        return self.add(Job(f"features.{dataset}.{name}",
                            [PYTHON, "experiments/extract_features.py", "--dataset", dataset, "--features", name,
                             *self._data(), "--no-progress"], repeat=True))

    def apnet_train(self, model, dataset, fold, seed, extra=()):
        from apnet.training import feature_set  # here: TensorFlow is imported only when APNet is planned

        path, config = self.apnet_config(dataset)
        features = self.features(dataset, feature_set(model, config))
        config = ["--config", str(path)] if self._config("apnet", dataset) else []
        argv = [PYTHON, "experiments/apnet/train.py", "--dataset", dataset, "--model", model, "--fold", str(fold),
                "--seed", str(seed), *self._data(), "--output", str(self.output), *config, *self._epochs(), *extra]
        run = self.output / model / dataset / f"fold{fold}" / f"seed{seed}"
        return self.add(Job(f"train.{model}.{dataset}.fold{fold}.seed{seed}", argv, [run / "results.json"],
                            after=[features])), run

    def apnet_runs(self, datasets, models):
        for dataset in datasets:
            _, config = self.apnet_config(dataset)
            seeds = self.args.seeds or [int(config.get("seed", 0))]
            for model in models:
                for fold in self.folds(config["folds"]):
                    for seed in seeds:
                        yield (model, dataset, fold, seed, *self.apnet_train(model, dataset, fold, seed))

    def apnet_datasets(self, default):
        return [d for d in (self.args.datasets or default) if d in APNET_DATASETS]

    def table_apnet_3(self):
        models = [m for m in APNET_MODELS if self.wanted(m)]
        list(self.apnet_runs(self.apnet_datasets(APNET_PAPER_DATASETS), models))

    def table_apnet_4(self):
        datasets = self.apnet_datasets(("medley_solos_db",))
        if self.wanted("openl3_mlp"):
            list(self.apnet_runs(datasets, ["openl3_mlp"]))
        if not self.wanted("apnet"):
            return
        for _, dataset, fold, seed, train_id, run in self.apnet_runs(datasets, ["apnet"]):
            refine = [PYTHON, "experiments/apnet/refine.py", *self._data(), *self._epochs()]
            prototypes = run / "refine_prototypes"
            first = self.add(Job(f"refine_prototypes.apnet.{dataset}.fold{fold}.seed{seed}",
                                 refine + ["--method", "prototypes", "--model", str(run / "model.keras")],
                                 [prototypes / "results.json"], after=[train_id]))
            self.add(Job(f"refine_channels.apnet.{dataset}.fold{fold}.seed{seed}",
                         refine + ["--method", "channels", "--n-channels", "8", "--model",
                                   str(prototypes / "model.keras")],
                         [prototypes / "refine_channels" / "results.json"], after=[first]))

    # L2I ---------------------------------------------------------------------------------------
    def l2i_datasets(self, default=L2I_PAPER_DATASETS):
        return [d for d in (self.args.datasets or default) if d in L2I_DATASETS]

    def l2i_config(self, dataset):
        from l2i.training import load_config  # here: TensorFlow is imported only when an L2I table is planned

        return load_config(dataset, self._config("l2i", dataset))

    def l2i_base(self, dataset, fold, seed):
        return self.output / "l2i" / dataset / f"fold{fold}" / f"seed{seed}"

    def _l2i_argv(self, script, dataset, fold, seed, *extra):
        config = self._config("l2i", dataset)
        return [PYTHON, f"experiments/l2i/{script}", "--dataset", dataset, "--fold", str(fold), "--seed", str(seed),
                *self._data(), "--output", str(self.output), *(["--config", str(config)] if config else []),
                *self._epochs(), *extra]

    def l2i_features(self, dataset):
        """The feature extractions every L2I run of ``dataset`` needs (l2i.training.load_fold: mel, logmag)."""
        return [self.features(dataset, name) for name in ("mel", "logmag")]

    def classifier(self, dataset, fold, seed):
        return self.add(Job(f"l2i.classifier.{dataset}.fold{fold}.seed{seed}",
                            self._l2i_argv("train_classifier.py", dataset, fold, seed),
                            [self.l2i_base(dataset, fold, seed) / "classifier" / "results.json"],
                            after=self.l2i_features(dataset)))

    def dictionary(self, dataset, fold, seed):
        return self.add(Job(f"l2i.dictionary.{dataset}.fold{fold}.seed{seed}",
                            self._l2i_argv("learn_dictionary.py", dataset, fold, seed),
                            [self.l2i_base(dataset, fold, seed) / "dictionary" / "results.json"],
                            after=self.l2i_features(dataset)))

    def interpreter_folder(self, dataset, mode, theta, hidden_layers=None, weights=None, config=None):
        """The run folder train_interpreter.py will write (``posthoc_att``, or ``posthoc_att-<tag>-<hash>``);
        ``config``: the dataset's (:meth:`l2i_config`), when already read (left unchanged)."""
        from l2i.runs import (classifier_identity, dictionary_identity, interpreter_folder,  # (as l2i_config)
                              interpreter_identity)

        config = dict(config) if config is not None else self.l2i_config(dataset)  # sections replaced, not edited
        section = "posthoc" if mode == "posthoc" else "bydesign"
        if weights is not None:
            config[section] = dict(config[section], alpha=weights[0], beta=weights[1])
        if hidden_layers is not None:
            config["interpreter"] = dict(config.get("interpreter", {}), hidden_layers=list(hidden_layers))
        identity = interpreter_identity(config, mode, theta, dictionary_identity(dataset, config["dictionary"]),
                                        classifier_identity(config["classifier"]))
        return interpreter_folder(mode, theta, identity, dataset)

    def interpreter(self, dataset, fold, seed, system, hidden_layers=None, weights=None):
        mode, _, theta = system.rpartition("_")
        config = self.l2i_config(dataset)
        section = config["posthoc" if mode == "posthoc" else "bydesign"]
        if hidden_layers is not None and list(hidden_layers) == list(config["interpreter"]["hidden_layers"]):
            hidden_layers = None  # the main configuration: the plain command
        if weights is not None and tuple(weights) == (float(section["alpha"]), float(section["beta"])):
            weights = None
        folder = self.interpreter_folder(dataset, mode, theta, hidden_layers, weights, config=config)
        after = [self.dictionary(dataset, fold, seed)]
        if mode == "posthoc":
            after.append(self.classifier(dataset, fold, seed))
        extra = ["--mode", mode, "--theta", theta]
        if hidden_layers is not None:
            extra += ["--hidden-layers", *hidden_layers]
        if weights is not None:
            extra += ["--alpha", f"{weights[0]:g}", "--beta", f"{weights[1]:g}"]
        run = self.l2i_base(dataset, fold, seed) / folder
        job = self.add(Job(f"l2i.{folder}.{dataset}.fold{fold}.seed{seed}",
                           self._l2i_argv("train_interpreter.py", dataset, fold, seed, *extra), [run / "results.json"],
                           after=after))
        self.add(Job(f"l2i.evaluate.{folder}.{dataset}.fold{fold}.seed{seed}",
                     [PYTHON, "experiments/l2i/evaluate.py", "--model", str(run), "--dataset", dataset, "--fold",
                      str(fold), "--data-dir", self.args.data_dir, "--output", str(self.output)],
                     [run / "evaluation_none" / "results.json"], after=[job]))
        return job

    def baseline(self, dataset, fold, seed, name):
        after = self.l2i_features(dataset)
        if name in ("flint", "vibi"):
            after.append(self.classifier(dataset, fold, seed))
        base = self.l2i_base(dataset, fold, seed)
        if name in ("nmf", "tdl_nmf"):
            outputs = [base / f"baseline_{name}_k{k}_{f}" / "results.json" for k in SWEEP_K for f in SWEEP_FEATURES]
            extra = SWEEP
        else:
            outputs, extra = [base / f"baseline_{name}" / "results.json"], ()
        return self.add(Job(f"l2i.baseline_{name}.{dataset}.fold{fold}.seed{seed}",
                            self._l2i_argv("train_baseline.py", dataset, fold, seed, "--baseline", name, *extra),
                            outputs, after=after))

    def l2i_cells(self, default_datasets=L2I_PAPER_DATASETS, folds=None, single_run=False, allowed=L2I_DATASETS):
        """(dataset, fold, seed) of a table: ``allowed`` datasets only (ESC-10 stands in for ESC-50)."""
        for dataset in [d for d in self.l2i_datasets(default_datasets) if d in allowed]:
            seeds = self.args.seeds or L2I_SEEDS
            for fold in self.folds(folds or L2I_FOLDS[dataset]):
                for seed in (seeds[:1] if single_run else seeds):
                    yield dataset, fold, seed

    def table_l2i_1(self):
        for dataset, fold, seed in self.l2i_cells():
            if self.wanted("classifier"):
                self.classifier(dataset, fold, seed)
            if dataset == "openmic" and self.wanted("posthoc_att"):  # f's weighted F1 comes from evaluate.py
                self.interpreter(dataset, fold, seed, "posthoc_att")

    def table_l2i_4(self):
        for dataset, fold, seed in self.l2i_cells():
            for system in ("posthoc_att", "posthoc_max"):
                if self.wanted(system):
                    self.interpreter(dataset, fold, seed, system)
            for name in ("flint", "vibi"):
                if self.wanted(f"baseline_{name}"):
                    self.baseline(dataset, fold, seed, name)

    def table_l2i_5(self):
        for dataset, fold, seed in self.l2i_cells(("esc50",), allowed=("esc50", "esc10")):
            if self.wanted("posthoc_att"):
                self.interpreter(dataset, fold, seed, "posthoc_att")

    def table_l2i_6(self):
        for dataset, fold, seed in self.l2i_cells(("esc50",), folds=(1,), single_run=True, allowed=("esc50", "esc10")):
            if dataset in ("esc50", "esc10") and self.wanted("posthoc_att"):
                for layers in TABLE6_LAYERS:
                    self.interpreter(dataset, fold, seed, "posthoc_att", hidden_layers=layers)

    def table_l2i_7(self):
        for dataset, fold, seed in self.l2i_cells(("sonyc_ust",), folds=(1,), single_run=True, allowed=("sonyc_ust",)):
            if dataset == "sonyc_ust" and self.wanted("posthoc_att"):
                for weights in TABLE7_WEIGHTS:
                    self.interpreter(dataset, fold, seed, "posthoc_att", weights=weights)

    def table_l2i_8(self):
        for dataset, fold, seed in self.l2i_cells():
            for system in ("bydesign_att", "posthoc_att", "bydesign_nopred_att"):
                if self.wanted(system):
                    self.interpreter(dataset, fold, seed, system)
            for name in ("nmf", "tdl_nmf", "flint_bydesign"):
                if self.wanted(f"baseline_{name}"):
                    self.baseline(dataset, fold, seed, name)
            if self.wanted("classifier"):
                self.classifier(dataset, fold, seed)
            if dataset in ("esc50", "esc10") and self.wanted("apnet"):  # APNet with M = K (single-label only)
                k = int(self.l2i_config(dataset)["dictionary"]["n_components"])
                self.apnet_train("apnet", dataset, fold, seed, extra=["--n-prototypes", str(k)])

    def plan(self, tables):
        for table in tables:
            getattr(self, "table_" + table.replace("-", "_"))()
        return list(self.jobs.values())


def stages(jobs):
    """``{job id: stage}``: 1 for a job that needs nothing, else one more than the latest job it needs."""
    by_id = {job.id: job for job in jobs}
    stage = {}

    def of(job_id):
        if job_id not in stage:
            stage[job_id] = 1 + max((of(a) for a in by_id[job_id].after), default=0)
        return stage[job_id]

    for job in jobs:
        of(job.id)
    return stage


# ----------------------------------------------------------------------------- running and tables
def executable(job):
    """The job with ``python experiments/...`` turned into this interpreter and the script's absolute path."""
    argv = list(job.argv)
    if argv[:1] == [PYTHON] and len(argv) > 1 and argv[1].startswith("experiments/"):
        argv = [sys.executable, str(HERE / argv[1][len("experiments/"):])] + argv[2:]
    return dataclasses.replace(job, argv=argv)


def write_tables(tables, output):
    """Run the two papers' table scripts on ``output``; write to ``output/tables``; return the Markdown paths."""
    folder = Path(output) / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if any(t in APNET_TABLES for t in tables):
        apnet_tables = _load_script(HERE / "apnet" / "tables.py", "apnet_tables")
        apnet_tables.main([str(output), "--output", str(folder)])
        written += [folder / f"table{t[-1]}.md" for t in tables if t in APNET_TABLES]
    wanted = {t.split("-")[1]: t for t in tables if t in L2I_TABLES}
    if wanted:
        l2i_tables = _load_script(HERE / "l2i" / "tables.py", "l2i_tables")
        roman = {"1": "I", "4": "IV", "5": "V", "6": "VI", "7": "VII", "8": "VIII"}
        built = l2i_tables.build_tables(output)
        chosen = {roman[n]: built[roman[n]] for n in wanted}
        l2i_tables.write_tables(chosen, folder)
        written += [folder / f"table_{name}.md" for name in chosen]
    return written


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", action="append", required=True, choices=[*TABLES, "all"],
                        help="table to reproduce (repeat for several; all: every table of both papers)")
    parser.add_argument("--output", required=True, help="results root: every run folder, logs, tables")
    parser.add_argument("--data-dir", default=os.environ.get("AUDIO_DATA_DIR"),
                        help="folder holding the dataset folders (default $AUDIO_DATA_DIR)")
    parser.add_argument("--cache-dir", default=None, help="feature cache (default $AUDIO_CACHE_DIR or ~/.cache)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=argtypes.positive_int, default=None,
                       help="runs at once on the CPU, each on its share of the cores (default 1)")
    where.add_argument("--devices", default=None,
                       help="GPUs, comma-separated (0,1,2,3): one run per GPU at a time (CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands in order and exit")
    parser.add_argument("--stage", type=argtypes.positive_int, default=None,
                        help="with --dry-run: only the commands of this stage, not complete yet, one per line "
                             "(stage 1 needs nothing; stage k needs stages < k)")
    parser.add_argument("--datasets", nargs="+", default=None, choices=sorted(set(APNET_DATASETS + L2I_DATASETS)),
                        help="only these datasets (may add datasets not in the paper: fsdd, esc10, ...)")
    parser.add_argument("--models", nargs="+", default=None, choices=[*APNET_MODELS, *L2I_SYSTEMS[:-1]],
                        help="only these APNet models / L2I systems")
    parser.add_argument("--folds", nargs="+", type=argtypes.positive_int, default=None, help="only these folds")
    parser.add_argument("--seeds", nargs="+", type=argtypes.seed, default=None,
                        help="these seeds (default: the config's for APNet, 0 1 2 for L2I)")
    parser.add_argument("--epochs", type=argtypes.positive_int, default=None,
                        help="every training budget (a quick check)")
    parser.add_argument("--config-dir", default=None,
                        help="DIR/apnet/<dataset>.yaml, DIR/l2i/<dataset>.yaml replace the shipped configs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.stage is not None and not args.dry_run:
        parser.error("--stage lists commands: use it with --dry-run")
    if args.data_dir is None:
        if not args.dry_run:
            parser.error("no data folder: pass --data-dir DATA or set the AUDIO_DATA_DIR environment variable")
        args.data_dir = "$AUDIO_DATA_DIR"
    elif not args.dry_run and not Path(args.data_dir).is_dir():
        parser.error(f"--data-dir {args.data_dir}: no such folder")
    if args.config_dir and not Path(args.config_dir).is_dir():
        parser.error(f"--config-dir {args.config_dir}: no such folder")
    args.tables = list(TABLES) if "all" in args.table else list(dict.fromkeys(args.table))
    return args


def _shell(argv):
    """The command as a shell line; ``$AUDIO_DATA_DIR`` (no --data-dir given) left for the shell to expand."""
    return shlex.join(argv).replace("'$AUDIO_DATA_DIR'", '"$AUDIO_DATA_DIR"')


def dry_run(jobs, stage_of, stage=None):
    if stage is not None:
        for job in jobs:
            if stage_of[job.id] == stage and not job.complete():
                print(_shell(job.argv))
        return 0
    n_stages = max(stage_of.values(), default=0)
    done = sum(job.complete() for job in jobs)
    repeat = sum(job.repeat for job in jobs)
    print(f"# {len(jobs) - repeat} runs and {repeat} feature extractions in {n_stages} stage(s); {done} runs complete "
          "already (commented out); a stage needs only the stages before it")
    for k in range(1, n_stages + 1):
        group = [job for job in jobs if stage_of[job.id] == k]
        print(f"# stage {k}: {len(group)} commands")
        for job in group:
            print(("# complete: " if job.complete() else "") + _shell(job.argv))
    return 0


def main(argv=None):
    args = parse_args(argv)
    jobs = Planner(args).plan(args.tables)
    if not any(not job.repeat for job in jobs):
        print(f"error: {', '.join(args.tables)}: --datasets / --models / --folds select no run of these tables "
              f"(datasets of APNet's tables: {', '.join(APNET_DATASETS)}; of L2I's: {', '.join(L2I_DATASETS)}; "
              "L2I's folds: 1-5 for ESC, 1 for SONYC-UST and OpenMIC-2018)", file=sys.stderr)
        return 2
    stage_of = stages(jobs)
    jobs.sort(key=lambda job: stage_of[job.id])
    if args.dry_run:
        return dry_run(jobs, stage_of, args.stage)
    slots = device_slots(args.devices.split(",")) if args.devices else cpu_slots(args.jobs or 1)
    output = Path(args.output)
    env = dict(os.environ)
    if args.cache_dir:
        env["AUDIO_CACHE_DIR"] = str(Path(args.cache_dir).resolve())  # evaluate.py has no --cache-dir
    print(f"reproduce: {', '.join(args.tables)}: {len(jobs)} commands, {len(slots)} at once "
          f"({', '.join(s.name for s in slots)}); logs in {output / 'reproduce' / 'logs'}", file=sys.stderr)
    try:
        summary = run_jobs([executable(job) for job in jobs], slots=slots, state_dir=output / "reproduce", env=env,
                           progress=not args.no_progress)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume (complete runs are skipped, the others resume "
              "from their last epoch)", file=sys.stderr)
        return 130
    (output / "reproduce").mkdir(parents=True, exist_ok=True)
    (output / "reproduce" / "summary.json").write_text(json.dumps({"tables": args.tables, **summary}, indent=2) + "\n")
    print(f"commands: {summary['total']} planned, {summary['skipped']} complete before, {summary['done']} done now, "
          f"{summary['failed']} failed, {summary['blocked']} not started (they need a failed one); "
          f"{summary['seconds']:.0f} s", file=sys.stderr)
    for failure in summary["failures"]:
        print(f"failed: {failure['id']}: {failure['reason']} (log {failure['log']})", file=sys.stderr)
    written = write_tables(args.tables, output)
    print(f"tables: {', '.join(str(p) for p in written)}", file=sys.stderr)
    if summary["failed"] or summary["blocked"]:
        print("some runs failed: run the same command again to retry them (complete runs are skipped)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
