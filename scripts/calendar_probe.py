"""What a calendar input and a least-squares start would buy the electricity forecasters, measured in float.

    python scripts/calendar_probe.py [--recipes attention_taylor_int8 attention_vic_int8] [--order 4]

For each recipe (its own data, architecture and float schedule, composed as ``train.py`` composes them), four
float models are trained on the same windows with the trainer's loss and learning-rate schedule:

- ``window``: the recipe as it is (the window relative to its last value; the linear skip starts at zero);
- ``window + calendar``: each input step also gets sine/cosine pairs of its position in the day and the week
  (``--order`` harmonics of each), the Fourier terms the ridge baseline reads, as extra input channels;
- ``... + least-squares start``: the linear skip starts at the validation-chosen ridge fit of the targets on
  the flattened inputs (the attention path then only has to learn what the ridge leaves).

It prints validation and test MAE in the series' unit beside the ridge start itself and the strongest
classical baseline (``qatzoo.baselines.seasonal_forecast_baselines``). These are float numbers: a variant that
does not beat the baseline in float will not in int8. Nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Ridge penalties tried for the least-squares start (inputs and targets in units of the data's scale).
ALPHAS = (0.1, 1.0, 10.0, 100.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["attention_taylor_int8", "attention_vic_int8"])
    parser.add_argument("--order", type=int, default=4, help="harmonics of each period (%(default)s)")
    parser.add_argument("--data-dir", default=None, help="where the datasets are prepared (default: TFDS's)")
    args = parser.parse_args()

    from qatzoo.bench.cpu import cpu_name
    from qatzoo.config import recipe_names

    unknown = [r for r in args.recipes if r not in recipe_names()]
    if unknown:
        print(f"error: not a recipe: {', '.join(unknown)} (recipes: {', '.join(recipe_names())})", file=sys.stderr)
        return 2
    print(f"CPU: {cpu_name()}; float models, {args.order} harmonics of each period")
    for recipe in args.recipes:
        if not probe(recipe, args):
            print(f"error: {recipe} is not a forecast of a series with daily and weekly cycles", file=sys.stderr)
            return 2
    return 0


def probe(recipe: str, args) -> bool:
    """Train and print the four variants of one recipe; False for a recipe whose data has no seasonal periods."""
    import numpy as np

    from qatzoo import quiet
    from qatzoo.baselines import fourier_terms, seasonal_forecast_baselines
    from qatzoo.build import build_model, load_data
    from qatzoo.config import compose, validate

    quiet.configure(0)
    warnings.filterwarnings("ignore", module="sklearn|scipy")  # ill-conditioned ridge solves: chosen on validation
    from sklearn.linear_model import Ridge

    from qatzoo.keras import keras

    cfg = validate(compose([f"recipe={recipe}"] + ([f"paths.data_dir={args.data_dir}"] if args.data_dir else [])))
    data = load_data(cfg.data)
    info, scale = data.info, data.target_scale
    if "seasonal_periods" not in info:
        return False
    window, horizon = int(info["window"]), int(info["horizon"])
    starts = {"train": None, "val": None, "test": np.asarray(data.raw["test_starts"])}
    n, first_val, first_test = len(data.raw["series"]), info["first_val_step"], info["first_test_step"]
    every = np.arange(window, n - horizon + 1)  # as forecast_windows cuts them
    starts["train"] = every[(every < first_val) & (every + horizon <= first_val)]
    starts["val"] = every[(every >= first_val) & (every < first_test)]
    plain = {part: getattr(data, f"x_{part}") for part in starts}
    y = {part: getattr(data, f"y_{part}") for part in starts}

    def calendar(part: str) -> np.ndarray:
        steps = (starts[part][:, None] - window + np.arange(window)).reshape(-1)
        terms = fourier_terms(steps, info["seasonal_periods"], args.order)
        return np.concatenate([plain[part], terms.reshape(len(starts[part]), window, -1)], -1).astype("float32")

    def mae(predicted, part: str) -> float:
        return float(np.mean(np.abs(predicted - y[part])) * scale)

    strongest = min(seasonal_forecast_baselines(data).items(), key=lambda kv: kv[1]["val_mae"])
    print(
        f"\n{recipe}: strongest baseline on validation {strongest[0]}: val {strongest[1]['val_mae']:.1f}, "
        f"test {strongest[1]['mae']:.1f} {data.target_unit}"
    )
    print(f"{'variant':46} {'val':>8} {'test':>8}")
    for name, x in (("window", plain), ("window + calendar", {p: calendar(p) for p in starts})):
        flat = {p: v.reshape(len(v), -1) for p, v in x.items()}
        fits = [Ridge(alpha=a).fit(flat["train"], y["train"]) for a in ALPHAS]
        ridge = min(fits, key=lambda r: mae(r.predict(flat["val"]), "val"))
        print(
            f"{'  ridge on ' + name + f' (alpha {ridge.alpha:g})':46} "
            f"{mae(ridge.predict(flat['val']), 'val'):8.1f} {mae(ridge.predict(flat['test']), 'test'):8.1f}"
        )
        for start in ("zero", "least-squares"):
            keras.utils.set_random_seed(cfg.trainer.seed)
            model = build_model(cfg.arch, _Shaped(data, x["train"].shape[1:]))
            if start == "least-squares":
                model.get_layer("skip_linear").set_weights(
                    [ridge.coef_.T.astype("float32"), ridge.intercept_.astype("float32")]
                )
            schedule = cfg.schedule
            total = schedule.float_epochs * -(-len(x["train"]) // schedule.batch_size)
            model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(schedule.lr, total)), "mse")
            model.fit(
                x["train"],
                y["train"],
                batch_size=schedule.batch_size,
                epochs=schedule.float_epochs,
                verbose=0,
                shuffle=True,
            )
            label = f"  {name}, {start} start"
            print(
                f"{label:46} {mae(model.predict(x['val'], verbose=0), 'val'):8.1f} "
                f"{mae(model.predict(x['test'], verbose=0), 'test'):8.1f}",
                flush=True,
            )
    return True


class _Shaped:
    """``data`` with another input shape (the calendar channels), for :func:`qatzoo.build.build_model`."""

    def __init__(self, data, shape):
        self.input_shape, self.num_outputs = tuple(shape), data.num_outputs


if __name__ == "__main__":
    raise SystemExit(main())
