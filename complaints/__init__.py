"""Complaint Handling Code engine: domain core, CLI and dev tooling."""
