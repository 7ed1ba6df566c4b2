"""Installable packages: audio/datasets/features (audiodata), runs (audioruns), APNet (apnet), L2I (l2i), web app (audioapp)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements():
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


setup(
    name="audio-interpretability",
    version="0.1.0",
    description="APNet (Zinemanas et al., 2021) and L2I (Parekh et al., 2024) in Keras 3, "
    "with loaders and cached features for their datasets",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["audiodata", "audiodata.*", "audioruns", "audioruns.*", "apnet", "apnet.*",
                                    "l2i", "l2i.*", "audioapp", "audioapp.*"]),
    # The dataset configs ship inside their packages, so that a non-editable install runs every script.
    package_data={"audiodata": ["configs/*.yaml"], "apnet": ["configs/*.yaml"], "l2i": ["configs/*.yaml"],
                  "audioapp": ["static/*.html", "static/*.js", "static/*.css"]},
    install_requires=_requirements(),
    extras_require={
        # notebooks/: `pip install -e ".[notebooks]"`, then `jupyter lab notebooks/apnet/` (or notebooks/l2i/).
        "notebooks": ["jupyterlab>=4", "ipykernel>=6"],
        # jax: the tests also load and train the models on KERAS_BACKEND=jax (CPU).
        # playwright drives Debian's chromium in tests/app (no browser download); httpx: Starlette's TestClient.
        "test": ["pytest>=7", "pytest-timeout>=2", "nbformat>=5", "nbclient>=0.8", "ipykernel>=6", "jax>=0.4",
                 "playwright>=1.40", "httpx>=0.27"],
    },
    entry_points={"console_scripts": ["apnet-app = audioapp.cli:main", "audio-app = audioapp.cli:main"]},
    license="MIT",
)
