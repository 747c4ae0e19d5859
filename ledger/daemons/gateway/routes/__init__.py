"""One module per resource of the REST API (and the browser view's pages)."""
