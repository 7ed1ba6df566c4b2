"""Tests of audioruns.metrics, the metrics both papers share: against scikit-learn and hand-computed cases."""
import keras
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score

from audiodata.errors import ParameterError
from audioruns.metrics import accuracy, average_precision, masked_binary_crossentropy, top_k_agreement


# --------------------------------------------------------------------------- accuracy
def test_accuracy_by_hand_with_indices_and_one_hot():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.5, 0.3]])
    labels = np.array([0, 2, 1, 1])  # the third is wrong
    assert accuracy(p, labels) == 0.75
    assert accuracy(p, np.eye(3)[labels]) == 0.75
    assert accuracy(p, labels, normalize=False) == 3
    assert isinstance(accuracy(p, labels, normalize=False), int)
    assert isinstance(accuracy(p, labels), float)


def test_accuracy_matches_scikit_learn_and_the_former_inline_expressions(rng):
    p = rng.random((257, 10)).astype("float32")
    labels = rng.integers(0, 10, 257)
    one_hot = np.eye(10)[labels]
    assert accuracy(p, labels) == accuracy_score(labels, p.argmax(1))
    assert accuracy(p, labels, normalize=False) == accuracy_score(labels, p.argmax(1), normalize=False)
    # Bit-identical to what apnet.training / l2i.metrics computed inline before.
    assert accuracy(p, labels) == float(np.mean(p.argmax(axis=1) == labels))
    assert accuracy(p, one_hot) == float(np.mean(p.argmax(1) == np.nan_to_num(one_hot).argmax(1)))
    assert accuracy(p, labels, normalize=False) / len(labels) == accuracy(p, labels)


def test_accuracy_counts_nan_labels_as_zero():
    """NaN (not annotated) is 0 before the argmax, as l2i.metrics.task_scores does: a NaN row is class 0."""
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    labels = np.array([[np.nan, np.nan], [np.nan, 1.0], [1.0, np.nan]])
    assert accuracy(p, labels) == pytest.approx(2 / 3)  # row 0: class 0 (right); row 1: right; row 2: wrong


def test_accuracy_refuses_mismatched_shapes_and_is_nan_on_nothing():
    p = np.full((3, 4), 0.25)
    with pytest.raises(ParameterError, match=r"labels must have shape \(3,\)"):
        accuracy(p, np.array([0, 1]))
    with pytest.raises(ParameterError, match="labels must have shape"):
        accuracy(p, np.eye(3))
    with pytest.raises(ParameterError, match="probabilities must have shape"):
        accuracy(np.ones(3), np.array([0, 1, 2]))
    assert np.isnan(accuracy(np.zeros((0, 4)), np.zeros(0, dtype=int)))
    assert accuracy(np.zeros((0, 4)), np.zeros(0, dtype=int), normalize=False) == 0


# --------------------------------------------------------------------------- average precision
def test_average_precision_by_hand():
    # Ranked: + - + -: precision 1 at the first positive, 2/3 at the second.
    y = np.array([[1], [0], [1], [0]])
    s = np.array([[0.9], [0.8], [0.7], [0.1]])
    assert average_precision(y, s) == pytest.approx((1 + 2 / 3) / 2, abs=1e-15)
    assert average_precision(y, s, average="micro") == pytest.approx((1 + 2 / 3) / 2, abs=1e-15)


def test_average_precision_matches_scikit_learn(rng):
    y = (rng.random((200, 5)) < 0.3).astype(int)
    s = 0.3 * y + rng.random((200, 5))
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s, average="macro"), abs=1e-12)
    assert average_precision(y, s, average="micro") == pytest.approx(
        average_precision_score(y, s, average="micro"), abs=1e-12)
    keep = [0, 2, 3]
    assert average_precision(y, s, ignore=[1, 4]) == pytest.approx(
        average_precision_score(y[:, keep], s[:, keep], average="macro"), abs=1e-12)


def test_average_precision_counts_only_the_annotated_labels(rng):
    y = (rng.random((120, 3)) < 0.4).astype(int)
    s = 0.4 * y + rng.random((120, 3))
    mask = rng.random((120, 3)) < 0.6
    per_class = [average_precision_score(y[mask[:, j], j], s[mask[:, j], j]) for j in range(3)]
    assert average_precision(y, s, mask=mask) == pytest.approx(np.mean(per_class), abs=1e-12)
    assert average_precision(y, s, average="micro", mask=mask) == pytest.approx(
        average_precision_score(y[mask], s[mask]), abs=1e-12)
    # What a masked-out label says does not matter.
    flipped = np.where(mask, y, 1 - y)
    assert average_precision(flipped, s, mask=mask) == average_precision(y, s, mask=mask)


