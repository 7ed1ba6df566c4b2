"""Shared checks every custom Keras layer of the package must pass.

Modelled on keras-hub's ``TestCase.run_layer_test``: a config round trip, a
symbolic call, an eager call, the number of weights, one ``fit`` step and a
``.keras`` save/load round trip inside a functional model.
"""
import numpy as np
import keras


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights=0,
    run_training_check=True,
    tmp_path=None,
):
    """Run the standard layer checks and return the eager output (as NumPy).

    Parameters
    ----------
    layer_cls : type
        The layer class under test.
    init_kwargs : dict
        Arguments for ``layer_cls``.
    input_data : np.ndarray or list of np.ndarray
        Concrete input(s) with a batch axis.
    expected_output_shape : tuple or list of tuple
        Shape(s) of the output for ``input_data`` (batch axis included).
    expected_num_trainable_weights, expected_num_non_trainable_weights : int
        Number of weight variables after building.
    run_training_check : bool
        Whether to run one ``fit`` step (needs a float output).
    tmp_path : pathlib.Path, optional
        Where to save the ``.keras`` round-trip model; skipped when None.
    """
    multi_input = isinstance(input_data, (list, tuple))
    inputs_np = list(input_data) if multi_input else [input_data]

    # 1. Config round trip: every argument is stored and restored.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key in init_kwargs:
        assert key in config, f"{layer_cls.__name__}.get_config() lacks {key!r}"
    restored = layer_cls.from_config(config)
    assert restored.get_config() == config
    # Serialization through the registry (no custom_objects needed).
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is layer_cls

    # 2. Symbolic call.
    sym_inputs = [keras.Input(shape=x.shape[1:], dtype=str(x.dtype)) for x in inputs_np]
    sym_out = layer_cls(**init_kwargs)(sym_inputs if multi_input else sym_inputs[0])
    outs = sym_out if isinstance(sym_out, (list, tuple)) else [sym_out]
    exp = expected_output_shape if isinstance(expected_output_shape, list) else [expected_output_shape]
    for o, e in zip(outs, exp):
        assert tuple(o.shape[1:]) == tuple(e[1:]), f"symbolic shape {o.shape} != {e}"

    # 3. Eager call and weight counts.
    layer = layer_cls(**init_kwargs)
    out = layer(inputs_np if multi_input else inputs_np[0])
    eager = [keras.ops.convert_to_numpy(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
    for o, e in zip(eager, exp):
        assert o.shape == tuple(e), f"eager shape {o.shape} != {e}"
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights

    # 4. One training step inside a functional model; the loss must be finite.
    model = keras.Model(sym_inputs if multi_input else sym_inputs[0], sym_out)
    if run_training_check:
        targets = [np.zeros_like(o, dtype="float32") for o in eager]
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(inputs_np if multi_input else inputs_np[0],
                            targets if len(targets) > 1 else targets[0], epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])

    # 5. .keras round trip: same outputs after reload, without custom_objects.
    if tmp_path is not None:
        path = tmp_path / f"{layer_cls.__name__}.keras"
        model.save(path)
        reloaded = keras.models.load_model(path)
        before = model(inputs_np if multi_input else inputs_np[0])
        after = reloaded(inputs_np if multi_input else inputs_np[0])
        before = before if isinstance(before, (list, tuple)) else [before]
        after = after if isinstance(after, (list, tuple)) else [after]
        for b, a in zip(before, after):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(b), keras.ops.convert_to_numpy(a), rtol=1e-6)
    return eager if multi_input or len(eager) > 1 else eager[0]
