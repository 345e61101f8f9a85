"""Tests for modalfuse.modalities.audio, on real audio files written with soundfile."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from modalfuse._errors import DecodeError
from modalfuse.modalities import (
    AUDIO_EXTENSIONS,
    audio_quality,
    augment_spectrograms,
    bandpass,
    compress_dynamic_range,
    fix_length,
    load_audio,
    log_mel,
    mfcc,
    mfcc_stats,
    mu_law,
    preemphasis,
    resample,
    trim_silence,
)

SR = 16000


def sine(freq: float, seconds: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(wave: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(np.fft.rfftfreq(wave.size, 1.0 / sr)[np.argmax(spec)])


def rms_db(wave: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(wave.astype(np.float64) ** 2)) + 1e-12))


def test_extensions() -> None:
    assert {".wav", ".flac", ".ogg", ".mp3"} <= AUDIO_EXTENSIONS


# ------------------------------------------------------------------------------ load_audio
def test_load_wav_mono_and_stereo(tmp_path) -> None:
    left, right = sine(440, 0.5), sine(880, 0.5, amp=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="PCM_16")
    wave, sr = load_audio(path)
    assert sr == SR
    assert wave.shape == (SR // 2,)
    assert wave.dtype == np.float32
    np.testing.assert_allclose(wave, (left + right) / 2, atol=1e-4)
    multi, _ = load_audio(path, mono=False)
    assert multi.shape == (2, SR // 2)
    np.testing.assert_allclose(multi[1], right, atol=1e-4)


def test_load_with_resampling(tmp_path) -> None:
    path = tmp_path / "a.flac"
    sf.write(path, sine(1000, 1.0, sr=44100), 44100)
    wave, sr = load_audio(path, sample_rate=SR)
    assert sr == SR
    assert wave.shape == (SR,)
    assert peak_hz(wave, sr) == pytest.approx(1000, abs=2)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(DecodeError, match="file not found"):
        load_audio(tmp_path / "absent.wav")


def test_zero_length_wav(tmp_path) -> None:
    path = tmp_path / "zero.wav"
    path.write_bytes(b"")
    with pytest.raises(DecodeError, match=r"empty file \(0 bytes\)") as info:
        load_audio(path)
    assert info.value.path == str(path)


def test_header_only_wav(tmp_path) -> None:
    path = tmp_path / "header.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR, subtype="PCM_16")
    assert 0 < path.stat().st_size <= 100
    with pytest.raises(DecodeError, match="no audio samples"):
        load_audio(path)


def test_truncated_wav(tmp_path) -> None:
    path = tmp_path / "cut.wav"
    sf.write(path, sine(440, 1.0), SR, subtype="PCM_16")
    data = path.read_bytes()
    half = len(data) // 2
    path.write_bytes(data[:half])
    with pytest.raises(DecodeError, match="truncated WAV") as info:
        load_audio(path)
    assert f"header declares {SR * 2} bytes of audio, file holds {half - 44}" in info.value.reason


def test_garbage_wav(tmp_path) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(b"hello, this is not audio at all" * 10)
    with pytest.raises(DecodeError, match="cannot decode audio"):
        load_audio(path)


def test_non_finite_samples(tmp_path) -> None:
    wave = sine(440, 0.1)
    wave[10] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, wave, SR, subtype="FLOAT")
    with pytest.raises(DecodeError, match="non-finite"):
        load_audio(path)


# ------------------------------------------------------------------------------ signal helpers
@pytest.mark.parametrize("orig, target", [(16000, 8000), (8000, 22050), (44100, 16000)])
def test_resample_keeps_frequency(orig: int, target: int) -> None:
    wave = sine(440, 1.0, sr=orig)
    out = resample(wave, orig, target)
    assert out.shape == (target,)
    assert out.dtype == np.float32
    assert peak_hz(out, target) == pytest.approx(440, abs=1.5)
    assert np.sqrt(np.mean(out[100:-100] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    stereo = resample(np.stack([wave, wave]), orig, target)
    assert stereo.shape == (2, target)


def test_bandpass_attenuates_out_of_band() -> None:
    low, mid, high = sine(60), sine(1000), sine(6000)
    band = dict(low_hz=300, high_hz=3000)
    assert rms_db(low) - rms_db(bandpass(low, SR, **band)) > 20
    assert rms_db(high) - rms_db(bandpass(high, SR, **band)) > 20
    assert abs(rms_db(mid) - rms_db(bandpass(mid, SR, **band))) < 1
    assert rms_db(low) - rms_db(bandpass(low, SR, low_hz=300)) > 20  # high-pass
    assert abs(rms_db(high) - rms_db(bandpass(high, SR, low_hz=300))) < 1
    assert rms_db(high) - rms_db(bandpass(high, SR, high_hz=3000)) > 20  # low-pass
    clamped = bandpass(mid, SR, low_hz=300, high_hz=SR)  # high at/above Nyquist is clamped
    assert abs(rms_db(mid) - rms_db(clamped)) < 1
    np.testing.assert_array_equal(bandpass(mid, SR), mid)
    assert bandpass(np.ones(5, dtype=np.float32), SR, low_hz=100).shape == (5,)
    with pytest.raises(ValueError, match="below"):
        bandpass(mid, SR, low_hz=3000, high_hz=300)


def test_preemphasis_exact() -> None:
    out = preemphasis(np.array([1.0, 2.0, 4.0], dtype=np.float32), coef=0.5)
    np.testing.assert_allclose(out, [1.0, 1.5, 3.0])


def test_compress_dynamic_range() -> None:
    loud, quiet = sine(440, 0.5, amp=0.9), sine(440, 0.5, amp=0.01)
    squeezed = compress_dynamic_range(loud, threshold_db=-20, ratio=4)
    # loud sine at about -4 dBFS RMS: 16 dB over threshold -> about 12 dB of gain reduction
    assert rms_db(loud) - rms_db(squeezed) == pytest.approx(0.75 * (rms_db(loud) + 20), abs=1.0)
    np.testing.assert_allclose(compress_dynamic_range(quiet), quiet)  # -43 dBFS: untouched
    np.testing.assert_allclose(compress_dynamic_range(loud, ratio=1.0), loud)
    with pytest.raises(ValueError):
        compress_dynamic_range(loud, ratio=0.5)


def test_mu_law() -> None:
    out = mu_law(np.array([-2.0, -1.0, 0.0, 0.01, 1.0]))
    assert out[0] == pytest.approx(-1.0) and out[1] == pytest.approx(-1.0)
    assert out[2] == 0.0 and out[4] == pytest.approx(1.0)
    assert out[3] == pytest.approx(np.log1p(2.55) / np.log1p(255), rel=1e-6)


def test_fix_length() -> None:
    x = np.arange(1, 7, dtype=np.float32)  # 1..6
    np.testing.assert_array_equal(fix_length(x, 4), [2, 3, 4, 5])
    np.testing.assert_array_equal(fix_length(x, 9), [0, 1, 2, 3, 4, 5, 6, 0, 0])
    np.testing.assert_array_equal(fix_length(x, 8), [0, 1, 2, 3, 4, 5, 6, 0])
    np.testing.assert_array_equal(fix_length(x, 6), x)
    np.testing.assert_array_equal(fix_length(x, 3, mode="start"), [1, 2, 3])
    np.testing.assert_array_equal(fix_length(x, 3, mode="end"), [4, 5, 6])
    np.testing.assert_array_equal(fix_length(x, 8, mode="end"), [0, 0, 1, 2, 3, 4, 5, 6])
    assert fix_length(np.ones((2, 5)), 7).shape == (2, 7)


def test_trim_silence() -> None:
    tone = sine(440, 0.5)
    padded = np.concatenate([np.zeros(SR), tone, np.zeros(SR)]).astype(np.float32)
    trimmed = trim_silence(padded, top_db=40)
    assert tone.size <= trimmed.size < tone.size + 0.2 * SR


# ------------------------------------------------------------------------------ features
def test_log_mel_and_mfcc_shapes() -> None:
    wave = sine(440, 1.0)
    spec = log_mel(wave, SR)
    assert spec.shape == (40, 1 + SR // 160)
    assert spec.dtype == np.float32
    assert spec.max() - spec.min() <= 80.0 + 1e-3
    peak_band = int(np.argmax(spec.mean(axis=1)))
    assert 0 < peak_band < 20  # 440 Hz sits in the lower half of the mel bands
    assert log_mel(wave, SR, n_mels=64, hop_length=256).shape == (64, 1 + SR // 256)
    assert log_mel(sine(440, 1.0, sr=8000), 8000).shape == (40, 1 + 8000 // 80)
    coeffs = mfcc(wave, SR, n_mfcc=13)
    assert coeffs.shape == (13, 1 + SR // 160)
    assert np.all(np.isfinite(coeffs))


def test_mfcc_stats_short_clips() -> None:
    stats = mfcc_stats(sine(440, 0.1), SR)
    assert stats.shape == (80,)
    assert stats.dtype == np.float32
    assert np.all(np.isfinite(stats))
    for seconds in (0.005, 0.02):  # 1 and 3 frames
        tiny = mfcc_stats(sine(440, seconds), SR, n_mfcc=13)
        assert tiny.shape == (52,)
        assert np.all(np.isfinite(tiny))
    # a different sound gives different statistics
    assert not np.allclose(stats, mfcc_stats(sine(3000, 0.1), SR))


def test_augment_spectrograms_deterministic() -> None:
    specs = torch.from_numpy(np.stack([log_mel(sine(f, 0.3), SR) for f in (300, 600, 900)]))[:, None]
    a = augment_spectrograms(specs, generator=torch.Generator().manual_seed(0))
    b = augment_spectrograms(specs, generator=torch.Generator().manual_seed(0))
    c = augment_spectrograms(specs, generator=torch.Generator().manual_seed(1))
    assert a.shape == specs.shape
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_augment_spectrograms_components() -> None:
    x = torch.arange(2 * 1 * 4 * 10, dtype=torch.float32).reshape(2, 1, 4, 10)
    gen = torch.Generator().manual_seed(0)
    gain_only = augment_spectrograms(x, generator=gen, max_shift=0, freq_masks=0, time_masks=0, gain_db=6.0)
    offset = (gain_only - x).reshape(2, -1)
    assert torch.allclose(offset, offset[:, :1].expand_as(offset))  # one gain per sample
    assert torch.all(offset.abs() <= 6.0)
    shifted = augment_spectrograms(x, generator=gen, max_shift=0.5, freq_masks=0, time_masks=0, gain_db=0)
    for i in range(2):  # a circular shift keeps every frame
        rolls = [torch.equal(shifted[i], x[i].roll(k, dims=-1)) for k in range(10)]
        assert any(rolls)
    masked = augment_spectrograms(
        x,
        generator=gen,
        max_shift=0,
        freq_masks=2,
        time_masks=2,
        max_freq_width=0.5,
        max_time_width=0.5,
        gain_db=0,
    )
    changed = masked != x
    means = x.mean(dim=(1, 2, 3))
    for i in range(2):
        assert torch.allclose(masked[i][changed[i]], means[i].expand(int(changed[i].sum())))


def test_audio_quality_orders_signals() -> None:
    rng = np.random.default_rng(0)
    clean = audio_quality(sine(440), SR)
    noise = audio_quality(0.1 * rng.standard_normal(SR).astype(np.float32), SR)
    clipped = audio_quality(np.clip(sine(440, amp=3.0), -1, 1), SR)
    silent = audio_quality(np.zeros(SR, dtype=np.float32), SR)
    speechlike = np.concatenate([sine(300, 0.3), np.zeros(int(0.2 * SR), dtype=np.float32)] * 2)
    speechlike = speechlike + 0.001 * rng.standard_normal(speechlike.size).astype(np.float32)
    assert clean > 0.9
    assert audio_quality(speechlike, SR) > 0.9
    assert noise < 0.2
    assert clipped < 0.1
    assert silent == 0.0
    assert 0.0 <= audio_quality(sine(440, 0.005), SR) <= 1.0


# ----------------------------------------------------------------------------- budgets and lying headers
def test_giant_header_is_refused_without_allocating(tmp_path) -> None:
    """A WAV whose header claims 2 GB of samples, holding 0.1 s: refused from the header."""
    import resource

    from damaged_corpus.files import wav_giant_header

    path = wav_giant_header(tmp_path / "giant.wav")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DecodeError, match=r"truncated WAV: header declares 2147483632 bytes"):
        load_audio(path)
    with pytest.raises(DecodeError, match="truncated WAV"):
        load_audio(path.read_bytes())
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 50


def test_streamed_wav_decodes_what_is_there(tmp_path) -> None:
    from damaged_corpus.files import wav_streamed_size

    wave, sr = load_audio(wav_streamed_size(tmp_path / "stream.wav"))
    assert sr == 8000 and wave.shape == (2000,)


def test_sample_budget(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modalfuse.modalities import audio

    path = tmp_path / "long.wav"
    sf.write(path, np.zeros((80_000, 2), np.float32), 8000)  # 10 s stereo: 160,000 samples
    assert load_audio(path)[0].shape == (80_000,)
    with pytest.raises(
        DecodeError, match=r"audio too long: more than 100,000 samples \(2 channel\(s\) at 8000 Hz"
    ):
        load_audio(path, max_samples=100_000)
    monkeypatch.setenv("MODALFUSE_MAX_AUDIO_SAMPLES", "159999")
    assert audio.sample_budget() == 159_999
    with pytest.raises(DecodeError, match="more than 159,999 samples"):
        load_audio(path)


def test_implausible_rates_and_magnitudes(tmp_path) -> None:
    from damaged_corpus.files import float_wav, wav_rate

    with pytest.raises(DecodeError, match=r"implausible sample rate 1 Hz"):
        load_audio(wav_rate(tmp_path / "slow.wav", 1))
    with pytest.raises(DecodeError, match=r"samples far outside \[-1, 1\] \(peak 1e\+30"):
        load_audio(float_wav(tmp_path / "huge.wav", np.full(100, 1e30)))
    # the 16-bit integer scale some tools write float files in is still read
    wave, _ = load_audio(float_wav(tmp_path / "int-scale.wav", np.full(100, 30000.0)))
    assert wave.max() == 30000.0


def test_bytes_source(tmp_path) -> None:
    path = tmp_path / "a.flac"
    sf.write(path, 0.5 * np.sin(np.arange(4000) / 5), 16000)
    wave, sr = load_audio(path.read_bytes())
    assert sr == 16000 and wave.shape == (4000,)
    np.testing.assert_allclose(wave, load_audio(path)[0])
    with pytest.raises(DecodeError, match="cannot decode audio"):
        load_audio(b"RIFF\x00\x00 not really a wave file at all")
