"""Command line of the web application: ``python -m audioapp`` (or ``apnet-app``).

    python -m audioapp --model results/apnet/fsdd/fold1/seed0/model.keras --dataset fsdd --fold 1 \\
        --data-dir /data [--l2i-model runs/l2i/esc10/fold1/seed0/posthoc_att] [--port 8050]

Loads the model and its fold, then serves the pages on http://127.0.0.1:8050/ (printed on
start) until Ctrl+C. See docs/webapp.md. With --download, the datasets of the APNet run (and of
the L2I run) are first downloaded into --data-dir unless they are already there (--mirror URL:
from a mirror; audiodata.download.ensure_dataset). While the fold loads, stderr shows the clips of
each split, a `warning:` line when the dataset folder holds less than half the clips of the
official release, and a progress bar while features are extracted.
"""
import argparse
import atexit
import json
import logging
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import uvicorn

from audiodata import cli as argtypes
from audiodata.download import add_download_options, cli_error, ensure_dataset
from audiodata.errors import AudioDataError, ParameterError

from audioapp.l2i_explorer import L2IExplorer
from audioapp.server import LOCAL_HOSTS, create_app, is_loopback, url_of
from audioapp.workspace import Workspace

#: Largest upload the L2I page accepts, in MB (build() checks it again for programmatic callers).
MAX_UPLOAD_MB = argtypes.float_range(0.0, 2048.0, low_closed=False, name="max_upload_mb")


def parse_args(argv=None, prog=None):
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Inspect, edit, retrain and evaluate an APNet; listen to L2I "
                                                 "interpretations (web application, docs/webapp.md)")
    parser.add_argument("--model", required=True, help="model.keras of an experiments/apnet/train.py run folder")
    parser.add_argument("--dataset", default=None, help="dataset of the run (checked against the run folder)")
    parser.add_argument("--fold", type=argtypes.positive_int, default=None,
                        help="test fold of the run (checked against the run folder)")
    argtypes.add_data_options(parser)
    parser.add_argument("--output", default=None,
                        help="folder for the edited models model_edited_<n>.keras (default: the model's folder)")
    parser.add_argument("--l2i-model", default=None,
                        help="L2I run folder (holding interpreter.keras) for the L2I page; optional")
    parser.add_argument("--l2i-fold", type=argtypes.positive_int, default=None,
                        help="test fold listed on the L2I page (default: the run's)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=argtypes.port, default=8050, help="port (default 8050; 0 picks a free one)")
    parser.add_argument("--max-points", type=argtypes.positive_int, default=1500,
                        help="training instances drawn on the maps")
    parser.add_argument("--max-upload-mb", type=MAX_UPLOAD_MB, default=20.0,
                        help="largest upload on the L2I page (MB, at most 2048)")
    parser.add_argument("--work-dir", default=None,
                        help="cache folder for uploads (default: a temporary folder removed at exit)")
    parser.add_argument("--seed", type=argtypes.seed, default=0, help="seed of the map sample and of t-SNE")
    add_download_options(parser)
    return parser.parse_args(argv)


def _run_dataset(folder, pattern):
    """Dataset of a run folder: its results.json's ``dataset``, else the folder name the path ``pattern`` captures."""
    results = Path(folder) / "results.json"
    if results.is_file():
        try:
            dataset = json.loads(results.read_text()).get("dataset")
        except (OSError, ValueError, AttributeError):
            dataset = None
        if dataset:
            return str(dataset)
    match = re.search(pattern, Path(folder).resolve().as_posix())
    return match.group(1) if match else None


def download_datasets(args):
    """``--download``: fetch the dataset of the APNet run (and of the L2I run) into ``--data-dir`` unless it is there."""
    datasets = [args.dataset or _run_dataset(Path(args.model).parent, r"/([^/]+)/fold\d+/seed\d+$")]
    if datasets[0] is None:
        raise ParameterError(f"--download: cannot tell the dataset of {args.model} (no results.json); pass --dataset")
    if args.l2i_model:
        datasets.append(_run_dataset(args.l2i_model, r"/l2i/([^/]+)/fold\d+/"))
    for dataset in dict.fromkeys(d for d in datasets if d):
        ensure_dataset(dataset, args.data_dir, mirror=args.mirror, log=argtypes.say)


def build(args, log=print):
    """The Starlette app for parsed arguments (loads the models and the data)."""
    max_upload_mb = argtypes.require(MAX_UPLOAD_MB, args.max_upload_mb, "--max-upload-mb")
    if getattr(args, "download", False):
        download_datasets(args)
    workspace = Workspace(args.model, dataset=args.dataset, fold=args.fold, data_dir=args.data_dir,
                          cache_dir=args.cache_dir, output_dir=args.output, max_points=args.max_points,
                          seed=args.seed, log=log)
    work_dir = args.work_dir
    if work_dir is None:
        work_dir = tempfile.mkdtemp(prefix="apnet-app-")
        atexit.register(shutil.rmtree, work_dir, ignore_errors=True)
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    l2i = None
    if args.l2i_model:
        log(f"loading the L2I run {args.l2i_model}")
        l2i = L2IExplorer(args.l2i_model, work_dir, fold=args.l2i_fold, data_dir=args.data_dir)
    hosts = LOCAL_HOSTS if is_loopback(args.host) else ("*" if args.host in ("0.0.0.0", "::") else
                                                        (args.host,) + LOCAL_HOSTS)
    return create_app(workspace, l2i, max_upload_bytes=int(max_upload_mb * 2**20), allowed_hosts=hosts)


def main(argv=None, prog=None):
    """Parse ``argv``, load everything, print the URL and serve until interrupted; returns the exit status."""
    try:
        args = parse_args(argv, prog)
    except SystemExit as stop:  # argparse: --help (0) or a bad option (2, message already printed)
        return 0 if stop.code is None else stop.code
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices of predict_on_batch
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host.strip("[]"), args.port))
        sock.listen(128)  # connections wait in the backlog from now on, before the URL is printed
    except OSError as err:
        print(f"error: cannot listen on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        return 2
    try:
        app = build(args)
    except (AudioDataError, ValueError, OSError) as err:
        sock.close()
        print(f"error: {cli_error(err)}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    if not is_loopback(args.host):
        print(f"WARNING: serving on {args.host}: anyone who can reach this address can edit, retrain and save "
              "models and upload files. Use the default --host 127.0.0.1 unless you mean it.", file=sys.stderr)
    print(f"APNet app ready: {url_of(args.host, port)}  (Ctrl+C to stop)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return 0
