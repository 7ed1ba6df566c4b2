"""The models fitted to train an interpreter: their common base :class:`InterpreterModel`, and
:class:`L2ITrainer`, L2I's interpreter plus f's output when f is trained too, with the loss of the
chosen mode (:data:`MODES`).
"""
import keras
from keras import ops

from audioruns.distribute import replica_share
from l2i.interpreter import L2IInterpreter
from l2i.losses import crossentropy, nmf_reconstruction_loss

__all__ = ["MODES", "InterpreterModel", "L2ITrainer"]

#: Training modes: post-hoc (Eq. 4-5, f frozen), by design (Sec. III-C), by design without L_f
#: ("L2I_BD-NoPred", Sec. IV-C: the classification loss on g(x) instead of f(x)).
MODES = ("posthoc", "bydesign", "bydesign_nopred")


class InterpreterModel(keras.Model):
    """Base of the models fitted to train an interpreter (L2I and its baselines): one loss made of named terms.

    A subclass (a functional model: it calls ``super().__init__(inputs=..., outputs=...)``)
    names its loss terms in :attr:`LOSS_TERMS` and defines :meth:`loss_terms`; this base

    * tracks each term as a ``keras.metrics.Mean`` named ``<term>_loss`` (so ``fit`` logs
      ``<term>_loss`` and ``val_<term>_loss``, in the order of :attr:`LOSS_TERMS`);
    * computes the training loss (:meth:`compute_loss`): the total of :meth:`loss_terms`
      plus the layers' own losses (``self.losses``, e.g. weight regularisers);
    * serialises the model as ``name``, ``trainable`` and the constructor arguments given by
      :meth:`constructor_config`, a ``classifier`` among them as a nested Keras object.

    It is the role of SpeechBrain's ``InterpreterBrain``: the subclass says what the loss is,
    the base does the bookkeeping. The base itself is not registered for serialisation;
    each subclass is, under its own name.
    """

    #: Names of the loss terms: the keys of the dict :meth:`loss_terms` returns.
    LOSS_TERMS = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_trackers = {term: keras.metrics.Mean(name=f"{term}_loss") for term in self.LOSS_TERMS}

    def loss_terms(self, y, y_pred, *, x=None):
        """The loss terms (scalar tensors, batch means) and their weighted total.

        Parameters
        ----------
        y : tensor or dict of tensors
            The targets given to ``fit``.
        y_pred : dict of tensors
            The model's outputs.
        x : tensor, optional
            The model's input (for terms that compare with it).

        Returns
        -------
        terms : dict {str: scalar tensor}
            One entry per name of :attr:`LOSS_TERMS`.
        total : scalar tensor
        """
        raise NotImplementedError(f"{type(self).__name__} must define loss_terms(y, y_pred, *, x=None)")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        terms, total = self.loss_terms(y, y_pred, x=x)
        for term, tracker in self.loss_trackers.items():
            tracker.update_state(terms[term])
        if self.losses:
            total = total + ops.sum(self.losses)
        return replica_share(total)  # under MirroredStrategy: this replica's share, as Keras' own losses

    def constructor_config(self):
        """The constructor arguments of this model, as a dict of plain values (a ``classifier`` as the model)."""
        raise NotImplementedError(f"{type(self).__name__} must define constructor_config()")

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, **self.constructor_config()}
        if "classifier" in config:
            config["classifier"] = keras.saving.serialize_keras_object(config["classifier"])
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "classifier" in config:
            config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="l2i")
