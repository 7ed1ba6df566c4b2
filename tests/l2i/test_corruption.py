"""Tests of l2i.corruption: white noise at a given SNR and mixtures of two classes (L2I, Sec. V-B)."""
import numpy as np
import pytest

from audiodata.errors import ParameterError
from audiodata.io import load_audio
from l2i.corruption import add_white_noise, energy, mix, mixing_partner, snr_db


@pytest.fixture(scope="module")
def esc10_pair(shared_data):
    """Two real ESC-10 clips of different classes (dog, rooster), 44.1 kHz, 5 s."""
    audio = shared_data / "ESC-50" / "audio"
    dog, _ = load_audio(audio / "1-100032-A-0.flac", sr=44100)
    rooster, _ = load_audio(audio / "1-26806-A-1.flac", sr=44100)
    return dog, rooster


def test_energy_and_snr_match_numpy(rng):
    s, n = rng.standard_normal(1000), 0.1 * rng.standard_normal(1000)
    assert energy(s) == pytest.approx(np.sum(s ** 2), rel=1e-12)
    assert snr_db(s, n) == pytest.approx(10 * np.log10(np.sum(s ** 2) / np.sum(n ** 2)), rel=1e-12)


@pytest.mark.parametrize("snr", [0.0, 10.0, -5.0])
def test_white_noise_reaches_the_target_snr(esc10_pair, snr):
    y = esc10_pair[0]
    noisy, noise = add_white_noise(y, snr=snr, seed=0, return_noise=True)
    assert noisy.dtype == np.float32 and noisy.shape == y.shape
    measured = 10 * np.log10(np.sum(y.astype(np.float64) ** 2) / np.sum((noisy.astype(np.float64) - y) ** 2))
    assert abs(measured - snr) < 0.1
    assert abs(snr_db(y, noise) - snr) < 1e-4
    # White: zero mean, flat spectrum (each quarter of the band holds about a quarter of the energy).
    power = np.abs(np.fft.rfft(noise.astype(np.float64))) ** 2
    quarters = np.array([q.sum() for q in np.array_split(power[1:], 4)]) / power[1:].sum()
    np.testing.assert_allclose(quarters, 0.25, atol=0.01)
    assert abs(noise.mean()) < 4 * noise.std() / np.sqrt(noise.size)


def test_white_noise_is_seeded(esc10_pair):
    y = esc10_pair[0]
    np.testing.assert_array_equal(add_white_noise(y, seed=3), add_white_noise(y, seed=3))
    assert not np.array_equal(add_white_noise(y, seed=3), add_white_noise(y, seed=4))
    with pytest.raises(ParameterError, match="silent"):
        add_white_noise(np.zeros(100, dtype=np.float32))


@pytest.mark.parametrize("ratio", [0.0, 6.0])
def test_mix_energy_relation_on_two_classes(esc10_pair, ratio):
    dog, rooster = esc10_pair
    mixture, interference = mix(dog, rooster, ratio=ratio, return_interference=True)
    d, i = dog.astype(np.float64), interference.astype(np.float64)
    # The interference is the rooster clip, scaled ...
    gain = i @ rooster / (rooster.astype(np.float64) @ rooster)
    np.testing.assert_allclose(i, gain * rooster, rtol=1e-5, atol=1e-7)
    # ... so that energy(dog) / energy(interference) is the ratio asked for (0 dB: equal energy) ...
    assert 10 * np.log10(np.sum(d ** 2) / np.sum(i ** 2)) == pytest.approx(ratio, abs=1e-4)
    # ... and the mixture is their sum: energy(m) = energy(d) + energy(i) + 2 <d, i>.
    np.testing.assert_allclose(mixture, d + i, atol=1e-6)
    m = mixture.astype(np.float64)
    assert np.sum(m ** 2) == pytest.approx(np.sum(d ** 2) + np.sum(i ** 2) + 2 * d @ i, rel=1e-5)


def test_mix_pads_or_cuts_the_other_clip(esc10_pair):
    dog, rooster = esc10_pair
    dog = dog[np.argmax(np.abs(dog)):][:3000]  # a loud stretch (the clip starts with silence)
    rooster = rooster[np.argmax(np.abs(rooster)):]
    _, interference = mix(dog, rooster[:1000], return_interference=True)
    assert interference.shape == (3000,)
    np.testing.assert_array_equal(interference[1000:], 0)
    assert energy(interference) == pytest.approx(energy(dog), rel=1e-5)
    _, interference = mix(dog[:500], rooster, return_interference=True)
    assert interference.shape == (500,)
    with pytest.raises(ParameterError, match="energy"):
        mix(dog[:500], np.zeros(500))


def test_mixing_partner_has_another_class():
    labels = np.array(["dog", "dog", "rooster", "rain", "dog"])
    partners = {mixing_partner(labels, 0, seed=s) for s in range(30)}
    assert partners == {2, 3}
    assert mixing_partner(labels, 0, seed=5) == mixing_partner(labels, 0, seed=5)
    with pytest.raises(ParameterError, match="other than"):
        mixing_partner(["dog", "dog"], 1)
