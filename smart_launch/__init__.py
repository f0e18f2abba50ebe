"""smart_launch."""