def test_average_precision_leaves_out_classes_without_positives_and_checks_its_input(rng):
    y = (rng.random((50, 3)) < 0.5).astype(int)
    y[:, 1] = 0
    s = rng.random((50, 3))
    with pytest.warns(UserWarning, match=r"classes \[1\] have no positive sample"):
        value = average_precision(y, s)
    assert value == pytest.approx(np.mean([average_precision_score(y[:, j], s[:, j]) for j in (0, 2)]), abs=1e-12)
    with pytest.raises(ParameterError, match="no class has a positive"):
        average_precision(np.zeros((4, 2), int), np.ones((4, 2)))
    with pytest.raises(ParameterError, match="only 0 and 1"):
        average_precision(s, s)
    with pytest.raises(ParameterError, match="average must be"):
        average_precision(y, s, average="weighted")
    with pytest.raises(ParameterError, match="outside"):
        average_precision(y, s, ignore=[3])
    with pytest.raises(TypeError):
        average_precision(y, s, "micro")  # options are keyword-only


# --------------------------------------------------------------------------- top-k agreement
def test_top_k_agreement_by_hand_and_against_argsort(rng):
    reference = np.array([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])  # classes 1, 0, 2
    scores = np.array([[0.2, 0.7, 0.1], [0.1, 0.5, 0.4], [0.5, 0.3, 0.2]])    # ranks 0, 2, 2
    assert top_k_agreement(reference, scores) == pytest.approx(1 / 3)
    assert top_k_agreement(reference, scores, k=2) == pytest.approx(1 / 3)
    assert top_k_agreement(reference, scores, k=3) == 1.0
    a, b = rng.random((100, 7)), rng.random((100, 7))
    for k in (1, 2, 5):
        expected = np.mean([a[i].argmax() in np.argsort(-b[i])[:k] for i in range(100)])
        assert top_k_agreement(a, b, k=k) == pytest.approx(expected, abs=1e-15)
    # Ties count in favour.
    assert top_k_agreement(np.array([[0.0, 1.0]]), np.array([[0.5, 0.5]])) == 1.0
    with pytest.raises(ParameterError, match="k must be"):
        top_k_agreement(a, b, k=8)
    with pytest.raises(ParameterError, match="reference must have shape"):
        top_k_agreement(a[:5], b)


# --------------------------------------------------------------------------- masked binary cross-entropy
def _bce_numpy(y, p):
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_masked_binary_crossentropy_matches_numpy(rng):
    y = (rng.random((16, 6)) < 0.5).astype("float32")
    p = rng.random((16, 6)).astype("float32")
    p[0, 0], p[0, 1] = 0.0, 1.0  # clipped, not infinite
    bce = _bce_numpy(y, p)
    np.testing.assert_allclose(float(masked_binary_crossentropy(y, p)), bce.mean(), rtol=1e-5)
    known = rng.random((16, 6)) < 0.5
    y_nan = np.where(known, y, np.nan).astype("float32")
    np.testing.assert_allclose(float(masked_binary_crossentropy(y_nan, p)), bce[known].mean(), rtol=1e-5)
    assert float(masked_binary_crossentropy(np.full((2, 3), np.nan, "float32"), p[:2, :3])) == 0.0


def test_masked_binary_crossentropy_by_hand_and_as_a_keras_loss():
    y = np.array([[1.0, np.nan], [0.0, np.nan]], "float32")
    p = np.array([[0.5, 0.3], [0.5, 0.9]], "float32")
    assert float(masked_binary_crossentropy(y, p)) == pytest.approx(np.log(2), rel=1e-6)
    assert keras.saving.get_registered_name(masked_binary_crossentropy) == "audioruns>masked_binary_crossentropy"
    assert keras.saving.get_registered_object("audioruns>masked_binary_crossentropy") is masked_binary_crossentropy


def test_l2i_keeps_its_names_and_its_results():
    """l2i's functions are the shared ones; its loss keeps the name saved model files carry."""
    from l2i import losses, metrics

    assert keras.saving.get_registered_name(losses.masked_binary_crossentropy) == "l2i>masked_binary_crossentropy"
    y = np.array([[1.0, np.nan, 0.0]], "float32")
    p = np.array([[0.8, 0.1, 0.3]], "float32")
    assert float(losses.masked_binary_crossentropy(y, p)) == float(masked_binary_crossentropy(y, p))
    f, g = np.eye(3)[[0, 1, 2, 2]], np.array([[0.5, 0.4, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])
    assert metrics.top_k_fidelity(f, g, 2) == top_k_agreement(f, g, k=2) == 1.0
    assert metrics.task_scores("esc50", ["a", "b", "c"], False, f, g)["accuracy"] == accuracy(g, f) == 0.75
