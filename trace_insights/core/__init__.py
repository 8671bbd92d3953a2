"""The shared domain: settings, identifiers and wire conventions. Pure; imports no service."""
