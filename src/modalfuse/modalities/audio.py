"""Audio modality: decoding, resampling, filtering, features, augmentation and quality.

Conventions
-----------
* A mono waveform is a 1-D ``float32`` array of samples, nominally in ``[-1, 1]``; multichannel
  audio is ``(channels, samples)`` (the librosa convention). Signal helpers work along the last
  axis.
* Spectrogram features are ``(n_features, frames)``; batches for augmentation are
  ``(N, 1, F, T)`` tensors on a log (dB) scale.

``librosa`` and ``torch`` are imported lazily inside the functions that need them.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

import numpy as np
import soundfile as sf
import soxr
from scipy import signal
from scipy.ndimage import uniform_filter1d

from modalfuse._errors import DecodeError

if TYPE_CHECKING:
    import torch

__all__ = [
    "AUDIO_EXTENSIONS",
    "AUDIO_QUALITY_SCORES",
    "MAX_AUDIO_SAMPLES",
    "audio_quality",
    "audio_quality_scores",
    "augment_spectrograms",
    "bandpass",
    "compress_dynamic_range",
    "fix_length",
    "load_audio",
    "log_mel",
    "mfcc",
    "mfcc_stats",
    "mu_law",
    "preemphasis",
    "resample",
    "sample_budget",
    "trim_silence",
]

AUDIO_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"})


#: Sample budget of :func:`load_audio` (samples of all channels together, counted as they are decoded):
#: 2**27 = 134,217,728, i.e. 512 MiB as float32 (70 minutes of 16 kHz stereo). Files are decoded block by
#: block, so a header that claims a giant length costs nothing and a longer recording is refused when the
#: budget is reached. Change it per call (``max_samples=``), for the process (assign this attribute) or
#: with the environment variable ``MODALFUSE_MAX_AUDIO_SAMPLES``.
MAX_AUDIO_SAMPLES: int = 2**27

#: Sample rates outside this range (Hz) are refused: a file claiming 1 Hz would be resampled into
#: millions of samples per second of "audio".
SAMPLE_RATE_RANGE: tuple[int, int] = (1000, 1_000_000)

#: Decoded samples beyond this magnitude are refused: even the 16-bit integer scale that some tools write
#: float files in stays below it, and larger values overflow the float32 spectrograms.
MAX_SAMPLE_MAGNITUDE: float = 65536.0

_BLOCK_FRAMES = 65536


def sample_budget(max_samples: int | None = None) -> int:
    """The sample budget in force: ``max_samples`` when given, else ``MODALFUSE_MAX_AUDIO_SAMPLES`` from
    the environment, else :data:`MAX_AUDIO_SAMPLES`."""
    if max_samples is not None:
        return int(max_samples)
    env = os.environ.get("MODALFUSE_MAX_AUDIO_SAMPLES", "").strip().replace("_", "")
    if env.isdigit():
        return int(env)
    return int(MAX_AUDIO_SAMPLES)


def _check_wav_truncation(f: BinaryIO, file_size: int, where: str | None) -> None:
    """Raise :class:`DecodeError` when a RIFF/WAVE file is shorter than its data chunk declares.

    libsndfile silently decodes the frames that are present in a cut WAV file; comparing the
    ``data`` chunk size in the header with what the file holds catches it (and a header that claims a
    giant length). Files that are not RIFF/WAVE, streamed WAVs (size ``0xFFFFFFFF``) and files without a
    ``data`` chunk are left to the decoder.
    """
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= file_size:
        f.seek(pos)
        chunk = f.read(8)
        if len(chunk) < 8:
            return
        chunk_id, chunk_size = chunk[:4], int.from_bytes(chunk[4:8], "little")
        if chunk_id == b"data":
            available = file_size - (pos + 8)
            if chunk_size != 0xFFFFFFFF and available < chunk_size:
                raise DecodeError(
                    f"truncated WAV: header declares {chunk_size} bytes of audio, file holds {available}",
                    path=where,
                )
            return
        pos += 8 + chunk_size + (chunk_size & 1)


def _read_blocks(f: sf.SoundFile, budget: int, where: str | None) -> np.ndarray:
    """Every frame of an open file as float32 (frames, channels), block by block within ``budget``."""
    blocks: list[np.ndarray] = []
    total = 0
    while True:
        block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
        if not len(block):
            break
        total += block.size
        if total > budget:
            raise DecodeError(
                f"audio too long: more than {budget:,} samples ({f.channels} channel(s) at {f.samplerate} Hz; "
                f"header declares {f.frames:,} frames), over the sample budget (decoding stopped; raise it with "
                "MODALFUSE_MAX_AUDIO_SAMPLES or modalfuse.modalities.audio.MAX_AUDIO_SAMPLES)",
                path=where,
            )
        blocks.append(block)
    return np.concatenate(blocks) if blocks else np.zeros((0, max(1, f.channels)), np.float32)


def _decode(source: str | BinaryIO, budget: int, where: str | None) -> tuple[np.ndarray, int]:
    """(frames, channels) float32 and the sample rate, checked for rate, length and magnitude."""
    try:
        with sf.SoundFile(source) as f:
            sr = int(f.samplerate)
            lo, hi = SAMPLE_RATE_RANGE
            if not lo <= sr <= hi:
                raise DecodeError(f"implausible sample rate {sr} Hz (expected {lo} to {hi:,} Hz)", path=where)
            data = _read_blocks(f, budget, where)
    except DecodeError:
        raise
    except (RuntimeError, OSError, ValueError, TypeError, MemoryError) as exc:
        raise DecodeError(f"cannot decode audio (truncated or corrupt file): {exc}", path=where) from exc
    if data.shape[0] == 0:
        raise DecodeError("no audio samples", path=where)
    if not np.all(np.isfinite(data)):
        raise DecodeError("non-finite samples (NaN or inf) in audio", path=where)
    peak = float(np.abs(data).max())
    if peak > MAX_SAMPLE_MAGNITUDE:
        raise DecodeError(
            f"samples far outside [-1, 1] (peak {peak:.3g}, over {MAX_SAMPLE_MAGNITUDE:g}): not a usable recording",
            path=where,
        )
    return data, sr


def load_audio(
    path: str | os.PathLike[str] | bytes,
    *,
    sample_rate: int | None = None,
    mono: bool = True,
    max_samples: int | None = None,
) -> tuple[np.ndarray, int]:
    """Decode an audio file with soundfile (libsndfile).

    Parameters
    ----------
    path : str, os.PathLike or bytes
        WAV, FLAC, OGG/Vorbis, MP3, AIFF, ... (whatever the installed libsndfile reads), or the bytes of
        such a file.
    sample_rate : int, optional
        Resample to this rate with soxr (``"HQ"``); ``None`` keeps the file's rate.
    mono : bool, default True
        Mix all channels down to one (their mean).
    max_samples : int, optional
        Sample budget (all channels; default :func:`sample_budget`: :data:`MAX_AUDIO_SAMPLES`); decoding
        stops with :class:`DecodeError` when it is reached, whatever the header claims.

    Returns
    -------
    wave : numpy.ndarray, float32
        Shape ``(samples,)`` when ``mono``, else ``(channels, samples)``.
    sample_rate : int
        The rate of ``wave``.

    Raises
    ------
    DecodeError
        If the file does not exist, is empty (0 bytes), holds no audio samples, is truncated or
        corrupt, is longer than the budget, has an implausible sample rate (see
        :data:`SAMPLE_RATE_RANGE`), or decodes to non-finite or huge samples.
    """
    budget = sample_budget(max_samples)
    if isinstance(path, bytes | bytearray | memoryview):
        raw = bytes(path)
        if not raw:
            raise DecodeError("empty audio bytes (0 bytes)")
        buffer = io.BytesIO(raw)
        _check_wav_truncation(buffer, len(raw), None)
        buffer.seek(0)
        data, sr = _decode(buffer, budget, None)
    else:
        p = Path(os.fspath(path))
        if not p.is_file():
            raise DecodeError("file not found", path=str(p))
        size = p.stat().st_size
        if size == 0:
            raise DecodeError("empty file (0 bytes)", path=str(p))
        with p.open("rb") as f:
            _check_wav_truncation(f, size, str(p))
        data, sr = _decode(str(p), budget, str(p))
    if sample_rate is not None and int(sample_rate) != sr:
        data = soxr.resample(data, sr, int(sample_rate), quality="HQ")
        sr = int(sample_rate)
    wave = data.mean(axis=1) if mono else data.T
    return np.ascontiguousarray(wave, dtype=np.float32), sr


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with soxr's ``"HQ"`` quality.

    Parameters
    ----------
    wave : numpy.ndarray of shape (samples,) or (channels, samples)
    orig_sr, target_sr : int
        Sample rates in Hz.

    Returns
    -------
    numpy.ndarray of shape (samples * target_sr / orig_sr,) or (channels, ...), float32
    """
    x = np.asarray(wave, dtype=np.float32)
    if int(orig_sr) == int(target_sr):
        return x.copy()
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError("sample rates must be positive")
    if x.ndim == 1:
        return soxr.resample(x, int(orig_sr), int(target_sr), quality="HQ").astype(np.float32, copy=False)
    if x.ndim == 2:
        out = soxr.resample(np.ascontiguousarray(x.T), int(orig_sr), int(target_sr), quality="HQ")
        return np.ascontiguousarray(out.T, dtype=np.float32)
    raise ValueError(f"expected a 1-D or (channels, samples) array, got shape {x.shape}")


