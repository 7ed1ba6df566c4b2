"""Network refinement of APNet (Section 5.2): remove redundant prototypes and latent channels.

Two rule sets, chosen with ``rules`` (and, for Eq. 13, ``pairing``; for the decoder after a
channel removal, ``decoder``; :data:`RULE_DEFAULTS` pairs them):

* ``"authors"`` -- what the authors' code (``APNet.refine_prototypes`` and
  ``APNet.refine_channels`` in ``apnet/model.py`` of github.com/pzinemanas/APNet) did, hence
  what produced Table 4 (the default of ``experiments/apnet/refine.py``):

  - prototypes: threshold ``min_{j != l} D_jl + mean_{j, l} D_jl / 2`` (the mean taken over the
    whole matrix, diagonal zeros included); each prototype, in class-sorted order, is tested
    against its nearest neighbour only, which must have the same class (the classifier's
    prediction on the prototype itself, :func:`prototype_classes`); the prototype tested is
    removed and its neighbour is marked as kept;
  - channels: Eq. 13 with ``i = j`` only (``pairing="same"``), pairs ``(k > q)`` taken from
    the smallest ``C_kq`` up, each adding ``k`` to the removed channels unless ``k`` already
    is in it, then ``q``, until ``n_channels`` distinct channels are removed; the decoder is
    then re-created with fresh weights (``decoder="reinitialize"``) and learnt again during
    the 20 further epochs.

* ``"paper"`` -- Section 5.2 read literally: Eq. 12 over every pair ``j != l`` (mean without
  the diagonal, no class condition unless ``classes`` is given); Eq. 13 summed over every pair
  of prototypes ``(i, j)`` (``pairing="all"``); the decoder keeps its weights except the
  removed channels' input kernels (``decoder="keep"``).

The functions of this module default to the paper's rules (``rules="paper"``,
``pairing="all"``, ``decoder="keep"``); pass the authors' explicitly, or use the script.

Functions:

* Prototype redundancy (Section 5.2.1): :func:`apnet.inspection.prototype_distance_matrix`
  (Eq. 11), :func:`prototype_classes`, :func:`redundancy_threshold` and
  :func:`redundant_prototypes` (Eq. 12), then :func:`remove_prototypes`.
* Channel redundancy (Section 5.2.2): :func:`channel_distance_matrix` (Eq. 13, on the
  prototypes) or :func:`latent_channel_distance_matrix` (the same sum over encoded training
  inputs), :func:`redundant_channels`, then :func:`remove_channels`.
* :func:`retrain` -- the 20 further epochs of both refinements, with the training run's
  settings (:mod:`apnet.training`).
* :func:`add_prototype` -- the manual editing of Section 5.2.3 the other way round: an
  encoded training instance becomes a new prototype with its row of ``W``.

The deviations of both rule sets from the paper and from the authors' code are listed in
``docs/apnet_deviations.md`` (section "Refinement (Table 4)").

The refined models are functional :class:`keras.Model` objects with the layer names of
:class:`apnet.APNet` (the number of latent channels of a channel-refined model differs from
that of the other convolutions, which :class:`apnet.APNet` cannot express). They save to
``.keras`` and load with ``import apnet; keras.models.load_model(path)`` (:func:`retrain` saves
them with the run's scaler in front, :func:`audioruns.preprocessing.attach_scaler`); the functions of
:mod:`apnet.inspection` and of this module accept them, so refinements chain
(prototypes, then channels, as in Table 4).

Example:

>>> import numpy as np
>>> from apnet import APNet
>>> from apnet.inspection import prototype_distance_matrix
>>> from apnet.refinement import prototype_classes, redundant_prototypes, remove_prototypes
>>> model = APNet(input_shape=(64, 64), n_classes=10, n_prototypes=20, n_filters=8)
>>> distances = prototype_distance_matrix(model)                                     # Eq. 11
>>> removed = redundant_prototypes(distances, classes=prototype_classes(model), rules="authors")
>>> refined = remove_prototypes(model, removed)
>>> refined.get_layer("prototypes").n_prototypes == 20 - len(removed)
True
"""
import keras
import numpy as np

from apnet.inspection import _batches, _check_model, encoder_model, prototype_weights
from apnet.training import APNET_MONITOR, compile_for_run, fit_resumable, fold_batches
from audiodata.cli import positive_int, require
from audioruns.preprocessing import attach_scaler

