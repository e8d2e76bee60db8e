"""params: no silent acceptance of a wrong type, a non-finite number, an
empty file or a malformed ``_base_``; each error names the file, key and value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from genreid.config import load_config
from genreid.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path, text, name="params.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, fragment", [
    ("seed: true\n", "seed: Input should be a valid integer (got True)"),
    ("seed: '3'\n", "seed: Input should be a valid integer (got '3')"),
    ("data:\n  max_bad_images: true\n", "data.max_bad_images: Input should be a valid integer (got True)"),
    ("data:\n  val_fraction: .nan\n", "data.val_fraction: Input should be a finite number (got nan)"),
    ("eval:\n  rerank:\n    lambda_value: .inf\n", "eval.rerank.lambda_value: Input should be a finite number"),
    ("runtime:\n  deterministic: 1\n", "runtime.deterministic: Input should be a valid boolean (got 1)"),
])
def test_wrong_types_and_non_finite_numbers_are_rejected(tmp_path, text, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert fragment in str(err.value) and str(path) in str(err.value)


def test_ints_are_still_accepted_where_floats_are_expected(tmp_path):
    cfg = load_config(_write(tmp_path, "data:\n  val_fraction: 0\ntrain:\n  selection: last\n"
                                       "eval:\n  rerank:\n    lambda_value: 1\n"))
    assert cfg.data.val_fraction == 0.0 and isinstance(cfg.eval.rerank.lambda_value, float)


def test_unknown_top_level_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"seeed: unknown key; allowed keys here: .*seed"):
        load_config(_write(tmp_path, "seeed: 2\n"))


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_params_file_is_an_error_not_the_paper_defaults(tmp_path, text):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"{path} is empty") as err:
        load_config(path)
    assert "genreid recipe apply" in err.value.fix


@pytest.mark.parametrize("base", ["5", "[1, base.yaml]", "[]", "{a: 1}", "true"])
def test_malformed_base_is_named(tmp_path, base):
    _write(tmp_path, "seed: 3\n", "base.yaml")
    path = _write(tmp_path, f"_base_: {base}\n", "recipe.yaml")
    with pytest.raises(ConfigError, match=f"{path}: _base_ must be a recipe file name or a list of them") as err:
        load_config(path)
    assert "_base_: base.yaml" in err.value.fix


def test_base_list_of_names_still_works(tmp_path):
    _write(tmp_path, "seed: 3\n", "a.yaml")
    _write(tmp_path, "seed: 4\n", "b.yaml")
    assert load_config(_write(tmp_path, "_base_: [a.yaml, b.yaml]\n", "r.yaml")).seed == 4


def test_config_validate_cli_prints_the_message_without_traceback(tmp_path):
    path = _write(tmp_path, "_base_: 5\n")
    proc = subprocess.run([sys.executable, "-m", "genreid.cli", "config", "validate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "_base_ must be a recipe file name" in proc.stderr
