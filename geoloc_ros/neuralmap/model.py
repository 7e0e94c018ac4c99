"""Networks of the neural map localizer (after OrienterNet, CVPR 2023, and SNAP, NeurIPS 2023).

- `ImageEncoder`: small FPN over the (rectified) camera image -> features at 1/stride.
- `CarLifter`: per-pixel distribution over depth bins; features are spread along each
  image column into a polar (depth, column) grid, then resampled to the Cartesian BEV.
- Drone: image features sampled at the ground points of the ortho grid (geometry.py).
- `BevHead`: BEV features -> L2-normalised matching features and a confidence in (0, 1).
- `MapEncoder`: orthophoto raster -> L2-normalised matching features, same cell size.

The sampling grids come from geometry.py as inputs, so the exported ONNX graphs take
them as tensors and need no camera code of their own.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from geoloc_ros.neuralmap.config import NeuralMapConfig


def _cbr(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


class _Res(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _cbr(c, c), nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class _UNet(nn.Module):
    """Three scales (1/s, 1/2s, 1/4s) fused top-down back to 1/s (channels a, b, c).

    The fine scale stays narrow (a channels): at 1/s most of the cost is there.
    """

    def __init__(self, c_in: int, c_out: int, widths: tuple[int, int, int], stem_stride: int):
        super().__init__()
        a, b, c = widths
        stem = [_cbr(c_in, a, 2)] if stem_stride >= 2 else [_cbr(c_in, a)]
        if stem_stride == 4:
            stem.append(_cbr(a, a, 2))
        self.stem = nn.Sequential(*stem, _Res(a))
        self.down1 = nn.Sequential(_cbr(a, b, 2), _Res(b))
        self.down2 = nn.Sequential(_cbr(b, c, 2), _Res(c), _Res(c))
        self.up2 = nn.Conv2d(c, b, 1)
        self.up1 = nn.Conv2d(b, a, 1)
        self.out = nn.Sequential(_cbr(a, a), nn.Conv2d(a, c_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f0 = self.stem(x)
        f1 = self.down1(f0)
        f2 = self.down2(f1)
        y = F.interpolate(self.up2(f2), size=f1.shape[-2:], mode="bilinear", align_corners=False)
        y = F.relu(y + f1)
        y = F.interpolate(self.up1(y), size=f0.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(F.relu(y + f0))


def normalize_image(rgb_u8: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 or 0-255 float -> zero-centred floats."""
    return rgb_u8.float() / 127.5 - 1.0


class ImageEncoder(nn.Module):
    def __init__(self, cfg: NeuralMapConfig) -> None:
        super().__init__()
        self.net = _UNet(3, cfg.image_channels, (32, 48, 64), cfg.feat_stride)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(normalize_image(image))


class CarLifter(nn.Module):
    """Image features -> polar grid via a learned per-pixel depth distribution.

    The depth head also sees each row's ray elevation tan(angle below the horizon), so
    the ground-plane relation depth = height / tan(angle) is one linear unit away.
    """

    def __init__(self, cfg: NeuralMapConfig) -> None:
        super().__init__()
        c = cfg.image_channels
        self.depth = nn.Sequential(
            nn.Conv2d(c + 1, c, 3, 1, 1), nn.ReLU(), nn.Conv2d(c, cfg.depth_bins, 1)
        )
        self.value = nn.Conv2d(c, c, 1)

    def forward(self, feat: torch.Tensor, elevation: torch.Tensor) -> torch.Tensor:
        """feat (B, C, h, w), elevation (B, 1, h, w) -> polar (B, C, D, w)."""
        logits = self.depth(torch.cat([feat, elevation], 1))
        prob = torch.softmax(logits, dim=1)  # over depth bins, per pixel
        value = self.value(feat)
        return torch.einsum("bdhw,bchw->bcdw", prob, value) / feat.shape[2]


class BevHead(nn.Module):
    def __init__(self, cfg: NeuralMapConfig) -> None:
        super().__init__()
        c = cfg.image_channels
        self.net = nn.Sequential(_cbr(c, c), _Res(c), nn.Conv2d(c, cfg.match_channels + 1, 1))

    def forward(self, bev: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """bev (B, C, nx, ny), valid (B, 1, nx, ny) -> unit features (B, M, nx, ny), conf."""
        y = self.net(bev)
        feat = F.normalize(y[:, :-1], dim=1)
        conf = torch.sigmoid(y[:, -1:]) * valid
        return feat, conf


class MapEncoder(nn.Module):
    def __init__(self, cfg: NeuralMapConfig) -> None:
        super().__init__()
        self.net = _UNet(cfg.map_channels_in, cfg.match_channels, (16, 32, 48), 1)

    def forward(self, raster: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) orthophoto at res_m -> (B, M, H, W) unit-norm features."""
        return F.normalize(self.net(normalize_image(raster)), dim=1)


class NeuralMapNet(nn.Module):
    """All trainable parts; `bev()` and `map_features()` are the two exported graphs."""

    def __init__(self, cfg: NeuralMapConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.image_encoder = ImageEncoder(cfg)
        self.lifter = CarLifter(cfg) if cfg.platform == "car" else None
        self.bev_head = BevHead(cfg)
        self.map_encoder = MapEncoder(cfg)
        self.log_scale = nn.Parameter(torch.tensor(3.0))  # softmax temperature of the scores

    def bev(
        self, image: torch.Tensor, grid: torch.Tensor, valid: torch.Tensor, elevation: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rectified image (B, 3, H, W) -> BEV features (B, M, nx, ny) and confidence.

        grid (B, nx, ny, 2) samples the polar grid (car) or the image features (drone);
        elevation (B, 1, h, w) is the car's per-row ray elevation (ignored for drones).
        """
        feat = self.image_encoder(image)
        src = self.lifter(feat, elevation) if self.lifter is not None else feat
        bev = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return self.bev_head(bev, valid[:, None])

    def map_features(self, raster: torch.Tensor) -> torch.Tensor:
        return self.map_encoder(raster)
