"""Writing sidecars and describing notebooks: init, import-kale, the cells table."""
