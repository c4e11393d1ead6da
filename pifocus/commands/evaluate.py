"""``pifocus evaluate``: a focus model against a tuned Laplacian-variance baseline.

The work is done by :mod:`pifocus.classify.evaluate` (numpy; matplotlib for ``--plot``).
"""

from ..classify import evaluate as _evaluate

HELP = "ROC AUC and accuracy of the focus CNN vs a tuned Laplacian baseline"
DESCRIPTION = """\
On a tile set (.npz from tools/dataset.py) or folders of images (DIR/in_focus, DIR/out_of_focus),
report ROC AUC, accuracy at the model's threshold and per-source numbers for the CNN and for a
Laplacian-variance threshold tuned on the training split, side by side; optional ROC plot.

  pifocus evaluate --tiles build/tiles.npz --split val --plot roc.png
  pifocus evaluate --images my_test_shots/ --json
"""


def add_arguments(p):
    _evaluate.add_arguments(p)


def run(args, console) -> int:
    res = _evaluate.run_args(args)
    console.result(res, _evaluate.report_text(res, args.plot))
    return 0
