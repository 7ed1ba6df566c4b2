"""Initialisation of APNet's last layer from the assignment of prototypes to classes."""
import keras
import numpy as np

from audiodata.cli import positive_int, require


def prototype_classes(n_prototypes, n_classes):
    """Class assigned to each prototype: consecutive blocks of ``M / K`` prototypes per class.

    Prototype ``j`` belongs to class ``floor(j * K / M)``, so with ``M = 50, K = 10``
    prototypes 0-4 belong to class 0, 5-9 to class 1, and so on (the blocks of the authors'
    ``init_last_layer``). When ``K`` does not divide ``M`` the blocks differ by at most one
    prototype (the authors' code gives every class ``floor(M / K)`` and leaves the remaining
    prototypes voting against all classes; their three datasets have ``K`` dividing ``M``).

    Parameters
    ----------
    n_prototypes : int
        ``M``, at least ``n_classes``.
    n_classes : int
        ``K``.

    Returns
    -------
    classes : np.ndarray [shape=(M,), dtype=int]
    """
    _check_sizes(n_prototypes, n_classes)
    return (np.arange(n_prototypes) * n_classes) // n_prototypes


def prototype_class_kernel(n_prototypes, n_classes, noise=0.1, seed=None):
    """Initial kernel ``W`` (Eq. 8) that links each prototype to one class.

    Why: the similarity ``exp(-D)`` of Eq. 6 starts tiny (the encoded inputs are far from
    the random prototypes), so the logits ``S_hat W`` start close to 0, the loss at
    ``ln(K)`` and the gradient reaching ``W`` is small. Starting from a kernel in which
    every prototype already votes for one class (the structure APNet is expected to learn,
    Section 3.5: ``W = I_K`` when ``M = K``) lets the prototypes specialise per class from
    the first steps instead of waiting for the fully-connected layer to find that
    structure.

    Provenance: the paper does not mention it. The authors' code has it as an option,
    ``APNet.train(init_last_layer=True)`` in ``apnet/model.py`` of their repository
    (overwriting a Glorot-uniform kernel before training), and their configs turn it on
    for UrbanSound8K only (``init_last_layer: 1``); Medley-solos-DB and Speech Commands
    were trained from Glorot uniform. :func:`apnet.training.build_model` follows the
    config key ``init_last_layer`` (``apnet/configs``); :class:`apnet.APNet`
    itself uses this initialisation unless given another ``dense_kernel_initializer``.

    With the classes of :func:`prototype_classes` and ``k_c`` the number of prototypes of
    class ``c``::

        W[j, c] = +1 / k_c   if prototype j belongs to class c
        W[j, c] = -1 / k_c   otherwise
        W      += noise * (U(0, 1) - 0.5)

    Parameters
    ----------
    n_prototypes : int
        ``M``, at least ``n_classes``.
    n_classes : int
        ``K``.
    noise : float
        Width of the uniform noise added to every weight (0 for none); the authors' code
        uses 0.1, i.e. ``U(-0.05, 0.05)``.
    seed : int or None
        Seed of the noise (None: drawn from NumPy's global generator, which
        ``keras.utils.set_random_seed`` seeds).

    Returns
    -------
    W : np.ndarray [shape=(M, K), dtype=float32]

    Examples
    --------
    >>> from apnet.initializers import prototype_class_kernel
    >>> prototype_class_kernel(4, 2, noise=0.0)
    array([[ 0.5, -0.5],
           [ 0.5, -0.5],
           [-0.5,  0.5],
           [-0.5,  0.5]], dtype=float32)

    References
    ----------
    - Zinemanas et al., "An Interpretable Deep Learning Model for Automatic Sound
      Classification", Electronics 2021, Section 3.5, Eq. (8).
    """
    classes = prototype_classes(n_prototypes, n_classes)
    if noise < 0:
        raise ValueError(f"`noise` must be >= 0; received noise={noise!r}")
    per_class = np.bincount(classes, minlength=n_classes).astype(np.float64)  # k_c
    own = classes[:, None] == np.arange(n_classes)[None, :]
    kernel = np.where(own, 1.0, -1.0) / per_class[None, :]
    if noise:
        rng = np.random.default_rng(np.random.randint(2**31) if seed is None else seed)
        kernel = kernel + noise * (rng.random(kernel.shape) - 0.5)
    return kernel.astype(np.float32)


def reference_prototypes_initializer(seed=None):
    """Initializer of APNet's prototypes: ``U(-0.05, 0.05)``, small values near the origin.

    Why: the similarity of Eq. 6 is ``exp(-D)`` with ``D`` summed over the ``T' * C``
    latent values of each frequency bin. At initialisation the encoded inputs are small
    (``|Z|`` about 0.04 on min-max scaled FSDD mel-spectrograms), so prototypes drawn
    from ``U(0, 1)`` sit at ``D`` of about ``T' C / 3`` (about 160 for ``T' = 16,
    C = 32``): ``exp(-D)`` underflows to exactly 0 in float32 and neither the weighted
    sum nor the last layer gets any gradient. Prototypes near the origin start at ``D``
    of a few units (similarities up to about 0.5). ``U(-0.05, 0.05)`` is what the
    reference implementation used (``initializer='uniform'`` in Keras 2).

    Parameters
    ----------
    seed : int or None

    Returns
    -------
    keras.initializers.RandomUniform

    References
    ----------
    - Zinemanas et al., "An Interpretable Deep Learning Model for Automatic Sound
      Classification", Electronics 2021, Sections 3.3-3.4, Eqs. (4)-(6).
    """
    return keras.initializers.RandomUniform(minval=-0.05, maxval=0.05, seed=seed)


def _check_sizes(n_prototypes, n_classes):
    n_prototypes = require(positive_int, n_prototypes, "n_prototypes", strict=True)
    n_classes = require(positive_int, n_classes, "n_classes", strict=True)
    if n_prototypes < n_classes:
        raise ValueError(
            f"prototype_class_kernel needs at least one prototype per class; received "
            f"n_prototypes={n_prototypes} < n_classes={n_classes} (pass another "
            "`dense_kernel_initializer`, e.g. 'glorot_uniform')"
        )


@keras.saving.register_keras_serializable(package="apnet")
class PrototypeClassKernel(keras.initializers.Initializer):
    """Keras initializer for the ``(M, K)`` kernel of APNet's last layer.

    Returns :func:`prototype_class_kernel` for the requested shape, so the Dense layer of
    :class:`apnet.APNet` starts with each prototype voting for its class (Section 3.5). The
    authors used this start for UrbanSound8K only (``init_last_layer`` in
    :func:`apnet.training.build_model` and the configs).

    Args:
        noise: float, width of the uniform noise added to every weight.
        seed: int or None, seed of the noise.

    Example:

    >>> import keras
    >>> from apnet.initializers import PrototypeClassKernel
    >>> layer = keras.layers.Dense(2, use_bias=False, kernel_initializer=PrototypeClassKernel(noise=0.0))
    >>> _ = layer.build((None, 4))
    >>> keras.ops.convert_to_numpy(layer.kernel)[:, 0]
    array([ 0.5,  0.5, -0.5, -0.5], dtype=float32)
    """

    def __init__(self, noise=0.1, seed=None):
        if noise < 0:
            raise ValueError(f"`noise` must be >= 0; received noise={noise!r}")
        self.noise = float(noise)
        self.seed = seed

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError(f"PrototypeClassKernel builds (M, K) kernels; received shape={tuple(shape)}")
        kernel = prototype_class_kernel(int(shape[0]), int(shape[1]), noise=self.noise, seed=self.seed)
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self):
        return {"noise": self.noise, "seed": self.seed}
