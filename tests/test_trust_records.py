"""Faults that would silently corrupt a researcher's record: damaged model files, damaged checkpoints,
imports that do not fit, settings that change while a stage runs. Each is refused by name with the fix."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from genreid.engine.checkpoint import Checkpointer
from genreid.errors import CheckpointError
from genreid.models.id_encoder import build_encoder, load_encoder, save_encoder


def flip_tensor_byte(path: Path) -> None:
    """Flip one bit in the middle of the largest tensor's bytes: the zip still reads, the values differ."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    raw[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(raw))


def _tiny_encoder():
    return build_encoder(backbone="resnet18", pretrained="none", embedding_dim=8, stripes=2)


def test_a_flipped_byte_in_an_encoder_file_is_named_with_the_fix(tmp_path):
    path = save_encoder(_tiny_encoder(), tmp_path / "encoder.pt", {"epoch": 3})
    load_encoder(path)  # intact: loads
    flip_tensor_byte(path)
    torch.load(path, weights_only=True)  # torch itself reads the damaged file without complaint
    with pytest.raises(CheckpointError) as err:
        load_encoder(path)
    text = str(err.value)
    assert str(path) in text and "damaged" in text and "dvc repro --force" in text and "dvc pull" in text


def test_a_flipped_byte_in_a_generator_file_is_named(tmp_path):
    from genreid.config.sections.model import GeneratorWidths
    from genreid.models.generator import build_generator, load_generator, save_generator

    widths = GeneratorWidths(str_channels=[4, 8, 8, 8], str_out=8, dec_channels=[8, 4], mlp_dim=8,
                             dis_channels=[4, 8], dis_scales=1, res_blocks=1)
    path = save_generator(tmp_path / "generator.pt", *build_generator(widths, stripe_dim=8, stripes=2))
    load_generator(path)
    flip_tensor_byte(path)
    with pytest.raises(CheckpointError, match="generator checkpoint .*generator.pt is damaged"):
        load_generator(path)


def test_a_damaged_newest_checkpoint_is_skipped_for_the_older_one(tmp_path, caplog):
    ckpt = Checkpointer(tmp_path, keep=2)
    ckpt.save(1, 0, 1, {"w": {"x": torch.arange(64.0)}})
    newest = ckpt.save(2, 0, 2, {"w": {"x": torch.arange(64.0) * 2}})
    flip_tensor_byte(newest)
    blob = ckpt.latest()
    assert blob["step"] == 1 and torch.equal(blob["state"]["w"]["x"], torch.arange(64.0))
    assert "damaged" in caplog.text and newest.name in caplog.text


@pytest.mark.parametrize("entry, value", [("state", [1, 2]), ("step", "seven"), ("rng", None)])
def test_a_checkpoint_entry_of_the_wrong_type_is_named(tmp_path, entry, value):
    from genreid.utils.atomic import torch_save

    ckpt = Checkpointer(tmp_path)
    path = ckpt.save(1, 0, 1, {"w": {"x": torch.zeros(2)}})
    blob = torch.load(path, weights_only=True)
    blob[entry] = value
    blob.pop("content_sha256")  # as another program would write it
    torch_save(blob, path)
    with pytest.raises(CheckpointError, match=f"entry '{entry}' is"):
        ckpt.latest()


def test_a_trainer_refuses_a_checkpoint_state_entry_that_is_no_mapping(tmp_path):
    from genreid.engine.trainer import _Counters
    from genreid.utils.atomic import torch_save

    class Step:  # the least a Trainer needs to restore
        name = stage = "toy"

        def state(self):
            return {}

        def optimisers(self):
            return {}

    from genreid.engine.dist import DistInfo
    from genreid.engine.trainer import Trainer

    trainer = Trainer(Step(), info=DistInfo(), epochs=1, ckpt_dir=tmp_path / "ckpt", results_dir=tmp_path / "res")
    path = trainer.checkpointer.save(1, 0, 1, {"engine": _Counters().state_dict()})
    blob = torch.load(path, weights_only=True)
    blob["state"]["engine"] = 3
    blob.pop("content_sha256")
    torch_save(blob, path)
    with pytest.raises(CheckpointError, match=r"state\.engine is int, expected a mapping"):
        trainer._restore()


