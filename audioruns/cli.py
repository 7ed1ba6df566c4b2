"""Command-line pieces shared by the scripts of ``experiments/``: run options, shipped configs, results.

The scripts run as files (``python experiments/l2i/train_classifier.py``), so what they share lives in
an installed package: the data options (``--data-dir``, ``--cache-dir``) in :mod:`audiodata.cli`, the
download options in :mod:`audiodata.download`, the options of a training run here.

Each paper ships its dataset configs inside its package, as package data (``apnet/configs/<dataset>.yaml``,
``l2i/configs/<dataset>.yaml``), so that a non-editable install runs every script; ``--config PATH``
replaces the shipped file and ``--print-config`` prints the file a run would read, then exits.
"""
import importlib.util
import json
import sys
import time
from pathlib import Path

from audiodata import cli as argtypes
from audiodata.errors import ParameterError

__all__ = [
    "RUN_NOTES",
    "add_config_options",
    "add_distribute_option",
    "add_run_options",
    "add_verbose_option",
    "command_line",
    "config_file",
    "existing_folder",
    "finish_run",
    "load_run_config",
    "shipped_config",
    "show_config",
]

#: Epilog of the ``--help`` of a training script (``RUN_NOTES.format(paper="l2i")``).
RUN_NOTES = """\
On stderr: `run folder: PATH` at the start and at the end, the clips of each split on one line, a line starting
with `warning:` when the dataset folder holds less than half the clips of the official release (an excerpt or an
incomplete download), and a progress bar while features are extracted. --download first downloads the dataset
into --data-dir unless it is already there (--mirror URL: from a mirror); see experiments/{paper}/README.md.
The config is {paper}/configs/<dataset>.yaml, shipped with the package; --config PATH replaces it and
--print-config prints the one the run would use, then exits."""


def shipped_config(package, dataset):
    """Path of ``<package>/configs/<dataset>.yaml`` where ``package`` is installed (without importing it).

    Raises :class:`~audiodata.errors.ParameterError`, naming the datasets that have a config, when the file
    does not exist.

    Parameters
    ----------
    package : str
        ``"apnet"`` or ``"l2i"``.
    dataset : str

    Returns
    -------
    pathlib.Path

    Raises
    ------
    audiodata.errors.ParameterError
        ``package`` is not installed, or it has no config for ``dataset``.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ParameterError(f"package {package!r} is not installed")
    folder = Path(list(spec.submodule_search_locations)[0]) / "configs"
    path = folder / f"{dataset}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ParameterError(f"no {package} config for dataset {dataset!r} ({path} does not exist; "
                             f"datasets with one: {known})")
    return path


def config_file(text):
    """``type=`` of ``--config``: the path of an existing file (argparse refuses any other with its name).

    Parameters
    ----------
    text : str
        The argument of ``--config``.

    Returns
    -------
    str
        ``text``.

    Raises
    ------
    argparse.ArgumentTypeError
        ``text`` is not an existing file.
    """
    import argparse

    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"config file {text} does not exist")
    return text


def add_config_options(parser, package):
    """Add ``--config PATH`` (replaces the shipped ``<package>/configs/<dataset>.yaml``) and ``--print-config``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    package : str
        Named in the help.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser.add_argument("--config", type=config_file, default=None, metavar="PATH",
                        help=f"YAML config replacing the one shipped with the package "
                             f"({package}/configs/<dataset>.yaml)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the path and the contents of the config the run would use, then exit")
    return parser


def add_verbose_option(parser):
    """Add ``--verbose {0,1,2}`` (Keras ``fit`` verbosity, default 2).

    Parameters
    ----------
    parser : argparse.ArgumentParser

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser.add_argument("--verbose", type=argtypes.non_negative_int, default=2, choices=(0, 1, 2),
                        help="Keras fit verbosity")
    return parser


#: Help of ``--distribute``.
DISTRIBUTE_HELP = ("train the one model data-parallel over every visible device (GPUs, else CPUs): JAX "
                   "keras.distribution.DataParallel, TensorFlow tf.distribute.MirroredStrategy; the batch size is "
                   "the global batch, split evenly (it must be a multiple of the device count); results.json records "
                   "the devices under 'distribution'. See docs/distributed.md")


def add_distribute_option(parser):
    """Add ``--distribute`` (train data-parallel over every visible device, :mod:`audioruns.distribute`).

    Parameters
    ----------
    parser : argparse.ArgumentParser

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser.add_argument("--distribute", action="store_true", help=DISTRIBUTE_HELP)
    return parser


