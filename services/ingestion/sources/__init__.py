"""Sources of DBN records: live, historical, replay, simulator."""
