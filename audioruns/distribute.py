"""``--distribute``: one model trained data-parallel over every visible device (see docs/distributed.md).

* :func:`data_parallel` -- the context inside which models are built, compiled and fit data-parallel:
  on JAX a :class:`keras.distribution.DataParallel` over ``keras.distribution.list_devices()`` (each
  global batch of ``B`` rows is split into ``B / n`` rows per device; the weights are replicated), on
  TensorFlow a :class:`tf.distribute.MirroredStrategy` over the visible GPUs (else the logical CPUs).
  It yields a :class:`DeviceInfo`, which ``results.json`` records as ``"distribution"``;
* :func:`check_batch_size` -- the global batch must be a multiple of the device count;
* :func:`distribute_fit_data` -- on JAX every batch must split evenly over the devices: the last,
  partial batch of a training epoch loses its ``len % n`` last rows (:class:`EvenBatches`; at most
  ``n - 1`` clips of the epoch, other clips every epoch as the order is reshuffled), and the validation
  runs unsplit (:class:`UndistributedValidation`), exactly as on one device;
* :func:`predict`, :func:`predict_on_batch` -- ``model.predict`` / ``predict_on_batch`` run
  :func:`undistributed`: every batch whole, on the replicated weights.

With ``enabled=False`` (no ``--distribute``) everything here is a no-op and the runs are those of one
device, bit for bit.
"""
import contextlib
import dataclasses

import keras
import numpy as np
from keras import ops

from audiodata.errors import ParameterError

__all__ = [
    "STRATEGIES",
    "DeviceInfo",
    "EvenBatches",
    "active",
    "check_batch_size",
    "check_single_process",
    "data_parallel",
    "gather_replicas",
    "replica_share",
    "replica_sum",
    "distribute_fit_data",
    "even_batches",
    "predict",
    "predict_on_batch",
    "undistributed",
    "UndistributedValidation",
    "visible_devices",
]

#: Values of :attr:`DeviceInfo.strategy`.
STRATEGIES = ("none", "data_parallel", "mirrored")
_SUPPORTED = ("jax", "tensorflow")

_ACTIVE = []  # DeviceInfo of the enclosing data_parallel blocks (innermost last)


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """The devices one run trains on (``results.json``'s ``"distribution"``).

    Attributes
    ----------
    backend : str
        ``keras.backend.backend()``.
    strategy : str
        ``"none"`` (one device), ``"data_parallel"`` (JAX, :class:`keras.distribution.DataParallel`)
        or ``"mirrored"`` (TensorFlow, :class:`tf.distribute.MirroredStrategy`).
    n_devices : int
        Devices each batch is split over (1 when ``strategy == "none"``).
    devices : tuple of str
        Their names (with ``"none"``: the default device).
    """

    backend: str
    strategy: str
    n_devices: int
    devices: tuple = ()

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"`strategy` must be one of {STRATEGIES}; received strategy={self.strategy!r}")
        if self.n_devices < 1 or (self.strategy == "none" and self.n_devices != 1):
            raise ValueError(f"n_devices={self.n_devices} with strategy {self.strategy!r}")
        object.__setattr__(self, "devices", tuple(str(d) for d in self.devices))

    def as_dict(self):
        """``{"backend", "strategy", "n_devices", "devices"}`` (a list), for JSON.

        >>> DeviceInfo("jax", "none", 1, ("cpu:0",)).as_dict()
        {'backend': 'jax', 'strategy': 'none', 'n_devices': 1, 'devices': ['cpu:0']}
        """
        return {"backend": self.backend, "strategy": self.strategy, "n_devices": self.n_devices,
                "devices": list(self.devices)}