def add_run_options(parser, datasets, package):
    """Add the options of a training run of one fold.

    ``--dataset`` (required, one of ``datasets``), ``--fold`` (default 1), ``--data-dir``, ``--cache-dir``,
    ``--output`` (default ``runs``), ``--config PATH``, ``--print-config`` and ``--seed`` (overrides the
    config's).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    datasets : sequence of str
        Choices of ``--dataset``.
    package : str
        Whose shipped configs ``--config`` replaces.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser.add_argument("--dataset", required=True, choices=list(datasets))
    parser.add_argument("--fold", type=argtypes.positive_int, default=1)
    argtypes.add_data_options(parser)
    parser.add_argument("--output", default="runs")
    add_config_options(parser, package)
    parser.add_argument("--seed", type=argtypes.seed, default=None, help="overrides the config's seed")
    return parser


def show_config(args, path, config):
    """With ``--print-config``: print ``# PATH`` and ``config`` as YAML on stdout, then exit with status 0.

    Parameters
    ----------
    args : argparse.Namespace
    path : str or Path
        Path of the config, printed as a comment.
    config : dict

    Returns
    -------
    None
        When ``--print-config`` was not given.

    Raises
    ------
    SystemExit
        With status 0, after printing, when ``--print-config`` was given.
    """
    if getattr(args, "print_config", False):
        import yaml

        print(f"# {path}")
        print(yaml.safe_dump(config, sort_keys=False), end="")
        raise SystemExit(0)


def load_run_config(args, load, locate):
    """The config of a run: ``load(args.dataset, args.config)`` with ``--seed`` applied.

    With ``--print-config`` print it (:func:`show_config`; its path is ``args.config`` or
    ``locate(args.dataset)``, the shipped file) and exit.

    Parameters
    ----------
    args : argparse.Namespace
        With ``dataset``, ``config``, ``seed`` (and ``print_config``).
    load : callable
        ``load(dataset, path)`` -> config dict (path None: the shipped one).
    locate : callable
        ``locate(dataset)`` -> path of the shipped config.

    Returns
    -------
    config : dict
    """
    config = load(args.dataset, args.config)
    if args.seed is not None:
        config["seed"] = args.seed
    show_config(args, args.config or locate(args.dataset), config)
    return config


def command_line():
    """The command line of this process, as ``results.json`` records it.

    Returns
    -------
    str
    """
    return " ".join([sys.executable] + sys.argv)


def finish_run(run_dir, results, start, files):
    """Add ``wall_seconds`` (since ``start``, a ``time.perf_counter()``) and ``command`` to ``results``.

    Write them to ``run_dir/results.json`` (atomically), say ``run folder: RUN_DIR (files)`` on stderr and
    print the results but their ``config`` on stdout.

    Parameters
    ----------
    run_dir : str or Path
    results : dict
        Updated in place.
    start : float
        A ``time.perf_counter()`` value.
    files : str
        What the run folder holds, for the message.

    Returns
    -------
    results : dict
    """
    from audioruns.checkpoints import write_text_atomic

    results.update({"wall_seconds": time.perf_counter() - start, "command": command_line()})
    write_text_atomic(Path(run_dir) / "results.json", json.dumps(results, indent=2, sort_keys=True, default=float))
    argtypes.say(f"run folder: {run_dir} ({files})")
    print({k: v for k, v in results.items() if k != "config"})
    return results


def existing_folder(path, *, what="results folder"):
    """``Path(path)`` when it is a folder; else None, after ``error: <what> PATH does not exist`` on stderr.

    Parameters
    ----------
    path : str or Path
    what : str
        What the folder is, for the message.

    Returns
    -------
    pathlib.Path or None
    """
    path = Path(path)
    if path.is_dir():
        return path
    print(f"error: {what} {path} does not exist", file=sys.stderr)
    return None
