"""Identity encoder: shapes, stripe layout, strict save/load, ImageNet weights offline, GeM, ghost BN."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genreid.errors import CheckpointError, GenreidError
from genreid.models.id_encoder import build_encoder, imagenet_weights_path, load_encoder, save_encoder
from genreid.models.layers import GeneralizedMeanPooling, GhostBatchNorm, set_bn_group_size


def _small(**kw):
    args = dict(backbone="resnet18", pretrained="none", pooling="avg", embedding_dim=16, last_stride=1, stripes=4)
    args.update(kw)
    torch.manual_seed(0)
    return build_encoder(**args)


@pytest.fixture(scope="module")
def small_eval():
    return _small().eval()


def test_shapes_and_attributes(small_eval):
    model = small_eval
    a, f = model(torch.randn(2, 3, 64, 32))
    assert a.shape == (2, 4 * 512) and f.shape == (2, 16)
    assert model.appearance_dim == 2048 and model.embedding_dim == 16
    assert model.arch == {"backbone": "resnet18", "pretrained": "none", "pooling": "avg", "embedding_dim": 16,
                          "last_stride": 1, "stripes": 4}


@pytest.mark.parametrize("last_stride,expected", [(1, (4, 2)), (2, (2, 1))])
def test_last_stride_sets_feature_map_size(last_stride, expected):
    model = _small(last_stride=last_stride).eval()
    assert tuple(model.feature_map(torch.randn(1, 3, 64, 32)).shape[2:]) == expected


def test_appearance_code_is_stripe_major():
    model = _small(stripes=2).eval()
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        fmap = model.feature_map(x)  # (3, 512, 4, 2): stripe k = rows 2k..2k+1
        a, _ = model(x)
    for k in range(2):
        expected = fmap[:, :, 2 * k:2 * k + 2, :].mean(dim=(2, 3))
        torch.testing.assert_close(a[:, k * 512:(k + 1) * 512], expected)


def test_embedding_is_bn_neck_of_pooled_map():
    model = _small(pooling="gem").eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        pooled = model.pool(model.feature_map(x)).flatten(1)
        _, f = model(x)
    torch.testing.assert_close(f, model.bn_neck(model.fc(pooled)))


def test_save_load_roundtrip(tmp_path):
    model = _small(pooling="gem")
    with torch.no_grad():
        model.bn_neck.running_mean.add_(0.5)
        model.pool.p.fill_(2.5)
    path = save_encoder(model, tmp_path / "enc.pt", {"epoch": 7, "selected_on": "val", "resumed": False})
    loaded, extra = load_encoder(path)
    assert extra == {"epoch": 7, "selected_on": "val", "resumed": False}
    assert loaded.arch == model.arch
    x = torch.randn(2, 3, 64, 32)
    model.eval()
    loaded.eval()
    with torch.no_grad():
        for got, want in zip(loaded(x), model(x)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_save_accepts_wrapped_model(tmp_path, small_eval):
    model = small_eval
    path = save_encoder(nn.DataParallel(model), tmp_path / "enc.pt", {})
    loaded, _ = load_encoder(path)
    assert set(loaded.state_dict()) == set(model.state_dict())


def test_load_reports_missing_and_unexpected_keys(tmp_path, small_eval):
    path = save_encoder(small_eval, tmp_path / "enc.pt", {})
    blob = torch.load(path, weights_only=False)
    blob["state_dict"]["head.weight"] = blob["state_dict"].pop("fc.weight")
    torch.save(blob, path)
    with pytest.raises(CheckpointError) as err:
        load_encoder(path)
    assert "fc.weight" in str(err.value) and "head.weight" in str(err.value)


def test_load_reports_shape_mismatch(tmp_path, small_eval):
    path = save_encoder(small_eval, tmp_path / "enc.pt", {})
    blob = torch.load(path, weights_only=False)
    blob["arch"]["embedding_dim"] = 32
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="bn_neck.weight"):
        load_encoder(path)


def test_load_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_encoder(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_encoder(bad)
    torch.save({"weights": 1}, bad)
    with pytest.raises(CheckpointError, match="not a genreid"):
        load_encoder(bad)


def test_imagenet_offline_error_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = imagenet_weights_path("resnet18")
    assert expected == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(GenreidError) as err:
        build_encoder("resnet18", "imagenet", "avg", 16, 1, 4)
    assert str(expected) in str(err.value)


def test_imagenet_weights_from_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import torchvision

    torch.manual_seed(3)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    path = imagenet_weights_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(reference, path)
    model = build_encoder("resnet18", "imagenet", "avg", 16, 1, 4)
    torch.testing.assert_close(model.stem[0].weight, reference["conv1.weight"])
    torch.testing.assert_close(model.layer4[1].bn2.running_var, reference["layer4.1.bn2.running_var"])


def test_gem_with_p1_is_average_pooling():
    pool = GeneralizedMeanPooling(p=1.0)
    x = torch.rand(2, 5, 4, 3) + 0.1
    torch.testing.assert_close(pool(x), x.mean(dim=(2, 3), keepdim=True))
    assert pool(x).requires_grad


def test_ghost_bn_matches_per_group_batchnorm():
    torch.manual_seed(0)
    x = torch.randn(10, 3, 4, 4) * 3 + 1
    ghost = GhostBatchNorm(3, group_size=4, momentum=0.1)
    with torch.no_grad():
        ghost.weight.uniform_(0.5, 1.5)
        ghost.bias.uniform_(-1, 1)
    out = ghost(x)
    running_means, running_vars, expected = [], [], []
    for chunk in torch.split(x, 4):  # groups of 4, 4, 2
        bn = nn.BatchNorm2d(3, momentum=0.1)
        bn.load_state_dict({k: v for k, v in ghost.state_dict().items() if k != "num_batches_tracked"}, strict=False)
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0)
        expected.append(bn(chunk))
        running_means.append(bn.running_mean)
        running_vars.append(bn.running_var)
    torch.testing.assert_close(out, torch.cat(expected))
    torch.testing.assert_close(ghost.running_mean, torch.stack(running_means).mean(0))
    torch.testing.assert_close(ghost.running_var, torch.stack(running_vars).mean(0))
    assert int(ghost.num_batches_tracked) == 1


def test_ghost_bn_group_zero_is_plain_bn_and_grads_flow():
    torch.manual_seed(1)
    x = torch.randn(8, 6, requires_grad=True)
    ghost, plain = GhostBatchNorm(6, group_size=0, ndim=2), nn.BatchNorm1d(6)
    torch.testing.assert_close(ghost(x), plain(x))
    torch.testing.assert_close(ghost.running_var, plain.running_var)
    grouped = GhostBatchNorm(6, group_size=2, ndim=2)
    grouped(x).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_set_bn_group_size_keeps_state_and_changes_statistics():
    model = _small()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    set_bn_group_size(model, 2)
    assert isinstance(model.bn_neck, GhostBatchNorm) and isinstance(model.stem[1], GhostBatchNorm)
    after = model.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    x = torch.randn(4, 3, 64, 32)
    model.train()
    _, f_ghost = model(x)
    set_bn_group_size(model, 0)
    _, f_plain = model(x)
    assert not torch.allclose(f_ghost, f_plain, atol=1e-3)
    model.eval()
    a_eval, _ = model(x[:1])
    a_eval2, _ = model(x[:2])
    torch.testing.assert_close(a_eval, a_eval2[:1])  # eval mode: per-sample, no batch statistics
    assert F.normalize(f_plain, dim=1).shape == (4, 16)
