"""Task-driven NMF (TDL-NMF): the NMF dictionary and the linear classifier trained jointly on the class loss."""
import keras
import numpy as np

from audiodata.errors import ParameterError
from l2i.baselines._common import (as_clips, as_targets, check_non_negative, check_positive_int, classification_score,
                                   fit_linear, masked_binary_crossentropy)
from l2i.baselines.unrolled_nmf_encoder import UnrolledNMFEncoder
from l2i.nmf import learn_dictionary

__all__ = ["TDLNMFClassifier"]


class TDLNMFClassifier:
    """The "TD-NMF" by-design baseline of L2I (Table VIII): task-driven NMF dictionary learning.

    1. ``W_0`` is learned by unsupervised sparse NMF (Eq. 6,
       :func:`l2i.nmf.learn_dictionary`) on the training spectrograms, exactly as in
       :class:`l2i.baselines.NMFClassifier` (or given as ``dictionary``).
    2. A Keras model (``model_``) maps a clip ``X`` ``(T, F)`` to
       ``H = UnrolledNMFEncoder(W)(X)`` (``n_iter`` multiplicative sparse-NMF updates,
       differentiable in ``W``), ``z = mean_t H``, a fixed standardisation of ``z``
       (mean and deviation of ``z`` under ``W_0`` on the training set) and a linear
       layer + softmax (sigmoid for multi-label). The linear layer starts from the
       logistic regression fitted on the standardised ``z`` under ``W_0``, so training
       starts at the unsupervised-NMF solution of the same encoder.
    3. ``W`` and the linear layer are trained jointly with Adam on the cross-entropy
       (masked binary cross-entropy for multi-label targets with NaN); after every step
       ``W`` is projected onto non-negative unit-norm columns
       (:class:`l2i.baselines.NonNegUnitNorm`).

    **Approximation.** Mairal et al. differentiate the exact sparse code ``H*(W)``
    implicitly through its optimality conditions; we back-propagate through a fixed
    number of unrolled multiplicative updates from ``H_0 = 1`` instead (the encoder
    used for prediction is the same truncated solver, so training and test agree).
    Clips must share their length ``T`` (they are batched).

    Args:
        n_components: int, ``K`` (the paper sweeps 64-512).
        l1: float >= 0, sparsity weight of Eq. 6 (dictionary learning and encoder).
        n_iter: int, unrolled updates of the encoder.
        n_iter_dictionary: int, iterations of the initial :func:`l2i.nmf.learn_dictionary`.
        epochs, batch_size, learning_rate: the joint training (Adam).
        C: float > 0, inverse regularisation of the initial logistic regression.
        multilabel: bool, sigmoid outputs and masked binary cross-entropy.
        dictionary: optional ``(F, K)`` initial dictionary (skips step 1).
        seed: int, seeds NMF, the regression and Keras.
        verbose: int, Keras ``fit`` verbosity.

    Attributes (after ``fit``):
        model_: the trained ``keras.Model`` (input ``(batch, T, F)``, output probabilities);
            layers ``"nmf_activations"`` (weight ``dictionary``), ``"mean_activations"``,
            ``"activation_normalization"``, ``"linear"``, ``"prediction"``.
        initial_dictionary_: ``W_0``; history_: the Keras training history (dict).

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((12, 20, 30)).astype("float32"); y = np.arange(12) % 3
    >>> model = TDLNMFClassifier(n_components=4, n_iter=5, n_iter_dictionary=20, epochs=2).fit(X, y)
    >>> model.predict_proba(X).shape
    (12, 3)

    References:
        Mairal, Bach, Ponce, "Task-driven dictionary learning", IEEE TPAMI 2012;
        Bisot et al., "Feature learning with matrix factorization applied to acoustic
        scene classification", IEEE/ACM TASLP 2017 (ref. [47] of L2I);
        Parekh et al., IEEE/ACM TASLP 2024, Sec. IV-C and Table VIII.
    """

    def __init__(self, n_components=64, l1=0.1, n_iter=30, n_iter_dictionary=200, epochs=20, batch_size=32,
                 learning_rate=1e-3, C=1.0, multilabel=False, dictionary=None, seed=0, verbose=0):
        self.n_components = check_positive_int("n_components", n_components)
        self.l1 = check_non_negative("l1", l1)
        self.n_iter = check_positive_int("n_iter", n_iter)
        self.n_iter_dictionary = check_positive_int("n_iter_dictionary", n_iter_dictionary)
        self.epochs = check_positive_int("epochs", epochs, minimum=0)
        self.batch_size = check_positive_int("batch_size", batch_size)
        if not float(learning_rate) > 0:
            raise ValueError(f"`learning_rate` must be > 0; received learning_rate={learning_rate!r}")
        self.learning_rate = float(learning_rate)
        if not float(C) > 0:
            raise ValueError(f"`C` must be > 0; received C={C!r}")
        self.C = float(C)
        self.multilabel = bool(multilabel)
        self.dictionary = None if dictionary is None else np.asarray(dictionary, dtype=np.float32)
        self.seed = int(seed)
        self.verbose = int(verbose)

    def get_params(self):
        """The constructor arguments (for :func:`l2i.baselines.sweep_dictionary_sizes`)."""
        return {"n_components": self.n_components, "l1": self.l1, "n_iter": self.n_iter,
                "n_iter_dictionary": self.n_iter_dictionary, "epochs": self.epochs, "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "C": self.C, "multilabel": self.multilabel,
                "dictionary": self.dictionary, "seed": self.seed, "verbose": self.verbose}

    def fit(self, X, y, n_classes=None):
        """Learn ``W_0``, initialise the linear layer, then train both; returns ``self``."""
        X = self._stack(X)
        Y = as_targets(y, X.shape[0], n_classes, self.multilabel)
        keras.utils.set_random_seed(self.seed)
        if self.dictionary is None:
            W0, _, _ = learn_dictionary([c.T for c in X], self.n_components, l1=self.l1, n_iter=self.n_iter_dictionary,
                                        seed=self.seed)
        else:
            W0 = self.dictionary
            if W0.shape[0] != X.shape[2]:
                raise ParameterError(f"dictionary has {W0.shape[0]} rows, the clips {X.shape[2]} bins")
        self.initial_dictionary_ = np.asarray(W0, dtype=np.float32)
        encoder = UnrolledNMFEncoder(self.initial_dictionary_.shape[1], n_iter=self.n_iter, l1=self.l1,
                                     name="nmf_activations")
        encoder.build((None, None, X.shape[2]))
        encoder.set_weights([self.initial_dictionary_])
        Z0 = np.concatenate([keras.ops.convert_to_numpy(encoder(X[i:i + self.batch_size])).mean(axis=2)
                             for i in range(0, X.shape[0], self.batch_size)])
        mean, std = Z0.mean(axis=0), np.maximum(Z0.std(axis=0), 1e-8)
        kernel, bias = fit_linear((Z0 - mean) / std, Y, self.multilabel, self.C, seed=self.seed)
        self.n_classes_ = Y.shape[1]
        self.model_ = _build_model(encoder, X.shape[1], X.shape[2], self.n_classes_, mean, std ** 2, self.multilabel)
        self.model_.get_layer("linear").set_weights([kernel, bias])
        self.model_.compile(optimizer=keras.optimizers.Adam(self.learning_rate),
                            loss=masked_binary_crossentropy if self.multilabel else "categorical_crossentropy")
        history = self.model_.fit(X, Y, batch_size=self.batch_size, epochs=self.epochs, shuffle=True,
                                  verbose=self.verbose)
        self.history_ = history.history
        return self

    @property
    def dictionary_(self):
        """The trained dictionary ``W`` [shape=(F, K)], non-negative with unit-norm columns."""
        self._check_fitted()
        return keras.ops.convert_to_numpy(self.model_.get_layer("nmf_activations").dictionary)

    def transform(self, X):
        """Time-averaged activations ``z = mean_t H`` [shape=(N, K)] of the trained encoder."""
        self._check_fitted()
        sub = keras.Model(self.model_.inputs[0], self.model_.get_layer("mean_activations").output)
        return np.asarray(sub.predict(self._stack(X), batch_size=self.batch_size, verbose=0))

    def predict_proba(self, X):
        """Class probabilities [shape=(N, C)]."""
        self._check_fitted()
        return np.asarray(self.model_.predict(self._stack(X), batch_size=self.batch_size, verbose=0))

    def predict(self, X):
        """Class indices (multi-class) or 0/1 decisions at 0.5 (multi-label)."""
        probabilities = self.predict_proba(X)
        return (probabilities >= 0.5).astype(int) if self.multilabel else np.argmax(probabilities, axis=1)

    def score(self, X, y):
        """Accuracy (multi-class) or macro-AUPRC over annotated labels (multi-label)."""
        probabilities = self.predict_proba(X)
        Y = as_targets(y, probabilities.shape[0], self.n_classes_, self.multilabel)
        return classification_score(Y, probabilities, self.multilabel)

    @staticmethod
    def _stack(X):
        clips = as_clips(X)
        lengths = {c.shape[0] for c in clips}
        if len(lengths) != 1:
            raise ParameterError(f"TDL-NMF batches clips: they must share their length T; "
                                 f"got lengths {sorted(lengths)}")
        return np.stack(clips)

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise ParameterError("this TDLNMFClassifier is not fitted yet; call fit(X, y) first")


def _build_model(encoder, n_frames, n_frequencies, n_classes, mean, variance, multilabel):
    """``X -> H -> mean_t H -> standardise -> linear -> softmax/sigmoid`` (all layers named)."""
    inputs = keras.Input(shape=(n_frames, n_frequencies), name="spectrogram")
    H = encoder(inputs)
    z = keras.layers.GlobalAveragePooling1D(data_format="channels_first", name="mean_activations")(H)
    z = keras.layers.Normalization(axis=-1, mean=mean.tolist(), variance=variance.tolist(),
                                   name="activation_normalization")(z)
    logits = keras.layers.Dense(n_classes, name="linear")(z)
    outputs = keras.layers.Activation("sigmoid" if multilabel else "softmax", name="prediction")(logits)
    return keras.Model(inputs, outputs, name="tdl_nmf")
