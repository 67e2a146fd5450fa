"""The denoising UNet: ``UNet2DConditionModel`` fed the noisy latent concatenated with the scene latent.

- ``scratch_unet_config``: a config of the sizes in a ``"source": "scratch"`` section, 2 x latent channels in.
- ``widen_conv_in``: a pretrained UNet (Stable Diffusion, 4 channels in) gets 8 input channels; the
  new channels' weights start at zero so the widened UNet first behaves exactly like the pretrained one
  (as diffusers' ``examples/instruct_pix2pix/train_instruct_pix2pix.py``).
- ``install_attention_processors``: DCA processors on every cross-attention layer (or standard ones
  when DCA is switched off), installed with ``set_attn_processor``; the UNet class is not edited.
"""

from __future__ import annotations

import torch

from flexedit_model.attention import ConditionAttnProcessor, DecoupledCrossAttnProcessor


def scratch_unet_config(section: dict, latent_channels: int) -> dict:
    return dict(
        sample_size=None, in_channels=2 * latent_channels, out_channels=latent_channels,
        block_out_channels=list(section["block_out_channels"]), layers_per_block=section["layers_per_block"],
        cross_attention_dim=section["cross_attention_dim"], attention_head_dim=section["attention_head_dim"],
        norm_num_groups=section["norm_num_groups"], down_block_types=list(section["down_block_types"]),
        up_block_types=list(section["up_block_types"]),
    )


def widen_conv_in(unet, in_channels: int) -> None:
    """Give ``unet`` ``in_channels`` input channels in place; the added channels' weights are zero."""
    old = unet.conv_in
    if old.in_channels == in_channels:
        return
    if old.in_channels > in_channels:
        raise ValueError(f"conv_in already has {old.in_channels} channels, more than {in_channels}")
    new = torch.nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)


def install_attention_processors(unet, num_subject_tokens: int, use_dca: bool) -> None:
    """DCA processors on cross-attention layers (``attn2``), ``ConditionAttnProcessor`` elsewhere.

    The subject projections start as copies of the layer's ``to_k``/``to_v`` (as IP-Adapter does), so
    f2 is first read the way f1 is.
    """
    processors = {}
    for name in unet.attn_processors:
        attention = unet.get_submodule(name.removesuffix(".processor"))
        if use_dca and name.endswith("attn2.processor"):
            processor = DecoupledCrossAttnProcessor(
                attention.to_q.out_features, attention.to_k.in_features, num_subject_tokens
            )
            if not attention.to_k.weight.is_meta:  # a UNet built to be loaded has no values to copy yet
                with torch.no_grad():
                    processor.to_k_subject.weight.copy_(attention.to_k.weight)
                    processor.to_v_subject.weight.copy_(attention.to_v.weight)
            processors[name] = processor.to(attention.to_k.weight.device, attention.to_k.weight.dtype)
        else:
            processors[name] = ConditionAttnProcessor()
    unet.set_attn_processor(processors)
