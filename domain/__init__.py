"""Pure rules of complaint handling: no I/O, no clock, safe to run inside a workflow."""
