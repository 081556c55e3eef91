"""ncnn model files (.param text graph + .bin weight blobs) -> PyTorch state dicts of Real-ESRGAN's nets.

The Python package index carries the official Real-ESRGAN networks only as ncnn exports (see
docs/models.md), so this module reads them back into the key layout of the original PyTorch code,
which spandrel loads: RRDBNet (x4plus) and SRVGGNetCompact (realesr-animevideov3).

ncnn's format, as its loader reads it: the .param lists layers in execution order, one per line,
``Type Name n_in n_out inputs... outputs... key=value...``. The .bin is the concatenation, in that
order, of every layer's weights. A Convolution stores its weights "tagged": a 4-byte tag, then the
values (``0x01306B47``: fp16, padded to 4 bytes; ``0``: fp32), then, with a bias, ``num_output``
raw fp32 biases. A PReLU stores its slopes as raw fp32. ncnn's weight order, out x in x kh x kw,
is PyTorch's. Every shape and activation is checked against the target network, so a layer graph
that differs from it fails loudly instead of converting into a wrong model.

`ncnn_upscale` runs such files with the ncnn runtime itself (the `ncnn` package, a dev
dependency): the independent reference the converted weights are tested and benchmarked against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inkwalk.errors import InkwalkError

PARAM_MAGIC = "7767517"
TAG_FP16 = 0x01306B47
TAG_FP32 = 0
WEIGHTLESS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"}
LEAKY_RELU = "2"  # ncnn Convolution activation_type 2: leaky ReLU, slope in -23310 (activation_params)


class NcnnFormatError(InkwalkError):
    """An ncnn model file that is not the network it should be."""


@dataclass
class Layer:
    """One line of an ncnn .param file; `params` keeps ncnn's integer keys with their text values."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, str] = field(default_factory=dict)

    def get_int(self, key: int, default: int = 0) -> int:
        return int(self.params.get(key, default))


