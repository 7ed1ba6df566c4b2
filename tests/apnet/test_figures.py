"""apnet.figures draws the model: the values plotted equal the model's weights and outputs."""
import keras
import numpy as np
import pytest

from apnet import APNet, figures, inspection


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    return APNet(input_shape=(16, 12), n_classes=3, n_prototypes=7, n_filters=4)


def image_arrays(fig):
    return [np.asarray(image.get_array()) for ax in fig.axes for image in ax.images]


def spectrogram_axes(fig):
    """Axes holding an image that is not a colour bar."""
    return [ax for ax in fig.axes if ax.images and not hasattr(ax, "_colorbar")]


def test_plot_reconstructions(small_model, rng):
    x = rng.uniform(-1, 1, (4, 16, 12)).astype("float32")
    x_hat = inspection.reconstruct(small_model, x)
    fig = figures.plot_reconstructions(x, x_hat, titles=list("abcd"))
    axes = spectrogram_axes(fig)
    assert len(axes) == 8 and len(fig.axes) == 9  # 2 rows x 4, and the colour bar
    arrays = image_arrays(fig)
    for i in range(4):
        np.testing.assert_array_equal(arrays[i], x[i].T)      # top row: inputs, frequency upwards
        np.testing.assert_array_equal(arrays[4 + i], x_hat[i].T)
    assert [ax.get_title() for ax in axes[:4]] == list("abcd")
    limits = {image.get_clim() for ax in axes for image in ax.images}
    assert limits == {(float(min(x.min(), x_hat.min())), float(max(x.max(), x_hat.max())))}
    with pytest.raises(ValueError, match="4 spectrograms and `reconstructions` 3"):
        figures.plot_reconstructions(x, x_hat[:3])
    with pytest.raises(ValueError, match=r"\(T, F\)"):
        figures.plot_reconstructions(x[:, 0], x_hat[:, 0])


def test_plot_prototypes(small_model, rng):
    mel = rng.uniform(-1, 1, (7, 16, 12))
    fig = figures.plot_prototypes(mel, titles=[f"P{j}" for j in range(7)], n_cols=5)
    assert len(spectrogram_axes(fig)) == 7 and len(fig.axes) == 8  # empty cells removed
    for array, S in zip(image_arrays(fig), mel):
        np.testing.assert_array_equal(array, S.T)
    with pytest.raises(ValueError, match="n_cols"):
        figures.plot_prototypes(mel, n_cols=0)
    with pytest.raises(ValueError, match="7 entries"):
        figures.plot_prototypes(mel, titles=["a"])


def test_plot_last_layer_weights_draws_w_transposed(small_model):
    w_t = inspection.fully_connected_weights(small_model)
    classes = np.array([2, 0, 1, 0, 2, 1, 0])
    order = inspection.class_order(classes)
    fig = figures.plot_last_layer_weights(w_t, order=order, class_names=["a", "b", "c"],
                                          prototype_labels=classes)
    assert len(fig.axes) == 2
    (array,) = image_arrays(fig)[:1]
    np.testing.assert_array_equal(array, keras.ops.convert_to_numpy(small_model.get_layer("dense").kernel).T[:, order])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0", "0", "1", "1", "2", "2"]
    with pytest.raises(ValueError, match="permutation"):
        figures.plot_last_layer_weights(w_t, order=[0, 0, 1, 2, 3, 4, 5])


