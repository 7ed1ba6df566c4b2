"""Network refinement of APNet (Section 5.2): remove redundant prototypes and latent channels.

* Prototype redundancy (Section 5.2.1): :func:`apnet.inspection.prototype_distance_matrix`
  (Eq. 11), :func:`redundancy_threshold` and :func:`redundant_prototypes` (Eq. 12), then
  :func:`remove_prototypes`.
* Channel redundancy (Section 5.2.2): :func:`channel_distance_matrix` (Eq. 13, on the
  prototypes) or :func:`latent_channel_distance_matrix` (the same sum over encoded training
  inputs), :func:`redundant_channels`, then :func:`remove_channels`.
* :func:`retrain` -- the 20 further epochs of both refinements, with the training run's
  settings (:mod:`apnet.training`).
* :func:`add_prototype` -- the manual editing of Section 5.2.3 the other way round: an
  encoded training instance becomes a new prototype with its row of ``W``.

The refined models are functional :class:`keras.Model` objects with the layer names of
:class:`apnet.APNet` (the number of latent channels of a channel-refined model differs from
that of the other convolutions, which :class:`apnet.APNet` cannot express). They save to
``.keras`` and load with ``import apnet; keras.models.load_model(path)``; the functions of
:mod:`apnet.inspection` and of this module accept them, so refinements chain
(prototypes, then channels, as in Table 4).

Example:

>>> import numpy as np
>>> from apnet import APNet
>>> from apnet.inspection import prototype_distance_matrix
>>> from apnet.refinement import redundant_prototypes, remove_prototypes
>>> model = APNet(input_shape=(64, 64), n_classes=10, n_prototypes=20, n_filters=8)
>>> removed = redundant_prototypes(prototype_distance_matrix(model))  # Eq. 11-12
>>> refined = remove_prototypes(model, removed)
>>> refined.get_layer("prototypes").n_prototypes == 20 - len(removed)
True
"""
import keras
import numpy as np

from apnet.inspection import _batches, _check_model, encoder_model, prototype_weights

#: The two readings of the sum over prototype pairs in Eq. 13 (see :func:`channel_distance_matrix`).
PAIRINGS = ("all", "same")


# ----------------------------------------------------------------------------- model surgery
def _indices(values, size, what, owner):
    """Sorted unique indices in ``[0, size)``, at least one left; ValueError naming the bad value."""
    values = np.asarray(values).reshape(-1)
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{what} indices must be integers; received {values.tolist()!r}")
    values = values.astype(int)
    bad = [int(v) for v in values if not 0 <= v < size]
    if bad:
        raise ValueError(f"{what} indices must be in [0, {size}) for {owner}; received {bad}")
    if len(np.unique(values)) != len(values):
        raise ValueError(f"{what} indices must be unique; received {values.tolist()}")
    if len(values) >= size:
        raise ValueError(f"cannot remove all {size} {what}s of {owner}; received {len(values)} indices")
    return np.sort(values)


def _rebuild(model, layer_configs, weight_edits):
    """Clone ``model`` with some layer configs changed and copy every weight, some edited.

    ``layer_configs`` maps a layer name to a dict of config entries to override;
    ``weight_edits`` maps a layer name to a function from its old weight list to the new one.
    """
    def clone(layer):
        config = layer.get_config()
        config.update(layer_configs.get(layer.name, {}))
        return layer.__class__.from_config(config)

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        weights = weight_edits.get(layer.name, lambda w: w)(weights)
        target = new.get_layer(layer.name)
        expected = [tuple(w.shape) for w in target.weights]
        if [tuple(w.shape) for w in weights] != expected:
            raise RuntimeError(f"layer {layer.name!r}: weights of shapes {[w.shape for w in weights]} do not "
                               f"fit the rebuilt layer {expected}")
        target.set_weights(weights)
    return new


