"""The stack of model versions behind the undo button of the web application.

Every edit of a :class:`~audioapp.workspace.Workspace` (delete prototypes, convert an
instance into a prototype, retrain) pushes a new :class:`Version`; :meth:`VersionStack.undo`
pops the top one. Version 0 is the loaded model and is never changed or popped. Versions that
only edit prototypes share the encoder of the version they come from (``encoder_id``), so
what depends on the encoder alone (the instances' latent vectors, their PCA) is computed once
per encoder.

The stack itself takes no lock: :class:`~audioapp.workspace.Workspace` calls it under its own.
"""
from dataclasses import dataclass, field

import keras
import numpy as np

from audiodata.errors import ParameterError

from audioapp.errors import Conflict, NotFound


@dataclass
class Version:
    """One state of the edited model.

    Attributes
    ----------
    id : int
        Increasing number (0 = the loaded model).
    model : keras.Model
    description : str
        What produced it ("deleted prototypes [2, 5]", ...).
    encoder_id : int
        Id of the version whose encoder weights it shares: prototype edits keep the
        encoder, so the instances' latent vectors are computed once per encoder.
    origins : list of str
        Where each prototype comes from ("trained", "instance 3_theo_12").
    cache : dict
        Computed results of this version (decoded prototypes, maps, evaluation).
    """

    id: int
    model: keras.Model
    description: str
    encoder_id: int
    origins: list
    cache: dict = field(default_factory=dict)


def n_prototypes(model):
    """Number of prototypes ``M`` of an APNet (its ``prototypes`` layer)."""
    return int(model.get_layer("prototypes").n_prototypes)


class VersionStack:
    """The versions of one editing session, oldest first; the last one is the current version.

    Parameters
    ----------
    model : keras.Model
        The loaded model (version 0).
    description : str
        What version 0 is ("loaded model.keras").
    """

    def __init__(self, model, description):
        self._versions = [Version(0, model, description, 0, ["trained"] * n_prototypes(model))]
        self._next_id = 1

    def __len__(self):
        return len(self._versions)

    def __iter__(self):
        return iter(list(self._versions))

    @property
    def current(self):
        """The version being edited (the top of the stack)."""
        return self._versions[-1]

    @property
    def loaded(self):
        """Version 0, the model as loaded."""
        return self._versions[0]

    def get(self, version_id=None):
        """A version on the stack by id (None: the current one).

        Raises
        ------
        ParameterError
            ``version_id`` is not an integer.
        NotFound
            No such version on the stack (never made, or undone).
        """
        if version_id is None:
            return self.current
        if isinstance(version_id, bool) or not isinstance(version_id, (int, np.integer)):
            raise ParameterError(f"version must be an integer (or null for the current one); received {version_id!r}")
        for v in self._versions:
            if v.id == int(version_id):
                return v
        raise NotFound(f"model version {version_id} is not on the edit stack (undone?); "
                       f"current version is {self.current.id}")

    def push(self, model, description, origins, new_encoder=False):
        """Put ``model`` on the stack and return its :class:`Version`.

        ``new_encoder``: its encoder differs from the current version's (a retrain); otherwise it
        shares the current version's ``encoder_id``.
        """
        version_id = self._next_id
        encoder_id = version_id if new_encoder else self.current.encoder_id
        v = Version(version_id, model, description, encoder_id, list(origins))
        self._next_id += 1
        self._versions.append(v)
        return v

    def undo(self):
        """Pop the current version and return it (:class:`Conflict` when only the loaded model is left)."""
        if len(self._versions) == 1:
            raise Conflict("nothing to undo: the model is the one loaded")
        return self._versions.pop()

    def encoder_ids(self):
        """The ``encoder_id`` of every version on the stack (what cached latents are still needed for)."""
        return {v.encoder_id for v in self._versions}
