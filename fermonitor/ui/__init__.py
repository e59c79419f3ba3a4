"""The PySide6 desktop shell over fermonitor.core: the only package that imports Qt."""