def test_plot_weighted_sum_kernels_draws_h(small_model, rng):
    kernels = inspection.weighted_sum_weights(small_model, upsample=True)
    assert kernels.shape == (7, 12)
    selected = [1, 4, 6]
    mel = rng.uniform(-1, 1, (3, 16, 12))
    fig = figures.plot_weighted_sum_kernels(kernels[selected], mel=mel, titles=["x", "y", "z"])
    assert len(fig.axes) == 6 and len(spectrogram_axes(fig)) == 3
    lines = [line for ax in fig.axes for line in ax.lines]
    assert len(lines) == 3
    h = keras.ops.convert_to_numpy(small_model.get_layer("weighted_sum").kernel)  # (M, F') = (7, 3)
    for line, j in zip(lines, selected):
        np.testing.assert_allclose(line.get_xdata(), np.repeat(h[j], 4))  # each latent bin covers 4 bands
        np.testing.assert_array_equal(line.get_ydata(), np.arange(12))
    assert len(figures.plot_weighted_sum_kernels(kernels[:2]).axes) == 2
    with pytest.raises(ValueError, match="one per kernel"):
        figures.plot_weighted_sum_kernels(kernels[:2], mel=mel)


def test_plot_closest_prototypes(small_model, rng):
    x = rng.uniform(-1, 1, (5, 16, 12)).astype("float32")
    closest = inspection.closest_prototypes(small_model, x, k=3)
    mel = rng.uniform(-1, 1, (7, 16, 12))
    fig = figures.plot_closest_prototypes(x[0], mel[closest["mean"][0]], mel[closest["weighted"][0]],
                                          mean_titles=list("abc"), weighted_titles=list("def"))
    assert len(fig.axes) == 7
    arrays = image_arrays(fig)
    np.testing.assert_array_equal(arrays[0], x[0].T)
    for array, j in zip(arrays[1:4], closest["mean"][0]):
        np.testing.assert_array_equal(array, mel[j].T)
    for array, j in zip(arrays[4:], closest["weighted"][0]):
        np.testing.assert_array_equal(array, mel[j].T)
    assert [ax.get_title() for ax in fig.axes[1:]] == list("abcdef")
    with pytest.raises(ValueError, match="weighted_mel"):
        figures.plot_closest_prototypes(x[0], mel[:3], mel[:2])


def test_plot_distance_matrix_draws_eq_11(small_model):
    distances = inspection.prototype_distance_matrix(small_model)
    p = keras.ops.convert_to_numpy(small_model.get_layer("prototypes").prototypes).reshape(7, -1)
    classes = np.array([1, 0, 1, 2, 0, 2, 1])
    order = inspection.class_order(classes)
    fig = figures.plot_distance_matrix(distances, order=order, labels=np.array(["a", "b", "c"])[classes])
    (array,) = image_arrays(fig)[:1]
    expected = ((p[:, None] - p[None]) ** 2).sum(-1)[np.ix_(order, order)]
    np.testing.assert_allclose(array, expected, rtol=1e-5, atol=1e-9)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    np.testing.assert_allclose(ax.get_xticks(), [0.5, 3.0, 5.5])  # centres of 2, 3 and 2 prototypes
    with pytest.raises(ValueError, match="square"):
        figures.plot_distance_matrix(distances[:3])


def test_one_per_class_and_pick_instance():
    np.testing.assert_array_equal(figures.one_per_class([2, 0, 2, 1, 0]), [1, 3, 0])
    classes = np.array([0, 1, 2])
    closest = {"weighted": np.array([[0], [1], [2]]), "mean": np.array([[0], [2], [2]])}
    assert figures.pick_instance(closest, classes, labels=np.array([0, 1, 2])) == 1   # weighted right, mean wrong
    assert figures.pick_instance(closest, classes, labels=np.array([0, 0, 0])) == 1   # they disagree
    same = {"weighted": closest["mean"], "mean": closest["mean"]}
    assert figures.pick_instance(same, classes, labels=np.array([1, 1, 1])) == 0


def test_prototype_audio(rng):
    from audiodata.features import MinMaxScaler, load_feature_params

    params = load_feature_params("fsdd", "mel")
    S = rng.uniform(-80, 0, (64, 64)).astype("float32")
    scaler = MinMaxScaler().fit(S[None])
    y, sr = figures.prototype_audio(scaler.transform(S), scaler, params)
    assert sr == 8000 and y.shape == (8000,) and y.dtype == np.float32
    assert np.max(np.abs(y)) == pytest.approx(0.9, rel=1e-5)


