"""`geoloc demo`: scenario (world, drive, map; cached), rows (one replay per estimator
combination), report (table, TUM files, figures) and run (the three in order; --live through
nodes.live, where the rclpy side lives)."""
