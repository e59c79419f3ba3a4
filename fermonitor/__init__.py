"""fermonitor: live and recorded facial-expression timelines for a class."""

__version__ = "0.1.0"
