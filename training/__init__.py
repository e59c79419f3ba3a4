"""Training and evaluation of fermonitor's expression models on FER+ (python -m training)."""

# The study's seed_* architectures join the model registry whenever training is imported.
from training import seed_models  # noqa: F401
