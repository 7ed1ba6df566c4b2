"""The prototype edits of the explore page (APNet, Section 5.2.3), as new models.

* :func:`deletion` -- the model without some prototypes and their rows of ``H`` and ``W``
  (:func:`apnet.refinement.remove_prototypes`);
* :func:`conversion` -- the model with a training instance's latent vector as a new
  prototype of its class (:func:`apnet.refinement.add_prototype`).

Both return an :class:`Edit`, which :class:`~audioapp.workspace.Workspace` pushes on its
:class:`~audioapp.versions.VersionStack`; neither changes the model it starts from.
"""
from dataclasses import dataclass

import keras
import numpy as np

from apnet.inspection import encoder_model
from apnet.refinement import add_prototype, remove_prototypes
from audiodata.errors import ParameterError

from audioapp.versions import n_prototypes


@dataclass
class Edit:
    """A new model made from a version.

    Attributes
    ----------
    model : keras.Model
    description : str
        What the edit did (shown in the edit history).
    origins : list of str
        Where each prototype of ``model`` comes from.
    kept : list of int or None
        The indices of the parent's prototypes kept, in order (a deletion).
    """

    model: keras.Model
    description: str
    origins: list
    kept: list = None


def deletion(version, indices):
    """The :class:`Edit` removing prototypes ``indices`` (an int or a non-empty list of ints) from ``version``."""
    if isinstance(indices, (int, np.integer)) and not isinstance(indices, bool):
        indices = [indices]
    if not isinstance(indices, (list, tuple)) or not indices:
        raise ParameterError(f"give a non-empty list of prototype indices; received {indices!r}")
    bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, (int, np.integer))]
    if bad:
        raise ParameterError(f"prototype indices must be integers; received {bad}")
    model = remove_prototypes(version.model, indices)
    gone = set(int(i) for i in indices)
    kept = [j for j in range(n_prototypes(version.model)) if j not in gone]
    return Edit(model, f"deleted prototype(s) {sorted(gone)}", [version.origins[j] for j in kept], kept)


def conversion(version, clip_id, x, label, class_name):
    """The :class:`Edit` adding training instance ``clip_id`` to ``version`` as a prototype of class ``label``.

    Its latent vector ``Z_i = f(X_i)`` under the version's encoder (``x``: its scaled features
    ``(1, T, F)``) becomes the last prototype; its row of ``W`` votes for ``label``.
    """
    latent = keras.ops.convert_to_numpy(encoder_model(version.model).predict_on_batch(x)[0])[0]
    model = add_prototype(version.model, latent, label)
    description = (f"converted instance {clip_id} (class {class_name}) into prototype "
                   f"{n_prototypes(version.model)}")
    return Edit(model, description, version.origins + [f"instance {clip_id}"])
