"""Audio loading on real clips of every format in shared/data, and every kind of bad file."""
import wave

import numpy as np
import pytest
import soundfile as sf

from audiodata import AudioFileError, load_audio, write_audio
from audiodata.features import compute_features, load_feature_params
from tests.audio_faults import silence_flac, traced_peak

US8K = "UrbanSound8K/audio"


def test_stereo_pcm16_is_mixed_down_to_the_channel_mean(shared_data):
    path = shared_data / US8K / "fold10" / "100648-1-0-0.wav"
    raw, sr = sf.read(str(path), dtype="float32")
    y, out_sr = load_audio(path)
    assert out_sr == sr == 44100
    np.testing.assert_allclose(y, raw.mean(axis=1), atol=1e-7)
    stereo, _ = load_audio(path, mono=False)
    assert stereo.shape == (2, len(raw))


def test_8bit_unsigned_wav_decodes_to_centred_floats(shared_data):
    path = shared_data / US8K / "fold1" / "40722-8-0-7.wav"
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 1
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype=np.uint8)
    y, sr = load_audio(path)
    assert sr == 22050
    np.testing.assert_allclose(y, (raw.astype(np.float32) - 128) / 128, atol=1e-6)


def test_float32_wav_and_resampling_to_the_feature_rate(shared_data):
    path = next((shared_data / US8K).rglob("176787-5-0-0.wav"))
    assert sf.info(str(path)).subtype == "FLOAT"
    y22, sr22 = load_audio(path)
    y44, sr44 = load_audio(path, sr=44100)
    assert (sr22, sr44) == (22050, 44100)
    assert abs(len(y44) - 2 * len(y22)) <= 1
    # Resampling keeps the signal: energy per second is preserved within 2 %.
    assert np.mean(y44 ** 2) == pytest.approx(np.mean(y22 ** 2), rel=0.02)


def test_resampling_keeps_a_tone_at_its_frequency(tmp_path):
    sr, f0 = 8000, 440.0
    t = np.arange(sr) / sr
    write_audio(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * f0 * t), sr, subtype="FLOAT")
    y, out_sr = load_audio(tmp_path / "tone.wav", sr=22050)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.fft.rfftfreq(len(y), 1 / out_sr)[spectrum.argmax()] == pytest.approx(f0, abs=1.5)


def test_flac_and_ogg_read_as_the_same_signal(shared_data, tmp_path):
    src = shared_data / "fsdd/recordings/3_theo_7.wav"
    ref, sr = sf.read(str(src), dtype="float32")
    sf.write(str(tmp_path / "c.flac"), ref, sr)
    sf.write(str(tmp_path / "c.ogg"), ref, sr, format="OGG", subtype="VORBIS")
    np.testing.assert_allclose(load_audio(tmp_path / "c.flac")[0], ref, atol=1e-6)
    ogg = load_audio(tmp_path / "c.ogg")[0]
    assert len(ogg) == len(ref) and np.corrcoef(ogg, ref)[0, 1] > 0.95  # lossy codec


def test_duration_pads_and_cuts(shared_data):
    path = shared_data / "fsdd/recordings/0_george_0.wav"
    y, sr = load_audio(path)
    padded, _ = load_audio(path, duration=3.0)
    assert len(padded) == 3 * sr and np.array_equal(padded[:len(y)], y) and not padded[len(y):].any()
    cut, _ = load_audio(path, duration=0.1)
    np.testing.assert_array_equal(cut, y[:800])