# ----------------------------------------------------------------------------------------------
# The imported stage-1 encoder is a DVC dependency, and is checked before anything is removed.

import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _dvc_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", DVC_NO_ANALYTICS="1",
               GENREID_LOG="WARNING")
    return env


def _pipeline_copy(dest: Path, import_file: Path) -> Path:
    """dvc.yaml, the code and .dvc/config in ``dest``, with params.yaml from the tiny recipe importing
    ``import_file``; returns ``dest``."""
    from genreid.config.loader import dump_yaml, resolve_recipe
    from genreid.config.schema import uda_lists

    for rel in ("dvc.yaml", ".dvcignore", ".dvc/config", "stages", "genreid"):
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    tree = resolve_recipe(ROOT / "params" / "tiny.yaml")
    tree["warmup"]["import_encoder"] = str(import_file)
    tree["uda"] = uda_lists(tree["datasets"], None, str(import_file)).model_dump()
    (dest / "params.yaml").write_text(dump_yaml(tree))
    env = _dvc_env()
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True, env=env)
    return dest


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=repo, env=_dvc_env(),
                          capture_output=True, text=True, timeout=300)


def _tiny_arch_encoder():
    from genreid.config.loader import resolve_recipe

    model = resolve_recipe(ROOT / "params" / "tiny.yaml")["model"]
    return build_encoder(backbone=model["backbone"], pretrained="none", embedding_dim=model["embedding_dim"],
                         stripes=model["stripes"], last_stride=model["last_stride"])


def test_replacing_the_imported_encoder_makes_stage_one_and_what_follows_stale(tmp_path):
    from genreid.config.loader import read_yaml
    from genreid.pipeline.dvc_stages import load_stages

    imported = tmp_path / "authors" / "encoder.pt"
    save_encoder(_tiny_arch_encoder(), imported, {"method": "authors_import"})
    repo = _pipeline_copy(tmp_path / "repo", imported)
    stages = load_stages(repo / "dvc.yaml", read_yaml((repo / "params.yaml").read_text()))
    writer = [n for n, s in stages.items() if any("models/synthetic/baseline/encoder.pt" == d for d in s.deps)]
    assert "warmup_import@synthetic" in stages and not any(n.startswith("warmup@") for n in stages), list(stages)
    assert str(imported) in stages["warmup_import@synthetic"].deps
    assert {"pretrain@synthetic", "train@synthetic-gcl"} <= set(writer)  # stages 2-3 read its output

    subprocess.run([sys.executable, "stages/warmup.py", "--dataset", "synthetic"], cwd=repo, env=_dvc_env(),
                   check=True, capture_output=True)
    done = _dvc(repo, "commit", "--force", "warmup_import@synthetic")
    assert done.returncode == 0, done.stderr
    assert "warmup_import@synthetic" not in _dvc(repo, "status", "warmup_import@synthetic").stdout

    torch.manual_seed(7)
    save_encoder(_tiny_arch_encoder(), imported, {"method": "authors_import"})  # another import, same path
    status = _dvc(repo, "status", "warmup_import@synthetic")
    assert status.returncode == 0, status.stderr
    assert "warmup_import@synthetic" in status.stdout and str(imported) in status.stdout, status.stdout


def test_a_missing_import_removes_nothing(tmp_path):
    """The commands of the stage that writes stage 1's encoder, run in order as DVC does, stop at the missing
    file with a message, and the warm-up's checkpoints from an earlier run stay where they are."""
    from genreid.config.loader import read_yaml
    from genreid.pipeline.dvc_stages import load_stages

    repo = _pipeline_copy(tmp_path / "repo", tmp_path / "nowhere" / "encoder.pt")
    ckpt = repo / "models" / "synthetic" / "baseline" / "ckpt"
    ckpt.mkdir(parents=True)
    (ckpt / "ckpt_000000004.pt").write_bytes(b"an earlier run")
    stages = load_stages(repo / "dvc.yaml", read_yaml((repo / "params.yaml").read_text()))
    [(name, stage)] = [(n, s) for n, s in stages.items() if n.split("@")[0] in ("warmup", "warmup_import")]
    for cmd in stage.cmd:
        proc = subprocess.run(cmd, shell=True, cwd=repo, env=_dvc_env(), capture_output=True, text=True)
        if proc.returncode:
            break
    assert proc.returncode == 2, proc.stderr
    assert "warmup.import_encoder points to" in proc.stderr and "Traceback" not in proc.stderr
    assert (ckpt / "ckpt_000000004.pt").read_bytes() == b"an earlier run"


