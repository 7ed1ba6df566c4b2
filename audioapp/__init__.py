"""Human-in-the-loop web application for APNet (inspect, edit, retrain, evaluate) and L2I (listen).

The APNet paper ships a web application for the manual editing of a trained model
(Zinemanas et al., Electronics 2021, Section 5.2.3, Figure 10); this is ours:

* :class:`~audioapp.workspace.Workspace` -- the loaded model, its fold, the edit stack with
  undo, the latent maps, retraining, evaluation and saving (no web code); a facade over
  :mod:`~audioapp.loading`, :mod:`~audioapp.versions`, :mod:`~audioapp.projections`,
  :mod:`~audioapp.decoding`, :mod:`~audioapp.inspection`, :mod:`~audioapp.editing`,
  :mod:`~audioapp.retraining`, :mod:`~audioapp.evaluation` and :mod:`~audioapp.saving`;
* :class:`~audioapp.l2i_explorer.L2IExplorer` -- L2I explanations of test clips and uploads
  (Parekh et al., TASLP 2024, Sec. III-E, Algorithm 1);
* :class:`~audioapp.background_job.BackgroundJob` -- one retrain at a time, polled by the page;
* :func:`~audioapp.server.create_app` -- the Starlette application (JSON API, PNG, WAV,
  the pages in ``static/``);
* :mod:`audioapp.cli` -- ``python -m audioapp --model RUN/model.keras ...``;
  :mod:`audioapp.screenshots` -- the pages' screenshots in ``docs/screenshots/``.

Launch and page guide: ``docs/webapp.md``.
"""
from audioapp.background_job import BackgroundJob
from audioapp.server import create_app
from audioapp.workspace import Workspace

__all__ = ["BackgroundJob", "Workspace", "create_app"]