#: The two rule sets: the authors' code (which produced Table 4) and Section 5.2 read literally.
RULES = ("authors", "paper")

#: The two readings of the sum over prototype pairs in Eq. 13 (see :func:`channel_distance_matrix`).
PAIRINGS = ("all", "same")

#: What :func:`remove_channels` does with the decoder: keep its weights, or re-create it.
DECODER_MODES = ("keep", "reinitialize")

#: The Eq. 13 pairing and the decoder handling that go with each rule set.
RULE_DEFAULTS = {
    "authors": {"pairing": "same", "decoder": "reinitialize"},
    "paper": {"pairing": "all", "decoder": "keep"},
}

#: The layers of the decoder ``g`` that have weights (re-created by ``decoder="reinitialize"``).
DECODER_LAYERS = ("decoder_conv1", "decoder_conv2", "decoder_conv3")


def _check_choice(value, choices, name):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}; received {name}={value!r}")


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


def _rebuild(model, layer_configs, weight_edits, fresh=()):
    """Clone ``model`` with some layer configs changed and copy every weight, some edited.

    ``layer_configs`` maps a layer name to a dict of config entries to override;
    ``weight_edits`` maps a layer name to a function from its old weight list to the new one;
    the layers named in ``fresh`` keep the weights the clone was built with (not copied).
    """
    def clone(layer):
        config = layer.get_config()
        config.update(layer_configs.get(layer.name, {}))
        return layer.__class__.from_config(config)

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights or layer.name in fresh:
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


def _reinitialize(layer, seed=None):
    """Draw new values for ``layer.kernel`` and ``layer.bias`` from the layer's own initializers.

    With an integer ``seed`` the seeded initializers (e.g. Glorot uniform) draw the same
    values on every call; seedless ones (zeros) are used as they are.
    """
    for attr in ("kernel", "bias"):
        variable = getattr(layer, attr, None)
        if variable is None:
            continue
        initializer = getattr(layer, f"{attr}_initializer")
        config = initializer.get_config()
        if seed is not None and "seed" in config:
            config["seed"] = int(seed)
            initializer = initializer.__class__.from_config(config)
        variable.assign(initializer(tuple(variable.shape), dtype=variable.dtype))


def remove_channels(model, channels, *, decoder="keep", seed=None):
    """A copy of ``model`` without the latent channels ``channels`` (Section 5.2.2).

    Every encoder and classifier weight is copied, without those tied to the removed
    channels: the filters (and biases) of the last encoder convolution ``encoder_conv3`` and
    the channel slices ``P[..., c]`` of the prototypes. The new encoder's latent is exactly
    the old latent without those channels, and so are the prototypes, hence the new
    classifier computes the distances on the kept channels only (``H`` and ``W`` are
    unchanged). The decoder (:data:`DECODER_LAYERS`) depends on ``decoder``:

    * ``"keep"`` (the paper read literally): its weights are copied without the input
      kernels of the removed channels in ``decoder_conv1``; it loses their contribution,
      which the further training (:func:`retrain`) compensates.
    * ``"reinitialize"`` (the authors' code, ``APNet.refine_channels`` re-builds the whole
      model and copies back only ``conv1``-``conv3``, the prototypes, ``mean`` and ``logits``):
      the three decoder layers get new weights from their initializers (Glorot-uniform
      kernels, zero biases, the Keras defaults both implementations use), drawn with ``seed``;
      the decoder is then learnt again during the further training. The classifier's outputs
      are the same as with ``"keep"``; only the reconstruction changes.

    Parameters
    ----------
    model : APNet-like keras.Model
    channels : sequence of int
        Latent channels to remove (0-based, unique, not all of them).
    decoder : {"keep", "reinitialize"}
    seed : int, optional
        Seed of the new decoder weights (``decoder="reinitialize"``); layer ``i`` of
        :data:`DECODER_LAYERS` uses ``seed + i``. ``None``: Keras' global random state.

    Returns
    -------
    keras.Model
        Uncompiled functional model with the layer names of :class:`apnet.APNet`.

    Raises
    ------
    ValueError
        ``model`` is not an APNet, an unknown ``decoder``, a ``seed`` that is not an integer or
        None, or ``channels`` that are not unique integers in ``[0, C)`` or name every channel.

    References
    ----------
    - Zinemanas et al., Electronics 2021, Section 5.2.2, Table 4.
    """
    _check_model(model)
    _check_choice(decoder, DECODER_MODES, "decoder")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(f"`seed` must be an integer or None; received seed={seed!r}")
    n_channels = model.get_layer("encoder_conv3").filters
    removed = _indices(channels, n_channels, "channel", f"model {model.name!r} (latent channels)")
    drop_last = lambda weights: [np.delete(w, removed, axis=-1) for w in weights]  # noqa: E731

    def decoder_kernel(weights):  # Conv2DTranspose kernel: (kh, kw, filters, input channels)
        kernel, *rest = weights
        return [np.delete(kernel, removed, axis=3), *rest]

    fresh = DECODER_LAYERS if decoder == "reinitialize" else ()
    new = _rebuild(
        model,
        {"encoder_conv3": {"filters": n_channels - len(removed)}},
        {"encoder_conv3": drop_last, "prototypes": drop_last, "decoder_conv1": decoder_kernel},
        fresh=fresh,
    )
    for i, name in enumerate(fresh):
        _reinitialize(new.get_layer(name), None if seed is None else int(seed) + i)
    return new


