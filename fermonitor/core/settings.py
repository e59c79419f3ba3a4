"""Analysis, tracking, indicator and alert settings: frozen dataclasses with their defaults in code."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

log = logging.getLogger(__name__)

SETTINGS_FILE_NAME = "settings.json"


class SettingsError(ValueError):
    """A settings file or mapping that cannot be used; the message names the key and the fault."""


@dataclass(frozen=True)
class AnalysisSettings:
    """How often and with what the frames are analysed."""

    rate_hz: float = 2.0  # analysis steps per second (of wall time live, of video time offline)
    detector: str = "yunet"  # a name from fermonitor.core.detection.list_detectors()
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:0", "mps"
    # Border added around the face square (the detected box's longer side) before the 48x48 crop,
    # as a fraction of that side. None: the margin the model was trained with (ModelMeta.crop_margin,
    # 0 for the shipped model, which FER+ PublicTest galleries confirmed: benchmarks/gallery_eval.py);
    # a number overrides it.
    crop_margin: float | None = None
    # Turn each face so its eyes are level before the crop (detectors with landmarks only); it raised
    # accuracy on tilted gallery faces (benchmarks/gallery_eval.py).
    align_faces: bool = True
    smoothing_tau_s: float = 1.5  # time constant of the per-person probability EMA, seconds
    detector_max_side_px: int = 640  # haar: the cascade runs on a copy whose longest side is at most this
    # yunet: the frame is resized by this factor first; above 1 finds the small faces of a call gallery.
    detector_scale: float = 1.75
    # yunet: lowest face confidence kept, 0-1; 0.4 was the fastest way to 97% recall on PublicTest galleries.
    detector_score: float = 0.4
    # yunet: the whole frame is searched every this many steps, and at once when a tracked face is lost;
    # in between only around the people already tracked (1: the whole frame every step).
    full_detection_every: int = 4


@dataclass(frozen=True)
class TrackingSettings:
    """How detections become people with stable ids."""

    iou_threshold: float = 0.3  # a box pair with at least this IoU may be the same person
    # ... or whose centres are closer than this many times the larger box's width.
    max_centre_distance: float = 0.75
    min_hits: int = 2  # analysis steps a new detection must persist before it becomes a person
    # Seconds a person stays known, and counted absent, after the absence threshold; a face back in
    # the same place within it keeps its id and name, later it is a new person.
    grace_s: float = 60.0


@dataclass(frozen=True)
class IndicatorSettings:
    """Which expressions count as positive, negative or neutral, and when a person is absent."""

    positive: tuple[str, ...] = ("happiness", "surprise")
    negative: tuple[str, ...] = ("sadness", "anger", "disgust", "fear", "contempt")
    neutral: tuple[str, ...] = ("neutral",)
    absent_after_s: float = 5.0  # a person not seen for this long is absent

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Indicator name to the expressions it sums, in tie-break order (neutral first)."""
        return {"neutral": self.neutral, "positive": self.positive, "negative": self.negative}


@dataclass(frozen=True)
class AlertSettings:
    """Class-level conditions that raise a banner in the app."""

    negative_share: float = 0.4  # share of visible faces with a negative indicator, 0-1
    negative_for_s: float = 20.0  # ... held for this many seconds
    absent_count: int = 3  # more than this many people absent ...
    absent_for_s: float = 10.0  # ... for this many seconds


@dataclass(frozen=True)
class TimelineSettings:
    """How much of a session the live timelines hold in memory (the CSV and the summary keep all)."""

    history_min: float = 60.0  # minutes of each series kept: the longest window the timelines show
    # a person not seen for this long leaves the live timelines (ids are never reused)
    forget_after_min: float = 10.0


