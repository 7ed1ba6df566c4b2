"""Test-fold evaluation of a model version: accuracy and confusion matrix (the train page's table)."""
import numpy as np

from apnet.training import fold_batches, predict_classes
from audioruns.metrics import accuracy


def confusion_matrix(labels, predicted, n_classes):
    """``(n_classes, n_classes)`` counts; rows: true class, columns: predicted class."""
    confusion = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    return confusion


def evaluate_model(model, data, batch_size, scaler, n_classes):
    """Accuracy and confusion matrix of ``model`` on the test split of the fold ``data``.

    Parameters
    ----------
    model : keras.Model
    data : audioruns.folds.Fold
        The fold (:func:`apnet.training.load_fold`).
    batch_size : int
    scaler : fitted scaler of the run
    n_classes : int

    Returns
    -------
    dict with ``accuracy``, ``confusion`` (nested lists) and ``n_test``.
    """
    batches = fold_batches(data, batch_size, scaler=scaler, splits=("test",))
    probabilities = predict_classes(model, batches["test"])
    predicted = probabilities.argmax(axis=1)
    labels = data.targets["test"].argmax(axis=1)
    return {"accuracy": accuracy(probabilities, labels),
            "confusion": confusion_matrix(labels, predicted, n_classes).tolist(), "n_test": int(len(labels))}
