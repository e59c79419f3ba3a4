"""What every classifier backend shares: its description and the checked batch entry point."""

from __future__ import annotations

import numpy as np

from fermonitor.core.checkpoint import ModelMeta


class FaceBatchClassifier:
    """Base of the torch and onnxruntime classifiers: subclasses set ``meta`` and implement
    ``_probabilities`` for a non-empty, already checked batch."""

    meta: ModelMeta

    @property
    def classes(self) -> tuple[str, ...]:
        return self.meta.classes

    @property
    def input_size(self) -> int:
        return self.meta.input_size

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of faces.

        Parameters
        ----------
        faces
            uint8 array (N, S, S) of grey face crops, S the model's input size (48).

        Returns
        -------
        np.ndarray
            float32 (N, number of classes), rows summing to 1.
        """
        faces = np.asarray(faces)
        size = self.meta.input_size
        if faces.ndim != 3 or faces.shape[1:] != (size, size) or faces.dtype != np.uint8:
            raise ValueError(f"faces must be uint8 (N, {size}, {size}), got {faces.dtype} {faces.shape}")
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return self._probabilities(faces)

    def _probabilities(self, faces: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement _probabilities")