def test_an_import_that_does_not_fit_the_recipe_is_named(tmp_path):
    from genreid.config.sections.model import ModelConfig
    from genreid.errors import ConfigError
    from genreid.warmup.imported import use_imported_encoder

    imported = save_encoder(build_encoder("resnet18", "none", "avg", 16, 1, 4), tmp_path / "in.pt")
    with pytest.raises(ConfigError, match=r"model.embedding_dim: recipe 32, file 16") as err:
        use_imported_encoder(imported, ModelConfig(backbone="resnet18", embedding_dim=32), seed=1,
                             model_dir=tmp_path / "m", results_dir=tmp_path / "r")
    assert "model.backbone" not in str(err.value) and not (tmp_path / "m").exists()
    model = build_encoder("resnet18", "none", "avg", 16, 1, 4)
    with torch.no_grad():
        model.fc.weight[0, 0] = float("nan")
    imported = save_encoder(model, tmp_path / "nan.pt")
    with pytest.raises(ConfigError, match=r"NaN or infinite weights in \['fc.weight'\]"):
        use_imported_encoder(imported, ModelConfig(backbone="resnet18", embedding_dim=16), seed=1,
                             model_dir=tmp_path / "m", results_dir=tmp_path / "r")
    assert not (tmp_path / "m").exists()


def test_the_resume_guard_keeps_checkpoints_when_an_input_model_is_damaged(tmp_path):
    from genreid.pipeline.resume_guard import guard

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "a.py").write_text("x = 1\n")
    params = tmp_path / "params.yaml"
    params.write_text("seed: 1\n")
    encoder = save_encoder(_tiny_encoder(), tmp_path / "encoder.pt")
    ckpt = tmp_path / "ckpt"
    guard([ckpt], [encoder], params, [tmp_path / "code"], hash_cache=None)
    (ckpt / "ckpt_000000003.pt").write_bytes(b"run so far")
    flip_tensor_byte(encoder)
    params.write_text("seed: 2\n")  # a change that would otherwise start afresh
    with pytest.raises(CheckpointError, match="input .*encoder.pt is damaged"):
        guard([ckpt], [encoder], params, [tmp_path / "code"], hash_cache=None)
    assert (ckpt / "ckpt_000000003.pt").read_bytes() == b"run so far"


# ----------------------------------------------------------------------------------------------
# No run mixes settings; Ctrl-C says where a rerun continues.

import importlib.util  # noqa: E402

import yaml  # noqa: E402

from genreid.stage import run_stage, stage_parser  # noqa: E402


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_params_edited_while_a_stage_runs_stop_it_before_dvc_records_anything(tmp_path, monkeypatch, capsys):
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)

    def body(cfg, args):  # a `dvc exp run -S seed=2` refused while this stage runs leaves params.yaml edited
        assert cfg.seed == 1
        params.write_text(params.read_text().replace("seed: 1\n", "seed: 2\n", 1))

    assert run_stage(body, stage_parser("toy", per_dataset=False), []) == 2
    err = capsys.readouterr().err
    assert "params.yaml changed while this stage ran" in err and "dvc exp run --temp" in err
    assert "Traceback" not in err


