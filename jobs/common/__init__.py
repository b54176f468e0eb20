"""What every job shares: the Spark session, lake table locations, run records."""
