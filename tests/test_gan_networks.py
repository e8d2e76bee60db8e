"""Generator networks: shapes at paper and small widths, code paths that must matter, padding fallback."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genreid.errors import ConfigError
from genreid.models.decoder import CodeOptions, Decoder
from genreid.models.discriminator import MultiScaleDiscriminator
from genreid.models.gan_blocks import SafePad
from genreid.models.structure_encoder import StructureEncoder


def test_structure_encoder_paper_widths_give_quarter_resolution_code():
    enc = StructureEncoder()  # paper: 1->16->32->32->64, ASPP to 128
    s = enc(torch.randn(2, 1, 64, 32))
    assert s.shape == (2, 128, 16, 8)
    # ASPP concat = 4 branches x 32 = 128 channels into the 1x1 fuse
    assert enc.aspp.fuse.conv.in_channels == 128 and enc.aspp.fuse.conv.out_channels == 128


def test_decoder_paper_mlps_are_2048_512_512_256_and_eight_heads():
    dec = Decoder(stripe_dim=2048, stripes=4, in_channels=128)
    assert len(dec.mlp_scale) == 4 and len(dec.mlp_bias) == 4
    dims = [(m.in_features, m.out_features) for m in dec.mlp_scale[0] if isinstance(m, torch.nn.Linear)]
    assert dims == [(2048, 512), (512, 512), (512, 256)]
    assert dec.values_per_stripe == [256] * 4  # 8 AdaIN layers x 128 channels: 2 layers per stripe


def test_decoder_mlp_input_follows_encoder_stripe_width():
    dec = Decoder(stripe_dim=512, stripes=4, in_channels=16, channels=(8, 8), res_blocks=2, mlp_dim=32)
    assert dec.mlp_bias[3][0].in_features == 512
    assert dec.values_per_stripe == [16, 16, 16, 16]  # 4 AdaIN layers x 16 channels
    out = dec(torch.randn(3, 16, 8, 4), torch.randn(3, 4 * 512))
    assert out.shape == (3, 3, 32, 16)
    with pytest.raises(ValueError, match="stripes"):
        dec(torch.randn(3, 16, 8, 4), torch.randn(3, 2048 + 1))


def test_decoder_output_depends_on_both_codes():
    torch.manual_seed(0)
    dec = Decoder(stripe_dim=32, stripes=4, in_channels=16, channels=(8, 8), res_blocks=2, mlp_dim=16)
    s, a = torch.randn(2, 16, 8, 4), torch.randn(2, 128)
    base = dec(s, a)
    assert not torch.allclose(base, dec(s, a + torch.randn_like(a)))
    assert not torch.allclose(base, dec(s + torch.randn_like(s), a))
    # changing only the last stripe still changes the image (it reaches every MLP under the authors'
    # channel split, MLP 3 alone under code_split='stripes')
    a2 = a.clone()
    a2[:, 96:] += 1.0
    assert not torch.allclose(base, dec(s, a2))


@pytest.mark.parametrize("split", ["channels", "stripes"])
def test_decoder_with_fewer_adain_layers_than_stripes_lets_every_mlp_act(split):
    torch.manual_seed(0)
    dec = Decoder(stripe_dim=8, stripes=4, in_channels=8, channels=(4, 4), res_blocks=1, mlp_dim=8,
                  code=CodeOptions(code_split=split))
    assert dec.values_per_stripe == [4, 4, 4, 4]  # 2 layers x 8 channels cut in 4
    s, a = torch.randn(2, 8, 4, 2), torch.randn(2, 32)
    base = dec(s, a)
    for k in range(4):
        # the code values MLP pair k reads: channels 2k, 2k+1 of every stripe, or stripe k
        cols = [st * 8 + c for st in range(4) for c in (2 * k, 2 * k + 1)] if split == "channels" \
            else list(range(8 * k, 8 * (k + 1)))
        a2 = a.clone()
        a2[:, cols] += 1.0
        changed = [not torch.equal(p1, p2) for p1, p2 in zip(dec.mlp_inputs(a).unbind(1), dec.mlp_inputs(a2).unbind(1))]
        assert changed == [j == k for j in range(4)], k
        assert not torch.allclose(base, dec(s, a2)), k
    with pytest.raises(ConfigError, match="stripes"):
        Decoder(stripe_dim=8, stripes=17, in_channels=8, res_blocks=1)


def test_discriminator_scales_no_norm_and_gaussian_init():
    torch.manual_seed(0)
    d = MultiScaleDiscriminator(channels=(32, 64), scales=3, res_blocks=4)
    outs = d(torch.randn(2, 3, 64, 32))
    assert [tuple(o.shape) for o in outs] == [(2, 1, 16, 8), (2, 1, 8, 4), (2, 1, 4, 2)]
    assert not any(isinstance(m, torch.nn.modules.batchnorm._NormBase | torch.nn.GroupNorm) for m in d.modules())
    w = torch.cat([m.weight.detach().flatten() for m in d.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(float(w.std()) - 0.02) < 0.002 and abs(float(w.mean())) < 0.002


def test_safe_pad_reflects_when_it_fits_and_replicates_when_not():
    x = torch.arange(2 * 16 * 8, dtype=torch.float32).reshape(1, 2, 16, 8)
    assert torch.equal(SafePad(3)(x), F.pad(x, (3,) * 4, mode="reflect"))
    big = SafePad(9)(x)  # 9 >= width 8: reflection impossible
    assert big.shape == (1, 2, 34, 26)
    assert torch.equal(big, F.pad(x, (9,) * 4, mode="replicate"))


def test_safe_pad_keeps_bf16_under_cpu_autocast_with_the_same_values_and_gradients():
    """CPU autocast runs reflection padding in fp32 (a cast there and back per pad); SafePad pads in the
    input's dtype instead. Forward values are identical; the gradient only sums border taps."""
    x = torch.randn(2, 3, 16, 8).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = SafePad(2)(x)
        plain = F.pad(x, (2,) * 4, mode="reflect")  # what the pad did before: autocast's fp32 op
    assert y.dtype == torch.bfloat16 and plain.dtype == torch.float32
    assert torch.equal(y.float(), plain)
    g = torch.randn(y.shape).bfloat16()
    y.backward(g)
    xf = x.detach().float().requires_grad_()
    F.pad(xf, (2,) * 4, mode="reflect").backward(g.float())
    torch.testing.assert_close(x.grad.float(), xf.grad, rtol=2e-2, atol=2e-2)


