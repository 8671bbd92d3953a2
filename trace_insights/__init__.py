"""Trace Insights: OTLP traces of LLM and agent applications turned into live insights."""
