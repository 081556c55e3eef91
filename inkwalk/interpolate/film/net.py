"""The FILM network (Reda et al. 2022, "FILM: Frame Interpolation for Large Motion") in PyTorch.

Written from the official TF2 model (google-research/frame-interpolation, models/film_net/) so
that the official checkpoints convert by a fixed name/shape mapping (see `convert.py`):

1. **Image pyramid**: each input image and `pyramid_levels - 1` 2×2 average-pooled halvings.
2. **Cascaded feature pyramid** (`feat_net`): one shared sub-extractor (`sub_levels` stages of two
   3×3 convs, `filters << stage` channels, 2×2 average pooling between stages) runs on *every*
   pyramid level; level ``i`` concatenates stage ``j`` of the sub-pyramid started at level
   ``i - j``. From level ``sub_levels - 1`` on, every level has the same channels and meaning.
3. **Bidirectional residual flow pyramid** (`predict_flow`): coarse to fine, the flow is upsampled
   (×2 bilinear, values doubled), image B's features are backward-warped by it and a small conv
   net predicts the residual from ``concat(features A, warped features B)``. The finest
   `specialized_levels` levels have their own predictors; all coarser ones share one.
   Run once A->B and once B->A.
4. **Fusion** (`fusion`): on the finest `fusion_pyramid_levels` levels, both images and features
   are backward-warped to time ``t`` (image 0 by ``t`` times the B->A flow, image 1 by ``1 - t``
   times the A->B flow) and concatenated with those scaled flows; a U-Net-like decoder
   (nearest ×2 upsampling, a 2×2 conv, concat with the level, two 3×3 convs) ends in a 1×1 conv
   to RGB.

Images are float RGB in ``[0, 1]`` (what the official models were trained on), ``B×3×H×W``, with
H and W multiples of ``2 ** (pyramid_levels - 1)`` (`FilmConfig.multiple`); `infer.py` pads.

Time: the official ``film_net`` accepts a ``time`` input but ignores it and always scales the flows
by 0.5 (it makes other times by recursive mid-points). Here the flows are scaled by the given
``t`` (backward flow × t, forward flow × (1 - t), as the official code's own comment describes and
as the PyTorch port does), so any ``t`` works in one pass; at ``t = 0.5`` the result is the
official one. The official weights were trained at ``t = 0.5`` only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class FilmConfig:
    """Hyper-parameters of a FILM network; defaults are the official "Style" (and L1/VGG) model."""

    pyramid_levels: int = 7
    fusion_pyramid_levels: int = 5
    specialized_levels: int = 3
    sub_levels: int = 4
    filters: int = 64
    flow_convs: tuple[int, ...] = field(default=(3, 3, 3, 3))
    flow_filters: tuple[int, ...] = field(default=(32, 64, 128, 256))

    def __post_init__(self) -> None:
        object.__setattr__(self, "flow_convs", tuple(int(c) for c in self.flow_convs))
        object.__setattr__(self, "flow_filters", tuple(int(c) for c in self.flow_filters))
        problems = []
        if not 2 <= self.fusion_pyramid_levels <= self.pyramid_levels:
            problems.append("need 2 <= fusion_pyramid_levels <= pyramid_levels")
        if not 1 <= self.specialized_levels <= self.pyramid_levels:
            problems.append("need 1 <= specialized_levels <= pyramid_levels")
        if not 1 <= self.sub_levels <= self.specialized_levels + 1:
            problems.append("need 1 <= sub_levels <= specialized_levels + 1 (the shared flow "
                            "predictor needs the same feature width on every shared level)")
        if len(self.flow_convs) != self.specialized_levels + 1 or len(self.flow_filters) != self.specialized_levels + 1:
            problems.append("flow_convs and flow_filters need specialized_levels + 1 entries")
        if any(c < 1 for c in self.flow_convs) or any(f < 2 or f % 2 for f in self.flow_filters):
            problems.append("flow_convs must be >= 1 and flow_filters even and >= 2")
        if self.filters < 1:
            problems.append("filters must be >= 1")
        if problems:
            raise ValueError(f"invalid FILM config {self}: " + "; ".join(problems))

    @property
    def multiple(self) -> int:
        """Height and width of the network's input must be multiples of this."""
        return 2 ** (self.pyramid_levels - 1)

    def feature_channels(self, level: int) -> int:
        """Channels of the cascaded feature pyramid at `level` (0 = finest)."""
        return sum(self.filters << j for j in range(min(level + 1, self.sub_levels)))

    def fusion_filters(self, level: int) -> int:
        """Channels of the fusion decoder at `level`: doubling up to `specialized_levels`, then flat."""
        return self.filters << min(level, self.specialized_levels)

    def fusion_input_channels(self, level: int) -> int:
        """Aligned pyramid width: two warped (image + features), then the two scaled flows."""
        return 2 * (3 + self.feature_channels(level)) + 2 + 2

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FilmConfig":
        return cls(**json.loads(text))


