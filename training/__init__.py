"""Training and evaluation of fermonitor's expression models on FER+ (python -m training)."""