def remove_prototypes(model, indices):
    """A copy of ``model`` without the prototypes ``indices`` (Section 5.2.1).

    Every weight is copied; the removed prototypes' rows are dropped from the prototypes
    ``P`` ``(M, T', F', C)``, from the weighted-sum kernel ``H`` ``(M, F')`` (Eq. 7) and
    from the last layer's kernel ``W`` ``(M, K)`` (Eq. 8). The kept prototypes keep their
    order, so the new model's outputs equal the old model's with those prototypes (and
    their rows of ``H`` and ``W``) deleted. The last layer's ``kernel_initializer`` becomes
    ``"zeros"``: its weights come from ``model``, and the default
    :class:`apnet.initializers.PrototypeClassKernel` refuses fewer prototypes than classes
    (it would fail when the saved model is loaded). When ``H`` has a unit-norm constraint
    over the prototypes (``APNet(unit_norm_weighted_sum=True)``), its columns are
    renormalised over the kept prototypes at the first training step, not here.

    Parameters
    ----------
    model : APNet-like keras.Model
    indices : sequence of int
        Prototypes to remove (0-based, unique, not all of them).

    Returns
    -------
    keras.Model
        Uncompiled functional model with the layer names of :class:`apnet.APNet`.

    References
    ----------
    - Zinemanas et al., Electronics 2021, Section 5.2.1.
    """
    _check_model(model)
    n_prototypes = model.get_layer("prototypes").n_prototypes
    removed = _indices(indices, n_prototypes, "prototype", f"model {model.name!r}")
    drop_rows = lambda weights: [np.delete(w, removed, axis=0) for w in weights]  # noqa: E731
    return _rebuild(
        model,
        {"prototypes": {"n_prototypes": n_prototypes - len(removed)}, "dense": {"kernel_initializer": "zeros"}},
        {"prototypes": drop_rows, "weighted_sum": drop_rows, "dense": drop_rows},
    )


def remove_channels(model, channels):
    """A copy of ``model`` without the latent channels ``channels`` (Section 5.2.2).

    Every weight is copied, without those tied to the removed channels: the filters (and
    biases) of the last encoder convolution ``encoder_conv3``, the channel slices
    ``P[..., c]`` of the prototypes and the input kernels of the first decoder layer
    ``decoder_conv1``. The new encoder's latent is exactly the old latent without those
    channels, and so are the prototypes, hence the new classifier computes the distances
    on the kept channels only. The decoder loses the removed channels' contribution, which
    is why the paper retrains (:func:`retrain`). The reference implementation re-created
    the decoder with new weights; we keep its other weights.

    Parameters
    ----------
    model : APNet-like keras.Model
    channels : sequence of int
        Latent channels to remove (0-based, unique, not all of them).

    Returns
    -------
    keras.Model
        Uncompiled functional model with the layer names of :class:`apnet.APNet`.

    References
    ----------
    - Zinemanas et al., Electronics 2021, Section 5.2.2, Table 4.
    """
    _check_model(model)
    n_channels = model.get_layer("encoder_conv3").filters
    removed = _indices(channels, n_channels, "channel", f"model {model.name!r} (latent channels)")
    drop_last = lambda weights: [np.delete(w, removed, axis=-1) for w in weights]  # noqa: E731

    def decoder_kernel(weights):  # Conv2DTranspose kernel: (kh, kw, filters, input channels)
        kernel, *rest = weights
        return [np.delete(kernel, removed, axis=3), *rest]

    return _rebuild(
        model,
        {"encoder_conv3": {"filters": n_channels - len(removed)}},
        {"encoder_conv3": drop_last, "prototypes": drop_last, "decoder_conv1": decoder_kernel},
    )