def test_collect_refuses_results_computed_with_other_settings_than_dvc_lock_records(tmp_path, monkeypatch, capsys):
    build = _module(ROOT / "tests" / "test_report_build.py", "report_build_helpers")
    build._fake_results(tmp_path / "results", "synthetic", {"untrained": 3.0, "baseline": 30.0, "control_none": 31.0,
                                                             "control_aug": 32.0, "oracle_views": 34.0, "gcl": 33.0,
                                                             "gcl_plus": 35.0})
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["report"]["targets"] = str(ROOT / "genreid" / "report" / "targets.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    used = dict(params, seed=1)
    (tmp_path / "results" / "synthetic" / "gcl" / "config.resolved.yaml").write_text(yaml.safe_dump(used))
    lock = {"schema": "2.0", "stages": {"evaluate@synthetic-gcl": {
        "cmd": "python stages/evaluate.py --dataset synthetic --method gcl",
        "params": {"params.yaml": {"seed": 2, "eval": params["eval"], "runtime": {"num_workers": 9}}},
        "outs": [{"path": "results/synthetic/gcl/config.resolved.yaml", "hash": "md5", "md5": "0" * 32}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    monkeypatch.chdir(tmp_path)
    collect = _module(ROOT / "stages" / "collect.py", "stage_collect")
    assert run_stage(collect.main, stage_parser("collect"), ["--dataset", "synthetic"]) == 2
    err = capsys.readouterr().err
    assert "evaluate@synthetic-gcl" in err and "seed: the stage used 1, dvc.lock records 2" in err
    assert "runtime" not in err.split("fix:")[0] and "Traceback" not in err
    assert not (tmp_path / "results" / "seeds").exists() and not (tmp_path / "results" / "collected").exists()
    lock["stages"]["evaluate@synthetic-gcl"]["params"]["params.yaml"]["seed"] = 1  # consistent: collected
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert run_stage(collect.main, stage_parser("collect"), ["--dataset", "synthetic"]) == 0


def test_ctrl_c_in_a_stage_exits_130_with_one_line_naming_the_checkpoint(tmp_path, capsys):
    guards = _module(ROOT / "tests" / "engine" / "test_guards.py", "engine_guards_helpers")
    step = guards.ToyStep(tmp_path / "out.txt")

    trainer = guards._trainer(step, tmp_path, epochs=3)
    run = step.run_step

    def interrupted_in_epoch_two(trainer_, batch):
        if trainer_.epoch == 1 and trainer_.iter_in_epoch == 1:
            raise KeyboardInterrupt
        return run(trainer_, batch)

    step.run_step = interrupted_in_epoch_two

    def body(cfg, args):
        trainer.train()

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    code = run_stage(body, stage_parser("toy", per_dataset=False), ["--params", str(tmp_path / "params.yaml")])
    err = capsys.readouterr().err
    assert code == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [f"genreid: interrupted: toy stopped at iteration 4; rerunning the stage resumes from "
                     f"{tmp_path / 'ckpt' / 'ckpt_000000003.pt'}"], err


# ----------------------------------------------------------------------------------------------
# Evaluation larger than the memory; loaders never advise unsafe loading.

import numpy as np  # noqa: E402


def _no_big_arrays(monkeypatch, limit: int = 1000):
    """np.empty fails like an out-of-memory machine for arrays of more than ``limit`` elements."""
    real = np.empty

    def empty(shape, *a, **k):
        if int(np.prod(shape)) > limit:
            raise MemoryError(f"Unable to allocate array with shape {shape}")
        return real(shape, *a, **k)

    monkeypatch.setattr(np, "empty", empty)


def test_evaluate_on_a_set_larger_than_the_memory_gives_the_same_metrics(tmp_path, monkeypatch, capsys):
    from genreid.cli import main

    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(20), 4)
    feats = rng.normal(size=(80, 16)).astype(np.float32) + np.eye(20, 16, dtype=np.float32)[pids] * 3
    q, g = np.arange(0, 80, 4), np.setdiff1d(np.arange(80), np.arange(0, 80, 4))
    data = tmp_path / "feats.npz"
    np.savez(data, query_features=feats[q], gallery_features=feats[g], query_pids=pids[q], gallery_pids=pids[g],
             query_camids=np.zeros(len(q), int), gallery_camids=np.ones(len(g), int))
    assert main(["evaluate", str(data), "--out", str(tmp_path / "in_memory.json")]) == 0
    _no_big_arrays(monkeypatch)
    assert main(["evaluate", str(data), "--out", str(tmp_path / "on_disk.json")]) == 0
    assert (tmp_path / "on_disk.json").read_text() == (tmp_path / "in_memory.json").read_text().replace(
        "in_memory", "on_disk")

    import genreid.evaluation.evaluator as evaluator

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(evaluator, "k_reciprocal_rerank", out_of_memory)
    capsys.readouterr()
    assert main(["evaluate", str(data), "--rerank"]) == 2
    err = capsys.readouterr().err
    assert "ran out of memory in re-ranking" in err and "leave out --rerank" in err and "Traceback" not in err


UNSAFE_HINTS = ("weights_only=False", "weights_only` set to `False", "will likely succeed", "allow_pickle",
                "safe_globals", "trust the source")


class _Payload:
    pass


def test_loading_errors_never_advise_unsafe_loading(tmp_path, capsys):
    from genreid.cli import main
    from genreid.models.authors_import import read_authors_file
    from genreid.utils.safe_load import load_weights_only

    crafted = tmp_path / "crafted.pt"
    torch.save({"state_dict": _Payload()}, crafted)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(os.urandom(400))

    def as_checkpoint(path: Path):
        folder = tmp_path / "ckpt" / path.stem
        folder.mkdir(parents=True)
        shutil.copy(path, folder / "ckpt_000000001.pt")
        return Checkpointer(folder).latest()

    messages = []
    for path in (crafted, noise):
        for load in (lambda p: read_authors_file(p, ("state_dict",)), lambda p: load_weights_only(p, "file", "x"),
                     as_checkpoint):
            with pytest.raises(Exception) as err:  # noqa: PT011 - each loader has its own error type
                load(path)
            messages.append(str(err.value))
    for suffix in (".npz", ".pt"):
        bad = tmp_path / f"random{suffix}"
        bad.write_bytes(b"\x80\x04" + os.urandom(300))
        assert main(["evaluate", str(bad)]) == 2
        messages.append(capsys.readouterr().err)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, distmat=np.array([_Payload()], dtype=object))
    assert main(["evaluate", str(pickled)]) == 2
    messages.append(capsys.readouterr().err)
    for text in messages:
        assert not [h for h in UNSAFE_HINTS if h in text], text
    assert "references the Python object" in messages[0] and "crafted.pt" in messages[0]


def test_smoke_paper_on_a_synthreid_recipe_is_refused_before_any_folder_exists(tmp_path, monkeypatch, capsys):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    smoke = _module(ROOT / "scripts" / "smoke_paper.py", "smoke_paper_script")
    assert smoke.main(["--recipe", "tiny.yaml", "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert "tiny.yaml reads synthetic" in err and "--recipe market1501.yaml" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cpu_bf16_on_images_below_the_documented_minimum_is_refused_with_the_reason():
    from genreid.config.loader import resolve_recipe, validate
    from genreid.config.schema import BF16_CPU_MIN_IMAGE
    from genreid.errors import ConfigError

    tree = resolve_recipe(ROOT / "params" / "tiny.yaml")
    tree["runtime"]["amp"] = "bf16"
    assert (tree["data"]["height"], tree["data"]["width"]) == (32, 16) and tree["runtime"]["device"] == "cpu"
    with pytest.raises(ConfigError, match=r"bf16 with 32x16 images .*NaN .*below 64x32") as err:
        validate(tree)
    assert "runtime.amp: off" in str(err.value) and "lower warmup.lr" not in str(err.value)
    tree["data"]["height"], tree["data"]["width"] = BF16_CPU_MIN_IMAGE
    assert validate(tree).runtime.amp == "bf16"
    tree["data"]["height"], tree["data"]["width"] = 32, 16
    tree["runtime"]["device"] = "cuda"
    assert validate(tree).runtime.amp == "bf16"  # the defect is in oneDNN, the CPU kernels


def test_a_warm_up_batch_larger_than_one_sampler_pass_names_the_numbers():
    from genreid.errors import GenreidError
    from genreid.warmup.batches import pk_batches

    labels = np.array([0, 0, 1, 1, 2, 2, -1, -1])
    with pytest.raises(GenreidError, match=r"over the 6 clustered images yields 6, fewer than warmup.batch_size 16"):
        pk_batches(labels, np.arange(8) % 2, 16, 2, seed=0, iterations=1, sampler="multi_gallery")


def test_a_validation_split_that_leaves_one_training_identity_is_refused():
    import pandas as pd

    from genreid.data.validation import carve_validation
    from genreid.errors import DataError

    train = pd.DataFrame({"path": [f"{i}.jpg" for i in range(8)], "raw_pid": [1, 1, 1, 1, 2, 2, 2, 2],
                          "camid": [0, 1, 0, 1, 0, 1, 0, 1]})
    with pytest.raises(DataError, match="carves 1 of 2 training identities for validation and leaves 1") as err:
        carve_validation(train, 0.05, 0, "synthetic")
    assert "num_train_ids" in str(err.value)
    rest, val = carve_validation(train, 0.0, 0, "synthetic")
    assert rest["pid"].nunique() == 2 and val.empty


def test_selection_on_validation_without_a_validation_split_is_refused():
    from genreid.config.loader import resolve_recipe, validate
    from genreid.errors import ConfigError

    tree = resolve_recipe(ROOT / "params" / "tiny.yaml")
    tree["data"]["val_fraction"], tree["train"]["selection"] = 0.0, "val_map"
    with pytest.raises(ConfigError, match="train.selection is 'val_map' but data.val_fraction is 0"):
        validate(tree)
    tree["train"]["selection"] = "last"
    assert validate(tree).train.selection == "last"


def test_a_params_file_cut_at_a_section_boundary_is_refused(tmp_path):
    from genreid.config import load_config
    from genreid.errors import ConfigError

    text = (ROOT / "params.yaml").read_text()
    assert load_config(ROOT / "params.yaml").seed == 1
    cut = tmp_path / "params.yaml"
    cut.write_text(text[:text.index("\npretrain:") + 1])  # everything before the pretrain section
    with pytest.raises(ConfigError, match=r"lacks the section\(s\) pretrain, train, eval, report, uda") as err:
        load_config(cut)
    assert "genreid recipe apply params/synthetic_cpu.yaml" in str(err.value)


def test_the_disk_full_message_says_what_is_on_disk_now(tmp_path):
    import errno

    from genreid.utils import atomic

    full = OSError(errno.ENOSPC, "No space left on device")
    gone = tmp_path / "results" / "README.md"  # removed by DVC before the report stage ran
    text = str(atomic._explain_os_error(gone, full))
    assert "were kept" not in text and "no earlier one is here either" in text and f"dvc checkout {gone}" in text
    gone.parent.mkdir()
    gone.write_text("earlier")
    assert f"the earlier {gone} is unchanged" in str(atomic._explain_os_error(gone, full))


@pytest.mark.parametrize("option, value, reason", [("--k1", "-3", "-3 is not >= 1"), ("--k2", "0", "0 is not >= 1"),
                                                   ("--lambda-value", "7", "7.0 is not in [0, 1]")])
def test_rerank_options_out_of_range_are_refused(tmp_path, capsys, option, value, reason):
    from genreid.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["evaluate", str(tmp_path / "x.npz"), "--rerank", option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {reason}" in err and "Traceback" not in err


def test_params_edited_between_the_resume_guard_and_the_trainer_are_refused(tmp_path, monkeypatch):
    from genreid.config import load_config
    from genreid.config.loader import read_yaml
    from genreid.errors import GenreidError
    from genreid.pipeline.dvc_stages import load_stages
    from genreid.pipeline.resume_guard import SIGNATURE_FILE, confirm_kept_for, signature
    from genreid.utils.atomic import write_json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    tree = load_config(ROOT / "params.yaml").model_dump(mode="json")
    spec = load_stages(tmp_path / "dvc.yaml", read_yaml((ROOT / "params.yaml").read_text()))["warmup@synthetic"]
    ckpt = tmp_path / "models" / "synthetic" / "baseline" / "ckpt"
    ckpt.mkdir(parents=True)
    write_json(ckpt / SIGNATURE_FILE, signature(spec, tree, [], {}, code=[]))  # what the guard kept them for
    confirm_kept_for(ckpt, tree)  # the same settings: the trainer resumes
    confirm_kept_for(ckpt, dict(tree, runtime={**tree["runtime"], "num_threads": 7}))  # runtime never matters
    with pytest.raises(GenreidError, match="params.yaml changed between the resume guard and warmup@synthetic"):
        confirm_kept_for(ckpt, dict(tree, seed=2))
    capped = dict(tree, runtime={**tree["runtime"], "cpu_isa_cap": "avx2"})  # the cap changes what is computed
    with pytest.raises(GenreidError, match="params.yaml changed between the resume guard and warmup@synthetic"):
        confirm_kept_for(ckpt, capped)
    write_json(ckpt / SIGNATURE_FILE, signature(spec, capped, [], {}, code=[]))  # the guard kept them for the cap
    confirm_kept_for(ckpt, capped)
