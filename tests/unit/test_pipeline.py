"""The analysis step: tracking, one classifier batch per step, smoothing and the indicator mapping."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from fermonitor.core.checkpoint import FERPLUS_CLASSES, ModelMeta
from fermonitor.core.classifier import load_classifier
from fermonitor.core.pipeline import Pipeline, indicator_for
from fermonitor.core.preprocess import crop_face, preprocess_face
from fermonitor.core.results import Frame
from fermonitor.core.settings import IndicatorSettings, Settings, settings_from_dict


class FixedBoxes:
    """A detector that reports given boxes: isolates the pipeline from detection quality."""

    name = "fixed"

    def __init__(self, boxes: list[tuple[int, int, int, int]]) -> None:
        self.boxes = boxes

    def detect(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        return list(self.boxes)


class CountingClassifier:
    """Wraps the real classifier and records every batch it is given."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.batches: list[np.ndarray] = []

    @property
    def classes(self) -> tuple[str, ...]:
        return self.inner.classes

    @property
    def input_size(self) -> int:
        return self.inner.input_size

    @property
    def meta(self):
        return self.inner.meta

    def predict(self, faces: np.ndarray) -> np.ndarray:
        self.batches.append(faces.copy())
        return self.inner.predict(faces)


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint: Path):
    return load_classifier(tiny_checkpoint, device="cpu")


