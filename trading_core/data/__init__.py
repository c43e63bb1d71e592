"""Market data: providers, validation and quarantine, the Parquet lake, and the ingest stage."""