def preemphasis(wave: np.ndarray, coef: float = 0.97) -> np.ndarray:
    """First-order pre-emphasis ``y[n] = x[n] - coef * x[n-1]`` (``y[0] = x[0]``) along the last axis.

    Parameters
    ----------
    wave : numpy.ndarray of shape (..., samples)
    coef : float, default 0.97

    Returns
    -------
    numpy.ndarray of the same shape, float32
    """
    x = np.asarray(wave, dtype=np.float32)
    y = x.copy()
    if x.shape[-1] > 1:
        y[..., 1:] = x[..., 1:] - np.float32(coef) * x[..., :-1]
    return y


def bandpass(
    wave: np.ndarray,
    sr: int,
    *,
    low_hz: float | None = None,
    high_hz: float | None = None,
    order: int = 4,
) -> np.ndarray:
    """Zero-phase Butterworth filter along the last axis (``sosfiltfilt``).

    ``low_hz`` and ``high_hz`` give a band-pass, ``low_hz`` alone a high-pass and ``high_hz``
    alone a low-pass; with neither the input is returned unchanged (as a copy). ``high_hz`` at or
    above the Nyquist frequency is clamped to 0.99 of it.

    Parameters
    ----------
    wave : numpy.ndarray of shape (..., samples)
    sr : int
        Sample rate in Hz.
    low_hz, high_hz : float, optional
        Cut-off frequencies in Hz.
    order : int, default 4
        Butterworth order (applied twice, forwards and backwards).

    Returns
    -------
    numpy.ndarray of the same shape, float32
    """
    x = np.asarray(wave, dtype=np.float32)
    nyq = sr / 2.0
    if high_hz is not None and high_hz >= nyq:
        high_hz = 0.99 * nyq
    if low_hz is not None and low_hz <= 0:
        low_hz = None
    if low_hz is None and high_hz is None:
        return x.copy()
    if low_hz is not None and high_hz is not None:
        if low_hz >= high_hz:
            raise ValueError(f"low_hz ({low_hz}) must be below high_hz ({high_hz})")
        sos = signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=sr, output="sos")
    elif low_hz is not None:
        if low_hz >= nyq:
            raise ValueError(f"low_hz ({low_hz}) must be below the Nyquist frequency ({nyq})")
        sos = signal.butter(order, low_hz, btype="highpass", fs=sr, output="sos")
    else:
        sos = signal.butter(order, high_hz, btype="lowpass", fs=sr, output="sos")
    n = x.shape[-1]
    if n < 2:
        return x.copy()
    zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    padlen = min(3 * (2 * len(sos) + 1 - zeros), n - 1)
    y = signal.sosfiltfilt(sos, x.astype(np.float64), axis=-1, padlen=padlen)
    return y.astype(np.float32)


