"""The generator networks compute what the authors' code computes (docs/method.md#networks), each
difference a switch: the appearance-code split, the decoder's layer norm, E_str's ASPP activations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genreid.config.sections.model import GeneratorWidths as WidthsConfig
from genreid.errors import CheckpointError, ConfigError
from genreid.models.decoder import CodeOptions, Decoder
from genreid.models.gan_blocks import AuthorsLayerNorm
from genreid.models.generator import build_generator, load_generator, save_generator
from genreid.models.id_encoder import build_encoder
from genreid.models.structure_encoder import StructureEncoder

C, S = 2048, 4  # paper widths: ResNet-50 channels, stripes


def _mlp_outputs(dec: Decoder, a: torch.Tensor) -> list[torch.Tensor]:
    parts = dec.mlp_inputs(a)
    return [torch.cat([dec.mlp_scale[k](parts[:, k]), dec.mlp_bias[k](parts[:, k])], 1) for k in range(dec.stripes)]


@pytest.fixture(scope="module")
def paper_decoders() -> dict[str, Decoder]:
    torch.manual_seed(0)
    return {split: Decoder(stripe_dim=C, stripes=S, code=CodeOptions(code_split=split)).eval()
            for split in ("channels", "stripes")}


@pytest.mark.parametrize("channel, stripe", [(0, 3), (511, 0), (512, 2), (1500, 1), (2047, 3)])
def test_channel_split_feeds_mlp_k_one_channel_quarter_of_all_stripes(paper_decoders, channel, stripe):
    """Perturb channel c of stripe s (genreid's layout: a[s*C + c]): under the authors' split only MLP
    pair c // 512 changes; under the stripe split only pair s."""
    torch.manual_seed(1)
    a = torch.randn(2, S * C)
    a2 = a.clone()
    a2[:, stripe * C + channel] += 3.0
    for split, expected in (("channels", channel // (C // S)), ("stripes", stripe)):
        dec = paper_decoders[split]
        with torch.no_grad():
            changed = [not torch.equal(o1, o2) for o1, o2 in zip(_mlp_outputs(dec, a), _mlp_outputs(dec, a2))]
        assert changed == [k == expected for k in range(S)], split


def test_channel_split_input_is_the_authors_channel_major_vector(paper_decoders):
    """MLP k reads exactly ID[:, 2048k:2048(k+1)] of the authors' view(B, 2048*4) of the (B, 2048, 4, 1)
    stripe map, in their element order (channel*4 + stripe), so their MLP weights apply unchanged."""
    torch.manual_seed(2)
    pooled = torch.randn(3, C, S, 1)  # the stripe-pooled layer4 map
    authors_id = pooled.view(3, C * S)
    genreid_a = pooled.flatten(2).transpose(1, 2).reshape(3, S * C)  # IdEncoder's layout (stripe-major)
    parts = paper_decoders["channels"].mlp_inputs(genreid_a)
    for k in range(S):
        assert torch.equal(parts[:, k], authors_id[:, C * k:C * (k + 1)])
        assert torch.equal(parts[:, k].reshape(3, C // S, S), pooled[:, C // S * k:C // S * (k + 1), :, 0])
    assert torch.equal(paper_decoders["stripes"].mlp_inputs(genreid_a)[:, 1], pooled[:, :, 1, 0])


def test_mlp_input_width_is_c_in_both_splits(paper_decoders):
    for dec in paper_decoders.values():
        dims = [(m.in_features, m.out_features) for m in dec.mlp_scale[2] if isinstance(m, torch.nn.Linear)]
        assert dims == [(C, 512), (512, 512), (512, 256)]
        assert dec.mlp_inputs(torch.zeros(1, S * C)).shape == (1, S, C)


def test_encoder_code_reaches_each_mlp_by_channel_groups():
    """End to end with IdEncoder's own stripe pooling (small trunk): the decoder's channel split equals the
    authors' flattening of the same pooled map."""
    torch.manual_seed(3)
    enc = build_encoder("resnet18", "none", embedding_dim=16).eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        a, _ = enc(x)
        authors_id = enc.stripe_pool(enc.feature_map(x)).view(2, -1)  # the authors' f.view(B, C*part)
    dec = Decoder(stripe_dim=enc.channels, stripes=enc.stripes, in_channels=8, channels=(4, 4), res_blocks=2,
                  mlp_dim=8)
    assert torch.equal(dec.mlp_inputs(a).reshape(2, -1), authors_id)


def test_channel_split_needs_channels_divisible_by_stripes():
    with pytest.raises(ConfigError, match="divide"):
        Decoder(stripe_dim=30, stripes=4, in_channels=8, channels=(4, 4), res_blocks=2, mlp_dim=8)
    Decoder(stripe_dim=30, stripes=4, in_channels=8, channels=(4, 4), res_blocks=2, mlp_dim=8,
            code=CodeOptions(code_split="stripes"))


def test_code_norm_and_mixing_are_layout_agnostic():
    """Standardisation and D-Mixup act per dimension: with the channel split, G fed the standardised code
    equals a plain G fed the code standardised by hand, and mixing before or after the split agree."""
    torch.manual_seed(4)
    kw = dict(stripe_dim=8, stripes=4, in_channels=8, channels=(4, 4), res_blocks=2, mlp_dim=8)
    plain, normed = Decoder(**kw), Decoder(**kw, code=CodeOptions(code_norm=True))
    normed.load_state_dict({**plain.state_dict(), "code_mean": torch.zeros(32), "code_std": torch.ones(32)})
    codes = 0.9 + 0.3 * torch.randn(64, 32)
    normed.set_code_statistics(codes)
    z = (codes[:3] - codes.mean(0)) / (codes.std(0) + 1e-4)
    s = torch.randn(3, 8, 4, 2)
    torch.testing.assert_close(normed(s, codes[:3]), plain(s, z))
    lam, a, b = 0.7, codes[:3], codes[3:6]
    torch.testing.assert_close(plain.mlp_inputs(lam * a + (1 - lam) * b),
                               lam * plain.mlp_inputs(a) + (1 - lam) * plain.mlp_inputs(b))


def _layer_norm_by_hand(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(x.shape[0], -1)
    n = flat.shape[1]
    mean = flat.sum(1) / n
    std = (((flat - mean[:, None]) ** 2).sum(1) / (n - 1)).sqrt()  # unbiased
    y = (x - mean[:, None, None, None]) / (std[:, None, None, None] + 1e-5)  # eps on the std
    return y * gamma[None, :, None, None] + beta[None, :, None, None]


def test_authors_layer_norm_matches_the_hand_formula():
    torch.manual_seed(5)
    ln = AuthorsLayerNorm(6)
    assert ((ln.gamma >= 0) & (ln.gamma < 1)).all() and ln.gamma.std() > 0.1  # U(0,1) at init
    assert torch.equal(ln.beta.detach(), torch.zeros(6))
    with torch.no_grad():
        ln.beta.copy_(torch.linspace(-1, 1, 6))
    gn = torch.nn.GroupNorm(1, 6)  # genreid's earlier form: (x - mean) / sqrt(biased var + eps)
    with torch.no_grad():
        gn.weight.copy_(ln.gamma)
        gn.bias.copy_(ln.beta)
    with torch.no_grad():
        for x in (3.0 + 2.0 * torch.randn(4, 6, 5, 3), 2e-5 * torch.randn(2, 6, 3, 3)):
            torch.testing.assert_close(ln(x), _layer_norm_by_hand(x, ln.gamma, ln.beta))
            assert not torch.allclose(gn(x), ln(x), atol=1e-3)


def test_decoder_norm_switch_picks_the_layer_norm():
    kw = dict(stripe_dim=8, stripes=4, in_channels=8, channels=(4, 4), res_blocks=2, mlp_dim=8)
    authors, legacy = Decoder(**kw), Decoder(**kw, norm="group_norm")
    assert isinstance(authors.up[1].norm, AuthorsLayerNorm) and isinstance(authors.up[3].norm, AuthorsLayerNorm)
    assert isinstance(legacy.up[1].norm, torch.nn.GroupNorm)
    assert {"up.1.norm.gamma", "up.1.norm.beta"} <= set(authors.state_dict())
    assert "up.1.norm.weight" in legacy.state_dict()  # distinct names: one never loads into the other


def _channel_means(y: torch.Tensor) -> torch.Tensor:
    return y.mean((2, 3))


def test_aspp_has_no_activation_after_branches_or_fuse():
    """Instance norm without affine and no activation leave every channel with mean 0 and variance 1;
    a LeakyReLU after it would shift the mean."""
    torch.manual_seed(6)
    x = torch.randn(2, 1, 64, 32)
    authors = StructureEncoder()  # paper widths, aspp_activation none
    legacy = StructureEncoder(aspp_activation="lrelu")
    legacy.load_state_dict(authors.state_dict())  # same weights, same keys
    with torch.no_grad():
        h = authors.stem(x)
        out = authors(x)
        branch0 = authors.aspp.branches[0](h)
        dilated = [b(h) for b in authors.aspp.branches[1:]]
        reduction = authors.aspp.branches[1][0](h)  # the 1x1 in front of a dilated conv keeps LeakyReLU
        legacy_out = legacy(x)
    for y in (out, branch0, *dilated):
        torch.testing.assert_close(_channel_means(y), torch.zeros_like(_channel_means(y)), atol=1e-4, rtol=0)
        assert (y < -0.5).any()
    assert _channel_means(legacy_out).mean() > 0.1  # LeakyReLU(IN(x)) has a positive mean
    block = authors.aspp.branches[1][0]
    with torch.no_grad():
        torch.testing.assert_close(reduction, F.leaky_relu(block.norm(block.conv(block.pad(h))), 0.2))
        torch.testing.assert_close(branch0, authors.aspp.branches[0].norm(authors.aspp.branches[0].conv(h)))
    acts = [type(m.act).__name__ for m in (authors.aspp.branches[0], authors.aspp.fuse,
                                           *[b[1] for b in authors.aspp.branches[1:]])]
    assert acts == ["Identity"] * 5


def test_config_defaults_are_the_authors_and_reach_the_networks():
    cfg = WidthsConfig()
    assert (cfg.code_split, cfg.aspp_activation, cfg.decoder_norm) == ("channels", "none", "authors_ln")
    widths = WidthsConfig(str_channels=[4, 8, 8, 8], str_out=8, dec_channels=[8, 4], mlp_dim=8,
                          dis_channels=[4, 8], dis_scales=1, res_blocks=1)
    e_str, dec, _ = build_generator(widths.model_copy(update={"code_split": "stripes", "aspp_activation": "lrelu",
                                                              "decoder_norm": "group_norm"}), stripe_dim=16, stripes=4)
    assert e_str.arch["aspp_activation"] == "lrelu" and dec.arch["code_split"] == "stripes"
    assert dec.arch["norm"] == "group_norm"


def test_generator_files_from_before_the_switches_are_refused_with_the_fix(tmp_path):
    """Their networks computed something else (stripes, GroupNorm, LeakyReLU): never reinterpret them."""
    widths = WidthsConfig(str_channels=[4, 8, 8, 8], str_out=8, dec_channels=[8, 4], mlp_dim=8,
                          dis_channels=[4, 8], dis_scales=1, res_blocks=1)
    path = save_generator(tmp_path / "generator.pt", *build_generator(widths, stripe_dim=16, stripes=4))
    blob = torch.load(path, weights_only=True)
    del blob["arch"]["str_encoder"]["aspp_activation"]
    del blob["arch"]["decoder"]["code_split"], blob["arch"]["decoder"]["norm"]
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="(?s)written before.*rerun the pretrain stage"):
        load_generator(path)
