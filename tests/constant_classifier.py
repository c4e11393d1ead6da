"""A tile classifier whose answer is one constant probability (threshold 0.5, 16 px tiles),
counting the tiles it is given: for tests about what the analyzer does with the answers
(which tiles vote, the meter, the CNN budget), not about the model."""

import numpy as np

from pifocus.classify import ModelInfo, TileClassifier


class ConstantClassifier(TileClassifier):
    """Every tile gets in-focus probability ``p``; ``calls`` lists the batch sizes."""

    def __init__(self, p: float):
        self.info = ModelInfo(name="constant", version="test", tile_px=16, threshold=0.5)
        self.value = float(p)
        self.calls = []

    def predict(self, tiles):
        self.calls.append(len(tiles))
        return np.full(len(tiles), self.value, np.float32)

    def close(self):
        pass
