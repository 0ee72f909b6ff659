"""The workspace on disk: its settings file, folder layout, lock and annotation store."""
