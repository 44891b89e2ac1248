"""Shared infrastructure for the five paper scripts: video reading and frame sampling, clip transforms,
metrics, timing/complexity counting and run utilities. No paper logic lives here (see CONVENTIONS.md)."""
