"""runtime.deterministic: the torch flags of both settings, and proof that not NaN-filling new tensors
(``fill_uninitialized_memory=False``) leaves a stage's
weights bit-identical to filling them."""

from __future__ import annotations

import pytest
import torch

from genreid.utils import seeding


@pytest.fixture
def restore_flags():
    """The flags are process-wide: put them back so other tests see what they expect."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.utils.deterministic.fill_uninitialized_memory)
    yield
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[0], saved[1]
    torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])
    torch.utils.deterministic.fill_uninitialized_memory = saved[4]


def test_deterministic_flags(restore_flags):
    seeding.seed_everything(1, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert not torch.backends.cudnn.benchmark
    assert torch.utils.deterministic.fill_uninitialized_memory is False


def test_fast_mode_flags(restore_flags):
    seeding.seed_everything(1, deterministic=True)
    seeding.seed_everything(1, deterministic=False)  # a later fast stage undoes a deterministic one
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    assert torch.backends.cudnn.benchmark


def test_no_nan_fill_gives_bit_identical_weights(gan_toy, tiny_widths, tmp_path, monkeypatch, restore_flags):
    import genreid.engine.setup as setup
    import genreid.pretrain.run as run
    from genreid.config.schema import RuntimeConfig
    from genreid.config.sections.gan import PretrainConfig
    from genreid.engine.context import RunContext
    from genreid.models.generator import load_generator

    real = seeding.seed_everything
    cfg = PretrainConfig(epochs=1, batch_size=4, iters_per_epoch=3, checkpoint_every_iters=2, sheet_rows=2)
    for fill in (True, False):
        def seed(seed: int, deterministic: bool = True, fill: bool = fill) -> None:
            real(seed, deterministic)
            torch.utils.deterministic.fill_uninitialized_memory = fill

        monkeypatch.setattr(setup, "seed_everything", seed)
        ctx = RunContext(seed=1, height=gan_toy["height"], width=gan_toy["width"],
                         model_dir=tmp_path / str(fill) / "models", results_dir=tmp_path / str(fill) / "res",
                         runtime=RuntimeConfig(device="cpu"))
        run.pretrain_generator(gan_toy["df"], gan_toy["render_dir"], gan_toy["encoder"], cfg, tiny_widths, ctx)
    filled = load_generator(tmp_path / "True" / "models" / "generator.pt")
    unfilled = load_generator(tmp_path / "False" / "models" / "generator.pt")
    for a, b in zip(filled[:3], unfilled[:3]):
        for k, v in a.state_dict().items():
            assert torch.equal(b.state_dict()[k], v), k


def test_deterministic_request_skips_the_compiler_import():
    """Every stage seeds: the flag must be set without importing torch._inductor (2.4 s a stage), and the
    compiler, imported later, must still see deterministic mode (a fresh process: the import is global)."""
    import subprocess
    import sys

    code = ("import sys, torch\n"
            "from genreid.utils.seeding import seed_everything\n"
            "seed_everything(1, deterministic=True)\n"
            "print('torch._inductor' in sys.modules, torch.are_deterministic_algorithms_enabled(),\n"
            "      torch.is_deterministic_algorithms_warn_only_enabled())\n"
            "import torch._inductor.config as c\n"
            "print(c.deterministic)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "True", "True"]


def test_deterministic_request_uses_the_public_call_once_the_compiler_is_loaded(restore_flags):
    import torch._inductor.config as inductor_config

    seeding.request_deterministic_algorithms(True, warn_only=True)
    assert torch.are_deterministic_algorithms_enabled() and inductor_config.deterministic
    seeding.request_deterministic_algorithms(False)
    assert not torch.are_deterministic_algorithms_enabled() and not inductor_config.deterministic
