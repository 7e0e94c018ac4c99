"""rclpy nodes: thin adapters from messages to the core estimators and back.

The only package that imports rclpy and message packages at module level.
"""
