"""Market data ingestion: Databento Live/Historical, DBN replay and the simulator into storage and bus."""
