"""Worker, coordinator and embedded-server runtimes. Knows nothing about the analysis."""