STYLE_CONFIG = FilmConfig()
# A few thousand parameters, same topology (shared flow predictor on levels 2-3): for tests.
TINY_CONFIG = FilmConfig(pyramid_levels=4, fusion_pyramid_levels=3, specialized_levels=2, sub_levels=3,
                         filters=4, flow_convs=(1, 1, 1), flow_filters=(4, 8, 8))


class Conv(nn.Conv2d):
    """Keras ``Conv2D(padding='same')``, optionally followed by LeakyReLU(0.2) as in FILM.

    TF pads an even kernel's extra row/column at the bottom/right; PyTorch's ``padding='same'``
    would pad the top/left, so even kernels are padded by hand.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, activation: bool = True):
        even = kernel_size % 2 == 0
        super().__init__(in_channels, out_channels, kernel_size, padding=0 if even else kernel_size // 2)
        self.pad_after = kernel_size - 1 if even else 0
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_after:
            x = F.pad(x, (0, self.pad_after, 0, self.pad_after))
        x = super().forward(x)
        return F.leaky_relu(x, 0.2) if self.activation else x


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: ``out[b, :, y, x] = image[b, :, y + flow[b, 1], x + flow[b, 0]]``, bilinear.

    Sample positions are clamped to the image (as TF-addons' ``dense_image_warp`` the official
    model uses). Coordinates are computed in float32 even under fp16/bf16, where large images
    would otherwise lose sub-pixel (or whole-pixel) precision.
    """
    _, _, height, width = flow.shape
    flow = flow.float()
    ys = torch.arange(height, device=flow.device, dtype=torch.float32).view(1, height, 1)
    xs = torch.arange(width, device=flow.device, dtype=torch.float32).view(1, 1, width)
    # align_corners=False maps pixel centre p to (2p + 1) / size - 1; border padding clamps to [0, size-1].
    gx = (2.0 * (xs + flow[:, 0]) + 1.0) / width - 1.0
    gy = (2.0 * (ys + flow[:, 1]) + 1.0) / height - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    out = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(image.dtype)


def upsample_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A coarser flow brought to a finer level: bilinear resize (TF half-pixel), values doubled."""
    return F.interpolate(2.0 * flow, size=size, mode="bilinear", align_corners=False)


def image_pyramid(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Finest first, each level a 2×2 average pooling of the previous one."""
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2))
    return pyramid