def add_prototype(model, latent, class_index, dense_row=None, weighted_sum_row=None):
    """A copy of ``model`` with one more prototype, ``latent``, voting for ``class_index``.

    The manual editing of Section 5.2.3 (Figure 10) in the other direction: an encoded
    training instance ``Z_i = f(X_i)`` becomes prototype ``M`` (the last one). Every weight
    is copied and one row is appended to the prototypes ``P`` ``(M, T', F', C)``, to the
    weighted-sum kernel ``H`` ``(M, F')`` (Eq. 7) and to the last layer's kernel ``W``
    ``(M, K)`` (Eq. 8):

    * ``P_M = latent``;
    * ``H_M`` = ``weighted_sum_row``, default the mean of the rows of ``H`` (the learned
      frequency weighting of an average prototype);
    * ``W_M`` = ``dense_row``, default the mean of the rows of ``W`` whose largest weight is
      for ``class_index`` (the votes of the prototypes of that class); when no prototype
      votes for it, ``+m`` for ``class_index`` and ``-m`` elsewhere with ``m`` the mean
      ``|W|`` (the pattern of :func:`apnet.initializers.prototype_class_kernel`).

    The old prototypes keep their indices, distances and rows, so for every input the new
    model's logits are the old ones plus ``S_hat_M W_M``, where ``S_hat_M`` is the
    similarity (Eq. 7) to the new prototype: inputs far from it (``exp(-D)`` about 0) keep
    their predictions. When ``H`` has a unit-norm constraint over the prototypes
    (``APNet(unit_norm_weighted_sum=True)``), its columns are renormalised at the first
    training step, not here (as in :func:`remove_prototypes`).

    Parameters
    ----------
    model : APNet-like keras.Model
    latent : np.ndarray [shape=(T', F', C) or (1, T', F', C)]
        The new prototype, e.g. ``encoder_model(model).predict(x[i:i + 1])[0][0]``.
    class_index : int
        Class in ``[0, K)`` the new prototype votes for (the instance's class).
    dense_row : np.ndarray [shape=(K,)], optional
        Its row of ``W``.
    weighted_sum_row : np.ndarray [shape=(F',)], optional
        Its row of ``H``.

    Returns
    -------
    keras.Model
        Uncompiled functional model with the layer names of :class:`apnet.APNet` and
        ``M + 1`` prototypes.

    References
    ----------
    - Zinemanas et al., Electronics 2021, Section 5.2.3, Figure 10 (manual editing).
    """
    _check_model(model)
    prototypes = prototype_weights(model)
    kernel_w = keras.ops.convert_to_numpy(model.get_layer("dense").kernel)
    kernel_h = keras.ops.convert_to_numpy(model.get_layer("weighted_sum").kernel)
    n_prototypes, n_classes = kernel_w.shape
    latent = np.asarray(latent, dtype=prototypes.dtype)
    if latent.shape == (1,) + prototypes.shape[1:]:
        latent = latent[0]
    if latent.shape != prototypes.shape[1:]:
        raise ValueError(f"`latent` must have the prototypes' shape {prototypes.shape[1:]} (T', F', C) for model "
                         f"{model.name!r}; received shape {latent.shape}")
    if not np.all(np.isfinite(latent)):
        raise ValueError("`latent` must be finite (found NaN or Inf)")
    if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) or not (
            0 <= class_index < n_classes):
        raise ValueError(f"`class_index` must be an integer in [0, {n_classes}) for model {model.name!r}; "
                         f"received class_index={class_index!r}")
    class_index = int(class_index)

    def row(value, default, name, size):
        if value is None:
            return default
        value = np.asarray(value, dtype=np.float64)
        if value.shape != (size,) or not np.all(np.isfinite(value)):
            raise ValueError(f"`{name}` must be a finite vector of shape ({size},); received shape {value.shape}")
        return value

    voters = np.flatnonzero(kernel_w.argmax(axis=1) == class_index)
    if len(voters):
        default_w = kernel_w[voters].mean(axis=0)
    else:
        magnitude = float(np.mean(np.abs(kernel_w))) or 1.0
        default_w = np.where(np.arange(n_classes) == class_index, magnitude, -magnitude)
    new_w = row(dense_row, default_w, "dense_row", n_classes)
    new_h = row(weighted_sum_row, kernel_h.mean(axis=0), "weighted_sum_row", kernel_h.shape[1])

    def append(new_row):
        def edit(weights):
            first, *rest = weights
            return [np.concatenate([first, np.asarray(new_row, first.dtype)[None]], axis=0), *rest]
        return edit

    return _rebuild(
        model,
        {"prototypes": {"n_prototypes": n_prototypes + 1}},
        {"prototypes": append(latent), "weighted_sum": append(new_h), "dense": append(new_w)},
    )


# ----------------------------------------------------------------------------- Section 5.2.1
def _off_diagonal(matrix, name):
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(f"`{name}` must be a square matrix of side >= 2; received shape {matrix.shape}")
    return matrix, ~np.eye(len(matrix), dtype=bool)


def redundancy_threshold(distances):
    """Threshold of Eq. 12: ``min{D_jl} + mean{D_jl} / 2`` over the pairs ``j != l``.

    The reference implementation takes the mean over the whole matrix, diagonal zeros
    included (``(M - 1) / M`` times ours); we follow the paper.
    """
    distances, off = _off_diagonal(distances, "distances")
    return float(distances[off].min() + distances[off].mean() / 2.0)


def _greedy_pairs(matrix, pairs, n_max=None):
    """Walk ``pairs`` (j < l) by increasing ``matrix[j, l]``; drop ``l`` while both are kept."""
    order = np.lexsort((pairs[:, 1], pairs[:, 0], matrix[pairs[:, 0], pairs[:, 1]]))
    removed = []
    for j, l in pairs[order]:
        if n_max is not None and len(removed) == n_max:
            break
        if j not in removed and l not in removed:
            removed.append(int(l))
    return np.sort(np.asarray(removed, dtype=int))


