"""`genreid import-authors`: the authors' checkpoints (their exact key names and shapes at paper widths,
tests/fixtures/authors_state_dicts.json) convert strictly into encoder.pt / generator.pt that load into
genreid's networks at the Market-1501 recipe's widths and run; any unaccounted key is reported and
nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from genreid.cli import main
from genreid.config import load_config
from genreid.models.authors_import import AuthorsImportError, import_authors
from genreid.models.generator import build_generator, load_generator
from genreid.models.id_encoder import build_encoder, load_encoder
from genreid.models.state import load_state_strict

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "authors_state_dicts.json").read_text())


def _random_state(shapes: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            out[name] = torch.tensor(100, dtype=torch.long)
        elif name.endswith("running_var"):
            out[name] = 0.5 + torch.rand(shape, generator=g)
        else:
            out[name] = 0.05 * torch.randn(shape, generator=g)
    return out


@pytest.fixture(scope="module")
def authors_files(tmp_path_factory) -> dict[str, Path]:
    """The authors' files as their code writes them: JVTC stage-1 (under 'state_dict', DataParallel
    prefixes, with the classifier), and a trainer snapshot gen/dis/id."""
    d = tmp_path_factory.mktemp("authors")
    ft = _random_state(FIXTURE["ft_net"], 1)
    jvtc = {**ft, **_random_state(FIXTURE["jvtc_extra"]["keys"], 2)}
    torch.save({"state_dict": {f"module.{k}": v for k, v in jvtc.items()}}, d / "resnet50_market075_epoch00045.pth")
    torch.save({"id": ft}, d / "id_00060000.pt")
    torch.save({"gen": _random_state(FIXTURE["AdaINGen"], 3)}, d / "gen_00060000.pt")
    torch.save({"dis": _random_state(FIXTURE["MsImageDis"], 4)}, d / "dis_00060000.pt")
    return {"jvtc": d / "resnet50_market075_epoch00045.pth", "id": d / "id_00060000.pt",
            "gen": d / "gen_00060000.pt", "dis": d / "dis_00060000.pt"}


def test_fixture_is_the_paper_architecture():
    gen, dis, ft = FIXTURE["AdaINGen"], FIXTURE["MsImageDis"], FIXTURE["ft_net"]
    assert gen["mlp_w4.model.0.fc.weight"] == [512, 2048] and gen["mlp_b1.model.2.fc.weight"] == [256, 512]
    assert gen["enc_content.model.5.fuse.conv.weight"] == [128, 128, 1, 1]
    assert gen["dec.model.3.norm.gamma"] == [64] and gen["dec.model.8.conv.weight"] == [3, 32, 1, 1]
    assert dis["cnns.2.9.weight"] == [1, 64, 1, 1] and ft["feat.weight"] == [512, 2048]
    assert (len(gen), len(dis), len(ft)) == (134, 84, 325)


def _market_networks():
    """genreid's networks at the Market-1501 recipe's paper widths (ResNet-50 without downloads)."""
    cfg = load_config(ROOT / "params" / "market1501.yaml")
    m, g = cfg.model, cfg.model.generator
    enc = build_encoder(m.backbone, "none", m.pooling, m.embedding_dim, m.last_stride, m.stripes)
    return enc, build_generator(g, enc.channels, enc.stripes)


def test_snapshot_imports_loads_at_paper_widths_and_runs(authors_files, tmp_path):
    summary = import_authors(authors_files["jvtc"], tmp_path / "out", authors_files["gen"], authors_files["dis"])
    assert summary["source"] == "authors' stage-2/3 snapshot"
    counts = {n["network"]: n["mapped"] for n in summary["networks"]}
    assert counts == {"identity encoder": 325, "structure encoder": 40, "decoder": 78, "discriminator": 84}
    dropped = {k for n in summary["networks"] for keys in n["dropped"].values() for k in keys}
    assert dropped == {"classifier.weight", "classifier.bias"} | {
        k for k in FIXTURE["AdaINGen"] if k.endswith(("running_mean", "running_var"))}
    assert all(not n["filled"] for n in summary["networks"])

    enc_file, extra = load_encoder(tmp_path / "out" / "encoder.pt")
    e_str, dec, dis, gextra = load_generator(tmp_path / "out" / "generator.pt")
    assert extra["source"] == gextra["source"] == "authors' stage-2/3 snapshot"
    assert len(extra["files"]["id"]["sha256"]) == 64
    assert enc_file.arch["pooling"] == "avg" and dec.arch["code_split"] == "channels"
    assert dec.arch["norm"] == "authors_ln" and e_str.arch["aspp_activation"] == "none"

    # the same weights load strictly into the networks the Market-1501 recipe builds
    enc, (r_str, r_dec, r_dis) = _market_networks()
    load_state_strict(enc, enc_file.state_dict(), "imported encoder")
    for net, loaded in ((r_str, e_str), (r_dec, dec), (r_dis, dis)):
        load_state_strict(net, loaded.state_dict(), "imported generator")

    gen = torch.load(authors_files["gen"], weights_only=True)["gen"]
    d_state = torch.load(authors_files["dis"], weights_only=True)["dis"]
    jvtc = torch.load(authors_files["jvtc"], weights_only=True)["state_dict"]
    assert torch.equal(r_dec.mlp_scale[2][2].weight, gen["mlp_w3.model.1.fc.weight"])
    assert torch.equal(r_dec.mlp_bias[0][4].bias, gen["mlp_b1.model.2.fc.bias"])
    assert torch.equal(r_dec.up[3].norm.gamma, gen["dec.model.5.norm.gamma"])
    assert torch.equal(r_dec.blocks[3].conv2.conv.weight, gen["dec.model.1.model.3.model.1.conv.weight"])
    assert torch.equal(r_str.aspp.branches[2][1].conv.weight, gen["enc_content.model.5.conv12.1.conv.weight"])
    assert torch.equal(r_str.stem[7].body[0].conv.bias, gen["enc_content.model.4.model.3.model.0.conv.bias"])
    assert torch.equal(r_dis.nets[2][9].bias, d_state["cnns.2.9.bias"])
    assert torch.equal(r_dis.nets[1][6].body[1].conv.weight, d_state["cnns.1.6.model.1.conv.weight"])
    assert torch.equal(enc.bn_neck.running_var, jvtc["module.feat_bn.running_var"])
    assert torch.equal(enc.stem[0].weight, jvtc["module.conv1.weight"])

    for net in (enc, r_str, r_dec, r_dis):
        net.eval()
    x, mesh = torch.randn(1, 3, 256, 128), torch.randn(1, 1, 256, 128)
    with torch.no_grad():
        a, f = enc(x)
        s = r_str(mesh)
        img = r_dec(s, a)
        scores = r_dis(img)
    assert a.shape == (1, 8192) and f.shape == (1, 512) and s.shape == (1, 128, 64, 32)
    assert img.shape == (1, 3, 256, 128) and [tuple(o.shape) for o in scores] == [(1, 1, 64, 32), (1, 1, 32, 16),
                                                                                  (1, 1, 16, 8)]
    assert torch.isfinite(img).all()


def test_stage1_encoder_alone_and_trainer_id_snapshot(authors_files, tmp_path):
    summary = import_authors(authors_files["jvtc"], tmp_path / "jvtc")
    assert summary["source"] == "authors' stage-1 weights" and summary["written"] == [str(tmp_path / "jvtc" /
                                                                                         "encoder.pt")]
    assert not (tmp_path / "jvtc" / "generator.pt").exists()
    import_authors(authors_files["id"], tmp_path / "id")  # {'id': ft_net}, no classifier, no prefixes
    a, _ = load_encoder(tmp_path / "jvtc" / "encoder.pt")
    b, _ = load_encoder(tmp_path / "id" / "encoder.pt")
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def _rewrite(src: Path, dst: Path, edit) -> Path:
    blob = torch.load(src, weights_only=True)
    edit(next(iter(blob.values())))
    torch.save(blob, dst)
    return dst


def test_extra_missing_and_misshaped_keys_are_reported_and_nothing_written(authors_files, tmp_path):
    extra = _rewrite(authors_files["gen"], tmp_path / "gen_extra.pt",
                     lambda s: s.update({"dec.model.9.conv.weight": torch.zeros(3, 3, 1, 1)}))
    missing = _rewrite(authors_files["dis"], tmp_path / "dis_missing.pt", lambda s: s.pop("cnns.1.3.conv.bias"))
    out = tmp_path / "out"
    with pytest.raises(AuthorsImportError) as err:
        import_authors(authors_files["jvtc"], out, extra, missing)
    text = str(err.value)
    assert "nothing was written" in text and "dec.model.9.conv.weight" in text
    assert not out.exists()
    with pytest.raises(AuthorsImportError) as err:
        import_authors(authors_files["jvtc"], out, authors_files["gen"], missing)
    assert "nets.1.3.conv.bias" in str(err.value) and "does not provide" in str(err.value)
    shaped = _rewrite(authors_files["id"], tmp_path / "id_shape.pt",
                      lambda s: s.update({"feat_bn.weight": torch.ones(256)}))
    with pytest.raises(AuthorsImportError, match=r"bn_neck.weight: authors \(256,\) vs genreid \(512,\)"):
        import_authors(shaped, out)
    with pytest.raises(AuthorsImportError, match="--gen and --dis go together"):
        import_authors(authors_files["id"], out, gen_path=authors_files["gen"])
    assert not out.exists()


def test_existing_output_is_kept_when_an_import_fails(authors_files, tmp_path):
    out = tmp_path / "out"
    import_authors(authors_files["jvtc"], out)
    before = (out / "encoder.pt").read_bytes()
    bad = _rewrite(authors_files["id"], tmp_path / "id_bad.pt", lambda s: s.update({"head.weight": torch.zeros(1)}))
    with pytest.raises(AuthorsImportError, match="head.weight"):
        import_authors(bad, out, force=True)
    assert (out / "encoder.pt").read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["encoder.pt"]


def test_old_pytorch_files_without_batchnorm_counters_are_filled_and_reported(authors_files, tmp_path):
    old = _rewrite(authors_files["id"], tmp_path / "id_old.pt",
                   lambda s: [s.pop(k) for k in [k for k in s if k.endswith("num_batches_tracked")]])
    summary = import_authors(old, tmp_path / "out")
    (filled,) = summary["networks"][0]["filled"].values()
    assert len(filled) == sum(k.endswith("num_batches_tracked") for k in FIXTURE["ft_net"])


def test_cli_prints_the_account_and_exits_2_on_a_mismatch(authors_files, tmp_path, capsys):
    args = ["import-authors", "--id", str(authors_files["jvtc"]), "--out", str(tmp_path / "cli")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "identity encoder: 325 tensors mapped" in out and "classifier.weight" in out and "wrote" in out
    assert main(["import-authors", "--id", str(authors_files["gen"]), "--out", str(tmp_path / "bad")]) == 2
    assert "'id', 'state_dict'" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_non_finite_weights_and_other_dtypes_are_named_and_nothing_written(authors_files, tmp_path):
    def poison(state):
        state["layer1.0.conv1.weight"] = state["layer1.0.conv1.weight"].clone()
        state["layer1.0.conv1.weight"][0, 0, 0, 0] = float("nan")
        state["feat.bias"] = state["feat.bias"].long()

    bad = _rewrite(authors_files["id"], tmp_path / "id_nan.pt", poison)
    with pytest.raises(AuthorsImportError) as err:
        import_authors(bad, tmp_path / "out")
    text = str(err.value)
    assert "layer1.0.conv1.weight: 1 of 4096 values are NaN or infinite" in text, text
    assert "fc.bias: authors torch.int64 vs genreid torch.float32" in text, text
    assert not (tmp_path / "out").exists()


def test_out_refuses_an_existing_file_without_force_and_pipeline_outputs_always(authors_files, tmp_path, monkeypatch,
                                                                                capsys):
    out = tmp_path / "out"
    import_authors(authors_files["jvtc"], out)
    before = (out / "encoder.pt").read_bytes()
    assert main(["import-authors", "--id", str(authors_files["id"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "encoder.pt exists; an import does not overwrite it" in err and "--force" in err
    assert (out / "encoder.pt").read_bytes() == before
    assert main(["import-authors", "--id", str(authors_files["id"]), "--out", str(out), "--force"]) == 0
    assert (out / "encoder.pt").read_bytes() != before

    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        (repo / name).write_text((ROOT / name).read_text())
    monkeypatch.chdir(repo)
    capsys.readouterr()
    assert main(["import-authors", "--id", str(authors_files["id"]), "--out", "models/synthetic/baseline",
                 "--force"]) == 2
    err = capsys.readouterr().err
    assert "models/synthetic/baseline/encoder.pt, which a DVC stage writes" in err and "Traceback" not in err
    assert not (repo / "models").exists()
    assert main(["import-authors", "--id", str(authors_files["id"]), "--out", "data/models/authors/synthetic"]) == 0
