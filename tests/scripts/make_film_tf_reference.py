"""Regenerate film_tf_reference.npz: the official TF2 film_net's outputs for the tiny config.

Not part of the test run (needs TensorFlow). In a separate environment with
``tensorflow-cpu==2.15.1 tensorflow-addons==0.23.0 gin-config "numpy<2"`` and a git checkout of
google-research/frame-interpolation::

    python tests/scripts/make_film_tf_reference.py /path/to/frame-interpolation/models tests/data/film_tf_reference.npz

It builds the official model (`film_net.interpolator.create_model`) with
`inkwalk.interpolate.film.TINY_CONFIG`'s values, gives every variable random values (Keras'
zero biases would hide mapping mistakes; every seed is fixed, so each run makes the same file)
and stores its variables under their official names, two input pairs, and the official outputs
(image and both flow pyramids) at time 0.5. It also records what made the file: TensorFlow's
version, the frame-interpolation commit and this script's SHA-256 (tests/test_film.py checks
that the script has not changed since).
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np


def main(models_dir: str, out: str) -> None:
    sys.path.insert(0, models_dir)
    import tensorflow as tf
    from film_net import interpolator, options

    cfg = options.Options(pyramid_levels=4, fusion_pyramid_levels=3, specialized_levels=2, sub_levels=3,
                          filters=4, flow_convs=[1, 1, 1], flow_filters=[4, 8, 8])
    inputs = {name: tf.keras.Input(shape=shape, dtype=tf.float32, name=name)
              for name, shape in (("x0", (None, None, 3)), ("x1", (None, None, 3)), ("time", (1,)))}
    tf.keras.utils.set_random_seed(0)  # Keras' initial kernels set the scale of the random values below
    model = interpolator.create_model(inputs["x0"], inputs["x1"], inputs["time"], cfg)
    rng = np.random.default_rng(0)
    for v in model.variables:
        scale = 0.3 if "bias" in v.name else float(np.std(v.numpy()))
        v.assign(rng.normal(0.0, scale, v.shape).astype(np.float32))
    x0 = rng.random((2, 24, 32, 3), dtype=np.float32)
    x1 = np.roll(x0, 3, axis=2) * 0.9 + 0.05
    res = model({"x0": x0, "x1": x1, "time": np.full((2, 1), 0.5, np.float32)}, training=False)
    dump = {f"var::{v.name}": v.numpy() for v in model.variables}
    dump.update({"in::x0": x0, "in::x1": x1, "out::image": res["image"].numpy()})
    for key in ("forward_flow_pyramid", "backward_flow_pyramid"):
        for i, flow in enumerate(res[key]):
            dump[f"out::{key}::{i}"] = flow.numpy()
    commit = subprocess.run(["git", "-C", models_dir, "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    dump.update({"made_by::tensorflow": np.array(tf.__version__), "made_by::repository_commit": np.array(commit),
                 "made_by::script_sha256": np.array(hashlib.sha256(Path(__file__).read_bytes()).hexdigest())})
    np.savez_compressed(out, **dump)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
