"""Images <-> latents: the VAE of Stable Diffusion, or a parameter-free pixel-shuffle codec.

Configs trained from scratch use ``PixelShuffleAutoencoder``: space-to-depth by ``factor`` (a 128 x 128
RGB image becomes 48 x 32 x 32 for factor 4). It is exactly invertible, so a small FlexEdit trained for
minutes needs no VAE training first. Images are float tensors (B, 3, H, W) in [-1, 1], RGB.

The user's Stable Diffusion VAE (``"source": "pretrained"``) stays frozen, so a saved pipeline does not copy
it (335 MB): ``ReferencedAutoencoderKL`` saves its config and ``base_weights.json`` (folder and sha256, as
the model's LLaVA and CLIP) and loads the weights from that folder after checking the digest. A VAE
built from sizes (``tiny``) is saved in full: it exists nowhere else, and is a few hundred KB.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin


class ReferencedAutoencoderKL(AutoencoderKL):
    """An AutoencoderKL that, when it has a ``base_reference``, is saved as that reference, not as weights."""

    base_reference = None  # a flexedit_model.checkpoint.BaseReference, or None: saved in full

    def save_pretrained(self, save_directory, *args, **kwargs):
        if self.base_reference is None:
            return super().save_pretrained(save_directory, *args, **kwargs)
        from flexedit_model.checkpoint import write_references

        if not kwargs.get("is_main_process", True):
            return None
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("diffusion_pytorch_model*"):
            stale.unlink()
        self.save_config(folder)  # the sizes, readable without the base
        write_references(folder, {"vae": self.base_reference})
        return None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """A saved reference: the referenced folder's weights, after checking its digest (one-line
        MissingWeightsError / IntegrityError naming the VAE); any other folder: as AutoencoderKL loads it."""
        from flexedit_model.checkpoint import BASES_FILE, check_base, read_references

        folder = Path(pretrained_model_name_or_path) / (kwargs.get("subfolder") or "")
        if not (folder / BASES_FILE).is_file():
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        reference = read_references(folder)["vae"]
        kwargs.pop("subfolder", None)
        vae = super().from_pretrained(check_base(reference), **kwargs)
        vae.base_reference = reference
        return vae


class PixelShuffleAutoencoder(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, factor: int = 4):
        super().__init__()
        # A buffer so that ModelMixin has a device and dtype to report and save.
        self.register_buffer("scale", torch.ones(()), persistent=True)

    @property
    def latent_channels(self) -> int:
        return 3 * self.config.factor**2

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pixel_unshuffle(images, self.config.factor) * self.scale

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pixel_shuffle(latents / self.scale, self.config.factor)


def latent_channels(vae) -> int:
    return vae.latent_channels if isinstance(vae, PixelShuffleAutoencoder) else vae.config.latent_channels


def spatial_factor(vae) -> int:
    if isinstance(vae, PixelShuffleAutoencoder):
        return vae.config.factor
    return 2 ** (len(vae.config.block_out_channels) - 1)


def encode(vae, images: torch.Tensor) -> torch.Tensor:
    """Latents of images in [-1, 1]; the VAE's distribution mode (deterministic), times its scaling factor."""
    if isinstance(vae, PixelShuffleAutoencoder):
        return vae.encode_images(images)
    return vae.encode(images).latent_dist.mode() * vae.config.scaling_factor


def decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (not clamped) from latents."""
    if isinstance(vae, PixelShuffleAutoencoder):
        return vae.decode_latents(latents)
    return vae.decode(latents / vae.config.scaling_factor).sample


def build_vae(section: dict, dtype: torch.dtype | None = None):
    """The codec a config's ``vae`` section names (scratch sizes, or the user's local SD VAE, frozen, kept in
    ``dtype``; None = as stored)."""
    from flexedit_model.checkpoint import reference_base
    from flexedit_model.config import pretrained_path

    if section["kind"] == "pixel_shuffle":
        return PixelShuffleAutoencoder(factor=section["factor"])
    if section.get("source") == "pretrained":
        folder = pretrained_path(section, "the Stable Diffusion 1.5 VAE", "config.json")
        vae = ReferencedAutoencoderKL.from_pretrained(folder, **({"torch_dtype": dtype} if dtype is not None else {}))
        vae.base_reference = reference_base("vae", folder)
        return vae
    channels = list(section["block_out_channels"])
    return AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=channels, latent_channels=section["latent_channels"],
        down_block_types=["DownEncoderBlock2D"] * len(channels), up_block_types=["UpDecoderBlock2D"] * len(channels),
        norm_num_groups=section["norm_num_groups"], layers_per_block=1,
    )