def compress_dynamic_range(
    wave: np.ndarray,
    *,
    threshold_db: float = -20.0,
    ratio: float = 4.0,
    knee_db: float = 6.0,
    window: int = 256,
) -> np.ndarray:
    """Soft-knee downward compressor driven by a short RMS envelope.

    The envelope is the RMS over a centred moving window of ``window`` samples; its level
    ``L`` (dBFS) goes through the standard soft-knee gain curve: no change below
    ``threshold_db - knee_db / 2``, a gain of ``(1/ratio - 1) * (L - threshold_db)`` dB above
    ``threshold_db + knee_db / 2`` and a quadratic blend in between. Each sample is multiplied by
    the gain of its envelope (no make-up gain), so loud passages are turned down towards quiet
    ones.

    Parameters
    ----------
    wave : numpy.ndarray of shape (..., samples)
    threshold_db : float, default -20.0
        Level in dBFS where compression starts.
    ratio : float, default 4.0
        Compression ratio (>= 1); 1 leaves the signal unchanged.
    knee_db : float, default 6.0
        Width of the soft knee in dB (0 = hard knee).
    window : int, default 256
        Envelope window in samples (1 = instantaneous, a memoryless soft limiter).

    Returns
    -------
    numpy.ndarray of the same shape, float32
    """
    if ratio < 1:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    x = np.asarray(wave, dtype=np.float32)
    if x.size == 0:
        return x.copy()
    power = uniform_filter1d(x.astype(np.float64) ** 2, size=max(1, int(window)), axis=-1, mode="reflect")
    level = 10.0 * np.log10(np.maximum(power, 1e-12))
    over = level - threshold_db
    slope = 1.0 / ratio - 1.0
    gain_db = np.where(over > 0, slope * over, 0.0)
    if knee_db > 0:
        in_knee = np.abs(over) <= knee_db / 2.0
        gain_db = np.where(in_knee, slope * (over + knee_db / 2.0) ** 2 / (2.0 * knee_db), gain_db)
    return (x * 10.0 ** (gain_db / 20.0)).astype(np.float32)


