"""The thin HTTP layer: FastAPI routes that parse, call the service layer, and serialise."""