@pytest.mark.parametrize("case", ["empty", "truncated_header", "not_audio", "missing"])
def test_unusable_files_raise_one_error_naming_the_file(case, shared_data, tmp_path):
    path = tmp_path / f"{case}.wav"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated_header":
        path.write_bytes((shared_data / "fsdd/recordings/0_george_0.wav").read_bytes()[:30])
    elif case == "not_audio":
        path.write_text("slice_file_name,fsID\nthis is a CSV file, not audio\n")
    with pytest.raises(AudioFileError) as info:
        load_audio(path)
    assert str(path) in str(info.value) and info.value.path == str(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_samples_are_rejected(bad, shared_data, tmp_path):
    y, sr = sf.read(str(shared_data / "fsdd/recordings/5_lucas_9.wav"), dtype="float32")
    y[100] = bad
    path = tmp_path / "nan.wav"
    sf.write(str(path), y, sr, subtype="FLOAT")
    with pytest.raises(AudioFileError, match="NaN or Inf") as info:
        compute_features(path, load_feature_params("fsdd", "mel"))
    assert str(path) in str(info.value)


def test_silent_clip_gives_finite_constant_features(tmp_path):
    path = write_audio(tmp_path / "silence.wav", np.zeros(8000), 8000)
    feats = compute_features(path, load_feature_params("fsdd", "mel"))
    assert feats.shape == (64, 64) and np.isfinite(feats).all()
    assert feats.max() == feats.min() == pytest.approx(-100.0)  # power_to_db floor, amin=1e-10


def test_clip_shorter_than_one_window_is_padded(shared_data, tmp_path):
    y, sr = sf.read(str(shared_data / "fsdd/recordings/7_nicolas_3.wav"), dtype="float32")
    path = tmp_path / "short.wav"
    sf.write(str(path), y[2000:2100], sr)  # 100 samples < n_fft = 512
    params = load_feature_params("fsdd", "mel")
    feats = compute_features(path, params)
    assert feats.shape == (64, 64) and np.isfinite(feats).all()
    assert feats[:3].max() > feats[-1].max()  # the real samples are louder than the padding
    logmag = compute_features(path, load_feature_params("fsdd", "logmag"))
    assert np.isfinite(logmag).all() and logmag[0].max() > 0


def test_write_audio_refuses_nan(tmp_path):
    from audiodata import ParameterError

    with pytest.raises(ParameterError, match="NaN"):
        write_audio(tmp_path / "x.wav", np.array([0.0, np.nan]), 8000)
    assert not (tmp_path / "x.wav").exists()


# ----------------------------------------------------------------------------- header first (issue 12)
def test_audio_info_reads_the_header_only(tmp_path, shared_data):
    from audiodata.io import audio_info

    bomb = silence_flac(tmp_path / "hour.flac", 3600)
    assert bomb.stat().st_size < 1_000_000  # 1 h of 44.1 kHz audio: 635 MB once decoded to float32
    peak, info = traced_peak(catch=True, function=lambda: audio_info(bomb))
    assert (info.frames, info.samplerate, info.channels, info.seconds) == (3600 * 44100, 44100, 1, 3600.0)
    assert peak < 1_000_000 and not info.truncated
    clip = audio_info(shared_data / US8K / "fold10" / "100648-1-0-0.wav")
    assert (clip.samplerate, clip.channels, clip.header_frames) == (44100, 2, clip.frames)
    unknown = audio_info(silence_flac(tmp_path / "stream.flac", 30, unknown_length=True))
    assert unknown.frames is None and unknown.seconds is None
    not_audio = tmp_path / "a.wav"
    not_audio.write_text("not audio at all\n" * 10)
    with pytest.raises(AudioFileError, match="not audio") as error:
        audio_info(not_audio)
    assert error.value.path == str(not_audio)


@pytest.mark.parametrize("unknown_length", [False, True])
def test_max_duration_refuses_before_decoding(tmp_path, unknown_length):
    """A 1-hour FLAC of silence is refused by max_duration without decoding it (it would take 635 MB)."""
    from audiodata.io import AudioTooLongError

    bomb = silence_flac(tmp_path / "hour.flac", 3600 if not unknown_length else 600, unknown_length=unknown_length)
    peak, error = traced_peak(catch=True, function=lambda: load_audio(bomb, sr=22050, max_duration=20.0))
    assert isinstance(error, AudioTooLongError) and isinstance(error, AudioFileError), error
    assert error.path == str(bomb) and ("over the limit of 20 s" in str(error) or "more than 20 s" in str(error))
    if not unknown_length:
        assert "3600.0 s according to its header" in str(error) and error.seconds == 3600.0
    assert peak < 20 * 2**20, peak  # the decoded file would be 635 MB (106 MB for 10 min)
    # Within the limit, the same loader decodes as before.
    short = silence_flac(tmp_path / "short.flac", 2, unknown_length=unknown_length)
    y, sr = load_audio(short, max_duration=20.0)
    assert sr == 44100 and y.shape == (88200,) and not y.any()
    y, sr = load_audio(short, sr=22050, offset=1.5, duration=1.0, max_duration=20.0)
    assert sr == 22050 and y.shape == (22050,) and not y.any()


def test_duration_decodes_only_the_window(tmp_path, shared_data):
    bomb = silence_flac(tmp_path / "hour.flac", 3600)
    peak, (y, sr) = traced_peak(catch=True, function=lambda: load_audio(bomb, sr=22050, duration=5.0))
    assert sr == 22050 and y.shape == (5 * 22050,) and peak < 20 * 2**20, peak  # not 635 MB
    # The window equals cutting the whole decoded (and resampled) file, bit for bit.
    path = shared_data / "ESC-50/audio/1-100032-A-0.flac"
    for rate, res_type in ((22050, "soxr_hq"), (16000, "kaiser_best"), (None, "soxr_hq")):
        whole, sr = load_audio(path, sr=rate, res_type=res_type)
        window, sr2 = load_audio(path, sr=rate, res_type=res_type, duration=2.0)
        assert sr == sr2 and np.array_equal(window, whole[:2 * sr])
    fsdd = shared_data / "fsdd/recordings/0_george_1.wav"
    whole, _ = load_audio(fsdd)
    part, _ = load_audio(fsdd, offset=0.25, duration=0.1)
    np.testing.assert_array_equal(part, whole[2000:2800])
    with pytest.raises(AudioFileError, match="nothing to read from offset 9"):
        load_audio(fsdd, offset=9.0)
    from audiodata import ParameterError

    with pytest.raises(ParameterError, match="offset"):
        load_audio(fsdd, offset=-1.0)


def test_truncated_wav_warns_naming_the_file_and_both_lengths(shared_data, tmp_path):
    """A WAV cut to its first 1000 of 4812 bytes: libsndfile reads 478 of the 2384 frames its header announces."""
    from audiodata.io import AudioFileWarning, audio_info

    source = shared_data / "fsdd/recordings/0_george_0.wav"
    data = source.read_bytes()
    assert len(data) == 4812
    path = tmp_path / "cut.wav"
    path.write_bytes(data[:1000])
    info = audio_info(path)
    assert (info.frames, info.header_frames, info.truncated) == (478, 2384, True)
    with pytest.warns(AudioFileWarning) as caught:
        y, sr = load_audio(path)
    message = str(caught[0].message)
    assert str(path) in message and "2384" in message and "478" in message and caught[0].message.path == str(path)
    whole, _ = load_audio(source)
    np.testing.assert_array_equal(y, whole[:478])  # what is there is returned
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(source)  # an intact file does not warn
        assert not audio_info(source).truncated