class L2ITrainer(InterpreterModel):
    """The model fitted to train L2I: interpreter (+ f's output) with the loss of ``mode``.

    Builds :class:`l2i.interpreter.L2IInterpreter` on ``classifier`` and returns
    ``{"interpreter": Theta(H), "reconstruction": W H, "activations": H}`` plus
    ``"classifier": f(x)`` when f is trained (by-design modes). Targets are a dict
    ``{"labels": y, "spectrogram": X (batch, F, T), "teacher": f(x)}``
    (:class:`L2IBatches`). The loss (:meth:`compute_loss`) is

    * ``"posthoc"`` (Eq. 4-5): ``L_FID(teacher, Theta(H)) + alpha L_NMF + beta |H|_1``,
      with f frozen (all its layers non-trainable, batch norms in inference mode) and
      ``teacher`` its pre-computed output;
    * ``"bydesign"`` (Sec. III-C): ``L_f(y, f(x)) + gamma L_FID(f(x), Theta(H)) +
      alpha L_NMF + beta |H|_1``, everything trained jointly; the fidelity target
      ``f(x)`` is held constant in the gradient (the interpreter mimics f, not the
      other way round; f's hidden layers still receive L_FID through H);
    * ``"bydesign_nopred"`` (L2I_BD-NoPred, Sec. IV-C): the classification loss on
      ``g(x) = Theta(H)`` instead of ``f(x)``: ``L(y, Theta(H)) + alpha L_NMF + beta |H|_1``
      (no fidelity term: f's own output is never trained in this variant).

    ``L_NMF`` is the mean squared error per bin and ``|H|_1`` the mean absolute
    activation (see the module docstring). The terms are logged as ``fidelity_loss``,
    ``classification_loss``, ``nmf_loss``, ``sparsity_loss`` (:class:`InterpreterModel`).

    Args:
        classifier: :class:`l2i.classifier.KumarCNN` (its layers are shared; in
            ``"posthoc"`` mode they are frozen by this constructor).
        dictionary: array ``(F, K)``, the fixed NMF dictionary ``W``.
        mode: one of :data:`MODES`.
        alpha: weight of ``L_NMF`` (Eq. 4; Tables II-III).
        beta: weight of ``||H||_1`` (Eq. 4; Tables II-III).
        gamma: weight of ``L_FID`` in the by-design loss (Sec. III-C; Table III).
        theta: ``"att"`` or ``"max"``.
        interpreter_kwargs: dict of further :class:`L2IInterpreter` arguments.
        **kwargs: ``name``, ``trainable``.

    Example:

    >>> import numpy as np
    >>> from l2i.classifier import KumarCNN
    >>> f = KumarCNN(n_classes=2, n_frames=128, filters=(2, 2, 2, 4, 4, 4), head_filters=4)
    >>> trainer = L2ITrainer(f, np.ones((513, 3), "float32"), mode="posthoc",
    ...                      interpreter_kwargs={"psi_channels": 4, "attention_units": 4})
    >>> sorted(trainer.output)  # a dict of outputs; the losses read them by these keys
    ['activations', 'interpreter', 'reconstruction']

    References:
        Parekh et al., IEEE/ACM TASLP 2024: Eq. 1-5 (post-hoc), Sec. III-C (by design),
        Sec. IV-B5 (Adam, 2e-4), Sec. IV-C (L2I_BD-NoPred).
    """

    LOSS_TERMS = ("fidelity", "classification", "nmf", "sparsity")

    def __init__(self, classifier, dictionary, mode="posthoc", alpha=10.0, beta=0.8, gamma=1.0, theta="att",
                 interpreter_kwargs=None, **kwargs):
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}; received mode={mode!r}")
        for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
            if not float(value) >= 0:
                raise ValueError(f"`{name}` must be >= 0; received {name}={value!r}")
        interpreter_kwargs = dict(interpreter_kwargs or {})
        if mode == "posthoc":
            classifier.trainable = False
        interpreter = L2IInterpreter(classifier, dictionary, theta=theta, **interpreter_kwargs)
        prediction, reconstruction, activations = interpreter.outputs
        outputs = {"interpreter": prediction, "reconstruction": reconstruction, "activations": activations}
        if mode != "posthoc":
            outputs["classifier"] = classifier.outputs[0]
        super().__init__(inputs=interpreter.inputs[0], outputs=outputs, **kwargs)

        self.classifier = classifier
        self.interpreter = interpreter
        self.mode = mode
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.theta = theta
        self.interpreter_kwargs = interpreter_kwargs
        self.multilabel = interpreter.multilabel

    def loss_terms(self, y, y_pred, *, x=None):
        """The terms ``{"fidelity", "classification", "nmf", "sparsity"}`` (0 when unused) and the total."""
        g = y_pred["interpreter"]
        nmf = nmf_reconstruction_loss(y["spectrogram"], y_pred["reconstruction"], reduction="mean")
        sparsity = ops.mean(ops.abs(y_pred["activations"]))
        zero = ops.zeros((), dtype=nmf.dtype)
        if self.mode == "posthoc":
            fidelity = crossentropy(ops.cast(y["teacher"], g.dtype), g, self.multilabel)
            classification = zero
            total = fidelity
        elif self.mode == "bydesign":
            f_out = y_pred["classifier"]
            classification = crossentropy(y["labels"], f_out, self.multilabel)
            fidelity = crossentropy(ops.stop_gradient(f_out), g, self.multilabel)
            total = classification + self.gamma * fidelity
        else:
            classification = crossentropy(y["labels"], g, self.multilabel)
            fidelity = zero
            total = classification
        total = total + self.alpha * nmf + self.beta * sparsity
        return {"fidelity": fidelity, "classification": classification, "nmf": nmf, "sparsity": sparsity}, total

    def constructor_config(self):
        return {
            "classifier": self.classifier,
            "dictionary": self.interpreter.dictionary_value.tolist(),
            "mode": self.mode,
            "alpha": self.alpha,
            "beta": self.beta,
            "gamma": self.gamma,
            "theta": self.theta,
            "interpreter_kwargs": self.interpreter_kwargs,
        }
