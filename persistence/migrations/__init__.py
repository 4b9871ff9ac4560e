"""The schema's migrations: files (``sql/migrations``), the engine that applies them, and the CLI."""
