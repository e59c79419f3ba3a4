"""The settings dialog: source and every section of fermonitor.core.settings, built from its fields."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from fermonitor.core.detection import list_detectors
from fermonitor.core.settings import (
    Settings,
    SettingsError,
    optional_type,
    settings_from_dict,
    settings_to_dict,
)

SECTION_TITLES = {
    "analysis": "Analysis",
    "tracking": "Tracking",
    "indicator": "Indicator (expressions counted as positive, neutral, negative)",
    "alerts": "Alerts",
    "timeline": "Timelines (memory of a long session; the CSV keeps everything)",
}
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
FLOAT_DECIMALS = 2
# What an optional number's editor shows at its lowest step, which stands for None ("not set here").
UNSET_TEXT = {("analysis", "crop_margin"): "the model's"}
DEFAULT_UNSET_TEXT = "automatic"
FLOAT_MAX = 100_000.0
INT_MAX = 1_000_000


class SettingsDialog(QDialog):
    """Edits a copy of :class:`Settings` and the source spec; :meth:`result_settings` gives them
    back, checked by ``settings_from_dict`` (a bad value keeps the dialog open with its message)."""

    def __init__(self, settings: Settings, source_spec: str, parent: QWidget | None = None,
                 choose_source: typing.Callable[[QWidget], str | None] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._settings = settings
        self._editors: dict[tuple[str, str], QWidget] = {}
        self._choose_source = choose_source
        layout = QVBoxLayout(self)

        source_box = QGroupBox("Source")
        source_row = QHBoxLayout(source_box)
        self.source_edit = QLineEdit(source_spec)
        self.source_edit.setPlaceholderText("webcam:0, screen:1, region:X,Y,W,H or video:PATH")
        source_row.addWidget(self.source_edit)
        if choose_source is not None:
            choose = QPushButton("Choose\u2026")
            choose.clicked.connect(self.on_choose_source_clicked)
            source_row.addWidget(choose)
        layout.addWidget(source_box)

        values = settings_to_dict(settings)
        for section, fields in values.items():
            box = QGroupBox(SECTION_TITLES.get(section, section))
            form = QFormLayout(box)
            hints = typing.get_type_hints(type(getattr(settings, section)))
            for name, value in fields.items():
                editor = self._editor_for(section, name, hints[name], value)
                self._editors[(section, name)] = editor
                form.addRow(name.replace("_", " "), editor)
            layout.addWidget(box)

        self.error_label = QLabel()
        self.error_label.setStyleSheet("color: #b00020;")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        layout.addWidget(self.error_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(
            self.on_restore_defaults_clicked)
        layout.addWidget(buttons)
        self._new_settings: Settings | None = None

    def editor(self, section: str, name: str) -> QWidget:
        return self._editors[(section, name)]

    def _editor_for(self, section: str, name: str, annotation: Any, value: Any) -> QWidget:
        if (section, name) == ("analysis", "detector"):
            combo = QComboBox()
            combo.addItems(list(list_detectors()))
            combo.setCurrentText(value)
            return combo
        if (section, name) == ("analysis", "device"):
            combo = QComboBox()
            combo.setEditable(True)
            combo.addItems(list(DEVICE_CHOICES))
            combo.setCurrentText(value)
            return combo
        if annotation is bool:
            check = QCheckBox()
            check.setChecked(value)
            return check
        if annotation is float or optional_type(annotation) is float:
            spin = QDoubleSpinBox()
            spin.setDecimals(FLOAT_DECIMALS)
            spin.setRange(0.0, FLOAT_MAX)
            spin.setSingleStep(0.05 if value is None or value <= 1.0 else 0.5)
            if annotation is not float:  # optional: one step below 0 is None, shown in words
                spin.setMinimum(-spin.singleStep())
                spin.setSpecialValueText(UNSET_TEXT.get((section, name), DEFAULT_UNSET_TEXT))
            _set_spin(spin, value)
            return spin
        if annotation is int:
            spin = QSpinBox()
            spin.setRange(0, INT_MAX)
            spin.setValue(value)
            return spin
        line = QLineEdit(", ".join(value) if isinstance(value, list) else str(value))
        return line

    def _read_editor(self, section: str, name: str) -> Any:
        editor = self._editors[(section, name)]
        if isinstance(editor, QCheckBox):
            return editor.isChecked()
        if isinstance(editor, QComboBox):
            return editor.currentText().strip()
        if isinstance(editor, (QDoubleSpinBox, QSpinBox)):
            if editor.specialValueText() and editor.value() == editor.minimum():
                return None
            return editor.value()
        text = editor.text()
        current = getattr(getattr(self._settings, section), name)
        if isinstance(current, tuple):
            return [part.strip() for part in text.split(",") if part.strip()]
        return text.strip()

    def _collect(self) -> Settings:
        data: dict[str, dict[str, Any]] = {}
        for section, name in self._editors:
            data.setdefault(section, {})[name] = self._read_editor(section, name)
        return settings_from_dict(data)

    def result_settings(self) -> Settings:
        """The accepted settings (the original ones when the dialog was cancelled)."""
        return self._settings if self._new_settings is None else self._new_settings

    def source_spec(self) -> str:
        return self.source_edit.text().strip()

    @Slot()
    def on_choose_source_clicked(self) -> None:
        spec = self._choose_source(self) if self._choose_source is not None else None
        if spec:
            self.source_edit.setText(spec)

    @Slot()
    def on_restore_defaults_clicked(self) -> None:
        defaults = settings_to_dict(Settings())
        for (section, name), editor in self._editors.items():
            value = defaults[section][name]
            if isinstance(editor, QCheckBox):
                editor.setChecked(value)
            elif isinstance(editor, QComboBox):
                editor.setCurrentText(value)
            elif isinstance(editor, (QDoubleSpinBox, QSpinBox)):
                _set_spin(editor, value)
            else:
                editor.setText(", ".join(value) if isinstance(value, list) else str(value))

    def accept(self) -> None:
        try:
            self._new_settings = self._collect()
        except SettingsError as exc:
            self.error_label.setText(str(exc))
            self.error_label.show()
            return
        super().accept()


def _set_spin(spin: QDoubleSpinBox | QSpinBox, value: float | None) -> None:
    """Show ``value``; None on an optional number's editor is its lowest step, shown in words."""
    spin.setValue(spin.minimum() if value is None else value)


def changed_fields(old: Settings, new: Settings) -> list[str]:
    """``section.name`` of every setting that differs, for the log."""
    out = []
    for section in dataclasses.fields(old):
        before, after = getattr(old, section.name), getattr(new, section.name)
        for item in dataclasses.fields(before):
            if getattr(before, item.name) != getattr(after, item.name):
                out.append(f"{section.name}.{item.name}")
    return out
