"""The Swift pipeline's middlewares, one per module (Swift's proxy filters)."""
