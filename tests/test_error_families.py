"""Each package has one exception family, all under audiodata.errors.AudioDataError (docs/robustness.md)."""
import pickle

import audiodata.errors
from audiodata.errors import AudioDataError
from audioruns.errors import ModelFileError, RunError, TrainingDivergedError


def test_run_errors_are_run_errors_and_still_audio_data_errors():
    assert issubclass(RunError, AudioDataError)
    assert issubclass(ModelFileError, RunError) and issubclass(ModelFileError, ValueError)
    assert issubclass(TrainingDivergedError, RunError) and issubclass(TrainingDivergedError, RuntimeError)
    # Moved, not copied: audiodata (below the run layer) no longer defines them.
    assert not hasattr(audiodata.errors, "ModelFileError")
    assert not hasattr(audiodata.errors, "TrainingDivergedError")


def test_run_errors_keep_their_messages_and_attributes_through_pickling():
    err = ModelFileError("/r/model.keras", "corrupt or truncated model file /r/model.keras (bad zip)")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is ModelFileError and copy.path == "/r/model.keras" and str(copy) == str(err)
    err = TrainingDivergedError("/r", 3, 7, "loss", float("nan"))
    assert str(err).startswith("/r: training diverged at epoch 3, batch 7: loss = nan; stopped without saving")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is TrainingDivergedError and str(copy) == str(err)
    assert (copy.run_dir, copy.epoch, copy.batch, copy.loss) == ("/r", 3, 7, "loss")
    assert str(TrainingDivergedError(None, 1, None, "val_loss", float("inf"))).startswith(
        "training diverged at epoch 1: val_loss = inf")


def test_app_errors_share_one_base_and_keep_their_http_status():
    from audioapp.errors import AppError, Conflict, NotFound, PayloadTooLarge
    from audioapp.saving import StorageLimit
    from audioapp.server import _status_of

    for cls, builtin, status in ((NotFound, LookupError, 404), (Conflict, RuntimeError, 409),
                                 (PayloadTooLarge, ValueError, 413), (StorageLimit, OSError, 507)):
        assert issubclass(cls, AppError) and issubclass(cls, builtin)
        assert _status_of(cls("x")) == status
    assert issubclass(AppError, AudioDataError) and _status_of(AppError("x")) == 400
    assert _status_of(ModelFileError("m", "m: bad")) == 400