def visible_devices(backend=None):
    """Names of the devices ``--distribute`` splits the batch over: the accelerators, else the CPUs.

    JAX: ``keras.distribution.list_devices()`` (all processes' devices after
    ``keras.distribution.initialize``); TensorFlow: the logical GPUs, else the logical CPUs
    (``tf.config.set_logical_device_configuration`` can split one CPU into several).

    Parameters
    ----------
    backend : str, optional
        Default ``keras.backend.backend()``.

    Returns
    -------
    tuple of str

    Raises
    ------
    audiodata.errors.ParameterError
        Another backend than JAX or TensorFlow.
    """
    backend = backend or keras.backend.backend()
    if backend == "jax":
        return tuple(keras.distribution.list_devices())
    if backend == "tensorflow":
        import tensorflow as tf

        return tuple(d.name for d in (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")))
    raise ParameterError(f"--distribute supports the backends {list(_SUPPORTED)}; this run uses {backend!r} "
                         "(set KERAS_BACKEND=jax or tensorflow)")


def active():
    """The :class:`DeviceInfo` of the innermost :func:`data_parallel` block, None outside any."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextlib.contextmanager
def data_parallel(enabled=True):
    """Inside the block, models built, compiled and fit are data-parallel over every visible device.

    JAX: ``keras.distribution.set_distribution(DataParallel(devices=list_devices()))``, the previous
    distribution restored on exit. TensorFlow: ``MirroredStrategy(devices).scope()`` over the logical
    GPUs (else CPUs). Build, compile, load weights and fit inside the block (on TensorFlow variables
    created outside it are not mirrored). ``enabled=False``: a no-op yielding
    ``DeviceInfo(strategy="none", n_devices=1)``.

    Parameters
    ----------
    enabled : bool

    Yields
    ------
    DeviceInfo

    Raises
    ------
    audiodata.errors.ParameterError
        ``enabled`` on another backend than JAX or TensorFlow.

    Examples
    --------
    >>> with data_parallel(False) as info:
    ...     info.strategy, info.n_devices
    ('none', 1)
    """
    backend = keras.backend.backend()
    if not enabled:
        default = visible_devices(backend)[:1] if backend in _SUPPORTED else ()
        info = DeviceInfo(backend, "none", 1, default)
        _ACTIVE.append(info)
        try:
            yield info
        finally:
            _ACTIVE.pop()
        return
    devices = visible_devices(backend)
    if backend == "jax":
        import jax

        check_single_process(jax.process_count())
        distribution = keras.distribution.DataParallel(devices=list(devices))
        info, scope = DeviceInfo(backend, "data_parallel", len(devices), devices), distribution.scope()
    else:
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(devices=list(devices))
        info, scope = DeviceInfo(backend, "mirrored", strategy.num_replicas_in_sync, devices), strategy.scope()
    with scope:
        _ACTIVE.append(info)
        try:
            yield info
        finally:
            _ACTIVE.pop()


def check_single_process(process_count):
    """Refuse a multi-process JAX run (``keras.distribution.initialize`` on several hosts or processes).

    With several processes, ``keras.distribution.DataParallel`` expects each process to feed its own
    ``1 / process_count`` of every global batch (``jax.make_array_from_process_local_data``); the batches
    of this package (:class:`audioruns.batches.EpochOrderedBatches`) are not split by process, so every
    process would feed the same rows, and the predictions of a global array are not addressable from one
    process. See docs/distributed.md.

    Parameters
    ----------
    process_count : int
        ``jax.process_count()``.

    Raises
    ------
    audiodata.errors.ParameterError
        ``process_count > 1``.
    """
    if int(process_count) > 1:
        raise ParameterError(f"--distribute runs in one process over its local devices; this JAX runtime has "
                             f"{process_count} processes (keras.distribution.initialize / jax.distributed), whose "
                             "batches would each feed the same rows: multi-host training is not supported "
                             "(docs/distributed.md)")


def check_batch_size(batch_size, n_devices, *, what="batch size"):
    """The global batch size, checked: at least ``n_devices`` and a multiple of it (``B / n`` rows per device).

    Parameters
    ----------
    batch_size, n_devices : int
    what : str
        Named in the message.

    Returns
    -------
    int
        ``batch_size // n_devices``, the rows of each device.

    Raises
    ------
    audiodata.errors.ParameterError
        ``batch_size`` is smaller than ``n_devices`` or not a multiple of it.

    >>> check_batch_size(32, 2)
    16
    """
    batch_size, n_devices = int(batch_size), int(n_devices)
    if batch_size < n_devices or batch_size % n_devices:
        raise ParameterError(f"--distribute: the {what} {batch_size} must be a multiple of the number of devices "
                             f"{n_devices} (each device gets batch size / {n_devices} rows); choose --batch-size "
                             f"accordingly or make fewer devices visible")
    return batch_size // n_devices


def _needs_even():
    """Devices a batch must split evenly over: the JAX DataParallel count, else 1 (TF splits unevenly)."""
    info = active()
    return info.n_devices if info is not None and info.strategy == "data_parallel" else 1


@contextlib.contextmanager
def undistributed():
    """Inside a JAX :func:`data_parallel` block: no distribution (inputs unsplit), restored on exit.

    The replicated weights stay where they are: a ``predict`` or ``evaluate`` here computes every batch
    whole, on any number of rows, exactly as one device does. Elsewhere (TensorFlow, no distribution) a
    no-op.
    """
    if _needs_even() == 1:
        yield
        return
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def _replica_context():
    """The TensorFlow replica context of a MirroredStrategy step with several replicas, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf  # only reached on the TensorFlow backend (this module also serves JAX machines)

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def gather_replicas(x):
    """``x`` of every replica, concatenated along the first axis, inside a TensorFlow MirroredStrategy step.

    A loss that reduces over the whole batch (APNet's prototype loss: a minimum over the instances) sees
    only its replica's ``B / n`` rows under MirroredStrategy; gathered, it sees the global batch, as on one
    device. ``ReplicaContext.all_gather`` is differentiable: each replica's rows get the gradient of every
    replica's use of them. Elsewhere (one replica, JAX -- whose arrays are global already --, no strategy)
    ``x`` itself.

    Parameters
    ----------
    x : tensor [shape=(rows, ...)]

    Returns
    -------
    tensor [shape=(global rows, ...)]
    """
    context = _replica_context()
    return x if context is None else context.all_gather(x, axis=0)


def replica_sum(x):
    """The sum of ``x`` over the replicas of a TensorFlow MirroredStrategy step; ``x`` elsewhere.

    For a normaliser that counts over the global batch (e.g. the annotated labels of
    :func:`audioruns.metrics.masked_binary_crossentropy`), not differentiated through.
    """
    context = _replica_context()
    return x if context is None else context.all_reduce("SUM", ops.stop_gradient(x))


def replica_share(x):
    """``x / n`` inside a TensorFlow MirroredStrategy step of ``n`` replicas; ``x`` elsewhere.

    Keras divides each replica's loss by ``n`` before the replicas' gradients are summed, but only for
    the losses it reduces itself: a model's own ``compute_loss`` (:class:`l2i.trainer.InterpreterModel`)
    returns its batch mean through this, so that ``n`` replicas step as one device does.
    """
    context = _replica_context()
    return x if context is None else x / context.num_replicas_in_sync


def _rows(batch):
    return len(keras.tree.flatten(batch)[0])


class EvenBatches(keras.utils.PyDataset):
    """Training batches that split evenly over ``n`` devices: a batch of ``r`` rows keeps its first ``r - r % n``.

    A last batch of fewer than ``n`` rows is left out. ``set_epoch`` and ``on_epoch_end`` are passed on.

    Parameters
    ----------
    batches : keras.utils.PyDataset
    n : int
        Devices.
    """

    def __init__(self, batches, n):
        super().__init__(workers=batches.workers, use_multiprocessing=batches.use_multiprocessing,
                         max_queue_size=batches.max_queue_size)
        self.batches, self.n = batches, int(n)
        self._length = len(batches)
        if self._length and _rows(batches[self._length - 1]) < self.n:
            self._length -= 1

    def __len__(self):
        return self._length

    def set_epoch(self, epoch):
        self.batches.set_epoch(epoch)

    def on_epoch_end(self):
        self.batches.on_epoch_end()

    def __getitem__(self, index):
        batch = self.batches[index]
        rows = _rows(batch)
        if rows % self.n == 0:
            return batch
        keep = rows - rows % self.n
        return keras.tree.map_structure(lambda a: np.asarray(a)[:keep], batch)


def even_batches(batches, partial="drop"):
    """``batches`` as :class:`EvenBatches` inside a JAX :func:`data_parallel` block over several devices, else
    ``batches`` itself.

    Parameters
    ----------
    batches : keras.utils.PyDataset
        Training batches.
    partial : {"drop"}
        What becomes of a partial batch: its last ``len % n`` rows are left out (the only choice; validation
        and predictions run :func:`undistributed` instead).

    Returns
    -------
    keras.utils.PyDataset
    """
    if partial != "drop":
        raise ValueError(f"`partial` must be 'drop'; received partial={partial!r} (validation and predictions "
                         "run undistributed instead: UndistributedValidation, predict)")
    n = _needs_even()
    if n == 1 or not isinstance(batches, keras.utils.PyDataset):
        return batches
    return EvenBatches(batches, n)


class UndistributedValidation(keras.callbacks.Callback):
    """Adds ``val_<metric>`` of ``model.evaluate(data)`` to each epoch's logs, computed :func:`undistributed`.

    What ``fit(validation_data=data)`` logs, on batches of any size (Keras' own validation under a JAX
    distribution would need every validation batch to split evenly). Put it before the callbacks that read
    the logs.
    """

    def __init__(self, data):
        super().__init__()
        self.data = data

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        with undistributed():
            values = self.model.evaluate(self.data, verbose=0, return_dict=True)
        logs.update({f"val_{name}": value for name, value in values.items()})


def distribute_fit_data(train_data, validation_data):
    """``(train_data, validation_data, callbacks)`` for ``fit`` inside a :func:`data_parallel` block.

    On JAX with several devices: the training batches as :class:`EvenBatches` (the last partial batch loses
    ``len % n`` rows) and the validation run by :class:`UndistributedValidation` (exact, unsplit), with
    ``validation_data=None``. Elsewhere: the data unchanged and no callback.
    """
    if _needs_even() == 1:
        return train_data, validation_data, []
    return even_batches(train_data), None, [] if validation_data is None else [UndistributedValidation(validation_data)]


def predict_on_batch(model, x):
    """``model.predict_on_batch(x)``, :func:`undistributed` (any number of rows under a JAX distribution)."""
    with undistributed():
        return model.predict_on_batch(x)


def predict(model, batches, **kwargs):
    """``model.predict(batches, verbose=0, **kwargs)``, :func:`undistributed`.

    Parameters
    ----------
    model : keras.Model
    batches : keras.utils.PyDataset or array
    **kwargs
        Passed to ``predict``.

    Returns
    -------
    ``model.predict``'s outputs.
    """
    kwargs.setdefault("verbose", 0)
    with undistributed():
        return model.predict(batches, **kwargs)
