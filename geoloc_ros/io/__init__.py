"""Bags, images and message <-> core-type conversion (no rclpy import at module level)."""
