"""Qt-free analysis core: sources, detection, preprocessing, models, tracking, session."""