@dataclass(frozen=True)
class Settings:
    """Every user-adjustable setting, grouped by section."""

    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    indicator: IndicatorSettings = field(default_factory=IndicatorSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    timeline: TimelineSettings = field(default_factory=TimelineSettings)


_SECTIONS: dict[str, type] = {
    "analysis": AnalysisSettings,
    "tracking": TrackingSettings,
    "indicator": IndicatorSettings,
    "alerts": AlertSettings,
    "timeline": TimelineSettings,
}


def default_settings_path() -> Path:
    """The user's settings file (never read or written by the tests)."""
    return Path(platformdirs.user_config_dir("fermonitor")) / SETTINGS_FILE_NAME


def settings_to_dict(settings: Settings) -> dict[str, dict[str, Any]]:
    """A JSON-ready mapping of every setting (tuples become lists)."""
    out: dict[str, dict[str, Any]] = {}
    for section in _SECTIONS:
        values = dataclasses.asdict(getattr(settings, section))
        out[section] = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    return out


def optional_type(annotation: Any) -> Any:
    """``X`` for a field typed ``X | None`` (None there means "decided elsewhere"), else None."""
    args = typing.get_args(annotation)
    if type(None) in args and len(args) == 2:
        return next(arg for arg in args if arg is not type(None))
    return None


def _convert(key: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against a field's type; ints are accepted for floats, lists for tuples,
    null (None) for an optional field."""
    inner = optional_type(annotation)
    if inner is not None:
        return None if value is None else _convert(key, value, inner)
    origin = typing.get_origin(annotation)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"setting {key} must be a number, got {value!r}")
        if not math.isfinite(value):  # JSON readers accept NaN and Infinity
            raise SettingsError(f"setting {key} must be a finite number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"setting {key} must be a whole number, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise SettingsError(f"setting {key} must be a string, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"setting {key} must be true or false, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"setting {key} must be a list of strings, got {value!r}")
        return tuple(value)
    raise SettingsError(f"setting {key} has an unsupported type {annotation!r}")  # pragma: no cover


def _check_ranges(settings: Settings) -> None:
    """Reject values of the right type that make no sense."""
    positive = {
        "analysis.rate_hz": settings.analysis.rate_hz,
        "analysis.smoothing_tau_s": settings.analysis.smoothing_tau_s,
        "analysis.detector_max_side_px": settings.analysis.detector_max_side_px,
        "analysis.detector_scale": settings.analysis.detector_scale,
        "analysis.full_detection_every": settings.analysis.full_detection_every,
        "tracking.min_hits": settings.tracking.min_hits,
        "timeline.history_min": settings.timeline.history_min,
        "timeline.forget_after_min": settings.timeline.forget_after_min,
    }
    for key, value in positive.items():
        if value <= 0:
            raise SettingsError(f"setting {key} must be above 0, got {value!r}")
    non_negative = {
        "tracking.grace_s": settings.tracking.grace_s,
        "tracking.max_centre_distance": settings.tracking.max_centre_distance,
        "indicator.absent_after_s": settings.indicator.absent_after_s,
        "alerts.negative_for_s": settings.alerts.negative_for_s,
        "alerts.absent_count": settings.alerts.absent_count,
        "alerts.absent_for_s": settings.alerts.absent_for_s,
    }
    if settings.analysis.crop_margin is not None:  # None: the model's margin
        non_negative["analysis.crop_margin"] = settings.analysis.crop_margin
    for key, value in non_negative.items():
        if value < 0:
            raise SettingsError(f"setting {key} must not be negative, got {value!r}")
    for key, value in {"tracking.iou_threshold": settings.tracking.iou_threshold,
                       "analysis.detector_score": settings.analysis.detector_score,
                       "alerts.negative_share": settings.alerts.negative_share}.items():
        if not 0.0 <= value <= 1.0:
            raise SettingsError(f"setting {key} must be between 0 and 1, got {value!r}")
    if settings.alerts.absent_for_s > settings.tracking.grace_s:
        raise SettingsError(f"setting alerts.absent_for_s ({settings.alerts.absent_for_s:g} s) must not be longer "
                            f"than tracking.grace_s ({settings.tracking.grace_s:g} s): a person counts as absent "
                            "only that long, so the absence alert could never fire")
    seen: dict[str, str] = {}
    for group, names in settings.indicator.groups().items():
        for name in names:
            if name in seen:
                raise SettingsError(f"setting indicator.{group}: expression {name!r} is already in indicator.{seen[name]}")
            seen[name] = group


def settings_from_dict(data: dict[str, Any], base: Settings | None = None) -> Settings:
    """Merge a (possibly partial) mapping over ``base`` (defaults when None).

    Raises
    ------
    SettingsError
        For an unknown section or key, or a value of the wrong type or range; one line naming it.
    """
    base = Settings() if base is None else base
    if not isinstance(data, dict):
        raise SettingsError(f"settings must be a mapping of sections, got {type(data).__name__}")
    sections: dict[str, Any] = {}
    for section, values in data.items():
        if section not in _SECTIONS:
            raise SettingsError(f"unknown settings section {section!r}; known: {', '.join(_SECTIONS)}")
        if not isinstance(values, dict):
            raise SettingsError(f"settings section {section} must be a mapping, got {values!r}")
        cls = _SECTIONS[section]
        hints = typing.get_type_hints(cls)
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key not in hints:
                raise SettingsError(f"unknown setting {section}.{key}; known: {', '.join(hints)}")
            changes[key] = _convert(f"{section}.{key}", value, hints[key])
        sections[section] = dataclasses.replace(getattr(base, section), **changes)
    settings = dataclasses.replace(base, **sections)
    _check_ranges(settings)
    return settings


def read_settings(path: str | Path | None = None, missing_ok: bool = True) -> Settings:
    """Read a JSON settings file merged over the defaults, strictly; a missing file gives the
    defaults when ``missing_ok`` (the app's own file before the first save).

    Raises
    ------
    SettingsError
        For a file that is not valid JSON, an unknown key or a wrong value, or a missing file
        that was asked for, naming the file.
    """
    path = default_settings_path() if path is None else Path(path)
    if not path.exists():
        if not missing_ok:
            raise SettingsError(f"settings file {path} does not exist")
        return Settings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"settings file {path} cannot be read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    try:
        return settings_from_dict(_migrate(data, path))
    except SettingsError as exc:
        raise SettingsError(f"settings file {path}: {exc}") from exc


OLD_GRACE_S = 3.0  # tracking.grace_s before 2026-12-02, written into every settings file saved then


def _migrate(data: Any, path: Path) -> Any:
    """A file saved with the old tracking.grace_s default, under which the absence alert could never
    fire, takes the new default instead (the dialog saves every field, so the old value is in it)."""
    if not isinstance(data, dict) or not isinstance(data.get("tracking"), dict):
        return data
    tracking, alerts = data["tracking"], data.get("alerts")
    absent_for_s = alerts.get("absent_for_s", AlertSettings.absent_for_s) if isinstance(alerts, dict) else None
    if tracking.get("grace_s") != OLD_GRACE_S or not isinstance(absent_for_s, (int, float)) \
            or absent_for_s <= OLD_GRACE_S:
        return data
    log.info("settings file %s: tracking.grace_s %g s, the old default, becomes %g s", path, OLD_GRACE_S,
             TrackingSettings.grace_s)
    return {**data, "tracking": {k: v for k, v in tracking.items() if k != "grace_s"}}


def load_settings(path: str | Path | None = None) -> tuple[Settings, list[str]]:
    """Settings for the app: the file merged over the defaults, or the defaults and a warning.

    A bad file never stops the app: the one-line message of :func:`read_settings`'s
    :class:`SettingsError` comes back in the warnings list, for a dialog or the log.
    """
    try:
        return read_settings(path), []
    except SettingsError as exc:
        log.warning("%s; using the defaults", exc)
        return Settings(), [f"{exc}; using the defaults"]


def save_settings(settings: Settings, path: str | Path | None = None) -> Path:
    """Write ``settings`` as JSON (atomically) and return the path."""
    path = default_settings_path() if path is None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(settings_to_dict(settings), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = [
    "AlertSettings", "AnalysisSettings", "IndicatorSettings", "Settings", "SettingsError", "TrackingSettings",
    "default_settings_path", "load_settings", "read_settings", "save_settings",
    "settings_from_dict", "settings_to_dict",
]