def test_decoder_code_norm_standardises_with_fixed_training_statistics():
    torch.manual_seed(0)
    kw = dict(stripe_dim=8, stripes=4, in_channels=8, channels=(4, 4), res_blocks=1, mlp_dim=8)
    plain, normed = Decoder(**kw), Decoder(**kw, code=CodeOptions(code_norm=True))
    normed.load_state_dict({**plain.state_dict(), "code_mean": torch.zeros(32), "code_std": torch.ones(32)})
    s = torch.randn(3, 8, 4, 2)
    codes = 0.9 + 0.3 * torch.randn(64, 32)  # a large shared offset, as a briefly trained E_id gives
    normed.set_code_statistics(codes)
    torch.testing.assert_close(normed.code_mean, codes.mean(0))
    # G sees exactly the standardised code, so a plain decoder fed it paints the same image
    z = (codes[:3] - codes.mean(0)) / (codes.std(0) + 1e-4)
    torch.testing.assert_close(normed(s, codes[:3]), plain(s, z))
    # the statistics are buffers: saved with the weights, never trained
    assert {"code_mean", "code_std"} <= set(normed.state_dict()) and normed.arch["code_norm"] is True
    assert all("code_" not in name for name, _ in normed.named_parameters())
    with pytest.raises(ValueError, match="code_norm=True"):
        plain.set_code_statistics(codes)
    with pytest.raises(ValueError, match="expected"):
        normed.set_code_statistics(codes[:, :5])
