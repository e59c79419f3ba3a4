"""Settings: defaults in code, a user file merged over them, bad keys and values rejected."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fermonitor.core.settings import (
    Settings,
    SettingsError,
    load_settings,
    read_settings,
    save_settings,
    settings_from_dict,
    settings_to_dict,
)


def test_defaults() -> None:
    s = Settings()
    assert s.analysis.rate_hz == 2.0 and s.analysis.detector == "yunet" and s.analysis.device == "auto"
    assert s.analysis.smoothing_tau_s == 1.5
    assert s.tracking.min_hits == 2 and s.tracking.grace_s == 60.0
    assert s.indicator.positive == ("happiness", "surprise")
    assert s.indicator.negative == ("sadness", "anger", "disgust", "fear", "contempt")
    assert s.indicator.neutral == ("neutral",) and s.indicator.absent_after_s == 5.0
    assert (s.alerts.negative_share, s.alerts.negative_for_s, s.alerts.absent_count, s.alerts.absent_for_s) == (
        0.4, 20.0, 3, 10.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.analysis.rate_hz = 5.0  # type: ignore[misc]


def test_partial_dict_merges_over_defaults() -> None:
    s = settings_from_dict({"analysis": {"rate_hz": 4}, "indicator": {"positive": ["happiness"],
                                                                     "neutral": ["neutral", "surprise"]}})
    assert s.analysis.rate_hz == 4.0 and isinstance(s.analysis.rate_hz, float)
    assert s.indicator.positive == ("happiness",) and s.indicator.neutral == ("neutral", "surprise")
    assert s.tracking == Settings().tracking


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    original = settings_from_dict({"alerts": {"absent_count": 5}, "tracking": {"iou_threshold": 0.2}})
    path = save_settings(original, tmp_path / "sub" / "settings.json")
    assert read_settings(path) == original
    assert settings_from_dict(settings_to_dict(original)) == original
    assert json.loads(path.read_text())["alerts"]["absent_count"] == 5


@pytest.mark.parametrize(("data", "message"), [
    ({"analysis": {"rate": 3}}, r"^unknown setting analysis\.rate; known: rate_hz"),
    ({"display": {}}, r"^unknown settings section 'display'"),
    ({"analysis": {"rate_hz": "fast"}}, r"^setting analysis\.rate_hz must be a number, got 'fast'$"),
    ({"analysis": {"rate_hz": True}}, r"analysis\.rate_hz must be a number"),
    ({"tracking": {"min_hits": 2.5}}, r"^setting tracking\.min_hits must be a whole number"),
    ({"analysis": {"detector": 3}}, r"analysis\.detector must be a string"),
    ({"indicator": {"positive": "happiness"}}, r"indicator\.positive must be a list of strings"),
    ({"analysis": {"rate_hz": 0}}, r"analysis\.rate_hz must be above 0"),
    ({"analysis": {"smoothing_tau_s": float("nan")}}, r"analysis\.smoothing_tau_s must be a finite number, got nan"),
    ({"analysis": {"rate_hz": float("inf")}}, r"analysis\.rate_hz must be a finite number, got inf"),
    ({"alerts": {"negative_share": 1.5}}, r"alerts\.negative_share must be between 0 and 1"),
    ({"indicator": {"positive": ["happiness", "neutral"]}}, r"'neutral' is already in indicator\.neutral"),
    ({"analysis": 3}, r"section analysis must be a mapping"),
    ({"tracking": {"grace_s": 3}}, r"alerts\.absent_for_s \(10 s\) must not be longer than tracking\.grace_s \(3 s\)"),
])
def test_bad_values_give_one_line_naming_the_key(data: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as info:
        settings_from_dict(data)
    assert "\n" not in str(info.value)


def test_bad_file_strict_and_lenient(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"tracking": {"grace": 2}}))
    with pytest.raises(SettingsError, match=r"settings\.json: unknown setting tracking\.grace"):
        read_settings(path)
    settings, warnings = load_settings(path)
    assert settings == Settings()
    assert len(warnings) == 1 and "tracking.grace" in warnings[0] and "using the defaults" in warnings[0]
    path.write_text("{not json")
    with pytest.raises(SettingsError, match=r"is not valid JSON \(line 1"):
        read_settings(path)


def test_a_file_saved_with_the_old_grace_default_takes_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    old = settings_to_dict(Settings())
    old["tracking"]["grace_s"] = 3.0  # every field is saved; 3 s was the default then
    old["analysis"]["rate_hz"] = 4.0  # a change the user made, which must survive
    path.write_text(json.dumps(old))
    settings, warnings = load_settings(path)
    assert warnings == [] and settings.tracking.grace_s == 60.0 and settings.analysis.rate_hz == 4.0
    old["alerts"]["absent_for_s"] = 2.0  # with an alert that fits in 3 s, 3 s is a choice: kept
    path.write_text(json.dumps(old))
    assert read_settings(path).tracking.grace_s == 3.0
    assert settings_from_dict({"tracking": {"grace_s": 0}, "alerts": {"absent_for_s": 0}}).tracking.grace_s == 0


def test_the_crop_margin_is_the_models_unless_a_number_overrides_it(tmp_path: Path) -> None:
    assert Settings().analysis.crop_margin is None  # the margin the model was trained with
    assert settings_from_dict({"analysis": {"crop_margin": 0.1}}).analysis.crop_margin == 0.1
    assert settings_from_dict({"analysis": {"crop_margin": 0}}).analysis.crop_margin == 0.0
    assert settings_from_dict({"analysis": {"crop_margin": None}}).analysis.crop_margin is None
    for bad, message in ((-0.1, "must not be negative"), ("wide", "must be a number"), (float("nan"), "must be a finite number")):
        with pytest.raises(SettingsError, match=rf"^setting analysis\.crop_margin {message}"):
            settings_from_dict({"analysis": {"crop_margin": bad}})
    path = save_settings(Settings(), tmp_path / "settings.json")
    assert json.loads(path.read_text())["analysis"]["crop_margin"] is None and read_settings(path) == Settings()


def test_a_file_saved_when_every_field_had_a_number_still_loads(tmp_path: Path) -> None:
    # The dialog saves every field; before the model's margin became the default, crop_margin was 0.0.
    path = tmp_path / "settings.json"
    old = settings_to_dict(Settings())
    old["analysis"]["crop_margin"] = 0.0
    path.write_text(json.dumps(old))
    settings, warnings = load_settings(path)
    assert warnings == [] and settings.analysis.crop_margin == 0.0  # what the file says: an explicit 0


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "none.json") == (Settings(), [])
    with pytest.raises(SettingsError, match=r"settings file .*none\.json does not exist"):
        read_settings(tmp_path / "none.json", missing_ok=False)
