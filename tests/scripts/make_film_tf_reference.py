"""Regenerate film_tf_reference.npz: the official TF2 film_net's outputs for the tiny config.

Not part of the test run (needs TensorFlow). In a separate environment with
``tensorflow-cpu==2.15.1 tensorflow-addons==0.23.0 gin-config "numpy<2"`` and a checkout of
google-research/frame-interpolation::

    python tests/data/make_film_tf_reference.py /path/to/frame-interpolation/models tests/data/film_tf_reference.npz

It builds the official model (`film_net.interpolator.create_model`) with
`inkwalk.interpolate.film.TINY_CONFIG`'s values, gives every variable random values (Keras'
zero biases would hide mapping mistakes) and stores its variables under their official names,
two input pairs, and the official outputs (image and both flow pyramids) at time 0.5.
"""

import sys

import numpy as np


def main(models_dir: str, out: str) -> None:
    sys.path.insert(0, models_dir)
    import tensorflow as tf
    from film_net import interpolator, options

    cfg = options.Options(pyramid_levels=4, fusion_pyramid_levels=3, specialized_levels=2, sub_levels=3,
                          filters=4, flow_convs=[1, 1, 1], flow_filters=[4, 8, 8])
    inputs = {name: tf.keras.Input(shape=shape, dtype=tf.float32, name=name)
              for name, shape in (("x0", (None, None, 3)), ("x1", (None, None, 3)), ("time", (1,)))}
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
    np.savez_compressed(out, **dump)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