def redundant_prototypes(distances, threshold=None, classes=None):
    """Prototypes to remove by the rule of Eq. 12.

    Every pair ``(j, l)``, ``j < l``, with ``D_jl < threshold`` (default
    :func:`redundancy_threshold`) loses one prototype. Pairs are taken from the closest
    up; the later prototype ``l`` of a pair is removed, and a pair one of whose prototypes
    is already removed is skipped (its redundancy is gone), so a prototype close to several
    others removes them all while it stays.

    Parameters
    ----------
    distances : np.ndarray [shape=(M, M)]
        Eq. 11 (:func:`apnet.inspection.prototype_distance_matrix`).
    threshold : float, optional
        In the units of ``distances``; default Eq. 12.
    classes : np.ndarray [shape=(M,)], optional
        Class of each prototype (e.g. ``decode_prototypes(...)["classes"]``). When given,
        only pairs of the same class count, as in the reference implementation (not in
        Eq. 12).

    Returns
    -------
    np.ndarray [shape=(n_removed,), int], sorted.

    References
    ----------
    - Zinemanas et al., Electronics 2021, Section 5.2.1, Eqs. (11)-(12), Figure 9.
    """
    distances, _ = _off_diagonal(distances, "distances")
    if threshold is None:
        threshold = redundancy_threshold(distances)
    j, l = np.triu_indices(len(distances), k=1)
    keep = distances[j, l] < threshold
    if classes is not None:
        classes = np.asarray(classes)
        if classes.shape != (len(distances),):
            raise ValueError(f"`classes` must have shape ({len(distances)},); received {classes.shape}")
        keep &= classes[j] == classes[l]
    return _greedy_pairs(distances, np.stack([j[keep], l[keep]], axis=1))


# ----------------------------------------------------------------------------- Section 5.2.2
class _ChannelSums:
    """Sufficient statistics of Eq. 13 over a stream of latent tensors ``(n, T', F', C)``."""

    def __init__(self):
        self.count, self.squares, self.totals, self.gram = 0, None, None, None

    def add(self, a):
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 4:
            raise ValueError(f"latent tensors must have shape (n, T', F', C); received shape {a.shape}")
        flat = a.reshape(len(a), -1, a.shape[-1])                  # (n, T'F', C)
        squares = np.einsum("ipc,ipc->c", flat, flat)              # sum_{i,t,f} a^2 per channel
        totals = flat.sum(axis=0)                                   # sum_i a, (T'F', C)
        gram = np.einsum("ipk,ipq->kq", flat, flat)                # sum_{i,t,f} a[k] a[q]
        if self.squares is None:
            self.squares, self.totals, self.gram = squares, totals, gram
        else:
            if totals.shape != self.totals.shape:
                raise ValueError(f"latent tensors of shape {a.shape[1:]} after ones of another shape")
            self.squares, self.totals, self.gram = self.squares + squares, self.totals + totals, self.gram + gram
        self.count += len(a)

    def matrix(self, pairing):
        if self.count == 0:
            raise ValueError("no latent tensors were given")
        if pairing == "all":
            # sum_{i,j,t,f} (A_i[k] - A_j[q])^2 = N s_k + N s_q - 2 <sum_i A_i[k], sum_j A_j[q]>
            cross = self.totals.T @ self.totals
            c = self.count * (self.squares[:, None] + self.squares[None, :]) - 2.0 * cross
        else:
            # sum_{i,t,f} (A_i[k] - A_i[q])^2 = s_k + s_q - 2 sum_i <A_i[k], A_i[q]>
            c = self.squares[:, None] + self.squares[None, :] - 2.0 * self.gram
            np.fill_diagonal(c, 0.0)
        c = np.maximum(c, 0.0)
        return (c + c.T) / 2.0


def _check_pairing(pairing):
    if pairing not in PAIRINGS:
        raise ValueError(f"`pairing` must be one of {PAIRINGS}; received pairing={pairing!r}")


def channel_distance_matrix(latents, pairing="all"):
    """Accumulated channel distance matrix ``C`` ``(C, C)`` of Eq. 13.

    ``C_kq = sum_{i,j,t,f} (A_i[t, f, k] - A_j[t, f, q])^2`` over the tensors ``A`` given:
    the prototypes ``P`` as in the paper (pass the model), or any stack of latent tensors.
    Computed in float64 from per-channel sums, without the ``(N, N, ...)`` differences.

    Parameters
    ----------
    latents : keras.Model or np.ndarray [shape=(N, T', F', C)]
        An APNet-like model (its prototypes are used) or latent tensors.
    pairing : {"all", "same"}
        ``"all"``: every pair ``(i, j)``, Eq. 13 as printed (its diagonal is not zero).
        ``"same"``: only ``i = j``, ``C_kq = sum_{i,t,f} (A_i[k] - A_i[q])^2``, what the
        reference implementation computes (``APNet.refine_channels`` in DCASE-models):
        how far channel ``k`` is from channel ``q`` on the same tensor.

    Returns
    -------
    np.ndarray [shape=(C, C)], float64, symmetric.

    References
    ----------
    - Zinemanas et al., Electronics 2021, Section 5.2.2, Eq. (13).
    """
    _check_pairing(pairing)
    sums = _ChannelSums()
    sums.add(prototype_weights(latents) if isinstance(latents, keras.Model) else latents)
    return sums.matrix(pairing)


