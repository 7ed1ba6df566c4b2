"""Feature functions against librosa computed step by step, shapes from the configs, and round trips."""
import librosa
import numpy as np
import pytest
import soundfile as sf
import yaml

from audiodata import ParameterError, load_audio
from audiodata.features import (compute_features, feature_sets, feature_shape, load_feature_params,
                                log_magnitude_spectrogram, log_mel_spectrogram, logmag_to_audio, mel_to_audio)

ESC_CLIP = "ESC-50/audio/1-100032-A-0.flac"


def test_log_mel_matches_librosa_step_by_step(shared_data):
    y, sr = load_audio(shared_data / "fsdd/recordings/4_jackson_12.wav")
    S = log_mel_spectrogram(y, sr=sr, n_fft=512, hop_length=128, n_mels=64, htk=True, top_db=80.0)
    power = np.abs(librosa.stft(y, n_fft=512, hop_length=128)) ** 2
    mel = librosa.filters.mel(sr=sr, n_fft=512, n_mels=64, htk=True) @ power
    ref = 10 * np.log10(np.maximum(mel, 1e-10))
    ref = np.maximum(ref, ref.max() - 80.0)
    assert S.shape == (1 + len(y) // 128, 64)
    np.testing.assert_allclose(S, ref.T, atol=1e-3)


def test_log_magnitude_is_log1p_of_stft_magnitude_with_its_phase(shared_data):
    y, _ = load_audio(shared_data / ESC_CLIP, sr=44100)
    X, phase = log_magnitude_spectrogram(y, return_phase=True)
    D = librosa.stft(y, n_fft=1024, hop_length=512)
    assert X.shape == phase.shape == (431, 513)
    np.testing.assert_allclose(X, np.log1p(np.abs(D)).T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.cos(phase), np.cos(np.angle(D)).T, atol=1e-4)


def test_logmag_round_trip_gives_back_the_clip(shared_data):
    y, _ = load_audio(shared_data / ESC_CLIP, sr=44100)
    X, phase = log_magnitude_spectrogram(y, return_phase=True)
    back = logmag_to_audio(X, phase, length=len(y))
    assert np.max(np.abs(back - y)) < 1e-3 * np.max(np.abs(y))


def test_mel_inversion_with_griffin_lim_keeps_the_mel_spectrogram(shared_data):
    params = load_feature_params("fsdd", "mel")
    y, sr = load_audio(shared_data / "fsdd/recordings/8_yweweler_20.wav", sr=params["sr"],
                       duration=params["duration"])
    S = compute_features(shared_data / "fsdd/recordings/8_yweweler_20.wav", params)
    back = mel_to_audio(S, **{k: v for k, v in params.items() if k != "type"}, length=len(y))
    assert back.shape == y.shape and np.isfinite(back).all()
    S_back = log_mel_spectrogram(back, sr=sr, **{k: params[k] for k in (
        "n_fft", "hop_length", "n_mels", "htk", "top_db", "n_frames")})
    loud = S > S.max() - 40  # where there is speech
    assert np.corrcoef(S[loud], S_back[loud])[0, 1] > 0.9
    assert np.median(np.abs(S - S_back)[loud]) < 3.0  # dB
    # Deterministic: Griffin-Lim starts from a seeded random phase.
    np.testing.assert_array_equal(back, mel_to_audio(S, **{k: v for k, v in params.items() if k != "type"},
                                                     length=len(y)))


@pytest.mark.parametrize("dataset,name,shape", [
    ("urbansound8k", "mel", (84, 128)),        # APNet Table 1 / Section 4.3: T = 84, F = 128
    ("medley_solos_db", "mel", (128, 256)),
    ("speech_commands", "mel", (60, 80)),      # the authors' models take (60, 80) (DCASE-models framing)
    ("speech_commands", "mel_paper", (64, 80)),
    ("urbansound8k", "mel_sb_cnn", (128, 128)),
    ("medley_solos_db", "mel_att_crnn", (128, 256)),
    ("fsdd", "mel", (64, 64)),
    ("esc50", "mel", (431, 128)),              # L2I: 5 s at 44.1 kHz, hop 512, 128 mel bands
    ("esc50", "logmag", (431, 513)),
    ("sonyc_ust", "logmag", (862, 513)),
    ("openmic", "logmag", (862, 513)),
])
def test_every_config_gives_the_paper_shape(dataset, name, shape):
    assert feature_shape(load_feature_params(dataset, name)) == shape


def test_configs_define_mel_and_logmag_for_every_dataset():
    for dataset in ("urbansound8k", "medley_solos_db", "speech_commands", "esc50", "sonyc_ust", "openmic", "fsdd"):
        assert {"mel", "logmag"} <= set(feature_sets(dataset))


def test_real_urbansound8k_clip_shorter_than_4s_is_padded(shared_data):
    path = shared_data / "UrbanSound8K/audio/fold5/100032-3-0-0.wav"  # 0.32 s dog bark
    assert sf.info(str(path)).duration < 0.5
    S = compute_features(path, load_feature_params("urbansound8k", "mel"))
    assert S.shape == (84, 128)
    assert S[:10].max() > S[40:].max() + 20  # the bark, then padding at the floor


def test_bad_parameters_are_named():
    with pytest.raises(ParameterError, match="log must be one of"):
        log_mel_spectrogram(np.zeros(1000, np.float32), sr=8000, n_fft=256, hop_length=64, n_mels=16, log="ln")
    with pytest.raises(ParameterError, match="feature set 'cqt'"):
        load_feature_params("fsdd", "cqt")
    with pytest.raises(ParameterError, match="no feature configuration"):
        load_feature_params("timit", "mel")
    with pytest.raises(ParameterError, match="mono"):
        log_magnitude_spectrogram(np.zeros((2, 1000), np.float32))


def test_user_config_file_is_validated(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("mel:\n  type: mel\n  sr: 16000\n")
    with pytest.raises(ParameterError, match="lacks"):
        load_feature_params(bad, "mel")


def test_dcase_models_framing_on_a_real_stereo_clip(shared_data):
    """The APNet-paper sets compute what DCASE-models 0.2.0-rc0's MelSpectrogram computed: left channel,
    resampy (kaiser_best), zero-pad/cut to sequence_frames * hop + n_fft // 2 samples, STFT without centring."""
    import librosa

    from audiodata.io import fix_length

    path = shared_data / "UrbanSound8K/audio/fold2/100652-3-0-0.wav"  # 44.1 kHz stereo, 4 s
    params = load_feature_params("urbansound8k", "mel")  # APNet: 22.05 kHz, w = 4096, h = 1024, 128 bands
    data, file_sr = sf.read(str(path))
    assert data.ndim == 2 and file_sr == 44100
    y = librosa.resample(data[:, 0], orig_sr=file_sr, target_sr=22050, res_type="kaiser_best")
    frames = int(3.99 * 22050) // 1024  # librosa.time_to_frames(sequence_time=3.99)
    y = fix_length(y, frames * 1024 + 4096 // 2)
    stft = librosa.stft(y, n_fft=4096, hop_length=1024, win_length=4096, center=False)
    mel = librosa.filters.mel(sr=22050, n_fft=4096, n_mels=128, htk=True) @ np.abs(stft) ** 2
    expected = librosa.power_to_db(mel).T
    ours = compute_features(path, params)
    assert ours.shape == expected.shape == (84, 128)
    np.testing.assert_allclose(ours, expected, atol=0.05)  # float32 vs float64 audio
    # The paper-literal set (centred STFT, channel mean, soxr) is measurably another input.
    assert np.abs(compute_features(path, load_feature_params("urbansound8k", "mel_paper")) - ours).max() > 1.0


def test_optional_feature_keys_are_checked(tmp_path):
    from audiodata.errors import ParameterError

    base = dict(load_feature_params("speech_commands", "mel"))
    for key, bad in (("center", "no"), ("mono", "left"), ("res_type", "sinc"), ("n_samples", 0)):
        path = tmp_path / f"{key}.yaml"
        path.write_text(yaml.safe_dump({"mel": {**base, key: bad}}))
        with pytest.raises(ParameterError, match=key):
            load_feature_params(path, "mel")