def add_prototype(model, latent, class_index, *, dense_row=None, weighted_sum_row=None):
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

    Raises
    ------
    ValueError
        ``latent`` of another shape than the prototypes or not finite, ``class_index`` outside
        ``[0, K)``, or a ``dense_row``/``weighted_sum_row`` of the wrong shape or not finite.

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


def prototype_classes(model):
    """Class of each prototype as the authors' code defines it: the model's prediction on ``P_j``.

    The classifier (Eqs. 6-8: prototype layer, similarity, weighted sum, last layer) is
    applied to the prototype itself as if it were an encoded input ``Z = P_j``, and the
    class is the argmax of its logits (``Prototypes.__init__`` in the authors'
    ``apnet/prototypes.py``: ``model_embeddings_to_out().predict(embeddings)``). This is
    the class that ``rules="authors"`` of :func:`redundant_prototypes` compares and by
    which the authors sort the prototypes (Figure 9). It can differ from
    ``apnet.inspection.decode_prototypes(...)["classes"]`` (the prediction on the decoded
    mel-spectrogram) and from ``w_classes`` (the argmax of the row of ``W``).

    Parameters
    ----------
    model : APNet-like keras.Model

    Returns
    -------
    np.ndarray [shape=(M,), int]
    """
    _check_model(model)
    prototypes = prototype_weights(model)
    latent = keras.Input(shape=prototypes.shape[1:], name="prototype_input")
    y = model.get_layer("similarity")(model.get_layer("prototypes")(latent))
    logits = model.get_layer("dense")(model.get_layer("weighted_sum")(y))
    head = keras.Model(latent, logits, name="prototype_head")
    return keras.ops.convert_to_numpy(head.predict_on_batch(prototypes)).argmax(axis=1)


def redundancy_threshold(distances, rules="paper"):
    """Threshold of Eq. 12: ``min{D_jl} + mean{D_jl} / 2``.

    Parameters
    ----------
    distances : np.ndarray [shape=(M, M)]
        Eq. 11 (zero diagonal).
    rules : {"paper", "authors"}
        ``"paper"``: min and mean over the pairs ``j != l``, as Eq. 12 writes.
        ``"authors"``: min over ``j != l`` but mean over the whole matrix, diagonal zeros
        included (``(M - 1) / M`` times the paper's mean), as ``APNet.refine_prototypes``
        computes it (``np.mean`` of the column means of the matrix).

    Returns
    -------
    float, in the units of ``distances``. The rule is unchanged when every distance is
    scaled by the same factor (the authors' distances are means over the ``T' F' C``
    elements, ours the sums of Eq. 11).
    """
    _check_choice(rules, RULES, "rules")
    distances, off = _off_diagonal(distances, "distances")
    mean = distances[off].mean() if rules == "paper" else distances.mean()
    return float(distances[off].min() + mean / 2.0)


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


def _nearest_neighbour_rule(distances, threshold, classes):
    """The authors' Eq. 12: each prototype (class-sorted order) against its nearest neighbour."""
    order = np.argsort(classes, kind="stable")
    d = distances[np.ix_(order, order)]
    np.fill_diagonal(d, np.inf)
    c = classes[order]
    removed, kept = [], set()
    for j in range(len(d)):
        nearest = int(np.argmin(d[j]))  # the first on ties, in class-sorted order
        if d[j, nearest] < threshold and j not in kept and c[nearest] == c[j]:
            removed.append(j)
            kept.add(nearest)
    return np.sort(order[np.asarray(removed, dtype=int)])


