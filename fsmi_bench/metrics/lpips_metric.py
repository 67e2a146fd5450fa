"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, with every weight from a local file.

``lpips.LPIPS(pretrained=True)`` would load its linear layers from the package but fetch the
backbone's ImageNet weights through torchvision's downloader. Here the network is built with
``pnet_rand=True`` (random backbone, nothing fetched) and ``model_path=`` the linear layers' file,
then the backbone's ImageNet weights are copied in from a local torchvision checkpoint. The result is
the same network as the package's own, loaded offline.

Inputs: RGB uint8 images, mapped to [-1, 1] as the package expects. Lower is more similar.
The reference side's features can be computed once and reused (``features`` / ``distance``), which is
how the scorer avoids re-encoding a case's reference for each of its 9 mask conditions.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from fsmi_bench.errors import MissingWeightsError

BACKBONES = {"alex": "alexnet", "squeeze": "squeezenet1_1"}


def _load_state(path) -> dict:
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def build_lpips(net: str, linear_path=None, backbone_path=None, random_backbone: bool = False):
    """An ``lpips.LPIPS`` in eval mode, loaded only from local files.

    net: "alex" or "squeeze". linear_path: the v0.1 linear layers (.pth). backbone_path: the
    torchvision ImageNet checkpoint of the backbone. ``random_backbone=True`` (tests, speed runs)
    keeps the random backbone and random linear layers when the paths are None.
    """
    import lpips
    import torchvision

    if net not in BACKBONES:
        raise ValueError(f"unknown LPIPS network {net!r} (known: {', '.join(BACKBONES)})")
    with warnings.catch_warnings():
        # torchvision warns that lpips uses its deprecated `pretrained=` argument.
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, version="0.1", pretrained=linear_path is not None, pnet_rand=True,
                            model_path=None if linear_path is None else str(linear_path), verbose=False)
    if linear_path is not None:
        # lpips loads with strict=False, which would accept a wrong file silently: check the keys.
        expected = {key for key in model.state_dict() if key.startswith("lin") and not key.startswith("lins.")}
        found = set(_load_state(linear_path))
        if not expected <= found:
            raise MissingWeightsError(f"{linear_path} is not an LPIPS v0.1 {net} linear-layer file "
                                      f"(missing keys: {sorted(expected - found)[:3]})")
    if backbone_path is not None:
        reference = getattr(torchvision.models, BACKBONES[net])(weights=None)
        reference.load_state_dict(_load_state(backbone_path))
        # lpips splits `features` into slices whose children keep their index in `features`.
        for name, child in model.net.named_children():
            if name.startswith("slice"):
                for index, layer in child.named_children():
                    layer.load_state_dict(reference.features[int(index)].state_dict())
    elif not random_backbone:
        raise MissingWeightsError(f"LPIPS-{net} needs the backbone's ImageNet weights file")
    return model.eval()


def to_lpips_tensor(images: list[np.ndarray], device="cpu") -> torch.Tensor:
    """Stack RGB uint8 (H, W, 3) images (same size) into a (N, 3, H, W) float tensor in [-1, 1]."""
    array = np.stack(images).astype(np.float32) / 255.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).to(device) * 2.0 - 1.0


class LpipsDistance:
    """LPIPS split into a feature pass and a distance, so reference features can be reused.

    ``distance`` reproduces ``lpips.LPIPS.forward`` exactly: unit-normalised features per layer,
    squared difference, the linear layer, then a spatial mean (``pixels`` None) or, for the
    ``masked`` region mode, the per-pixel map (each layer's map bilinearly upsampled to the image
    size, as ``lpips.LPIPS(spatial=True)`` does) averaged over the selected pixels.
    """

    def __init__(self, model, device="cpu"):
        self.model = model.to(device)
        self.device = device

    @torch.no_grad()
    def features(self, images: list[np.ndarray]) -> list[list[torch.Tensor]]:
        """Per image, the list of unit-normalised layer features (each (1, C, h, w))."""
        import lpips

        batch = self.model.scaling_layer(to_lpips_tensor(images, self.device))
        layers = self.model.net.forward(batch)
        normalised = [lpips.normalize_tensor(layer) for layer in layers]
        return [[layer[index:index + 1] for layer in normalised] for index in range(len(images))]

    @torch.no_grad()
    def distance(self, output_features, reference_features, pixels: np.ndarray | None = None) -> float:
        import lpips

        total = 0.0
        height = width = None
        if pixels is not None:
            height, width = pixels.shape
            selected = torch.from_numpy(pixels).to(self.device)
        for layer, (out, ref) in enumerate(zip(output_features, reference_features)):
            weighted = self.model.lins[layer]((out - ref) ** 2)
            if pixels is None:
                total = total + lpips.spatial_average(weighted, keepdim=True)
            else:
                total = total + lpips.upsample(weighted, out_HW=(height, width))
        if pixels is None:
            return float(total.reshape(()))
        return float(total[0, 0][selected].mean())
