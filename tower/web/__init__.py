"""HTTP adapter: the ingest and read API on the app's Flask server."""
