"""Training-step time of the CNN encoders in channels-last layout (as modalfuse runs them) against the
default contiguous layout, measured in this process on the same random batches. For the series encoders
the comparison is their channels-last (N, C, 1, T) 2-D layers against the same layers run as plain 1-D
ops on (N, C, T) (what they did before), at sp-sw-har's shape (8 channels, 50 samples) and batch 128.

The ratio is what counts (these machines are shared, so absolute times drift): ``speedup`` is the
default-layout time over the channels-last time, per encoder.

    python benchmarks/encoder_speed.py [--steps 60] [--threads N] [--encoders series-cnn ...] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

from modalfuse.encoders import AudioCNN, ImageCNN, SeriesCNN, SeriesCNNLSTM

#: Per-row input shapes of AV-Digits: 28x28 images, 40-band log-mel spectrograms of 41 frames; of
#: sp-sw-har: 6 channels and 2 magnitudes, 50 samples. Then the batch size.
SHAPES = {
    "image-cnn": (ImageCNN, (1, 28, 28), 64),
    "audio-cnn": (AudioCNN, (1, 40, 41), 64),
    "series-cnn": (SeriesCNN, (8, 50), 128),
    "series-cnnlstm": (SeriesCNNLSTM, (8, 50), 128),
}


class _Contiguous(nn.Module):
    """The encoder with its weights and inputs in the default layout (what it did before channels-last)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder.to(memory_format=torch.contiguous_format)
        self.dim = encoder.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder.features(x.contiguous())
        return self.encoder.proj(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))


class _Plain1d(nn.Module):
    """A series encoder with its layers run as plain 1-D ops on (N, C, T), the same parameters."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.dim = encoder.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc, h = self.encoder, x
        for layer in enc.features:
            if isinstance(layer, nn.Conv1d):
                h = nn.functional.conv1d(h, layer.weight, layer.bias, layer.stride, layer.padding)
            elif isinstance(layer, nn.MaxPool2d):
                h = nn.functional.max_pool1d(h, 2, ceil_mode=True)
            else:
                h = layer(h)
        if isinstance(enc, SeriesCNN):
            return enc.proj(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))
        out, _ = enc.lstm(h.transpose(1, 2))
        return enc.proj(torch.cat([out[:, -1], out.mean(dim=1)], dim=1))


def _default_layout(name: str, encoder: nn.Module) -> nn.Module:
    return _Plain1d(encoder) if name.startswith("series") else _Contiguous(encoder)


def step_ms(encoder: nn.Module, shape: tuple[int, ...], steps: int, batch: int = 64) -> float:
    """Mean milliseconds of one AdamW training step (forward, backward, update) after 5 warm-up steps."""
    torch.manual_seed(0)
    head = nn.Linear(encoder.dim, 10)
    opt = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=3e-3)
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    encoder.train()
    for i in range(steps + 5):
        if i == 5:
            start = time.perf_counter()
        loss = nn.functional.cross_entropy(head(encoder(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--encoders", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "encoder_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    results = {}
    for name in args.encoders:
        cls, shape, batch = SHAPES[name]
        # alternate the two layouts over three rounds, keep each one's best, so drift hits both alike
        default, channels_last = [], []
        for _ in range(3):
            default.append(step_ms(_default_layout(name, cls(shape[0])), shape, args.steps, batch))
            channels_last.append(step_ms(cls(shape[0]), shape, args.steps, batch))
        results[name] = {
            "default_ms": min(default),
            "channels_last_ms": min(channels_last),
            "speedup": min(default) / min(channels_last),
            "batch": batch,
        }
        print(
            f"{name}: {min(default):.1f} ms -> {min(channels_last):.1f} ms per step "
            f"({results[name]['speedup']:.2f}x)",
            flush=True,
        )
    doc = {
        "benchmark": "CNN encoder training step, channels-last vs default layout",
        "command": f"python benchmarks/encoder_speed.py --steps {args.steps} --threads {args.threads} "
        f"--encoders {' '.join(args.encoders)}",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "machine": {
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
        "encoders": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