class FeatureExtractor(nn.Module):
    """Cascaded multi-scale features; `convs[n]` is the official ``cfeat_conv_n``."""

    def __init__(self, config: FilmConfig):
        super().__init__()
        self.config = config
        convs = []
        for stage in range(config.sub_levels):
            width = config.filters << stage
            convs.append(Conv(3 if stage == 0 else width // 2, width, 3))
            convs.append(Conv(width, width, 3))
        self.convs = nn.ModuleList(convs)

    def sub_pyramid(self, image: torch.Tensor, depth: int) -> list[torch.Tensor]:
        out = []
        head = image
        for stage in range(depth):
            head = self.convs[2 * stage + 1](self.convs[2 * stage](head))
            out.append(head)
            if stage < depth - 1:
                head = F.avg_pool2d(head, 2)
        return out

    def forward(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        levels, sub = len(images), self.config.sub_levels
        subs = [self.sub_pyramid(images[i], min(levels - i, sub)) for i in range(levels)]
        return [torch.cat([subs[i - j][j] for j in range(min(i + 1, sub))], dim=1) for i in range(levels)]


class FlowEstimator(nn.Sequential):
    """Residual flow from ``concat(features A, warped features B)``: 3×3 convs, a 1×1, a 1×1 to 2."""

    def __init__(self, in_channels: int, num_convs: int, num_filters: int):
        layers = [Conv(in_channels if i == 0 else num_filters, num_filters, 3) for i in range(num_convs)]
        layers.append(Conv(num_filters, num_filters // 2, 1))
        layers.append(Conv(num_filters // 2, 2, 1, activation=False))
        super().__init__(*layers)


class PyramidFlowEstimator(nn.Module):
    """Coarse-to-fine residual flow; `predictors[i]` is ``flow_predictor_i``, `shared` the shared one."""

    def __init__(self, config: FilmConfig):
        super().__init__()
        self.config = config
        self.predictors = nn.ModuleList(
            FlowEstimator(2 * config.feature_channels(i), config.flow_convs[i], config.flow_filters[i])
            for i in range(config.specialized_levels))
        self.shared = FlowEstimator(2 * config.feature_channels(config.specialized_levels),
                                    config.flow_convs[-1], config.flow_filters[-1])

    def predictor(self, level: int) -> FlowEstimator:
        return self.predictors[level] if level < self.config.specialized_levels else self.shared

    def forward(self, feats_a: list[torch.Tensor], feats_b: list[torch.Tensor]) -> list[torch.Tensor]:
        """Residual flows (finest first) that backward-warp B onto A; the coarsest is absolute."""
        levels = len(feats_a)
        flow = self.predictor(levels - 1)(torch.cat([feats_a[-1], feats_b[-1]], dim=1))
        residuals = [flow]
        for i in reversed(range(levels - 1)):
            flow = upsample_flow(flow, feats_a[i].shape[-2:])
            residual = self.predictor(i)(torch.cat([feats_a[i], warp(feats_b[i], flow)], dim=1))
            residuals.append(residual)
            flow = flow + residual
        return residuals[::-1]


def synthesize_flows(residuals: list[torch.Tensor]) -> list[torch.Tensor]:
    """Residual flow pyramid (finest first) -> absolute flow pyramid (finest first)."""
    flow = residuals[-1]
    flows = [flow]
    for residual in reversed(residuals[:-1]):
        flow = residual + upsample_flow(flow, residual.shape[-2:])
        flows.append(flow)
    return flows[::-1]


class Fusion(nn.Module):
    """U-Net-like decoder; `levels[i]` holds the 2×2 up-conv and two 3×3 convs of level i."""

    def __init__(self, config: FilmConfig):
        super().__init__()
        top = config.fusion_pyramid_levels - 1
        levels = []
        for i in range(top):
            width = config.fusion_filters(i)
            below = config.fusion_input_channels(top) if i == top - 1 else config.fusion_filters(i + 1)
            levels.append(nn.ModuleList([
                Conv(below, width, 2, activation=False),
                Conv(config.fusion_input_channels(i) + width, width, 3),
                Conv(width, width, 3),
            ]))
        self.levels = nn.ModuleList(levels)
        self.output_conv = Conv(config.fusion_filters(0), 3, 1, activation=False)

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        net = pyramid[-1]
        for i in reversed(range(len(self.levels))):
            up, conv_a, conv_b = self.levels[i]
            net = up(F.interpolate(net, size=pyramid[i].shape[-2:], mode="nearest"))
            net = conv_b(conv_a(torch.cat([pyramid[i], net], dim=1)))
        return self.output_conv(net)


class FilmState(NamedTuple):
    """What does not depend on time: per fusion level, images+features of both inputs and flows."""

    warpable0: list[torch.Tensor]
    warpable1: list[torch.Tensor]
    backward_flows: list[torch.Tensor]  # warps input 0 (B->A direction), before scaling by t
    forward_flows: list[torch.Tensor]  # warps input 1 (A->B direction), before scaling by 1 - t


class FilmNet(nn.Module):
    """FILM frame interpolator: ``forward(x0, x1, time) -> frame at time``, images in [0, 1].

    `encode` (features and flows) is independent of time, so many times between one pair cost
    one `encode` and one `decode` per time (batched).
    """

    def __init__(self, config: FilmConfig | None = None):
        super().__init__()
        self.config = config or STYLE_CONFIG
        self.feat_net = FeatureExtractor(self.config)
        self.predict_flow = PyramidFlowEstimator(self.config)
        self.fusion = Fusion(self.config)

    def encode(self, x0: torch.Tensor, x1: torch.Tensor) -> FilmState:
        cfg = self.config
        if x0.shape != x1.shape or x0.dim() != 4 or x0.shape[1] != 3:
            raise ValueError(f"FilmNet needs two B×3×H×W batches of one shape, got {tuple(x0.shape)} "
                             f"and {tuple(x1.shape)}")
        if x0.shape[-2] % cfg.multiple or x0.shape[-1] % cfg.multiple:
            raise ValueError(f"FilmNet input height and width must be multiples of {cfg.multiple}, got "
                             f"{tuple(x0.shape[-2:])}; pad first (inkwalk.interpolate.film.interpolate_pair does)")
        batch = x0.shape[0]
        # Siamese: both images through the feature extractor in one batch, both flow directions too.
        images = image_pyramid(torch.cat([x0, x1]), cfg.pyramid_levels)
        feats = self.feat_net(images)
        swapped = [torch.cat([f[batch:], f[:batch]]) for f in feats]
        flows = synthesize_flows(self.predict_flow(feats, swapped))[:cfg.fusion_pyramid_levels]
        warpable = [torch.cat([im, f], dim=1) for im, f in zip(images, feats[:cfg.fusion_pyramid_levels])]
        return FilmState(
            warpable0=[w[:batch] for w in warpable], warpable1=[w[batch:] for w in warpable],
            backward_flows=[f[batch:] for f in flows], forward_flows=[f[:batch] for f in flows])

    def decode(self, state: FilmState, time: torch.Tensor | float) -> torch.Tensor:
        """The frame at `time` (shape (B,) or scalar); a state of batch 1 serves any batch of times."""
        ref = state.forward_flows[0]
        time = torch.as_tensor(time, dtype=ref.dtype, device=ref.device).reshape(-1)
        batch = max(time.shape[0], ref.shape[0])
        if time.shape[0] not in (1, batch) or ref.shape[0] not in (1, batch):
            raise ValueError(f"time batch {time.shape[0]} does not match the pair batch {ref.shape[0]}")
        t = time.expand(batch).view(batch, 1, 1, 1)

        def fit(x: torch.Tensor) -> torch.Tensor:
            return x.expand(batch, *x.shape[1:])

        aligned = []
        for w0, w1, bwd, fwd in zip(state.warpable0, state.warpable1, state.backward_flows, state.forward_flows):
            bwd_t, fwd_t = fit(bwd) * t, fit(fwd) * (1.0 - t)
            aligned.append(torch.cat([warp(fit(w0), bwd_t), warp(fit(w1), fwd_t), bwd_t, fwd_t], dim=1))
        return self.fusion(aligned)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor, time: torch.Tensor | float = 0.5) -> torch.Tensor:
        return self.decode(self.encode(x0, x1), time)