def mu_law(wave: np.ndarray, mu: int = 255) -> np.ndarray:
    """Mu-law companding ``sign(x) * log(1 + mu |x|) / log(1 + mu)`` (continuous, not quantised).

    Parameters
    ----------
    wave : numpy.ndarray
        Samples; clipped to ``[-1, 1]`` first.
    mu : int, default 255

    Returns
    -------
    numpy.ndarray of the same shape, float32, in ``[-1, 1]``
    """
    x = np.clip(np.asarray(wave, dtype=np.float64), -1.0, 1.0)
    return (np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)).astype(np.float32)


def fix_length(wave: np.ndarray, n: int, *, mode: Literal["center", "start", "end"] = "center") -> np.ndarray:
    """Crop or zero-pad the last axis to exactly ``n`` samples.

    Parameters
    ----------
    wave : numpy.ndarray of shape (..., samples)
    n : int
        Target length.
    mode : {"center", "start", "end"}, default "center"
        ``"center"`` crops the middle / pads both sides evenly (the odd sample goes at the end);
        ``"start"`` keeps the beginning (crops/pads at the end); ``"end"`` keeps the end
        (crops/pads at the start).

    Returns
    -------
    numpy.ndarray of shape (..., n), same dtype
    """
    x = np.asarray(wave)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if mode not in ("center", "start", "end"):
        raise ValueError(f"mode must be 'center', 'start' or 'end', got {mode!r}")
    length = x.shape[-1]
    diff = length - n
    if diff == 0:
        return x.copy()
    if diff > 0:
        start = {"center": diff // 2, "start": 0, "end": diff}[mode]
        return x[..., start : start + n].copy()
    pad = -diff
    before = {"center": pad // 2, "start": 0, "end": pad}[mode]
    widths = [(0, 0)] * (x.ndim - 1) + [(before, pad - before)]
    return np.pad(x, widths)


def trim_silence(wave: np.ndarray, *, top_db: float = 40) -> np.ndarray:
    """Remove leading and trailing silence quieter than ``top_db`` below the peak (librosa).

    Parameters
    ----------
    wave : numpy.ndarray of shape (samples,) or (channels, samples)
    top_db : float, default 40

    Returns
    -------
    numpy.ndarray of shape (..., trimmed_samples), float32
    """
    x = np.asarray(wave, dtype=np.float32)
    if x.shape[-1] == 0:
        return x.copy()
    import librosa

    trimmed, _ = librosa.effects.trim(x, top_db=top_db)
    return np.ascontiguousarray(trimmed, dtype=np.float32)


def _frame_params(sr: int, n_fft: int | None, hop_length: int | None) -> tuple[int, int, int]:
    """Default STFT sizes: ~25 ms window in a power-of-two FFT, ~10 ms hop."""
    win = max(1, round(0.025 * sr))
    if n_fft is None:
        n_fft = 1 << max(0, math.ceil(math.log2(win)))
    else:
        win = int(n_fft)
    if hop_length is None:
        hop_length = max(1, round(0.010 * sr))
    return int(n_fft), int(hop_length), min(win, int(n_fft))


def _as_mono(wave: np.ndarray) -> np.ndarray:
    x = np.asarray(wave, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {x.shape}")
    return x


def log_mel(
    wave: np.ndarray,
    sr: int,
    *,
    n_mels: int = 40,
    n_fft: int | None = None,
    hop_length: int | None = None,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Log-mel spectrogram in dB (``librosa.power_to_db(ref=1.0, top_db=80)``).

    Parameters
    ----------
    wave : numpy.ndarray of shape (samples,)
        Multichannel input ``(channels, samples)`` is averaged to mono.
    sr : int
        Sample rate in Hz.
    n_mels : int, default 40
    n_fft : int, optional
        FFT size; default the power of two at or above 25 ms (512 at 16 kHz), with a 25 ms
        Hann window.
    hop_length : int, optional
        Hop in samples; default 10 ms (160 at 16 kHz).
    fmin, fmax : float
        Mel band limits in Hz; ``fmax`` defaults to ``sr / 2``.

    Returns
    -------
    numpy.ndarray of shape (n_mels, 1 + samples // hop_length), float32
        Clips shorter than one FFT are zero-padded to ``n_fft`` first.
    """
    import librosa

    x = _as_mono(wave)
    n_fft, hop, win = _frame_params(sr, n_fft, hop_length)
    if x.shape[0] < n_fft:
        x = np.pad(x, (0, n_fft - x.shape[0]))
    mel = librosa.feature.melspectrogram(
        y=x,
        sr=sr,
        n_fft=n_fft,
        hop_length=hop,
        win_length=win,
        n_mels=n_mels,
        fmin=fmin,
        fmax=fmax,
        power=2.0,
    )
    return librosa.power_to_db(mel, ref=1.0, top_db=80.0).astype(np.float32)


def mfcc(
    wave: np.ndarray,
    sr: int,
    *,
    n_mfcc: int = 20,
    n_mels: int | None = None,
    n_fft: int | None = None,
    hop_length: int | None = None,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Mel-frequency cepstral coefficients (DCT-II of :func:`log_mel`).

    Parameters
    ----------
    wave : numpy.ndarray of shape (samples,)
    sr : int
    n_mfcc : int, default 20
    n_mels : int, optional
        Mel bands; default ``max(40, n_mfcc)``.
    n_fft, hop_length, fmin, fmax
        As in :func:`log_mel`.

    Returns
    -------
    numpy.ndarray of shape (n_mfcc, frames), float32
    """
    import librosa

    n_mels = max(40, n_mfcc) if n_mels is None else n_mels
    if n_mfcc > n_mels:
        raise ValueError(f"n_mfcc ({n_mfcc}) must not exceed n_mels ({n_mels})")
    s_db = log_mel(wave, sr, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, fmin=fmin, fmax=fmax)
    return librosa.feature.mfcc(S=s_db, n_mfcc=n_mfcc).astype(np.float32)


def _delta(feats: np.ndarray) -> np.ndarray:
    """Time derivative of (F, T) features that works for any number of frames."""
    import librosa

    t = feats.shape[1]
    if t >= 3:
        width = min(9, t if t % 2 == 1 else t - 1)
        return librosa.feature.delta(feats, width=width, axis=-1, mode="interp")
    if t == 2:
        return np.gradient(feats, axis=1)
    return np.zeros_like(feats)


def mfcc_stats(wave: np.ndarray, sr: int, *, n_mfcc: int = 20) -> np.ndarray:
    """Fixed-length clip summary: mean and std over time of MFCCs and their deltas.

    Parameters
    ----------
    wave : numpy.ndarray of shape (samples,)
    sr : int
    n_mfcc : int, default 20

    Returns
    -------
    numpy.ndarray of shape (4 * n_mfcc,), float32
        ``[mean(mfcc), std(mfcc), mean(delta), std(delta)]``. Works for clips of any length
        (the delta window shrinks for short clips).
    """
    m = mfcc(wave, sr, n_mfcc=n_mfcc).astype(np.float64)
    d = _delta(m)
    out = np.concatenate([m.mean(axis=1), m.std(axis=1), d.mean(axis=1), d.std(axis=1)])
    return out.astype(np.float32)


def augment_spectrograms(
    batch: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    max_shift: float = 0.1,
    freq_masks: int = 1,
    time_masks: int = 1,
    max_freq_width: float = 0.15,
    max_time_width: float = 0.1,
    gain_db: float = 6.0,
    circular: bool = True,
) -> torch.Tensor:
    """Batched SpecAugment-style augmentation of log-scale spectrograms.

    Per sample, in this order:

    1. a time shift by an integer drawn from ``[-max_shift * T, max_shift * T]`` frames, circular
       (``circular=True``) or padded with the sample's minimum (silence on a log scale);
    2. ``freq_masks`` frequency bands and ``time_masks`` time spans, each of a width drawn from
       ``[0, max_*_width * size]``, set to the sample's mean (after the shift);
    3. a gain drawn from ``[-gain_db, gain_db]`` added to every bin (so the input is expected in
       dB, as :func:`log_mel` gives).

    Parameters
    ----------
    batch : torch.Tensor of shape (N, 1, F, T)
        (Any channel count works; all channels of a sample share its transform.)
    generator : torch.Generator, optional
        Source of randomness; the same state gives the same output. ``None`` uses the global one.
    max_shift, max_freq_width, max_time_width : float
        Fractions of ``T``, ``F`` and ``T``.
    freq_masks, time_masks : int
        Number of masks of each kind.
    gain_db : float, default 6.0
    circular : bool, default True

    Returns
    -------
    torch.Tensor of shape (N, 1, F, T), same dtype and device as ``batch``.
    """
    import torch

    if batch.ndim != 4:
        raise ValueError(f"expected a (N, C, F, T) tensor, got shape {tuple(batch.shape)}")
    x = batch if batch.is_floating_point() else batch.float()
    n, _, f, t = x.shape
    if n == 0 or f == 0 or t == 0:
        return x.clone()
    dev = x.device
    gdev = generator.device if generator is not None else torch.device("cpu")

    def randint(high: torch.Tensor | int, size: tuple[int, ...]) -> torch.Tensor:
        """Integers uniform in [0, high] (inclusive), ``high`` broadcastable to ``size``."""
        r = torch.rand(size, generator=generator, device=gdev, dtype=torch.float64).to(dev)
        return torch.floor(r * (torch.as_tensor(high, device=dev, dtype=torch.float64) + 1)).long()

    # 1. time shift
    s_max = int(max_shift * t)
    shift = randint(2 * s_max, (n,)) - s_max
    src = torch.arange(t, device=dev)[None, :] - shift[:, None]  # (N, T) source frame per output frame
    valid = (src >= 0) & (src < t)
    idx = torch.remainder(src, t)
    out = torch.gather(x, 3, idx[:, None, None, :].expand(n, x.shape[1], f, t))
    if not circular:
        fill_min = x.amin(dim=(1, 2, 3), keepdim=True)
        out = torch.where(valid[:, None, None, :], out, fill_min)

    # 2. masks, filled with the per-sample mean
    mean = out.mean(dim=(1, 2, 3), keepdim=True)

    def band_mask(count: int, size: int, max_frac: float) -> torch.Tensor:
        if count <= 0:
            return torch.zeros(n, size, dtype=torch.bool, device=dev)
        w_max = int(max_frac * size)
        width = randint(w_max, (n, count))
        start = randint(size - width, (n, count))
        pos = torch.arange(size, device=dev)[None, None, :]
        inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])
        return inside.any(dim=1)

    fmask = band_mask(freq_masks, f, max_freq_width)  # (N, F)
    tmask = band_mask(time_masks, t, max_time_width)  # (N, T)
    masked = fmask[:, None, :, None] | tmask[:, None, None, :]
    out = torch.where(masked, mean, out)

    # 3. gain in dB
    r = torch.rand(n, generator=generator, device=gdev, dtype=torch.float64).to(dev)
    gain = ((2.0 * r - 1.0) * gain_db).to(out.dtype)
    return out + gain[:, None, None, None]


def audio_quality(wave: np.ndarray, sr: int) -> float:
    """Score a recording in ``[0, 1]`` from its loudness, noisiness and clipping.

    With 20 ms frames:

    * ``clean = max(snr, tonal)`` where ``snr = clip(D / 30 dB, 0, 1)``, ``D`` being the spread
      between the 90th and 10th percentile frame energies (speech over a noise floor), and
      ``tonal = clip(1 - flatness / 0.5, 0, 1)`` with ``flatness`` the median spectral flatness
      of the louder half of the frames (white noise is close to 0.5 or above, tones and voiced
      speech near 0);
    * ``loud = clip((rms_dBFS + 60) / 30, 0, 1)`` (silence scores 0, -30 dBFS and louder 1);
    * ``unclipped = 1 - min(1, 20 * f)`` with ``f`` the fraction of samples at ``|x| >= 0.999``.

    The score is ``clean * loud * unclipped``. Non-finite or empty input scores 0.

    Parameters
    ----------
    wave : numpy.ndarray of shape (samples,) or (channels, samples)
    sr : int
        Sample rate in Hz.

    Returns
    -------
    float
    """
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.size == 0 or not np.all(np.isfinite(x)):
        return 0.0
    rms = float(np.sqrt(np.mean(x**2)))
    loud = float(np.clip((20.0 * np.log10(max(rms, 1e-10)) + 60.0) / 30.0, 0.0, 1.0))
    if loud == 0.0:
        return 0.0
    clip_frac = float(np.mean(np.abs(x) >= 0.999))
    unclipped = 1.0 - min(1.0, 20.0 * clip_frac)
    frame = max(16, round(0.02 * sr))
    n_frames = x.size // frame
    if n_frames == 0:
        frames = np.pad(x, (0, frame - x.size))[None, :]
    else:
        frames = x[: n_frames * frame].reshape(n_frames, frame)
    energy = np.mean(frames**2, axis=1) + 1e-12
    spread_db = 10.0 * np.log10(np.percentile(energy, 90) / np.percentile(energy, 10))
    snr = float(np.clip(spread_db / 30.0, 0.0, 1.0))
    loud_frames = frames[energy >= np.median(energy)]
    spec = np.abs(np.fft.rfft(loud_frames * np.hanning(frame), axis=1)) ** 2 + 1e-12
    flatness = np.exp(np.mean(np.log(spec), axis=1)) / np.mean(spec, axis=1)
    tonal = float(np.clip(1.0 - float(np.median(flatness)) / 0.5, 0.0, 1.0))
    return float(np.clip(max(snr, tonal) * loud * unclipped, 0.0, 1.0))


#: The scores of :func:`audio_quality_scores`, in order.
AUDIO_QUALITY_SCORES = ("snr_db", "clipping", "silence")
#: Range the estimated SNR is clipped to, in dB.
SNR_RANGE_DB = (-20.0, 80.0)


def audio_quality_scores(wave: np.ndarray, sr: int) -> dict[str, float]:
    """Per-recording quality scores: estimated signal-to-noise ratio, clipping and silence.

    With 20 ms frames and ``e`` their mean energies (mean squared sample):

    * ``snr_db``: ``10 log10((A - N) / N)`` clipped to [-20, 80] dB, where ``N`` is the mean energy of the
      quietest 10 % of the frames (the noise floor, heard in the pauses) and ``A`` that of the louder half.
      Speech with pauses over a quiet floor reads high; the same speech with noise filling the pauses
      reads lower, about 3 dB above the SNR of the noise over the whole clip for speech active half the
      time. A steady sound with no pause at all (a held tone) reads as noise: the estimate needs pauses.
    * ``clipping``: the share of samples at full scale (``|x| >= 0.999``).
    * ``silence``: the share of frames more than 40 dB below the loudest frame, or below -70 dBFS.

    Parameters
    ----------
    wave : numpy.ndarray of shape (samples,) or (channels, samples)
        Samples in [-1, 1] (as decoded).
    sr : int
        Sample rate in Hz.

    Returns
    -------
    dict
        ``{"snr_db", "clipping", "silence"}``; empty, silent or non-finite input scores the lowest SNR,
        no clipping and full silence.
    """
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.size == 0 or not np.all(np.isfinite(x)) or not np.any(x):
        return {"snr_db": SNR_RANGE_DB[0], "clipping": 0.0, "silence": 1.0}
    clipping = float(np.mean(np.abs(x) >= 0.999))
    frame = max(16, round(0.02 * sr))
    n_frames = max(1, x.size // frame)
    frames = np.pad(x, (0, max(0, frame - x.size)))[: n_frames * frame].reshape(n_frames, frame)
    energy = np.sort(np.mean(frames**2, axis=1))
    noise = float(np.mean(energy[: max(1, n_frames // 10)])) + 1e-12
    active = float(np.mean(energy[n_frames // 2 :]))
    snr = 10.0 * np.log10(max(active - noise, 1e-12) / noise)
    floor = max(energy[-1] * 1e-4, 1e-7)  # 40 dB below the loudest frame, -70 dBFS
    silence = float(np.mean(energy < floor))
    return {"snr_db": float(np.clip(snr, *SNR_RANGE_DB)), "clipping": clipping, "silence": silence}
