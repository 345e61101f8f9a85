"""Series encoders (1-D CNN, CNN-LSTM, catch22) through the estimator, fitted in-fold, saved and loaded."""

from __future__ import annotations

import numpy as np
import pytest
from series_synth import write_session

import modalfuse as mf
from modalfuse.encoders import PREPROCESSORS, SeriesCNN, SeriesCNNLSTM, get_encoder

SMALL = {"epochs": 2, "min_steps": 20, "inner_folds": 2, "n_threads": 1, "seed": 0}


@pytest.fixture(scope="module")
def wtable(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    for subject, seed in (("s01", 1), ("s02", 2), ("s03", 3)):
        write_session(root, subject, 1, seconds=6, seed=seed)
    return mf.windows(root, size=50, step=25)


def test_series_encoders_are_registered():
    assert get_encoder("series-cnn").modality == "series"
    assert get_encoder("series-cnnlstm").network == "series-cnnlstm"
    assert get_encoder("catch22").preprocessor == "catch22"


def test_networks_map_channels_first_series_to_embeddings():
    import torch

    x = torch.randn(4, 8, 50)
    assert SeriesCNN(8, dim=16)(x).shape == (4, 16)
    assert SeriesCNNLSTM(8, dim=16)(x).shape == (4, 16)


def test_preprocessor_scales_with_training_rows_only(wtable):
    prep = PREPROCESSORS["series"]("sp", ["sp"])
    train = wtable.take(np.arange(len(wtable)) < 30)
    X, mask = prep.fit(train).transform(train)
    assert X.shape == (30, 8, 50) and X.dtype == np.float32  # 6 channels + 2 magnitudes
    assert prep.state["out_channels"][-2:] == ["acc_mag", "gyro_mag"]
    np.testing.assert_allclose(X[mask].mean(axis=(0, 2)), 0, atol=1e-4)
    rest = wtable.take(np.arange(len(wtable)) >= 30)
    X2, _ = prep.transform(rest)
    assert abs(X2.mean(axis=(0, 2))).max() > 1e-3  # other rows are scaled with the training statistics


@pytest.mark.parametrize("encoder", ["series-cnn", "catch22"])
def test_estimator_learns_activities_and_round_trips(wtable, encoder, tmp_path):
    if encoder == "catch22":
        pytest.importorskip("pycatch22")
    clf = mf.MultimodalClassifier(fusion="early", encoders={"sp": encoder, "sw": encoder}, **SMALL)
    clf.fit(wtable)
    proba = clf.predict_proba(wtable)
    assert proba.shape == (len(wtable), len(np.unique(wtable.y)))
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-6)
    acc = float(np.mean(clf.classes_[proba.argmax(axis=1)] == wtable.y))
    assert acc > 1 / len(np.unique(wtable.y)) + 0.1  # better than chance on the training windows
    clf.save(tmp_path / "m")
    again = mf.MultimodalClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(wtable), proba, atol=1e-5)


def test_linear_baseline_uses_catch22_for_series(wtable):
    pytest.importorskip("pycatch22")
    from modalfuse.fusion._linear import LinearFusion

    assert LinearFusion.default_encoders["series"] == "catch22"


def test_drift_report_knows_series_columns():
    from modalfuse._drift import column_kind
    from modalfuse.modalities.series import Recording

    rec = Recording(np.zeros((4, 1)), ("c0",), None, 100.0)
    assert column_kind([rec, rec]) == "series"
    assert column_kind(["a/r_1.csv", "a/r_2.parquet"]) == "series"
    assert column_kind([{"values": [[1.0], [2.0]], "rate": 10.0}]) == "series"
    assert column_kind([{"bytes": b"x", "path": "p.png"}]) != "series"


@pytest.mark.parametrize("cls", [SeriesCNN, SeriesCNNLSTM])
def test_series_networks_compute_plain_1d_layers(cls):
    """The networks run their layers channels-last as (N, C, 1, T) 2-D ops; the values and gradients are
    those of the plain 1-D convolution, batch norm and max pooling with the same parameters, whose
    shapes (and so saved models) are those of Conv1d/BatchNorm1d."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(0)
    net = cls(6, dim=8, width=8, dropout=0.0)
    assert net.features[0].weight.shape == (8, 6, 5)

    def reference(x):
        h = x
        for layer in net.features:
            if isinstance(layer, torch.nn.Conv1d):
                h = F.conv1d(h, layer.weight, None, padding=layer.padding)
            elif isinstance(layer, torch.nn.BatchNorm1d):
                h = F.batch_norm(h, None, None, layer.weight, layer.bias, training=True)
            elif isinstance(layer, torch.nn.ReLU):
                h = F.relu(h)
            else:
                h = F.max_pool1d(h, 2, ceil_mode=True)
        if cls is SeriesCNN:
            return net.proj(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))
        out, _ = net.lstm(h.transpose(1, 2))
        return net.proj(torch.cat([out[:, -1], out.mean(dim=1)], dim=1))

    x = torch.randn(5, 6, 51)  # an odd length: the last sample is pooled alone
    net.train()
    ours = net(x)
    ours.sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    ref = reference(x)
    ref.sum().backward()
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    for g, p in zip(grads, net.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-5)


def test_preprocessor_stacks_grid_windows_like_row_by_row(wtable):
    """Windows already on the grid are filtered and given magnitudes as one stack: the same values as
    row by row; a timestamped recording in the same column is still resampled on its own."""
    from modalfuse.modalities.series import Recording

    prep = PREPROCESSORS["series"]("sp", ["sp"], lowpass=20.0)
    prep.fit(wtable)
    first = wtable.frame["sp"].iloc[0]
    stamped = Recording(first.values, first.channels, timestamps=np.arange(len(first)) / first.rate + 5.0)
    frame = wtable.frame.copy()
    frame.at[frame.index[1], "sp"] = stamped
    table = wtable.take(np.arange(len(wtable)))
    table.frame["sp"] = frame["sp"].to_numpy()
    mask = np.ones(len(table), bool)
    stacked = prep._stack(table, mask)
    assert mask.all()
    n = int(prep.state["n_samples"])
    for i, v in enumerate(table.frame["sp"]):
        one = prep._derived(v.values[:n]) if prep._on_grid(v) else prep._resampled_values(v)
        np.testing.assert_allclose(stacked[i], one, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stacked[1], stacked[0], atol=1e-9)  # the same samples, resampled
