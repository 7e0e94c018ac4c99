"""PoseNet: a compact CNN backbone and an MC-dropout regression head (Kendall 2015-2017).

The backbone runs once per frame; the head is sampled N times with explicit dropout
masks, so PyTorch, ONNX Runtime and TensorRT draw the same samples from the same
masks (`head(feat, mask_hidden)`). Dropout sits on the hidden layer only: dropping the
flattened spatial features (which say *where* things are in the view) stopped the
network from learning the place at all (docs/posenet.md), and it made every MC sample
pay for the large first layer. The first layer therefore runs once per frame and its
output is broadcast against the N masks.

Position comes from anchors (Saha et al., "Improved visual relocalization by
discovering anchor points", BMVC 2018): K anchor positions spread over the area
(k-means of the training poses); the head scores every anchor and regresses its own
horizontal offset from each, plus the height; the pose is the best anchor plus its
offset. Classification escapes the "predict the mean" plateau plain regression sits
on for a whole town. With `anchors_xy_m` empty it is PoseNet's direct regression.

Head output layout, per sample: [K logits | K x 2 offsets / anchor_scale_m |
z normalised | quaternion x y z w (unnormalised)]; K = 0 gives [x y z normalised | q].
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812  (PyTorch's own convention)

from geoloc_ros.posenet.config import PoseNetConfig


class _Residual(nn.Module):
    """Two 3x3 conv-BN layers with a (strided) shortcut: a ResNet basic block."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.short(x))


class Backbone(nn.Module):
    """Image (B, C, H, W) normalised to ~[-1, 1] -> flattened spatial features (B, D).

    Keeping the coarse spatial layout (rather than global pooling) lets the head see
    where things are in the view, which is what position regression needs.
    """

    def __init__(self, cfg: PoseNetConfig) -> None:
        super().__init__()
        w = cfg.widths
        self.stem = nn.Sequential(
            nn.Conv2d(cfg.channels, w[0], 3, 2, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU()
        )
        self.stages = nn.Sequential(*[_Residual(w[i], w[i + 1], 2) for i in range(len(w) - 1)])
        self.reduce = nn.Sequential(
            nn.Conv2d(w[-1], cfg.feature_channels, 1, bias=False),
            nn.BatchNorm2d(cfg.feature_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.stages(self.stem(x))).flatten(1)


class DropoutHead(nn.Module):
    """Features (B, D) and hidden-layer masks (N, hidden) -> (N, cfg.out_dim).

    B is N (one feature row per sample, as in training) or 1 (one frame, broadcast to
    its N MC samples, so the first layer runs once). Masks are already scaled by
    1/(1-p) (inverted dropout); pass ones for a deterministic pass.
    """

    def __init__(self, cfg: PoseNetConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.feature_dim, cfg.hidden)
        self.fc_p = nn.Linear(cfg.hidden, cfg.out_dim - 4)
        self.fc_q = nn.Linear(cfg.hidden, 4)
        with torch.no_grad():  # start near the identity rotation, not a degenerate 0
            self.fc_q.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0]))

    def forward(self, feat: torch.Tensor, mask_hidden: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc1(feat)) * mask_hidden
        return torch.cat([self.fc_p(h), self.fc_q(h)], dim=1)


def sample_masks(
    n: int, cfg: PoseNetConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Inverted-dropout masks (n, hidden) with keep probability 1 - p."""
    keep = 1.0 - cfg.dropout
    return (torch.rand(n, cfg.hidden, generator=generator) < keep).float() / keep


class PoseNet(nn.Module):
    """Backbone + head; `forward` is a training pass with fresh dropout masks."""

    def __init__(self, cfg: PoseNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        self.head = DropoutHead(cfg)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mask = sample_masks(x.shape[0], self.cfg, generator)
        return self.head(self.backbone(x), mask.to(x.device))


class HomoscedasticPoseLoss(nn.Module):
    """Kendall & Cipolla (CVPR 2017): sum of L_i e^-s_i + s_i with learned s_i.

    Terms: position (L1 of normalised position, or with anchors L1 of the true
    anchor's offset and of the height), anchor classification (cross-entropy), and
    rotation (L1 of unit quaternions, sign-invariant: q and -q are one rotation).
    """

    def __init__(self, cfg: PoseNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.s_p = nn.Parameter(torch.tensor(0.0))
        # all weights start equal: positions are normalised, so Kendall's s_q = -3 for
        # metres would weight rotation ~20x and keep the position from being learned
        self.s_q = nn.Parameter(torch.tensor(0.0))
        self.s_c = nn.Parameter(torch.tensor(0.0))
        if cfg.n_anchors:
            self.register_buffer("anchors", torch.tensor(cfg.anchors_xy_m, dtype=torch.float32))
        self.register_buffer("p_mean", torch.tensor(cfg.p_mean_m, dtype=torch.float32))
        self.register_buffer("p_scale", torch.tensor(cfg.p_scale_m, dtype=torch.float32))

    def forward(self, out: torch.Tensor, p_m: torch.Tensor, q_xyzw: torch.Tensor):
        """Loss, and its position / rotation / classification parts (detached)."""
        k = self.cfg.n_anchors
        q = F.normalize(out[:, -4:], dim=1)
        l_q = torch.minimum((q - q_xyzw).abs().sum(1), (q + q_xyzw).abs().sum(1)).mean()
        if not k:
            l_p = (out[:, :3] - (p_m - self.p_mean) / self.p_scale).abs().sum(1).mean()
            l_c = torch.zeros((), device=out.device)
        else:
            d2 = ((p_m[:, None, :2] - self.anchors[None]) ** 2).sum(-1)
            best = d2.argmin(1)
            l_c = F.cross_entropy(out[:, :k], best)
            off = out[:, k : 3 * k].reshape(-1, k, 2)[torch.arange(len(best)), best]
            want = (p_m[:, :2] - self.anchors[best]) / self.cfg.anchor_scale_m
            z_want = (p_m[:, 2] - self.p_mean[2]) / self.p_scale[2]
            l_p = (off - want).abs().sum(1).mean() + (out[:, 3 * k] - z_want).abs().mean()
        loss = l_p * torch.exp(-self.s_p) + self.s_p + l_q * torch.exp(-self.s_q) + self.s_q
        if k:
            loss = loss + l_c * torch.exp(-self.s_c) + self.s_c
        return loss, l_p.detach(), l_q.detach(), l_c.detach()
