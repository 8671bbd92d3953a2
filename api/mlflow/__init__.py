"""The MLflow-compatible resources the insights rely on: experiments, traces, assessments."""
