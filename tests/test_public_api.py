"""The public surface: a sorted __all__, every name importable, and no heavy import at `import modalfuse`."""

from __future__ import annotations

import subprocess
import sys

import modalfuse as mf


def test_all_is_sorted_and_complete() -> None:
    names = [n for n in mf.__all__ if n != "__version__"]
    assert names == sorted(names)
    for name in mf.__all__:
        assert getattr(mf, name) is not None, name
    assert set(mf.__all__) <= set(dir(mf))


def test_import_and_cli_help_do_not_load_torch_or_librosa() -> None:
    code = (
        "import sys, modalfuse, modalfuse.cli\n"
        "heavy = [m for m in ('torch', 'librosa', 'sklearn', 'pandas') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        mf.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:  # pragma: no cover - the assertion above must run
        raise AssertionError("expected AttributeError")


def test_registries_list_the_builtins() -> None:
    assert {"unimodal", "late", "early"} <= set(mf.list_fusions())
    assert {
        "image-cnn",
        "audio-cnn",
        "text-bag",
        "tabular-mlp",
        "pixels",
        "hog",
        "mfcc",
        "tfidf",
        "tabular-scaled",
    } <= set(mf.list_encoders())
    assert mf.get_encoder("mfcc").modality == "audio"
    assert set(mf.list_datasets()) == {"av-digits-sample", "av-digits", "av-digits-hard", "sp-sw-har"}