def redundant_prototypes(distances, threshold=None, classes=None, rules="paper"):
    """Prototypes to remove by the rule of Eq. 12.

    ``rules="paper"`` (Eq. 12 as written): every pair ``(j, l)``, ``j < l``, with
    ``D_jl < threshold`` loses one prototype. Pairs are taken from the closest up; the later
    prototype ``l`` of a pair is removed, and a pair one of whose prototypes is already
    removed is skipped (its redundancy is gone), so a prototype close to several others
    removes them all while it stays. With ``classes``, only pairs of the same class count.

    ``rules="authors"`` (``APNet.refine_prototypes`` of the authors' code, which produced
    Table 4): the prototypes are sorted by class (stable) and visited in that order; the
    prototype ``j`` visited is removed when its nearest neighbour ``n = argmin_{l != j} D_jl``

    * is closer than the threshold, ``D_jn < threshold``,
    * has the same class, ``classes[n] == classes[j]``, and
    * ``j`` is not the neighbour of a prototype removed before it;

    ``n`` is then marked as kept. Only the nearest neighbour is tested: a prototype whose
    nearest neighbour has another class is kept however close its same-class neighbours
    are. Within a redundant pair the first visited (the lower index within its class) goes;
    a prototype whose nearest neighbour was itself removed before is still removed (the
    authors' code does not check), so chains ``A -> B``, ``C -> A`` lose both ``A`` and ``C``.

    Parameters
    ----------
    distances : np.ndarray [shape=(M, M)]
        Eq. 11 (:func:`apnet.inspection.prototype_distance_matrix`).
    threshold : float, optional
        In the units of ``distances``; default :func:`redundancy_threshold` with ``rules``.
    classes : np.ndarray [shape=(M,)], optional
        Class of each prototype; required by ``rules="authors"``, which uses
        :func:`prototype_classes` (the classifier's prediction on the prototype). Optional
        with ``rules="paper"``, where it restricts the pairs to those of one class.
    rules : {"paper", "authors"}

    Returns
    -------
    np.ndarray [shape=(n_removed,), int], sorted (indices into the original order).

    Raises
    ------
    ValueError
        An unknown ``rules``, ``distances`` that is not a square matrix of side >= 2, ``classes``
        of the wrong shape, or ``rules="authors"`` without ``classes``.

    References
    ----------
    - Zinemanas et al., Electronics 2021, Section 5.2.1, Eqs. (11)-(12), Figure 9.
    """
    _check_choice(rules, RULES, "rules")
    distances, _ = _off_diagonal(distances, "distances")
    if threshold is None:
        threshold = redundancy_threshold(distances, rules)
    if classes is not None:
        classes = np.asarray(classes)
        if classes.shape != (len(distances),):
            raise ValueError(f"`classes` must have shape ({len(distances)},); received {classes.shape}")
    if rules == "authors":
        if classes is None:
            raise ValueError("rules='authors' needs the `classes` of the prototypes (see prototype_classes)")
        return _nearest_neighbour_rule(distances, float(threshold), classes)
    j, l = np.triu_indices(len(distances), k=1)
    keep = distances[j, l] < threshold
    if classes is not None:
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
    _check_choice(pairing, PAIRINGS, "pairing")


def channel_distance_matrix(latents, *, pairing="all"):
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
        authors' code computes (``APNet.refine_channels`` in ``apnet/model.py``, summed over
        the prototypes) and what ``rules="authors"`` uses: how far channel ``k`` is from
        channel ``q`` on the same tensor (zero diagonal).

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


def latent_channel_distance_matrix(model, x, *, batch_size=256, scaler=None, pairing="all"):
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


def _authors_channel_rule(matrix, n_channels):
    """The authors' channel selection: pairs k > q by increasing C_kq, add k, or q when k is in."""
    k, q = np.tril_indices(len(matrix), k=-1)
    order = np.lexsort((q, k, matrix[k, q]))
    removed = []
    for row, col in zip(k[order], q[order]):
        removed.append(int(col) if row in removed else int(row))  # col may already be in: no new channel
        if len(set(removed)) == n_channels:
            return np.unique(removed)
    raise RuntimeError(f"could not select {n_channels} channels")  # unreachable: every k >= 1 has the pair (k, 0)


