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


# ---------------------------------------------------------------- peak normalisation (L2I authors' loader)
def test_peak_normalize_modes():
    from audiodata.features.extract import peak_normalize

    y = np.array([0.1, -0.4, 0.2, 0.0], dtype=np.float32)
    np.testing.assert_allclose(peak_normalize(y, True), y / 0.4)
    np.testing.assert_allclose(peak_normalize(y, "abs"), y / 0.4)
    np.testing.assert_allclose(peak_normalize(y, "max"), y / 0.2)  # the authors' x / x.max()
    assert peak_normalize(y, "max").dtype == np.float32
    for off in (False, None):
        assert peak_normalize(y, off) is y
    np.testing.assert_allclose(peak_normalize(-y * (y < 0), "max"), -y * (y < 0) / 0.4)  # max <= 0: |y| peak
    silent = np.zeros(5, np.float32)
    np.testing.assert_array_equal(peak_normalize(silent, "max"), silent)
    with pytest.raises(ValueError, match="peak_normalize"):
        peak_normalize(y, "rms")


def test_peak_normalize_key_is_checked(tmp_path):
    base = dict(load_feature_params("esc50", "logmag"))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"logmag": {**base, "peak_normalize": "rms"}}))
    with pytest.raises(ParameterError, match="peak_normalize"):
        load_feature_params(path, "logmag")


def test_l2i_feature_sets_are_peak_normalised_and_apnet_sets_are_not():
    # The authors divide the waveform by its max before the STFT that gives both X_ls (NMF) and X_lgmel (f).
    for dataset in ("esc50", "sonyc_ust", "openmic"):
        for name in ("mel", "logmag"):
            assert load_feature_params(dataset, name)["peak_normalize"] == "max", (dataset, name)
    for name in ("mel_apnet", "mel_sb_cnn", "mel_att_crnn"):
        assert not load_feature_params("esc50", name).get("peak_normalize")
    assert not load_feature_params("urbansound8k", "mel").get("peak_normalize")


def test_peak_normalised_features_do_not_depend_on_the_level(shared_data, tmp_path):
    from audiodata.features.extract import load_signal
    from l2i.pipeline import load_clip

    y, sr = sf.read(str(shared_data / ESC_CLIP), dtype="float32")
    for gain in (1.0, 0.05):
        sf.write(str(tmp_path / f"g{gain}.wav"), gain * y, sr, subtype="FLOAT")
    on = load_feature_params("esc50", "logmag")
    off = {**on, "peak_normalize": False}
    loud, quiet = (compute_features(tmp_path / f"g{g}.wav", on) for g in (1.0, 0.05))
    np.testing.assert_allclose(loud, quiet, atol=1e-4)
    raw_loud, raw_quiet = (compute_features(tmp_path / f"g{g}.wav", off) for g in (1.0, 0.05))
    assert np.abs(raw_loud - raw_quiet).max() > 0.1  # log(1 + |X|) depends on the level without it
    clip = load_signal(tmp_path / "g0.05.wav", on)
    assert clip.max() == pytest.approx(1.0)
    np.testing.assert_allclose(compute_features(tmp_path / "g0.05.wav", on),
                               log_magnitude_spectrogram(clip, n_fft=1024, hop_length=512), atol=1e-5)
    # The L2I pipeline's own loading (interpretations, evaluation) gives the same clip.
    piped, _ = load_clip(tmp_path / "g0.05.wav", 44100, 5.0, peak_normalize="max")
    np.testing.assert_allclose(piped, clip, atol=1e-6)
    unnormalised, _ = load_clip(tmp_path / "g0.05.wav", 44100, 5.0)
    assert np.abs(unnormalised).max() < 0.1
