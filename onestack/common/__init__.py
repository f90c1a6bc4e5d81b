"""The small shared framework every service stands on."""