def frame_with_faces(faces: np.ndarray, boxes: list[tuple[int, int, int, int]], t: float, index: int) -> Frame:
    image = np.full((240, 320, 3), 120, np.uint8)
    for face, (x, y, w, h) in zip(faces, boxes, strict=True):
        image[y:y + h, x:x + w] = np.kron(face, np.ones((h // 48, w // 48), np.uint8))[:, :, None]
    return Frame(image=image, t_seconds=t, index=index, wall_time=datetime.now().astimezone())


def test_indicator_mapping_lives_in_settings() -> None:
    probs = np.zeros(8)
    probs[FERPLUS_CLASSES.index("surprise")] = 0.35
    probs[FERPLUS_CLASSES.index("neutral")] = 0.4
    probs[FERPLUS_CLASSES.index("fear")] = 0.25
    default = IndicatorSettings()
    assert indicator_for(probs, FERPLUS_CLASSES, default) == "neutral"
    probs[FERPLUS_CLASSES.index("happiness")] = 0.1  # positive 0.45 now beats neutral 0.4
    assert indicator_for(probs, FERPLUS_CLASSES, default) == "positive"
    surprise_is_negative = dataclasses.replace(default, positive=("happiness",),
                                               negative=(*default.negative, "surprise"))
    assert indicator_for(probs, FERPLUS_CLASSES, surprise_is_negative) == "negative"


def test_indicator_ties_go_to_neutral_then_positive_and_ungrouped_expressions_count_for_none() -> None:
    def probs(**shares: float) -> np.ndarray:
        out = np.zeros(8)
        for name, share in shares.items():
            out[FERPLUS_CLASSES.index(name)] = share
        return out

    default = IndicatorSettings()
    assert indicator_for(probs(neutral=0.3, happiness=0.3, anger=0.3), FERPLUS_CLASSES, default) == "neutral"
    assert indicator_for(probs(neutral=0.2, happiness=0.4, anger=0.4), FERPLUS_CLASSES, default) == "positive"
    assert indicator_for(probs(neutral=0.2, happiness=0.3, anger=0.5), FERPLUS_CLASSES, default) == "negative"
    without_contempt = dataclasses.replace(default, negative=("sadness", "anger", "disgust", "fear"))
    mostly_contempt = probs(neutral=0.25, happiness=0.15, contempt=0.6)
    assert indicator_for(mostly_contempt, FERPLUS_CLASSES, default) == "negative"
    assert indicator_for(mostly_contempt, FERPLUS_CLASSES, without_contempt) == "neutral"


def test_mapping_naming_a_class_the_model_lacks_is_refused(classifier) -> None:
    settings = settings_from_dict({"indicator": {"positive": ["joy"]}})
    with pytest.raises(ValueError, match=r"indicator\.positive names expression 'joy'"):
        Pipeline(classifier, FixedBoxes([]), settings)


def test_steps_track_batch_and_smooth(classifier, fer_faces) -> None:
    images, _ = fer_faces
    faces = images[:2]
    boxes = [(40, 60, 96, 96), (184, 60, 96, 96)]
    settings = Settings()
    counting = CountingClassifier(classifier)
    pipeline = Pipeline(counting, FixedBoxes(boxes), settings)
    results = [pipeline.process(frame_with_faces(faces, boxes, 0.5 * i, 5 * i)) for i in range(4)]

    assert results[0].faces == ()  # tentative until seen twice
    assert [[f.person_id for f in r.faces] for r in results[1:]] == [[1, 2]] * 3
    assert [len(b) for b in counting.batches] == [2, 2, 2]  # one batch per step with every face
    frame = frame_with_faces(faces, boxes, 0.0, 0)
    expected_crops = np.stack([preprocess_face(frame.image, box, pipeline.crop_margin) for box in boxes])
    np.testing.assert_array_equal(counting.batches[0], expected_crops)

    raw = classifier.predict(expected_crops).astype(np.float64)  # identical frames: identical raw output
    for r in results[1:]:
        for face, row in zip(r.faces, raw, strict=True):
            np.testing.assert_allclose(face.probabilities, row, atol=1e-5)
            assert face.top_expression == FERPLUS_CLASSES[int(np.argmax(row))]
            assert face.top_probability == pytest.approx(float(row.max()), abs=1e-5)
            assert face.indicator == indicator_for(row, FERPLUS_CLASSES, settings.indicator)
    last = results[-1]
    assert (last.frame_index, last.t_seconds, last.frame_size) == (15, 1.5, (320, 240))
    assert last.faces[0].box == boxes[0]
    # Latency is measured from the frame's capture to the result; dropped frames pass through.
    captured = frame_with_faces(faces, boxes, 2.0, 20)
    late = pipeline.process(dataclasses.replace(captured, wall_time=captured.wall_time - timedelta(seconds=2)),
                            dropped_frames=3)
    assert 2.0 <= late.latency_s < 60 and late.dropped_frames == 3


def test_smoothing_follows_the_time_constant(classifier, fer_faces) -> None:
    images, _ = fer_faces
    box = [(100, 60, 96, 96)]
    settings = settings_from_dict({"tracking": {"min_hits": 1}, "analysis": {"smoothing_tau_s": 2.0}})
    pipeline = Pipeline(classifier, FixedBoxes(box), settings)
    first = pipeline.process(frame_with_faces(images[:1], box, 0.0, 0))
    second = pipeline.process(frame_with_faces(images[1:2], box, 1.0, 1))
    frame_b = frame_with_faces(images[1:2], box, 1.0, 1)
    raw_b = classifier.predict(preprocess_face(frame_b.image, box[0], pipeline.crop_margin)[None])[0]
    alpha = 1 - math.exp(-1.0 / 2.0)
    expected = np.asarray(first.faces[0].probabilities) + alpha * (raw_b - np.asarray(first.faces[0].probabilities))
    np.testing.assert_allclose(second.faces[0].probabilities, expected, atol=1e-5)


def test_absent_people_are_reported(classifier, fer_faces) -> None:
    images, _ = fer_faces
    boxes = [(100, 60, 96, 96)]
    settings = settings_from_dict({"indicator": {"absent_after_s": 1.0}, "tracking": {"grace_s": 1.0},
                                  "alerts": {"absent_for_s": 0.5}})
    detector = FixedBoxes(boxes)
    pipeline = Pipeline(classifier, detector, settings)
    for i in range(3):
        pipeline.process(frame_with_faces(images[:1], boxes, 0.5 * i, i))
    detector.boxes = []
    empty = [pipeline.process(frame_with_faces(images[:0], [], 1.0 + 0.5 * i, 3 + i)) for i in range(5)]
    # Last seen at 1.0 s: absent from 2.0 s, ended after 3.0 s.
    assert [r.absent_ids for r in empty] == [(), (), (1,), (1,), (1,)]
    assert pipeline.process(frame_with_faces(images[:0], [], 3.5, 9)).absent_ids == ()
    assert all(r.faces == () for r in empty)


class ReversedClassifier(CountingClassifier):
    """The real classifier with its classes, and so its outputs, in reverse order."""

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(reversed(self.inner.classes))

    def predict(self, faces: np.ndarray) -> np.ndarray:
        return self.inner.predict(faces)[:, ::-1]


def test_results_hold_probabilities_in_ferplus_order_whatever_the_model_order(classifier, fer_faces) -> None:
    images, _ = fer_faces
    box = [(100, 60, 96, 96)]
    settings = settings_from_dict({"tracking": {"min_hits": 1}})
    frame = frame_with_faces(images[:1], box, 0.0, 0)
    straight = Pipeline(classifier, FixedBoxes(box), settings).process(frame).faces[0]
    reordered_pipeline = Pipeline(ReversedClassifier(classifier), FixedBoxes(box), settings)
    reordered = reordered_pipeline.process(frame).faces[0]
    assert reordered_pipeline.classes == FERPLUS_CLASSES
    np.testing.assert_allclose(reordered.probabilities, straight.probabilities, atol=1e-6)
    assert (reordered.top_expression, reordered.indicator) == (straight.top_expression, straight.indicator)


class MarginModel:
    """A classifier trained, its description says, with a given crop margin; records its batches."""

    classes = FERPLUS_CLASSES
    input_size = 48

    def __init__(self, margin: float) -> None:
        self.meta = ModelMeta("fake", FERPLUS_CLASSES, crop_margin=margin)
        self.batches: list[np.ndarray] = []

    def predict(self, faces: np.ndarray) -> np.ndarray:
        self.batches.append(faces.copy())
        return np.full((len(faces), len(self.classes)), 1 / len(self.classes), np.float32)


@pytest.mark.parametrize(("setting", "used"), [(None, 0.25), (0.0, 0.0), (0.1, 0.1)])
def test_the_crop_margin_is_the_models_unless_the_settings_override_it(setting, used) -> None:
    images = np.random.default_rng(0).integers(0, 256, (1, 48, 48), dtype=np.uint8)  # any picture: crops compared
    box = (100, 60, 96, 96)
    model = MarginModel(0.25)
    settings = settings_from_dict({"analysis": {"crop_margin": setting}, "tracking": {"min_hits": 1}})
    pipeline = Pipeline(model, FixedBoxes([box]), settings)
    frame = frame_with_faces(images[:1], [box], 0.0, 0)
    pipeline.process(frame)
    assert pipeline.crop_margin == used
    np.testing.assert_array_equal(model.batches[0][0], crop_face(frame.image, box, used))


def test_the_whole_frame_is_searched_every_kth_step_and_near_the_faces_between(classifier, fer_faces) -> None:
    """With YuNet, full searches fall every `full_detection_every` steps; ids and boxes hold between."""
    from fermonitor.core.detection import create_detector

    images, _ = fer_faces
    boxes = [(40, 60, 96, 96), (184, 60, 96, 96)]
    detector = create_detector("yunet")
    faces = [f for f in images[:60] if len(detector.detect(frame_with_faces(f[None], boxes[:1], 0, 0).image)) == 1][:2]
    settings = settings_from_dict({"analysis": {"full_detection_every": 4}})
    pipeline = Pipeline(classifier, detector, settings)
    results = [pipeline.process(frame_with_faces(np.stack(faces), boxes, 0.5 * i, i)) for i in range(6)]
    assert pipeline.full_searches == 2  # steps 0 and 4
    assert [[f.person_id for f in r.faces] for r in results[1:]] == [[1, 2]] * 5
    for r in results[1:]:
        for face, (x, y, w, h) in zip(r.faces, boxes, strict=True):
            cx, cy = face.box[0] + face.box[2] / 2, face.box[1] + face.box[3] / 2
            assert abs(cx - (x + w / 2)) < w / 4 and abs(cy - (y + h / 2)) < h / 4
    # Step 6 would search near the faces, but one has left: the whole frame is searched at once.
    left = pipeline.process(frame_with_faces(np.stack(faces[:1]), boxes[:1], 3.0, 6))
    assert pipeline.full_searches == 3 and [f.person_id for f in left.faces] == [1]