def redundant_channels(matrix, n_channels=8, *, rules="paper"):
    """Channels to remove: one from each of the smallest off-diagonal pairs of Eq. 13.

    ``rules="paper"`` ("we find the eight minimum values of C outside the diagonal and we
    delete one channel from each pair"): the pairs ``(k, q)``, ``k < q``, are walked by
    increasing ``C_kq``; the later channel ``q`` of a pair is removed, and a pair one of whose
    channels is already removed is skipped, so each removed channel comes from a pair of two
    kept channels.

    ``rules="authors"`` (``APNet.refine_channels`` of the authors' code): the pairs
    ``(k, q)``, ``k > q`` (the lower triangle), are walked by increasing ``C_kq``; each pair
    adds ``k`` to the removed channels, or ``q`` when ``k`` is already in, even when ``q``
    is in too (then the pair removes nothing new and the next pair is taken); the walk stops
    when ``n_channels`` distinct channels are removed. The authors' code takes the ``8``,
    then ``9``, ... smallest pairs with ``np.argpartition`` (whose order within the selection
    is unspecified) until the rule yields exactly 8 channels; we walk them in increasing
    order (ties by index), so the prefixes are nested and the first prefix that yields
    ``n_channels`` channels is used.

    Both remove exactly ``n_channels`` distinct channels (48 -> 40 for Medley-solos-DB).

    Parameters
    ----------
    matrix : np.ndarray [shape=(C, C)]
        :func:`channel_distance_matrix` or :func:`latent_channel_distance_matrix`
        (symmetric; only the pairs ``k != q`` are read).
    n_channels : int
        Number of channels to remove, ``1 <= n_channels < C`` (8 in the paper).
    rules : {"paper", "authors"}

    Returns
    -------
    np.ndarray [shape=(n_channels,), int], sorted.

    Raises
    ------
    ValueError
        An unknown ``rules``, ``matrix`` that is not a square matrix of side >= 2, or
        ``n_channels`` that is not an integer in ``[1, C)``.

    References
    ----------
    - Zinemanas et al., Electronics 2021, Section 5.2.2.
    """
    _check_choice(rules, RULES, "rules")
    matrix, _ = _off_diagonal(matrix, "matrix")
    if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) or not (
            1 <= n_channels < len(matrix)):
        raise ValueError(f"`n_channels` must be an integer in [1, {len(matrix)}) for {len(matrix)} channels; "
                         f"received n_channels={n_channels!r}")
    if rules == "authors":
        return _authors_channel_rule(matrix, int(n_channels))
    k, q = np.triu_indices(len(matrix), k=1)
    return _greedy_pairs(matrix, np.stack([k, q], axis=1), n_max=int(n_channels))


# ----------------------------------------------------------------------------- retraining
def retrain(model, config, data, scaler, run_dir, *, epochs=20, verbose=2):
    """Train a refined model further with the run's settings (Section 5.2: 20 more epochs).

    Compiles with :func:`apnet.training.compile_for_run` (``alpha``, ``beta``, ``gamma``,
    ``learning_rate`` of ``config``) and fits on the training split with
    :func:`apnet.training.fit_resumable`, which keeps the epoch with the best validation
    accuracy in ``run_dir/model.keras`` (Section 4.4) and resumes an interrupted run. The file
    holds the model with ``scaler`` in front (:func:`audioruns.preprocessing.attach_scaler`);
    read it back with :func:`audioruns.preprocessing.load_scaled_model`.

    Parameters
    ----------
    model : APNet-like keras.Model
    config : dict
        The training run's config (``seed``, ``alpha``, ``beta``, ``gamma``, ``batch_size``,
        ``learning_rate``).
    data : apnet.training.FoldData
    scaler : fitted scaler of the training run, or None (inputs already scaled; the bare model is saved)
    run_dir : str or Path
    epochs : int
    verbose : int
        Keras ``fit`` verbosity.

    Returns
    -------
    history : pd.DataFrame
    epochs_run : int
    """
    epochs = require(positive_int, epochs, "epochs", strict=True)
    seed = int(config["seed"])
    keras.utils.set_random_seed(seed)
    compile_for_run(model, config)
    batches = fold_batches(data, int(config["batch_size"]), scaler=scaler, seed=seed, splits=("train", "validation"))
    export = None if scaler is None else (lambda trained: attach_scaler(trained, scaler))
    return fit_resumable(model, batches["train"], batches["validation"], run_dir, epochs, APNET_MONITOR,
                         verbose=verbose, export=export)