def parse_param(text: str) -> list[Layer]:
    """The layers of an ncnn .param file, in execution order."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [PARAM_MAGIC] or len(lines[1]) != 2:
        raise NcnnFormatError(f"not an ncnn .param file (magic {PARAM_MAGIC} and a count line expected)")
    n_layers = int(lines[1][0])
    layers = []
    for parts in lines[2:]:
        n_in, n_out = int(parts[2]), int(parts[3])
        io_end = 4 + n_in + n_out
        params = dict(p.split("=", 1) for p in parts[io_end:])
        layers.append(Layer(parts[0], parts[1], parts[4:4 + n_in], parts[4 + n_in:io_end],
                            {int(k): v for k, v in params.items()}))
    if len(layers) != n_layers:
        raise NcnnFormatError(f".param declares {n_layers} layers but lists {len(layers)}")
    return layers


class _Blob:
    """A read cursor over the .bin bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise NcnnFormatError(f".bin ends at byte {len(self.data)}, {n} more bytes needed at {self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def raw_fp32(self, count: int) -> np.ndarray:
        return np.frombuffer(self.take(4 * count), "<f4").copy()

    def tagged(self, count: int) -> np.ndarray:
        """Weights stored with a type tag; fp16 values stay fp16 (exact), fp32 stay fp32."""
        tag = int(np.frombuffer(self.take(4), "<u4")[0])
        if tag == TAG_FP16:
            values = np.frombuffer(self.take(2 * count), "<f2").copy()
            self.take((-2 * count) % 4)  # fp16 blocks are padded to 4 bytes
            return values
        if tag == TAG_FP32:
            return self.raw_fp32(count)
        raise NcnnFormatError(f"unsupported ncnn weight storage tag {tag:#010x} (quantized weights?)")


@dataclass
class Weights:
    """The weights of one ncnn layer: Convolution (weight, bias, activation) or PReLU (slopes)."""

    layer: Layer
    tensors: dict[str, np.ndarray]

    @property
    def activation(self) -> str:
        """"" for none, "leaky0.2" for a fused leaky ReLU (Convolution only)."""
        act = self.layer.params.get(9, "0")
        if act == "0":
            return ""
        if act == LEAKY_RELU:
            return f"leaky{float(self.layer.params.get(-23310, '1,0').split(',')[1]):g}"
        return f"activation{act}"


def read_weights(layers: list[Layer], data: bytes) -> list[Weights]:
    """Every weighted layer's tensors, in order, from the .bin bytes; the file must be used up exactly."""
    blob = _Blob(data)
    out = []
    for layer in layers:
        if layer.type == "Convolution":
            num_out, kw = layer.get_int(0), layer.get_int(1)
            kh = layer.get_int(11, kw)
            plain = layer.get_int(2, 1) == 1 and layer.get_int(3, 1) == 1 and layer.get_int(4) == kw // 2
            if not plain or layer.get_int(8):  # 8: int8 weights
                raise NcnnFormatError(f"{layer.name}: only stride-1, dilation-1, 'same'-padded float "
                                      f"convolutions are supported, got {layer.params}")
            size = layer.get_int(6)
            cin = size // (num_out * kh * kw)
            if cin * num_out * kh * kw != size:
                raise NcnnFormatError(f"{layer.name}: {size} weights do not split into {num_out} outputs")
            tensors = {"weight": blob.tagged(size).reshape(num_out, cin, kh, kw)}
            if layer.get_int(5):
                tensors["bias"] = blob.raw_fp32(num_out)
            out.append(Weights(layer, tensors))
        elif layer.type == "PReLU":
            out.append(Weights(layer, {"weight": blob.raw_fp32(layer.get_int(0))}))
        elif layer.type not in WEIGHTLESS:
            raise NcnnFormatError(f"{layer.name}: ncnn layer type {layer.type} is not supported")
    if blob.pos != len(data):
        raise NcnnFormatError(f".bin has {len(data) - blob.pos} bytes left after the last layer")
    return out


Layout = list[tuple[str, int, int, str]]  # (key, out channels, in channels or 0 for a PReLU, activation)


def rrdbnet_layout(num_block: int = 23, num_feat: int = 64, num_grow_ch: int = 32, in_ch: int = 3,
                   out_ch: int = 3) -> Layout:
    """Real-ESRGAN's RRDBNet (basicsr `rrdbnet_arch`, x4) convolutions in execution order."""
    convs = [("conv_first", num_feat, in_ch, "")]
    for b in range(num_block):
        for r in (1, 2, 3):
            for j in range(1, 6):
                convs.append((f"body.{b}.rdb{r}.conv{j}", num_feat if j == 5 else num_grow_ch,
                              num_feat + (j - 1) * num_grow_ch, "" if j == 5 else "leaky0.2"))
    convs.append(("conv_body", num_feat, num_feat, ""))
    convs += [(key, num_feat, num_feat, "leaky0.2") for key in ("conv_up1", "conv_up2", "conv_hr")]
    convs.append(("conv_last", out_ch, num_feat, ""))
    return convs


def compact_layout(num_conv: int = 16, num_feat: int = 64, scale: int = 4, in_ch: int = 3,
                   out_ch: int = 3) -> Layout:
    """Real-ESRGAN's SRVGGNetCompact (`body.N`: conv, PReLU, num_conv x (conv, PReLU), conv)."""
    layers: Layout = []
    for i in range(num_conv + 1):
        layers.append((f"body.{2 * i}", num_feat, in_ch if i == 0 else num_feat, ""))
        layers.append((f"body.{2 * i + 1}", num_feat, 0, ""))
    layers.append((f"body.{2 * num_conv + 2}", out_ch * scale * scale, num_feat, ""))
    return layers


def _assign(weights: list[Weights], layout: Layout, what: str) -> dict[str, np.ndarray]:
    if len(weights) != len(layout):
        raise NcnnFormatError(f"{what}: {len(layout)} weighted layers expected, the file has {len(weights)}")
    state = {}
    for w, (key, cout, cin, act) in zip(weights, layout):
        got = w.tensors["weight"].shape
        want = (cout,) if cin == 0 else (cout, cin, 3, 3)
        fits = w.layer.type == "PReLU" if cin == 0 else (w.layer.type == "Convolution" and w.activation == act
                                                         and "bias" in w.tensors)
        if got != want or not fits:
            raise NcnnFormatError(f"{what}: layer {w.layer.name} ({w.layer.type} {got}, activation "
                                  f"{w.activation or 'none'}) does not fit {key} ({want}, {act or 'none'})")
        state.update({f"{key}.{name}": t for name, t in w.tensors.items()})
    return state


def rrdbnet_state(layers: list[Layer], weights: list[Weights]) -> dict[str, np.ndarray]:
    """An ncnn export of Real-ESRGAN x4plus (RRDBNet, x4 by two nearest x2 steps) under its PyTorch keys."""
    n_blocks, rest = divmod(len(weights) - 6, 15)
    ups = [layer for layer in layers if layer.type == "Interp"]
    if rest or n_blocks < 1 or len(ups) != 2 or any(u.params.get(0) != "1" for u in ups):
        raise NcnnFormatError("not an RRDBNet x4 export (15 convolutions per block, 6 more, two nearest "
                              "x2 upsamplings expected)")
    return _assign(weights, rrdbnet_layout(n_blocks), "RRDBNet")


def compact_state(layers: list[Layer], weights: list[Weights]) -> tuple[dict[str, np.ndarray], int]:
    """An ncnn export of SRVGGNetCompact (its body, a pixel shuffle, plus the nearest-upsampled input)
    under its PyTorch keys; also returns the network's own scale factor."""
    shuffles = [layer for layer in layers if layer.type == "PixelShuffle"]
    if len(shuffles) != 1 or len(weights) % 2 == 0 or len(weights) < 3:
        raise NcnnFormatError("not an SRVGGNetCompact export (conv/PReLU pairs, a last conv, one PixelShuffle)")
    scale = shuffles[0].get_int(0)
    layout = compact_layout((len(weights) - 3) // 2, weights[0].tensors["weight"].shape[0], scale)
    return _assign(weights, layout, "SRVGGNetCompact"), scale


def load_ncnn(param_text: str, bin_data: bytes) -> tuple[list[Layer], list[Weights]]:
    """Parse one ncnn model: its layers and its weighted layers' tensors."""
    layers = parse_param(param_text)
    return layers, read_weights(layers, bin_data)


class NcnnNet:
    """The ncnn CPU runtime with one model loaded: `net(image)` super-resolves one H×W×3 uint8 RGB image.

    Used exactly as STACK.md 13 found to work (`Mat.from_pixels`, `substract_mean_normalize`, no
    Vulkan; a Mat built from a float array gives garbage); the output is clipped and rounded to
    uint8, the convention of inkwalk's upscaler.
    """

    def __init__(self, param: str | Path, threads: int | None = None) -> None:
        import ncnn

        self.ncnn = ncnn
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        if threads:
            self.net.opt.num_threads = threads
        param = Path(param)
        self.net.load_param(str(param))
        self.net.load_model(str(param.with_suffix(".bin")))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        mat = self.ncnn.Mat.from_pixels(np.ascontiguousarray(image), self.ncnn.Mat.PixelType.PIXEL_RGB, w, h)
        mat.substract_mean_normalize([], [1 / 255.0] * 3)
        ex = self.net.create_extractor()
        ex.input("data", mat)
        _, out = ex.extract("output")
        return np.rint(np.clip(np.array(out).transpose(1, 2, 0), 0, 1) * 255.0).astype(np.uint8)


def ncnn_upscale(param: str | Path, image: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Super-resolve one H×W×3 uint8 RGB image with the ncnn CPU runtime on `param` (+ its .bin)."""
    return NcnnNet(param, threads)(image)
