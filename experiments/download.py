"""Download a dataset from its official source into DATA_DIR/<FOLDER>, in the official layout.

    python experiments/download.py --dataset fsdd --data-dir ~/audio-data
    python experiments/download.py --dataset fsdd --data-dir ~/audio-data --mirror https://mirror.example.org/audio

``--data-dir`` defaults to the AUDIO_DATA_DIR environment variable. ``--mirror URL`` (default: the
AUDIO_DATA_MIRROR environment variable) fetches every file from URL/<file name> instead of its
official host, with the same checksums. See docs/download.md.
"""
import argparse
import logging
import os

from audiodata.download import DATA_DIR_ENV, DATASET_FOLDERS, MIRROR_ENV, download_dataset, mirror_sources
from audiodata.errors import AudioDataError


def parse_args(argv=None):
    """Parse the command line.

    Parameters
    ----------
    argv : list of str or None
        Arguments (None reads ``sys.argv``).

    Returns
    -------
    args : argparse.Namespace
        ``dataset``, ``data_dir``, ``mirror``, ``keep_archives``, ``quiet``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=sorted(DATASET_FOLDERS), help="dataset to download")
    parser.add_argument(
        "--data-dir",
        default=os.environ.get(DATA_DIR_ENV),
        help=f"data folder; the dataset goes to DATA_DIR/<FOLDER> (default: ${DATA_DIR_ENV})",
    )
    parser.add_argument("--mirror", default=os.environ.get(MIRROR_ENV) or None, metavar="URL",
                        help=f"fetch the files from URL/<file name> instead of the official hosts (default ${MIRROR_ENV})")
    parser.add_argument("--keep-archives", action="store_true", help="keep the downloaded archives in DATA_DIR/_downloads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error(f"--data-dir is required when {DATA_DIR_ENV} is not set")
    return args


def main(argv=None):
    """Download the dataset named on the command line ``argv`` (as :func:`parse_args`) and print where it is.

    Returns 0 on success, 1 if the download failed.
    """
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        sources = mirror_sources(args.dataset, args.mirror) if args.mirror else None
        path = download_dataset(
            args.dataset, args.data_dir, sources=sources, keep_archives=args.keep_archives, progress=not args.quiet
        )
    except AudioDataError as error:
        print(f"error: {error}")
        return 1
    print(f"{args.dataset} is in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
