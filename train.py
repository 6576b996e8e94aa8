"""Train, quantize, export and evaluate one recipe (the checkout's entry point; ``qatzoo train`` is the same).

    python train.py recipe=attention_int8
    python train.py recipe=mnist_cnn_int8 quant=ptq_int8 schedule.qat_epochs=1
    python train.py --config-dir ~/myconf recipe=mine
    python train.py -m recipe=mnist_cnn_int8 schedule.qat_lr=0.0001,0.0003

The config groups and their options: ``python train.py --help``; what runs: qatzoo/launch.py.
"""

import sys

from qatzoo.extras import MissingExtra, require

if __name__ == "__main__":
    try:
        require("train", "python train.py")
    except MissingExtra as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    from qatzoo.launch import cli

    cli()
