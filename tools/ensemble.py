#!/usr/bin/env python3
"""Combine trained focus models into one graph: the mean of their logits, then a sigmoid.

Members must share the tile size and the normalization (their ``.train.json``); each must end
in a sigmoid Dense layer.  The ensemble is one Keras model with one image input, so it
converts like any other (``tools/convert.py``), and writes a ``.train.json`` with the summed
MACs and a threshold tuned on the training tiles, like ``tools/train.py`` does.

    python tools/ensemble.py build/baseline.keras build/baseline_s1.keras build/baseline_s2.keras \\
        --tiles build/tiles.npz --out build/ensemble.keras
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import numpy as np  # noqa: E402

from pifocus.classify import normalize_tiles  # noqa: E402
from pifocus.classify.evaluate import (best_threshold, compare, format_table,  # noqa: E402
                                       laplacian_variance, load_tileset)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("members", nargs="+", help=".keras models from tools/train.py")
    p.add_argument("--tiles", default=str(ROOT / "build" / "tiles.npz"))
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from keras import layers
    from train import count_macs, set_threads
    set_threads(a.threads)
    t0 = time.time()
    infos = [json.loads(Path(m).with_suffix(".train.json").read_text()) for m in a.members]
    for k in ("tile_px", "std_floor", "clip"):
        if len({i[k] for i in infos}) != 1:
            raise SystemExit(f"ensemble: members differ in {k}: {[i[k] for i in infos]}")
    tile, std_floor, clip = infos[0]["tile_px"], infos[0]["std_floor"], infos[0]["clip"]
    inp = keras.Input((tile, tile, 1), name="tile")
    logits, macs = [], 0
    for k, path in enumerate(a.members):
        m = keras.models.load_model(path, compile=False)
        last = m.layers[-1]
        if not (isinstance(last, layers.Dense) and last.activation.__name__ == "sigmoid"):
            raise SystemExit(f"ensemble: {path} does not end in a sigmoid Dense layer")
        body = keras.Model(m.inputs, last.input, name=f"member{k}_body")
        head = layers.Dense(1, name=f"member{k}_logit")
        z = head(body(inp))
        head.set_weights(last.get_weights())
        logits.append(z)
        macs += count_macs(m)
    x = layers.Average(name="mean_logit")(logits) if len(logits) > 1 else logits[0]
    out = layers.Activation("sigmoid", name="p_in_focus")(x)
    model = keras.Model(inp, out, name="ensemble")

    data = load_tileset(a.tiles)
    split = data["split"].astype(str)
    source = data["source"].astype(str)
    tr, va = split == "train", split == "val"
    x_tr = normalize_tiles(data["tiles"][tr], std_floor, clip)
    y_tr = data["labels"][tr]
    p_tr = model.predict(x_tr, batch_size=1024, verbose=0).ravel()
    thr = float(np.clip(best_threshold(p_tr, y_tr), 0.2, 0.8))
    lv_tr = np.log10(laplacian_variance(data["tiles"][tr]) + 1e-3)
    lap_t = float(10 ** best_threshold(lv_tr, y_tr))
    p_va = model.predict(normalize_tiles(data["tiles"][va], std_floor, clip), batch_size=1024, verbose=0).ravel()
    res = compare(p_va, laplacian_variance(data["tiles"][va]), data["labels"][va], source[va], thr, lap_t,
                  ~np.char.startswith(source[va], "synthetic"))
    print(format_table(res))
    outp = Path(a.out)
    model.save(outp)
    info = {"arch": "ensemble(" + ",".join(i["arch"] for i in infos) + ")", "members": a.members,
            "member_seeds": [i["seed"] for i in infos], "tile_px": tile, "macs_per_tile": int(macs),
            "params": int(model.count_params()), "epochs": infos[0]["epochs"], "seed": infos[0]["seed"],
            "train_tiles": infos[0]["train_tiles"], "val_tiles": infos[0]["val_tiles"],
            "threshold_train_tuned": thr, "laplacian_baseline_threshold": lap_t,
            "std_floor": std_floor, "clip": clip, "tiles": a.tiles,
            "member_commands": [i["command"] for i in infos],
            "command": "python tools/ensemble.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    outp.with_suffix(".train.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"saved {outp}: {len(a.members)} members, {macs / 1e6:.2f} M MACs per tile, threshold {thr:.3f} "
          f"({time.time() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