def latent_channel_distance_matrix(model, x, batch_size=256, scaler=None, pairing="all"):
    """Eq. 13 accumulated over the encoded inputs ``Z_i = f(X_i)`` instead of the prototypes.

    Streams ``x`` through the encoder batch by batch (memory of one batch) and returns
    what :func:`channel_distance_matrix` returns for the stack of all latents.

    Parameters
    ----------
    model : APNet-like keras.Model
    x : array-like [shape=(N, T, F)]
        Spectrograms (scaled, or unscaled with ``scaler``), e.g. the training split.
    batch_size : int
    scaler : fitted scaler with ``transform``, optional
    pairing : {"all", "same"}

    Returns
    -------
    np.ndarray [shape=(C, C)], float64
    """
    _check_pairing(pairing)
    encoder = encoder_model(model)
    sums = _ChannelSums()
    for _, batch in _batches(x, batch_size, scaler):
        sums.add(keras.ops.convert_to_numpy(encoder.predict_on_batch(batch)[0]))
    return sums.matrix(pairing)


def redundant_channels(matrix, n_channels=8):
    """Channels to remove: one from each of the ``n_channels`` smallest off-diagonal pairs of Eq. 13.

    The pairs ``(k, q)``, ``k < q``, are walked by increasing ``C_kq``; the later channel
    ``q`` of a pair is removed (the reference implementation also removes the higher
    index), and a pair one of whose channels is already removed is skipped, so exactly
    ``n_channels`` distinct channels are removed (48 -> 40 for Medley-solos-DB).

    Parameters
    ----------
    matrix : np.ndarray [shape=(C, C)]
        :func:`channel_distance_matrix` or :func:`latent_channel_distance_matrix`.
    n_channels : int
        Number of channels to remove, ``1 <= n_channels < C`` (8 in the paper).

    Returns
    -------
    np.ndarray [shape=(n_channels,), int], sorted.

    References
    ----------
    - Zinemanas et al., Electronics 2021, Section 5.2.2.
    """
    matrix, _ = _off_diagonal(matrix, "matrix")
    if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) or not (
            1 <= n_channels < len(matrix)):
        raise ValueError(f"`n_channels` must be an integer in [1, {len(matrix)}) for {len(matrix)} channels; "
                         f"received n_channels={n_channels!r}")
    k, q = np.triu_indices(len(matrix), k=1)
    return _greedy_pairs(matrix, np.stack([k, q], axis=1), n_max=int(n_channels))


# ----------------------------------------------------------------------------- retraining
def retrain(model, config, data, scaler, run_dir, epochs=20, verbose=2):
    """Train a refined model further with the run's settings (Section 5.2: 20 more epochs).

    Compiles with :func:`apnet.training.compile_apnet` (``alpha``, ``beta``, ``gamma``,
    ``learning_rate`` of ``config``) and fits on the training split with
    :func:`apnet.training.fit_resumable`, which keeps the epoch with the best validation
    accuracy in ``run_dir/model.keras`` (Section 4.4) and resumes an interrupted run.

    Parameters
    ----------
    model : APNet-like keras.Model
    config : dict
        The training run's config (``seed``, ``alpha``, ``beta``, ``gamma``, ``batch_size``,
        ``learning_rate``).
    data : apnet.training.FoldData
    scaler : fitted scaler of the training run
    run_dir : str or Path
    epochs : int

    Returns
    -------
    history : pd.DataFrame
    epochs_run : int
    """
    from apnet.training import APNET_MONITOR, FeatureBatches, compile_apnet, fit_resumable

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer; received epochs={epochs!r}")
    seed, batch_size = int(config["seed"]), int(config["batch_size"])
    keras.utils.set_random_seed(seed)
    compile_apnet(model, config["alpha"], config["beta"], config["gamma"], float(config["learning_rate"]))
    train = FeatureBatches(data.features, data.rows["train"], data.targets["train"], batch_size, scaler=scaler,
                           shuffle=True, seed=seed)
    validation = FeatureBatches(data.features, data.rows["validation"], data.targets["validation"], batch_size,
                                scaler=scaler)
    return fit_resumable(model, train, validation, run_dir, epochs, APNET_MONITOR, verbose=verbose)
